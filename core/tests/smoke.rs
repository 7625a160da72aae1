#![cfg(all(feature = "ghost", not(any(loom, shuttle))))]
use fastzap::*;

fn slot(id: u16, base: u64, n: u64) -> SlotSpec {
    SlotSpec {
        id: SlotId(id),
        base_gfn: Gfn(base),
        npages: n,
        userspace_addr: Hva(0x10_0000 * (id as u64 + 1)),
    }
}

#[test]
fn smoke() {
    for strategy in [DeletionStrategy::Merged311, DeletionStrategy::SeedV3] {
        let mut cfg = Config::model();
        cfg.spte_count = 4;
        cfg.deletion = strategy;
        let vm = Vm::new(cfg).unwrap();
        vm.create_memslot(slot(0, 0, 8)).unwrap();
        vm.create_memslot(slot(1, 8, 4)).unwrap();
        let v0 = VcpuId(0);
        vm.handle_requests(v0).unwrap();
        vm.handle_requests(VcpuId(1)).unwrap();
        for gfn in 0..14 {
            let f = vm.page_fault(v0, Gfn(gfn), gfn % 2 == 0).unwrap();
            println!("fault {gfn}: {f:?}");
        }
        for gfn in 0..14 {
            println!("translate {gfn}: {:?}", vm.translate(v0, Gfn(gfn)).unwrap());
        }
        fastzap::check::audit(&vm).unwrap();
        println!("{:?}", vm.counts());
        vm.invalidate_zap_all_pages().unwrap();
        assert_eq!(
            vm.translate(v0, Gfn(1)).unwrap(),
            Translation::RequestPending
        );
        println!("{:?}", vm.handle_requests(v0).unwrap());
        println!("pending {:?}", vm.pending_requests(v0));
        for e in vm.events().iter().rev().take(12) {
            println!("{:?}", e);
        }
        assert_eq!(vm.translate(v0, Gfn(1)).unwrap(), Translation::Miss);
        fastzap::check::audit(&vm).unwrap();
        vm.page_fault(v0, Gfn(1), true).unwrap();
        vm.page_fault(VcpuId(1), Gfn(9), true)
            .unwrap_or(Fault::Mmio);
        vm.invalidate_range(Hva(0x10_0000), Hva(0x10_2000)).unwrap();
        vm.handle_requests(VcpuId(1)).unwrap();
        vm.handle_requests(v0).unwrap();
        assert_eq!(vm.translate(v0, Gfn(1)).unwrap(), Translation::Miss);
        for gfn in 0..12 {
            vm.page_fault(v0, Gfn(gfn), false).unwrap();
        }
        vm.clear_flush_young(Hva(0x10_0000), Hva(0x30_0000))
            .unwrap();
        vm.delete_memslot(SlotId(1)).unwrap();
        vm.handle_requests(v0).unwrap();
        vm.handle_requests(VcpuId(1)).unwrap();
        fastzap::check::audit(&vm).unwrap();
        vm.move_memslot(SlotId(0), Gfn(4)).unwrap();
        vm.handle_requests(v0).unwrap();
        for gfn in 0..14 {
            vm.page_fault(v0, Gfn(gfn), false).unwrap();
        }
        vm.zap_all().unwrap();
        vm.shrink(10).unwrap();
        vm.handle_requests(v0).unwrap();
        vm.handle_requests(VcpuId(1)).unwrap();
        fastzap::check::audit(&vm).unwrap();
        assert!(vm.drain(16));
        println!("{:?}\n{} events", vm.counts(), vm.events().len());
    }
}
