//! Task-state segment layout (SDM Vol. 3A §8.2) and the I/O permission
//! bitmap check (SDM Vol. 1 §19.5).
//!
//! Offsets are byte offsets from the TSS base, for use with guest memory
//! accessors.

/// Previous task link (16-bit selector).
pub const PREV_LINK: u32 = 0;
/// Ring-0 stack pointer.
pub const ESP0: u32 = 4;
/// Ring-0 stack segment.
pub const SS0: u32 = 8;
/// Ring-1 stack pointer.
pub const ESP1: u32 = 12;
/// Ring-1 stack segment.
pub const SS1: u32 = 16;
/// Ring-2 stack pointer.
pub const ESP2: u32 = 20;
/// Ring-2 stack segment.
pub const SS2: u32 = 24;
/// Page directory base.
pub const CR3: u32 = 28;
/// Instruction pointer.
pub const EIP: u32 = 32;
/// Flags.
pub const EFLAGS: u32 = 36;
/// General-purpose registers, in encoding order.
pub const EAX: u32 = 40;
/// ECX.
pub const ECX: u32 = 44;
/// EDX.
pub const EDX: u32 = 48;
/// EBX.
pub const EBX: u32 = 52;
/// ESP.
pub const ESP: u32 = 56;
/// EBP.
pub const EBP: u32 = 60;
/// ESI.
pub const ESI: u32 = 64;
/// EDI.
pub const EDI: u32 = 68;
/// ES selector.
pub const ES: u32 = 72;
/// CS selector.
pub const CS: u32 = 76;
/// SS selector.
pub const SS: u32 = 80;
/// DS selector.
pub const DS: u32 = 84;
/// FS selector.
pub const FS: u32 = 88;
/// GS selector.
pub const GS: u32 = 92;
/// LDT selector.
pub const LDT: u32 = 96;
/// Word containing the debug trap flag (bit 0).
pub const T_FLAG: u32 = 100;
/// I/O map base address (16-bit, relative to the TSS base).
pub const IO_MAP_BASE: u32 = 102;
/// Size of the 32-bit TSS without I/O map.
pub const SIZE: u32 = 104;
/// Minimum limit of a 32-bit TSS; task switches to a smaller one raise #TS.
pub const MIN_LIMIT: u32 = SIZE - 1;

/// Offset of the stack pointer for privilege level `cpl` (0..=2).
pub const fn esp_offset(cpl: u8) -> u32 {
    ESP0 + 8 * cpl as u32
}

/// Offset of the stack segment for privilege level `cpl` (0..=2).
pub const fn ss_offset(cpl: u8) -> u32 {
    SS0 + 8 * cpl as u32
}

/// Offset of general register `reg` in encoding order (0 = EAX .. 7 = EDI).
pub const fn gpr_offset(reg: u8) -> u32 {
    EAX + 4 * (reg & 7) as u32
}

/// Offset of segment register `sreg` in encoding order
/// (0 = ES, 1 = CS, 2 = SS, 3 = DS, 4 = FS, 5 = GS).
pub const fn sreg_offset(sreg: u8) -> u32 {
    ES + 4 * sreg as u32
}

/// The 16-bit (286) TSS layout; all fields are 16 bits.
pub mod tss16 {
    /// Previous task link.
    pub const PREV_LINK: u32 = 0;
    /// Ring-0 SP.
    pub const SP0: u32 = 2;
    /// Ring-0 SS.
    pub const SS0: u32 = 4;
    /// Ring-1 SP.
    pub const SP1: u32 = 6;
    /// Ring-1 SS.
    pub const SS1: u32 = 8;
    /// Ring-2 SP.
    pub const SP2: u32 = 10;
    /// Ring-2 SS.
    pub const SS2: u32 = 12;
    /// IP.
    pub const IP: u32 = 14;
    /// FLAGS.
    pub const FLAGS: u32 = 16;
    /// AX; CX, DX, BX, SP, BP, SI, DI follow every 2 bytes.
    pub const AX: u32 = 18;
    /// DI.
    pub const DI: u32 = 32;
    /// ES.
    pub const ES: u32 = 34;
    /// CS.
    pub const CS: u32 = 36;
    /// SS.
    pub const SS: u32 = 38;
    /// DS.
    pub const DS: u32 = 40;
    /// LDT selector.
    pub const LDT: u32 = 42;
    /// Size in bytes.
    pub const SIZE: u32 = 44;
    /// Minimum limit; task switches to a smaller one raise #TS.
    pub const MIN_LIMIT: u32 = SIZE - 1;

    /// Offset of general register `reg` in encoding order (0 = AX .. 7 = DI).
    pub const fn gpr_offset(reg: u8) -> u32 {
        AX + 2 * (reg & 7) as u32
    }
}

/// Reads the I/O map base, or `None` if bytes 102..=103 are beyond
/// `tss_limit` or unreadable.
pub fn io_map_base(tss_limit: u32, read_byte: impl Fn(u32) -> Option<u8>) -> Option<u16> {
    let lo = read_tss_byte(tss_limit, &read_byte, IO_MAP_BASE)?;
    let hi = read_tss_byte(tss_limit, &read_byte, IO_MAP_BASE + 1)?;
    Some(u16::from_le_bytes([lo, hi]))
}

fn read_tss_byte(tss_limit: u32, read_byte: &impl Fn(u32) -> Option<u8>, off: u32) -> Option<u8> {
    if off > tss_limit {
        None
    } else {
        read_byte(off)
    }
}

/// I/O permission bitmap check, used when CPL > IOPL (or in V86 mode).
///
/// `read_byte(off)` returns the TSS byte at `off` from the TSS base, or
/// `None` if it cannot be read; the limit check against `tss_limit` (the
/// byte limit of the TR descriptor) is done here. Access is allowed iff all
/// `width` bits starting at bit `port` of the bitmap are 0.
///
/// Like the hardware, this always fetches the two bytes at
/// `io_map_base + port / 8` (a port range may straddle a byte), and any
/// byte beyond the limit denies access. This is why a TSS needs a trailing
/// 0xFF byte after the bitmap, and why a map base `>= tss_limit` means "no
/// bitmap, deny everything". Offsets are computed in 32 bits, so a map
/// base near 0xFFFF cannot wrap.
///
/// `width` must be 1, 2 or 4; any other value is denied.
pub fn io_allowed(
    tss_limit: u32,
    read_byte: impl Fn(u32) -> Option<u8>,
    port: u16,
    width: u8,
) -> bool {
    if !matches!(width, 1 | 2 | 4) {
        return false;
    }
    let Some(base) = io_map_base(tss_limit, &read_byte) else {
        return false;
    };
    let off = base as u32 + (port as u32 >> 3);
    let (Some(lo), Some(hi)) = (
        read_tss_byte(tss_limit, &read_byte, off),
        read_tss_byte(tss_limit, &read_byte, off + 1),
    ) else {
        return false;
    };
    let bits = u16::from_le_bytes([lo, hi]);
    let mask = ((1u16 << width) - 1) << (port & 7);
    bits & mask == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(
            [PREV_LINK, ESP0, SS0, ESP1, SS1, ESP2, SS2, CR3, EIP, EFLAGS],
            [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]
        );
        assert_eq!(
            [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI],
            [40, 44, 48, 52, 56, 60, 64, 68]
        );
        assert_eq!(
            [ES, CS, SS, DS, FS, GS, LDT, T_FLAG, IO_MAP_BASE],
            [72, 76, 80, 84, 88, 92, 96, 100, 102]
        );
        assert_eq!(MIN_LIMIT, 0x67);
        assert_eq!((esp_offset(0), ss_offset(0)), (ESP0, SS0));
        assert_eq!((esp_offset(2), ss_offset(2)), (ESP2, SS2));
        assert_eq!(gpr_offset(7), EDI);
        assert_eq!(sreg_offset(5), GS);
        assert_eq!(sreg_offset(1), CS);
        assert_eq!(tss16::gpr_offset(7), tss16::DI);
        assert_eq!(tss16::MIN_LIMIT, 0x2B);
    }

    /// A TSS image: 104-byte header, bitmap at `base`, limit = len - 1.
    struct Tss(Vec<u8>);

    impl Tss {
        fn new(map_base: u16, bitmap: &[u8]) -> Self {
            let mut v = vec![0u8; (map_base as usize).max(SIZE as usize)];
            v[102..104].copy_from_slice(&map_base.to_le_bytes());
            v.extend_from_slice(bitmap);
            Tss(v)
        }
        fn limit(&self) -> u32 {
            self.0.len() as u32 - 1
        }
        fn reader(&self) -> impl Fn(u32) -> Option<u8> + '_ {
            |o| self.0.get(o as usize).copied()
        }
        fn allowed(&self, port: u16, width: u8) -> bool {
            io_allowed(self.limit(), self.reader(), port, width)
        }
    }

    #[test]
    fn full_bitmap() {
        // Ports 0x60 and 0x64 allowed, everything else denied.
        let mut map = vec![0xFFu8; 8192 + 1];
        map[0x60 / 8] &= !(1 << (0x60 % 8));
        map[0x64 / 8] &= !(1 << (0x64 % 8));
        let t = Tss::new(104, &map);
        assert_eq!(io_map_base(t.limit(), t.reader()), Some(104));
        assert!(t.allowed(0x60, 1));
        assert!(t.allowed(0x64, 1));
        assert!(!t.allowed(0x61, 1));
        assert!(!t.allowed(0x60, 2), "second port denied");
        assert!(!t.allowed(0xFFFF, 1));
    }

    #[test]
    fn multi_byte_straddle() {
        let mut map = vec![0xFFu8; 8192 + 1];
        // Allow ports 0x1E..=0x21 (straddles bytes 3 and 4).
        for p in 0x1Eu16..=0x21 {
            map[p as usize / 8] &= !(1 << (p % 8));
        }
        let t = Tss::new(0x100, &map);
        assert!(t.allowed(0x1E, 4));
        assert!(t.allowed(0x1F, 2));
        assert!(t.allowed(0x20, 2));
        assert!(!t.allowed(0x1D, 4));
        assert!(!t.allowed(0x1F, 4));
        assert!(!t.allowed(0x21, 2));
    }

    #[test]
    fn all_zero_map_allows_everything_with_trailer() {
        let mut map = vec![0u8; 8192];
        map.push(0xFF);
        let t = Tss::new(104, &map);
        assert!(t.allowed(0, 4));
        assert!(t.allowed(0xFFF8, 4));
        assert!(t.allowed(0xFFFF, 1));
        // Port 0xFFFF, width 2 touches bit 0 of the trailer byte.
        assert!(!t.allowed(0xFFFF, 2));
        assert!(!t.allowed(0xFFFE, 4));
    }

    #[test]
    fn beyond_limit_denied() {
        // Bitmap covers only ports 0..=15 (2 bytes of zeros) -> limit ends there.
        let t = Tss::new(104, &[0, 0]);
        assert!(t.allowed(0, 1));
        assert!(t.allowed(7, 1));
        // Port 8..15 live in byte 1, but the CPU also reads byte 2 -> beyond limit.
        assert!(!t.allowed(8, 1));
        assert!(!t.allowed(16, 1));
        assert!(!t.allowed(0x3F8, 1));
    }

    #[test]
    fn no_bitmap() {
        // Map base at or beyond the limit: no bitmap, deny all.
        let t = Tss::new(104, &[]);
        assert_eq!(t.limit(), 103);
        assert!(!t.allowed(0, 1));
        let mut t2 = Tss::new(104, &[0, 0, 0]);
        t2.0[102..104].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert!(!t2.allowed(0, 1));
        assert!(!t2.allowed(0xFFFF, 1));
        // Map base equal to the limit: second byte out of range.
        let mut t3 = Tss::new(104, &[0]);
        let lim = t3.limit() as u16;
        t3.0[102..104].copy_from_slice(&lim.to_le_bytes());
        assert!(!t3.allowed(0, 1));
    }

    #[test]
    fn short_tss_and_unreadable() {
        // Limit too small to contain the map base field.
        let t = Tss::new(104, &[0, 0]);
        assert!(!io_allowed(101, t.reader(), 0, 1));
        assert!(!io_allowed(102, t.reader(), 0, 1));
        assert_eq!(io_map_base(102, t.reader()), None);
        // Reader failure (e.g. unmapped page) denies.
        assert!(!io_allowed(
            t.limit(),
            |o| if o >= 104 {
                None
            } else {
                t.0.get(o as usize).copied()
            },
            0,
            1
        ));
        assert!(!io_allowed(t.limit(), |_| None, 0, 1));
    }

    #[test]
    fn bad_width_denied() {
        let t = Tss::new(104, &[0, 0, 0]);
        assert!(t.allowed(0, 1));
        for w in [0u8, 3, 5, 8, 255] {
            assert!(!t.allowed(0, w), "width {w}");
        }
    }
}
