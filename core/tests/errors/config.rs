//! `InvalidConfig`: one case per rule of `Config::validate` and `Vm::new`,
//! each with the typed `ConfigError` that names the offending values.

use super::*;
use fastzap::checking::sync::reclaim::{BackendError, Reclaimer};

#[test]
fn invalid_config_each_rule() {
    type Edit = fn(&mut Config);
    let cases: &[(&str, Edit, ConfigError, &str)] = &[
        (
            "vcpus 0",
            |c| c.vcpus = 0,
            ConfigError::Vcpus { vcpus: 0 },
            "vcpus must be 1 to 64, not 0",
        ),
        (
            "vcpus 65",
            |c| c.vcpus = 65,
            ConfigError::Vcpus { vcpus: 65 },
            "vcpus must be 1 to 64, not 65",
        ),
        (
            "spte_count 1",
            |c| c.spte_count = 1,
            ConfigError::SpteCount { spte_count: 1 },
            "spte_count must be a power of two from 2 to 4096, not 1",
        ),
        (
            "spte_count 3",
            |c| c.spte_count = 3,
            ConfigError::SpteCount { spte_count: 3 },
            "spte_count must be a power of two from 2 to 4096, not 3",
        ),
        (
            "spte_count 8192",
            |c| c.spte_count = 8192,
            ConfigError::SpteCount { spte_count: 8192 },
            "spte_count must be a power of two from 2 to 4096, not 8192",
        ),
        (
            "levels 0",
            |c| c.levels = 0,
            ConfigError::Levels { levels: 0 },
            "levels must be 1 to 8, not 0",
        ),
        (
            "levels 9",
            |c| c.levels = 9,
            ConfigError::Levels { levels: 9 },
            "levels must be 1 to 8, not 9",
        ),
        (
            "2^48 gfns",
            |c| {
                c.spte_count = 4096;
                c.levels = 4;
            },
            ConfigError::GfnSpace {
                spte_count: 4096,
                levels: 4,
            },
            "spte_count ^ levels must not exceed 2^40 gfns, not 4096^4",
        ),
        (
            "2^48 gfns, 8 levels",
            |c| {
                c.spte_count = 64; // 6 bits * 8 levels = 48 bits
                c.levels = 8;
            },
            ConfigError::GfnSpace {
                spte_count: 64,
                levels: 8,
            },
            "spte_count ^ levels must not exceed 2^40 gfns, not 64^8",
        ),
        (
            "address_spaces 0",
            |c| c.address_spaces = 0,
            ConfigError::AddressSpaces { address_spaces: 0 },
            "address_spaces must be 1 or 2, not 0",
        ),
        (
            "address_spaces 3",
            |c| c.address_spaces = 3,
            ConfigError::AddressSpaces { address_spaces: 3 },
            "address_spaces must be 1 or 2, not 3",
        ),
        (
            "gen_bits 0",
            |c| c.gen_bits = 0,
            ConfigError::GenBits { gen_bits: 0 },
            "gen_bits must be 1 to 63, not 0",
        ),
        (
            "gen_bits 64",
            |c| c.gen_bits = 64,
            ConfigError::GenBits { gen_bits: 64 },
            "gen_bits must be 1 to 63, not 64",
        ),
        (
            "mmio_gen_bits 0",
            |c| c.mmio_gen_bits = 0,
            ConfigError::MmioGenBits { mmio_gen_bits: 0 },
            "mmio_gen_bits must be 1 to 20, not 0",
        ),
        (
            "mmio_gen_bits 21",
            |c| c.mmio_gen_bits = 21,
            ConfigError::MmioGenBits { mmio_gen_bits: 21 },
            "mmio_gen_bits must be 1 to 20, not 21",
        ),
        (
            "batch 0",
            |c| c.batch = 0,
            ConfigError::Batch { batch: 0 },
            "batch must be at least 1, not 0",
        ),
        (
            "desc_capacity 1",
            |c| c.desc_capacity = 1,
            ConfigError::DescCapacity { desc_capacity: 1 },
            "desc_capacity must be 2 to 16, not 1",
        ),
        (
            "desc_capacity 17",
            |c| c.desc_capacity = 17,
            ConfigError::DescCapacity { desc_capacity: 17 },
            "desc_capacity must be 2 to 16, not 17",
        ),
        (
            "tdp with the 2019 delete",
            |c| {
                c.mmu = Mmu::Tdp;
                c.deletion = DeletionStrategy::SlotOnly2019;
            },
            ConfigError::Deletion {
                mmu: Mmu::Tdp,
                deletion: DeletionStrategy::SlotOnly2019,
            },
            "the tdp MMU has no deletion strategy SlotOnly2019",
        ),
        (
            "small EBR, 0 slots",
            |c| c.reclaim = ReclaimBackend::small(0),
            ConfigError::ReclaimSlots { slots: 0 },
            "the small EBR needs 1 to 1024 participant slots, not 0",
        ),
        (
            "small EBR, too many slots",
            |c| c.reclaim = ReclaimBackend::small(ConfigError::MAX_RECLAIM_SLOTS + 1),
            ConfigError::ReclaimSlots { slots: 1025 },
            "the small EBR needs 1 to 1024 participant slots, not 1025",
        ),
    ];
    for base in [Config::model(), Config::native()] {
        for (name, edit, want, text) in cases {
            let mut cfg = base.clone();
            edit(&mut cfg);
            let want = MmuError::InvalidConfig(*want);
            assert_eq!(cfg.validate(), Err(want), "{name}");
            assert_eq!(Vm::new(cfg).err(), Some(want), "{name}");
            assert_eq!(
                want.to_string(),
                format!("invalid configuration: {text}"),
                "{name}"
            );
        }
    }
}

#[test]
fn valid_config_boundaries_are_accepted() {
    type Edit = fn(&mut Config);
    let cases: &[(&str, Edit)] = &[
        ("vcpus 1", |c| c.vcpus = 1),
        ("vcpus 64", |c| c.vcpus = 64),
        ("levels 1", |c| c.levels = 1),
        ("2^40 gfns", |c| {
            c.spte_count = 32;
            c.levels = 8;
        }),
        ("spte_count 4096", |c| {
            c.spte_count = 4096;
            c.levels = 1;
        }),
        ("address_spaces 1", |c| c.address_spaces = 1),
        ("gen_bits 1", |c| c.gen_bits = 1),
        ("gen_bits 63", |c| c.gen_bits = 63),
        ("mmio_gen_bits 1", |c| c.mmio_gen_bits = 1),
        ("mmio_gen_bits 20", |c| c.mmio_gen_bits = 20),
        ("batch 1", |c| c.batch = 1),
        ("desc_capacity 2", |c| c.desc_capacity = 2),
        ("desc_capacity 16", |c| c.desc_capacity = 16),
        ("small EBR, 1 slot", |c| {
            c.reclaim = ReclaimBackend::small(1)
        }),
        ("small EBR, most slots", |c| {
            c.reclaim = ReclaimBackend::small(ConfigError::MAX_RECLAIM_SLOTS)
        }),
    ];
    for (name, edit) in cases {
        let mut cfg = Config::model();
        edit(&mut cfg);
        assert_eq!(cfg.validate(), Ok(()), "{name}");
        let vm = Vm::new(cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        enter_all(&vm);
        assert_audit(&vm);
    }
}

/// `ReclaimBackend::small(0)` used to become one slot silently: now the
/// reclaimer refuses it, as `Vm::new` does, and one slot still works.
#[test]
fn a_small_ebr_with_no_slot_is_refused_not_rounded_up() {
    assert_eq!(
        Reclaimer::new(ReclaimBackend::small(0)).err(),
        Some(BackendError::NoSlots)
    );
    let one = Reclaimer::new(ReclaimBackend::small(1)).expect("one slot");
    drop(one.pin());
    one.synchronize();
}

#[test]
fn config_errors_display_and_convert() {
    let e = ConfigError::Levels { levels: 0 };
    assert_eq!(MmuError::from(e), MmuError::InvalidConfig(e));
    let as_dyn: &dyn std::error::Error = &e;
    assert_eq!(as_dyn.to_string(), "levels must be 1 to 8, not 0");
    let unavailable = ConfigError::ReclaimUnavailable {
        backend: ReclaimBackend::Crossbeam,
    };
    assert_eq!(
        unavailable.to_string(),
        "crossbeam-epoch is not available in this lane"
    );
}
