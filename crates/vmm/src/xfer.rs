//! Privileged control transfers: exception/interrupt delivery through the guest IDT, IRET,
//! far JMP/CALL/RET (incl. 32-bit call gates), SYSENTER/SYSEXIT (SDM Vol. 3A ch. 5-6).

use crate::cpu::{SegReg, Sreg};
use crate::machine::{Ex, Fault, Machine, Memory, Stop};
use ringfold_arch::descriptor::GateKind;
use ringfold_arch::exception::{double_fault_outcome, pushes_error_code, Outcome};
use ringfold_arch::{eflags, Descriptor, Gate, Selector};

/// What raised an event being delivered through the IDT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A processor exception (EXT=1 in nested error codes).
    Exception,
    /// INT n / INT3 / INTO: gate DPL is checked against CPL.
    Software,
    /// An external (hardware) interrupt.
    External,
}

impl<M: Memory> Machine<M> {
    /// Delivers an exception raised by the instruction at the current EIP, handling
    /// faults during delivery (double fault, triple fault).
    pub fn raise(&mut self, f: Fault) -> Result<(), Stop> {
        let saved = self.cpu.clone();
        match self.deliver(f.vector, f.error, EventKind::Exception, self.cpu.eip) {
            Ok(()) => Ok(()),
            Err(second) => {
                self.cpu = saved;
                match double_fault_outcome(f.vector, second.vector) {
                    Outcome::Serial => {
                        let saved = self.cpu.clone();
                        self.deliver(second.vector, second.error, EventKind::Exception, self.cpu.eip)
                            .or_else(|third| {
                                self.cpu = saved;
                                self.double_fault(third.vector)
                            })
                    }
                    Outcome::DoubleFault => self.double_fault(second.vector),
                    Outcome::TripleFault => Err(Stop::TripleFault { vector: second.vector, eip: self.cpu.eip }),
                }
            }
        }
    }

    fn double_fault(&mut self, vector: u8) -> Result<(), Stop> {
        let eip = self.cpu.eip;
        if vector == 8 {
            return Err(Stop::TripleFault { vector, eip });
        }
        self.deliver(8, Some(0), EventKind::Exception, eip)
            .map_err(|f| Stop::TripleFault { vector: f.vector, eip })
    }

    /// Delivers an external (maskable) interrupt with `vector` at the current EIP.
    pub fn external_interrupt(&mut self, vector: u8) -> Result<(), Stop> {
        let saved = self.cpu.clone();
        let eip = self.cpu.eip;
        match self.deliver(vector, None, EventKind::External, eip) {
            Ok(()) => Ok(()),
            Err(f) => {
                self.cpu = saved;
                self.raise(f)
            }
        }
    }

    /// Delivers a software interrupt (INT n, INT3, INTO) whose return EIP is `next_eip`.
    pub fn software_interrupt(&mut self, vector: u8, next_eip: u32) -> Result<(), Stop> {
        let saved = self.cpu.clone();
        match self.deliver(vector, None, EventKind::Software, next_eip) {
            Ok(()) => Ok(()),
            Err(f) => {
                self.cpu = saved;
                self.raise(f)
            }
        }
    }

    /// One delivery attempt through the IDT. On error nothing observable must be kept;
    /// callers restore the CPU state saved before (memory writes to the new stack are
    /// below its ESP and therefore not observable state).
    pub fn deliver(&mut self, vector: u8, error: Option<u32>, kind: EventKind, ret_eip: u32) -> Ex<()> {
        let ext = (kind != EventKind::Software) as u32;
        let idt_err = vector as u32 * 8 + 2 + ext;
        if vector as u32 * 8 + 7 > self.cpu.idtr.limit as u32 {
            return Err(Fault::gp(idt_err));
        }
        let raw = self.read_u64_lin(self.cpu.idtr.base.wrapping_add(vector as u32 * 8))?;
        let gate = Descriptor::from_raw(raw);
        let g = match gate.gate() {
            Some(g) if !gate.s && matches!(g.kind, GateKind::Interrupt | GateKind::Trap | GateKind::Task) => g,
            _ => return Err(Fault::gp(idt_err)),
        };
        if kind == EventKind::Software && g.dpl < self.cpu.cpl {
            return Err(Fault::gp(idt_err));
        }
        if !g.present {
            return Err(Fault::np(idt_err));
        }
        if g.kind == GateKind::Task {
            // Task switches are not virtualized yet; treated as an invalid gate.
            return Err(Fault::gp(idt_err));
        }
        if !g.is_32bit() {
            return Err(Fault::gp(idt_err));
        }
        let tsel = g.selector;
        let terr = (tsel.raw() as u32 & 0xFFFC) + ext;
        if tsel.is_null() {
            return Err(Fault::gp(ext));
        }
        let (cs, cs_addr) = self.read_descriptor(tsel).map_err(|f| Fault { error: f.error.map(|e| e | ext), ..f })?;
        if !cs.s || !cs.is_code() || cs.dpl > self.cpu.cpl {
            return Err(Fault::gp(terr));
        }
        if !cs.present {
            return Err(Fault::np(terr));
        }
        let old_flags = self.cpu.eflags;
        let old_cs = self.cpu.seg[Sreg::Cs as usize].sel as u32;
        let new_cpl = if cs.conforming() { self.cpu.cpl } else { cs.dpl };
        if new_cpl < self.cpu.cpl {
            // Inner privilege: switch to the TSS stack for new_cpl.
            let (ss_sel, esp) = self.tss_stack(new_cpl, ext)?;
            let old_ss = self.cpu.seg[Sreg::Ss as usize].sel as u32;
            let old_esp = self.cpu.gpr[4];
            let ss = self.check_tss_ss(ss_sel, new_cpl, ext)?;
            self.cpu.cpl = new_cpl;
            self.cpu.seg[Sreg::Ss as usize] = ss;
            self.cpu.gpr[4] = esp;
            self.push(4, old_ss)?;
            self.push(4, old_esp)?;
        }
        self.push(4, old_flags)?;
        self.push(4, old_cs)?;
        self.push(4, ret_eip)?;
        if let Some(e) = error.filter(|_| pushes_error_code(vector) && kind == EventKind::Exception) {
            self.push(4, e)?;
        }
        if g.offset > cs.limit() {
            return Err(Fault::gp(0));
        }
        self.set_accessed(cs_addr, &cs)?;
        self.cpu.cpl = new_cpl;
        self.cpu.seg[Sreg::Cs as usize] = SegReg {
            sel: (tsel.raw() & !3) | new_cpl as u16,
            desc: Descriptor::from_raw(cs.with_accessed()),
            valid: true,
        };
        self.cpu.eip = g.offset;
        let mut f = self.cpu.eflags & !(eflags::TF | eflags::NT | eflags::RF | eflags::VM);
        if g.kind == GateKind::Interrupt {
            f &= !eflags::IF;
        }
        self.cpu.eflags = f;
        self.cpu.halted = false;
        Ok(())
    }

    /// SS:ESP for privilege level `pl` from the current 32-bit TSS.
    fn tss_stack(&mut self, pl: u8, ext: u32) -> Ex<(u16, u32)> {
        let off = 4 + pl as u32 * 8;
        if self.cpu.tr.sel & !3 == 0 || off + 5 > self.cpu.tr.limit {
            return Err(Fault::ts(self.cpu.tr.sel as u32 & 0xFFFC | ext));
        }
        let esp = self.read_sys(self.cpu.tr.base.wrapping_add(off), 4)?;
        let ss = self.read_sys(self.cpu.tr.base.wrapping_add(off + 4), 2)? as u16;
        Ok((ss, esp))
    }

    fn check_tss_ss(&mut self, sel: u16, cpl: u8, ext: u32) -> Ex<SegReg> {
        let s = Selector(sel);
        let err = (sel as u32 & 0xFFFC) | ext;
        if s.is_null() {
            return Err(Fault::ts(ext));
        }
        let (d, addr) = self.read_descriptor(s).map_err(|_| Fault::ts(err))?;
        if s.rpl() != cpl || d.dpl != cpl || !d.s || d.is_code() || !d.writable() {
            return Err(Fault::ts(err));
        }
        if !d.present {
            return Err(Fault::ss(err));
        }
        self.set_accessed(addr, &d)?;
        Ok(SegReg { sel, desc: Descriptor::from_raw(d.with_accessed()), valid: true })
    }

    /// Loads CS for a far transfer to a code segment (no gate) at the current privilege,
    /// with the checks of JMP/CALL far (SDM: conforming / non-conforming rules).
    fn check_code_target(&mut self, sel: Selector) -> Ex<(Descriptor, u32)> {
        let err = sel.raw() as u32 & 0xFFFC;
        let (d, addr) = self.read_descriptor(sel)?;
        if !d.s || !d.is_code() {
            return Err(Fault::gp(err));
        }
        let cpl = self.cpu.cpl;
        if d.conforming() {
            if d.dpl > cpl {
                return Err(Fault::gp(err));
            }
        } else if sel.rpl() > cpl || d.dpl != cpl {
            return Err(Fault::gp(err));
        }
        if !d.present {
            return Err(Fault::np(err));
        }
        Ok((d, addr))
    }

    fn set_cs(&mut self, sel: Selector, d: Descriptor, addr: u32, cpl: u8) -> Ex<()> {
        self.set_accessed(addr, &d)?;
        self.cpu.cpl = cpl;
        self.cpu.seg[Sreg::Cs as usize] =
            SegReg { sel: (sel.raw() & !3) | cpl as u16, desc: Descriptor::from_raw(d.with_accessed()), valid: true };
        Ok(())
    }

    /// JMP far / CALL far to `sel:off`. `opsize` is 2 or 4; `next_eip` the return address.
    pub fn far_transfer(&mut self, sel: u16, off: u32, call: bool, opsize: u32, next_eip: u32) -> Ex<()> {
        let s = Selector(sel);
        if s.is_null() {
            return Err(Fault::gp(0));
        }
        let err = sel as u32 & 0xFFFC;
        let (d, _) = self.read_descriptor(s)?;
        if d.s {
            let (d, addr) = self.check_code_target(s)?;
            let off = if opsize == 2 { off & 0xFFFF } else { off };
            if off > d.limit() {
                return Err(Fault::gp(0));
            }
            if call {
                let old_cs = self.cpu.seg[Sreg::Cs as usize].sel as u32;
                let saved_sp = self.cpu.gpr[4];
                let r = self.push(opsize, old_cs).and_then(|_| self.push(opsize, next_eip));
                if let Err(f) = r {
                    self.cpu.gpr[4] = saved_sp;
                    return Err(f);
                }
            }
            let cpl = self.cpu.cpl;
            self.set_cs(s, d, addr, cpl)?;
            self.cpu.eip = off;
            return Ok(());
        }
        let g = match Gate::from_raw(d.to_raw()) {
            Some(g) if g.kind == GateKind::Call => g,
            Some(g) if g.kind == GateKind::Task => {
                return Err(Fault::gp(err)); // task switches not virtualized
            }
            _ => return Err(Fault::gp(err)),
        };
        let cpl = self.cpu.cpl;
        if g.dpl < cpl || g.dpl < s.rpl() {
            return Err(Fault::gp(err));
        }
        if !g.present {
            return Err(Fault::np(err));
        }
        if !g.is_32bit() {
            return Err(Fault::gp(err));
        }
        let tsel = g.selector;
        if tsel.is_null() {
            return Err(Fault::gp(0));
        }
        let terr = tsel.raw() as u32 & 0xFFFC;
        let (cd, caddr) = self.read_descriptor(tsel)?;
        if !cd.s || !cd.is_code() || cd.dpl > cpl {
            return Err(Fault::gp(terr));
        }
        if !call && !cd.conforming() && cd.dpl != cpl {
            return Err(Fault::gp(terr));
        }
        if !cd.present {
            return Err(Fault::np(terr));
        }
        if g.offset > cd.limit() {
            return Err(Fault::gp(0));
        }
        let new_cpl = if cd.conforming() { cpl } else { cd.dpl };
        let saved = self.cpu.clone();
        let r = (|| {
            let old_cs = self.cpu.seg[Sreg::Cs as usize].sel as u32;
            if call && new_cpl < cpl {
                let (ss_sel, esp) = self.tss_stack(new_cpl, 0)?;
                let ss = self.check_tss_ss(ss_sel, new_cpl, 0)?;
                let old_ss = self.cpu.seg[Sreg::Ss as usize].sel as u32;
                let old_esp = self.cpu.gpr[4];
                // Parameters are read from the old stack before switching.
                let mut params = Vec::with_capacity(g.param_count as usize);
                for i in (0..g.param_count as u32).rev() {
                    params.push(self.peek(i * 4, 4)?);
                }
                self.cpu.cpl = new_cpl;
                self.cpu.seg[Sreg::Ss as usize] = ss;
                self.cpu.gpr[4] = esp;
                self.push(4, old_ss)?;
                self.push(4, old_esp)?;
                for p in params {
                    self.push(4, p)?;
                }
            }
            if call {
                self.push(4, old_cs)?;
                self.push(4, next_eip)?;
            }
            self.set_cs(tsel, cd, caddr, new_cpl)?;
            self.cpu.eip = g.offset;
            Ok(())
        })();
        if r.is_err() {
            self.cpu = saved;
        }
        r
    }

    /// RET far [imm16].
    pub fn far_return(&mut self, opsize: u32, imm: u32) -> Ex<()> {
        let cpl = self.cpu.cpl;
        let eip = self.peek(0, opsize)?;
        let sel = Selector(self.peek(opsize, opsize)? as u16);
        if sel.is_null() {
            return Err(Fault::gp(0));
        }
        let err = sel.raw() as u32 & 0xFFFC;
        let (d, addr) = self.read_descriptor(sel)?;
        let rpl = sel.rpl();
        if rpl < cpl || !d.s || !d.is_code() {
            return Err(Fault::gp(err));
        }
        if d.conforming() { if d.dpl > rpl { return Err(Fault::gp(err)); } } else if d.dpl != rpl {
            return Err(Fault::gp(err));
        }
        if !d.present {
            return Err(Fault::np(err));
        }
        let eip = if opsize == 2 { eip & 0xFFFF } else { eip };
        if eip > d.limit() {
            return Err(Fault::gp(0));
        }
        if rpl == cpl {
            let sp = self.sp().wrapping_add(2 * opsize + imm);
            self.set_cs(sel, d, addr, cpl)?;
            self.set_sp(sp);
            self.cpu.eip = eip;
            return Ok(());
        }
        // Return to an outer privilege level: SS:ESP follow the parameters.
        let esp = self.peek(2 * opsize + imm, opsize)?;
        let ss_sel = self.peek(3 * opsize + imm, opsize)? as u16;
        let ss = self.check_outer_ss(ss_sel, rpl)?;
        self.set_cs(sel, d, addr, rpl)?;
        self.cpu.seg[Sreg::Ss as usize] = ss;
        self.cpu.gpr[4] = esp.wrapping_add(imm);
        self.cpu.eip = eip;
        self.null_inaccessible_segs();
        Ok(())
    }

    fn check_outer_ss(&mut self, sel: u16, rpl: u8) -> Ex<SegReg> {
        let s = Selector(sel);
        let err = sel as u32 & 0xFFFC;
        if s.is_null() {
            return Err(Fault::gp(0));
        }
        let (d, addr) = self.read_descriptor(s)?;
        if s.rpl() != rpl || !d.s || d.is_code() || !d.writable() || d.dpl != rpl {
            return Err(Fault::gp(err));
        }
        if !d.present {
            return Err(Fault::ss(err));
        }
        self.set_accessed(addr, &d)?;
        Ok(SegReg { sel, desc: Descriptor::from_raw(d.with_accessed()), valid: true })
    }

    /// IRET / IRETD in protected mode (no task return, no return to virtual-8086 mode).
    pub fn iret(&mut self, opsize: u32) -> Result<Ex<()>, Stop> {
        if self.cpu.eflags & eflags::NT != 0 {
            return Err(Stop::Unsupported { eip: self.cpu.eip, what: "IRET with NT=1 (task return)".into() });
        }
        Ok(self.iret_inner(opsize))
    }

    fn iret_inner(&mut self, opsize: u32) -> Ex<()> {
        let cpl = self.cpu.cpl;
        let eip = self.peek(0, opsize)?;
        let sel = Selector(self.peek(opsize, opsize)? as u16);
        let flags = self.peek(2 * opsize, opsize)?;
        if opsize == 4 && flags & eflags::VM != 0 && cpl == 0 {
            return Err(Fault::gp(0)); // virtual-8086 mode is not supported
        }
        if sel.is_null() {
            return Err(Fault::gp(0));
        }
        let err = sel.raw() as u32 & 0xFFFC;
        let (d, addr) = self.read_descriptor(sel)?;
        let rpl = sel.rpl();
        if rpl < cpl || !d.s || !d.is_code() {
            return Err(Fault::gp(err));
        }
        if d.conforming() { if d.dpl > rpl { return Err(Fault::gp(err)); } } else if d.dpl != rpl {
            return Err(Fault::gp(err));
        }
        if !d.present {
            return Err(Fault::np(err));
        }
        let eip = if opsize == 2 { eip & 0xFFFF } else { eip };
        if eip > d.limit() {
            return Err(Fault::gp(0));
        }
        // EFLAGS update: what may change depends on the CPL *before* the return.
        let iopl = self.cpu.iopl();
        let mut mask = eflags::CF | eflags::PF | eflags::AF | eflags::ZF | eflags::SF | eflags::TF
            | eflags::DF | eflags::OF | eflags::NT;
        if opsize == 4 {
            mask |= eflags::RF | eflags::AC | eflags::ID;
        }
        if cpl <= iopl {
            mask |= eflags::IF;
        }
        if cpl == 0 {
            mask |= eflags::IOPL_MASK;
            if opsize == 4 {
                mask |= eflags::VIF | eflags::VIP;
            }
        }
        if opsize == 2 {
            mask &= 0xFFFF;
        }
        let new_flags = (self.cpu.eflags & !mask) | (flags & mask) | eflags::FIXED1;
        if rpl == cpl {
            let sp = self.sp().wrapping_add(3 * opsize);
            self.set_cs(sel, d, addr, cpl)?;
            self.set_sp(sp);
        } else {
            let esp = self.peek(3 * opsize, opsize)?;
            let ss_sel = self.peek(4 * opsize, opsize)? as u16;
            let ss = self.check_outer_ss(ss_sel, rpl)?;
            self.set_cs(sel, d, addr, rpl)?;
            self.cpu.seg[Sreg::Ss as usize] = ss;
            self.cpu.gpr[4] = if opsize == 2 { (self.cpu.gpr[4] & 0xFFFF_0000) | (esp & 0xFFFF) } else { esp };
            self.null_inaccessible_segs();
        }
        self.cpu.eip = eip;
        self.cpu.eflags = new_flags;
        Ok(())
    }

    /// SYSENTER (SDM Vol. 2): flat CS/SS from IA32_SYSENTER_CS at CPL0.
    pub fn sysenter(&mut self) -> Ex<()> {
        let cs = self.cpu.sysenter_cs as u16 & 0xFFFC;
        if cs == 0 {
            return Err(Fault::gp(0));
        }
        self.cpu.eflags &= !(eflags::VM | eflags::IF | eflags::RF);
        self.cpu.cpl = 0;
        (self.cpu.seg[Sreg::Cs as usize], self.cpu.seg[Sreg::Ss as usize]) = crate::fastsys::kernel_state(self.cpu.sysenter_cs);
        self.cpu.gpr[4] = self.cpu.sysenter_esp;
        self.cpu.eip = self.cpu.sysenter_eip;
        Ok(())
    }

    /// SYSEXIT to CPL3: EIP = EDX, ESP = ECX.
    pub fn sysexit(&mut self) -> Ex<()> {
        let cs = self.cpu.sysenter_cs as u16 & 0xFFFC;
        if cs == 0 || self.cpu.cpl != 0 {
            return Err(Fault::gp(0));
        }
        self.cpu.cpl = 3;
        (self.cpu.seg[Sreg::Cs as usize], self.cpu.seg[Sreg::Ss as usize]) = crate::fastsys::user_state(self.cpu.sysenter_cs);
        self.cpu.gpr[4] = self.cpu.gpr[1];
        self.cpu.eip = self.cpu.gpr[2];
        Ok(())
    }
}
