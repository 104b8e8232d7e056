//! The machine model the monitor emulates against: CPU state, guest memory, ports.
//! Pure logic over the [`Memory`] trait so that it is testable without a host VM.

use crate::cpu::{Cpu, Sreg};
use crate::cpu::cr0;
use ringfold_arch::paging::{self, AdUpdate, PagingMode, PhysMem};
use ringfold_arch::{Descriptor, Exception, Selector};
use ringfold_devices::{MmioBus, PortBus};

/// Guest-physical memory as the monitor sees it.
pub trait Memory {
    /// Reads guest-physical bytes; bytes that are not RAM read as 0xFF.
    fn read(&mut self, pa: u32, buf: &mut [u8]);
    /// Writes guest-physical bytes; bytes that are not RAM are ignored. Implementations
    /// invalidate translations of code on the written pages and shadow mappings derived
    /// from written page-table pages.
    fn write(&mut self, pa: u32, data: &[u8]);
    /// Whether `pa` is RAM (everything else is MMIO or unassigned).
    fn is_ram(&self, pa: u32) -> bool;
    /// Accessed/dirty-bit updates made by the monitor's own page walks: written like
    /// `write` but not treated as guest modifications of page tables.
    fn write_ad(&mut self, pa: u32, data: &[u8]) {
        self.write(pa, data)
    }
}

/// Page-walk access to guest-physical memory (addresses beyond 4 GiB are unassigned).
struct Phys<'a, M: Memory>(&'a mut M);

impl<M: Memory> PhysMem for Phys<'_, M> {
    fn read_u32(&mut self, pa: u64) -> u32 {
        let mut b = [0xFF; 4];
        if pa + 4 <= 1 << 32 {
            self.0.read(pa as u32, &mut b);
        }
        u32::from_le_bytes(b)
    }
    fn read_u64(&mut self, pa: u64) -> u64 {
        let mut b = [0xFF; 8];
        if pa + 8 <= 1 << 32 {
            self.0.read(pa as u32, &mut b);
        }
        u64::from_le_bytes(b)
    }
    fn write_u32(&mut self, pa: u64, v: u32) {
        if pa + 4 <= 1 << 32 {
            self.0.write_ad(pa as u32, &v.to_le_bytes());
        }
    }
    fn write_u64(&mut self, pa: u64, v: u64) {
        if pa + 8 <= 1 << 32 {
            self.0.write_ad(pa as u32, &v.to_le_bytes());
        }
    }
}

/// The interrupt side of the platform (PIC/APIC and timers), as the run loop sees it.
pub trait Platform {
    /// Advances device time to `now_ns`; true if an interrupt request is pending at the CPU.
    fn update(&mut self, now_ns: u64) -> bool;
    /// Interrupt acknowledge: the vector to deliver (None if the request went away).
    fn acknowledge(&mut self) -> Option<u8>;
    /// When (absolute monotonic ns) the next timer event is due, if any.
    fn next_deadline(&self) -> Option<u64>;
    /// Whether the guest asked the platform for a reset (reboot).
    fn reset_requested(&mut self) -> bool {
        false
    }
}

/// The local APIC's MSRs, which live with the platform's APIC: IA32_APIC_BASE (0x1B) and
/// IA32_TSC_DEADLINE (0x6E0).
pub trait ApicMsrs: Send {
    fn read(&self) -> u64;
    /// WRMSR IA32_APIC_BASE; the caller has already raised #GP for reserved bits.
    fn write(&mut self, v: u64);
    fn tsc_deadline(&self) -> u64;
    /// WRMSR IA32_TSC_DEADLINE with `tsc`, which is `ahead` TSC ticks from now (0: now or
    /// in the past).
    fn write_tsc_deadline(&mut self, tsc: u64, ahead: u64);
}

/// A change of the guest's address translation the shadow must follow (TLB semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbEvent {
    /// MOV CR3 (or a task switch): every non-global translation.
    FlushNonGlobal,
    /// Paging mode change (CR0.PG/WP, CR4.PSE/PAE, EFER.NXE): everything.
    FlushAll,
    /// CR4.PGE toggled (how Linux flushes global pages): every translation, but the
    /// walks stay the same (saved address spaces stay valid).
    FlushGlobal,
    /// INVLPG of one linear page.
    Invlpg(u32),
}

/// Guest-physical address used for linear addresses that translate above 4 GiB (PAE):
/// nothing is there.
pub const UNASSIGNED_PA: u32 = u32::MAX;

/// Plain RAM in a vector (tests and tools).
impl Memory for Vec<u8> {
    fn is_ram(&self, pa: u32) -> bool {
        (pa as usize) < self.len()
    }
    fn read(&mut self, pa: u32, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self.get(pa as usize + i).unwrap_or(&0xFF);
        }
    }
    fn write(&mut self, pa: u32, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            if let Some(d) = self.get_mut(pa as usize + i) {
                *d = *b;
            }
        }
    }
}

/// An exception to deliver to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error: Option<u32>,
}

impl Fault {
    pub fn new(e: Exception, error: Option<u32>) -> Self {
        Fault { vector: e.vector(), error }
    }
    pub fn gp(err: u32) -> Self {
        Fault { vector: 13, error: Some(err) }
    }
    pub fn ss(err: u32) -> Self {
        Fault { vector: 12, error: Some(err) }
    }
    pub fn np(err: u32) -> Self {
        Fault { vector: 11, error: Some(err) }
    }
    pub fn ts(err: u32) -> Self {
        Fault { vector: 10, error: Some(err) }
    }
    pub fn ud() -> Self {
        Fault { vector: 6, error: None }
    }
}

/// Result of an operation that may raise a guest exception.
pub type Ex<T> = Result<T, Fault>;

/// Why the machine cannot continue (not a guest exception).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("guest requested exit with status {0}")]
    Exit(i32),
    #[error("triple fault (guest vector {vector:#x} while delivering a double fault) at EIP {eip:#010x}: the machine resets; ringfold stops")]
    TripleFault { vector: u8, eip: u32 },
    #[error("guest halted with interrupts disabled at EIP {0:#010x}: nothing can wake it")]
    HaltedForever(u32),
    #[error("unsupported guest operation at EIP {eip:#010x}: {what}")]
    Unsupported { eip: u32, what: String },
    #[error("port I/O error at EIP {eip:#010x}: {what}")]
    Io { eip: u32, what: String },
    #[error("terminated by the user (Ctrl-A x)")]
    UserQuit,
    #[error("the guest requested a reset (reboot); ringfold stops")]
    Reset,
    #[error("the guest kernel panicked (see its console output above)")]
    GuestPanic,
}

pub struct Machine<M: Memory> {
    pub cpu: Cpu,
    pub mem: M,
    pub ports: PortBus,
    pub mmio: MmioBus,
    /// Host time-stamp counter source (guest TSC = clock() + offset).
    pub clock: fn() -> u64,
    /// Translation changes not yet applied to the shadow mappings and translations.
    pub tlb_events: Vec<TlbEvent>,
    /// Port and MMIO device accesses so far: device state (and so interrupt deadlines)
    /// can only change by an access, by time, or by an interrupt acknowledge.
    pub io_count: u64,
    /// The local APIC's base MSR, if the platform has one (it also sets CPUID.1:EDX.APIC).
    pub apic: Option<Box<dyn ApicMsrs>>,
}

impl<M: Memory> Machine<M> {
    pub fn new(mem: M, ports: PortBus) -> Self {
        Machine { cpu: Cpu::default(), mem, ports, mmio: MmioBus::new(), clock: || 0, tlb_events: Vec::new(), io_count: 0, apic: None }
    }

    // ----- linear memory -----

    pub fn paging_mode(&self) -> PagingMode {
        PagingMode::from_regs(self.cpu.cr0, self.cpu.cr4, self.cpu.efer)
    }

    /// Translates a linear address for an access (guest page walk when CR0.PG=1, setting
    /// accessed/dirty bits; CR2 and #PF on failure). Returns the guest-physical address
    /// (`UNASSIGNED_PA` above 4 GiB).
    pub fn translate(&mut self, lin: u32, write: bool, user: bool, fetch: bool) -> Ex<u32> {
        if self.cpu.cr0 & cr0::PG == 0 {
            return Ok(lin);
        }
        let mode = self.paging_mode();
        let acc = paging::Access { write, user, fetch };
        match paging::walk(&mut Phys(&mut self.mem), self.cpu.cr3, &mode, lin, acc, AdUpdate::AsWalked) {
            Ok(t) if t.pa < 1 << 32 => Ok(t.pa as u32),
            Ok(_) => Ok(UNASSIGNED_PA),
            Err(pf) => {
                self.cpu.cr2 = pf.cr2;
                Err(Fault { vector: 14, error: Some(pf.error_code) })
            }
        }
    }

    /// The full walk result for the shadow MMU (no fault side effects).
    pub fn walk(&mut self, lin: u32, acc: paging::Access) -> Result<paging::Translation, paging::PageFault> {
        let mode = self.paging_mode();
        paging::walk(&mut Phys(&mut self.mem), self.cpu.cr3, &mode, lin, acc, AdUpdate::AsWalked)
    }

    /// A walk that changes nothing (no accessed/dirty bits): what the guest's tables say.
    pub fn peek_walk(&mut self, lin: u32, acc: paging::Access) -> Result<paging::Translation, paging::PageFault> {
        let mode = self.paging_mode();
        paging::walk(&mut Phys(&mut self.mem), self.cpu.cr3, &mode, lin, acc, AdUpdate::None)
    }

    fn access_bytes(&mut self, lin: u32, len: usize, write: bool, user: bool) -> Ex<[(u32, usize, usize); 2]> {
        // Up to two pages (accesses are at most 8 bytes here; longer ones are split by callers).
        let first = (4096 - (lin & 0xFFF) as usize).min(len);
        let pa0 = self.translate(lin, write, user, false)?;
        let pa1 = if first < len { self.translate(lin.wrapping_add(first as u32), write, user, false)? } else { 0 };
        Ok([(pa0, 0, first), (pa1, first, len)])
    }

    fn read_bytes_as(&mut self, lin: u32, buf: &mut [u8], user: bool) -> Ex<()> {
        for chunk_start in (0..buf.len()).step_by(8) {
            let end = (chunk_start + 8).min(buf.len());
            let l = lin.wrapping_add(chunk_start as u32);
            let parts = self.access_bytes(l, end - chunk_start, false, user)?;
            for (pa, a, b) in parts {
                if a < b {
                    self.phys_read(pa, &mut buf[chunk_start + a..chunk_start + b]);
                }
            }
        }
        Ok(())
    }

    fn write_bytes_as(&mut self, lin: u32, data: &[u8], user: bool) -> Ex<()> {
        for chunk_start in (0..data.len()).step_by(8) {
            let end = (chunk_start + 8).min(data.len());
            let l = lin.wrapping_add(chunk_start as u32);
            let parts = self.access_bytes(l, end - chunk_start, true, user)?;
            for (pa, a, b) in parts {
                if a < b {
                    self.phys_write(pa, &data[chunk_start + a..chunk_start + b]);
                }
            }
        }
        Ok(())
    }

    fn user(&self) -> bool {
        self.cpu.cpl == 3
    }

    /// A physical read: RAM, an MMIO device, or unassigned (all ones).
    fn phys_read(&mut self, pa: u32, dst: &mut [u8]) {
        if pa != UNASSIGNED_PA && self.mem.is_ram(pa) {
            return self.mem.read(pa, dst);
        }
        let n = dst.len();
        self.io_count += 1;
        let v = if pa != UNASSIGNED_PA && matches!(n, 1 | 2 | 4 | 8) { self.mmio.read(pa, n as u8) } else { None };
        match v {
            Some(v) => dst.copy_from_slice(&v.to_le_bytes()[..n]),
            None => dst.fill(0xFF),
        }
    }

    /// A physical write: RAM, an MMIO device, or unassigned (ignored).
    fn phys_write(&mut self, pa: u32, src: &[u8]) {
        if pa == UNASSIGNED_PA {
            return;
        }
        if self.mem.is_ram(pa) {
            return self.mem.write(pa, src);
        }
        self.io_count += 1;
        if matches!(src.len(), 1 | 2 | 4 | 8) {
            let mut b = [0u8; 8];
            b[..src.len()].copy_from_slice(src);
            self.mmio.write(pa, src.len() as u8, u64::from_le_bytes(b));
        }
    }

    pub fn read_lin(&mut self, lin: u32, size: u32) -> Ex<u32> {
        let mut b = [0u8; 4];
        let user = self.user();
        self.read_bytes_as(lin, &mut b[..size as usize], user)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads with the current privilege (data access of the running instruction).
    pub fn read_lin_bytes(&mut self, lin: u32, buf: &mut [u8]) -> Ex<()> {
        let user = self.user();
        self.read_bytes_as(lin, buf, user)
    }

    pub fn write_lin(&mut self, lin: u32, size: u32, v: u32) -> Ex<()> {
        let user = self.user();
        self.write_bytes_as(lin, &v.to_le_bytes()[..size as usize], user)
    }

    pub fn write_lin_bytes(&mut self, lin: u32, data: &[u8]) -> Ex<()> {
        let user = self.user();
        self.write_bytes_as(lin, data, user)
    }

    /// Implicit supervisor-mode accesses (descriptor tables, IDT, TSS): U/S checks as CPL0.
    pub fn read_sys(&mut self, lin: u32, size: u32) -> Ex<u32> {
        let mut b = [0u8; 4];
        self.read_bytes_as(lin, &mut b[..size as usize], false)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_sys_bytes(&mut self, lin: u32, buf: &mut [u8]) -> Ex<()> {
        self.read_bytes_as(lin, buf, false)
    }

    pub fn write_sys(&mut self, lin: u32, size: u32, v: u32) -> Ex<()> {
        self.write_bytes_as(lin, &v.to_le_bytes()[..size as usize], false)
    }

    pub fn read_u64_lin(&mut self, lin: u32) -> Ex<u64> {
        let mut b = [0u8; 8];
        self.read_bytes_as(lin, &mut b, false)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads code bytes for decoding (instruction fetch with the current privilege);
    /// returns how many bytes could be fetched before a fetch fault. No side effect on
    /// CR2: the translator prefetches beyond what may execute.
    pub fn fetch_bytes(&mut self, lin: u32, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            let l = lin.wrapping_add(n as u32);
            let chunk = (4096 - (l & 0xFFF) as usize).min(buf.len() - n);
            let Some(pa) = self.fetch_pa(l) else { break };
            let dst = &mut buf[n..n + chunk];
            if pa == UNASSIGNED_PA { dst.fill(0xFF) } else { self.mem.read(pa, dst) }
            n += chunk;
        }
        n
    }

    /// The guest-physical address of code byte `lin` for a fetch at the current CPL
    /// (`UNASSIGNED_PA` above 4 GiB); None if the fetch faults.
    pub fn fetch_pa(&mut self, lin: u32) -> Option<u32> {
        if self.cpu.cr0 & cr0::PG == 0 {
            return Some(lin);
        }
        match self.walk(lin, paging::Access { write: false, user: self.user(), fetch: true }) {
            Ok(t) if t.pa < 1 << 32 => Some(t.pa as u32),
            Ok(_) => Some(UNASSIGNED_PA),
            Err(_) => None,
        }
    }

    // ----- segmented memory -----

    /// Checks a data access through segment `s` and returns its linear address.
    pub fn seg_addr(&self, s: Sreg, off: u32, size: u32, write: bool) -> Ex<u32> {
        let r = self.cpu.sreg(s);
        let fault = if s == Sreg::Ss { Fault::ss(0) } else { Fault::gp(0) };
        if !r.valid {
            return Err(Fault::gp(0));
        }
        let d = &r.desc;
        if write && (d.is_code() || !d.writable()) {
            return Err(Fault::gp(0));
        }
        if !write && d.is_code() && !d.readable() {
            return Err(Fault::gp(0));
        }
        if !d.contains(off, size) {
            return Err(fault);
        }
        Ok(d.base.wrapping_add(off))
    }

    pub fn read_seg(&mut self, s: Sreg, off: u32, size: u32) -> Ex<u32> {
        let lin = self.seg_addr(s, off, size, false)?;
        self.read_lin(lin, size)
    }

    pub fn write_seg(&mut self, s: Sreg, off: u32, size: u32, v: u32) -> Ex<()> {
        let lin = self.seg_addr(s, off, size, true)?;
        self.write_lin(lin, size, v)
    }

    // ----- stack -----

    fn stack_32(&self) -> bool {
        self.cpu.sreg(Sreg::Ss).desc.db
    }

    pub fn sp(&self) -> u32 {
        if self.stack_32() { self.cpu.gpr[4] } else { self.cpu.gpr[4] & 0xFFFF }
    }

    pub fn set_sp(&mut self, v: u32) {
        if self.stack_32() {
            self.cpu.gpr[4] = v;
        } else {
            self.cpu.gpr[4] = (self.cpu.gpr[4] & 0xFFFF_0000) | (v & 0xFFFF);
        }
    }

    fn sp_add(&self, sp: u32, d: i32) -> u32 {
        let v = sp.wrapping_add(d as u32);
        if self.stack_32() { v } else { v & 0xFFFF }
    }

    pub fn push(&mut self, size: u32, v: u32) -> Ex<()> {
        let sp = self.sp_add(self.sp(), -(size as i32));
        self.write_seg(Sreg::Ss, sp, size, v)?;
        self.set_sp(sp);
        Ok(())
    }

    pub fn pop(&mut self, size: u32) -> Ex<u32> {
        let sp = self.sp();
        let v = self.read_seg(Sreg::Ss, sp, size)?;
        self.set_sp(self.sp_add(sp, size as i32));
        Ok(v)
    }

    /// Reads the stack at `sp + off` without popping.
    pub fn peek(&mut self, off: u32, size: u32) -> Ex<u32> {
        let sp = self.sp_add(self.sp(), off as i32);
        self.read_seg(Sreg::Ss, sp, size)
    }

    // ----- descriptor tables -----

    /// Reads the descriptor a selector names; the error code on failure is the selector.
    /// Null selectors must be handled by the caller.
    pub fn read_descriptor(&mut self, sel: Selector) -> Ex<(Descriptor, u32)> {
        let (base, limit) = if sel.ti_ldt() {
            if self.cpu.ldtr.sel & !3 == 0 {
                return Err(Fault::gp(sel.raw() as u32 & 0xFFFC));
            }
            (self.cpu.ldtr.base, self.cpu.ldtr.limit)
        } else {
            (self.cpu.gdtr.base, self.cpu.gdtr.limit as u32)
        };
        if sel.last_byte_offset() > limit {
            return Err(Fault::gp(sel.raw() as u32 & 0xFFFC));
        }
        let addr = base.wrapping_add(sel.table_offset());
        let raw = self.read_u64_lin(addr)?;
        Ok((Descriptor::from_raw(raw), addr))
    }

    /// Sets the accessed bit of the descriptor at `addr` (as the CPU does on a load).
    pub fn set_accessed(&mut self, addr: u32, d: &Descriptor) -> Ex<()> {
        if d.s && !d.accessed() {
            let raw = d.with_accessed();
            self.write_sys(addr + 5, 1, (raw >> 40) as u32 & 0xFF)?;
        }
        Ok(())
    }
}
