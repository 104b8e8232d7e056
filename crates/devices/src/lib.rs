#![forbid(unsafe_code)]
//! Port I/O devices for ringfold guests.
//!
//! Pure logic, no host interaction besides writing to the output sinks the
//! caller provides.  The monitor decodes `in`/`out` instructions and forwards
//! them to a [`PortBus`], which dispatches to the registered [`PortDevice`]s:
//!
//! * [`DebugConsole`] — Bochs/QEMU style debug port (0xE9).
//! * [`ExitDevice`] — QEMU `isa-debug-exit` compatible exit port (0xF4).
//! * [`Uart16550`] — 16550A UART (COM1 at 0x3F8) built on `vm_superio::Serial`.
//!
//! ```
//! use ringfold_devices::*;
//!
//! let mut bus = PortBus::new();
//! let out = SharedBuffer::new();
//! bus.register(DEBUG_CONSOLE_PORT, 1, Box::new(DebugConsole::new(Box::new(out.clone())))).unwrap();
//! bus.register(EXIT_PORT, EXIT_PORT_LEN, Box::new(ExitDevice::new())).unwrap();
//! bus.write(0xE9, 1, u32::from(b'A')).unwrap();
//! bus.write(0xE9, 1, u32::from(b'\n')).unwrap();
//! assert_eq!(out.contents(), b"A\n");
//! bus.write(0xF4, 1, 0).unwrap();
//! assert_eq!(bus.take_exit(), Some(ExitRequest::Status(1)));
//! ```

use std::any::Any;

mod bus;
mod console_watch;
mod debugcon;
mod exit;
mod i8042;
mod mmio;
mod pic;
mod pit;
mod rtc;
mod sink;
mod uart;

pub use bus::{DeviceId, IoError, PortBus};
pub use console_watch::{ConsoleWatch, GuestEvent, GuestEvents};
pub use debugcon::DebugConsole;
pub use exit::{exit_status, ExitDevice};
pub use i8042::{
    ResetPort, SharedI8042, I8042, I8042_AUX_IRQ, I8042_COMMAND_PORT, I8042_DATA_PORT,
    I8042_KBD_IRQ, RESET_PORT,
};
pub use mmio::{MmioBus, MmioDevice, MmioError, TestDevice, TESTDEV_BASE, TESTDEV_ID};
pub use pic::{
    PicPair, SharedPic, ELCR_PORT, ELCR_PORT_LEN, PIC_MASTER_PORT, PIC_PORT_LEN, PIC_SLAVE_PORT,
};
pub use pit::{
    ns_to_ticks, ticks_to_ns, Pit, SharedPit, PIT_FREQ_HZ, PIT_PORT, PIT_PORT_LEN, PORT_B,
};
pub use rtc::{Rtc, SharedRtc, RTC_IRQ, RTC_PORT, RTC_PORT_LEN, RTC_UIP_NS};
pub use sink::{OutputSink, SharedBuffer};
pub use uart::{IrqLine, Uart16550};

/// Port of the debug console.
pub const DEBUG_CONSOLE_PORT: u16 = 0xE9;
/// First port of the exit device.
pub const EXIT_PORT: u16 = 0xF4;
/// Number of ports decoded by the exit device.
pub const EXIT_PORT_LEN: u16 = 4;
/// Base port of COM1.
pub const COM1_PORT: u16 = 0x3F8;
/// Number of ports decoded by a UART.
pub const UART_PORT_LEN: u16 = 8;

/// A device reachable through x86 port I/O.
///
/// `port` is the absolute port number of the access, `size` is the access
/// width in bytes (1, 2 or 4; the bus rejects anything else).  For writes,
/// only the low `size` bytes of `value` are meaningful (the bus masks the
/// rest off); for reads, the bus masks the returned value to `size` bytes.
///
/// Devices must be `Send` so a whole bus can be moved to a vCPU thread, and
/// `'static` so [`PortBus::device_mut`] can hand them back by concrete type.
pub trait PortDevice: Any + Send {
    /// Handles an `in` instruction.
    fn read(&mut self, port: u16, size: u8) -> u32;

    /// Handles an `out` instruction.
    fn write(&mut self, port: u16, size: u8, value: u32);

    /// Returns (and clears) an exit the device wants the monitor to perform.
    /// Polled by the bus after every write to the device.
    fn take_exit(&mut self) -> Option<ExitRequest> {
        None
    }

    /// Pushes any buffered output to its destination.
    fn flush(&mut self) {}
}

/// A request from the guest (through a device) to stop the virtual machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitRequest {
    /// Exit the process with this status.  The value is not truncated:
    /// the OS only keeps the low 8 bits, so callers typically use
    /// `std::process::exit(status & 0xFF)` (or just `exit(status)`, which
    /// the OS truncates the same way).
    Status(i32),
}

#[cfg(test)]
mod tests;

mod ioapic;
mod lapic;
pub use ioapic::{
    Delivery, IoApic, IOAPIC_BASE, IOAPIC_DEFAULT_ID, IOAPIC_MMIO_LEN, IOAPIC_PINS, IOAPIC_VERSION,
};
pub use lapic::{
    LocalApic, APIC_BASE_MSR_DEFAULT, APIC_BASE_MSR_RESERVED, LAPIC_BASE, LAPIC_BUS_HZ,
    LAPIC_MMIO_LEN, LAPIC_VERSION,
};
