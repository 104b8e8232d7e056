//! QEMU `isa-debug-exit` compatible exit device (port 0xF4).

use crate::{ExitRequest, PortDevice};

/// Exit status for a value written to the exit device: `(v << 1) | 1`.
///
/// Computed on 32 bits with wrapping semantics (bit 31 of `v` is shifted
/// out) and reinterpreted as `i32`, so `v = 0x7FFF_FFFF` gives `-1` and
/// `v = 0x8000_0000` gives `1`.  The result is always odd, so a guest can
/// never report plain success (0), as with QEMU.  The OS keeps only the low
/// 8 bits of a process exit status; truncation is left to the caller.
pub const fn exit_status(value: u32) -> i32 {
    ((value << 1) | 1) as i32
}

/// Writing any value `v` (of any size) requests an exit with status
/// [`exit_status(v)`](exit_status).  Reads return 0.
#[derive(Debug, Default)]
pub struct ExitDevice {
    pending: Option<ExitRequest>,
}

impl ExitDevice {
    /// A new exit device with no pending request.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PortDevice for ExitDevice {
    fn read(&mut self, _port: u16, _size: u8) -> u32 {
        0
    }

    fn write(&mut self, _port: u16, _size: u8, value: u32) {
        self.pending = Some(ExitRequest::Status(exit_status(value)));
    }

    fn take_exit(&mut self) -> Option<ExitRequest> {
        self.pending.take()
    }
}
