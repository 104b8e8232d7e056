//! The PC platform's interrupt side: 8259A PIC pair and 8254 PIT wired to the CPU's
//! INTR pin (`Platform` for the run loop). Device time is host monotonic time, so the PIT,
//! the TSC (host TSC) and the RTC agree.

use crate::machine::Platform;
use ringfold_devices::{IoError, IrqLine, PortBus, PortDevice, SharedPic, SharedPit};

/// Forwards port accesses to the PIT after bringing its clock up to date.
struct TimedPit {
    pit: SharedPit,
    clock: fn() -> u64,
}

impl PortDevice for TimedPit {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        self.pit.set_time((self.clock)());
        self.pit.read(port, size)
    }
    fn write(&mut self, port: u16, size: u8, value: u32) {
        self.pit.set_time((self.clock)());
        self.pit.write(port, size, value)
    }
}

pub struct PcPlatform {
    pub pic: SharedPic,
    pub pit: SharedPit,
    clock: fn() -> u64,
    /// Edge-triggered interrupt lines of other devices (e.g. the UART on IRQ4).
    lines: Vec<(u8, IrqLine)>,
}

impl PcPlatform {
    /// Creates the PIC pair and the PIT and registers their ports (0x20, 0xA0, 0x4D0,
    /// 0x40-0x43, 0x61) on `bus`.
    pub fn new(bus: &mut PortBus, clock: fn() -> u64) -> Result<PcPlatform, IoError> {
        let pic = SharedPic::new();
        pic.register(bus)?;
        let pit = SharedPit::new();
        bus.register(ringfold_devices::PIT_PORT, ringfold_devices::PIT_PORT_LEN, Box::new(TimedPit { pit: pit.clone(), clock }))?;
        bus.register(ringfold_devices::PORT_B, 1, Box::new(TimedPit { pit: pit.clone(), clock }))?;
        Ok(PcPlatform { pic, pit, clock, lines: Vec::new() })
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
        self.pit.next_irq0_deadline((self.clock)())
    }
}
