//! Local APIC of the single virtual CPU (xAPIC MMIO mode): see [`LocalApic`].
//!
//! Semantics follow the Intel SDM vol. 3, "Advanced Programmable Interrupt Controller":
//! 256-bit IRR/ISR/TMR, task/processor priority (a vector is deliverable when its
//! priority class, `vector >> 4`, is above the PPR's), EOI retiring the highest in-service
//! vector, the local vector table and the APIC timer (one-shot, periodic and TSC-deadline).
//! The device does not read the TSC: the platform converts a deadline written to
//! IA32_TSC_DEADLINE into device time ([`LocalApic::write_tsc_deadline`]).
//!
//! The device has no clock: the platform advances it with [`LocalApic::set_time`] (call it
//! before every MMIO access and before polling for interrupts, so the current-count register
//! and the timer expiry are up to date) and sleeps until [`LocalApic::next_deadline`].
//!
//! Interrupt flow on the platform side:
//! * IOAPIC fixed deliveries -> [`LocalApic::set_irq`] / [`LocalApic::set_irq_level`].
//! * The CPU polls [`LocalApic::has_interrupt`] (when EFLAGS.IF=1) and takes the vector from
//!   [`LocalApic::acknowledge`].
//! * After each MMIO write, [`LocalApic::take_eoi_vectors`] returns the vectors of
//!   level-triggered interrupts the guest just EOIed; pass each one to the IOAPIC's `eoi`.
//! * The 8259 PIC's INTR reaches the CPU when [`LocalApic::accepts_pic_intr`] says so; its
//!   vectors then come from the PIC (ExtINT bypasses the APIC's IRR/ISR, as on hardware).

use crate::MmioDevice;

/// Guest-physical base of the local APIC registers.
pub const LAPIC_BASE: u32 = 0xFEE0_0000;
/// Size of the local APIC register page.
pub const LAPIC_MMIO_LEN: u32 = 0x1000;
/// Frequency of the bus clock that drives the APIC timer (before the divider), in Hz.
/// 1 GHz, as KVM and QEMU use: one bus cycle per nanosecond, so the timer needs no
/// rounding, and with the divider a 32-bit count still covers 4.3 s .. 550 s.
/// Guests calibrate the timer against the PIT, so the value itself is free.
pub const LAPIC_BUS_HZ: u64 = 1_000_000_000;
/// IA32_APIC_BASE after reset: base 0xFEE00000, global enable (bit 11), BSP (bit 8).
pub const APIC_BASE_MSR_DEFAULT: u64 = 0xFEE0_0900;
/// IA32_APIC_BASE bits a WRMSR must leave clear (else #GP): everything but BSP (8),
/// enable (11) and a 36-bit base address. Bit 10 (x2APIC enable) is reserved as the
/// CPU does not report x2APIC.
pub const APIC_BASE_MSR_RESERVED: u64 = !(0x0000_000F_FFFF_F000 | MSR_ENABLE | MSR_BSP);
/// Version register: version 0x14 (integrated xAPIC), highest LVT entry index 5.
pub const LAPIC_VERSION: u32 = 0x0005_0014;

const MSR_BSP: u64 = 1 << 8;
const MSR_ENABLE: u64 = 1 << 11;

const SVR_ENABLE: u32 = 1 << 8;
/// Spurious vector (bits 0-7), software enable (8), focus processor checking (9). EOI
/// broadcast suppression (12) is reserved: the version register does not report it.
const SVR_WRITABLE: u32 = 0x3FF;

const LVT_MASKED: u32 = 1 << 16;
const LVT_TIMER_PERIODIC: u32 = 1 << 17;
/// LVT timer mode field (bits 17-18): 00 one-shot, 01 periodic, 10 TSC-deadline.
const LVT_TIMER_MODE: u32 = 3 << 17;
const LVT_TIMER_TSC_DEADLINE: u32 = 2 << 17;
const LVT_DELIVERY_MODE_SHIFT: u32 = 8;
const DELIVERY_FIXED: u32 = 0;
const DELIVERY_LOWEST: u32 = 1;
const DELIVERY_NMI: u32 = 4;
const DELIVERY_EXTINT: u32 = 7;

/// Indices into `LocalApic::lvt`, in register order (CMCI at 0x2F0, the others from 0x320).
const LVT_CMCI: usize = 0;
const LVT_TIMER: usize = 1;
const LVT_LINT0: usize = 4;
const LVT_LINT1: usize = 5;
const LVT_ERROR: usize = 6;
/// Writable bits of each LVT register. Delivery status (12) and remote IRR (14) are
/// read-only and always 0 here (delivery is instantaneous; LINT level mode is the
/// platform's business).
const LVT_WRITABLE: [u32; 7] = [
    0x0001_07FF, // CMCI: vector, delivery mode, mask
    0x0007_00FF, // timer: vector, mask, mode (one-shot, periodic, TSC-deadline)
    0x0001_07FF, // thermal
    0x0001_07FF, // performance counters
    0x0001_A7FF, // LINT0: + polarity (13), trigger mode (15)
    0x0001_A7FF, // LINT1
    0x0001_00FF, // error: vector, mask
];

/// ICR low: vector, delivery mode, destination mode, level, trigger mode, shorthand.
const ICR_WRITABLE: u32 = 0x000C_CFFF;

const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;
const ESR_ILLEGAL_REGISTER: u32 = 1 << 7;

/// Register offsets (xAPIC MMIO).
mod reg {
    pub const ID: u32 = 0x20;
    pub const VERSION: u32 = 0x30;
    pub const TPR: u32 = 0x80;
    pub const APR: u32 = 0x90;
    pub const PPR: u32 = 0xA0;
    pub const EOI: u32 = 0xB0;
    pub const RRD: u32 = 0xC0;
    pub const LDR: u32 = 0xD0;
    pub const DFR: u32 = 0xE0;
    pub const SVR: u32 = 0xF0;
    pub const ISR: u32 = 0x100;
    pub const TMR: u32 = 0x180;
    pub const IRR: u32 = 0x200;
    pub const ESR: u32 = 0x280;
    pub const LVT_CMCI: u32 = 0x2F0;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const LVT_ERROR: u32 = 0x370;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3E0;
}

/// A 256-bit vector register (IRR, ISR, TMR) laid out as its eight MMIO words.
type Bits256 = [u32; 8];

fn bit(r: &Bits256, v: u8) -> bool {
    r[usize::from(v >> 5)] & (1 << (v & 31)) != 0
}

fn set_bit(r: &mut Bits256, v: u8, on: bool) {
    let w = &mut r[usize::from(v >> 5)];
    if on {
        *w |= 1 << (v & 31);
    } else {
        *w &= !(1 << (v & 31));
    }
}

fn highest(r: &Bits256) -> Option<u8> {
    (0..8)
        .rev()
        .find(|&i| r[i] != 0)
        .map(|i| (i * 32 + 31 - r[i].leading_zeros() as usize) as u8)
}

/// Bus cycles elapsed at `ns` (exact for the 1 GHz bus; u128 keeps other choices exact too).
fn ns_to_cycles(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(LAPIC_BUS_HZ) / 1_000_000_000) as u64
}

/// The earliest time (ns) at which bus cycle `cycles` has occurred (saturating).
fn cycles_to_ns(cycles: u64) -> u64 {
    let ns = (u128::from(cycles) * 1_000_000_000).div_ceil(u128::from(LAPIC_BUS_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The local APIC. See the module documentation for how the platform drives it.
#[derive(Debug, Clone)]
pub struct LocalApic {
    base_msr: u64,
    id: u32,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    irr: Bits256,
    isr: Bits256,
    tmr: Bits256,
    /// ESR as software reads it: latched from `esr_pending` by each ESR write.
    esr: u32,
    /// Errors detected since the last ESR write.
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; 7],
    timer_initial: u32,
    timer_divide: u32,
    /// Time of the last `set_time`.
    now_ns: u64,
    /// The timer count was `timer_anchor_count` at bus cycle `timer_anchor_cycle`; the
    /// current count is derived from them and the time. Re-anchored at each (re)load and
    /// divider change.
    timer_anchor_cycle: u64,
    timer_anchor_count: u32,
    /// The count is running: an initial count was written and (one-shot) has not expired.
    timer_running: bool,
    /// IA32_TSC_DEADLINE as the guest wrote it (0: disarmed), and the device time at
    /// which that TSC value is reached (TSC-deadline mode only).
    tsc_deadline: u64,
    tsc_deadline_ns: u64,
    /// Vectors of level-triggered interrupts EOIed since the last `take_eoi_vectors`.
    eoi_vectors: Vec<u8>,
    /// A self-NMI (ICR) is waiting for the platform.
    nmi_pending: bool,
}

impl Default for LocalApic {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalApic {
    /// A local APIC in its power-up state: APIC ID 0, globally enabled (the MSR at
    /// [`APIC_BASE_MSR_DEFAULT`]), software disabled (SVR 0xFF), every LVT entry masked,
    /// timer stopped.
    pub fn new() -> Self {
        LocalApic {
            base_msr: APIC_BASE_MSR_DEFAULT,
            id: 0,
            tpr: 0,
            ldr: 0,
            dfr: 0xFFFF_FFFF,
            svr: 0xFF,
            irr: [0; 8],
            isr: [0; 8],
            tmr: [0; 8],
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [LVT_MASKED; 7],
            timer_initial: 0,
            timer_divide: 0,
            now_ns: 0,
            timer_anchor_cycle: 0,
            timer_anchor_count: 0,
            timer_running: false,
            tsc_deadline: 0,
            tsc_deadline_ns: 0,
            eoi_vectors: Vec::new(),
            nmi_pending: false,
        }
    }

    /// Resets the registers to the power-up state (INIT/RESET). Time keeps its value.
    pub fn reset(&mut self) {
        *self = LocalApic {
            now_ns: self.now_ns,
            ..LocalApic::new()
        };
    }

    // --- IA32_APIC_BASE ----------------------------------------------------

    /// Current IA32_APIC_BASE value (RDMSR 0x1B).
    pub fn base_msr(&self) -> u64 {
        self.base_msr
    }

    /// WRMSR 0x1B. The caller raises #GP for values with [`APIC_BASE_MSR_RESERVED`] bits
    /// set; those bits are dropped here. The BSP flag always stays set (one CPU). The base
    /// address is recorded but the registers stay at [`LAPIC_BASE`] (nobody relocates
    /// them). Clearing the global enable bit puts the APIC back in its power-up register
    /// state, as the SDM describes for the transition to the disabled state; while
    /// disabled the MMIO page reads 0 and ignores writes, nothing is delivered, and the
    /// PIC's INTR goes straight to the CPU.
    pub fn set_base_msr(&mut self, v: u64) {
        let was_enabled = self.is_globally_enabled();
        self.base_msr = (v & !APIC_BASE_MSR_RESERVED) | MSR_BSP;
        if was_enabled && !self.is_globally_enabled() {
            let msr = self.base_msr;
            self.reset();
            self.base_msr = msr;
        }
    }

    /// IA32_APIC_BASE bit 11.
    pub fn is_globally_enabled(&self) -> bool {
        self.base_msr & MSR_ENABLE != 0
    }

    /// SVR bit 8 (and globally enabled).
    pub fn is_software_enabled(&self) -> bool {
        self.is_globally_enabled() && self.svr & SVR_ENABLE != 0
    }

    // --- Time and the timer ------------------------------------------------

    /// Advances the APIC's notion of time to `now_ns` (ignored if it would go
    /// backwards). An expired timer sets the IRR bit of the LVT timer vector unless the
    /// entry is masked (expiries are counted either way: a periodic timer reloads, a
    /// one-shot timer stops at 0). Several periods elapsed at once raise one interrupt,
    /// as IRR would coalesce them anyway.
    pub fn set_time(&mut self, now_ns: u64) {
        if now_ns < self.now_ns {
            return;
        }
        self.now_ns = now_ns;
        if self.tsc_deadline != 0 && now_ns >= self.tsc_deadline_ns {
            // The deadline passed: the MSR clears and the interrupt is raised once.
            self.tsc_deadline = 0;
            self.raise_lvt(LVT_TIMER);
        }
        if !self.timer_running {
            return;
        }
        let now = ns_to_cycles(now_ns);
        let expiry = self.timer_expiry_cycle();
        if now < expiry {
            return;
        }
        if self.lvt[LVT_TIMER] & LVT_TIMER_PERIODIC != 0 {
            // Reload at the expiry, then skip the whole periods that have also elapsed.
            let period = u64::from(self.timer_initial) * self.timer_divisor();
            self.timer_anchor_cycle = expiry + (now - expiry) / period * period;
            self.timer_anchor_count = self.timer_initial;
        } else {
            self.timer_running = false;
        }
        self.raise_lvt(LVT_TIMER);
    }

    /// Time of the last [`LocalApic::set_time`].
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Absolute time (ns) of the next timer interrupt, if the timer is running and its
    /// LVT entry unmasked.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.lvt[LVT_TIMER] & LVT_MASKED != 0 {
            return None;
        }
        if self.tsc_deadline != 0 {
            return Some(self.tsc_deadline_ns);
        }
        self.timer_running.then(|| cycles_to_ns(self.timer_expiry_cycle()))
    }

    fn tsc_deadline_mode(&self) -> bool {
        self.lvt[LVT_TIMER] & LVT_TIMER_MODE == LVT_TIMER_TSC_DEADLINE
    }

    /// RDMSR IA32_TSC_DEADLINE: the armed deadline, 0 once it fired or outside
    /// TSC-deadline mode.
    pub fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// WRMSR IA32_TSC_DEADLINE with guest TSC value `tsc`, which the platform says is
    /// reached at device time `at_ns`. Outside TSC-deadline mode the write is ignored
    /// (SDM); 0 disarms; a deadline already past fires at the next `set_time`.
    pub fn write_tsc_deadline(&mut self, tsc: u64, at_ns: u64) {
        if self.tsc_deadline_mode() {
            self.tsc_deadline = tsc;
            self.tsc_deadline_ns = at_ns;
        }
    }

    /// Divide configuration register (bits 0, 1, 3) -> divisor 2, 4, ..., 128, 1.
    fn timer_divisor(&self) -> u64 {
        let d = self.timer_divide;
        let i = (d & 3) | ((d >> 1) & 4);
        if i == 7 {
            1
        } else {
            2 << i
        }
    }

    /// Bus cycle at which the count reaches 0.
    fn timer_expiry_cycle(&self) -> u64 {
        self.timer_anchor_cycle + u64::from(self.timer_anchor_count) * self.timer_divisor()
    }

    fn timer_current(&self) -> u32 {
        if !self.timer_running {
            return 0;
        }
        // `set_time` reloads an expired periodic timer and stops a one-shot one before
        // the count could go below 0, so the saturation never matters.
        let counted = ns_to_cycles(self.now_ns).saturating_sub(self.timer_anchor_cycle)
            / self.timer_divisor();
        u64::from(self.timer_anchor_count).saturating_sub(counted) as u32
    }

    fn write_timer_initial(&mut self, v: u32) {
        if self.tsc_deadline_mode() {
            return; // the initial count is ignored in TSC-deadline mode (SDM)
        }
        self.timer_initial = v;
        self.timer_running = v != 0;
        self.timer_anchor_cycle = ns_to_cycles(self.now_ns);
        self.timer_anchor_count = v;
    }

    fn write_timer_divide(&mut self, v: u32) {
        // The count keeps its value and continues at the new rate (the fraction of a
        // count already elapsed is dropped).
        self.timer_anchor_count = self.timer_current();
        self.timer_anchor_cycle = ns_to_cycles(self.now_ns);
        self.timer_divide = v & 0xB;
    }

    // --- Interrupt acceptance and delivery ---------------------------------

    /// A fixed, edge-triggered interrupt from the IOAPIC (or any external source): sets
    /// the IRR bit and clears the TMR bit. Vectors 0-15 are illegal: they are rejected
    /// and flagged in the ESR. Dropped while the APIC is globally disabled; held in the
    /// IRR (not delivered) while it is software-disabled.
    pub fn set_irq(&mut self, vector: u8) {
        self.accept(vector, false);
    }

    /// Like [`LocalApic::set_irq`] for a level-triggered interrupt: also sets the TMR bit,
    /// so the guest's EOI for it is reported by [`LocalApic::take_eoi_vectors`].
    pub fn set_irq_level(&mut self, vector: u8) {
        self.accept(vector, true);
    }

    fn accept(&mut self, vector: u8, level: bool) {
        if !self.is_globally_enabled() {
            return;
        }
        if vector < 16 {
            self.error(ESR_RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        set_bit(&mut self.irr, vector, true);
        set_bit(&mut self.tmr, vector, level);
    }

    /// Records an error in the ESR and raises the LVT error interrupt. The error entry's
    /// own vector is not checked again (an illegal one is simply not delivered), so this
    /// cannot recurse.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[LVT_ERROR];
        if lvt & LVT_MASKED == 0 {
            let v = lvt as u8;
            if v >= 16 {
                self.accept(v, false);
            } else {
                self.esr_pending |= ESR_RECEIVE_ILLEGAL_VECTOR;
            }
        }
    }

    /// Fires a local vector table entry (edge, fixed delivery).
    fn raise_lvt(&mut self, index: usize) {
        let lvt = self.lvt[index];
        if lvt & LVT_MASKED == 0 {
            self.accept(lvt as u8, false);
        }
    }

    /// PPR: the TPR, or the in-service priority class if that is higher.
    pub fn ppr(&self) -> u8 {
        let isrv = highest(&self.isr).unwrap_or(0) as u32;
        (if self.tpr >> 4 >= isrv >> 4 {
            self.tpr
        } else {
            isrv & 0xF0
        }) as u8
    }

    /// TPR (bits 0-7 of register 0x80).
    pub fn tpr(&self) -> u8 {
        self.tpr as u8
    }

    fn apr(&self) -> u32 {
        let isrv = highest(&self.isr).unwrap_or(0) as u32;
        let irrv = highest(&self.irr).unwrap_or(0) as u32;
        if self.tpr >> 4 >= irrv >> 4 && self.tpr >> 4 > isrv >> 4 {
            self.tpr
        } else {
            (self.tpr & 0xF0).max(isrv & 0xF0).max(irrv & 0xF0)
        }
    }

    /// Highest pending vector whose priority class is above the PPR's.
    fn deliverable(&self) -> Option<u8> {
        let v = highest(&self.irr)?;
        (v >> 4 > self.ppr() >> 4).then_some(v)
    }

    /// A fixed interrupt is ready for the CPU (APIC enabled, vector above PPR).
    pub fn has_interrupt(&self) -> bool {
        self.is_software_enabled() && self.deliverable().is_some()
    }

    /// The CPU's interrupt acknowledge: moves the highest deliverable vector from IRR to
    /// ISR and returns it. With nothing deliverable (e.g. the TPR was raised after
    /// `has_interrupt`) it returns the spurious vector from the SVR, which has no ISR
    /// bit and needs no EOI, as hardware does. `None` when the APIC is globally disabled
    /// (it is not in the interrupt path then).
    pub fn acknowledge(&mut self) -> Option<u8> {
        if !self.is_globally_enabled() {
            return None;
        }
        match self.deliverable().filter(|_| self.is_software_enabled()) {
            Some(v) => {
                set_bit(&mut self.irr, v, false);
                set_bit(&mut self.isr, v, true);
                Some(v)
            }
            None => Some(self.svr as u8),
        }
    }

    fn eoi(&mut self) {
        if let Some(v) = highest(&self.isr) {
            set_bit(&mut self.isr, v, false);
            if bit(&self.tmr, v) {
                self.eoi_vectors.push(v);
            }
        }
    }

    /// Vectors of level-triggered interrupts the guest has EOIed since the last call,
    /// oldest first. The platform forwards each to the IOAPIC (`IoApic::eoi`) after every
    /// MMIO write to this device, which clears the entries' Remote IRR (the "EOI
    /// broadcast"). Returns an empty vector without allocating when there is none.
    pub fn take_eoi_vectors(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.eoi_vectors)
    }

    /// Like [`LocalApic::take_eoi_vectors`], but the list keeps its storage (no
    /// allocation per level-triggered EOI on the platform's hot path).
    pub fn drain_eoi_vectors(&mut self) -> std::vec::Drain<'_, u8> {
        self.eoi_vectors.drain(..)
    }

    /// Takes a pending self-NMI sent through the ICR.
    pub fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi_pending)
    }

    // --- Local interrupt pins ----------------------------------------------

    /// LVT LINT0 register (0x350).
    pub fn lvt_lint0(&self) -> u32 {
        self.lvt[LVT_LINT0]
    }

    /// LVT LINT1 register (0x360); typically NMI delivery, which the platform handles.
    pub fn lvt_lint1(&self) -> u32 {
        self.lvt[LVT_LINT1]
    }

    /// LINT0's mask bit.
    pub fn lint0_masked(&self) -> bool {
        self.lvt[LVT_LINT0] & LVT_MASKED != 0
    }

    /// LINT0's delivery mode is ExtINT (0b111): the 8259 supplies the vector.
    pub fn lint0_extint(&self) -> bool {
        (self.lvt[LVT_LINT0] >> LVT_DELIVERY_MODE_SHIFT) & 7 == DELIVERY_EXTINT
    }

    /// Whether the 8259 PIC's INTR output reaches the CPU. A globally disabled APIC passes
    /// LINT0 straight through (it is the INTR pin). A software-disabled one is treated the
    /// same way ("virtual wire"): on hardware its masked LINT0 would block the PIC, but a
    /// BIOS sets up virtual wire mode before the OS runs and there is no BIOS here. An
    /// enabled APIC passes it only through an unmasked ExtINT LINT0, where it bypasses
    /// the APIC's priority logic.
    pub fn accepts_pic_intr(&self) -> bool {
        !self.is_software_enabled() || (!self.lint0_masked() && self.lint0_extint())
    }

    // --- Registers ---------------------------------------------------------

    fn read_register(&mut self, off: u32) -> u32 {
        match off {
            reg::ID => self.id,
            reg::VERSION => LAPIC_VERSION,
            reg::TPR => self.tpr,
            reg::APR => self.apr(),
            reg::PPR => u32::from(self.ppr()),
            reg::EOI | reg::RRD => 0, // write-only / remote read unsupported (reads 0)
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            0x100..=0x170 => self.isr[((off - reg::ISR) / 16) as usize],
            0x180..=0x1F0 => self.tmr[((off - reg::TMR) / 16) as usize],
            0x200..=0x270 => self.irr[((off - reg::IRR) / 16) as usize],
            reg::ESR => self.esr,
            reg::LVT_CMCI => self.lvt[LVT_CMCI],
            reg::ICR_LOW => self.icr_low,
            reg::ICR_HIGH => self.icr_high,
            reg::LVT_TIMER..=reg::LVT_ERROR => self.lvt[1 + ((off - reg::LVT_TIMER) / 16) as usize],
            reg::TIMER_INITIAL => self.timer_initial,
            reg::TIMER_CURRENT => self.timer_current(),
            reg::TIMER_DIVIDE => self.timer_divide,
            _ => {
                self.error(ESR_ILLEGAL_REGISTER);
                0
            }
        }
    }

    fn write_register(&mut self, off: u32, v: u32) {
        match off {
            reg::ID => self.id = v & 0xFF00_0000,
            reg::TPR => self.tpr = v & 0xFF,
            reg::EOI => self.eoi(),
            reg::LDR => self.ldr = v & 0xFF00_0000,
            reg::DFR => self.dfr = v | 0x0FFF_FFFF,
            reg::SVR => {
                self.svr = v & SVR_WRITABLE;
                if v & SVR_ENABLE == 0 {
                    // Software disable masks every LVT entry (and keeps them masked, see
                    // `write_lvt`). IRR and ISR are held.
                    self.lvt.iter_mut().for_each(|l| *l |= LVT_MASKED);
                }
            }
            // Writing the ESR latches the errors seen since the previous write.
            reg::ESR => self.esr = std::mem::take(&mut self.esr_pending),
            reg::LVT_CMCI => self.write_lvt(LVT_CMCI, v),
            reg::ICR_LOW => self.write_icr(v),
            reg::ICR_HIGH => self.icr_high = v & 0xFF00_0000,
            reg::LVT_TIMER..=reg::LVT_ERROR => {
                self.write_lvt(1 + ((off - reg::LVT_TIMER) / 16) as usize, v)
            }
            reg::TIMER_INITIAL => self.write_timer_initial(v),
            reg::TIMER_DIVIDE => self.write_timer_divide(v),
            // Read-only registers: writes are ignored.
            reg::VERSION | reg::APR | reg::PPR | reg::RRD | 0x100..=0x270 | reg::TIMER_CURRENT => {}
            _ => self.error(ESR_ILLEGAL_REGISTER),
        }
    }

    fn write_lvt(&mut self, index: usize, v: u32) {
        let mut v = v & LVT_WRITABLE[index];
        if !self.is_software_enabled() {
            v |= LVT_MASKED;
        }
        if index == LVT_TIMER && (self.lvt[index] ^ v) & LVT_TIMER_MODE != 0 {
            // A mode change stops the timer: both the count and an armed deadline.
            self.timer_running = false;
            self.timer_initial = 0;
            self.tsc_deadline = 0;
        }
        self.lvt[index] = v;
    }

    /// Whether an ICR destination (no shorthand) names this APIC.
    fn is_destination(&self, dest: u8, logical: bool) -> bool {
        if dest == 0xFF {
            return true; // broadcast, in both modes
        }
        if !logical {
            return u32::from(dest) == self.id >> 24;
        }
        let ldr = (self.ldr >> 24) as u8;
        if self.dfr >> 28 == 0xF {
            dest & ldr != 0 // flat model: one bit per APIC
        } else {
            // cluster model: cluster in the high nibble (15 = all), one bit per APIC below
            (dest >> 4 == ldr >> 4 || dest >> 4 == 0xF) && dest & ldr & 0xF != 0
        }
    }

    /// An IPI. Only this CPU exists, so only IPIs that include it do anything: fixed
    /// and lowest-priority interrupts (edge) and NMIs. INIT, SIPI and SMI are ignored.
    fn write_icr(&mut self, v: u32) {
        self.icr_low = v & ICR_WRITABLE;
        let vector = v as u8;
        let mode = (v >> 8) & 7;
        let to_self = match (v >> 18) & 3 {
            0 => self.is_destination((self.icr_high >> 24) as u8, v & (1 << 11) != 0),
            1 | 2 => true, // self, all including self
            _ => false,    // all excluding self
        };
        match mode {
            DELIVERY_FIXED | DELIVERY_LOWEST if vector < 16 => {
                let recv = if to_self {
                    ESR_RECEIVE_ILLEGAL_VECTOR
                } else {
                    0
                };
                self.error(ESR_SEND_ILLEGAL_VECTOR | recv);
            }
            DELIVERY_FIXED | DELIVERY_LOWEST if to_self => self.accept(vector, false),
            DELIVERY_NMI if to_self => self.nmi_pending = true,
            _ => {}
        }
    }
}

impl LocalApic {
    /// The register an MMIO access names: registers are 32 bits wide at 16-byte aligned
    /// offsets; any other access, and any access while the APIC is globally disabled,
    /// names none (reads 0, writes ignored).
    fn mmio_register(&self, offset: u32, size: u8) -> Option<u32> {
        (size == 4
            && offset.is_multiple_of(16)
            && offset < LAPIC_MMIO_LEN
            && self.is_globally_enabled())
        .then_some(offset)
    }
}

impl MmioDevice for LocalApic {
    fn read(&mut self, offset: u32, size: u8) -> u64 {
        self.mmio_register(offset, size)
            .map_or(0, |r| u64::from(self.read_register(r)))
    }

    fn write(&mut self, offset: u32, size: u8, value: u64) {
        if let Some(r) = self.mmio_register(offset, size) {
            self.write_register(r, value as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(a: &mut LocalApic, off: u32) -> u32 {
        a.read(off, 4) as u32
    }

    fn wr(a: &mut LocalApic, off: u32, v: u32) {
        a.write(off, 4, u64::from(v));
    }

    /// An APIC enabled the way an OS does: SVR enabled with spurious vector 0xFF.
    fn enabled() -> LocalApic {
        let mut a = LocalApic::new();
        wr(&mut a, reg::SVR, 0x1FF);
        a
    }

    #[test]
    fn reset_values() {
        let mut a = LocalApic::new();
        assert_eq!(a.base_msr(), APIC_BASE_MSR_DEFAULT);
        assert_eq!(rd(&mut a, reg::ID), 0);
        assert_eq!(rd(&mut a, reg::VERSION), 0x0005_0014);
        assert_eq!(rd(&mut a, reg::TPR), 0);
        assert_eq!(rd(&mut a, reg::PPR), 0);
        assert_eq!(rd(&mut a, reg::LDR), 0);
        assert_eq!(rd(&mut a, reg::DFR), 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::SVR), 0xFF);
        for off in [0x2F0, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370] {
            assert_eq!(rd(&mut a, off), 0x1_0000, "LVT {off:#x}");
        }
        for off in (0x100..0x280).step_by(16) {
            assert_eq!(rd(&mut a, off), 0);
        }
        assert_eq!(rd(&mut a, reg::TIMER_INITIAL), 0);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 0);
        assert_eq!(rd(&mut a, reg::TIMER_DIVIDE), 0);
        assert!(!a.is_software_enabled());
        assert!(a.accepts_pic_intr());
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn register_masks_and_read_only_registers() {
        let mut a = enabled();
        wr(&mut a, reg::ID, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::ID), 0xFF00_0000);
        wr(&mut a, reg::VERSION, 0);
        assert_eq!(rd(&mut a, reg::VERSION), LAPIC_VERSION);
        wr(&mut a, reg::TPR, 0xFFFF_FF35);
        assert_eq!(rd(&mut a, reg::TPR), 0x35);
        wr(&mut a, reg::LDR, 0x1234_5678);
        assert_eq!(rd(&mut a, reg::LDR), 0x1200_0000);
        wr(&mut a, reg::DFR, 0);
        assert_eq!(rd(&mut a, reg::DFR), 0x0FFF_FFFF);
        wr(&mut a, reg::SVR, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::SVR), 0x3FF);
        wr(&mut a, 0x320, 0xFFFF_FFFF);
        assert_eq!(
            rd(&mut a, 0x320),
            0x7_00FF,
            "timer: vector, mask, mode (incl. TSC-deadline); no delivery status"
        );
        wr(&mut a, 0x350, 0xFFFF_FFFF);
        assert_eq!(
            rd(&mut a, 0x350),
            0x1_A7FF,
            "LINT0: remote IRR and delivery status read 0"
        );
        wr(&mut a, 0x370, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, 0x370), 0x1_00FF);
        wr(&mut a, reg::LVT_CMCI, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::LVT_CMCI), 0x1_07FF);
        wr(&mut a, reg::ICR_HIGH, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::ICR_HIGH), 0xFF00_0000);
        // Shorthand "all excluding self": nothing delivered; delivery status reads 0.
        wr(&mut a, reg::ICR_LOW, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::ICR_LOW), 0x000C_CFFF);
        wr(&mut a, reg::TIMER_DIVIDE, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::TIMER_DIVIDE), 0xB);
        wr(&mut a, reg::TIMER_CURRENT, 1234);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 0);
        wr(&mut a, reg::IRR, 0xFFFF_FFFF);
        assert_eq!(rd(&mut a, reg::IRR + 0x70), 0);
        assert!(!a.has_interrupt());
        wr(&mut a, reg::PPR, 0xFF);
        assert_eq!(rd(&mut a, reg::PPR), 0x35);
    }

    #[test]
    fn odd_accesses_read_zero_and_are_ignored() {
        let mut a = enabled();
        wr(&mut a, reg::TPR, 0x20);
        assert_eq!(a.read(reg::TPR, 1), 0);
        assert_eq!(a.read(reg::TPR, 8), 0);
        assert_eq!(a.read(reg::TPR + 4, 4), 0);
        assert_eq!(a.read(reg::TPR + 1, 2), 0);
        a.write(reg::TPR, 2, 0x50);
        a.write(reg::TPR + 4, 4, 0x50);
        assert_eq!(rd(&mut a, reg::TPR), 0x20);
        assert_eq!(rd(&mut a, 0x1000), 0);
    }

    #[test]
    fn esr_is_latched_by_writes() {
        let mut a = enabled();
        // Illegal vector in a self-IPI: send + receive illegal vector.
        wr(&mut a, reg::ICR_LOW, (1 << 18) | 5);
        assert_eq!(rd(&mut a, reg::ESR), 0, "not visible before an ESR write");
        wr(&mut a, reg::ESR, 0);
        assert_eq!(rd(&mut a, reg::ESR), 0x60);
        assert_eq!(rd(&mut a, reg::ESR), 0x60, "reads do not clear");
        wr(&mut a, reg::ESR, 0);
        assert_eq!(rd(&mut a, reg::ESR), 0);
        // Reserved register.
        rd(&mut a, 0x400);
        wr(&mut a, reg::ESR, 0);
        assert_eq!(rd(&mut a, reg::ESR), 0x80);
        // Illegal vector from the IOAPIC, with the error LVT unmasked: error interrupt.
        wr(&mut a, 0x370, 0xFE);
        a.set_irq(3);
        wr(&mut a, reg::ESR, 0);
        assert_eq!(rd(&mut a, reg::ESR), 0x40);
        assert_eq!(a.acknowledge(), Some(0xFE));
    }

    #[test]
    fn priority_ordering_and_eoi() {
        let mut a = enabled();
        a.set_irq(0x31);
        a.set_irq(0x52);
        a.set_irq(0x53);
        assert_eq!(rd(&mut a, reg::IRR + 0x10), 0x0002_0000);
        assert_eq!(rd(&mut a, reg::IRR + 0x20), 0x000C_0000);
        assert_eq!(rd(&mut a, reg::APR), 0x50);
        assert!(a.has_interrupt());
        assert_eq!(a.acknowledge(), Some(0x53));
        assert_eq!(rd(&mut a, reg::ISR + 0x20), 0x0008_0000);
        assert_eq!(rd(&mut a, reg::PPR), 0x50);
        // 0x52 is in the same class as the in-service 0x53: blocked.
        assert!(!a.has_interrupt());
        assert_eq!(a.acknowledge(), Some(0xFF), "spurious");
        // A higher class nests.
        a.set_irq(0x61);
        assert_eq!(a.acknowledge(), Some(0x61));
        assert_eq!(rd(&mut a, reg::PPR), 0x60);
        wr(&mut a, reg::EOI, 0);
        assert_eq!(
            rd(&mut a, reg::PPR),
            0x50,
            "EOI retired 0x61 (the highest ISR bit)"
        );
        wr(&mut a, reg::EOI, 0);
        assert_eq!(rd(&mut a, reg::PPR), 0);
        assert_eq!(a.acknowledge(), Some(0x52));
        wr(&mut a, reg::EOI, 0);
        assert_eq!(a.acknowledge(), Some(0x31));
        wr(&mut a, reg::EOI, 0);
        assert!(!a.has_interrupt());
        assert!(
            a.take_eoi_vectors().is_empty(),
            "edge-triggered EOIs are not reported"
        );
        wr(&mut a, reg::EOI, 0); // EOI with nothing in service is harmless
    }

    #[test]
    fn tpr_masks_by_class() {
        let mut a = enabled();
        wr(&mut a, reg::TPR, 0x4F);
        a.set_irq(0x45);
        assert_eq!(rd(&mut a, reg::PPR), 0x4F);
        assert!(!a.has_interrupt(), "class 4 is not above TPR class 4");
        assert_eq!(rd(&mut a, reg::APR), 0x4F);
        wr(&mut a, reg::TPR, 0x3F);
        assert!(a.has_interrupt());
        a.set_irq(0x55);
        assert_eq!(rd(&mut a, reg::APR), 0x50);
        // TPR below the in-service class: PPR is the ISR class.
        assert_eq!(a.acknowledge(), Some(0x55));
        assert_eq!(rd(&mut a, reg::PPR), 0x50);
        wr(&mut a, reg::TPR, 0x7A);
        assert_eq!(rd(&mut a, reg::PPR), 0x7A);
        assert!(!a.has_interrupt());
    }

    #[test]
    fn level_triggered_eoi_is_reported() {
        let mut a = enabled();
        a.set_irq_level(0x40);
        a.set_irq(0x80);
        assert_eq!(rd(&mut a, reg::TMR + 0x20), 1);
        assert_eq!(a.acknowledge(), Some(0x80));
        wr(&mut a, reg::EOI, 0); // retires 0x80 (edge)
        assert!(a.take_eoi_vectors().is_empty());
        assert_eq!(a.acknowledge(), Some(0x40));
        wr(&mut a, reg::EOI, 0); // retires 0x40 (level)
        assert_eq!(a.take_eoi_vectors(), vec![0x40]);
        assert!(a.take_eoi_vectors().is_empty());
        // Edge delivery of the same vector clears its TMR bit.
        a.set_irq(0x40);
        assert_eq!(rd(&mut a, reg::TMR + 0x20), 0);
    }

    #[test]
    fn drain_eoi_vectors_empties_the_list() {
        let mut a = enabled();
        a.set_irq_level(0x40);
        a.set_irq_level(0x50);
        assert_eq!(a.acknowledge(), Some(0x50));
        wr(&mut a, reg::EOI, 0);
        assert_eq!(a.acknowledge(), Some(0x40));
        wr(&mut a, reg::EOI, 0);
        assert_eq!(a.drain_eoi_vectors().collect::<Vec<_>>(), vec![0x50, 0x40]);
        assert_eq!(a.drain_eoi_vectors().count(), 0);
        assert!(a.take_eoi_vectors().is_empty());
    }

    #[test]
    fn software_disable_blocks_delivery_and_masks_lvts() {
        let mut a = LocalApic::new();
        a.set_irq(0x40);
        assert!(!a.has_interrupt(), "SVR disabled after reset");
        assert_eq!(a.acknowledge(), Some(0xFF));
        wr(&mut a, 0x320, 0x20); // unmask attempt while disabled
        assert_eq!(rd(&mut a, 0x320), 0x1_0020);
        wr(&mut a, reg::SVR, 0x1EF);
        assert!(a.has_interrupt(), "held IRR delivered once enabled");
        wr(&mut a, 0x350, 0x700);
        assert!(a.accepts_pic_intr() && !a.lint0_masked() && a.lint0_extint());
        wr(&mut a, 0x350, 0x1_0700);
        assert!(!a.accepts_pic_intr());
        wr(&mut a, 0x350, 0x700);
        wr(&mut a, reg::SVR, 0x0EF);
        assert!(a.lint0_masked(), "software disable masks LINT0");
        assert!(!a.has_interrupt());
        assert_eq!(a.acknowledge(), Some(0xEF));
        assert!(a.accepts_pic_intr());
    }

    #[test]
    fn global_disable_resets_and_removes_the_apic() {
        let mut a = enabled();
        wr(&mut a, reg::TPR, 0x20);
        a.set_base_msr(0xFEE0_0000);
        assert_eq!(a.base_msr(), 0xFEE0_0100, "BSP stays set");
        assert!(!a.is_globally_enabled());
        assert_eq!(rd(&mut a, reg::VERSION), 0);
        a.set_irq(0x40);
        assert!(!a.has_interrupt());
        assert_eq!(a.acknowledge(), None);
        assert!(a.accepts_pic_intr());
        a.set_base_msr(APIC_BASE_MSR_DEFAULT | 0xFFF0_0000_0000_0400);
        assert_eq!(a.base_msr(), APIC_BASE_MSR_DEFAULT, "reserved bits dropped");
        assert_eq!(rd(&mut a, reg::TPR), 0);
        assert_eq!(rd(&mut a, reg::SVR), 0xFF);
        assert_eq!(rd(&mut a, reg::IRR + 0x20), 0);
    }

    #[test]
    fn self_ipis() {
        let mut a = enabled();
        wr(&mut a, reg::ICR_LOW, (1 << 18) | 0x41); // shorthand self
        wr(&mut a, reg::ICR_LOW, (2 << 18) | 0x42); // all including self
        wr(&mut a, reg::ICR_LOW, (3 << 18) | 0x43); // all excluding self
        wr(&mut a, reg::ICR_LOW, 0x44); // physical destination 0 = us
        wr(&mut a, reg::ICR_HIGH, 0x0100_0000);
        wr(&mut a, reg::ICR_LOW, 0x45); // physical destination 1: nobody
        wr(&mut a, reg::ICR_LOW, 0x500); // INIT to APIC 1: ignored
        wr(&mut a, reg::ICR_LOW, 0x4600); // SIPI: ignored
        wr(&mut a, reg::LDR, 0x0100_0000);
        wr(&mut a, reg::ICR_LOW, (1 << 11) | 0x46); // logical flat, bit 0 = us
        wr(&mut a, reg::ICR_HIGH, 0x0200_0000);
        wr(&mut a, reg::ICR_LOW, (1 << 11) | 0x47); // logical flat, bit 1: nobody
        assert_eq!(
            rd(&mut a, reg::IRR + 0x20),
            0b0101_0110,
            "0x41, 0x42, 0x44, 0x46"
        );
        assert!(!a.take_nmi());
        wr(&mut a, reg::ICR_LOW, (1 << 18) | 0x400);
        assert!(a.take_nmi());
        assert!(!a.take_nmi());
        assert_eq!(
            rd(&mut a, reg::ICR_LOW) & (1 << 12),
            0,
            "delivery status idle"
        );
    }

    #[test]
    fn one_shot_timer() {
        let mut a = enabled();
        a.set_time(1_000);
        wr(&mut a, 0x320, 0x30); // one-shot, vector 0x30
        wr(&mut a, reg::TIMER_DIVIDE, 0b0001); // divide by 4
        wr(&mut a, reg::TIMER_INITIAL, 1000);
        assert_eq!(a.next_deadline(), Some(1_000 + 4_000));
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 1000);
        a.set_time(2_000);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 750);
        a.set_time(3_003);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 500);
        assert!(!a.has_interrupt());
        a.set_time(4_999);
        assert!(!a.has_interrupt());
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 1);
        a.set_time(5_000);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 0);
        assert_eq!(a.acknowledge(), Some(0x30));
        assert_eq!(a.next_deadline(), None);
        a.set_time(100_000);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 0);
        wr(&mut a, reg::EOI, 0);
        assert!(!a.has_interrupt(), "one-shot fires once");
        // Re-arming restarts; writing 0 stops.
        wr(&mut a, reg::TIMER_INITIAL, 10);
        assert_eq!(a.next_deadline(), Some(100_040));
        wr(&mut a, reg::TIMER_INITIAL, 0);
        assert_eq!(a.next_deadline(), None);
        a.set_time(200_000);
        assert!(!a.has_interrupt());
    }

    #[test]
    fn periodic_timer_and_dividers() {
        let mut a = enabled();
        wr(&mut a, reg::TIMER_DIVIDE, 0b1011); // divide by 1
        wr(&mut a, 0x320, LVT_TIMER_PERIODIC | 0xEC);
        wr(&mut a, reg::TIMER_INITIAL, 100);
        assert_eq!(a.next_deadline(), Some(100));
        a.set_time(99);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 1);
        a.set_time(100);
        assert_eq!(a.acknowledge(), Some(0xEC));
        wr(&mut a, reg::EOI, 0);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 100, "reloaded");
        assert_eq!(a.next_deadline(), Some(200));
        // Several periods at once: one interrupt, phase kept.
        a.set_time(1_030);
        assert_eq!(a.acknowledge(), Some(0xEC));
        wr(&mut a, reg::EOI, 0);
        assert!(!a.has_interrupt());
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 70);
        assert_eq!(a.next_deadline(), Some(1_100));
        // Changing the divider keeps the current count and stretches the rest.
        wr(&mut a, reg::TIMER_DIVIDE, 0b1010); // divide by 128
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 70);
        assert_eq!(a.next_deadline(), Some(1_030 + 70 * 128));
        a.set_time(1_030 + 128);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 69);
        // Every divide encoding.
        for (code, div) in [
            (0, 2),
            (1, 4),
            (2, 8),
            (3, 16),
            (8, 32),
            (9, 64),
            (10, 128),
            (11, 1),
        ] {
            wr(&mut a, reg::TIMER_DIVIDE, code);
            wr(&mut a, reg::TIMER_INITIAL, 5);
            assert_eq!(
                a.next_deadline(),
                Some(a.now_ns() + 5 * div),
                "divide code {code}"
            );
        }
    }

    #[test]
    fn masked_timer_counts_but_does_not_raise() {
        let mut a = enabled();
        wr(&mut a, reg::TIMER_DIVIDE, 0b1011);
        wr(&mut a, 0x320, LVT_MASKED | LVT_TIMER_PERIODIC | 0x30);
        wr(&mut a, reg::TIMER_INITIAL, 50);
        assert_eq!(a.next_deadline(), None);
        a.set_time(1_020);
        assert!(!a.has_interrupt());
        assert_eq!(rd(&mut a, reg::IRR + 0x20), 0);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 30);
        wr(&mut a, 0x320, LVT_TIMER_PERIODIC | 0x30);
        assert_eq!(a.next_deadline(), Some(1_050));
    }

    #[test]
    fn tsc_deadline_timer() {
        let mut a = enabled();
        // Outside TSC-deadline mode the MSR ignores writes.
        a.write_tsc_deadline(5_000, 5_000);
        assert_eq!(a.tsc_deadline(), 0);
        assert_eq!(a.next_deadline(), None);
        wr(&mut a, 0x320, LVT_TIMER_TSC_DEADLINE | 0xEF);
        assert_eq!(rd(&mut a, 0x320), LVT_TIMER_TSC_DEADLINE | 0xEF, "mode bits are writable");
        a.write_tsc_deadline(7_777, 2_000);
        assert_eq!(a.tsc_deadline(), 7_777);
        assert_eq!(a.next_deadline(), Some(2_000));
        // The initial count is ignored and the current count reads 0 in this mode.
        wr(&mut a, reg::TIMER_INITIAL, 10);
        assert_eq!(rd(&mut a, reg::TIMER_INITIAL), 0);
        assert_eq!(rd(&mut a, reg::TIMER_CURRENT), 0);
        a.set_time(1_999);
        assert!(!a.has_interrupt());
        a.set_time(2_000);
        assert_eq!(a.tsc_deadline(), 0, "the MSR clears when the deadline fires");
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.acknowledge(), Some(0xEF));
        wr(&mut a, reg::EOI, 0);
        a.set_time(10_000);
        assert!(!a.has_interrupt(), "fires once");
        // A deadline in the past fires at the next update; 0 disarms.
        a.write_tsc_deadline(1, 9_000);
        a.set_time(10_000);
        assert_eq!(a.acknowledge(), Some(0xEF));
        wr(&mut a, reg::EOI, 0);
        a.write_tsc_deadline(123, 20_000);
        a.write_tsc_deadline(0, 0);
        a.set_time(30_000);
        assert!(!a.has_interrupt());
        // Masked: counts down silently; leaving the mode disarms.
        wr(&mut a, 0x320, LVT_MASKED | LVT_TIMER_TSC_DEADLINE | 0xEF);
        a.write_tsc_deadline(99, 40_000);
        assert_eq!(a.next_deadline(), None);
        wr(&mut a, 0x320, 0xEF);
        assert_eq!(a.tsc_deadline(), 0, "a mode change disarms");
        a.set_time(50_000);
        assert!(!a.has_interrupt());
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut a = enabled();
        a.set_time(500);
        a.set_time(100);
        assert_eq!(a.now_ns(), 500);
    }

    #[test]
    fn random_accesses_never_panic() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut a = LocalApic::new();
        for i in 0..200_000u64 {
            let r = next();
            let off = if r & 1 == 0 {
                (r >> 8) as u32 & 0x3F0
            } else {
                (r >> 8) as u32 & 0xFFF
            };
            let size = [1u8, 2, 4, 8][(r >> 40) as usize & 3];
            let v = next();
            match (r >> 44) & 15 {
                0..=6 => a.write(off, size, v),
                7..=12 => {
                    a.read(off, size);
                }
                13 => a.set_irq(v as u8),
                14 => a.set_time(i * (v & 0xFFFF)),
                _ => {
                    if a.has_interrupt() {
                        a.acknowledge();
                    }
                    a.take_eoi_vectors();
                    a.next_deadline();
                    if v & 0xF0 == 0 {
                        a.set_base_msr(if v & 0x100 == 0 {
                            v
                        } else {
                            APIC_BASE_MSR_DEFAULT
                        });
                    }
                }
            }
        }
    }
}
