//! EFLAGS bits (SDM Vol. 1 §3.4.3, Vol. 3A §2.3) and POPF masking.
//!
//! Ring compression runs the guest kernel at host CPL 3, where POPF silently
//! ignores IF/IOPL changes. The monitor therefore needs the exact set of bits
//! a guest POPF would change at the *guest's* CPL to emulate or fix up the
//! result.

/// Carry flag.
pub const CF: u32 = 1 << 0;
/// Reserved bit 1, always reads as 1.
pub const FIXED1: u32 = 1 << 1;
/// Parity flag.
pub const PF: u32 = 1 << 2;
/// Auxiliary carry flag.
pub const AF: u32 = 1 << 4;
/// Zero flag.
pub const ZF: u32 = 1 << 6;
/// Sign flag.
pub const SF: u32 = 1 << 7;
/// Trap flag (single step).
pub const TF: u32 = 1 << 8;
/// Interrupt enable flag.
pub const IF: u32 = 1 << 9;
/// Direction flag.
pub const DF: u32 = 1 << 10;
/// Overflow flag.
pub const OF: u32 = 1 << 11;
/// Shift of the 2-bit I/O privilege level field.
pub const IOPL_SHIFT: u32 = 12;
/// I/O privilege level field (bits 12..=13).
pub const IOPL_MASK: u32 = 3 << IOPL_SHIFT;
/// Nested task flag.
pub const NT: u32 = 1 << 14;
/// Resume flag.
pub const RF: u32 = 1 << 16;
/// Virtual-8086 mode.
pub const VM: u32 = 1 << 17;
/// Alignment check (486+).
pub const AC: u32 = 1 << 18;
/// Virtual interrupt flag.
pub const VIF: u32 = 1 << 19;
/// Virtual interrupt pending.
pub const VIP: u32 = 1 << 20;
/// CPUID-detection flag.
pub const ID: u32 = 1 << 21;

/// The six arithmetic status flags.
pub const STATUS_MASK: u32 = CF | PF | AF | ZF | SF | OF;
/// Every architecturally defined bit (including the fixed bit 1).
pub const DEFINED_MASK: u32 =
    STATUS_MASK | FIXED1 | TF | IF | DF | IOPL_MASK | NT | RF | VM | AC | VIF | VIP | ID;
/// Reserved bits that always read as 0 (3, 5, 15, 22..=31).
pub const RESERVED_ZERO_MASK: u32 = !DEFINED_MASK;

/// Extracts IOPL.
pub const fn iopl(eflags: u32) -> u8 {
    ((eflags & IOPL_MASK) >> IOPL_SHIFT) as u8
}

/// Replaces IOPL.
pub const fn with_iopl(eflags: u32, iopl: u8) -> u32 {
    (eflags & !IOPL_MASK) | (((iopl & 3) as u32) << IOPL_SHIFT)
}

/// Forces the architectural fixed bits: bit 1 set, reserved bits clear.
pub const fn normalize(eflags: u32) -> u32 {
    (eflags & DEFINED_MASK) | FIXED1
}

/// Bits that POPF/POPFD in protected mode (VM=0) loads from the popped
/// value; all other bits keep their old value (SDM POPF pseudo-code).
///
/// * Always: CF PF AF ZF SF TF DF OF NT, plus AC and ID for 32-bit operand
///   size.
/// * IF only if `cpl <= iopl`; IOPL only if `cpl == 0`. Otherwise the
///   change is silently ignored (no fault).
/// * Never VM, VIF, VIP, RF or reserved bits. RF is additionally cleared,
///   see [`popf_apply`].
/// * 16-bit operand size only touches bits 0..=15.
pub const fn popf_mask(cpl: u8, iopl: u8, operand32: bool) -> u32 {
    let mut mask = STATUS_MASK | TF | DF | NT;
    if operand32 {
        mask |= AC | ID;
    }
    if cpl <= iopl {
        mask |= IF;
    }
    if cpl == 0 {
        mask |= IOPL_MASK;
    }
    mask
}

/// The EFLAGS value after a protected-mode POPF of `popped` with current
/// flags `old`: masked merge per [`popf_mask`], RF cleared, bit 1 set and
/// reserved bits cleared. `iopl` is taken from `old`.
pub const fn popf_apply(old: u32, popped: u32, cpl: u8, operand32: bool) -> u32 {
    let mask = popf_mask(cpl, iopl(old), operand32);
    normalize(((old & !mask) | (popped & mask)) & !RF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_positions() {
        let bits = [
            (CF, 0),
            (FIXED1, 1),
            (PF, 2),
            (AF, 4),
            (ZF, 6),
            (SF, 7),
            (TF, 8),
            (IF, 9),
            (DF, 10),
            (OF, 11),
            (NT, 14),
            (RF, 16),
            (VM, 17),
            (AC, 18),
            (VIF, 19),
            (VIP, 20),
            (ID, 21),
        ];
        for (v, b) in bits {
            assert_eq!(v, 1 << b);
        }
        assert_eq!(IOPL_MASK, 0x3000);
        assert_eq!(DEFINED_MASK, 0x003F_7FD7);
        assert_eq!(
            RESERVED_ZERO_MASK & ((1 << 3) | (1 << 5) | (1 << 15)),
            (1 << 3) | (1 << 5) | (1 << 15)
        );
    }

    #[test]
    fn iopl_helpers() {
        assert_eq!(iopl(0x3202), 3);
        assert_eq!(iopl(0x1202), 1);
        assert_eq!(with_iopl(0x3202, 0), 0x0202);
        assert_eq!(with_iopl(0x0202, 2), 0x2202);
        assert_eq!(with_iopl(0, 7), 0x3000);
        assert_eq!(normalize(0xFFFF_FFFF), DEFINED_MASK);
        assert_eq!(normalize(0), 2);
    }

    #[test]
    fn popf_masks_every_cpl_iopl() {
        let base16 = STATUS_MASK | TF | DF | NT;
        for cpl in 0..4u8 {
            for iopl in 0..4u8 {
                for op32 in [false, true] {
                    let m = popf_mask(cpl, iopl, op32);
                    assert_eq!(m & IF != 0, cpl <= iopl, "IF cpl={cpl} iopl={iopl}");
                    assert_eq!(m & IOPL_MASK != 0, cpl == 0, "IOPL cpl={cpl}");
                    assert_eq!(m & (VM | VIF | VIP | RF), 0);
                    assert_eq!(m & RESERVED_ZERO_MASK, 0);
                    assert_eq!(m & FIXED1, 0);
                    assert_eq!(m & base16, base16);
                    if op32 {
                        assert_eq!(m & (AC | ID), AC | ID);
                    } else {
                        assert_eq!(m & !0xFFFF, 0, "16-bit POPF only affects low word");
                    }
                }
            }
        }
        assert_eq!(popf_mask(0, 0, true), 0x0024_7FD5);
        assert_eq!(popf_mask(3, 3, true), 0x0024_4FD5);
        assert_eq!(popf_mask(3, 0, true), 0x0024_4DD5);
        assert_eq!(popf_mask(3, 0, false), 0x4DD5);
    }

    #[test]
    fn popf_apply_examples() {
        // Ring 0 may change IF and IOPL, cannot set VM, RF gets cleared.
        let old = FIXED1 | RF;
        let r = popf_apply(old, 0xFFFF_FFFF, 0, true);
        assert_eq!(r, DEFINED_MASK & !(VM | VIF | VIP | RF));
        // Ring 3 with IOPL 0: IF and IOPL silently kept.
        let old = FIXED1 | IF;
        let r = popf_apply(old, FIXED1 | IOPL_MASK | CF, 3, true);
        assert_eq!(r, FIXED1 | IF | CF);
        // Ring 3 with IOPL 3: IF may change, IOPL may not.
        let old = FIXED1 | IF | IOPL_MASK;
        let r = popf_apply(old, FIXED1, 3, true);
        assert_eq!(r, FIXED1 | IOPL_MASK);
        // 16-bit POPF keeps the high word (except RF, which is cleared).
        let old = FIXED1 | AC | ID | VIF | RF;
        let r = popf_apply(old, 0, 0, false);
        assert_eq!(r, FIXED1 | AC | ID | VIF);
        // VM is preserved, never loaded.
        assert_eq!(popf_apply(FIXED1 | VM, 0, 0, true) & VM, VM);
    }
}
