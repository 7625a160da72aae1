use super::*;
use crate::config::Config;
use crate::ghost::Ghost;

fn slot(id: u16, base_gfn: u64, npages: u64, hva: u64) -> Memslot {
    let ghost = Ghost::new(&Config::native());
    Memslot {
        id: SlotId(id),
        base_gfn,
        npages,
        userspace_addr: hva,
        flags: 0,
        rmap: Arc::new(Rmap::new(npages as usize, 4, false, ghost)),
        lpage_info: Arc::new(LpageInfo::new(base_gfn, npages, 9)),
    }
}

/// The host index holds a copy of each slot: an INVALID flag set on the
/// slot shows in a host-range query too, the generation before keeps its
/// unflagged slot, and a removed slot leaves both indexes.
#[test]
fn host_index_copy_follows_the_flags() {
    let mut a = Memslots::default();
    a.insert(slot(0, 0, 4, 0x10_000));
    a.insert(slot(1, 4, 4, 0x10_000 + 4 * PAGE_SIZE));
    let b = a.next(|m| m.set_flags(SlotId(1), SLOT_INVALID));
    let hva = 0x10_000 + 5 * PAGE_SIZE;
    let hits = b.in_hva_range(hva, hva + PAGE_SIZE);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, SlotId(1));
    assert!(hits[0].is_invalid());
    assert!(b.search(5).is_some_and(Memslot::is_invalid));
    assert!(!a.in_hva_range(hva, hva + PAGE_SIZE)[0].is_invalid());
    let c = b.next(|m| {
        m.remove(SlotId(1));
    });
    assert!(c.in_hva_range(hva, hva + PAGE_SIZE).is_empty());
    assert!(c.search(5).is_none());
    assert_eq!(c.in_hva_range(0x10_000, hva + PAGE_SIZE).len(), 1);
}
