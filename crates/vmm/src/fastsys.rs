//! Inline SYSENTER (guest CPL3) and SYSEXIT (guest CPL0): the fast system call pair runs
//! in translated code instead of exiting to the interpreter twice per system call.
//!
//! Both instructions change the CPL without consulting any descriptor table: SYSENTER
//! gives CS/SS the flat ring-0 values IA32_SYSENTER_CS defines, ESP = IA32_SYSENTER_ESP,
//! EIP = IA32_SYSENTER_EIP and clears IF; SYSEXIT gives CS/SS the flat ring-3 values, ESP =
//! ECX, EIP = EDX. The translated sequences read what they need from a record in the
//! translation cache's data area that the monitor rewrites before every entry:
//!
//! * SYSENTER loads SS with a dedicated LDT slot (the kernel's flat SS), ESP from the
//!   record, clears the virtual IF and jumps to the record's translation of SYSENTER_EIP.
//!   While the record is disabled its SS selector is null: the load faults and the
//!   instruction is interpreted (which fills the record).
//! * SYSEXIT maps each data segment register's host selector to the selector of the same
//!   guest segment truncated below `user_top` (`USER_SEL` table; a missing entry exits),
//!   checks that DS and GS are those of the user context whose folded GS base the shared
//!   CPL3 lookup table is valid for, loads SS with the second dedicated slot (the user's
//!   flat SS truncated below `user_top`), ESP = ECX, and finds EDX in the CPL3 lookup
//!   table. The record is disabled while supervisor pages are mapped below `user_top`
//!   (the monitor unmaps them at every entry to CPL3) and when CR4.TSD makes CPL3 code
//!   translate differently.
//!
//! The load of SS is the commit point of both sequences: a fault or kick before it is
//! undone and the instruction interpreted; after it, the monitor completes the
//! instruction (EIP, ESP, IF) and, at every exit, learns which transition ran last from
//! the host SS selector (nothing else loads the dedicated slots). Code at the "other" CPL
//! reads CS/SS from a second selector mirror that holds what the transition gives them;
//! transitions are only enabled when the state the monitor enters is such a state too, so
//! both mirrors stay exact whatever the number of round trips.

use crate::cpu::{Cpu, SegReg};
use ringfold_arch::descriptor::{types, Descriptor};

/// Offsets in the record (`translate::FAST_RECORD`).
/// Host SS selector SYSENTER loads (0: disabled), its ESP, and the host address of the
/// translation of SYSENTER_EIP.
pub const ENTER_SS: usize = 0;
pub const ENTER_ESP: usize = 4;
pub const ENTER_TARGET: usize = 8;
/// Host SS selector SYSEXIT loads (0: disabled), and the negated host DS and GS selectors
/// of the user context the shared CPL3 lookup table is valid for.
pub const EXIT_SS: usize = 12;
pub const EXIT_NEG_DS: usize = 16;
pub const EXIT_NEG_GS: usize = 20;
pub const RECORD_BYTES: usize = 32;

/// `USER_SEL`: per host selector value, the host selector of the same guest segment
/// truncated for CPL3 (u32 entries), or `USER_SEL_MISS`.
pub const USER_SEL_ENTRIES: usize = 1024;
pub const USER_SEL_MISS: u32 = u32::MAX;
/// A negated selector no host selector matches (disables the owner check's hit).
pub const NEG_NONE: u32 = 0x1_0000u32.wrapping_neg();

/// `Scratch::done`: past the commit point, the monitor completes this instruction.
pub const DONE_SYSENTER: u8 = 1;
pub const DONE_SYSEXIT: u8 = 2;
/// An inline STI past its store of the virtual IF (see `translate::emit_if_seq`).
pub const DONE_STI: u8 = 3;

/// CS and SS after SYSENTER for IA32_SYSENTER_CS `msr`.
pub fn kernel_state(msr: u32) -> (SegReg, SegReg) {
    let cs = msr as u16 & 0xFFFC;
    (SegReg::flat(cs, types::CODE_XR, 0), SegReg::flat(cs.wrapping_add(8), types::DATA_RW, 0))
}

/// CS and SS after SYSEXIT for IA32_SYSENTER_CS `msr`.
pub fn user_state(msr: u32) -> (SegReg, SegReg) {
    let cs = msr as u16 & 0xFFFC;
    (SegReg::flat(cs.wrapping_add(16) | 3, types::CODE_XR, 3), SegReg::flat(cs.wrapping_add(24) | 3, types::DATA_RW, 3))
}

/// Whether two segment registers differ at most in the accessed and AVL bits (neither is
/// visible through a loaded segment register).
fn same_segment(a: &SegReg, b: &SegReg) -> bool {
    let strip = |d: &Descriptor| Descriptor { typ: d.typ | 1, avl: false, ..*d };
    a.sel == b.sel && a.valid == b.valid && strip(&a.desc) == strip(&b.desc)
}

/// Whether the CPU's CS and SS are exactly what SYSENTER (at CPL0) or SYSEXIT (at CPL3)
/// would give them, so that any number of inline transitions keeps both selector
/// mirrors right.
pub fn canonical(cpu: &Cpu) -> bool {
    let (cs, ss) = match cpu.cpl {
        0 => kernel_state(cpu.sysenter_cs),
        3 => user_state(cpu.sysenter_cs),
        _ => return false,
    };
    same_segment(cpu.sreg(crate::cpu::Sreg::Cs), &cs) && same_segment(cpu.sreg(crate::cpu::Sreg::Ss), &ss)
}

/// What the monitor knows before an entry.
#[derive(Clone, Copy, Debug)]
pub struct Conditions {
    pub sysenter_cs: u32,
    pub cpl: u8,
    pub canonical: bool,
    /// No supervisor page is mapped below `user_top` (entering CPL3 would unmap it).
    pub sup_low_empty: bool,
    /// CPL0 and CPL3 translations have the same FPU/RDTSC key bits (CR4.TSD clear).
    pub same_mode: bool,
}

/// (inline SYSENTER allowed, inline SYSEXIT allowed) for the coming entry. SYSENTER is
/// allowed from the state entered at CPL3, or after an inline SYSEXIT from a canonical
/// CPL0 state; SYSEXIT symmetrically.
pub fn enabled(c: &Conditions) -> (bool, bool) {
    if c.sysenter_cs & 0xFFFC == 0 {
        return (false, false);
    }
    let enter = c.cpl == 3 || (c.cpl == 0 && c.canonical);
    let exit = (c.cpl == 0 || (c.cpl == 3 && c.canonical)) && c.sup_low_empty && c.same_mode;
    (enter, exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Sreg;

    fn cpu_at(cpl: u8, msr: u32) -> Cpu {
        let mut c = Cpu { sysenter_cs: msr, cpl, ..Cpu::default() };
        let (cs, ss) = if cpl == 0 { kernel_state(msr) } else { user_state(msr) };
        c.seg[Sreg::Cs as usize] = cs;
        c.seg[Sreg::Ss as usize] = ss;
        c
    }

    #[test]
    fn states_follow_the_msr() {
        let (cs, ss) = kernel_state(0x63);
        assert_eq!((cs.sel, ss.sel), (0x60, 0x68));
        assert_eq!((cs.desc.dpl, ss.desc.dpl), (0, 0));
        assert!(cs.desc.is_code() && !ss.desc.is_code());
        let (cs, ss) = user_state(0x60);
        assert_eq!((cs.sel, ss.sel), (0x73, 0x7b));
        assert_eq!((cs.desc.dpl, ss.desc.dpl), (3, 3));
        assert_eq!((cs.desc.base, cs.desc.limit(), ss.desc.limit()), (0, u32::MAX, u32::MAX));
    }

    #[test]
    fn canonical_states() {
        assert!(canonical(&cpu_at(0, 0x60)));
        assert!(canonical(&cpu_at(3, 0x60)));
        // A GDT-loaded copy without the accessed bit is the same segment.
        let mut c = cpu_at(3, 0x60);
        c.seg[Sreg::Ss as usize].desc.typ &= !1;
        assert!(canonical(&c));
        // Another selector, base, limit or DPL is not.
        let mut c = cpu_at(3, 0x60);
        c.seg[Sreg::Cs as usize].sel = 0x1b;
        assert!(!canonical(&c));
        let mut c = cpu_at(0, 0x60);
        c.seg[Sreg::Ss as usize].desc.base = 0x1000;
        assert!(!canonical(&c));
        let mut c = cpu_at(0, 0x60);
        c.seg[Sreg::Ss as usize].desc.limit_raw = 0xFFFF;
        assert!(!canonical(&c));
        let mut c = cpu_at(0, 0x60);
        c.seg[Sreg::Cs as usize].desc.dpl = 3;
        assert!(!canonical(&c));
        let mut c = cpu_at(3, 0x60);
        c.sysenter_cs = 0x08;
        assert!(!canonical(&c));
        let mut c = cpu_at(0, 0x60);
        c.cpl = 1;
        assert!(!canonical(&c));
    }

    #[test]
    fn enabling_rules() {
        let base = Conditions { sysenter_cs: 0x60, cpl: 3, canonical: true, sup_low_empty: true, same_mode: true };
        assert_eq!(enabled(&base), (true, true));
        assert_eq!(enabled(&Conditions { sysenter_cs: 3, ..base }), (false, false), "SYSENTER_CS index 0");
        assert_eq!(enabled(&Conditions { canonical: false, ..base }), (true, false), "user state not what SYSEXIT gives");
        assert_eq!(enabled(&Conditions { cpl: 0, canonical: false, ..base }), (false, true), "kernel state not what SYSENTER gives");
        assert_eq!(enabled(&Conditions { sup_low_empty: false, ..base }), (true, false), "supervisor pages below user_top");
        assert_eq!(enabled(&Conditions { same_mode: false, ..base }), (true, false), "CR4.TSD");
        assert_eq!(enabled(&Conditions { cpl: 1, ..base }), (false, false));
        assert_eq!(enabled(&Conditions { cpl: 2, canonical: false, ..base }), (false, false));
    }
}
