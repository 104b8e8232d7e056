//! The machine model the monitor emulates against: CPU state, guest memory, ports.
//! Pure logic over the [`Memory`] trait so that it is testable without a host VM.

use crate::cpu::{Cpu, Sreg};
use ringfold_arch::{Descriptor, Exception, Selector};
use ringfold_devices::PortBus;

/// Guest-physical memory as the monitor sees it.
pub trait Memory {
    /// Reads guest-physical bytes; bytes that are not RAM read as 0xFF.
    fn read(&mut self, pa: u32, buf: &mut [u8]);
    /// Writes guest-physical bytes; bytes that are not RAM are ignored. Implementations
    /// invalidate translations of code on the written pages.
    fn write(&mut self, pa: u32, data: &[u8]);
}

/// Plain RAM in a vector (tests and tools).
impl Memory for Vec<u8> {
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
}

pub struct Machine<M: Memory> {
    pub cpu: Cpu,
    pub mem: M,
    pub ports: PortBus,
    /// Host time-stamp counter source (guest TSC = clock() + offset).
    pub clock: fn() -> u64,
}

impl<M: Memory> Machine<M> {
    pub fn new(mem: M, ports: PortBus) -> Self {
        Machine { cpu: Cpu::default(), mem, ports, clock: || 0 }
    }

    // ----- linear memory (paging is off: linear = physical) -----

    pub fn read_lin(&mut self, lin: u32, size: u32) -> Ex<u32> {
        let mut b = [0u8; 4];
        self.read_lin_bytes(lin, &mut b[..size as usize])?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_lin_bytes(&mut self, lin: u32, buf: &mut [u8]) -> Ex<()> {
        // Wrap-around at 4 GiB is split into two physical accesses.
        let first = ((1u64 << 32) - lin as u64).min(buf.len() as u64) as usize;
        self.mem.read(lin, &mut buf[..first]);
        if first < buf.len() {
            self.mem.read(0, &mut buf[first..]);
        }
        Ok(())
    }

    pub fn write_lin(&mut self, lin: u32, size: u32, v: u32) -> Ex<()> {
        self.write_lin_bytes(lin, &v.to_le_bytes()[..size as usize])
    }

    pub fn write_lin_bytes(&mut self, lin: u32, data: &[u8]) -> Ex<()> {
        let first = ((1u64 << 32) - lin as u64).min(data.len() as u64) as usize;
        self.mem.write(lin, &data[..first]);
        if first < data.len() {
            self.mem.write(0, &data[first..]);
        }
        Ok(())
    }

    pub fn read_u64_lin(&mut self, lin: u32) -> Ex<u64> {
        let mut b = [0u8; 8];
        self.read_lin_bytes(lin, &mut b)?;
        Ok(u64::from_le_bytes(b))
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
            self.write_lin(addr + 5, 1, (raw >> 40) as u32 & 0xFF)?;
        }
        Ok(())
    }
}
