//! I/O APIC (82093AA style, 24 pins) feeding the single local APIC: see [`IoApic`].
//!
//! # Pin wiring the platform is expected to use
//!
//! The MP table built by `ringfold_boot::mptable` describes this wiring, so the platform
//! must raise the IOAPIC pins accordingly (in addition to the 8259 inputs):
//!
//! | ISA IRQ | IOAPIC pin |
//! |---------|------------|
//! | 0 (PIT) | 2          |
//! | 1, 3..=15 | same number |
//! | 2 (cascade) | none   |
//!
//! IRQ0 on pin 2 is what PC chipsets (and QEMU) do: pin 0 is where boards wire the 8259's
//! INTR for ExtINT delivery. Our MP table lists no ExtINT pin, so the 8259 reaches the CPU
//! only through the local APIC's LINT0. Pins 16..=23 (PCI) are unused. ISA interrupts are
//! active-high and edge-triggered, but the guest chooses the trigger mode per entry.
//!
//! Lines are logical: `set_level(pin, true)` means "asserted" whatever the entry's
//! polarity bit says (the bit is stored and read back only). Reprogramming the polarity
//! cannot then turn an idle line into an interrupt storm, which is also what QEMU does.

use crate::MmioDevice;

/// Guest-physical base of the IOAPIC.
pub const IOAPIC_BASE: u32 = 0xFEC0_0000;
/// Bytes of the register window (IOREGSEL at 0x00, IOWIN at 0x10). Registering a whole
/// 4 KiB page instead is fine too: every other offset reads 0 and ignores writes.
pub const IOAPIC_MMIO_LEN: u32 = 0x20;
/// IOAPIC ID the MP table announces (the local APIC has ID 0).
pub const IOAPIC_DEFAULT_ID: u8 = 1;
/// Number of redirection table entries (input pins).
pub const IOAPIC_PINS: u8 = 24;
/// IOAPICVER: version 0x11, maximum redirection entry 23.
pub const IOAPIC_VERSION: u32 = 0x0017_0011;

const IOREGSEL: u32 = 0x00;
const IOWIN: u32 = 0x10;

const REG_ID: u8 = 0x00;
const REG_VERSION: u8 = 0x01;
const REG_ARB: u8 = 0x02;
const REG_REDIR: u8 = 0x10;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const REMOTE_IRR: u64 = 1 << 14;
/// Low-dword bits software may write: vector, delivery mode, destination mode (0-11),
/// polarity (13), trigger mode (15), mask (16). Delivery status (12) and Remote IRR (14)
/// are read-only; 17-31 are reserved.
const LOW_WRITABLE: u64 = 0x0001_AFFF;
/// High dword: the destination field (bits 56-63); the rest is reserved.
const HIGH_WRITABLE: u64 = 0xFF00_0000_0000_0000;

/// What the IOAPIC sends to the local APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Fixed or lowest-priority delivery (the same with one CPU): give `vector` to
    /// `LocalApic::set_irq`, or to `LocalApic::set_irq_level` when `level` (the local
    /// APIC then reports the EOI, which the platform passes to [`IoApic::eoi`]).
    Fixed { vector: u8, level: bool },
    /// NMI delivery mode.
    Nmi,
    /// ExtINT delivery mode: the 8259 PIC supplies the vector.
    ExtInt,
}

/// The I/O APIC. Deliveries accumulate in a queue the platform drains with
/// [`IoApic::take_deliveries`] after raising lines or writing registers.
#[derive(Debug, Clone)]
pub struct IoApic {
    id: u8,
    regsel: u8,
    redir: [u64; IOAPIC_PINS as usize],
    /// Current (logical) level of every pin, one bit each.
    lines: u32,
    pending: Vec<Delivery>,
}

impl Default for IoApic {
    fn default() -> Self {
        Self::new(IOAPIC_DEFAULT_ID)
    }
}

impl IoApic {
    /// An IOAPIC after reset with the ID the firmware gave it (4 bits): every
    /// redirection entry masked, all lines deasserted.
    pub fn new(id: u8) -> Self {
        IoApic {
            id: id & 0xF,
            regsel: 0,
            redir: [MASKED; IOAPIC_PINS as usize],
            lines: 0,
            pending: Vec::new(),
        }
    }

    /// Drives input `pin` (ignored if out of range). An edge-triggered entry delivers on
    /// the rising edge; a level-triggered one delivers while asserted and its Remote IRR
    /// is clear. Masked entries never deliver, and edges seen while masked are lost.
    pub fn set_level(&mut self, pin: u8, level: bool) {
        if pin >= IOAPIC_PINS {
            return;
        }
        let was = self.line(pin);
        if level {
            self.lines |= 1 << pin;
        } else {
            self.lines &= !(1 << pin);
        }
        if level && (!was || self.is_level(pin)) {
            self.service(pin);
        }
    }

    /// A rising then falling edge, for edge-triggered devices (a level-triggered entry
    /// delivers once and sees the line low again by the time of the EOI).
    pub fn pulse(&mut self, pin: u8) {
        self.set_level(pin, true);
        self.set_level(pin, false);
    }

    /// The EOI broadcast for `vector` (from `LocalApic::take_eoi_vectors`): clears
    /// Remote IRR of the level-triggered entries with that vector, and delivers again
    /// those whose line is still asserted.
    pub fn eoi(&mut self, vector: u8) {
        for pin in 0..IOAPIC_PINS {
            let e = self.redir[usize::from(pin)];
            if e as u8 == vector && self.is_level(pin) {
                self.redir[usize::from(pin)] &= !REMOTE_IRR;
                if self.line(pin) {
                    self.service(pin);
                }
            }
        }
    }

    /// Deliveries produced since the last call, oldest first (no allocation if none).
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.pending)
    }

    /// Like [`IoApic::take_deliveries`], but the queue keeps its storage: the platform
    /// drains it on every interrupt, which then allocates nothing.
    pub fn drain_deliveries(&mut self) -> std::vec::Drain<'_, Delivery> {
        self.pending.drain(..)
    }

    /// Whether [`IoApic::take_deliveries`] would return something.
    pub fn has_deliveries(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The full 64-bit redirection entry of `pin` (for debugging and tests).
    pub fn entry(&self, pin: u8) -> Option<u64> {
        self.redir.get(usize::from(pin)).copied()
    }

    fn line(&self, pin: u8) -> bool {
        self.lines & (1 << pin) != 0
    }

    /// Level semantics (Remote IRR, redelivery at EOI) only exist for fixed and
    /// lowest-priority entries; NMI, SMI, INIT and ExtINT are edge-only on the 82093AA.
    fn is_level(&self, pin: u8) -> bool {
        let e = self.redir[usize::from(pin)];
        e & LEVEL != 0 && (e >> 8) & 7 <= 1
    }

    /// Delivers `pin`'s interrupt if its entry allows it now. Called when the line rises,
    /// at EOI and on unmasking (level entries only, see `write_register`).
    fn service(&mut self, pin: u8) {
        let e = self.redir[usize::from(pin)];
        if e & MASKED != 0 || e & REMOTE_IRR != 0 {
            return;
        }
        let level = self.is_level(pin);
        let d = match (e >> 8) & 7 {
            0 | 1 => Delivery::Fixed {
                vector: e as u8,
                level,
            },
            4 => Delivery::Nmi,
            7 => Delivery::ExtInt,
            _ => return, // SMI, INIT and reserved modes: nothing a single vCPU acts on
        };
        if level {
            // Set when the local APIC accepts the message, which here is immediate.
            self.redir[usize::from(pin)] |= REMOTE_IRR;
        }
        self.pending.push(d);
    }

    fn read_register(&self, index: u8) -> u32 {
        match index {
            REG_ID | REG_ARB => u32::from(self.id) << 24,
            REG_VERSION => IOAPIC_VERSION,
            REG_REDIR..=0x3F => {
                let e = self.redir[usize::from((index - REG_REDIR) / 2)];
                if index & 1 == 0 {
                    e as u32
                } else {
                    (e >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    fn write_register(&mut self, index: u8, v: u32) {
        match index {
            REG_ID => self.id = (v >> 24) as u8 & 0xF,
            REG_REDIR..=0x3F => {
                let pin = (index - REG_REDIR) / 2;
                let e = &mut self.redir[usize::from(pin)];
                if index & 1 == 0 {
                    *e = (*e & !LOW_WRITABLE) | (u64::from(v) & LOW_WRITABLE);
                    if *e & LEVEL == 0 {
                        // Switching an entry to edge clears Remote IRR. Linux relies on it
                        // to "EOI" a pin of an IOAPIC older than version 0x20 (which has no
                        // EOI register): mask + set edge, then restore the level entry.
                        *e &= !REMOTE_IRR;
                    }
                    // An asserted level-triggered line delivers once unmasked (edges that
                    // arrived while masked are gone).
                    if self.line(pin) && self.is_level(pin) {
                        self.service(pin);
                    }
                } else {
                    *e = (*e & !HIGH_WRITABLE) | ((u64::from(v) << 32) & HIGH_WRITABLE);
                }
            }
            _ => {} // version and arbitration ID are read-only; others do not exist
        }
    }
}

impl MmioDevice for IoApic {
    /// IOREGSEL accepts 1-, 2- and 4-byte accesses, IOWIN only 4-byte ones; everything
    /// else reads 0.
    fn read(&mut self, offset: u32, size: u8) -> u64 {
        match (offset, size) {
            (IOREGSEL, 1 | 2 | 4) => u64::from(self.regsel),
            (IOWIN, 4) => u64::from(self.read_register(self.regsel)),
            _ => 0,
        }
    }

    fn write(&mut self, offset: u32, size: u8, value: u64) {
        match (offset, size) {
            (IOREGSEL, 1 | 2 | 4) => self.regsel = value as u8,
            (IOWIN, 4) => self.write_register(self.regsel, value as u32),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(io: &mut IoApic, index: u32) -> u32 {
        io.write(IOREGSEL, 4, u64::from(index));
        io.read(IOWIN, 4) as u32
    }

    fn wr(io: &mut IoApic, index: u32, v: u32) {
        io.write(IOREGSEL, 4, u64::from(index));
        io.write(IOWIN, 4, u64::from(v));
    }

    fn program(io: &mut IoApic, pin: u8, low: u32) {
        wr(io, 0x10 + 2 * u32::from(pin), low);
    }

    #[test]
    fn registers_and_reset_state() {
        let mut io = IoApic::new(IOAPIC_DEFAULT_ID);
        assert_eq!(rd(&mut io, 0), 0x0100_0000);
        assert_eq!(rd(&mut io, 1), 0x0017_0011);
        assert_eq!(rd(&mut io, 2), 0x0100_0000);
        for pin in 0..24 {
            assert_eq!(rd(&mut io, 0x10 + 2 * pin), 0x1_0000, "pin {pin} masked");
            assert_eq!(rd(&mut io, 0x11 + 2 * pin), 0);
        }
        assert_eq!(rd(&mut io, 0x40), 0);
        assert_eq!(io.read(IOREGSEL, 4), 0x40, "IOREGSEL reads back");
        io.write(IOREGSEL, 1, 0x1_0012);
        assert_eq!(io.read(IOREGSEL, 1), 0x12);
        wr(&mut io, 0, 0xFFFF_FFFF);
        assert_eq!(rd(&mut io, 0), 0x0F00_0000, "4-bit ID");
        assert_eq!(rd(&mut io, 2), 0x0F00_0000, "arbitration ID follows the ID");
        wr(&mut io, 1, 0);
        assert_eq!(rd(&mut io, 1), IOAPIC_VERSION);
        // Writable bits of an entry; delivery status / Remote IRR / reserved read 0.
        wr(&mut io, 0x10, 0xFFFF_FFFF);
        wr(&mut io, 0x11, 0xFFFF_FFFF);
        assert_eq!(rd(&mut io, 0x10), 0x1_AFFF);
        assert_eq!(rd(&mut io, 0x11), 0xFF00_0000);
        wr(&mut io, 0x3F, 0xAB00_0000);
        assert_eq!(
            io.entry(23),
            Some(0xAB00_0000_0001_0000),
            "destination stored exactly"
        );
        // Unaligned or wrong-size IOWIN accesses do nothing.
        io.write(IOREGSEL, 4, 0x12);
        io.write(IOWIN, 2, 0x30);
        io.write(IOWIN + 4, 4, 0x30);
        assert_eq!(io.read(IOWIN, 2), 0);
        assert_eq!(rd(&mut io, 0x12), 0x1_0000);
        assert!(!io.has_deliveries());
    }

    #[test]
    fn masked_entry_does_not_deliver() {
        let mut io = IoApic::default();
        program(&mut io, 4, 0x1_0034);
        io.pulse(4);
        io.set_level(4, true);
        assert!(io.take_deliveries().is_empty());
        // Unmasking an edge entry does not replay the lost edge.
        program(&mut io, 4, 0x34);
        assert!(io.take_deliveries().is_empty());
    }

    #[test]
    fn edge_pulse_delivers_once() {
        let mut io = IoApic::default();
        program(&mut io, 2, 0x30);
        io.pulse(2);
        assert_eq!(
            io.take_deliveries(),
            vec![Delivery::Fixed {
                vector: 0x30,
                level: false
            }]
        );
        assert!(io.take_deliveries().is_empty());
        io.set_level(2, true);
        io.set_level(2, true); // no new edge
        assert_eq!(io.take_deliveries().len(), 1);
        io.set_level(2, false);
        io.pulse(2);
        io.pulse(2);
        assert_eq!(io.take_deliveries().len(), 2);
        assert_eq!(
            rd(&mut io, 0x14) & (1 << 14),
            0,
            "no Remote IRR for edge entries"
        );
        io.eoi(0x30);
        assert!(io.take_deliveries().is_empty());
    }

    #[test]
    fn level_line_redelivers_after_eoi_only_if_asserted() {
        let mut io = IoApic::default();
        program(&mut io, 11, 0xA041); // level, active low, vector 0x41
        io.set_level(11, true);
        assert_eq!(
            io.take_deliveries(),
            vec![Delivery::Fixed {
                vector: 0x41,
                level: true
            }]
        );
        assert_ne!(rd(&mut io, 0x26) & (1 << 14), 0, "Remote IRR visible");
        io.set_level(11, true);
        assert!(io.take_deliveries().is_empty(), "held off by Remote IRR");
        io.eoi(0x42);
        assert!(io.take_deliveries().is_empty(), "other vector");
        io.eoi(0x41);
        assert_eq!(io.take_deliveries().len(), 1, "still asserted: again");
        assert_ne!(rd(&mut io, 0x26) & (1 << 14), 0);
        io.set_level(11, false);
        io.eoi(0x41);
        assert!(io.take_deliveries().is_empty());
        assert_eq!(rd(&mut io, 0x26) & (1 << 14), 0);
        // A pulse on a level entry delivers once.
        io.pulse(11);
        io.eoi(0x41);
        assert_eq!(io.take_deliveries().len(), 1);
    }

    #[test]
    fn unmasking_an_asserted_level_line_delivers() {
        let mut io = IoApic::default();
        program(&mut io, 9, 0x1_8050);
        io.set_level(9, true);
        assert!(io.take_deliveries().is_empty());
        program(&mut io, 9, 0x8050);
        assert_eq!(
            io.take_deliveries(),
            vec![Delivery::Fixed {
                vector: 0x50,
                level: true
            }]
        );
    }

    #[test]
    fn switching_to_edge_clears_remote_irr() {
        let mut io = IoApic::default();
        program(&mut io, 10, 0x8060);
        io.set_level(10, true);
        assert_eq!(io.take_deliveries().len(), 1);
        // Linux's EOI for version 0x11 IOAPICs: mask + edge, then restore.
        program(&mut io, 10, 0x1_0060);
        assert_eq!(rd(&mut io, 0x24) & (1 << 14), 0);
        program(&mut io, 10, 0x8060);
        assert_eq!(io.take_deliveries().len(), 1, "line still asserted");
    }

    #[test]
    fn delivery_modes() {
        let mut io = IoApic::default();
        program(&mut io, 0, 0x700); // ExtINT
        program(&mut io, 1, 0x400); // NMI
        program(&mut io, 3, 0x133); // lowest priority
        program(&mut io, 5, 0x200); // SMI: dropped
        program(&mut io, 6, 0x500); // INIT: dropped
        for pin in [0, 1, 3, 5, 6] {
            io.pulse(pin);
        }
        assert_eq!(
            io.take_deliveries(),
            vec![
                Delivery::ExtInt,
                Delivery::Nmi,
                Delivery::Fixed {
                    vector: 0x33,
                    level: false
                }
            ]
        );
        // Level trigger on an NMI entry behaves as edge (no Remote IRR).
        program(&mut io, 1, 0x8400);
        io.set_level(1, true);
        io.set_level(1, true);
        assert_eq!(io.take_deliveries(), vec![Delivery::Nmi]);
        assert_eq!(rd(&mut io, 0x12) & (1 << 14), 0);
        io.pulse(24); // out of range: ignored
        io.eoi(0);
    }

    #[test]
    fn drain_deliveries_empties_the_queue() {
        let mut io = IoApic::default();
        program(&mut io, 3, 0x33);
        io.pulse(3);
        io.pulse(3);
        assert_eq!(io.drain_deliveries().count(), 2);
        assert!(!io.has_deliveries());
        io.pulse(3);
        assert_eq!(
            io.drain_deliveries().collect::<Vec<_>>(),
            vec![Delivery::Fixed {
                vector: 0x33,
                level: false
            }]
        );
    }

    #[test]
    fn random_accesses_never_panic() {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut io = IoApic::default();
        for _ in 0..200_000 {
            let r = next();
            let off = if r & 1 == 0 {
                (r >> 8) as u32 & 0x10
            } else {
                (r >> 8) as u32 & 0xFFF
            };
            let size = [1u8, 2, 4, 8][(r >> 40) as usize & 3];
            let v = next();
            match (r >> 44) & 7 {
                0..=2 => io.write(off, size, v),
                3 => {
                    io.read(off, size);
                }
                4 => io.set_level(v as u8 % 32, v & 0x100 != 0),
                5 => io.pulse(v as u8),
                6 => io.eoi(v as u8),
                _ => {
                    io.take_deliveries();
                }
            }
        }
    }
}
