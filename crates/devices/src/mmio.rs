//! Memory-mapped I/O: devices registered over guest-physical ranges that are not RAM.
//! The monitor traps guest accesses to them (the host never maps these pages), decodes the
//! faulting instruction and dispatches each access here.

/// A memory-mapped device. Offsets are relative to the registered base; `size` is 1, 2,
/// 4 or 8 bytes and accesses never cross the registered range.
pub trait MmioDevice: Send {
    fn read(&mut self, offset: u32, size: u8) -> u64;
    fn write(&mut self, offset: u32, size: u8, value: u64);
}

/// Errors registering an MMIO range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmioError {
    #[error("MMIO range {base:#x}+{len:#x} is empty or wraps around 4 GiB")]
    BadRange { base: u32, len: u32 },
    #[error("MMIO range {base:#x}+{len:#x} overlaps {other:#x}")]
    Overlap { base: u32, len: u32, other: u32 },
}

/// The set of MMIO devices (few, so a sorted vector with binary search).
#[derive(Default)]
pub struct MmioBus {
    regions: Vec<(u32, u32, Box<dyn MmioDevice>)>,
}

impl MmioBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, base: u32, len: u32, dev: Box<dyn MmioDevice>) -> Result<(), MmioError> {
        if len == 0 || base.checked_add(len - 1).is_none() {
            return Err(MmioError::BadRange { base, len });
        }
        if let Some((b, _, _)) = self.regions.iter().find(|(b, l, _)| base <= b + (l - 1) && *b <= base + (len - 1)) {
            return Err(MmioError::Overlap { base, len, other: *b });
        }
        let at = self.regions.partition_point(|(b, _, _)| *b < base);
        self.regions.insert(at, (base, len, dev));
        Ok(())
    }

    fn find(&mut self, pa: u32, size: u8) -> Option<(&mut dyn MmioDevice, u32)> {
        let i = self.regions.partition_point(|(b, _, _)| *b <= pa).checked_sub(1)?;
        let (b, l, dev) = &mut self.regions[i];
        let off = pa - *b;
        (off as u64 + size as u64 <= *l as u64).then_some((dev.as_mut(), off))
    }

    /// Reads `size` bytes at `pa`; None if no device covers the whole access.
    pub fn read(&mut self, pa: u32, size: u8) -> Option<u64> {
        let (d, off) = self.find(pa, size)?;
        Some(d.read(off, size))
    }

    /// Writes `size` bytes at `pa`; false if no device covers the whole access.
    pub fn write(&mut self, pa: u32, size: u8, value: u64) -> bool {
        match self.find(pa, size) {
            Some((d, off)) => {
                d.write(off, size, value);
                true
            }
            None => false,
        }
    }
}

/// Guest-physical base of the test device (below the local APIC page and the monitor).
pub const TESTDEV_BASE: u32 = 0xFEBF_0000;
/// The test device's ID register value ("RFTD").
pub const TESTDEV_ID: u32 = 0x4454_4652;

/// ringfold's MMIO test device (for conformance guests): a 4 KiB page whose register 0
/// reads the ID `TESTDEV_ID`, registers 1..=255 are plain 32-bit read/write scratch
/// registers, and every access is counted (register 0x3FC reads the access count), so a
/// guest can check that each instruction form made exactly the accesses it should.
pub struct TestDevice {
    regs: [u32; 1024],
    accesses: u32,
}

impl Default for TestDevice {
    fn default() -> Self {
        TestDevice { regs: [0; 1024], accesses: 0 }
    }
}

impl TestDevice {
    pub fn new() -> Self {
        Self::default()
    }

    fn byte(&self, off: u32) -> u8 {
        let r = (off / 4) as usize;
        let v = match r {
            0 => TESTDEV_ID,
            1023 => self.accesses,
            _ => self.regs[r],
        };
        (v >> ((off % 4) * 8)) as u8
    }
}

impl MmioDevice for TestDevice {
    fn read(&mut self, offset: u32, size: u8) -> u64 {
        let v = (0..size as u32).fold(0u64, |v, k| v | (self.byte(offset + k) as u64) << (8 * k));
        self.accesses = self.accesses.wrapping_add(1);
        v
    }

    fn write(&mut self, offset: u32, size: u8, value: u64) {
        for k in 0..size as u32 {
            let off = offset + k;
            let r = (off / 4) as usize;
            if r == 0 || r == 1023 {
                continue;
            }
            let sh = (off % 4) * 8;
            self.regs[r] = (self.regs[r] & !(0xFF << sh)) | (((value >> (8 * k)) as u32 & 0xFF) << sh);
        }
        self.accesses = self.accesses.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_and_dispatch() {
        let mut bus = MmioBus::new();
        bus.register(TESTDEV_BASE, 0x1000, Box::new(TestDevice::new())).unwrap();
        assert!(matches!(bus.register(TESTDEV_BASE + 0x800, 0x1000, Box::new(TestDevice::new())), Err(MmioError::Overlap { .. })));
        assert!(matches!(bus.register(0xFFFF_F000, 0x2000, Box::new(TestDevice::new())), Err(MmioError::BadRange { .. })));
        assert_eq!(bus.read(TESTDEV_BASE, 4), Some(TESTDEV_ID as u64));
        assert!(bus.write(TESTDEV_BASE + 4, 4, 0x1122_3344));
        assert_eq!(bus.read(TESTDEV_BASE + 5, 2), Some(0x2233));
        assert!(bus.write(TESTDEV_BASE + 6, 1, 0xAA));
        assert_eq!(bus.read(TESTDEV_BASE + 4, 4), Some(0x11AA_3344));
        assert_eq!(bus.read(TESTDEV_BASE + 0xFFE, 4), None, "access crossing the end");
        assert_eq!(bus.read(TESTDEV_BASE - 4, 4), None);
        assert_eq!(bus.read(TESTDEV_BASE + 0xFFC, 4), Some(5), "access counter (reads before this one)");
        assert!(!bus.write(0x1000, 4, 0));
    }
}
