//! Segment and system descriptors (SDM Vol. 3A §3.4.5, §5.8, §6.11, §7.2).
//!
//! A descriptor is 8 bytes in the GDT/LDT/IDT. Read it as a little-endian
//! `u64`; the bit layout is then:
//!
//! | bits   | field                         |
//! |--------|-------------------------------|
//! | 0..16  | limit 15:0                    |
//! | 16..40 | base 23:0                     |
//! | 40..44 | type                          |
//! | 44     | S (1 = code/data, 0 = system) |
//! | 45..47 | DPL                           |
//! | 47     | P                             |
//! | 48..52 | limit 19:16                   |
//! | 52     | AVL                           |
//! | 53     | L (64-bit code; reserved here)|
//! | 54     | D/B                           |
//! | 55     | G                             |
//! | 56..64 | base 31:24                    |
//!
//! Gates reuse the same 8 bytes with a different meaning (see [`Gate`]).

use crate::selector::Selector;

/// Type-nibble bit values for code/data descriptors (S = 1).
pub mod types {
    /// Accessed (set by the CPU when the descriptor is loaded).
    pub const ACCESSED: u8 = 1 << 0;
    /// Data: writable. Code: readable.
    pub const WRITE_READ: u8 = 1 << 1;
    /// Data: expand-down. Code: conforming.
    pub const EXPAND_CONFORM: u8 = 1 << 2;
    /// Code (1) or data (0).
    pub const CODE: u8 = 1 << 3;

    /// Read-only data.
    pub const DATA_RO: u8 = 0x0;
    /// Read/write data.
    pub const DATA_RW: u8 = 0x2;
    /// Read-only expand-down data.
    pub const DATA_RO_DOWN: u8 = 0x4;
    /// Read/write expand-down data (typical 16-bit stack).
    pub const DATA_RW_DOWN: u8 = 0x6;
    /// Execute-only code.
    pub const CODE_XO: u8 = 0x8;
    /// Execute/read code.
    pub const CODE_XR: u8 = 0xA;
    /// Execute-only conforming code.
    pub const CODE_XO_CONFORMING: u8 = 0xC;
    /// Execute/read conforming code.
    pub const CODE_XR_CONFORMING: u8 = 0xE;
}

/// Raw bit of the accessed flag in the 64-bit descriptor.
pub const ACCESSED_BIT: u64 = 1 << 40;
/// Raw bit distinguishing busy from available TSS descriptors (type bit 1).
/// Task switches toggle exactly this bit in the GDT copy.
pub const TSS_BUSY_BIT: u64 = 1 << 41;

/// A decoded 8-byte descriptor. Conversion with [`Descriptor::from_raw`] /
/// [`Descriptor::to_raw`] is lossless for every `u64`, so the monitor can
/// edit fields and write the exact bytes back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Descriptor {
    /// Segment base (32 bits).
    pub base: u32,
    /// Raw 20-bit limit as stored (interpretation depends on `granularity`).
    pub limit_raw: u32,
    /// G: limit is in 4 KiB units.
    pub granularity: bool,
    /// Type nibble (bits 40..44).
    pub typ: u8,
    /// S: code/data (true) or system (false).
    pub s: bool,
    /// Descriptor privilege level 0..=3.
    pub dpl: u8,
    /// P: segment present.
    pub present: bool,
    /// AVL: available to software.
    pub avl: bool,
    /// L: 64-bit code (reserved in legacy protected mode).
    pub l: bool,
    /// D/B: default operand size / big stack / expand-down upper bound.
    pub db: bool,
}

impl Descriptor {
    /// Decodes a descriptor from its little-endian 64-bit value.
    pub const fn from_raw(raw: u64) -> Self {
        let base = ((raw >> 16) & 0xFF_FFFF) as u32 | (((raw >> 56) & 0xFF) as u32) << 24;
        let limit_raw = (raw & 0xFFFF) as u32 | (((raw >> 48) & 0xF) as u32) << 16;
        Descriptor {
            base,
            limit_raw,
            granularity: raw & (1 << 55) != 0,
            typ: ((raw >> 40) & 0xF) as u8,
            s: raw & (1 << 44) != 0,
            dpl: ((raw >> 45) & 3) as u8,
            present: raw & (1 << 47) != 0,
            avl: raw & (1 << 52) != 0,
            l: raw & (1 << 53) != 0,
            db: raw & (1 << 54) != 0,
        }
    }

    /// Decodes from the 8 bytes as they appear in memory.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self::from_raw(u64::from_le_bytes(bytes))
    }

    /// Encodes back to the little-endian 64-bit value. Out-of-range field
    /// values (limit > 20 bits, typ > 4 bits, dpl > 2 bits) are truncated.
    pub const fn to_raw(&self) -> u64 {
        let base = self.base as u64;
        let limit = self.limit_raw as u64;
        (limit & 0xFFFF)
            | (base & 0xFF_FFFF) << 16
            | ((self.typ & 0xF) as u64) << 40
            | (self.s as u64) << 44
            | ((self.dpl & 3) as u64) << 45
            | (self.present as u64) << 47
            | ((limit >> 16) & 0xF) << 48
            | (self.avl as u64) << 52
            | (self.l as u64) << 53
            | (self.db as u64) << 54
            | (self.granularity as u64) << 55
            | ((base >> 24) & 0xFF) << 56
    }

    /// Encodes to the 8 bytes as they appear in memory.
    pub const fn to_bytes(&self) -> [u8; 8] {
        self.to_raw().to_le_bytes()
    }

    /// Convenience constructor for a present code/data descriptor.
    pub const fn new_segment(
        base: u32,
        limit_raw: u32,
        granularity: bool,
        typ: u8,
        dpl: u8,
        db: bool,
    ) -> Self {
        Descriptor {
            base,
            limit_raw: limit_raw & 0xF_FFFF,
            granularity,
            typ: typ & 0xF,
            s: true,
            dpl: dpl & 3,
            present: true,
            avl: false,
            l: false,
            db,
        }
    }

    /// Convenience constructor for a present system segment (LDT/TSS);
    /// byte-granular, D/B clear.
    pub const fn new_system(kind: SystemKind, base: u32, limit_raw: u32, dpl: u8) -> Self {
        Descriptor {
            base,
            limit_raw: limit_raw & 0xF_FFFF,
            granularity: false,
            typ: kind.type_bits(),
            s: false,
            dpl: dpl & 3,
            present: true,
            avl: false,
            l: false,
            db: false,
        }
    }

    /// Effective byte limit: with G=1 the raw limit counts 4 KiB pages and the
    /// low 12 bits of the byte limit read as ones.
    pub const fn limit(&self) -> u32 {
        let raw = self.limit_raw & 0xF_FFFF;
        if self.granularity {
            (raw << 12) | 0xFFF
        } else {
            raw
        }
    }

    /// Highest valid offset of an expand-down segment (B selects 4 GiB vs
    /// 64 KiB). Also the natural wrap point for stack pointer width.
    pub const fn upper_bound(&self) -> u32 {
        if self.db {
            0xFFFF_FFFF
        } else {
            0xFFFF
        }
    }

    /// Code segment (S=1, type bit 3 set).
    pub const fn is_code(&self) -> bool {
        self.s && self.typ & types::CODE != 0
    }

    /// Data segment (S=1, type bit 3 clear).
    pub const fn is_data(&self) -> bool {
        self.s && self.typ & types::CODE == 0
    }

    /// System descriptor (LDT, TSS, gates): S=0.
    pub const fn is_system(&self) -> bool {
        !self.s
    }

    /// Readable: any data segment, or code with the R bit. This is what the
    /// CPU requires to load DS/ES/FS/GS and to read through CS.
    pub const fn readable(&self) -> bool {
        self.is_data() || (self.is_code() && self.typ & types::WRITE_READ != 0)
    }

    /// Writable data segment (code is never writable).
    pub const fn writable(&self) -> bool {
        self.is_data() && self.typ & types::WRITE_READ != 0
    }

    /// Conforming code segment.
    pub const fn conforming(&self) -> bool {
        self.is_code() && self.typ & types::EXPAND_CONFORM != 0
    }

    /// Expand-down data segment.
    pub const fn expand_down(&self) -> bool {
        self.is_data() && self.typ & types::EXPAND_CONFORM != 0
    }

    /// Accessed bit of a code/data segment (false for system descriptors,
    /// where bit 0 of the type is part of the kind).
    pub const fn accessed(&self) -> bool {
        self.s && self.typ & types::ACCESSED != 0
    }

    /// Raw value with the accessed bit set, i.e. what the CPU writes back on
    /// a segment load. System descriptors are returned unchanged because
    /// their type bit 0 is not an accessed flag.
    pub const fn with_accessed(&self) -> u64 {
        let raw = self.to_raw();
        if self.s {
            raw | ACCESSED_BIT
        } else {
            raw
        }
    }

    /// The system descriptor kind, or `None` for code/data.
    pub const fn system_kind(&self) -> Option<SystemKind> {
        if self.s {
            None
        } else {
            Some(SystemKind::from_type(self.typ))
        }
    }

    /// Gate view, or `None` if this is not a call/interrupt/trap/task gate.
    pub const fn gate(&self) -> Option<Gate> {
        Gate::from_raw(self.to_raw())
    }

    /// Segment limit check for an access of `size` bytes at `offset`
    /// (SDM §5.3). Every byte must be valid:
    ///
    /// * expand-up: `offset + size - 1 <= limit()`;
    /// * expand-down: `offset > limit()` and `offset + size - 1 <= upper_bound()`.
    ///
    /// Arithmetic is done in 64 bits, so an access that would wrap past
    /// 4 GiB is rejected instead of aliasing low offsets. `size == 0` is
    /// checked like `size == 1` (no real access is empty, and this keeps a
    /// zero-length probe from vacuously passing).
    pub const fn contains(&self, offset: u32, size: u32) -> bool {
        let size = if size == 0 { 1 } else { size as u64 };
        let first = offset as u64;
        let last = first + size - 1;
        let limit = self.limit() as u64;
        if self.expand_down() {
            first > limit && last <= self.upper_bound() as u64
        } else {
            last <= limit
        }
    }
}

impl From<u64> for Descriptor {
    fn from(raw: u64) -> Self {
        Descriptor::from_raw(raw)
    }
}

impl From<Descriptor> for u64 {
    fn from(d: Descriptor) -> Self {
        d.to_raw()
    }
}

/// Legacy (non-IA-32e) system descriptor types, SDM Table 3-2.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SystemKind {
    /// 1: available 16-bit TSS.
    Tss16Avail,
    /// 2: LDT.
    Ldt,
    /// 3: busy 16-bit TSS.
    Tss16Busy,
    /// 4: 16-bit call gate.
    CallGate16,
    /// 5: task gate.
    TaskGate,
    /// 6: 16-bit interrupt gate.
    IntGate16,
    /// 7: 16-bit trap gate.
    TrapGate16,
    /// 9: available 32-bit TSS.
    Tss32Avail,
    /// 11: busy 32-bit TSS.
    Tss32Busy,
    /// 12: 32-bit call gate.
    CallGate32,
    /// 14: 32-bit interrupt gate.
    IntGate32,
    /// 15: 32-bit trap gate.
    TrapGate32,
    /// 0, 8, 10, 13: reserved; loading such a descriptor faults.
    Reserved(u8),
}

impl SystemKind {
    /// Decodes the 4-bit type field of a system descriptor.
    pub const fn from_type(typ: u8) -> Self {
        match typ & 0xF {
            0x1 => SystemKind::Tss16Avail,
            0x2 => SystemKind::Ldt,
            0x3 => SystemKind::Tss16Busy,
            0x4 => SystemKind::CallGate16,
            0x5 => SystemKind::TaskGate,
            0x6 => SystemKind::IntGate16,
            0x7 => SystemKind::TrapGate16,
            0x9 => SystemKind::Tss32Avail,
            0xB => SystemKind::Tss32Busy,
            0xC => SystemKind::CallGate32,
            0xE => SystemKind::IntGate32,
            0xF => SystemKind::TrapGate32,
            t => SystemKind::Reserved(t),
        }
    }

    /// The 4-bit type field value.
    pub const fn type_bits(self) -> u8 {
        match self {
            SystemKind::Tss16Avail => 0x1,
            SystemKind::Ldt => 0x2,
            SystemKind::Tss16Busy => 0x3,
            SystemKind::CallGate16 => 0x4,
            SystemKind::TaskGate => 0x5,
            SystemKind::IntGate16 => 0x6,
            SystemKind::TrapGate16 => 0x7,
            SystemKind::Tss32Avail => 0x9,
            SystemKind::Tss32Busy => 0xB,
            SystemKind::CallGate32 => 0xC,
            SystemKind::IntGate32 => 0xE,
            SystemKind::TrapGate32 => 0xF,
            SystemKind::Reserved(t) => t & 0xF,
        }
    }

    /// Any TSS (16/32-bit, available or busy).
    pub const fn is_tss(self) -> bool {
        matches!(
            self,
            SystemKind::Tss16Avail
                | SystemKind::Tss16Busy
                | SystemKind::Tss32Avail
                | SystemKind::Tss32Busy
        )
    }

    /// Busy TSS.
    pub const fn is_busy_tss(self) -> bool {
        matches!(self, SystemKind::Tss16Busy | SystemKind::Tss32Busy)
    }

    /// Call, task, interrupt or trap gate.
    pub const fn is_gate(self) -> bool {
        self.gate_kind().is_some()
    }

    /// Gate kind, if this type is a gate.
    pub const fn gate_kind(self) -> Option<GateKind> {
        match self {
            SystemKind::CallGate16 | SystemKind::CallGate32 => Some(GateKind::Call),
            SystemKind::TaskGate => Some(GateKind::Task),
            SystemKind::IntGate16 | SystemKind::IntGate32 => Some(GateKind::Interrupt),
            SystemKind::TrapGate16 | SystemKind::TrapGate32 => Some(GateKind::Trap),
            _ => None,
        }
    }
}

/// What a gate transfers control through.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GateKind {
    /// Call gate (GDT/LDT; far CALL/JMP).
    Call,
    /// Interrupt gate (IDT; clears IF on entry).
    Interrupt,
    /// Trap gate (IDT; leaves IF alone).
    Trap,
    /// Task gate (GDT/LDT/IDT; task switch to the TSS selector).
    Task,
}

/// Operand size of a gate: selects 16- vs 32-bit offset, stack pushes and
/// parameter copies.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GateSize {
    /// 16-bit gate (type bit 3 clear).
    Bits16,
    /// 32-bit gate (type bit 3 set).
    Bits32,
}

/// Decoded call/interrupt/trap/task gate.
///
/// Layout: offset 15:0 in bits 0..16, selector in 16..32, parameter count
/// in 32..37 (call gates only), type/S/DPL/P as for segments, offset 31:16
/// in bits 48..64 (32-bit gates only).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Gate {
    /// Gate kind.
    pub kind: GateKind,
    /// Operand size; `None` for task gates (the size comes from the TSS).
    pub size: Option<GateSize>,
    /// Target code segment selector, or the TSS selector for task gates.
    pub selector: Selector,
    /// Entry point offset. 16-bit gates only use bits 15:0 (the CPU ignores
    /// the high word); 0 for task gates, whose offset field is unused.
    pub offset: u32,
    /// Number of stack parameters to copy on a privilege change (call
    /// gates, 5 bits; 0 for other gates). Counted in words for 16-bit gates
    /// and in dwords for 32-bit gates.
    pub param_count: u8,
    /// Gate DPL (checked against CPL for software-initiated transfers).
    pub dpl: u8,
    /// P: gate present.
    pub present: bool,
}

impl Gate {
    /// Decodes a gate; `None` if the descriptor is code/data or a non-gate
    /// system type.
    pub const fn from_raw(raw: u64) -> Option<Gate> {
        if raw & (1 << 44) != 0 {
            return None;
        }
        let sys = SystemKind::from_type(((raw >> 40) & 0xF) as u8);
        let kind = match sys.gate_kind() {
            Some(k) => k,
            None => return None,
        };
        let size = match kind {
            GateKind::Task => None,
            _ if sys.type_bits() & 0x8 != 0 => Some(GateSize::Bits32),
            _ => Some(GateSize::Bits16),
        };
        let low = (raw & 0xFFFF) as u32;
        let high = ((raw >> 48) & 0xFFFF) as u32;
        let offset = match size {
            None => 0,
            Some(GateSize::Bits16) => low,
            Some(GateSize::Bits32) => low | high << 16,
        };
        let param_count = match kind {
            GateKind::Call => ((raw >> 32) & 0x1F) as u8,
            _ => 0,
        };
        Some(Gate {
            kind,
            size,
            selector: Selector(((raw >> 16) & 0xFFFF) as u16),
            offset,
            param_count,
            dpl: ((raw >> 45) & 3) as u8,
            present: raw & (1 << 47) != 0,
        })
    }

    /// The system type this gate encodes as (task gates ignore `size`).
    pub const fn system_kind(&self) -> SystemKind {
        let wide = matches!(self.size, Some(GateSize::Bits32));
        match (self.kind, wide) {
            (GateKind::Task, _) => SystemKind::TaskGate,
            (GateKind::Call, false) => SystemKind::CallGate16,
            (GateKind::Call, true) => SystemKind::CallGate32,
            (GateKind::Interrupt, false) => SystemKind::IntGate16,
            (GateKind::Interrupt, true) => SystemKind::IntGate32,
            (GateKind::Trap, false) => SystemKind::TrapGate16,
            (GateKind::Trap, true) => SystemKind::TrapGate32,
        }
    }

    /// True for 32-bit call/interrupt/trap gates.
    pub const fn is_32bit(&self) -> bool {
        matches!(self.size, Some(GateSize::Bits32))
    }

    /// Encodes the gate (reserved bits zero; a 16-bit gate gets a zero high
    /// offset word, a task gate a zero offset).
    pub const fn to_raw(&self) -> u64 {
        let kind = self.system_kind();
        let offset = match self.size {
            None => 0,
            Some(GateSize::Bits16) => self.offset & 0xFFFF,
            Some(GateSize::Bits32) => self.offset,
        } as u64;
        let params = match self.kind {
            GateKind::Call => (self.param_count & 0x1F) as u64,
            _ => 0,
        };
        (offset & 0xFFFF)
            | (self.selector.0 as u64) << 16
            | params << 32
            | (kind.type_bits() as u64) << 40
            | ((self.dpl & 3) as u64) << 45
            | (self.present as u64) << 47
            | (offset >> 16) << 48
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent encoder for tests (written from the table, not `to_raw`).
    fn enc(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
        let mut b = [0u8; 8];
        b[0] = limit as u8;
        b[1] = (limit >> 8) as u8;
        b[2] = base as u8;
        b[3] = (base >> 8) as u8;
        b[4] = (base >> 16) as u8;
        b[5] = access;
        b[6] = ((limit >> 16) as u8 & 0xF) | (flags << 4);
        b[7] = (base >> 24) as u8;
        u64::from_le_bytes(b)
    }

    #[test]
    fn flat_segments() {
        let code = Descriptor::from_raw(0x00CF_9A00_0000_FFFF);
        assert_eq!(code.base, 0);
        assert_eq!(code.limit_raw, 0xFFFFF);
        assert!(code.granularity);
        assert_eq!(code.limit(), 0xFFFF_FFFF);
        assert!(code.is_code() && !code.is_data() && !code.is_system());
        assert!(code.readable() && !code.writable() && !code.conforming());
        assert!(!code.expand_down() && !code.accessed());
        assert!(code.present && code.db && !code.l && !code.avl);
        assert_eq!(code.dpl, 0);
        assert_eq!(code.typ, types::CODE_XR);

        let data = Descriptor::from_raw(0x00CF_F200_0000_FFFF);
        assert!(data.is_data() && data.writable() && data.readable());
        assert_eq!(data.dpl, 3);
        assert!(data.system_kind().is_none());
        assert!(data.gate().is_none());
    }

    #[test]
    fn field_extraction() {
        // access byte: P=1, DPL=2, S=1, type=0011; flags: G=0 D/B=1 L=1 AVL=1.
        let raw = enc(0x1234_5678, 0xA_BCDE, 0b1101_0011, 0b0111);
        let d = Descriptor::from_raw(raw);
        assert_eq!(d.base, 0x1234_5678);
        assert_eq!(d.limit_raw, 0xA_BCDE);
        assert_eq!(d.typ, 0x3);
        assert!(d.s);
        assert_eq!(d.dpl, 2);
        assert!(d.present);
        assert!(d.avl && d.l && d.db && !d.granularity);
        assert_eq!(d.limit(), 0xA_BCDE);
        assert!(d.accessed() && d.writable());
        assert_eq!(d.to_raw(), raw);
        assert_eq!(Descriptor::from_bytes(raw.to_le_bytes()), d);
        assert_eq!(d.to_bytes(), raw.to_le_bytes());
    }

    #[test]
    fn roundtrip_lossless() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(Descriptor::from_raw(x).to_raw(), x);
            assert_eq!(u64::from(Descriptor::from(x)), x);
        }
        for bit in 0..64 {
            assert_eq!(Descriptor::from_raw(1 << bit).to_raw(), 1 << bit);
        }
    }

    #[test]
    fn granularity() {
        let mut d = Descriptor::new_segment(0, 0, true, types::DATA_RW, 0, true);
        assert_eq!(d.limit(), 0xFFF);
        d.limit_raw = 1;
        assert_eq!(d.limit(), 0x1FFF);
        d.granularity = false;
        assert_eq!(d.limit(), 1);
        d.limit_raw = 0xFFFFF;
        assert_eq!(d.limit(), 0xFFFFF);
    }

    #[test]
    fn type_predicates() {
        let mk = |t| Descriptor::new_segment(0, 0xFFFF, false, t, 0, false);
        let ro = mk(types::DATA_RO);
        assert!(ro.readable() && !ro.writable() && !ro.expand_down());
        let rwd = mk(types::DATA_RW_DOWN);
        assert!(rwd.writable() && rwd.expand_down() && !rwd.conforming());
        let xo = mk(types::CODE_XO);
        assert!(!xo.readable() && !xo.writable() && !xo.conforming() && !xo.expand_down());
        let xrc = mk(types::CODE_XR_CONFORMING);
        assert!(xrc.readable() && xrc.conforming() && !xrc.expand_down());
        let xoc = mk(types::CODE_XO_CONFORMING);
        assert!(!xoc.readable() && xoc.conforming());
        let tss = Descriptor::new_system(SystemKind::Tss32Avail, 0x1000, 0x67, 0);
        assert!(tss.is_system() && !tss.is_code() && !tss.is_data());
        assert!(!tss.readable() && !tss.writable() && !tss.accessed());
        assert_eq!(tss.system_kind(), Some(SystemKind::Tss32Avail));
    }

    #[test]
    fn accessed_bit() {
        let d = Descriptor::new_segment(0x1000, 0xFFFF, false, types::DATA_RW, 3, true);
        assert!(!d.accessed());
        let raw = d.with_accessed();
        assert_eq!(raw, d.to_raw() | ACCESSED_BIT);
        let a = Descriptor::from_raw(raw);
        assert!(a.accessed());
        assert_eq!(a.with_accessed(), raw);
        // System descriptors: bit 40 belongs to the type, leave it alone.
        let ldt = Descriptor::new_system(SystemKind::Ldt, 0, 0xFF, 0);
        assert_eq!(ldt.with_accessed(), ldt.to_raw());
    }

    #[test]
    fn tss_busy_bit() {
        let t = Descriptor::new_system(SystemKind::Tss32Avail, 0, 0x67, 0);
        let busy = Descriptor::from_raw(t.to_raw() | TSS_BUSY_BIT);
        assert_eq!(busy.system_kind(), Some(SystemKind::Tss32Busy));
        assert!(busy.system_kind().unwrap().is_busy_tss());
        let t16 = Descriptor::new_system(SystemKind::Tss16Avail, 0, 0x2B, 0);
        let b16 = Descriptor::from_raw(t16.to_raw() | TSS_BUSY_BIT);
        assert_eq!(b16.system_kind(), Some(SystemKind::Tss16Busy));
    }

    #[test]
    fn system_kinds_all() {
        use SystemKind::*;
        let expect = [
            Reserved(0),
            Tss16Avail,
            Ldt,
            Tss16Busy,
            CallGate16,
            TaskGate,
            IntGate16,
            TrapGate16,
            Reserved(8),
            Tss32Avail,
            Reserved(10),
            Tss32Busy,
            CallGate32,
            Reserved(13),
            IntGate32,
            TrapGate32,
        ];
        for (t, k) in expect.iter().enumerate() {
            assert_eq!(SystemKind::from_type(t as u8), *k);
            assert_eq!(k.type_bits(), t as u8);
            let is_gate = matches!(t, 4..=7 | 0xC | 0xE | 0xF);
            assert_eq!(k.is_gate(), is_gate, "type {t}");
            assert_eq!(k.is_tss(), matches!(t, 1 | 3 | 9 | 0xB));
            let raw = enc(0, 0, 0x80 | t as u8, 0);
            assert_eq!(Descriptor::from_raw(raw).system_kind(), Some(*k));
            assert_eq!(Gate::from_raw(raw).is_some(), is_gate);
        }
    }

    /// Builds a gate from the documented layout.
    fn gate_raw(offset: u32, sel: u16, params: u8, typ: u8, dpl: u8, p: bool) -> u64 {
        (offset as u64 & 0xFFFF)
            | (sel as u64) << 16
            | (params as u64) << 32
            | (typ as u64) << 40
            | (dpl as u64) << 45
            | (p as u64) << 47
            | ((offset as u64) >> 16) << 48
    }

    #[test]
    fn gate_call32() {
        let raw = gate_raw(0xC010_2030, 0x0008, 0x1F, 0xC, 3, true);
        let g = Gate::from_raw(raw).unwrap();
        assert_eq!(g.kind, GateKind::Call);
        assert_eq!(g.size, Some(GateSize::Bits32));
        assert!(g.is_32bit());
        assert_eq!(g.selector, Selector(8));
        assert_eq!(g.offset, 0xC010_2030);
        assert_eq!(g.param_count, 31);
        assert_eq!(g.dpl, 3);
        assert!(g.present);
        assert_eq!(g.to_raw(), raw);
        assert_eq!(g.system_kind(), SystemKind::CallGate32);
        assert_eq!(Descriptor::from_raw(raw).gate(), Some(g));
    }

    #[test]
    fn gate_call16_ignores_high_offset_and_reserved_param_bits() {
        // Bits 37..40 are reserved: param count is only 5 bits.
        let raw = gate_raw(0xDEAD_1234, 0x001B, 0xE5, 0x4, 0, false);
        let g = Gate::from_raw(raw).unwrap();
        assert_eq!(g.kind, GateKind::Call);
        assert_eq!(g.size, Some(GateSize::Bits16));
        assert_eq!(g.offset, 0x1234);
        assert_eq!(g.param_count, 5);
        assert!(!g.present);
        assert_eq!(g.system_kind(), SystemKind::CallGate16);
        assert_eq!(Gate::from_raw(g.to_raw()), Some(g));
    }

    #[test]
    fn gate_interrupt_trap() {
        for (typ, kind, size) in [
            (0x6, GateKind::Interrupt, GateSize::Bits16),
            (0x7, GateKind::Trap, GateSize::Bits16),
            (0xE, GateKind::Interrupt, GateSize::Bits32),
            (0xF, GateKind::Trap, GateSize::Bits32),
        ] {
            // Param bits are meaningless in IDT gates; must read back 0.
            let raw = gate_raw(0x8765_4321, 0x0010, 0x3, typ, 0, true);
            let g = Gate::from_raw(raw).unwrap();
            assert_eq!(g.kind, kind);
            assert_eq!(g.size, Some(size));
            assert_eq!(g.param_count, 0);
            assert_eq!(g.selector, Selector(0x10));
            let want = if size == GateSize::Bits32 {
                0x8765_4321
            } else {
                0x4321
            };
            assert_eq!(g.offset, want);
            assert_eq!(g.system_kind().type_bits(), typ);
            assert_eq!(Gate::from_raw(g.to_raw()), Some(g));
        }
    }

    #[test]
    fn gate_task() {
        let raw = gate_raw(0xFFFF_FFFF, 0x0028, 0, 0x5, 0, true);
        let g = Gate::from_raw(raw).unwrap();
        assert_eq!(g.kind, GateKind::Task);
        assert_eq!(g.size, None);
        assert!(!g.is_32bit());
        assert_eq!(g.offset, 0);
        assert_eq!(g.selector, Selector(0x28));
        assert_eq!(g.to_raw(), gate_raw(0, 0x28, 0, 0x5, 0, true));
    }

    #[test]
    fn gate_rejects_non_gates() {
        // S=1 with type 0xE is execute/read conforming code, not a gate.
        assert!(Gate::from_raw(enc(0, 0, 0x9E, 0)).is_none());
        assert!(Gate::from_raw(enc(0, 0, 0x89, 0)).is_none()); // TSS
        assert!(Gate::from_raw(enc(0, 0, 0x82, 0)).is_none()); // LDT
        assert!(Gate::from_raw(0).is_none());
    }

    #[test]
    fn contains_expand_up() {
        let d = Descriptor::new_segment(0, 0xFF, false, types::DATA_RW, 0, false);
        assert!(d.contains(0, 1));
        assert!(d.contains(0xFF, 1));
        assert!(!d.contains(0x100, 1));
        assert!(d.contains(0xFC, 4));
        assert!(!d.contains(0xFD, 4));
        assert!(d.contains(0, 0x100));
        assert!(!d.contains(0, 0x101));
        assert!(d.contains(0xFF, 0), "size 0 checks like size 1");
        assert!(!d.contains(0x100, 0));
    }

    #[test]
    fn contains_expand_up_no_wrap() {
        let flat = Descriptor::new_segment(0, 0xFFFFF, true, types::DATA_RW, 0, true);
        assert!(flat.contains(0xFFFF_FFFF, 1));
        assert!(flat.contains(0xFFFF_FFFC, 4));
        assert!(!flat.contains(0xFFFF_FFFD, 4), "must not wrap to offset 0");
        assert!(!flat.contains(0xFFFF_FFFF, 2));
        assert!(flat.contains(1, u32::MAX));
        assert!(!flat.contains(2, u32::MAX));
        // B bit does not bound expand-up segments.
        let big16 = Descriptor::new_segment(0, 0xFFFFF, true, types::DATA_RW, 0, false);
        assert!(big16.contains(0x1234_5678, 4));
    }

    #[test]
    fn contains_expand_up_granular() {
        let d = Descriptor::new_segment(0, 0, true, types::CODE_XR, 0, true);
        assert!(d.contains(0xFFF, 1));
        assert!(!d.contains(0x1000, 1));
        assert!(!d.contains(0xFFE, 4));
    }

    #[test]
    fn contains_expand_down_16() {
        let d = Descriptor::new_segment(0, 0x0FFF, false, types::DATA_RW_DOWN, 0, false);
        assert!(!d.contains(0, 1));
        assert!(!d.contains(0x0FFF, 1));
        assert!(d.contains(0x1000, 1));
        assert!(!d.contains(0x0FFE, 4), "straddles the lower bound");
        assert!(d.contains(0xFFFF, 1));
        assert!(d.contains(0xFFFC, 4));
        assert!(!d.contains(0xFFFD, 4), "straddles the 64 KiB upper bound");
        assert!(!d.contains(0x10000, 1));
        assert!(!d.contains(0xFFFF_FFFF, 1));
    }

    #[test]
    fn contains_expand_down_32() {
        let d = Descriptor::new_segment(0, 0x0FFF, false, types::DATA_RW_DOWN, 0, true);
        assert!(d.contains(0x10000, 4));
        assert!(d.contains(0xFFFF_FFFC, 4));
        assert!(d.contains(0xFFFF_FFFF, 1));
        assert!(!d.contains(0xFFFF_FFFD, 4), "no wrap past 4 GiB");
        assert!(!d.contains(0xFFFF_FFFF, 2));
        assert!(!d.contains(0x0FFF, 1));
    }

    #[test]
    fn contains_expand_down_granular_and_empty() {
        // G=1: effective limit 0x0000_1FFF, valid (0x1FFF, 0xFFFFFFFF].
        let d = Descriptor::new_segment(0, 1, true, types::DATA_RO_DOWN, 0, true);
        assert!(!d.contains(0x1FFF, 1));
        assert!(d.contains(0x2000, 1));
        // Limit == upper bound: no valid offsets at all.
        let e = Descriptor::new_segment(0, 0xFFFFF, true, types::DATA_RW_DOWN, 0, true);
        for off in [0, 1, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF] {
            assert!(!e.contains(off, 1));
        }
        let e16 = Descriptor::new_segment(0, 0xFFFF, false, types::DATA_RW_DOWN, 0, false);
        assert!(!e16.contains(0xFFFF, 1));
        // 16-bit expand-down whose limit exceeds 64 KiB is empty too.
        let e16g = Descriptor::new_segment(0, 0x10, true, types::DATA_RW_DOWN, 0, false);
        assert!(!e16g.contains(0xFFFF, 1));
        assert!(!e16g.contains(0x20000, 1));
    }

    #[test]
    fn contains_exhaustive_small() {
        // Brute-force against a per-byte definition on a scaled-down space.
        for lim in [0u32, 1, 0x7FFE, 0xFFFE, 0xFFFF] {
            for down in [false, true] {
                let t = if down {
                    types::DATA_RW_DOWN
                } else {
                    types::DATA_RW
                };
                let d = Descriptor::new_segment(0, lim, false, t, 0, false);
                for off in (0xFFF0..=0x1_0004u32).chain(lim.saturating_sub(4)..lim + 4) {
                    for size in [1u32, 2, 4] {
                        let want = (0..size).all(|i| {
                            let o = off as u64 + i as u64;
                            if down {
                                o > lim as u64 && o <= 0xFFFF
                            } else {
                                o <= lim as u64
                            }
                        });
                        assert_eq!(
                            d.contains(off, size),
                            want,
                            "lim={lim:#x} down={down} off={off:#x} size={size}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn upper_bound() {
        let mut d = Descriptor::default();
        assert_eq!(d.upper_bound(), 0xFFFF);
        d.db = true;
        assert_eq!(d.upper_bound(), 0xFFFF_FFFF);
    }
}
