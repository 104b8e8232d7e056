//! The PC platform's interrupt side (`Platform` for the run loop): 8259A PIC pair, 8254
//! PIT, RTC and, unless disabled, a local APIC and an IOAPIC. Device time is host
//! monotonic time, so the PIT, the TSC (host TSC), the RTC and the APIC timer agree.
//!
//! Interrupt routing with the APICs (as on a PC, and as the MP table describes it):
//! every ISA IRQ edge goes to the PIC and to the IOAPIC pin `isa_irq_to_ioapic_pin`
//! gives (IRQ0 -> pin 2). IOAPIC messages go to the local APIC. The PIC's INTR reaches
//! the CPU only while the local APIC lets it through (LINT0 ExtINT unmasked, or the APIC
//! disabled: `LocalApic::accepts_pic_intr`), or after an ExtINT message from the IOAPIC.
//! The local APIC's vectors take precedence at the interrupt acknowledge.

use crate::machine::{ApicMsrs, Platform};
use ringfold_boot::mptable::isa_irq_to_ioapic_pin;
use ringfold_devices::{
    Delivery, IoApic, IoError, IrqLine, LocalApic, MmioBus, MmioDevice, MmioError, PortBus, PortDevice, ResetPort,
    SharedI8042, SharedPic, SharedPit, SharedRtc, IOAPIC_BASE, IOAPIC_DEFAULT_ID, IOAPIC_MMIO_LEN, LAPIC_BASE,
    LAPIC_MMIO_LEN,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// Devices whose state follows device time (PIT, RTC).
trait Clocked: PortDevice {
    fn set_time(&self, now_ns: u64);
}

impl Clocked for SharedPit {
    fn set_time(&self, now_ns: u64) {
        SharedPit::set_time(self, now_ns)
    }
}

impl Clocked for SharedRtc {
    fn set_time(&self, now_ns: u64) {
        SharedRtc::set_time(self, now_ns)
    }
}

/// Forwards port accesses to a clocked device after bringing its clock up to date.
struct Timed<D: Clocked> {
    dev: D,
    clock: fn() -> u64,
}

impl<D: Clocked> PortDevice for Timed<D> {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        self.dev.set_time((self.clock)());
        self.dev.read(port, size)
    }
    fn write(&mut self, port: u16, size: u8, value: u32) {
        self.dev.set_time((self.clock)());
        self.dev.write(port, size, value)
    }
}

/// The local APIC and the IOAPIC under one lock: an access to either can move an
/// interrupt to the other (IOAPIC messages, EOI broadcasts), which happens at once.
#[derive(Debug)]
pub struct Apics {
    pub lapic: LocalApic,
    pub ioapic: IoApic,
    /// The IOAPIC sent an ExtINT message: the CPU takes the PIC's vector next, whatever
    /// LINT0 says (how Linux's "through the 8259A" timer fallback routes IRQ0).
    extint: bool,
}

impl Apics {
    /// Forwards the guest's level-triggered EOIs to the IOAPIC, then the IOAPIC's
    /// messages to the local APIC. Call after every access and every IOAPIC input change.
    fn route(&mut self) {
        for v in self.lapic.drain_eoi_vectors() {
            self.ioapic.eoi(v);
        }
        for d in self.ioapic.drain_deliveries() {
            match d {
                Delivery::Fixed { vector, level: false } => self.lapic.set_irq(vector),
                Delivery::Fixed { vector, level: true } => self.lapic.set_irq_level(vector),
                Delivery::ExtInt => self.extint = true,
                // The run loop has no NMI input yet: IOAPIC NMI entries are dropped.
                Delivery::Nmi => {}
            }
        }
    }
}

/// A handle to the platform's APICs: the MMIO windows, the IA32_APIC_BASE MSR (as
/// `Machine::apic`) and the platform all share one.
#[derive(Clone, Debug)]
pub struct SharedApics(Arc<Mutex<Apics>>);

impl SharedApics {
    fn new() -> Self {
        SharedApics(Arc::new(Mutex::new(Apics {
            lapic: LocalApic::new(),
            ioapic: IoApic::new(IOAPIC_DEFAULT_ID),
            extint: false,
        })))
    }

    /// Locks both chips (a poisoned lock is recovered: the state is plain data).
    pub fn lock(&self) -> MutexGuard<'_, Apics> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The local APIC's MSRs as the CPU sees them (`attach_apics`).
#[derive(Clone)]
pub struct LapicMsrs {
    apics: SharedApics,
    clock: fn() -> u64,
    /// Device-time nanoseconds for a number of TSC ticks (`ringfold_host::timer::tsc_delta_ns`).
    tsc_ns: fn(u64) -> u64,
}

impl ApicMsrs for LapicMsrs {
    fn read(&self) -> u64 {
        self.apics.lock().lapic.base_msr()
    }
    fn write(&mut self, v: u64) {
        self.apics.lock().lapic.set_base_msr(v)
    }
    fn tsc_deadline(&self) -> u64 {
        self.apics.lock().lapic.tsc_deadline()
    }
    fn write_tsc_deadline(&mut self, tsc: u64, ahead: u64) {
        let now = (self.clock)();
        let at = now.saturating_add((self.tsc_ns)(ahead));
        let mut a = self.apics.lock();
        a.lapic.set_time(now);
        a.lapic.write_tsc_deadline(tsc, at);
    }
}

/// The local APIC's register page: brings the APIC timer up to date before each access
/// (the current-count register and expiries depend on it) and routes EOIs afterwards.
struct LapicMmio {
    apics: SharedApics,
    clock: fn() -> u64,
}

impl MmioDevice for LapicMmio {
    fn read(&mut self, offset: u32, size: u8) -> u64 {
        let mut a = self.apics.lock();
        a.lapic.set_time((self.clock)());
        let v = a.lapic.read(offset, size);
        // Reads of reserved registers may raise the error interrupt; nothing to route,
        // but keep the invariant "routed after every access" simple.
        a.route();
        v
    }
    fn write(&mut self, offset: u32, size: u8, value: u64) {
        let mut a = self.apics.lock();
        a.lapic.set_time((self.clock)());
        a.lapic.write(offset, size, value);
        a.route();
    }
}

/// The IOAPIC's register window (unmasking an asserted level entry delivers at once).
struct IoApicMmio(SharedApics);

impl MmioDevice for IoApicMmio {
    fn read(&mut self, offset: u32, size: u8) -> u64 {
        self.0.lock().ioapic.read(offset, size)
    }
    fn write(&mut self, offset: u32, size: u8, value: u64) {
        let mut a = self.0.lock();
        a.ioapic.write(offset, size, value);
        a.route();
    }
}

pub struct PcPlatform {
    pub pic: SharedPic,
    pub pit: SharedPit,
    clock: fn() -> u64,
    pub rtc: SharedRtc,
    /// Edge-triggered interrupt lines of other devices (e.g. the UART on IRQ4).
    lines: Vec<(u8, IrqLine)>,
    /// Reset requests (i8042 command 0xFE, port 0xCF9).
    resets: Vec<IrqLine>,
    /// Local APIC + IOAPIC (`attach_apics`); None: the PIC drives INTR directly.
    apics: Option<SharedApics>,
}

impl PcPlatform {
    /// Creates the PIC pair, the PIT, the RTC/CMOS (wall clock from `wall_ns`, the host's
    /// time of day at creation), the i8042 and the 0xCF9 reset port, and registers their
    /// ports (0x20, 0xA0, 0x4D0, 0x40-0x43, 0x61, 0x70-0x71, 0x60, 0x64, 0xCF9) on `bus`.
    pub fn new(bus: &mut PortBus, clock: fn() -> u64, ram_bytes: u64, wall_ns: u128) -> Result<PcPlatform, IoError> {
        let pic = SharedPic::new();
        pic.register(bus)?;
        let pit = SharedPit::new();
        bus.register(ringfold_devices::PIT_PORT, ringfold_devices::PIT_PORT_LEN, Box::new(Timed { dev: pit.clone(), clock }))?;
        bus.register(ringfold_devices::PORT_B, 1, Box::new(Timed { dev: pit.clone(), clock }))?;
        let rtc = SharedRtc::new(ram_bytes);
        rtc.set_time(clock());
        rtc.set_wall_time(wall_ns);
        bus.register(ringfold_devices::RTC_PORT, ringfold_devices::RTC_PORT_LEN, Box::new(Timed { dev: rtc.clone(), clock }))?;
        let kbc = SharedI8042::new();
        kbc.register(bus)?;
        let (irq1, irq12, kbc_reset) = {
            let k = kbc.lock();
            (k.irq1_line(), k.irq12_line(), k.reset_line())
        };
        let reset_port = ResetPort::new();
        let port_reset = reset_port.reset_line();
        bus.register(ringfold_devices::RESET_PORT, 1, Box::new(reset_port))?;
        let mut p = PcPlatform { pic, pit, clock, rtc, lines: Vec::new(), resets: vec![kbc_reset, port_reset], apics: None };
        p.connect(ringfold_devices::I8042_KBD_IRQ, irq1);
        p.connect(ringfold_devices::I8042_AUX_IRQ, irq12);
        Ok(p)
    }

    /// Connects a device's interrupt line to ISA IRQ `irq` (0..=15) of the PIC and, with
    /// the APICs, to the matching IOAPIC pin.
    pub fn connect(&mut self, irq: u8, line: IrqLine) {
        assert!(irq < 16, "ISA IRQ {irq} out of range");
        self.lines.push((irq, line));
    }

    /// Adds a local APIC (registers at `LAPIC_BASE`) and an IOAPIC (at `IOAPIC_BASE`) to
    /// the platform and registers their MMIO windows on `mmio`. The returned handle is the
    /// IA32_APIC_BASE MSR for `Machine::apic`. Both start in their reset state: the local
    /// APIC globally enabled but software-disabled (so the PIC still reaches the CPU, as
    /// after a BIOS's virtual-wire setup), every IOAPIC entry masked.
    /// `tsc_ns` converts TSC ticks to device-time nanoseconds (for IA32_TSC_DEADLINE).
    pub fn attach_apics(&mut self, mmio: &mut MmioBus, tsc_ns: fn(u64) -> u64) -> Result<LapicMsrs, MmioError> {
        let apics = SharedApics::new();
        apics.lock().lapic.set_time((self.clock)());
        mmio.register(LAPIC_BASE, LAPIC_MMIO_LEN, Box::new(LapicMmio { apics: apics.clone(), clock: self.clock }))?;
        mmio.register(IOAPIC_BASE, IOAPIC_MMIO_LEN, Box::new(IoApicMmio(apics.clone())))?;
        self.apics = Some(apics.clone());
        Ok(LapicMsrs { apics, clock: self.clock, tsc_ns })
    }
}

/// The IRQ numbers (bits) of `edges`, lowest first.
fn irqs(mut edges: u16) -> impl Iterator<Item = u8> {
    std::iter::from_fn(move || {
        (edges != 0).then(|| {
            let irq = edges.trailing_zeros() as u8;
            edges &= edges - 1;
            irq
        })
    })
}

impl Platform for PcPlatform {
    fn update(&mut self, now_ns: u64) -> bool {
        // ISA IRQ edges since the last update, one bit per IRQ (several edges of one IRQ
        // coalesce, as in the PIC's and the local APIC's IRR anyway).
        let mut edges = 0u16;
        if self.pit.irq0_edges_until(now_ns) > 0 {
            edges |= 1;
        }
        if self.rtc.irq8_edges_until(now_ns) > 0 {
            edges |= 1 << 8;
        }
        for (irq, line) in &self.lines {
            if line.take() {
                edges |= 1 << irq;
            }
        }
        let pic_intr = {
            let mut pic = self.pic.lock();
            irqs(edges).for_each(|irq| pic.pulse_irq(irq));
            pic.has_interrupt()
        };
        let Some(apics) = &self.apics else {
            return pic_intr;
        };
        let mut a = apics.lock();
        for pin in irqs(edges).filter_map(isa_irq_to_ioapic_pin) {
            a.ioapic.pulse(pin);
        }
        a.lapic.set_time(now_ns);
        a.route();
        a.lapic.has_interrupt() || (pic_intr && (a.extint || a.lapic.accepts_pic_intr()))
    }

    fn acknowledge(&mut self) -> Option<u8> {
        if let Some(apics) = &self.apics {
            let mut a = apics.lock();
            if a.lapic.has_interrupt() {
                return a.lapic.acknowledge();
            }
            if !(a.extint || a.lapic.accepts_pic_intr()) {
                return None;
            }
            a.extint = false;
        }
        Some(self.pic.acknowledge())
    }

    fn next_deadline(&self) -> Option<u64> {
        let now = (self.clock)();
        let lapic = self.apics.as_ref().and_then(|a| a.lock().lapic.next_deadline());
        [self.pit.next_irq0_deadline(now), self.rtc.next_irq8_deadline(now), lapic].into_iter().flatten().min()
    }

    fn reset_requested(&mut self) -> bool {
        self.resets.iter().any(|r| r.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Device time for the platform under test (per test thread).
        static NOW: Cell<u64> = const { Cell::new(0) };
    }

    fn now() -> u64 {
        NOW.with(Cell::get)
    }

    fn set_now(ns: u64) {
        NOW.with(|c| c.set(ns));
    }

    const LAPIC_SVR: u32 = LAPIC_BASE + 0xF0;
    const LAPIC_EOI: u32 = LAPIC_BASE + 0xB0;
    const LAPIC_LINT0: u32 = LAPIC_BASE + 0x350;
    const LAPIC_LVT_TIMER: u32 = LAPIC_BASE + 0x320;
    const LAPIC_TIMER_INITIAL: u32 = LAPIC_BASE + 0x380;
    const LAPIC_TIMER_DIVIDE: u32 = LAPIC_BASE + 0x3E0;

    struct Pc {
        p: PcPlatform,
        ports: PortBus,
        mmio: MmioBus,
        msr: LapicMsrs,
    }

    impl Pc {
        /// A platform with APICs at time 1 ms; the local APIC software-enabled (spurious
        /// vector 0xFF) and LINT0 programmed with `lint0`, as an OS does.
        fn new(lint0: u32) -> Pc {
            set_now(1_000_000);
            let mut ports = PortBus::new();
            let mut mmio = MmioBus::new();
            let mut p = PcPlatform::new(&mut ports, now, 64 << 20, 0).unwrap();
            let msr = p.attach_apics(&mut mmio, |ticks| ticks / 2).unwrap();
            let mut pc = Pc { p, ports, mmio, msr };
            pc.lapic_write(LAPIC_SVR, 0x1FF);
            pc.lapic_write(LAPIC_LINT0, lint0);
            pc
        }

        fn out(&mut self, port: u16, v: u8) {
            self.ports.write(port, 1, u32::from(v)).unwrap();
        }

        /// PIC pair at vectors 0x20/0x28, only IRQ0 unmasked; PIT channel 0 as a 1 kHz
        /// rate generator.
        fn pic_and_pit(&mut self) {
            for (port, v) in [(0x20, 0x11), (0x21, 0x20), (0x21, 4), (0x21, 1), (0x21, 0xFE)] {
                self.out(port, v);
            }
            for (port, v) in [(0xA0, 0x11), (0xA1, 0x28), (0xA1, 2), (0xA1, 1), (0xA1, 0xFF)] {
                self.out(port, v);
            }
            self.out(0x43, 0x34);
            self.out(0x40, (1193 & 0xFF) as u8);
            self.out(0x40, (1193 >> 8) as u8);
        }

        fn lapic_write(&mut self, pa: u32, v: u32) {
            assert!(self.mmio.write(pa, 4, u64::from(v)));
        }

        fn ioapic_write(&mut self, index: u32, v: u32) {
            assert!(self.mmio.write(IOAPIC_BASE, 4, u64::from(index)));
            assert!(self.mmio.write(IOAPIC_BASE + 0x10, 4, u64::from(v)));
        }

        fn ioapic_read(&mut self, index: u32) -> u32 {
            assert!(self.mmio.write(IOAPIC_BASE, 4, u64::from(index)));
            self.mmio.read(IOAPIC_BASE + 0x10, 4).unwrap() as u32
        }

        /// Advances time by `ns` and polls the platform as the run loop does.
        fn advance(&mut self, ns: u64) -> bool {
            set_now(now() + ns);
            self.p.update(now())
        }
    }

    #[test]
    fn pit_reaches_the_cpu_through_the_pic_in_virtual_wire_mode() {
        let mut pc = Pc::new(0x700); // LINT0: ExtINT, unmasked
        pc.pic_and_pit();
        assert!(!pc.p.update(now()));
        let d = pc.p.next_deadline().expect("PIT deadline");
        assert!(d > now() && d <= now() + 1_100_000, "{d} {}", now());
        assert!(pc.advance(1_100_000));
        assert_eq!(pc.p.acknowledge(), Some(0x20), "the PIC's vector for IRQ0");
        pc.out(0x20, 0x20); // EOI to the PIC
        assert!(!pc.p.update(now()));
        // The IOAPIC saw the edge on pin 2 too, but its entry is masked (reset state).
        assert_eq!(pc.ioapic_read(0x14), 0x1_0000);
    }

    #[test]
    fn pit_reaches_the_cpu_through_ioapic_pin_2_and_the_local_apic() {
        let mut pc = Pc::new(0x1_0700); // LINT0 masked: the PIC is cut off
        pc.pic_and_pit();
        pc.ioapic_write(0x14, 0x30); // pin 2: vector 0x30, fixed, edge, unmasked
        assert!(pc.advance(1_100_000));
        assert_eq!(pc.p.acknowledge(), Some(0x30));
        // The PIC has IRQ0 pending as well, but LINT0 is masked: nothing else to take.
        assert!(pc.p.pic.has_interrupt());
        assert!(!pc.p.update(now()));
        assert_eq!(pc.p.acknowledge(), None);
        pc.lapic_write(LAPIC_EOI, 0);
        assert!(pc.advance(1_000_000));
        assert_eq!(pc.p.acknowledge(), Some(0x30));
        pc.lapic_write(LAPIC_EOI, 0);
        // IA32_APIC_BASE without the enable bit takes the local APIC out: the PIC's INTR
        // goes straight to the CPU again.
        let mut msr = pc.msr.clone();
        msr.write(0xFEE0_0000);
        assert_eq!(msr.read(), 0xFEE0_0100);
        assert!(pc.p.update(now()));
        assert_eq!(pc.p.acknowledge(), Some(0x20));
    }

    #[test]
    fn local_apic_vectors_come_before_the_pic() {
        let mut pc = Pc::new(0x700);
        pc.pic_and_pit();
        pc.ioapic_write(0x14, 0x30);
        assert!(pc.advance(1_100_000));
        // Both paths have IRQ0 (a guest would not route it twice; the order is the point).
        assert_eq!(pc.p.acknowledge(), Some(0x30));
        assert!(pc.p.update(now()));
        assert_eq!(pc.p.acknowledge(), Some(0x20));
    }

    #[test]
    fn lapic_eoi_clears_remote_irr_of_a_level_entry() {
        let mut pc = Pc::new(0x1_0700);
        let line = IrqLine::new();
        pc.p.connect(4, line.clone());
        pc.ioapic_write(0x18, 0x8041); // pin 4: vector 0x41, level, unmasked
        line.raise();
        assert!(pc.advance(1));
        assert_ne!(pc.ioapic_read(0x18) & (1 << 14), 0, "Remote IRR set at delivery");
        assert_eq!(pc.p.acknowledge(), Some(0x41));
        assert_ne!(pc.ioapic_read(0x18) & (1 << 14), 0);
        pc.lapic_write(LAPIC_EOI, 0);
        assert_eq!(pc.ioapic_read(0x18) & (1 << 14), 0, "EOI broadcast reached the IOAPIC");
        assert!(!pc.p.update(now()));
        // The next edge delivers again.
        line.raise();
        assert!(pc.advance(1));
        assert_eq!(pc.p.acknowledge(), Some(0x41));
    }

    #[test]
    fn lapic_timer_deadline_is_a_platform_deadline() {
        let mut pc = Pc::new(0x1_0700);
        assert_eq!(pc.p.next_deadline(), None, "PIT and RTC idle");
        let t0 = now();
        pc.lapic_write(LAPIC_TIMER_DIVIDE, 0xB); // divide by 1: 1 ns per count
        pc.lapic_write(LAPIC_LVT_TIMER, 0xEC); // one-shot, vector 0xEC
        pc.lapic_write(LAPIC_TIMER_INITIAL, 5000);
        assert_eq!(pc.p.next_deadline(), Some(t0 + 5000));
        assert!(!pc.advance(4999));
        assert!(pc.advance(1));
        assert_eq!(pc.p.acknowledge(), Some(0xEC));
        assert_eq!(pc.p.next_deadline(), None, "one-shot expired");
    }

    #[test]
    fn tsc_deadline_msr_is_a_platform_deadline() {
        let mut pc = Pc::new(0x1_0700);
        let mut msr = pc.msr.clone();
        let t0 = now();
        // Not in TSC-deadline mode yet: the write is ignored.
        msr.write_tsc_deadline(1_000_000, 8000);
        assert_eq!((msr.tsc_deadline(), pc.p.next_deadline()), (0, None));
        pc.lapic_write(LAPIC_LVT_TIMER, (2 << 17) | 0xEC); // TSC-deadline mode, vector 0xEC
        // The test platform's TSC runs at 2 ticks per ns.
        msr.write_tsc_deadline(1_000_000, 8000);
        assert_eq!(msr.tsc_deadline(), 1_000_000);
        assert_eq!(pc.p.next_deadline(), Some(t0 + 4000));
        assert!(!pc.advance(3999));
        assert!(pc.advance(1));
        assert_eq!(pc.p.acknowledge(), Some(0xEC));
        assert_eq!((msr.tsc_deadline(), pc.p.next_deadline()), (0, None), "fired and cleared");
    }

    #[test]
    fn ioapic_extint_message_takes_the_pic_vector() {
        let mut pc = Pc::new(0x1_0700); // LINT0 masked
        pc.pic_and_pit();
        pc.ioapic_write(0x14, 0x700); // pin 2: ExtINT (Linux's "through the 8259A" fallback)
        assert!(pc.advance(1_100_000));
        assert_eq!(pc.p.acknowledge(), Some(0x20));
        pc.out(0x20, 0x20);
        assert!(!pc.p.update(now()));
    }

    #[test]
    fn without_apics_the_pic_drives_intr() {
        set_now(1_000_000);
        let mut ports = PortBus::new();
        let mut p = PcPlatform::new(&mut ports, now, 64 << 20, 0).unwrap();
        for (port, v) in [(0x20, 0x11), (0x21, 0x20), (0x21, 4), (0x21, 1), (0x21, 0xFE), (0x43, 0x34), (0x40, 0xA9), (0x40, 4)] {
            ports.write(port, 1, v).unwrap();
        }
        set_now(2_100_000);
        assert!(p.update(now()));
        assert_eq!(p.acknowledge(), Some(0x20));
    }

    #[test]
    fn isa_irq_bits() {
        assert_eq!(irqs(0).count(), 0);
        assert_eq!(irqs(0x8111).collect::<Vec<_>>(), vec![0, 4, 8, 15]);
    }
}
