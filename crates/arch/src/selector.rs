//! Segment selectors (SDM Vol. 3A §3.4.2).
//!
//! Layout: bits 0..=1 RPL, bit 2 TI (0 = GDT, 1 = LDT), bits 3..=15 index.

use core::fmt;

/// A 16-bit segment selector as loaded into a segment register.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Selector(pub u16);

impl Selector {
    /// The canonical null selector (GDT index 0, RPL 0).
    pub const NULL: Selector = Selector(0);

    const TI: u16 = 1 << 2;
    const RPL_MASK: u16 = 3;

    /// Builds a selector from its parts. `index` is truncated to 13 bits and
    /// `rpl` to 2 bits, mirroring what fits in the hardware encoding.
    pub const fn new(index: u16, ti_ldt: bool, rpl: u8) -> Self {
        Selector(((index & 0x1FFF) << 3) | if ti_ldt { Self::TI } else { 0 } | (rpl as u16 & 3))
    }

    /// The raw 16-bit value.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Descriptor table index (bits 3..=15).
    pub const fn index(self) -> u16 {
        self.0 >> 3
    }

    /// True if the selector refers to the LDT (TI = 1).
    pub const fn ti_ldt(self) -> bool {
        self.0 & Self::TI != 0
    }

    /// Requested privilege level.
    pub const fn rpl(self) -> u8 {
        (self.0 & Self::RPL_MASK) as u8
    }

    /// Null selector test: index 0 in the GDT. The RPL is ignored because the
    /// CPU treats 0..=3 all as null (e.g. a CPL3 OS may load selector 3).
    /// Index 0 with TI=1 is a real LDT entry and is *not* null.
    pub const fn is_null(self) -> bool {
        self.0 & !Self::RPL_MASK == 0
    }

    /// Same selector with the RPL replaced (used when the monitor adjusts
    /// privilege for ring compression, or for ARPL-like operations).
    pub const fn with_rpl(self, rpl: u8) -> Self {
        Selector((self.0 & !Self::RPL_MASK) | (rpl as u16 & 3))
    }

    /// Byte offset of the descriptor within its table (`index * 8`).
    pub const fn table_offset(self) -> u32 {
        (self.index() as u32) << 3
    }

    /// Offset of the last byte of the descriptor (`index * 8 + 7`); the
    /// selector is within a table iff this is `<=` the table limit.
    pub const fn last_byte_offset(self) -> u32 {
        self.table_offset() + 7
    }
}

impl From<u16> for Selector {
    fn from(v: u16) -> Self {
        Selector(v)
    }
}

impl From<Selector> for u16 {
    fn from(s: Selector) -> Self {
        s.0
    }
}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Selector({:#06x}: {}[{}] rpl{})",
            self.0,
            if self.ti_ldt() { "LDT" } else { "GDT" },
            self.index(),
            self.rpl()
        )
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let s = Selector(0x002B); // index 5, GDT, RPL 3
        assert_eq!(s.index(), 5);
        assert!(!s.ti_ldt());
        assert_eq!(s.rpl(), 3);
        assert!(!s.is_null());
        let l = Selector(0x000F); // index 1, LDT, RPL 3
        assert_eq!(l.index(), 1);
        assert!(l.ti_ldt());
        assert_eq!(l.rpl(), 3);
        assert_eq!(Selector(0xFFFF).index(), 0x1FFF);
    }

    #[test]
    fn construct_roundtrip() {
        for raw in 0..=u16::MAX {
            let s = Selector(raw);
            assert_eq!(Selector::new(s.index(), s.ti_ldt(), s.rpl()), s);
        }
        assert_eq!(Selector::new(2, false, 0), Selector(0x10));
        assert_eq!(Selector::new(0xFFFF, true, 7), Selector(0xFFFF));
    }

    #[test]
    fn null_any_rpl() {
        for rpl in 0..4 {
            assert!(Selector(rpl).is_null());
            assert!(!Selector(4 | rpl).is_null(), "LDT index 0 is not null");
            assert!(!Selector(8 | rpl).is_null());
        }
        assert!(Selector::NULL.is_null());
        assert!(Selector::default().is_null());
    }

    #[test]
    fn with_rpl() {
        let s = Selector(0x0010);
        assert_eq!(s.with_rpl(3), Selector(0x0013));
        assert_eq!(Selector(0x0017).with_rpl(1), Selector(0x0015));
        assert_eq!(s.with_rpl(7).rpl(), 3);
        assert!(Selector(0).with_rpl(3).is_null());
    }

    #[test]
    fn offsets_and_conversions() {
        let s = Selector(0x001B);
        assert_eq!(s.table_offset(), 0x18);
        assert_eq!(s.last_byte_offset(), 0x1F);
        assert_eq!(Selector(0xFFF8).last_byte_offset(), 0xFFFF);
        assert_eq!(u16::from(s), 0x1B);
        assert_eq!(Selector::from(0x1Bu16), s);
        assert_eq!(format!("{s}"), "0x001b");
        assert!(format!("{s:?}").contains("GDT[3] rpl3"));
    }
}
