//! The monitor's interpreter for the instructions the translator does not copy:
//! every sensitive instruction (DESIGN.md's list) and indirect control flow.
//! Executes one guest instruction against the virtual CPU with exact privilege semantics.

use crate::cpu::{cr0, cr4, msr, SegReg, Sreg, SysSeg, TableReg};
use crate::cpuid;
use crate::machine::{Ex, Fault, Machine, Memory, Stop, TlbEvent};

const EFER_NXE: u64 = 1 << 11;
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};
use ringfold_arch::descriptor::SystemKind;
use ringfold_arch::{eflags, Descriptor, Selector};

/// Either a guest exception (delivered to the guest) or a reason to stop the machine.
#[derive(Debug)]
pub enum Trap {
    Fault(Fault),
    Stop(Stop),
}
impl From<Fault> for Trap {
    fn from(f: Fault) -> Self {
        Trap::Fault(f)
    }
}
impl From<Stop> for Trap {
    fn from(s: Stop) -> Self {
        Trap::Stop(s)
    }
}

type R = Result<(), Trap>;

fn gpr_index(r: Register) -> (usize, u32) {
    let size = r.size() as u32;
    (r.number(), size)
}

impl<M: Memory> Machine<M> {
    /// Executes `i` (decoded at the current EIP) and delivers any exception it raises.
    pub fn exec(&mut self, i: &Instruction) -> Result<(), Stop> {
        debug_assert_eq!(i.ip32(), self.cpu.eip);
        match self.exec_inner(i) {
            Ok(()) => Ok(()),
            Err(Trap::Fault(f)) => self.raise(f),
            Err(Trap::Stop(s)) => Err(s),
        }
    }

    /// Effective offset of the memory operand.
    pub fn ea(&self, i: &Instruction) -> u32 {
        let reg = |r: Register| {
            if r == Register::None { 0 } else { self.cpu.get_reg(r.number(), r.size() as u32) }
        };
        let a16 = i.memory_base().size() == 2 || i.memory_index().size() == 2 || i.memory_displ_size() == 2;
        let v = reg(i.memory_base())
            .wrapping_add(reg(i.memory_index()).wrapping_mul(i.memory_index_scale()))
            .wrapping_add(i.memory_displacement32());
        if a16 { v & 0xFFFF } else { v }
    }

    pub(crate) fn mem_seg(i: &Instruction) -> Sreg {
        Sreg::from_iced(i.memory_segment()).unwrap_or(Sreg::Ds)
    }

    pub(crate) fn read_op(&mut self, i: &Instruction, n: u32, size: u32) -> Ex<u32> {
        match i.op_kind(n) {
            OpKind::Register => {
                let (idx, sz) = gpr_index(i.op_register(n));
                Ok(self.cpu.get_reg(idx, sz))
            }
            OpKind::Memory => {
                let off = self.ea(i);
                self.read_seg(Self::mem_seg(i), off, size)
            }
            OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32 | OpKind::Immediate8to16
            | OpKind::Immediate8to32 => Ok(i.immediate(n) as u32),
            _ => Ok(0),
        }
    }

    pub(crate) fn write_op(&mut self, i: &Instruction, n: u32, size: u32, v: u32) -> Ex<()> {
        match i.op_kind(n) {
            OpKind::Register => {
                let r = i.op_register(n);
                let (idx, sz) = gpr_index(r);
                self.cpu.set_reg(idx, sz, v);
                Ok(())
            }
            _ => {
                let off = self.ea(i);
                self.write_seg(Self::mem_seg(i), off, size, v)
            }
        }
    }

    pub(crate) fn op_size(i: &Instruction, n: u32) -> u32 {
        match i.op_kind(n) {
            OpKind::Register => i.op_register(n).size() as u32,
            OpKind::Memory => i.memory_size().size() as u32,
            _ => 4,
        }
    }

    fn need_cpl0(&self) -> Ex<()> {
        if self.cpu.cpl != 0 { Err(Fault::gp(0)) } else { Ok(()) }
    }

    fn check_cs_limit(&self, eip: u32) -> Ex<()> {
        if eip > self.cpu.sreg(Sreg::Cs).desc.limit() { Err(Fault::gp(0)) } else { Ok(()) }
    }

    fn unsupported(&self, what: impl Into<String>) -> Trap {
        Trap::Stop(Stop::Unsupported { eip: self.cpu.eip, what: what.into() })
    }

    /// Whether the current privilege may access `port..port+size` (IOPL, then TSS bitmap).
    fn io_permitted(&mut self, port: u16, size: u32) -> bool {
        if self.cpu.cpl <= self.cpu.iopl() {
            return true;
        }
        let tr = self.cpu.tr;
        if tr.sel & !3 == 0 || !matches!(tr.desc.system_kind(), Some(SystemKind::Tss32Busy | SystemKind::Tss32Avail)) {
            return false;
        }
        let n = (tr.limit as usize + 1).min(104 + 8192 + 2);
        let mut buf = vec![0u8; n];
        let _ = self.read_sys_bytes(tr.base, &mut buf);
        ringfold_arch::tss::io_allowed(tr.limit, |o| buf.get(o as usize).copied(), port, size as u8)
    }

    fn port_in(&mut self, port: u16, size: u32) -> Result<u32, Trap> {
        self.io_count += 1;
        self.ports.read(port, size as u8).map_err(|e| Trap::Stop(Stop::Io { eip: self.cpu.eip, what: e.to_string() }))
    }

    fn port_out(&mut self, port: u16, size: u32, v: u32) -> R {
        self.io_count += 1;
        self.ports
            .write(port, size as u8, v)
            .map_err(|e| Trap::Stop(Stop::Io { eip: self.cpu.eip, what: e.to_string() }))?;
        if let Some(ringfold_devices::ExitRequest::Status(s)) = self.ports.take_exit() {
            return Err(Trap::Stop(Stop::Exit(s)));
        }
        Ok(())
    }

    pub(crate) fn string_count(&self, i: &Instruction) -> Option<u32> {
        if i.has_rep_prefix() || i.has_repne_prefix() {
            Some(if Self::addr16(i) { self.cpu.gpr[1] & 0xFFFF } else { self.cpu.gpr[1] })
        } else {
            None
        }
    }

    pub(crate) fn addr16(i: &Instruction) -> bool {
        // String instructions: the address size decides SI/DI vs ESI/EDI and CX vs ECX.
        matches!(i.op_kind(0), OpKind::MemorySegSI | OpKind::MemoryESDI)
            || matches!(i.op_kind(1), OpKind::MemorySegSI | OpKind::MemoryESDI)
    }

    pub(crate) fn adv(&mut self, reg: usize, size: u32, a16: bool) {
        let d = if self.cpu.eflags & eflags::DF != 0 { size.wrapping_neg() } else { size };
        if a16 {
            let v = (self.cpu.gpr[reg].wrapping_add(d)) & 0xFFFF;
            self.cpu.gpr[reg] = (self.cpu.gpr[reg] & 0xFFFF_0000) | v;
        } else {
            self.cpu.gpr[reg] = self.cpu.gpr[reg].wrapping_add(d);
        }
    }

    pub(crate) fn dec_count(&mut self, a16: bool) -> u32 {
        if a16 {
            let v = (self.cpu.gpr[1].wrapping_sub(1)) & 0xFFFF;
            self.cpu.gpr[1] = (self.cpu.gpr[1] & 0xFFFF_0000) | v;
            v
        } else {
            self.cpu.gpr[1] = self.cpu.gpr[1].wrapping_sub(1);
            self.cpu.gpr[1]
        }
    }

    /// INS/OUTS with optional REP. Registers are updated per element so that an exception
    /// in the middle leaves a restartable state, as on hardware.
    fn string_io(&mut self, i: &Instruction, out: bool, size: u32) -> R {
        let port = self.cpu.gpr[2] as u16;
        if !self.io_permitted(port, size) {
            return Err(Fault::gp(0).into());
        }
        let a16 = Self::addr16(i);
        let rep = self.string_count(i);
        if rep == Some(0) {
            self.cpu.eip = i.next_ip32();
            return Ok(());
        }
        loop {
            if out {
                let si = if a16 { self.cpu.gpr[6] & 0xFFFF } else { self.cpu.gpr[6] };
                let v = self.read_seg(Self::mem_seg(i), si, size)?;
                self.port_out(port, size, v)?;
                self.adv(6, size, a16);
            } else {
                let di = if a16 { self.cpu.gpr[7] & 0xFFFF } else { self.cpu.gpr[7] };
                // The destination is checked before the port is read (no lost input).
                self.seg_addr(Sreg::Es, di, size, true)?;
                let v = self.port_in(port, size)?;
                self.write_seg(Sreg::Es, di, size, v)?;
                self.adv(7, size, a16);
            }
            if rep.is_none() || self.dec_count(a16) == 0 {
                break;
            }
        }
        self.cpu.eip = i.next_ip32();
        Ok(())
    }

    fn load_far_pointer(&mut self, i: &Instruction, size: u32) -> Ex<(u32, u16)> {
        let off = self.ea(i);
        let s = Self::mem_seg(i);
        let o = self.read_seg(s, off, size)?;
        let sel = self.read_seg(s, off.wrapping_add(size), 2)? as u16;
        Ok((o, sel))
    }

    fn read_cr(&self, n: usize) -> Ex<u32> {
        Ok(match n {
            0 => self.cpu.cr0,
            2 => self.cpu.cr2,
            3 => self.cpu.cr3,
            4 => self.cpu.cr4,
            _ => return Err(Fault::ud()),
        })
    }

    /// With PAE paging active, the PDPTEs are loaded (and checked) at the time CR3, CR0 or
    /// CR4 is written: reserved bits set in a present PDPTE raise #GP(0).
    fn check_pdptes(&mut self, cr0v: u32, cr3v: u32, cr4v: u32) -> Ex<()> {
        if cr0v & cr0::PG != 0 && cr4v & cr4::PAE != 0 {
            let mut e = [0u64; 4];
            for (k, x) in e.iter_mut().enumerate() {
                *x = self.read_phys_u64((cr3v & !0x1F).wrapping_add(k as u32 * 8));
            }
            let bad = e.iter().any(|p| p & 1 != 0 && p & (0xFFFF_FFF0_0000_01E6u64) != 0);
            if bad {
                return Err(Fault::gp(0));
            }
        }
        Ok(())
    }

    fn read_phys_u64(&mut self, pa: u32) -> u64 {
        let mut b = [0u8; 8];
        self.mem.read(pa, &mut b);
        u64::from_le_bytes(b)
    }

    fn write_cr(&mut self, n: usize, v: u32) -> R {
        match n {
            0 => {
                if v & cr0::PG != 0 && v & cr0::PE == 0 || v & cr0::NW != 0 && v & cr0::CD == 0 {
                    return Err(Fault::gp(0).into());
                }
                if v & cr0::PE == 0 {
                    return Err(self.unsupported("clearing CR0.PE (real mode is not supported yet)"));
                }
                let old = self.cpu.cr0;
                if v & cr0::PG != 0 && old & cr0::PG == 0 {
                    self.check_pdptes(v, self.cpu.cr3, self.cpu.cr4)?;
                }
                self.cpu.cr0 = v | cr0::ET;
                if (old ^ v) & (cr0::PG | cr0::WP) != 0 {
                    self.tlb_events.push(TlbEvent::FlushAll);
                }
            }
            2 => self.cpu.cr2 = v,
            3 => {
                self.check_pdptes(self.cpu.cr0, v, self.cpu.cr4)?;
                self.cpu.cr3 = v;
                self.tlb_events.push(TlbEvent::FlushNonGlobal);
            }
            4 => {
                if v & !cr4::SUPPORTED != 0 {
                    return Err(Fault::gp(0).into());
                }
                let old = self.cpu.cr4;
                if (old ^ v) & cr4::PAE != 0 {
                    self.check_pdptes(self.cpu.cr0, self.cpu.cr3, v)?;
                }
                self.cpu.cr4 = v;
                if (old ^ v) & (cr4::PSE | cr4::PAE) != 0 {
                    self.tlb_events.push(TlbEvent::FlushAll);
                } else if (old ^ v) & cr4::PGE != 0 {
                    self.tlb_events.push(TlbEvent::FlushGlobal);
                }
            }
            _ => return Err(Fault::ud().into()),
        }
        Ok(())
    }

    fn rdmsr(&mut self, n: u32) -> Ex<u64> {
        Ok(match n {
            msr::TSC => self.guest_tsc(),
            msr::SYSENTER_CS => self.cpu.sysenter_cs as u64,
            msr::SYSENTER_ESP => self.cpu.sysenter_esp as u64,
            msr::SYSENTER_EIP => self.cpu.sysenter_eip as u64,
            msr::PAT => self.cpu.pat,
            msr::EFER => self.cpu.efer,
            msr::APIC_BASE => match &self.apic {
                Some(a) => a.read(),
                None => return Err(Fault::gp(0)),
            },
            msr::TSC_DEADLINE => match &self.apic {
                Some(a) => a.tsc_deadline(),
                None => return Err(Fault::gp(0)),
            },
            _ => return Err(Fault::gp(0)),
        })
    }

    fn wrmsr(&mut self, n: u32, v: u64) -> Ex<()> {
        match n {
            msr::TSC => self.cpu.tsc_offset = (v as i64).wrapping_sub((self.clock)() as i64),
            msr::SYSENTER_CS => self.cpu.sysenter_cs = v as u32 & 0xFFFF,
            msr::SYSENTER_ESP => self.cpu.sysenter_esp = v as u32,
            msr::SYSENTER_EIP => self.cpu.sysenter_eip = v as u32,
            msr::PAT => self.cpu.pat = v,
            // Only NXE is supported (no SYSCALL in legacy mode, no long mode).
            msr::EFER if v & !EFER_NXE == 0 => {
                if (self.cpu.efer ^ v) & EFER_NXE != 0 {
                    self.tlb_events.push(TlbEvent::FlushAll);
                }
                self.cpu.efer = v;
            }
            msr::APIC_BASE if self.apic.is_some() && v & ringfold_devices::APIC_BASE_MSR_RESERVED == 0 => {
                if let Some(a) = self.apic.as_mut() {
                    a.write(v);
                }
                // Enabling/disabling the APIC changes where interrupts go: count it as a
                // device access so the run loop recomputes the platform's state.
                self.io_count += 1;
            }
            msr::TSC_DEADLINE if self.apic.is_some() => {
                let ahead = v.saturating_sub(self.guest_tsc());
                if let Some(a) = self.apic.as_mut() {
                    a.write_tsc_deadline(v, ahead);
                }
                // The timer's deadline moved: the run loop re-arms the host timer.
                self.io_count += 1;
            }
            _ => return Err(Fault::gp(0)),
        }
        Ok(())
    }

    pub fn guest_tsc(&self) -> u64 {
        ((self.clock)() as i64).wrapping_add(self.cpu.tsc_offset) as u64
    }

    /// LAR/LSL/VERR/VERW visibility: the descriptor if this CPL may see it.
    fn visible_descriptor(&mut self, sel: u16, types_ok: impl Fn(&Descriptor) -> bool) -> Option<Descriptor> {
        let s = Selector(sel);
        if s.is_null() {
            return None;
        }
        let (d, _) = self.read_descriptor(s).ok()?;
        if !types_ok(&d) {
            return None;
        }
        let conforming_code = d.s && d.is_code() && d.conforming();
        if !conforming_code && (self.cpu.cpl > d.dpl || s.rpl() > d.dpl) {
            return None;
        }
        Some(d)
    }

    fn set_zf(&mut self, z: bool) {
        if z { self.cpu.eflags |= eflags::ZF } else { self.cpu.eflags &= !eflags::ZF }
    }

    fn exec_inner(&mut self, i: &Instruction) -> R {
        let next = i.next_ip32();
        let cpl = self.cpu.cpl;
        use Mnemonic as Mn;
        match i.mnemonic() {
            Mn::Pushf | Mn::Pushfd => {
                let sz = if i.code() == Code::Pushfw { 2 } else { 4 };
                let v = self.cpu.eflags & !(eflags::VM | eflags::RF);
                self.push(sz, v)?;
            }
            Mn::Popf | Mn::Popfd => {
                let op32 = i.code() != Code::Popfw;
                let v = self.pop(if op32 { 4 } else { 2 })?;
                let v = if op32 { v } else { (self.cpu.eflags & 0xFFFF_0000) | v };
                self.cpu.eflags = eflags::popf_apply(self.cpu.eflags, v, cpl, op32);
            }
            Mn::Cli | Mn::Sti => {
                if cpl > self.cpu.iopl() {
                    return Err(Fault::gp(0).into());
                }
                if i.mnemonic() == Mn::Cli {
                    self.cpu.eflags &= !eflags::IF;
                } else {
                    if self.cpu.eflags & eflags::IF == 0 {
                        self.cpu.shadow = true;
                    }
                    self.cpu.eflags |= eflags::IF;
                }
            }
            Mn::Hlt => {
                self.need_cpl0()?;
                self.cpu.eip = next;
                self.cpu.halted = true;
                return Ok(());
            }
            Mn::In | Mn::Out => {
                let (data_op, port_op) = if i.mnemonic() == Mn::In { (0, 1) } else { (1, 0) };
                let size = i.op_register(data_op).size() as u32;
                let port = match i.op_kind(port_op) {
                    OpKind::Register => self.cpu.gpr[2] as u16,
                    _ => i.immediate(port_op) as u16,
                };
                if !self.io_permitted(port, size) {
                    return Err(Fault::gp(0).into());
                }
                if i.mnemonic() == Mn::In {
                    let v = self.port_in(port, size)?;
                    self.cpu.set_reg(0, size, v);
                } else {
                    let v = self.cpu.get_reg(0, size);
                    self.cpu.eip = next;
                    self.port_out(port, size, v)?;
                }
            }
            Mn::Insb | Mn::Insw | Mn::Insd | Mn::Outsb | Mn::Outsw | Mn::Outsd => {
                let size = i.memory_size().size() as u32;
                let out = matches!(i.mnemonic(), Mn::Outsb | Mn::Outsw | Mn::Outsd);
                return self.string_io(i, out, size);
            }
            Mn::Int => {
                self.software_interrupt(i.immediate8(), next)?;
                return Ok(());
            }
            Mn::Int3 => {
                self.software_interrupt(3, next)?;
                return Ok(());
            }
            Mn::Into => {
                if self.cpu.eflags & eflags::OF != 0 {
                    self.software_interrupt(4, next)?;
                    return Ok(());
                }
            }
            Mn::Int1 => {
                self.cpu.eip = next;
                let saved = self.cpu.clone();
                if let Err(f) = self.deliver(1, None, crate::xfer::EventKind::External, next) {
                    self.cpu = saved;
                    return Err(f.into());
                }
                return Ok(());
            }
            Mn::Bound => {
                let size = i.op_register(0).size() as u32;
                let off = self.ea(i);
                let s = Self::mem_seg(i);
                let lo = self.read_seg(s, off, size)?;
                let hi = self.read_seg(s, off.wrapping_add(size), size)?;
                let v = self.cpu.get_reg(i.op_register(0).number(), size);
                let sx = |x: u32| if size == 2 { x as u16 as i16 as i32 } else { x as i32 };
                if sx(v) < sx(lo) || sx(v) > sx(hi) {
                    return Err(Fault { vector: 5, error: None }.into());
                }
            }
            Mn::Ud0 | Mn::Ud1 | Mn::Ud2 => return Err(Fault::ud().into()),
            Mn::Ret => {
                let size = if i.code() == Code::Retnw || i.code() == Code::Retnw_imm16 { 2 } else { 4 };
                let t = self.peek(0, size)?;
                self.check_cs_limit(t)?;
                let imm = if i.op_count() > 0 { i.immediate16() as u32 } else { 0 };
                let sp = self.sp().wrapping_add(size + imm);
                self.set_sp(sp);
                self.cpu.eip = t;
                return Ok(());
            }
            Mn::Jmp | Mn::Call if i.is_jmp_far() || i.is_call_far() || i.is_jmp_far_indirect() || i.is_call_far_indirect() => {
                let call = i.mnemonic() == Mn::Call;
                let (off, sel, size) = if i.op_kind(0) == OpKind::FarBranch32 || i.op_kind(0) == OpKind::FarBranch16 {
                    let size = if i.op_kind(0) == OpKind::FarBranch16 { 2 } else { 4 };
                    (i.far_branch32(), i.far_branch_selector(), size)
                } else {
                    let size = if i.memory_size().size() == 4 { 2 } else { 4 };
                    let (o, s) = self.load_far_pointer(i, size)?;
                    (o, s, size)
                };
                self.far_transfer(sel, off, call, size, next)?;
                return Ok(());
            }
            Mn::Jmp | Mn::Call => {
                // Near: relative (interpreted when a translation's inline form of it faulted
                // in its scratch, see `emit_thunk_call`), or indirect (register or memory).
                let (size, t) = match i.op0_kind() {
                    OpKind::NearBranch32 => (4, i.near_branch32()),
                    OpKind::NearBranch16 => (2, i.near_branch16() as u32),
                    _ => {
                        let size = Self::op_size(i, 0);
                        (size, self.read_op(i, 0, size)?)
                    }
                };
                let t = if size == 2 { t & 0xFFFF } else { t };
                self.check_cs_limit(t)?;
                if i.mnemonic() == Mn::Call {
                    self.push(size, next)?;
                }
                self.cpu.eip = t;
                return Ok(());
            }
            Mn::Retf => {
                let size = if matches!(i.code(), Code::Retfw | Code::Retfw_imm16) { 2 } else { 4 };
                let imm = if i.op_count() > 0 { i.immediate16() as u32 } else { 0 };
                self.far_return(size, imm)?;
                return Ok(());
            }
            Mn::Iret | Mn::Iretd => {
                let size = if i.code() == Code::Iretw { 2 } else { 4 };
                self.iret(size)??;
                return Ok(());
            }
            Mn::Mov if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() => {
                let s = Sreg::from_iced(i.op0_register()).unwrap();
                if s == Sreg::Cs {
                    return Err(Fault::ud().into());
                }
                let v = self.read_op(i, 1, 2)? as u16;
                self.load_data_seg(s, v)?;
            }
            Mn::Mov if i.op1_kind() == OpKind::Register && i.op1_register().is_segment_register() => {
                let s = Sreg::from_iced(i.op1_register()).unwrap();
                let v = self.cpu.sreg(s).sel as u32;
                if i.op0_kind() == OpKind::Register {
                    let r = i.op0_register();
                    // 32-bit destinations receive the zero-extended selector.
                    self.cpu.set_reg(r.number(), r.size() as u32, v);
                } else {
                    self.write_op(i, 0, 2, v)?;
                }
            }
            Mn::Push if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() => {
                let s = Sreg::from_iced(i.op0_register()).unwrap();
                let size = if matches!(i.code(), Code::Pushw_ES | Code::Pushw_CS | Code::Pushw_SS | Code::Pushw_DS | Code::Pushw_FS | Code::Pushw_GS) { 2 } else { 4 };
                let v = self.cpu.sreg(s).sel as u32;
                self.push(size, v)?;
            }
            Mn::Pop if i.op0_kind() == OpKind::Register && i.op0_register().is_segment_register() => {
                let s = Sreg::from_iced(i.op0_register()).unwrap();
                let size = if matches!(i.code(), Code::Popw_ES | Code::Popw_SS | Code::Popw_DS | Code::Popw_FS | Code::Popw_GS) { 2 } else { 4 };
                let v = self.peek(0, size)? as u16;
                self.load_data_seg(s, v)?;
                let sp = self.sp().wrapping_add(size);
                self.set_sp(sp);
            }
            Mn::Lds | Mn::Les | Mn::Lfs | Mn::Lgs | Mn::Lss => {
                let s = match i.mnemonic() {
                    Mn::Lds => Sreg::Ds,
                    Mn::Les => Sreg::Es,
                    Mn::Lfs => Sreg::Fs,
                    Mn::Lgs => Sreg::Gs,
                    _ => Sreg::Ss,
                };
                let r = i.op0_register();
                let size = r.size() as u32;
                let (off, sel) = self.load_far_pointer(i, size)?;
                self.load_data_seg(s, sel)?;
                self.cpu.set_reg(r.number(), size, off);
            }
            Mn::Lar | Mn::Lsl => {
                let sel = self.read_op(i, 1, 2)? as u16;
                let lar = i.mnemonic() == Mn::Lar;
                let d = self.visible_descriptor(sel, |d| {
                    if d.s {
                        return true;
                    }
                    match d.system_kind() {
                        Some(SystemKind::Tss16Avail | SystemKind::Tss16Busy | SystemKind::Ldt
                            | SystemKind::Tss32Avail | SystemKind::Tss32Busy) => true,
                        Some(SystemKind::CallGate16 | SystemKind::TaskGate | SystemKind::CallGate32) => lar,
                        _ => false,
                    }
                });
                self.set_zf(d.is_some());
                if let Some(d) = d {
                    let r = i.op0_register();
                    let v = if lar { (d.to_raw() >> 32) as u32 & 0x00F0_FF00 } else { d.limit() };
                    self.cpu.set_reg(r.number(), r.size() as u32, v);
                }
            }
            Mn::Verr | Mn::Verw => {
                let sel = self.read_op(i, 0, 2)? as u16;
                let w = i.mnemonic() == Mn::Verw;
                let d = self.visible_descriptor(sel, |d| d.s && if w { d.is_data() && d.writable() } else { d.readable() });
                self.set_zf(d.is_some());
            }
            Mn::Sgdt | Mn::Sidt => {
                let t = if i.mnemonic() == Mn::Sgdt { self.cpu.gdtr } else { self.cpu.idtr };
                let off = self.ea(i);
                let s = Self::mem_seg(i);
                self.seg_addr(s, off, 6, true)?;
                self.write_seg(s, off, 2, t.limit as u32)?;
                self.write_seg(s, off.wrapping_add(2), 4, t.base)?;
            }
            Mn::Sldt | Mn::Str | Mn::Smsw => {
                let v = match i.mnemonic() {
                    Mn::Sldt => self.cpu.ldtr.sel as u32,
                    Mn::Str => self.cpu.tr.sel as u32,
                    _ => self.cpu.cr0,
                };
                if i.op0_kind() == OpKind::Register {
                    let r = i.op0_register();
                    let v = if i.mnemonic() == Mn::Smsw && r.size() == 2 { v & 0xFFFF } else { v };
                    self.cpu.set_reg(r.number(), r.size() as u32, v);
                } else {
                    self.write_op(i, 0, 2, v & 0xFFFF)?;
                }
            }
            Mn::Lgdt | Mn::Lidt => {
                self.need_cpl0()?;
                let off = self.ea(i);
                let s = Self::mem_seg(i);
                let limit = self.read_seg(s, off, 2)? as u16;
                let mut base = self.read_seg(s, off.wrapping_add(2), 4)?;
                if i.code() == Code::Lgdt_m1632_16 || i.code() == Code::Lidt_m1632_16 {
                    base &= 0x00FF_FFFF;
                }
                let t = TableReg { base, limit };
                if i.mnemonic() == Mn::Lgdt { self.cpu.gdtr = t } else { self.cpu.idtr = t }
            }
            Mn::Lmsw => {
                self.need_cpl0()?;
                let v = self.read_op(i, 0, 2)?;
                // LMSW can set but not clear PE, and only touches PE MP EM TS.
                let nv = (self.cpu.cr0 & !0xE) | (v & 0xF) | (self.cpu.cr0 & 1);
                self.write_cr(0, nv)?;
            }
            Mn::Lldt => {
                self.need_cpl0()?;
                let sel = self.read_op(i, 0, 2)? as u16;
                let s = Selector(sel);
                if s.is_null() {
                    self.cpu.ldtr = SysSeg { sel, ..Default::default() };
                } else {
                    let err = sel as u32 & 0xFFFC;
                    if s.ti_ldt() {
                        return Err(Fault::gp(err).into());
                    }
                    let (d, _) = self.read_descriptor(s)?;
                    if d.s || d.system_kind() != Some(SystemKind::Ldt) {
                        return Err(Fault::gp(err).into());
                    }
                    if !d.present {
                        return Err(Fault::np(err).into());
                    }
                    self.cpu.ldtr = SysSeg { sel, base: d.base, limit: d.limit(), desc: d };
                }
            }
            Mn::Ltr => {
                self.need_cpl0()?;
                let sel = self.read_op(i, 0, 2)? as u16;
                let s = Selector(sel);
                let err = sel as u32 & 0xFFFC;
                if s.is_null() {
                    return Err(Fault::gp(0).into());
                }
                if s.ti_ldt() {
                    return Err(Fault::gp(err).into());
                }
                let (d, addr) = self.read_descriptor(s)?;
                if d.s || !matches!(d.system_kind(), Some(SystemKind::Tss32Avail | SystemKind::Tss16Avail)) {
                    return Err(Fault::gp(err).into());
                }
                if !d.present {
                    return Err(Fault::np(err).into());
                }
                let busy = d.to_raw() | ringfold_arch::descriptor::TSS_BUSY_BIT;
                self.write_sys(addr + 5, 1, (busy >> 40) as u32 & 0xFF)?;
                let d = Descriptor::from_raw(busy);
                self.cpu.tr = SysSeg { sel, base: d.base, limit: d.limit(), desc: d };
            }
            Mn::Clts => {
                self.need_cpl0()?;
                self.cpu.cr0 &= !cr0::TS;
            }
            Mn::Mov if i.op0_register().is_cr() || i.op1_register().is_cr() => {
                self.need_cpl0()?;
                if i.op0_register().is_cr() {
                    let n = i.op0_register().number();
                    if !matches!(n, 0 | 2 | 3 | 4) {
                        return Err(Fault::ud().into());
                    }
                    let v = self.cpu.gpr[i.op1_register().number()];
                    self.write_cr(n, v)?;
                } else {
                    let v = self.read_cr(i.op1_register().number())?;
                    self.cpu.gpr[i.op0_register().number()] = v;
                }
            }
            Mn::Mov if i.op0_register().is_dr() || i.op1_register().is_dr() => {
                let to_dr = i.op0_register().is_dr();
                let mut n = if to_dr { i.op0_register().number() } else { i.op1_register().number() };
                if n == 4 || n == 5 {
                    if self.cpu.cr4 & cr4::DE != 0 {
                        return Err(Fault::ud().into());
                    }
                    n += 2;
                }
                self.need_cpl0()?;
                if to_dr {
                    let v = self.cpu.gpr[i.op1_register().number()];
                    self.cpu.dr[n] = match n {
                        6 => v | 0xFFFF_0FF0,
                        7 => (v | 0x400) & !0xD000,
                        _ => v,
                    };
                } else {
                    self.cpu.gpr[i.op0_register().number()] = self.cpu.dr[n];
                }
            }
            Mn::Invd | Mn::Wbinvd | Mn::Wbnoinvd => self.need_cpl0()?,
            Mn::Invlpg => {
                self.need_cpl0()?;
                // No segment checks: INVLPG never faults on its operand.
                let lin = self.cpu.sreg(Self::mem_seg(i)).desc.base.wrapping_add(self.ea(i));
                self.tlb_events.push(TlbEvent::Invlpg(lin & !0xFFF));
            }
            Mn::Rdmsr => {
                self.need_cpl0()?;
                let v = self.rdmsr(self.cpu.gpr[1])?;
                self.cpu.gpr[0] = v as u32;
                self.cpu.gpr[2] = (v >> 32) as u32;
            }
            Mn::Wrmsr => {
                self.need_cpl0()?;
                let v = (self.cpu.gpr[2] as u64) << 32 | self.cpu.gpr[0] as u64;
                self.wrmsr(self.cpu.gpr[1], v)?;
            }
            Mn::Rdtsc => {
                if self.cpu.cr4 & cr4::TSD != 0 && cpl > 0 {
                    return Err(Fault::gp(0).into());
                }
                let t = self.guest_tsc();
                self.cpu.gpr[0] = t as u32;
                self.cpu.gpr[2] = (t >> 32) as u32;
            }
            Mn::Rdpmc => {
                if self.cpu.cr4 & cr4::PCE == 0 && cpl > 0 {
                    return Err(Fault::gp(0).into());
                }
                // No performance counters are virtualized: every counter index is invalid.
                return Err(Fault::gp(0).into());
            }
            Mn::Cpuid => {
                let r = cpuid::cpuid(self.cpu.gpr[0], self.cpu.gpr[1], self.apic.is_some());
                self.cpu.gpr[0] = r[0];
                self.cpu.gpr[3] = r[1];
                self.cpu.gpr[1] = r[2];
                self.cpu.gpr[2] = r[3];
            }
            Mn::Sysenter => {
                self.sysenter()?;
                return Ok(());
            }
            Mn::Sysexit => {
                self.sysexit()?;
                return Ok(());
            }
            // Invalid encodings, and instructions our CPUID does not advertise (or that are
            // invalid in legacy mode): #UD as on such a CPU. RDTSCP/RDPID: no CPUID bit;
            // SYSCALL/SYSRET: EFER.SCE can't be set; VEX/EVEX: no AVX.
            _ => return Err(Fault::ud().into()),
        }
        self.cpu.eip = next;
        Ok(())
    }

    /// STOS/MOVS/LODS with optional REP, element by element through the guest's segment
    /// and page checks (used when the host cannot map the memory they touch). Registers
    /// advance per element, so a fault leaves the restartable state hardware leaves.
    pub fn string_data(&mut self, i: &Instruction) -> Option<Ex<()>> {
        use Mnemonic as Mn;
        if matches!(i.mnemonic(), Mn::Cmpsb | Mn::Cmpsw | Mn::Cmpsd) && matches!(i.op0_kind(), OpKind::MemorySegESI | OpKind::MemorySegSI) {
            return Some(self.string_compare(i));
        }
        let (store, load) = match i.mnemonic() {
            Mn::Stosb | Mn::Stosw | Mn::Stosd => (true, false),
            Mn::Movsb | Mn::Movsw | Mn::Movsd if i.op_count() == 2 && i.op1_kind() != OpKind::Register => (true, true),
            Mn::Lodsb | Mn::Lodsw | Mn::Lodsd => (false, true),
            _ => return None,
        };
        let size = i.memory_size().size() as u32;
        let a16 = Self::addr16(i);
        let rep = self.string_count(i);
        let r = (|| {
            if rep == Some(0) {
                return Ok(());
            }
            loop {
                let v = if load {
                    let si = if a16 { self.cpu.gpr[6] & 0xFFFF } else { self.cpu.gpr[6] };
                    self.read_seg(Self::mem_seg(i), si, size)?
                } else {
                    self.cpu.get_reg(0, size)
                };
                if store {
                    let di = if a16 { self.cpu.gpr[7] & 0xFFFF } else { self.cpu.gpr[7] };
                    self.write_seg(Sreg::Es, di, size, v)?;
                    self.adv(7, size, a16);
                } else {
                    self.cpu.set_reg(0, size, v);
                }
                if load {
                    self.adv(6, size, a16);
                }
                if rep.is_none() || self.dec_count(a16) == 0 {
                    return Ok(());
                }
            }
        })();
        if r.is_ok() {
            self.cpu.eip = i.next_ip32();
        }
        Some(r)
    }

    /// CMPS (REPE/REPNE too): flags of seg:[ESI] - ES:[EDI], both advanced; a fault
    /// leaves the registers of the iterations done, as the CPU does.
    fn string_compare(&mut self, i: &Instruction) -> Ex<()> {
        let size = i.memory_size().size() as u32;
        let a16 = Self::addr16(i);
        let rep = self.string_count(i);
        if rep != Some(0) {
            loop {
                let (si, di) = if a16 { (self.cpu.gpr[6] & 0xFFFF, self.cpu.gpr[7] & 0xFFFF) } else { (self.cpu.gpr[6], self.cpu.gpr[7]) };
                let a = self.read_seg(Self::mem_seg(i), si, size)?;
                let b = self.read_seg(Sreg::Es, di, size)?;
                let (_, flags, written) = crate::alu::alu(crate::alu::AluOp::Cmp, a, b, false, size);
                self.cpu.eflags = (self.cpu.eflags & !written) | (flags & written);
                self.adv(6, size, a16);
                self.adv(7, size, a16);
                if rep.is_none() || self.dec_count(a16) == 0 {
                    break;
                }
                let zf = flags & eflags::ZF != 0;
                if (i.has_repe_prefix() && !zf) || (i.has_repne_prefix() && zf) {
                    break;
                }
            }
        }
        self.cpu.eip = i.next_ip32();
        Ok(())
    }

    /// The instruction at the current EIP needs emulation because it must raise #NM
    /// (x87/SSE with CR0.TS or CR0.EM) or #UD (SSE without CR4.OSFXSR).
    pub fn fpu_unavailable(&mut self, sse: bool) -> Result<(), Stop> {
        let f = if sse && (self.cpu.cr4 & cr4::OSFXSR == 0 || self.cpu.cr0 & cr0::EM != 0) {
            Fault::ud()
        } else {
            Fault { vector: 7, error: None }
        };
        self.raise(f)
    }

    /// Replace a segment register's cache wholesale (used at Multiboot entry).
    pub fn set_seg(&mut self, s: Sreg, r: SegReg) {
        self.cpu.seg[s as usize] = r;
    }
}
