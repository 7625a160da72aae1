//! # Requests: `handle_requests`, `pending_requests`, and what a look learns
//!
//! Mirrors `core/src/request.rs` (request handling at guest entry: a reload
//! drops the old root and loads a current one) and `core/src/vcpu.rs` (the
//! request handshake, `make_all_cpus_request`). The reference tracks each
//! vCPU's pending requests and reload as clear, maybe or set ([`Tri`]); every
//! look at them (`pending_requests`, `handle_requests`, a translation that
//! was not `RequestPending`) makes them exact again. A look also counts for
//! the operations still in flight (`tail.rs`): a request one of them owes
//! may land after it.

use fastzap::{Handled, MmuError, Requests, VcpuId};

use crate::op::{Divergence, ensure, expect_err, expect_ok};
use crate::overlap::Overlap;
use crate::state::{Reference, Root, Tri};

impl Reference {
    /// `handle_requests(v)`, with what overlaps it ([`Overlap::NONE`] in
    /// sequential use).
    pub(crate) fn step_handle_requests(
        &mut self,
        v: VcpuId,
        r: &Result<Handled, MmuError>,
        overlap: Overlap,
    ) -> Result<(), Divergence> {
        match self.check_vcpu(v) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                let handled = expect_ok(r)?;
                self.handled(v.0, handled, overlap)
            }
        }
    }

    /// `pending_requests(v)`.
    pub(crate) fn step_pending_requests(
        &mut self,
        v: VcpuId,
        r: &Result<Requests, MmuError>,
    ) -> Result<(), Divergence> {
        match self.check_vcpu(v) {
            Err(e) => expect_err(r, e),
            Ok(()) => {
                let requests = expect_ok(r)?;
                self.requests(v.0, requests)
            }
        }
    }

    /// A look at vCPU `v` found no request: none is pending, and a root the
    /// shrinker may have zapped is current (an invalid root comes with a
    /// reload request).
    pub(crate) fn no_requests(&mut self, v: usize) {
        let vm = &mut self.vcpus[v];
        vm.pending = Tri::Clear;
        vm.reload = Tri::Clear;
        if vm.root == Root::MaybeObsolete {
            vm.root = Root::Current;
        }
        self.observed(v);
    }

    /// Checks `pending_requests(v) == requests` and learns from it.
    fn requests(&mut self, v: usize, requests: Requests) -> Result<(), Divergence> {
        let vm = &self.vcpus[v];
        let reload = requests.reload();
        let bits = requests.bits();
        ensure(vm.pending != Tri::Set || !requests.is_empty(), || {
            format!("vcpu{v}: requests must be pending, got {bits:#x}")
        })?;
        ensure(vm.pending != Tri::Clear || requests.is_empty(), || {
            format!("vcpu{v}: no request may be pending, got {bits:#x}")
        })?;
        ensure(vm.reload != Tri::Set || reload, || {
            format!("vcpu{v}: a reload must be pending, got {bits:#x}")
        })?;
        ensure(vm.reload != Tri::Clear || !reload, || {
            format!("vcpu{v}: no reload may be pending, got {bits:#x}")
        })?;
        if requests.is_empty() {
            self.no_requests(v);
        } else {
            let vm = &mut self.vcpus[v];
            vm.pending = Tri::Set;
            vm.reload = if reload { Tri::Set } else { Tri::Clear };
            if !reload && vm.root == Root::MaybeObsolete {
                vm.root = Root::Current;
            }
            self.observed(v);
        }
        Ok(())
    }

    /// Checks what `vm.pending_requests` says for every vCPU (an observation
    /// the conformance driver makes after every step).
    pub fn observe_requests(&mut self, v: usize, requests: Requests) -> Result<(), Divergence> {
        self.requests(v, requests)
    }

    fn handled(&mut self, v: usize, got: Handled, overlap: Overlap) -> Result<(), Divergence> {
        let vm = self.vcpus[v].clone();
        let must_reload = vm.root == Root::None || vm.reload == Tri::Set;
        let may_reload = vm.root == Root::None || vm.reload != Tri::Clear;
        ensure(!must_reload || got.reloaded, || {
            format!("handle_requests(vcpu{v}) = {got:?}: a reload was due ({vm:?})")
        })?;
        ensure(may_reload || !got.reloaded, || {
            format!("handle_requests(vcpu{v}) = {got:?}: no reload was due ({vm:?})")
        })?;
        ensure(vm.pending != Tri::Set || !got.requests.is_empty(), || {
            format!("handle_requests(vcpu{v}) = {got:?}: requests were pending ({vm:?})")
        })?;
        ensure(vm.pending != Tri::Clear || got.requests.is_empty(), || {
            format!("handle_requests(vcpu{v}) = {got:?}: no request was pending ({vm:?})")
        })?;
        if got.reloaded && vm.root != Root::Current && vm.root != Root::None {
            // Freeing an invalid root commits it, which flushes every TLB; the
            // vCPU itself handles that flush in its request loop.
            for (i, other) in self.vcpus.iter_mut().enumerate() {
                if i != v {
                    other.pending = other.pending.weaken();
                }
            }
        }
        let vm = &mut self.vcpus[v];
        // Sequentially an obsolete root always comes with a reload request, so
        // it is reloaded here; concurrently the request may not have landed
        // yet, and the vCPU keeps its obsolete root.
        if got.reloaded || vm.root != Root::Obsolete {
            vm.root = Root::Current;
        }
        vm.pending = Tri::Clear;
        vm.reload = Tri::Clear;
        self.observed(v);
        if got.reloaded && overlap.spte_writer {
            // The request loop goes round a few times at most
            // (`handle_requests_claimed` in core/src/request.rs). While an
            // operation that invalidates roots and requests reloads overlaps
            // it, every round can find a new request, and the last round's
            // reload can free a root that operation made invalid: the commit
            // flushes every TLB, this vCPU's too, after its last look. The
            // vCPU then returns with that flush pending, and its next guest
            // entry (a translate) answers `RequestPending`, as
            // vcpu_enter_guest cancels an entry with a request pending.
            let vm = &mut self.vcpus[v];
            vm.pending = vm.pending.weaken();
        }
        Ok(())
    }

    /// Every vCPU has a TLB flush request (`kvm_flush_remote_tlbs`).
    pub(crate) fn all_flushed(&mut self) {
        for v in &mut self.vcpus {
            v.pending = Tri::Set;
        }
    }

    /// Every vCPU may have a request pending.
    pub(crate) fn weaken_all_pending(&mut self) {
        for v in &mut self.vcpus {
            v.pending = v.pending.weaken();
        }
    }

    /// vCPU `v` looked at its requests: a request an operation still in
    /// flight owes it may land after the look.
    fn observed(&mut self, v: usize) {
        self.consumed[v] += 1;
        for f in &self.in_flight {
            let (pending, reload, _) = f.owed[v];
            let vm = &mut self.vcpus[v];
            if pending {
                vm.pending = vm.pending.weaken();
            }
            if reload {
                vm.reload = vm.reload.weaken();
            }
        }
    }
}
