//! Inline segment loads: the table that translated MOV Sreg / POP Sreg (DS, ES, FS, GS at
//! guest CPL0) read through CS, in the translation cache's data area.
//!
//! An entry caches what the interpreter found when it last loaded a guest selector at a
//! CPL: where the descriptor lives (its linear address), its 8 bytes as they were after
//! the load (accessed bit set) and the host shadow selector of the result. A translated
//! load indexes the table by the selector's low byte, compares the tag, re-reads the
//! descriptor from guest memory through the host mapping and compares both dwords with the
//! entry; only if everything matches does it load the host selector. Otherwise it exits to
//! the interpreter, which performs the load with every check and refills the entry. The
//! monitor learns the guest's segment registers back from the host selectors at the next
//! exit (`Vm::enter`).
//!
//! So a hit is exactly a load the interpreter would make: the descriptor is the same, its
//! accessed bit is already set (no write is due), and the checks that depend on anything
//! else (GDTR/LDTR base and limit, the shadow slot's content) are covered by flushing the
//! table when those change. Comparisons are flag-free (LEA + JECXZ): entries hold negated
//! values.

/// Entries, indexed by the selector's low byte (RPL, TI and index bits 0..4).
pub const ENTRIES: usize = 256;
pub const ENTRY_BYTES: usize = 32;
pub const TABLE_BYTES: usize = ENTRIES * ENTRY_BYTES;

/// Offsets inside an entry.
/// -(selector | CPL << 16); `EMPTY_TAG` never matches (a selector is below 2^16).
pub const TAG: usize = 0;
/// Linear address of the descriptor to compare (a null selector's entry points at its own
/// zero dwords at `NULL_DESC`).
pub const LIN: usize = 4;
/// -(low dword), -(high dword) of the descriptor.
pub const NLO: usize = 8;
pub const NHI: usize = 12;
/// Host selector to load (zero-extended).
pub const HOST: usize = 16;
pub const NULL_DESC: usize = 24;

pub const EMPTY_TAG: u32 = 1;

/// The entry a selector uses.
pub fn index(sel: u16) -> usize {
    (sel & 0xFF) as usize
}

/// The tag of (selector, CPL).
pub fn tag(sel: u16, cpl: u8) -> u32 {
    (sel as u32 | (cpl as u32) << 16).wrapping_neg()
}

/// The bytes of an entry. `desc` is the descriptor's (linear address, raw bytes), None for
/// a null selector; `entry_host` is the entry's own host address.
pub fn encode(sel: u16, cpl: u8, desc: Option<(u32, u64)>, host_sel: u16, entry_host: u32) -> [u8; ENTRY_BYTES] {
    let mut e = [0u8; ENTRY_BYTES];
    let (lin, raw) = desc.unwrap_or((entry_host + NULL_DESC as u32, 0));
    let mut put = |at: usize, v: u32| e[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(TAG, tag(sel, cpl));
    put(LIN, lin);
    put(NLO, (raw as u32).wrapping_neg());
    put(NHI, ((raw >> 32) as u32).wrapping_neg());
    put(HOST, host_sel as u32);
    e
}

/// An empty entry.
pub fn empty() -> [u8; ENTRY_BYTES] {
    let mut e = [0u8; ENTRY_BYTES];
    e[TAG..TAG + 4].copy_from_slice(&EMPTY_TAG.to_le_bytes());
    e
}

/// What the translated sequence computes (a model for tests): the host selector it loads,
/// or None for a miss. `read` gives the dword at a linear address.
pub fn probe(table: &[u8], sel: u16, cpl: u8, read: impl Fn(u32) -> u32) -> Option<u16> {
    let e = &table[index(sel) * ENTRY_BYTES..][..ENTRY_BYTES];
    let d = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().unwrap());
    // lea (cpl << 16)(%ecx,%edx),%ecx; jecxz
    if (sel as u32).wrapping_add((cpl as u32) << 16).wrapping_add(d(TAG)) != 0 {
        return None;
    }
    let lin = d(LIN);
    if read(lin).wrapping_add(d(NLO)) != 0 || read(lin.wrapping_add(4)).wrapping_add(d(NHI)) != 0 {
        return None;
    }
    Some(d(HOST) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fill = (u16, u8, Option<(u32, u64)>, u16);

    fn table_with(entries: &[Fill]) -> Vec<u8> {
        let mut t: Vec<u8> = (0..ENTRIES).flat_map(|_| empty()).collect();
        for &(sel, cpl, desc, host) in entries {
            let at = index(sel) * ENTRY_BYTES;
            let e = encode(sel, cpl, desc, host, 0x1000 + at as u32);
            t[at..at + ENTRY_BYTES].copy_from_slice(&e);
        }
        t
    }

    /// Guest memory with a GDT at 0x10000 and the table's own bytes at 0x1000.
    fn reader<'a>(gdt: &'a [u64], table: &'a [u8]) -> impl Fn(u32) -> u32 + 'a {
        move |lin| {
            if (0x1000..0x1000 + TABLE_BYTES as u32).contains(&lin) {
                let o = (lin - 0x1000) as usize;
                return u32::from_le_bytes(table[o..o + 4].try_into().unwrap());
            }
            let o = (lin - 0x10000) as usize;
            let q = gdt[o / 8];
            if o.is_multiple_of(8) { q as u32 } else { (q >> 32) as u32 }
        }
    }

    const KDS: u64 = 0x00CF_9300_0000_FFFF; // flat data, DPL0, accessed
    const UDS: u64 = 0x00CF_F300_0000_FFFF; // flat data, DPL3, accessed

    #[test]
    fn hit_only_for_the_same_selector_cpl_and_descriptor() {
        let mut gdt = vec![0u64; 32];
        gdt[13] = KDS;
        gdt[15] = UDS;
        let t = table_with(&[(0x68, 0, Some((0x10000 + 13 * 8, KDS)), 0x1F), (0x7B, 0, Some((0x10000 + 15 * 8, UDS)), 0x27)]);
        assert_eq!(probe(&t, 0x68, 0, reader(&gdt, &t)), Some(0x1F));
        assert_eq!(probe(&t, 0x7B, 0, reader(&gdt, &t)), Some(0x27));
        // Another CPL, RPL or table indicator misses.
        assert_eq!(probe(&t, 0x68, 3, reader(&gdt, &t)), None);
        assert_eq!(probe(&t, 0x6B, 0, reader(&gdt, &t)), None);
        assert_eq!(probe(&t, 0x6C, 0, reader(&gdt, &t)), None);
        // A selector with the same low byte (another index beyond 31) misses on the tag.
        assert_eq!(probe(&t, 0x168, 0, reader(&gdt, &t)), None);
    }

    #[test]
    fn a_changed_descriptor_or_a_cleared_accessed_bit_misses() {
        let mut gdt = vec![0u64; 32];
        gdt[13] = KDS;
        let t = table_with(&[(0x68, 0, Some((0x10000 + 13 * 8, KDS)), 0x1F)]);
        gdt[13] = KDS & !(1 << 40);
        assert_eq!(probe(&t, 0x68, 0, reader(&gdt, &t)), None, "A=0: the load must write it");
        gdt[13] = KDS & !(1 << 47);
        assert_eq!(probe(&t, 0x68, 0, reader(&gdt, &t)), None, "not present");
        gdt[13] = KDS ^ 0xFFFF;
        assert_eq!(probe(&t, 0x68, 0, reader(&gdt, &t)), None, "limit changed");
        gdt[13] = KDS;
        assert_eq!(probe(&t, 0x68, 0, reader(&gdt, &t)), Some(0x1F));
    }

    #[test]
    fn null_selectors_compare_against_the_entry_itself() {
        let gdt = vec![0u64; 32];
        let t = table_with(&[(0, 0, None, 0), (3, 0, None, 3)]);
        assert_eq!(probe(&t, 0, 0, reader(&gdt, &t)), Some(0));
        assert_eq!(probe(&t, 3, 0, reader(&gdt, &t)), Some(3));
        assert_eq!(probe(&t, 1, 0, reader(&gdt, &t)), None);
    }

    #[test]
    fn empty_entries_never_match() {
        let gdt = vec![0u64; 32];
        let t = table_with(&[]);
        for sel in [0u16, 1, 0xFF, 0xFFFF] {
            for cpl in 0..4 {
                assert_eq!(probe(&t, sel, cpl, reader(&gdt, &t)), None);
            }
        }
    }
}
