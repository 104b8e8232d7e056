//! Integer ALU semantics for the instructions the monitor emulates on memory the host
//! cannot map (MMIO, page 0, the monitor region): results and the six status flags,
//! exactly as the SDM defines them (AF after logical operations, which the SDM leaves
//! undefined, is 0 as on current Intel and AMD parts).

use ringfold_arch::eflags::{AF, CF, OF, PF, SF, ZF};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Or,
    Adc,
    Sbb,
    And,
    Sub,
    Xor,
    Cmp,
    Test,
    Inc,
    Dec,
    Neg,
    Not,
}

/// Mask of the flags an operation defines.
pub const STATUS: u32 = CF | PF | AF | ZF | SF | OF;

fn mask(size: u32) -> u32 {
    if size >= 4 { u32::MAX } else { (1u32 << (size * 8)) - 1 }
}

fn sign(size: u32) -> u32 {
    1u32 << (size * 8 - 1)
}

fn szp(r: u32, size: u32) -> u32 {
    let mut f = 0;
    if r & mask(size) == 0 {
        f |= ZF;
    }
    if r & sign(size) != 0 {
        f |= SF;
    }
    if (r as u8).count_ones().is_multiple_of(2) {
        f |= PF;
    }
    f
}

/// Computes `a op b` on `size`-byte operands with carry-in `cf`. Returns the result
/// (already masked), the new status flags and the mask of flags the operation writes
/// (INC/DEC keep CF; NOT writes none).
pub fn alu(op: AluOp, a: u32, b: u32, cf: bool, size: u32) -> (u32, u32, u32) {
    let m = mask(size);
    let (a, b) = (a & m, b & m);
    let add = |a: u32, b: u32, c: u32| {
        let wide = a as u64 + b as u64 + c as u64;
        let r = wide as u32 & m;
        let mut f = szp(r, size);
        if wide > m as u64 {
            f |= CF;
        }
        if (a ^ r) & (b ^ r) & sign(size) != 0 {
            f |= OF;
        }
        if (a ^ b ^ r) & 0x10 != 0 {
            f |= AF;
        }
        (r, f)
    };
    let sub = |a: u32, b: u32, c: u32| {
        let r = a.wrapping_sub(b).wrapping_sub(c) & m;
        let mut f = szp(r, size);
        if (b as u64 + c as u64) > a as u64 {
            f |= CF;
        }
        if (a ^ b) & (a ^ r) & sign(size) != 0 {
            f |= OF;
        }
        if (a ^ b ^ r) & 0x10 != 0 {
            f |= AF;
        }
        (r, f)
    };
    let logic = |r: u32| (r & m, szp(r & m, size));
    match op {
        AluOp::Add => { let (r, f) = add(a, b, 0); (r, f, STATUS) }
        AluOp::Adc => { let (r, f) = add(a, b, cf as u32); (r, f, STATUS) }
        AluOp::Sub | AluOp::Cmp => { let (r, f) = sub(a, b, 0); (r, f, STATUS) }
        AluOp::Sbb => { let (r, f) = sub(a, b, cf as u32); (r, f, STATUS) }
        AluOp::And | AluOp::Test => { let (r, f) = logic(a & b); (r, f, STATUS) }
        AluOp::Or => { let (r, f) = logic(a | b); (r, f, STATUS) }
        AluOp::Xor => { let (r, f) = logic(a ^ b); (r, f, STATUS) }
        AluOp::Inc => { let (r, f) = add(a, 1, 0); (r, f & !CF, STATUS & !CF) }
        AluOp::Dec => { let (r, f) = sub(a, 1, 0); (r, f & !CF, STATUS & !CF) }
        AluOp::Neg => { let (r, f) = sub(0, a, 0); (r, f, STATUS) }
        AluOp::Not => ((!a) & m, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(alu(AluOp::Add, 0xFF, 1, false, 1), (0, ZF | CF | PF | AF, STATUS));
        assert_eq!(alu(AluOp::Add, 0x7F, 1, false, 1), (0x80, SF | OF | AF, STATUS));
        assert_eq!(alu(AluOp::Sub, 0, 1, false, 4), (u32::MAX, CF | SF | PF | AF, STATUS));
        assert_eq!(alu(AluOp::Cmp, 5, 5, false, 2), (0, ZF | PF, STATUS));
        assert_eq!(alu(AluOp::Sbb, 0x8000, 0, true, 2), (0x7FFF, OF | AF | PF, STATUS));
        assert_eq!(alu(AluOp::Adc, u32::MAX, 0, true, 4), (0, CF | ZF | PF | AF, STATUS));
        assert_eq!(alu(AluOp::Inc, 0xFFFF, 0, false, 2), (0, ZF | PF | AF, STATUS & !CF));
        assert_eq!(alu(AluOp::Dec, 0x80, 0, false, 1), (0x7F, OF | AF, STATUS & !CF));
        assert_eq!(alu(AluOp::Neg, 0x80, 0, false, 1), (0x80, CF | SF | OF, STATUS));
        assert_eq!(alu(AluOp::Neg, 0, 0, false, 4), (0, ZF | PF, STATUS));
        assert_eq!(alu(AluOp::Xor, 0xF0, 0x0F, false, 1), (0xFF, SF | PF, STATUS));
        assert_eq!(alu(AluOp::Test, 0x100, 0x100, false, 1), (0, ZF | PF, STATUS));
        assert_eq!(alu(AluOp::Not, 0x0F, 0, false, 1), (0xF0, 0, 0));
    }
}
