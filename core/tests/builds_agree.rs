#![cfg(not(any(loom, shuttle)))]
//! The checking build and the protocol alone agree (SPEC.md, "The checking
//! code"): the same seeded sequence of public operations (memslot creates,
//! deletes of every strategy and moves; faults, translations and request
//! handling; zaps, the shrinker and every mmu-notifier; bad input too) gives
//! the same observable results in both, wherever no violation is recorded.
//! The walkers of the checking build stop after recording a use after free;
//! on the correct protocol nothing is freed under them, so they never do.
//!
//! Every result is rendered to one line of a transcript, which is compared
//! with the committed golden file `builds_agree.golden.txt`, the same file for
//! both builds: `cargo test -p fastzap --features ghost --test builds_agree`
//! (the checking build, which also asserts that no violation was recorded)
//! and `cargo test -p fastzap --test builds_agree` (the default features).
//! `FASTZAP_BLESS=1` rewrites the golden file from the current build.
//! Hold times are not observable results (they vary from run to run) and are
//! left out.

use fastzap::*;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/builds_agree.golden.txt");

/// xorshift64*: the sequence is the same on every platform and build.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The host address of slot `id`'s first page, plus `page` pages.
fn slot_hva(id: u64, page: u64) -> u64 {
    0x100_0000 * (id + 1) + page * PAGE_SIZE
}

/// A host address for a notifier: mostly one backing a gfn of a slot that
/// exists now (where the guest maps memory), else slot `id`'s `page`.
fn notifier_hva(vm: &Vm, rng: &mut Rng, id: u64, page: u64) -> u64 {
    let slots = vm.memslots();
    let n = slots.len() as u64;
    match slots.iter().nth(rng.below(n + n / 3 + 1) as usize) {
        Some(s) => {
            let gfn = s.base_gfn().0 + rng.below(s.npages());
            s.hva_of(Gfn(gfn)).expect("gfn of the slot").0
        }
        None => slot_hva(id, page),
    }
}

fn zap(stats: &ZapStats) -> String {
    format!(
        "pages_at_start={} zapped={} holds={} max_batch={} steps={} committed={}",
        stats.pages_at_start,
        stats.zapped,
        stats.holds,
        stats.max_batch,
        stats.steps,
        stats.committed
    )
}

fn zap_result(result: Result<ZapStats, MmuError>) -> String {
    match result {
        Ok(stats) => format!("Ok({})", zap(&stats)),
        Err(e) => format!("Err({e:?})"),
    }
}

fn memslots(vm: &Vm) -> String {
    let slots = vm.memslots();
    let mut out = format!(
        "gen={} in_flux={}",
        slots.generation(),
        slots.update_in_progress()
    );
    for s in slots.iter() {
        out.push_str(&format!(
            " [{:?} gfn {}+{} hva {:#x}{}]",
            s.id(),
            s.base_gfn().0,
            s.npages(),
            s.userspace_addr().0,
            if s.is_invalid() { " INVALID" } else { "" }
        ));
    }
    out
}

/// One operation chosen by `rng`, run on `vm`, rendered.
fn step(vm: &Vm, rng: &mut Rng) -> String {
    let vcpus = vm.config().vcpus as u64;
    let max_gfn = vm.config().max_gfn();
    // Mostly valid arguments, some out of range (bad input: a typed error).
    let vcpu = VcpuId(if rng.below(40) == 0 {
        vcpus as usize
    } else {
        rng.below(vcpus) as usize
    });
    let gfn = if rng.below(40) == 0 {
        max_gfn + rng.below(3)
    } else {
        rng.below(max_gfn)
    };
    let id = rng.below(4);
    let page = rng.below(max_gfn);
    match rng.below(100) {
        0..28 => {
            // As a vCPU does: on a retry, handle the requests and fault again.
            let write = rng.below(2) == 0;
            let mut line = String::new();
            for _ in 0..2 {
                let fault = vm.page_fault(vcpu, Gfn(gfn), write);
                line.push_str(&format!(
                    "page_fault({}, {gfn}, {write}) = {fault:?}",
                    vcpu.0
                ));
                if !matches!(fault, Ok(Fault::Retry(_))) {
                    break;
                }
                line.push_str(&format!(
                    "; handle_requests = {:?}; ",
                    vm.handle_requests(vcpu)
                ));
            }
            line
        }
        28..46 => {
            let t = vm.translate(vcpu, Gfn(gfn));
            let mut line = format!("translate({}, {gfn}) = {t:?}", vcpu.0);
            if t == Ok(Translation::RequestPending) {
                line.push_str(&format!(
                    "; handle_requests = {:?}",
                    vm.handle_requests(vcpu)
                ));
            }
            line
        }
        46..50 => {
            let gfns: Vec<Gfn> = (0..4).map(|i| Gfn((gfn + i) % max_gfn)).collect();
            let mut out = Vec::new();
            let result = vm.translate_run(vcpu, &gfns, &mut out);
            format!("translate_run({}, {gfn}..+4) = {result:?} {out:?}", vcpu.0)
        }
        50..52 => match vm.claim_vcpu(vcpu) {
            Ok(mut claimed) => {
                let t = claimed.translate(Gfn(gfn));
                let h = claimed.handle_requests();
                format!(
                    "claimed({}).translate({gfn}) = {t:?}, handle_requests = {h:?}",
                    vcpu.0
                )
            }
            Err(e) => format!("claim_vcpu({}) = Err({e:?})", vcpu.0),
        },
        52..62 => format!(
            "handle_requests({}) = {:?}",
            vcpu.0,
            vm.handle_requests(vcpu)
        ),
        62..65 => format!(
            "pending_requests({}) = {:?}, root = {:?}",
            vcpu.0,
            vm.pending_requests(vcpu),
            vm.root(vcpu)
        ),
        65..70 => {
            let npages = 1 + rng.below(max_gfn / 2);
            let spec = SlotSpec {
                id: SlotId(id as u16),
                base_gfn: Gfn(rng.below(max_gfn)),
                npages,
                userspace_addr: Hva(slot_hva(id, rng.below(4))),
            };
            format!("create_memslot({spec:?}) = {:?}", vm.create_memslot(spec))
        }
        70..74 => {
            let strategy = [
                DeletionStrategy::Merged311,
                DeletionStrategy::SeedV3,
                DeletionStrategy::SeedV3Deferred,
            ][rng.below(3) as usize];
            format!(
                "delete_memslot_with({id}, {strategy:?}) = {:?}",
                vm.delete_memslot_with(SlotId(id as u16), strategy)
            )
        }
        74..77 => format!(
            "move_memslot({id}, {page}) = {:?}",
            vm.move_memslot(SlotId(id as u16), Gfn(page))
        ),
        77..80 => format!(
            "invalidate_zap_all_pages() = {}",
            zap_result(vm.invalidate_zap_all_pages())
        ),
        80..82 => format!("zap_all() = {}", zap_result(vm.zap_all())),
        82..85 => {
            let nr = rng.below(4) as usize;
            format!("shrink({nr}) = {:?}", vm.shrink(nr))
        }
        85..90 => {
            let start = notifier_hva(vm, rng, id, page);
            // Now and then an empty range: bad input.
            let end = start + PAGE_SIZE * rng.below(4);
            format!(
                "invalidate_range({start:#x}, {end:#x}) = {:?}",
                vm.invalidate_range(Hva(start), Hva(end))
            )
        }
        90..93 => {
            let start = notifier_hva(vm, rng, id, page);
            let end = start + PAGE_SIZE * (1 + rng.below(4));
            format!(
                "clear_flush_young({start:#x}, {end:#x}) = {:?}",
                vm.clear_flush_young(Hva(start), Hva(end))
            )
        }
        93..95 => {
            let start = notifier_hva(vm, rng, id, page);
            let end = start + PAGE_SIZE * (1 + rng.below(4));
            format!(
                "test_young({start:#x}, {end:#x}) = {:?}",
                vm.test_young(Hva(start), Hva(end))
            )
        }
        95..98 => {
            let hva = notifier_hva(vm, rng, id, page) + rng.below(PAGE_SIZE);
            format!("change_pte({hva:#x}) = {:?}", vm.change_pte(Hva(hva)))
        }
        _ => {
            let hva = slot_hva(id, page);
            format!("hva_to_pfn({hva:#x}) = {:?}", vm.hva_to_pfn(Hva(hva)))
        }
    }
}

/// A configuration's name and the VM configuration.
fn configs() -> Vec<(&'static str, Config)> {
    let model = Config::model();
    let mut wider = Config::model();
    wider.spte_count = 4;
    wider.levels = 3;
    wider.batch = 3;
    wider.commit = ZapCommit::AtEnd;
    wider.desc_capacity = 3;
    let mut small_ebr = Config::model();
    small_ebr.reclaim = ReclaimBackend::small(4);
    small_ebr.gen_bits = 1;
    vec![
        ("model", model),
        ("wider", wider),
        ("model-small-ebr-1bit", small_ebr),
    ]
}

const STEPS: usize = 1_500;

/// The transcript of every configuration's run. In the checking build,
/// panics if a violation was recorded: the builds agree only where none is.
fn transcript() -> String {
    let mut out = String::new();
    for (seed, (name, config)) in configs().into_iter().enumerate() {
        out.push_str(&format!("== {name}\n"));
        let vm = Vm::new(config).expect("valid config");
        let mut rng = Rng(0x5eed_0000 + seed as u64 * 0x9E37_79B9 + 1);
        for n in 0..STEPS {
            let line = step(&vm, &mut rng);
            out.push_str(&format!("{n}: {line}\n"));
            if n % 50 == 49 {
                out.push_str(&format!(
                    "{n}: state pages={} slots={} mmu_valid_gen={} memslots {}\n",
                    vm.shadow_pages(),
                    vm.slot_count(),
                    vm.mmu_valid_gen(),
                    memslots(&vm)
                ));
            }
            #[cfg(feature = "ghost")]
            {
                let found = vm.runtime_violations();
                assert!(found.is_empty(), "{name}, step {n} ({line}): {found:?}");
            }
        }
        #[cfg(feature = "ghost")]
        assert_eq!(
            fastzap::check::audit(&vm),
            Ok(()),
            "{name}: the audit at the end"
        );
    }
    out
}

/// The first line where `actual` differs from `expected`: (line number from
/// 1, expected line, actual line).
fn first_difference(expected: &str, actual: &str) -> Option<(usize, String, String)> {
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for n in 1.. {
        match (e.next(), a.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                let show = |l: Option<&str>| l.unwrap_or("<end of transcript>").to_string();
                return Some((n, show(x), show(y)));
            }
        }
    }
    unreachable!()
}

#[test]
fn both_builds_give_the_golden_transcript() {
    let actual = transcript();
    let build = if cfg!(feature = "ghost") {
        "checking"
    } else {
        "protocol-only"
    };
    if std::env::var_os("FASTZAP_BLESS").is_some() {
        std::fs::write(GOLDEN, &actual).expect("write the golden transcript");
        println!("wrote {GOLDEN} from the {build} build");
        return;
    }
    let expected = std::fs::read_to_string(GOLDEN).expect("the golden transcript");
    assert!(
        expected.lines().count() > 3 * STEPS,
        "the golden transcript is too short to check anything"
    );
    if let Some((line, want, got)) = first_difference(&expected, &actual) {
        panic!(
            "the {build} build differs from {GOLDEN} at line {line}:\n  golden: {want}\n  this build: {got}\n\
             (FASTZAP_BLESS=1 rewrites the file; it must then pass in both builds)"
        );
    }
}

/// The transcript exercises what it claims: every kind of operation, and
/// successes as well as errors and retries.
#[test]
fn the_transcript_covers_every_operation() {
    let text = std::fs::read_to_string(GOLDEN).expect("the golden transcript");
    for needle in [
        "page_fault(",
        "Ok(Mapped",
        "Ok(Retry(",
        "Ok(Mmio)",
        "translate(",
        "translate_run(",
        "claimed(",
        "handle_requests(",
        "reloaded: true",
        "root = Ok(Some(",
        "create_memslot(",
        "SeedV3Deferred) = Ok(())",
        "Merged311) = Ok(())",
        "SeedV3) = Ok(())",
        "move_memslot(",
        "invalidate_zap_all_pages() = Ok(pages_at_start=",
        "zap_all() = Ok(",
        "shrink(",
        "invalidate_range(",
        "clear_flush_young(",
        "test_young(",
        "change_pte(",
        "Err(",
    ] {
        assert!(
            text.contains(needle),
            "the golden transcript never has {needle:?}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.contains("invalidate_zap_all_pages() = Ok(") && !l.contains(" zapped=0 ")),
        "no fast zap ever zapped a page"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("change_pte(") && !l.ends_with("= Ok(0)") && l.contains("Ok(")),
        "change_pte never changed an spte"
    );
}

/// The comparison can fail: one changed line is found and named.
#[test]
fn a_changed_transcript_line_is_detected() {
    let golden = std::fs::read_to_string(GOLDEN).expect("the golden transcript");
    let mut lines: Vec<&str> = golden.lines().collect();
    let at = lines.len() / 2;
    let changed = format!("{} (changed)", lines[at]);
    lines[at] = &changed;
    let tampered = lines.join("\n") + "\n";
    assert_eq!(
        first_difference(&golden, &tampered),
        Some((
            at + 1,
            golden.lines().nth(at).expect("line").to_string(),
            changed.clone()
        ))
    );
    let shorter: String = golden.lines().take(at).map(|l| format!("{l}\n")).collect();
    assert_eq!(
        first_difference(&golden, &shorter).map(|d| d.0),
        Some(at + 1)
    );
    assert_eq!(first_difference(&golden, &golden), None);
}
