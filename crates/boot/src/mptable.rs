//! Intel MultiProcessor Specification 1.4 tables for a one-CPU PC: see [`build_mp_table`].
//!
//! Without ACPI, this is how a guest (Linux with `CONFIG_X86_MPPARSE`) learns that there
//! is a local APIC and an IOAPIC and how the ISA interrupts are wired to it. The
//! configuration described:
//!
//! * one processor, local APIC ID [`MP_CPU_APIC_ID`], version [`MP_LAPIC_VERSION`],
//!   enabled, bootstrap processor; local APICs at [`MP_LAPIC_ADDR`];
//! * one bus, ISA, ID [`MP_ISA_BUS_ID`];
//! * one IOAPIC, ID [`MP_IOAPIC_ID`], version [`MP_IOAPIC_VERSION`], at [`MP_IOAPIC_ADDR`];
//! * ISA IRQ 0 -> IOAPIC pin 2, IRQs 1 and 3..=15 -> the same pin number, IRQ 2 (the
//!   8259 cascade) absent ([`isa_irq_to_ioapic_pin`]); polarity and trigger "conforms to
//!   the bus" (ISA: active high, edge);
//! * LINT0 = ExtINT (the 8259 in virtual wire mode), LINT1 = NMI, on all local APICs.
//!
//! The floating pointer says "no IMCR" (feature byte 2 bit 7 clear), i.e. the system
//! starts in virtual wire mode, not PIC mode.
//!
//! # Placement
//!
//! Linux looks for the `_MP_` floating pointer on 16-byte boundaries in the first KiB of
//! the EBDA, the last KiB of base memory (0x9FC00 with 639 KiB) and the BIOS ROM area
//! 0xF0000-0xFFFFF. Put the table at [`MP_TABLE_DEFAULT_BASE`] (0xF0000) or at 0x9FC00;
//! both lie in ranges the default e820 map (`linux::default_e820`) marks reserved, which
//! is required so that the kernel does not reuse the memory. The whole table is
//! [`MP_TABLE_SIZE`] bytes.

/// Suggested guest-physical address of the tables (start of the BIOS area).
pub const MP_TABLE_DEFAULT_BASE: u32 = 0xF_0000;
/// Physical address of the local APIC registers.
pub const MP_LAPIC_ADDR: u32 = 0xFEE0_0000;
/// Physical address of the IOAPIC registers.
pub const MP_IOAPIC_ADDR: u32 = 0xFEC0_0000;
/// Local APIC ID of the (only) processor.
pub const MP_CPU_APIC_ID: u8 = 0;
/// Local APIC version reported for the processor (matches the APIC's version register).
pub const MP_LAPIC_VERSION: u8 = 0x14;
/// IOAPIC ID (must differ from every local APIC ID; the device model must use it too).
pub const MP_IOAPIC_ID: u8 = 1;
/// IOAPIC version (matches IOAPICVER).
pub const MP_IOAPIC_VERSION: u8 = 0x11;
/// Bus ID of the ISA bus.
pub const MP_ISA_BUS_ID: u8 = 0;
/// Total size of what [`build_mp_table`] returns.
pub const MP_TABLE_SIZE: usize = FLOATING_LEN
    + HEADER_LEN
    + PROCESSOR_LEN
    + 2 * ENTRY_LEN
    + ENTRY_LEN * ISA_IRQ_ENTRIES
    + 2 * ENTRY_LEN;

const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;
const PROCESSOR_LEN: usize = 20;
/// Bus, IOAPIC, I/O interrupt and local interrupt entries are all 8 bytes.
const ENTRY_LEN: usize = 8;
/// ISA IRQs 0..=15 minus the cascade.
const ISA_IRQ_ENTRIES: usize = 15;

const SPEC_REV_1_4: u8 = 4;
const OEM_ID: &[u8; 8] = b"RINGFOLD";
const PRODUCT_ID: &[u8; 12] = b"RINGFOLD VM ";

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
/// Interrupt flags: polarity and trigger mode both "conforms to the bus".
const FLAGS_CONFORMS: u16 = 0;

const CPU_ENABLED: u8 = 1 << 0;
const CPU_BSP: u8 = 1 << 1;
const IOAPIC_ENABLED: u8 = 1 << 0;
/// Destination "all local APICs" in a local interrupt entry.
const ALL_LAPICS: u8 = 0xFF;

/// The IOAPIC input ISA `irq` is wired to in the table: pin 2 for IRQ 0, none for the
/// cascade IRQ 2 and for numbers above 15, the identity otherwise.
pub fn isa_irq_to_ioapic_pin(irq: u8) -> Option<u8> {
    match irq {
        0 => Some(2),
        2 | 16.. => None,
        n => Some(n),
    }
}

/// Two's complement of the byte sum, so that the whole structure sums to 0.
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |s, b| s.wrapping_add(*b))
        .wrapping_neg()
}

/// Builds the MP floating pointer structure followed by the MP configuration table, as
/// bytes to copy to guest-physical `base` (see the module documentation for where).
/// `cpu_signature` is CPUID leaf 1 EAX (stepping, model, family) and `cpu_features`
/// CPUID leaf 1 EDX of the virtual CPU; the latter should include the APIC bit (9),
/// which the guest checks anyway through CPUID.
///
/// # Panics
///
/// If `base` is not 16-byte aligned (the floating pointer must be, or it is never found)
/// or the table would extend past 4 GiB.
pub fn build_mp_table(base: u32, cpu_signature: u32, cpu_features: u32) -> Vec<u8> {
    assert!(
        base.is_multiple_of(16),
        "MP floating pointer at {base:#x} is not 16-byte aligned"
    );
    assert!(
        u64::from(base) + MP_TABLE_SIZE as u64 <= 1 << 32,
        "MP table at {base:#x} crosses 4 GiB"
    );

    // --- Configuration table entries, in the order the spec requires (by type) ---
    let mut entries = Vec::with_capacity(MP_TABLE_SIZE - FLOATING_LEN - HEADER_LEN);
    let mut count: u16 = 0;

    entries.extend_from_slice(&[
        ENTRY_PROCESSOR,
        MP_CPU_APIC_ID,
        MP_LAPIC_VERSION,
        CPU_ENABLED | CPU_BSP,
    ]);
    entries.extend_from_slice(&cpu_signature.to_le_bytes());
    entries.extend_from_slice(&cpu_features.to_le_bytes());
    entries.extend_from_slice(&[0; 8]);
    count += 1;

    entries.extend_from_slice(&[ENTRY_BUS, MP_ISA_BUS_ID]);
    entries.extend_from_slice(b"ISA   "); // bus type string, space padded
    count += 1;

    entries.extend_from_slice(&[
        ENTRY_IOAPIC,
        MP_IOAPIC_ID,
        MP_IOAPIC_VERSION,
        IOAPIC_ENABLED,
    ]);
    entries.extend_from_slice(&MP_IOAPIC_ADDR.to_le_bytes());
    count += 1;

    for irq in 0..16u8 {
        if let Some(pin) = isa_irq_to_ioapic_pin(irq) {
            entries.extend_from_slice(&[ENTRY_IO_INTERRUPT, INT_TYPE_INT]);
            entries.extend_from_slice(&FLAGS_CONFORMS.to_le_bytes());
            entries.extend_from_slice(&[MP_ISA_BUS_ID, irq, MP_IOAPIC_ID, pin]);
            count += 1;
        }
    }

    for (int_type, lint) in [(INT_TYPE_EXTINT, 0u8), (INT_TYPE_NMI, 1)] {
        entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, int_type]);
        entries.extend_from_slice(&FLAGS_CONFORMS.to_le_bytes());
        entries.extend_from_slice(&[MP_ISA_BUS_ID, 0, ALL_LAPICS, lint]);
        count += 1;
    }

    // --- Configuration table header ---
    let table_len = HEADER_LEN + entries.len();
    let mut table = Vec::with_capacity(table_len);
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&(table_len as u16).to_le_bytes()); // base table length
    table.push(SPEC_REV_1_4);
    table.push(0); // checksum, below
    table.extend_from_slice(OEM_ID);
    table.extend_from_slice(PRODUCT_ID);
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer: none
    table.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&MP_LAPIC_ADDR.to_le_bytes());
    table.extend_from_slice(&0u16.to_le_bytes()); // extended table length: none
    table.push(0); // extended table checksum
    table.push(0); // reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    // --- Floating pointer, with the table right behind it ---
    let mut out = Vec::with_capacity(MP_TABLE_SIZE);
    out.extend_from_slice(b"_MP_");
    out.extend_from_slice(&(base + FLOATING_LEN as u32).to_le_bytes());
    out.push(1); // length in 16-byte paragraphs
    out.push(SPEC_REV_1_4);
    out.push(0); // checksum, below
    out.push(0); // feature 1: a configuration table is present (no default config)
    out.push(0); // feature 2: bit 7 clear = no IMCR, virtual wire mode
    out.extend_from_slice(&[0; 3]); // features 3-5
    out[10] = checksum(&out);
    out.extend_from_slice(&table);
    debug_assert_eq!(out.len(), MP_TABLE_SIZE);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }

    /// An independent reader: finds the floating pointer the way Linux scans memory
    /// (16-byte steps in a physical window), follows its pointer and splits the entries.
    /// Returns (entry type, entry bytes) pairs.
    fn parse(mem: &[u8], mem_base: u32) -> Vec<(u8, Vec<u8>)> {
        let fp = (0..mem.len())
            .step_by(16)
            .find(|&o| mem[o..].starts_with(b"_MP_"))
            .expect("floating pointer");
        let f = &mem[fp..fp + 16];
        assert_eq!(f[8], 1, "length in paragraphs");
        assert_eq!(f[9], 4, "spec revision 1.4");
        assert_eq!(sum(f), 0, "floating pointer checksum");
        assert_eq!(f[11], 0, "not a default configuration");
        let t = (u32_at(f, 4) - mem_base) as usize;
        assert_eq!(&mem[t..t + 4], b"PCMP");
        let len = usize::from(u16_at(mem, t + 4));
        let table = &mem[t..t + len];
        assert_eq!(table[6], 4);
        assert_eq!(sum(table), 0, "configuration table checksum");
        assert_eq!(u32_at(table, 36), 0xFEE0_0000);
        assert_eq!(u16_at(table, 40), 0, "no extended table");
        let count = u16_at(table, 34);
        let mut entries = Vec::new();
        let mut o = 44;
        while o < len {
            let ty = table[o];
            let elen = match ty {
                0 => 20,
                1..=4 => 8,
                _ => panic!("unknown entry type {ty}"),
            };
            entries.push((ty, table[o..o + elen].to_vec()));
            o += elen;
        }
        assert_eq!(o, len, "entries end exactly at the table end");
        assert_eq!(entries.len(), usize::from(count), "entry count");
        entries
    }

    #[test]
    fn tables_parse_back() {
        // Place it inside a copy of the BIOS area, at an offset, and scan for it.
        let base = MP_TABLE_DEFAULT_BASE;
        let bytes = build_mp_table(base + 0x100, 0xF48, 0x0781_ABFF);
        assert_eq!(bytes.len(), MP_TABLE_SIZE);
        let mut mem = vec![0u8; 0x1_0000];
        mem[0x100..0x100 + bytes.len()].copy_from_slice(&bytes);
        let entries = parse(&mem, base);

        let types: Vec<u8> = entries.iter().map(|(t, _)| *t).collect();
        let mut sorted = types.clone();
        sorted.sort();
        assert_eq!(types, sorted, "entries sorted by type");
        assert_eq!(types.iter().filter(|&&t| t == 0).count(), 1);
        assert_eq!(types.iter().filter(|&&t| t == 3).count(), 15);
        assert_eq!(types.iter().filter(|&&t| t == 4).count(), 2);

        let cpu = &entries[0].1;
        assert_eq!(cpu[1], 0, "APIC ID");
        assert_eq!(cpu[2], 0x14);
        assert_eq!(cpu[3], 3, "enabled + BSP");
        assert_eq!(u32_at(cpu, 4), 0xF48);
        assert_eq!(u32_at(cpu, 8), 0x0781_ABFF);

        let bus = &entries[1].1;
        assert_eq!(&bus[2..8], b"ISA   ");
        let bus_id = bus[1];

        let ioapic = &entries[2].1;
        assert_eq!((ioapic[1], ioapic[2], ioapic[3]), (1, 0x11, 1));
        assert_eq!(u32_at(ioapic, 4), 0xFEC0_0000);
        let ioapic_id = ioapic[1];
        assert_ne!(ioapic_id, cpu[1]);

        let mut pins = [None; 16];
        for (_, e) in entries.iter().filter(|(t, _)| *t == 3) {
            assert_eq!(e[1], 0, "INT");
            assert_eq!(u16_at(e, 2), 0, "conforms");
            assert_eq!(e[4], bus_id);
            assert_eq!(e[6], ioapic_id);
            assert!(
                pins[usize::from(e[5])].replace(e[7]).is_none(),
                "IRQ listed once"
            );
        }
        assert_eq!(pins[0], Some(2), "IRQ0 -> pin 2");
        assert_eq!(pins[2], None, "cascade omitted");
        for irq in [1, 3, 4, 8, 14, 15] {
            assert_eq!(pins[irq], Some(irq as u8));
        }

        let lint: Vec<(u8, u8, u8)> = entries
            .iter()
            .filter(|(t, _)| *t == 4)
            .map(|(_, e)| (e[1], e[6], e[7]))
            .collect();
        assert_eq!(
            lint,
            vec![(3, 0xFF, 0), (1, 0xFF, 1)],
            "LINT0 ExtINT, LINT1 NMI"
        );
    }

    #[test]
    fn pointer_follows_base() {
        let bytes = build_mp_table(0x9_FC00, 0, 0);
        assert_eq!(u32_at(&bytes, 4), 0x9_FC10);
        assert_eq!(&bytes[16..20], b"PCMP");
        assert_eq!(sum(&bytes[..16]), 0);
    }

    #[test]
    fn irq_mapping() {
        assert_eq!(isa_irq_to_ioapic_pin(0), Some(2));
        assert_eq!(isa_irq_to_ioapic_pin(1), Some(1));
        assert_eq!(isa_irq_to_ioapic_pin(2), None);
        assert_eq!(isa_irq_to_ioapic_pin(15), Some(15));
        assert_eq!(isa_irq_to_ioapic_pin(16), None);
    }

    #[test]
    fn default_base_is_reserved_in_the_default_e820_map() {
        // `ringfold run` writes the table there for Linux, which must not reuse the memory.
        use crate::linux::{default_e820, E820_RESERVED};
        let (start, end) = (
            u64::from(MP_TABLE_DEFAULT_BASE),
            u64::from(MP_TABLE_DEFAULT_BASE) + MP_TABLE_SIZE as u64,
        );
        for ram in [2u64 << 20, 128 << 20, 3072 << 20] {
            assert!(
                default_e820(ram)
                    .iter()
                    .any(|e| e.typ == E820_RESERVED && e.addr <= start && end <= e.addr + e.size),
                "{ram:#x}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "16-byte aligned")]
    fn misaligned_base_panics() {
        build_mp_table(0xF_0008, 0, 0);
    }
}
