//! The PC platform's interrupt side: 8259A PIC pair and 8254 PIT wired to the CPU's
//! INTR pin (`Platform` for the run loop). Device time is host monotonic time, so the PIT,
//! the TSC (host TSC) and the RTC agree.

use crate::machine::Platform;
use ringfold_devices::{IoError, IrqLine, PortBus, PortDevice, ResetPort, SharedI8042, SharedPic, SharedPit, SharedRtc};

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

pub struct PcPlatform {
    pub pic: SharedPic,
    pub pit: SharedPit,
    clock: fn() -> u64,
    pub rtc: SharedRtc,
    /// Edge-triggered interrupt lines of other devices (e.g. the UART on IRQ4).
    lines: Vec<(u8, IrqLine)>,
    /// Reset requests (i8042 command 0xFE, port 0xCF9).
    resets: Vec<IrqLine>,
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
        let mut p = PcPlatform { pic, pit, clock, rtc, lines: Vec::new(), resets: vec![kbc_reset, port_reset] };
        p.connect(ringfold_devices::I8042_KBD_IRQ, irq1);
        p.connect(ringfold_devices::I8042_AUX_IRQ, irq12);
        Ok(p)
    }

    /// Connects a device's interrupt line to ISA IRQ `irq` of the PIC.
    pub fn connect(&mut self, irq: u8, line: IrqLine) {
        self.lines.push((irq, line));
    }
}

impl Platform for PcPlatform {
    fn update(&mut self, now_ns: u64) -> bool {
        if self.pit.irq0_edges_until(now_ns) > 0 {
            self.pic.pulse_irq(0);
        }
        if self.rtc.irq8_edges_until(now_ns) > 0 {
            self.pic.pulse_irq(8);
        }
        for (irq, line) in &self.lines {
            if line.take() {
                self.pic.pulse_irq(*irq);
            }
        }
        self.pic.has_interrupt()
    }

    fn acknowledge(&mut self) -> Option<u8> {
        Some(self.pic.acknowledge())
    }

    fn next_deadline(&self) -> Option<u64> {
        let now = (self.clock)();
        match (self.pit.next_irq0_deadline(now), self.rtc.next_irq8_deadline(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn reset_requested(&mut self) -> bool {
        self.resets.iter().any(|r| r.take())
    }
}
