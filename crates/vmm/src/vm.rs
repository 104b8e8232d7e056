//! The run loop: translate, enter the guest through the host layer, handle exits.

use crate::cpu::{cr0, cr4, Cpu, SegReg, Sreg};
use crate::machine::{Fault, Machine, Memory, Stop};
use crate::translate::{Key, SiteKind, TCache, TranslateError};
use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, Mnemonic, OpAccess};
use ringfold_arch::{eflags, shadow};
use ringfold_devices::PortBus;
use ringfold_host::ctx::EXIT_SIGNAL;
use ringfold_host::layout::{HOST_CS64, MONITOR_START, TC_SIZE, TC_START};
use ringfold_host::{ldt_selector, HostError, HostVm, LdtEntry, FIRST_SHADOW_SLOT, TC_CS_SLOT};
use crate::fxhash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Guest RAM backed by the host memfd, with self-modifying-code tracking.
pub struct HostMemory {
    host: HostVm,
    ram_size: u32,
    /// Pages write-protected because translations were made from them.
    protected: HashSet<u32>,
    /// Protected pages the monitor itself wrote (translations to drop).
    dirty: Vec<u32>,
}

impl Memory for HostMemory {
    fn read(&mut self, pa: u32, buf: &mut [u8]) {
        let ram = self.host.space().ram();
        let start = pa as usize;
        let avail = (self.ram_size as usize).saturating_sub(start).min(buf.len());
        if avail > 0 {
            buf[..avail].copy_from_slice(&ram[start..start + avail]);
        }
        buf[avail..].fill(0xFF);
    }

    fn write(&mut self, pa: u32, data: &[u8]) {
        let start = pa as usize;
        let avail = (self.ram_size as usize).saturating_sub(start).min(data.len());
        if avail == 0 {
            return;
        }
        let (first, last) = (pa >> 12, (pa + avail as u32 - 1) >> 12);
        for p in first..=last {
            if self.protected.contains(&p) {
                self.dirty.push(p);
            }
        }
        self.host.space_mut().ram_mut()[start..start + avail].copy_from_slice(&data[..avail]);
    }
}

/// Shadow descriptors in the process LDT, shared between segment registers whose converted
/// descriptors are identical. A slot never changes while a segment register uses it, which
/// gives the guest the descriptor-cache semantics of a real CPU.
struct Shadows {
    slots: Vec<Option<u64>>,
    by_desc: HashMap<u64, u16>,
    clock: usize,
    /// Per segment register: the guest register and host selector used at the last entry
    /// (most entries load the same segments again).
    last: [(SegReg, u16); 6],
}

const SHADOW_SLOTS: usize = 64;

impl Shadows {
    fn new() -> Self {
        Shadows { slots: vec![None; SHADOW_SLOTS], by_desc: HashMap::default(), clock: 0, last: [(SegReg::default(), 0); 6] }
    }

    /// Host selector for a guest segment register (0 for a null selector).
    fn selector(&mut self, host: &mut HostVm, r: &SegReg, in_use: &[u16]) -> Result<u16, Stop> {
        if !r.valid {
            return Ok(0);
        }
        let (f, _kind) = shadow::shadow_data_segment(&r.desc, MONITOR_START).map_err(|e| Stop::Unsupported {
            eip: 0,
            what: format!("segment {:#x} cannot be shadowed: {e:?}", r.sel),
        })?;
        let raw = shadow::installed_descriptor(&f);
        if let Some(&slot) = self.by_desc.get(&raw) {
            return Ok(ldt_selector(slot));
        }
        // Pick a free slot, or evict one not loaded in any segment register.
        let idx = match self.slots.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None => loop {
                self.clock = (self.clock + 1) % SHADOW_SLOTS;
                let sel = ldt_selector(FIRST_SHADOW_SLOT + self.clock as u16);
                if !in_use.contains(&sel) {
                    if let Some(old) = self.slots[self.clock].take() {
                        self.by_desc.remove(&old);
                    }
                    for l in self.last.iter_mut().filter(|l| l.1 == sel) {
                        l.1 = u16::MAX;
                    }
                    break self.clock;
                }
            },
        };
        let slot = FIRST_SHADOW_SLOT + idx as u16;
        let e = LdtEntry {
            base: f.base_addr,
            limit: f.limit,
            seg_32bit: f.seg_32bit,
            contents: f.contents,
            read_exec_only: f.read_exec_only,
            limit_in_pages: f.limit_in_pages,
            seg_not_present: f.seg_not_present,
            useable: f.useable,
        };
        host.set_ldt(slot, Some(&e)).map_err(|e| Stop::Unsupported { eip: 0, what: e.to_string() })?;
        self.slots[idx] = Some(raw);
        self.by_desc.insert(raw, slot);
        Ok(ldt_selector(slot))
    }
}

/// Counters of monitor activity.
#[derive(Clone, Copy, Debug, Default)]
pub struct VmStats {
    pub entries: u64,
    pub site_exits: u64,
    pub signal_exits: u64,
    pub smc_faults: u64,
}

/// A virtual machine: one vCPU, guest RAM, ports, translation cache.
pub struct Vm {
    pub m: Machine<HostMemory>,
    tc: TCache,
    shadows: Shadows,
    pub stats: VmStats,
    /// Run the next instruction from a one-shot translation (after a store into a page of
    /// translated code, so that the store can complete while the page is writable).
    single_once: bool,
}

const ARITH: u32 = eflags::CF | eflags::PF | eflags::AF | eflags::ZF | eflags::SF | eflags::DF | eflags::OF;

fn exit_stub(site: u32) -> [u8; 19] {
    let mut s = [0u8; ringfold_host::EXIT_STUB_LEN];
    ringfold_host::write_exit_stub(&mut s, site);
    s
}

impl Vm {
    /// Creates the VM (reserving the process's low 4 GiB) with `ram_size` bytes of RAM.
    pub fn new(ram_size: u64, ports: PortBus) -> Result<Vm, HostError> {
        let host = HostVm::new(ram_size)?;
        let mem = HostMemory { host, ram_size: ram_size as u32, protected: HashSet::default(), dirty: Vec::new() };
        let mut m = Machine::new(mem, ports);
        m.clock = ringfold_host::rdtsc;
        m.cpu.tsc_offset = -(ringfold_host::rdtsc() as i64);
        Ok(Vm {
            m,
            tc: TCache::new(TC_START, TC_SIZE, exit_stub, HOST_CS64),
            shadows: Shadows::new(),
            stats: VmStats::default(),
            single_once: false,
        })
    }

    pub fn ram_mut(&mut self) -> &mut [u8] {
        self.m.mem.host.space_mut().ram_mut()
    }

    pub fn cpu_mut(&mut self) -> &mut Cpu {
        &mut self.m.cpu
    }

    pub fn tc_stats(&self) -> crate::translate::TcStats {
        self.tc.stats
    }

    /// Installs the seccomp filter: from here on the process can make no system call from
    /// below 4 GiB or through a 32-bit ABI.
    pub fn lock_down(&mut self) -> Result<(), HostError> {
        self.m.mem.host.lock_down()
    }

    fn key(&self) -> Key {
        let c = &self.m.cpu;
        let cs = c.sreg(Sreg::Cs);
        let fpu = ((c.cr0 & cr0::TS != 0) as u8)
            | (((c.cr0 & cr0::EM != 0) as u8) << 1)
            | (((c.cr4 & cr4::OSFXSR != 0) as u8) << 2)
            | (((c.cr0 & cr0::MP != 0) as u8) << 3);
        Key { lin: cs.desc.base.wrapping_add(c.eip), cs_base: cs.desc.base, cs_limit: cs.desc.limit(), cpl: c.cpl, fpu }
    }

    /// Drops translations of pages the monitor wrote, and unprotects those pages.
    fn sync_code_writes(&mut self) -> Result<(), Stop> {
        while let Some(p) = self.m.mem.dirty.pop() {
            self.drop_code_page(p)?;
        }
        Ok(())
    }

    fn drop_code_page(&mut self, p: u32) -> Result<(), Stop> {
        let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
        let before = self.tc.stats.flushes;
        self.tc.invalidate_page(tc, p);
        if self.tc.stats.flushes != before {
            self.unprotect_all()?;
        }
        if self.m.mem.protected.remove(&p) {
            self.m.mem.host.space_mut().set_page_writable(p, true).map_err(host_stop)?;
        }
        Ok(())
    }

    fn unprotect_all(&mut self) -> Result<(), Stop> {
        let pages: Vec<u32> = self.m.mem.protected.drain().collect();
        for p in pages {
            self.m.mem.host.space_mut().set_page_writable(p, true).map_err(host_stop)?;
        }
        Ok(())
    }

    fn translate_once(&mut self, key: Key) -> Result<u32, Stop> {
        let ram_size = self.m.mem.ram_size as usize;
        let flushes = self.tc.stats.flushes;
        let (tc, ram) = self.m.mem.host.space_mut().tc_and_ram();
        let r = self.tc.translate_once(tc, key, |lin, buf| {
            for (k, b) in buf.iter_mut().enumerate() {
                let a = lin.wrapping_add(k as u32) as usize;
                *b = if a < ram_size { ram[a] } else { 0xFF };
            }
        });
        let h = r.map_err(|e| Stop::Unsupported { eip: key.eip(), what: e.to_string() })?;
        if self.tc.stats.flushes != flushes {
            self.unprotect_all()?;
        }
        Ok(h)
    }

    fn translate(&mut self, key: Key) -> Result<u32, Stop> {
        if let Some(h) = self.tc.lookup(&key) {
            return Ok(h);
        }
        let ram_size = self.m.mem.ram_size as usize;
        let flushes = self.tc.stats.flushes;
        let (tc, ram) = self.m.mem.host.space_mut().tc_and_ram();
        let r = self.tc.translate(tc, key, |lin, buf| {
            for (k, b) in buf.iter_mut().enumerate() {
                let a = lin.wrapping_add(k as u32) as usize;
                *b = if a < ram_size { ram[a] } else { 0xFF };
            }
        });
        let h = r.map_err(|e| match e {
            TranslateError::Code16 | TranslateError::Branch16(_) => Stop::Unsupported { eip: key.eip(), what: e.to_string() },
        })?;
        if self.tc.stats.flushes != flushes {
            self.unprotect_all()?;
        }
        // Write-protect the guest pages the new block came from.
        let (first, last) = (key.lin >> 12, self.tc.blocks.last().map(|b| b.lin_end.wrapping_sub(1) >> 12).unwrap_or(key.lin >> 12));
        let mut p = first;
        loop {
            if !self.m.mem.protected.contains(&p) && ((p as u64) << 12) < self.m.mem.ram_size as u64 {
                self.m.mem.protected.insert(p);
                self.m.mem.host.space_mut().set_page_writable(p, false).map_err(host_stop)?;
            }
            if p == last {
                break;
            }
            p = p.wrapping_add(1);
        }
        Ok(h)
    }

    /// Runs the guest until it stops. Returns the reason (Stop::Exit for a guest exit).
    pub fn run(&mut self) -> Stop {
        loop {
            if let Err(s) = self.step() {
                self.m.ports.flush_all();
                return s;
            }
        }
    }

    fn step(&mut self) -> Result<(), Stop> {
        self.sync_code_writes()?;
        if self.m.cpu.halted {
            // No interrupt sources exist yet: a halted CPU never wakes.
            return Err(Stop::HaltedForever(self.m.cpu.eip));
        }
        self.m.cpu.shadow = false;
        let cs = *self.m.cpu.sreg(Sreg::Cs);
        if !cs.desc.db {
            return Err(Stop::Unsupported { eip: self.m.cpu.eip, what: TranslateError::Code16.to_string() });
        }
        let key = self.key();
        let host_eip = if std::mem::take(&mut self.single_once) {
            self.translate_once(key)?
        } else {
            self.translate(key)?
        };
        self.enter(host_eip)?;
        let ctx = self.m.mem.host.ctx_mut();
        if ctx.exit_site == EXIT_SIGNAL {
            self.stats.signal_exits += 1;
            let (trapno, err, cr2, heip) = (ctx.trapno, ctx.err, ctx.cr2, ctx.eip);
            self.host_fault(trapno, err, cr2, heip)
        } else {
            self.stats.site_exits += 1;
            let site = ctx.exit_site as usize;
            self.site_exit(site)
        }
    }

    fn enter(&mut self, host_eip: u32) -> Result<(), Stop> {
        let mut sels = [0u16; 6];
        for s in [Sreg::Es, Sreg::Ss, Sreg::Ds, Sreg::Fs, Sreg::Gs] {
            let r = *self.m.cpu.sreg(s);
            let (last_r, last_sel) = self.shadows.last[s as usize];
            sels[s as usize] = if last_r == r && last_sel != u16::MAX {
                last_sel
            } else {
                let sel = self.shadows.selector(&mut self.m.mem.host, &r, &sels)?;
                self.shadows.last[s as usize] = (r, sel);
                sel
            };
        }
        let cpu = &self.m.cpu;
        let ctx = self.m.mem.host.ctx_mut();
        ctx.gpr = cpu.gpr;
        ctx.eflags = (cpu.eflags & ARITH) | 0x202;
        ctx.es = sels[0];
        ctx.ss = sels[2];
        ctx.ds = sels[3];
        ctx.fs = sels[4];
        ctx.gs = sels[5];
        ctx.cs = ldt_selector(TC_CS_SLOT);
        ctx.eip = host_eip;
        self.stats.entries += 1;
        self.m.mem.host.enter();
        let ctx = self.m.mem.host.ctx_mut();
        self.m.cpu.gpr = ctx.gpr;
        self.m.cpu.eflags = (self.m.cpu.eflags & !ARITH) | (ctx.eflags & ARITH);
        Ok(())
    }

    fn site_exit(&mut self, site: usize) -> Result<(), Stop> {
        let Some(kind) = self.tc.sites.get(site) else {
            return Err(Stop::Unsupported { eip: self.m.cpu.eip, what: format!("exit from unknown translator site {site}") });
        };
        // Copy what is needed out of the site without allocating (this is the hot path).
        let kind = match kind {
            SiteKind::Emulate(i, fill) => {
                let (i, fill): (iced_x86::Instruction, bool) = (**i, *fill);
                self.m.cpu.eip = i.ip32();
                let from = self.key();
                self.m.exec(&i)?;
                if fill {
                    // Miss path of an inline lookup: enter the target in the table, if the
                    // branch stayed in the same context and did not fault.
                    let to = self.key();
                    if (to.cs_base, to.cs_limit, to.cpl, to.fpu) == (from.cs_base, from.cs_limit, from.cpl, from.fpu)
                        && self.m.cpu.eip != i.ip32()
                    {
                        let flushes = self.tc.stats.flushes;
                        let h = self.translate(to)?;
                        if self.tc.stats.flushes == flushes {
                            let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
                            self.tc.fill_table(tc, &to, h);
                        }
                    }
                }
                return Ok(());
            }
            SiteKind::Fpu { eip, sse } => SiteKind::Fpu { eip: *eip, sse: *sse },
            SiteKind::FetchFault { eip } => SiteKind::FetchFault { eip: *eip },
            SiteKind::Dispatch { key } => SiteKind::Dispatch { key: *key },
            SiteKind::Link { target, branch_eip, patch, undo_push } => {
                SiteKind::Link { target: *target, branch_eip: *branch_eip, patch: *patch, undo_push: *undo_push }
            }
        };
        match kind {
            SiteKind::Emulate(..) => unreachable!(),
            SiteKind::Fpu { eip, sse } => {
                self.m.cpu.eip = eip;
                self.m.fpu_unavailable(sse)
            }
            SiteKind::FetchFault { eip } => {
                self.m.cpu.eip = eip;
                self.m.raise(Fault::gp(0))
            }
            SiteKind::Dispatch { key } => {
                self.m.cpu.eip = key.eip();
                Ok(())
            }
            SiteKind::Link { target, branch_eip, patch, undo_push } => {
                if target.eip() > target.cs_limit {
                    if undo_push {
                        self.m.cpu.gpr[4] = self.m.cpu.gpr[4].wrapping_add(4);
                    }
                    self.m.cpu.eip = branch_eip;
                    return self.m.raise(Fault::gp(0));
                }
                self.m.cpu.eip = target.eip();
                let h = self.translate(target)?;
                // The site may belong to a block flushed by that translation.
                if self.tc.sites.get(site).is_some_and(|s| matches!(s, SiteKind::Link { patch: p, .. } if *p == patch)) {
                    let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
                    self.tc.patch_link(tc, patch, h);
                }
                Ok(())
            }
        }
    }

    /// A fault in translated code, delivered by the host as a signal.
    fn host_fault(&mut self, trapno: u32, err: u32, cr2: u64, host_eip: u32) -> Result<(), Stop> {
        let Some((_key, geip, scratch)) = self.tc.guest_eip_of(host_eip) else {
            return Err(Stop::Unsupported {
                eip: self.m.cpu.eip,
                what: format!("host fault {trapno} at {host_eip:#x} outside translated code"),
            });
        };
        self.m.cpu.eip = geip;
        if scratch.in_seq {
            return self.rewind_and_interpret(scratch);
        }
        match trapno {
            0 => self.m.raise(Fault { vector: 0, error: None }),
            6 => self.m.raise(Fault::ud()),
            16 => self.m.raise(Fault { vector: 16, error: None }),
            17 => self.m.raise(Fault { vector: 17, error: Some(0) }),
            19 => self.m.raise(Fault { vector: 19, error: None }),
            11..=14 => self.memory_fault(trapno, err, cr2 as u32),
            _ => Err(Stop::Unsupported { eip: geip, what: format!("unexpected host trap {trapno} in guest code") }),
        }
    }

    /// A fault inside an inline lookup sequence: undo its scratch pushes and interpret the
    /// guest instruction (the interpreter raises the guest's own fault, if any).
    fn rewind_and_interpret(&mut self, sc: crate::translate::Scratch) -> Result<(), Stop> {
        let esp = self.m.cpu.gpr[4];
        let guest_esp = esp.wrapping_add(sc.reserve as u32 + 4 * sc.pushes as u32);
        let ss = self.m.cpu.sreg(Sreg::Ss).desc.base;
        let slot = |k: u32| ss.wrapping_add(guest_esp.wrapping_sub(sc.reserve as u32 + 4 * k));
        if sc.pushes >= 1 {
            self.m.cpu.gpr[0] = self.m.read_lin(slot(1), 4).unwrap_or(0);
        }
        if sc.pushes >= 2 {
            self.m.cpu.gpr[1] = self.m.read_lin(slot(2), 4).unwrap_or(0);
        }
        if sc.pushes >= 3 {
            self.m.cpu.gpr[2] = self.m.read_lin(slot(3), 4).unwrap_or(0);
        }
        self.m.cpu.gpr[4] = guest_esp;
        let cs = *self.m.cpu.sreg(Sreg::Cs);
        let mut bytes = [0u8; 16];
        let _ = self.m.read_lin_bytes(cs.desc.base.wrapping_add(self.m.cpu.eip), &mut bytes);
        let i = Decoder::with_ip(32, &bytes, self.m.cpu.eip as u64, DecoderOptions::NONE).decode();
        self.m.exec(&i)
    }

    fn memory_fault(&mut self, trapno: u32, err: u32, cr2: u32) -> Result<(), Stop> {
        if trapno == 14 && err & 2 != 0 && self.m.mem.protected.contains(&(cr2 >> 12)) {
            // The guest wrote a page holding translated code: drop those translations and
            // let the write happen (the faulting instruction restarts).
            self.stats.smc_faults += 1;
            self.single_once = true;
            return self.drop_code_page(cr2 >> 12);
        }
        let cs = *self.m.cpu.sreg(Sreg::Cs);
        let mut bytes = [0u8; 16];
        let _ = self.m.read_lin_bytes(cs.desc.base.wrapping_add(self.m.cpu.eip), &mut bytes);
        let i = Decoder::with_ip(32, &bytes, self.m.cpu.eip as u64, DecoderOptions::NONE).decode();
        // First: would the guest itself fault (segment checks against its own descriptors)?
        let mut f = InstructionInfoFactory::new();
        let info = f.info(&i);
        for mem in info.used_memory() {
            let seg = Sreg::from_iced(mem.segment()).unwrap_or(Sreg::Ds);
            let reg = |r: iced_x86::Register| {
                if r == iced_x86::Register::None { 0 } else { self.m.cpu.get_reg(r.number(), r.size() as u32) }
            };
            let mut off = reg(mem.base())
                .wrapping_add(reg(mem.index()).wrapping_mul(mem.scale()))
                .wrapping_add(mem.displacement() as u32);
            if mem.address_size() == iced_x86::CodeSize::Code16 {
                off &= 0xFFFF;
            }
            let write = matches!(mem.access(), OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite | OpAccess::ReadCondWrite);
            let size = mem.memory_size().size() as u32;
            if let Err(fault) = self.m.seg_addr(seg, off, size.max(1), write) {
                return self.m.raise(fault);
            }
        }
        // The access is legal for the guest but reaches memory the host cannot map
        // natively (page 0, non-RAM, the monitor region, a truncated segment's tail).
        if let Some(r) = self.emulate_data_access(&i) {
            return match r {
                Ok(()) => Ok(()),
                Err(f) => self.m.raise(f),
            };
        }
        Err(Stop::Unsupported {
            eip: self.m.cpu.eip,
            what: format!("`{i}` accesses linear memory ringfold cannot map (host trap {trapno}, address {cr2:#x}); only MOV/MOVZX/MOVSX are emulated there yet"),
        })
    }

    fn emulate_data_access(&mut self, i: &iced_x86::Instruction) -> Option<Result<(), Fault>> {
        let m = &mut self.m;
        let r = match i.mnemonic() {
            Mnemonic::Mov => {
                let size = Machine::<HostMemory>::op_size(i, 0).min(Machine::<HostMemory>::op_size(i, 1).max(1));
                let size = if i.op0_kind() == iced_x86::OpKind::Memory { i.memory_size().size() as u32 } else { size };
                m.read_op(i, 1, size).and_then(|v| m.write_op(i, 0, size, v))
            }
            Mnemonic::Movzx | Mnemonic::Movsx => {
                let src = i.memory_size().size() as u32;
                m.read_op(i, 1, src).and_then(|v| {
                    let v = match (i.mnemonic(), src) {
                        (Mnemonic::Movsx, 1) => v as u8 as i8 as i32 as u32,
                        (Mnemonic::Movsx, 2) => v as u16 as i16 as i32 as u32,
                        _ => v,
                    };
                    let d = i.op0_register();
                    m.cpu.set_reg(d.number(), d.size() as u32, v);
                    Ok(())
                })
            }
            _ => return None,
        };
        if r.is_ok() {
            self.m.cpu.eip = i.next_ip32();
        }
        Some(r)
    }
}

fn host_stop(e: ringfold_host::MemError) -> Stop {
    Stop::Unsupported { eip: 0, what: format!("host memory operation failed: {e}") }
}

/// Exit-site value the native runner's terminator reports.
const NATIVE_DONE: u32 = 0xFFFF_0000;

impl Vm {
    /// Runs raw 32-bit code at `entry` NATIVELY (untranslated, flat CS/DS/ES/SS, CPL3) from
    /// guest RAM, for the differential test's oracle. The runner appends a far jump back to
    /// the host at `end`. Returns the final GPRs and host EFLAGS, or the host trap number.
    pub fn run_native(&mut self, entry: u32, end: u32, gpr: [u32; 8], eflags: u32) -> Result<([u32; 8], u32), u32> {
        self.sync_code_writes().expect("sync");
        let stub_at = end + 7;
        let mut t = [0u8; 7];
        t[0] = 0xEA;
        t[1..5].copy_from_slice(&stub_at.to_le_bytes());
        t[5..7].copy_from_slice(&HOST_CS64.to_le_bytes());
        let mut s = [0u8; ringfold_host::EXIT_STUB_LEN];
        ringfold_host::write_exit_stub(&mut s, NATIVE_DONE);
        self.m.mem.write(end, &t);
        self.m.mem.write(stub_at, &s);
        self.sync_code_writes().expect("sync");
        let first = entry & !0xFFF;
        let len = ((stub_at + s.len() as u32 + 0xFFF) & !0xFFF) - first;
        let space = self.m.mem.host.space_mut();
        space.protect_low(first, len, true).expect("mprotect");
        let ds = ldt_selector(ringfold_host::FLAT_DS_SLOT);
        let ctx = self.m.mem.host.ctx_mut();
        ctx.gpr = gpr;
        ctx.eflags = eflags;
        (ctx.ds, ctx.es, ctx.ss, ctx.fs, ctx.gs) = (ds, ds, ds, 0, 0);
        ctx.cs = ldt_selector(TC_CS_SLOT);
        ctx.eip = entry;
        self.m.mem.host.enter();
        let ctx = self.m.mem.host.ctx_mut().clone();
        self.m.mem.host.space_mut().protect_low(first, len, false).expect("mprotect");
        if ctx.exit_site == NATIVE_DONE { Ok((ctx.gpr, ctx.eflags)) } else { Err(ctx.trapno) }
    }
}
