//! Port I/O dispatch.

use std::any::Any;
use std::fmt;

use thiserror::Error;

use crate::{ExitRequest, PortDevice};

/// Number of x86 I/O ports.
const PORT_COUNT: usize = 0x1_0000;

/// Errors reported by [`PortBus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IoError {
    /// Access to a port no device is registered for (strict mode only).
    #[error("{} of {size} byte(s) at unassigned I/O port {port:#06x}", if *.write { "write" } else { "read" })]
    Unassigned { port: u16, size: u8, write: bool },
    /// Access width other than 1, 2 or 4 bytes.
    #[error("invalid I/O access size {size} at port {port:#06x} (must be 1, 2 or 4)")]
    InvalidSize { port: u16, size: u8 },
    /// `register` with a range that is empty or extends past port 0xFFFF.
    #[error("invalid I/O port range: base {base:#06x}, length {len:#x}")]
    InvalidRange { base: u16, len: u16 },
    /// `register` with a range that overlaps an already registered device.
    #[error("I/O ports [{base:#06x}, {:#06x}) overlap the device registered at [{existing_base:#06x}, {:#06x})", u32::from(*.base) + u32::from(*.len), u32::from(*.existing_base) + u32::from(*.existing_len))]
    Overlap {
        base: u16,
        len: u16,
        existing_base: u16,
        existing_len: u16,
    },
}

/// Handle to a registered device, returned by [`PortBus::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(usize);

struct Slot {
    base: u16,
    len: u16,
    dev: Box<dyn PortDevice>,
}

/// Dispatches port I/O to registered devices.
///
/// Lookup is O(1): a 64 Ki-entry table maps every port to its device.
///
/// Accesses to ports without a device read as all ones (`0xFF`, `0xFFFF`,
/// `0xFFFF_FFFF` depending on the size) and writes are dropped, like on a PC
/// bus.  In strict mode both return [`IoError::Unassigned`] instead.
///
/// An access is routed to the device owning its *first* port, with the full
/// width; devices decide what wider accesses mean.
pub struct PortBus {
    /// `0` = unassigned, otherwise index into `slots` plus one.
    map: Box<[u16]>,
    slots: Vec<Slot>,
    strict: bool,
    pending_exit: Option<ExitRequest>,
}

impl Default for PortBus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PortBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<_> = self
            .slots
            .iter()
            .map(|s| format!("{:#06x}+{:#x}", s.base, s.len))
            .collect();
        f.debug_struct("PortBus")
            .field("devices", &ranges)
            .field("strict", &self.strict)
            .field("pending_exit", &self.pending_exit)
            .finish()
    }
}

#[inline]
fn size_mask(port: u16, size: u8) -> Result<u32, IoError> {
    match size {
        1 => Ok(0xFF),
        2 => Ok(0xFFFF),
        4 => Ok(0xFFFF_FFFF),
        _ => Err(IoError::InvalidSize { port, size }),
    }
}

impl PortBus {
    /// An empty, non-strict bus.
    pub fn new() -> Self {
        PortBus {
            map: vec![0u16; PORT_COUNT].into_boxed_slice(),
            slots: Vec::new(),
            strict: false,
            pending_exit: None,
        }
    }

    /// Enables or disables strict mode (unassigned ports are errors).
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    /// Whether strict mode is enabled.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Registers `dev` for ports `[base, base + len)`.
    ///
    /// Fails if the range is empty, extends past port 0xFFFF, or overlaps a
    /// device registered earlier.
    pub fn register(
        &mut self,
        base: u16,
        len: u16,
        dev: Box<dyn PortDevice>,
    ) -> Result<DeviceId, IoError> {
        let start = usize::from(base);
        let end = start + usize::from(len);
        if len == 0 || end > PORT_COUNT {
            return Err(IoError::InvalidRange { base, len });
        }
        if let Some(&taken) = self.map[start..end].iter().find(|&&i| i != 0) {
            let existing = &self.slots[usize::from(taken) - 1];
            return Err(IoError::Overlap {
                base,
                len,
                existing_base: existing.base,
                existing_len: existing.len,
            });
        }
        let index = self.slots.len();
        // Tag 0 means "unassigned", so only 65535 devices fit (each owns at
        // least one port, so this only fails for 65536 one-port devices).
        let tag = u16::try_from(index + 1).map_err(|_| IoError::InvalidRange { base, len })?;
        self.slots.push(Slot { base, len, dev });
        self.map[start..end].fill(tag);
        Ok(DeviceId(index))
    }

    /// The device registered for `port`, if any.
    pub fn device_at(&self, port: u16) -> Option<DeviceId> {
        match self.map[usize::from(port)] {
            0 => None,
            tag => Some(DeviceId(usize::from(tag) - 1)),
        }
    }

    /// The port range `(base, len)` of a registered device.
    pub fn range(&self, id: DeviceId) -> Option<(u16, u16)> {
        self.slots.get(id.0).map(|s| (s.base, s.len))
    }

    /// Borrows a registered device by concrete type.
    pub fn device<T: PortDevice>(&self, id: DeviceId) -> Option<&T> {
        let dev: &dyn PortDevice = &*self.slots.get(id.0)?.dev;
        let any: &dyn Any = dev;
        any.downcast_ref()
    }

    /// Mutably borrows a registered device by concrete type (for example to
    /// feed input to a [`Uart16550`](crate::Uart16550)).
    pub fn device_mut<T: PortDevice>(&mut self, id: DeviceId) -> Option<&mut T> {
        let dev: &mut dyn PortDevice = &mut *self.slots.get_mut(id.0)?.dev;
        let any: &mut dyn Any = dev;
        any.downcast_mut()
    }

    /// Handles an `in` of `size` bytes (1, 2 or 4) from `port`.
    #[inline]
    pub fn read(&mut self, port: u16, size: u8) -> Result<u32, IoError> {
        let mask = size_mask(port, size)?;
        match self.map[usize::from(port)] {
            0 if self.strict => Err(IoError::Unassigned {
                port,
                size,
                write: false,
            }),
            0 => Ok(mask),
            tag => Ok(self.slots[usize::from(tag) - 1].dev.read(port, size) & mask),
        }
    }

    /// Handles an `out` of the low `size` bytes (1, 2 or 4) of `value` to
    /// `port`.  Afterwards, check [`take_exit`](Self::take_exit).
    #[inline]
    pub fn write(&mut self, port: u16, size: u8, value: u32) -> Result<(), IoError> {
        let mask = size_mask(port, size)?;
        match self.map[usize::from(port)] {
            0 if self.strict => Err(IoError::Unassigned {
                port,
                size,
                write: true,
            }),
            0 => Ok(()),
            tag => {
                let dev = &mut self.slots[usize::from(tag) - 1].dev;
                dev.write(port, size, value & mask);
                if let Some(req) = dev.take_exit() {
                    // The first request wins; the monitor should stop the
                    // guest as soon as it sees one.
                    self.pending_exit.get_or_insert(req);
                }
                Ok(())
            }
        }
    }

    /// Returns and clears the pending exit request, if a device raised one.
    #[inline]
    pub fn take_exit(&mut self) -> Option<ExitRequest> {
        self.pending_exit.take()
    }

    /// Whether an exit request is pending (without clearing it).
    pub fn exit_pending(&self) -> bool {
        self.pending_exit.is_some()
    }

    /// Flushes buffered output of every device (call before exiting).
    pub fn flush_all(&mut self) {
        for slot in &mut self.slots {
            slot.dev.flush();
        }
    }
}
