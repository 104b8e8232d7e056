//! Bochs/QEMU style debug console (port 0xE9).

use std::io::Write;

use crate::{OutputSink, PortDevice};

/// Value read back from the debug console port, which lets guests detect it.
const DEBUGCON_READBACK: u32 = 0xE9;

/// Debug console: every byte written to the port goes to the output sink.
///
/// Only the low byte of a write is emitted (wider writes behave as on QEMU,
/// where the neighbouring ports are not part of the device).  Reads return
/// 0xE9 in the low byte and all ones in the upper bytes of wider reads.
/// Output is line buffered, see [`OutputSink`].
#[derive(Debug)]
pub struct DebugConsole {
    out: OutputSink,
}

impl DebugConsole {
    /// A debug console writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        DebugConsole {
            out: OutputSink::new(out),
        }
    }

    /// A debug console writing to the process's standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    /// Access to the sink (e.g. for [`OutputSink::take_error`]).
    pub fn sink_mut(&mut self) -> &mut OutputSink {
        &mut self.out
    }
}

impl PortDevice for DebugConsole {
    fn read(&mut self, _port: u16, _size: u8) -> u32 {
        !0xFF | DEBUGCON_READBACK
    }

    fn write(&mut self, _port: u16, _size: u8, value: u32) {
        self.out.push(value as u8);
    }

    fn flush(&mut self) {
        self.out.flush();
    }
}
