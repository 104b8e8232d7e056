//! Two cascaded Intel 8259A PICs and the ELCR: see [`PicPair`].

use std::sync::{Arc, Mutex, MutexGuard};

use crate::{IoError, PortBus, PortDevice};

/// Command port of the master PIC (the data port is the next one).
pub const PIC_MASTER_PORT: u16 = 0x20;
/// Command port of the slave PIC (the data port is the next one).
pub const PIC_SLAVE_PORT: u16 = 0xA0;
/// Number of ports decoded by each PIC.
pub const PIC_PORT_LEN: u16 = 2;
/// First edge/level control register (IRQ0-7; IRQ8-15 at the next port).
pub const ELCR_PORT: u16 = 0x4D0;
/// Number of ELCR ports.
pub const ELCR_PORT_LEN: u16 = 2;

/// Master input the slave's INT output is wired to.
const CASCADE_IR: u8 = 2;
/// ELCR bits that can be set on the master (IRQ0, 1, 2 are edge only).
const MASTER_ELCR_MASK: u8 = 0xF8;
/// ELCR bits that can be set on the slave (IRQ8 and IRQ13 are edge only).
const SLAVE_ELCR_MASK: u8 = 0xDE;

/// Progress through the initialisation command words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitStep {
    /// Initialised: data port writes are OCW1.
    Ready,
    /// ICW1 seen, next data write is ICW2.
    Icw2,
    /// Next data write is ICW3 (cascade mode).
    Icw3,
    /// Next data write is ICW4 (ICW1.IC4 set).
    Icw4,
}

/// One 8259A.
#[derive(Debug, Clone)]
struct Pic8259 {
    /// Interrupt request register.
    irr: u8,
    /// In-service register.
    isr: u8,
    /// Interrupt mask register (OCW1).
    imr: u8,
    /// Current level of the IR input lines (edge detection, level mode).
    lines: u8,
    /// Edge/level control register (1 = level), already masked.
    elcr: u8,
    /// Writable ELCR bits.
    elcr_mask: u8,
    /// ICW1.LTIM: all inputs level triggered.
    ltim: bool,
    /// ICW1.SNGL: single (non-cascaded) mode.
    single: bool,
    /// ICW1.IC4: ICW4 will follow.
    ic4: bool,
    /// Vector base, ICW2 bits 7-3.
    vector_base: u8,
    /// ICW3 as written (master: inputs with slaves; slave: identity).
    icw3: u8,
    /// ICW4 as written (0 when ICW1.IC4 was clear).
    icw4: u8,
    init: InitStep,
    /// OCW3 read register select: false = IRR, true = ISR.
    read_isr: bool,
    /// OCW3 poll command pending: the next read returns the poll word.
    poll: bool,
    /// OCW3 special mask mode.
    special_mask: bool,
    /// OCW2 rotate in automatic EOI mode.
    rotate_aeoi: bool,
    /// IR with the lowest priority (7 after initialisation).
    lowest: u8,
    /// Whether this is the master (cascade handling, SFNM).
    master: bool,
}

impl Pic8259 {
    fn new(master: bool) -> Self {
        Pic8259 {
            irr: 0,
            isr: 0,
            imr: 0xFF,
            lines: 0,
            elcr: 0,
            elcr_mask: if master {
                MASTER_ELCR_MASK
            } else {
                SLAVE_ELCR_MASK
            },
            ltim: false,
            single: false,
            ic4: true,
            vector_base: 0,
            icw3: 0,
            icw4: 0,
            init: InitStep::Ready,
            read_isr: false,
            poll: false,
            special_mask: false,
            rotate_aeoi: false,
            lowest: 7,
            master,
        }
    }

    /// Inputs that are level triggered.
    fn level_mask(&self) -> u8 {
        if self.ltim {
            0xFF
        } else {
            self.elcr
        }
    }

    /// Makes IRR follow the line for level-triggered inputs (after the
    /// trigger mode of some inputs changed).
    fn resync_level_inputs(&mut self) {
        let level = self.level_mask();
        self.irr = (self.irr & !level) | (self.lines & level);
    }

    /// Drives input `ir` to `high`.
    fn set_line(&mut self, ir: u8, high: bool) {
        let bit = 1u8 << ir;
        if self.level_mask() & bit != 0 {
            if high {
                self.irr |= bit;
            } else {
                self.irr &= !bit;
            }
        } else if high && self.lines & bit == 0 {
            self.irr |= bit;
        }
        if high {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
    }

    /// Priority rank of `ir`: 0 is the highest.
    fn rank(&self, ir: u8) -> u8 {
        ir.wrapping_sub(self.lowest.wrapping_add(1)) & 7
    }

    /// The highest-priority IR set in `mask`.
    fn highest(&self, mask: u8) -> Option<u8> {
        (0..8u8)
            .map(|r| (self.lowest.wrapping_add(1).wrapping_add(r)) & 7)
            .find(|&ir| mask & (1 << ir) != 0)
    }

    /// Whether input `ir` has a slave attached (master in cascade mode).
    fn is_cascade(&self, ir: u8) -> bool {
        self.master && !self.single && ir == CASCADE_IR && self.icw3 & (1 << CASCADE_IR) != 0
    }

    /// The IR the priority resolver would present on INT, if any: the
    /// highest-priority unmasked request, if it has a higher priority than
    /// every (relevant) in-service level.
    fn deliverable(&self) -> Option<u8> {
        if self.init != InitStep::Ready {
            return None;
        }
        let p = self.highest(self.irr & !self.imr)?;
        let mut isr = self.isr;
        if self.special_mask {
            // Masked levels do not inhibit lower priorities.
            isr &= !self.imr;
        }
        if self.icw4 & 0x10 != 0 && self.is_cascade(p) {
            // Special fully nested mode: a slave in service does not block
            // further (higher-priority, the slave decides) slave requests.
            isr &= !(1 << p);
        }
        match self.highest(isr) {
            Some(s) if self.rank(s) <= self.rank(p) => None,
            _ => Some(p),
        }
    }

    /// The INTA (or poll) side effects for request `ir`.
    fn ack(&mut self, ir: u8) {
        let bit = 1u8 << ir;
        if self.level_mask() & bit == 0 {
            self.irr &= !bit;
        }
        if self.icw4 & 0x02 != 0 {
            // Automatic EOI: ISR is never set.
            if self.rotate_aeoi {
                self.lowest = ir;
            }
        } else {
            self.isr |= bit;
        }
    }

    fn write_command(&mut self, value: u8) {
        if value & 0x10 != 0 {
            self.icw1(value);
        } else if value & 0x08 != 0 {
            self.ocw3(value);
        } else {
            self.ocw2(value);
        }
    }

    fn icw1(&mut self, value: u8) {
        self.ltim = value & 0x08 != 0;
        self.single = value & 0x02 != 0;
        self.ic4 = value & 0x01 != 0;
        if !self.ic4 {
            self.icw4 = 0;
        }
        self.init = InitStep::Icw2;
        // "The edge sense circuit is reset": edge inputs need a new
        // low-to-high transition; level inputs keep requesting.
        self.isr = 0;
        self.irr = 0;
        self.resync_level_inputs();
        self.imr = 0;
        self.lowest = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_aeoi = false;
    }

    fn write_data(&mut self, value: u8) {
        match self.init {
            InitStep::Ready => self.imr = value,
            InitStep::Icw2 => {
                self.vector_base = value & 0xF8;
                self.init = if !self.single {
                    InitStep::Icw3
                } else if self.ic4 {
                    InitStep::Icw4
                } else {
                    InitStep::Ready
                };
            }
            InitStep::Icw3 => {
                self.icw3 = value;
                self.init = if self.ic4 {
                    InitStep::Icw4
                } else {
                    InitStep::Ready
                };
            }
            InitStep::Icw4 => {
                self.icw4 = value;
                self.init = InitStep::Ready;
            }
        }
    }

    fn ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Rotate in automatic EOI mode: clear / set.
            0b000 => self.rotate_aeoi = false,
            0b100 => self.rotate_aeoi = true,
            // Non-specific EOI, optionally rotating.
            0b001 | 0b101 => {
                if let Some(ir) = self.highest(self.isr) {
                    self.isr &= !(1 << ir);
                    if value & 0x80 != 0 {
                        self.lowest = ir;
                    }
                }
            }
            // Specific EOI, optionally rotating.
            0b011 | 0b111 => {
                self.isr &= !(1 << level);
                if value & 0x80 != 0 {
                    self.lowest = level;
                }
            }
            // Set priority.
            0b110 => self.lowest = level,
            // 0b010: no operation.
            _ => {}
        }
    }

    fn ocw3(&mut self, value: u8) {
        if value & 0x40 != 0 {
            self.special_mask = value & 0x20 != 0;
        }
        if value & 0x04 != 0 {
            self.poll = true;
        }
        if value & 0x02 != 0 {
            self.read_isr = value & 0x01 != 0;
        }
    }

    /// Executes a pending poll command: acknowledges the highest request and
    /// returns the poll word (bit 7 = interrupt, bits 2-0 = level).
    fn poll_word(&mut self) -> u8 {
        self.poll = false;
        match self.deliverable() {
            Some(ir) => {
                self.ack(ir);
                0x80 | ir
            }
            None => 0,
        }
    }

    fn read_command(&mut self) -> u8 {
        if self.poll {
            self.poll_word()
        } else if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    fn read_data(&mut self) -> u8 {
        if self.poll {
            self.poll_word()
        } else {
            self.imr
        }
    }

    /// State after a PC BIOS initialised the chip (ICW1=0x11, ICW2=`base`,
    /// ICW3=`icw3`, ICW4=0x01), all inputs masked.
    fn bios_init(&mut self, base: u8, icw3: u8) {
        self.write_command(0x11);
        self.write_data(base);
        self.write_data(icw3);
        self.write_data(0x01);
        self.write_data(0xFF);
    }
}

/// Two cascaded Intel 8259A programmable interrupt controllers, wired as on a
/// PC/AT, plus the PIIX-style edge/level control registers (ELCR).
///
/// * master: ports 0x20 (command) / 0x21 (data), vectors for IRQ0-7;
/// * slave: ports 0xA0 / 0xA1, IRQ8-15, its INT output drives master IR2;
/// * ELCR: ports 0x4D0 (IRQ0-7) / 0x4D1 (IRQ8-15), one bit per IRQ, 1 =
///   level triggered.  IRQ0, 1, 2, 8 and 13 are hard-wired edge triggered
///   (those ELCR bits read as 0 and ignore writes).
///
/// The model works at the level of the datasheet's registers: IRR (requests),
/// ISR (in service), IMR (masks), the priority resolver with rotation, the
/// ICW1-ICW4 initialisation sequence and OCW1-OCW3.  The monitor drives the
/// IRQ lines with [`PicPair::set_irq`], asks [`PicPair::has_interrupt`] when
/// the guest can take an interrupt and performs the INTA cycle with
/// [`PicPair::acknowledge`], which returns the vector.
///
/// # Registration on a [`PortBus`]
///
/// The bus maps every port range to exactly one boxed device, so one device
/// cannot own the three ranges 0x20, 0xA0 and 0x4D0 at once.  [`PicPair`]
/// itself decodes all six absolute port numbers (usable directly by a monitor
/// that intercepts these ports, and by tests); [`SharedPic`] is a cheap,
/// cloneable handle to one `PicPair` behind a mutex: register three clones
/// (or call [`SharedPic::register`]) and keep a fourth in the monitor for
/// `set_irq`/`acknowledge`.
///
/// # Simplifications
///
/// * Vectors are always produced in 8086 format (ICW4.uPM is stored but the
///   8080/8085 CALL format is not emulated); ICW1.ADI, ICW4.BUF and ICW4.M/S
///   are stored and ignored.
/// * The slave is always wired to master IR2 (cascade is active when the
///   master is initialised in cascade mode with ICW3 bit 2 set, which is what
///   every PC OS does); the slave's ICW3 identity is stored and ignored.
/// * An edge-triggered request stays latched in IRR when its line falls
///   before the acknowledge (real 8259As may then deliver IR7 instead); this
///   lets the monitor pulse a line with `set_irq(n, true); set_irq(n, false)`.
///   A level-triggered IRR bit follows its line, so a level request that goes
///   away before the INTA cycle yields a spurious IRQ7/IRQ15 as on hardware.
/// * `set_irq(2, ..)` drives IRQ9, as the ISA bus IRQ2 pin does on an AT
///   (master IR2 is the cascade input).
/// * While an ICW sequence is in progress the chip requests no interrupts.
/// * Non-specific EOI clears the highest-priority ISR bit even in special
///   mask mode (the datasheet asks software to use specific EOIs there).
#[derive(Debug, Clone)]
pub struct PicPair {
    master: Pic8259,
    slave: Pic8259,
}

impl Default for PicPair {
    fn default() -> Self {
        Self::new()
    }
}

impl PicPair {
    /// The pair as a PC BIOS leaves it: master vectors 0x08-0x0F, slave
    /// vectors 0x70-0x77, cascade on IR2, 8086 mode, normal EOI, edge
    /// triggered, every IRQ masked.  Guests reprogram it anyway.
    pub fn new() -> Self {
        let mut pair = PicPair {
            master: Pic8259::new(true),
            slave: Pic8259::new(false),
        };
        pair.master.bios_init(0x08, 1 << CASCADE_IR);
        pair.slave.bios_init(0x70, CASCADE_IR);
        pair
    }

    /// Recomputes master IR2 from the slave's INT output.
    fn update_cascade(&mut self) {
        let out = self.slave.deliverable().is_some();
        self.master.set_line(CASCADE_IR, out);
    }

    /// Drives IRQ line `irq` (0-15) to `level`.  Edge-triggered IRQs latch a
    /// request on a rising edge; level-triggered ones (ELCR) request while
    /// the line is high.  IRQ2 is redirected to IRQ9; larger numbers are
    /// ignored.
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            CASCADE_IR => self.set_irq(9, level),
            0..=7 => self.master.set_line(irq, level),
            8..=15 => {
                self.slave.set_line(irq - 8, level);
                self.update_cascade();
            }
            _ => {}
        }
    }

    /// Raises and lowers an edge-triggered line: one interrupt request.
    pub fn pulse_irq(&mut self, irq: u8) {
        self.set_irq(irq, true);
        self.set_irq(irq, false);
    }

    /// Whether the master asserts INT: an unmasked request with a higher
    /// priority than everything in service (the CPU should run an INTA
    /// cycle, i.e. call [`acknowledge`](Self::acknowledge), once IF=1).
    pub fn has_interrupt(&self) -> bool {
        self.master.deliverable().is_some()
    }

    /// The INTA cycle: returns the vector of the highest-priority request and
    /// moves it from IRR to ISR (unless in automatic EOI mode).  Without a
    /// request, returns the master's IR7 vector (spurious IRQ7, ISR
    /// unchanged); if the master selects the slave but the slave has no
    /// request any more, returns the slave's IR7 vector (spurious IRQ15: the
    /// master's IR2 is in service, the slave's ISR is unchanged).
    pub fn acknowledge(&mut self) -> u8 {
        let Some(ir) = self.master.deliverable() else {
            return self.master.vector_base | 7;
        };
        self.master.ack(ir);
        if !self.master.is_cascade(ir) {
            return self.master.vector_base | ir;
        }
        let vector = match self.slave.deliverable() {
            Some(sir) => {
                self.slave.ack(sir);
                self.slave.vector_base | sir
            }
            None => self.slave.vector_base | 7,
        };
        // The INTA cycle ends the slave's INT pulse: if the slave still (or
        // again) requests, that is a new edge on master IR2.
        self.master.set_line(CASCADE_IR, false);
        self.update_cascade();
        vector
    }

    /// Interrupt request register, IRQ0-7 in bits 0-7, IRQ8-15 in 8-15.
    pub fn irr(&self) -> u16 {
        u16::from_le_bytes([self.master.irr, self.slave.irr])
    }

    /// In-service register (same layout as [`irr`](Self::irr)).
    pub fn isr(&self) -> u16 {
        u16::from_le_bytes([self.master.isr, self.slave.isr])
    }

    /// Interrupt mask register (same layout as [`irr`](Self::irr)).
    pub fn imr(&self) -> u16 {
        u16::from_le_bytes([self.master.imr, self.slave.imr])
    }

    /// Edge/level control: bit n set = IRQ n level triggered.
    pub fn elcr(&self) -> u16 {
        u16::from_le_bytes([self.master.elcr, self.slave.elcr])
    }

    /// Sets the edge/level control register (as the firmware would through
    /// ports 0x4D0/0x4D1); bits of IRQ0, 1, 2, 8 and 13 are ignored.
    pub fn set_elcr(&mut self, elcr: u16) {
        let [lo, hi] = elcr.to_le_bytes();
        self.write_elcr(0, lo);
        self.write_elcr(1, hi);
    }

    fn write_elcr(&mut self, index: u16, value: u8) {
        let chip = if index == 0 {
            &mut self.master
        } else {
            &mut self.slave
        };
        chip.elcr = value & chip.elcr_mask;
        chip.resync_level_inputs();
        self.update_cascade();
    }

    /// Vector bases (ICW2) of the master and the slave.
    pub fn vector_bases(&self) -> (u8, u8) {
        (self.master.vector_base, self.slave.vector_base)
    }

    /// Whether neither chip is in the middle of an ICW sequence.
    pub fn is_initialized(&self) -> bool {
        self.master.init == InitStep::Ready && self.slave.init == InitStep::Ready
    }

    /// Reads one byte register at absolute `port`.
    fn read_byte(&mut self, port: u16) -> u8 {
        let slave_poll = self.slave.poll && (port == 0xA0 || port == 0xA1);
        let value = match port {
            0x20 => self.master.read_command(),
            0x21 => self.master.read_data(),
            0xA0 => self.slave.read_command(),
            0xA1 => self.slave.read_data(),
            0x4D0 => self.master.elcr,
            0x4D1 => self.slave.elcr,
            _ => return 0xFF,
        };
        if slave_poll {
            // A poll acts as the slave's INTA cycle (see `acknowledge`).
            self.master.set_line(CASCADE_IR, false);
        }
        self.update_cascade();
        value
    }

    /// Writes one byte register at absolute `port`.
    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            0x20 => self.master.write_command(value),
            0x21 => self.master.write_data(value),
            0xA0 => self.slave.write_command(value),
            0xA1 => self.slave.write_data(value),
            0x4D0 => self.write_elcr(0, value),
            0x4D1 => self.write_elcr(1, value),
            _ => {}
        }
        self.update_cascade();
    }
}

/// Splits a `size`-byte read into byte reads of consecutive ports.
pub(crate) fn read_split(port: u16, size: u8, mut read: impl FnMut(u16) -> u8) -> u32 {
    (0..size.min(4)).fold(0u32, |acc, i| {
        let byte = read(port.wrapping_add(u16::from(i)));
        acc | u32::from(byte) << (8 * u32::from(i))
    })
}

/// Splits a `size`-byte write into byte writes to consecutive ports.
pub(crate) fn write_split(port: u16, size: u8, value: u32, mut write: impl FnMut(u16, u8)) {
    for (i, byte) in value
        .to_le_bytes()
        .into_iter()
        .take(usize::from(size.min(4)))
        .enumerate()
    {
        // `i` < 4.
        write(port.wrapping_add(i as u16), byte);
    }
}

/// Decodes ports 0x20, 0x21, 0xA0, 0xA1, 0x4D0 and 0x4D1 by absolute
/// number; anything else reads 0xFF.  Wider accesses are split into byte
/// accesses to consecutive ports.
impl PortDevice for PicPair {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        read_split(port, size, |p| self.read_byte(p))
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        write_split(port, size, value, |p, b| self.write_byte(p, b));
    }
}

/// A shared handle to one [`PicPair`]: clone it to register the PIC at its
/// three port ranges and keep a clone in the monitor.
///
/// ```
/// use ringfold_devices::*;
///
/// let pic = SharedPic::new();
/// let mut bus = PortBus::new();
/// pic.register(&mut bus).unwrap();
/// for (port, value) in [(0x20, 0x11), (0x21, 0x20), (0x21, 4), (0x21, 1), (0x21, 0xFE)] {
///     bus.write(port, 1, value).unwrap();
/// }
/// pic.set_irq(0, true);
/// assert!(pic.has_interrupt());
/// assert_eq!(pic.acknowledge(), 0x20);
/// bus.write(0x20, 1, 0x20).unwrap(); // EOI
/// assert_eq!(pic.lock().isr(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedPic(Arc<Mutex<PicPair>>);

impl SharedPic {
    /// A handle to a new [`PicPair`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an existing pair.
    pub fn from_pair(pair: PicPair) -> Self {
        SharedPic(Arc::new(Mutex::new(pair)))
    }

    /// Locks the pair (a poisoned lock is recovered: the state is plain data).
    pub fn lock(&self) -> MutexGuard<'_, PicPair> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers clones of this handle at 0x20, 0xA0 and 0x4D0 (2 ports each).
    pub fn register(&self, bus: &mut PortBus) -> Result<(), IoError> {
        bus.register(PIC_MASTER_PORT, PIC_PORT_LEN, Box::new(self.clone()))?;
        bus.register(PIC_SLAVE_PORT, PIC_PORT_LEN, Box::new(self.clone()))?;
        bus.register(ELCR_PORT, ELCR_PORT_LEN, Box::new(self.clone()))?;
        Ok(())
    }

    /// See [`PicPair::set_irq`].
    pub fn set_irq(&self, irq: u8, level: bool) {
        self.lock().set_irq(irq, level);
    }

    /// See [`PicPair::pulse_irq`].
    pub fn pulse_irq(&self, irq: u8) {
        self.lock().pulse_irq(irq);
    }

    /// See [`PicPair::has_interrupt`].
    pub fn has_interrupt(&self) -> bool {
        self.lock().has_interrupt()
    }

    /// See [`PicPair::acknowledge`].
    pub fn acknowledge(&self) -> u8 {
        self.lock().acknowledge()
    }
}

impl PortDevice for SharedPic {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        self.lock().read(port, size)
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        self.lock().write(port, size, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(pic: &mut PicPair, port: u16, value: u8) {
        pic.write(port, 1, u32::from(value));
    }

    fn inb(pic: &mut PicPair, port: u16) -> u8 {
        pic.read(port, 1) as u8
    }

    /// Linux `init_8259A` (legacy_pic): mask all, ICW1-4 on both, then
    /// restore masks.
    fn linux_init(pic: &mut PicPair) {
        out(pic, 0x21, 0xFF);
        out(pic, 0xA1, 0xFF);
        out(pic, 0x20, 0x11);
        out(pic, 0x21, 0x30);
        out(pic, 0x21, 1 << 2);
        out(pic, 0x21, 0x01);
        out(pic, 0xA0, 0x11);
        out(pic, 0xA1, 0x38);
        out(pic, 0xA1, 2);
        out(pic, 0xA1, 0x01);
        out(pic, 0x21, 0xFF);
        out(pic, 0xA1, 0xFF);
    }

    /// The usual Multiboot test kernel sequence: 0x20/0x28, interleaved.
    fn mb_init(pic: &mut PicPair, master_mask: u8, slave_mask: u8) {
        out(pic, 0x20, 0x11);
        out(pic, 0xA0, 0x11);
        out(pic, 0x21, 0x20);
        out(pic, 0xA1, 0x28);
        out(pic, 0x21, 4);
        out(pic, 0xA1, 2);
        out(pic, 0x21, 1);
        out(pic, 0xA1, 1);
        out(pic, 0x21, master_mask);
        out(pic, 0xA1, slave_mask);
    }

    fn eoi_master(pic: &mut PicPair) {
        out(pic, 0x20, 0x20);
    }

    fn eoi_slave(pic: &mut PicPair) {
        out(pic, 0xA0, 0x20);
        out(pic, 0x20, 0x20);
    }

    #[test]
    fn bios_defaults() {
        let mut pic = PicPair::new();
        assert!(pic.is_initialized());
        assert_eq!(pic.vector_bases(), (0x08, 0x70));
        assert_eq!(pic.imr(), 0xFFFF);
        pic.set_irq(0, true);
        assert!(!pic.has_interrupt());
        out(&mut pic, 0x21, 0xFE);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x08);
    }

    #[test]
    fn linux_init_sequence() {
        let mut pic = PicPair::new();
        linux_init(&mut pic);
        assert!(pic.is_initialized());
        assert_eq!(pic.vector_bases(), (0x30, 0x38));
        assert_eq!(inb(&mut pic, 0x21), 0xFF);
        assert_eq!(inb(&mut pic, 0xA1), 0xFF);
        // Unmask timer and cascade, then keyboard on IRQ1.
        out(&mut pic, 0x21, 0xFA);
        pic.pulse_irq(0);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x30);
        assert_eq!(pic.isr(), 1);
        eoi_master(&mut pic);
        assert_eq!(pic.isr(), 0);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn multiboot_init_sequence_and_vectors() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0x00, 0x00);
        assert_eq!(pic.vector_bases(), (0x20, 0x28));
        for irq in [0u8, 1, 3, 4, 5, 6, 7] {
            pic.pulse_irq(irq);
            assert_eq!(pic.acknowledge(), 0x20 + irq);
            eoi_master(&mut pic);
        }
        for irq in 8u8..16 {
            pic.pulse_irq(irq);
            assert!(pic.has_interrupt());
            assert_eq!(pic.acknowledge(), 0x20 + irq, "irq {irq}");
            assert_eq!(pic.isr(), 1 << 2 | 1 << irq);
            eoi_slave(&mut pic);
            assert_eq!(pic.isr(), 0);
        }
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn icw1_resets_state() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(3);
        pic.pulse_irq(4);
        assert_eq!(pic.acknowledge(), 0x23);
        out(&mut pic, 0x20, 0x0B); // read ISR
        out(&mut pic, 0x20, 0xC4); // set priority: IR4 lowest
        out(&mut pic, 0x20, 0x11);
        // Mid-sequence: no interrupts requested, IMR cleared.
        assert!(!pic.has_interrupt());
        assert_eq!(pic.imr() & 0xFF, 0);
        out(&mut pic, 0x21, 0x40);
        out(&mut pic, 0x21, 4);
        out(&mut pic, 0x21, 1);
        assert_eq!(pic.vector_bases().0, 0x40);
        // ISR/IRR cleared, register select back to IRR, priority reset.
        assert_eq!(pic.isr() & 0xFF, 0);
        assert_eq!(pic.irr() & 0xFF, 0);
        pic.pulse_irq(5);
        assert_eq!(inb(&mut pic, 0x20), 0x20);
        pic.pulse_irq(4);
        assert_eq!(pic.acknowledge(), 0x44);
    }

    #[test]
    fn single_mode_without_icw4() {
        let mut pic = PicPair::new();
        // ICW1: single, no ICW4 -> only ICW2 follows.
        out(&mut pic, 0x20, 0x12);
        out(&mut pic, 0x21, 0x50);
        assert!(pic.is_initialized());
        out(&mut pic, 0x21, 0x00); // OCW1
        assert_eq!(pic.imr() & 0xFF, 0);
        // In single mode IR2 is an ordinary input.
        pic.master.set_line(2, true);
        assert_eq!(pic.acknowledge(), 0x52);
    }

    #[test]
    fn edge_detect_only_rising() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x21);
        eoi_master(&mut pic);
        // Line still high: no new request.
        pic.set_irq(1, true);
        assert!(!pic.has_interrupt());
        pic.set_irq(1, false);
        pic.set_irq(1, true);
        assert!(pic.has_interrupt());
        // A pulse stays latched after the line falls.
        pic.set_irq(1, false);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x21);
    }

    #[test]
    fn edge_requests_coalesce_while_pending() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        for _ in 0..3 {
            pic.pulse_irq(0);
        }
        assert_eq!(pic.acknowledge(), 0x20);
        eoi_master(&mut pic);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn masking() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0xFF, 0xFF);
        pic.pulse_irq(0);
        pic.pulse_irq(12);
        assert!(!pic.has_interrupt());
        // The masked slave request does not reach master IR2.
        assert_eq!(pic.irr(), 1 | 1 << 12);
        // Unmask IRQ12 on the slave only: the cascade is still masked.
        out(&mut pic, 0xA1, !(1 << 4));
        assert!(!pic.has_interrupt());
        out(&mut pic, 0x21, !(1 << 2));
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x2C);
        eoi_slave(&mut pic);
        // IRQ0 is still pending, masked.
        assert!(!pic.has_interrupt());
        out(&mut pic, 0x21, 0);
        assert_eq!(pic.acknowledge(), 0x20);
        assert_eq!(inb(&mut pic, 0x21), 0);
    }

    #[test]
    fn priority_master_and_slave() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        // IRQ8-15 rank between IRQ1 and IRQ3.
        pic.pulse_irq(3);
        pic.pulse_irq(14);
        pic.pulse_irq(1);
        pic.pulse_irq(9);
        assert_eq!(pic.acknowledge(), 0x21);
        // IRQ1 in service blocks everything below.
        assert!(!pic.has_interrupt());
        eoi_master(&mut pic);
        assert_eq!(pic.acknowledge(), 0x29);
        // Slave IRQ9 in service (master IR2 in service): IRQ14 and IRQ3
        // wait.  IRQ0 (higher than IR2) nests.
        assert!(!pic.has_interrupt());
        pic.pulse_irq(0);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x20);
        eoi_master(&mut pic);
        assert!(!pic.has_interrupt());
        eoi_slave(&mut pic);
        assert_eq!(pic.acknowledge(), 0x2E);
        eoi_slave(&mut pic);
        assert_eq!(pic.acknowledge(), 0x23);
        eoi_master(&mut pic);
        assert!(!pic.has_interrupt());
        assert_eq!(pic.irr(), 0);
        assert_eq!(pic.isr(), 0);
    }

    #[test]
    fn higher_slave_irq_nests_after_slave_eoi() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(12);
        assert_eq!(pic.acknowledge(), 0x2C);
        // IRQ8 arrives while IRQ12 is in service: blocked at master IR2.
        pic.pulse_irq(8);
        assert!(!pic.has_interrupt());
        // Linux: specific EOI to the slave, then to the master's IR2.
        out(&mut pic, 0xA0, 0x64);
        out(&mut pic, 0x20, 0x62);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x28);
        eoi_slave(&mut pic);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn two_slave_requests_delivered_in_turn() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(15);
        pic.pulse_irq(10);
        assert_eq!(pic.acknowledge(), 0x2A);
        eoi_slave(&mut pic);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x2F);
        assert_eq!(pic.isr(), 1 << 15 | 1 << 2);
        eoi_slave(&mut pic);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn specific_eoi() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(5);
        assert_eq!(pic.acknowledge(), 0x25);
        pic.pulse_irq(3);
        assert_eq!(pic.acknowledge(), 0x23);
        assert_eq!(pic.isr(), 1 << 5 | 1 << 3);
        // Specific EOI of the lower-priority level.
        out(&mut pic, 0x20, 0x65);
        assert_eq!(pic.isr(), 1 << 3);
        // Non-specific EOI clears the highest remaining.
        eoi_master(&mut pic);
        assert_eq!(pic.isr(), 0);
    }

    #[test]
    fn auto_eoi() {
        let mut pic = PicPair::new();
        out(&mut pic, 0x20, 0x11);
        out(&mut pic, 0x21, 0x20);
        out(&mut pic, 0x21, 4);
        out(&mut pic, 0x21, 0x03); // 8086 + AEOI
        out(&mut pic, 0x21, 0x00);
        pic.pulse_irq(4);
        pic.pulse_irq(6);
        assert_eq!(pic.acknowledge(), 0x24);
        assert_eq!(pic.isr(), 0);
        // No EOI needed for the next one.
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x26);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn auto_eoi_slave_keeps_cascade_requesting() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        // Reprogram the slave with AEOI.
        out(&mut pic, 0xA0, 0x11);
        out(&mut pic, 0xA1, 0x28);
        out(&mut pic, 0xA1, 2);
        out(&mut pic, 0xA1, 0x03);
        out(&mut pic, 0xA1, 0x00);
        pic.pulse_irq(9);
        pic.pulse_irq(11);
        assert_eq!(pic.acknowledge(), 0x29);
        eoi_master(&mut pic);
        // The slave's INT stays high for IRQ11: master IR2 re-requests.
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x2B);
        eoi_master(&mut pic);
        assert!(!pic.has_interrupt());
        assert_eq!(pic.isr(), 0);
    }

    #[test]
    fn rotate_on_aeoi() {
        let mut pic = PicPair::new();
        out(&mut pic, 0x20, 0x11);
        out(&mut pic, 0x21, 0x20);
        out(&mut pic, 0x21, 4);
        out(&mut pic, 0x21, 0x03);
        out(&mut pic, 0x21, 0x00);
        out(&mut pic, 0x20, 0x80); // rotate in AEOI mode (set)
        pic.pulse_irq(3);
        pic.pulse_irq(5);
        assert_eq!(pic.acknowledge(), 0x23);
        // IR3 is now the lowest priority, so IR5 goes first; then IR5 is
        // the lowest and IR3 follows.
        pic.pulse_irq(3);
        assert_eq!(pic.acknowledge(), 0x25);
        assert_eq!(pic.acknowledge(), 0x23);
        out(&mut pic, 0x20, 0x00); // rotate in AEOI mode (clear)
        pic.pulse_irq(1);
        pic.pulse_irq(0);
        // Lowest is IR3 (from the last rotation): order IR4..7, 0, 1, 2, 3.
        assert_eq!(pic.acknowledge(), 0x20);
        assert_eq!(pic.acknowledge(), 0x21);
    }

    #[test]
    fn rotate_on_nonspecific_eoi_and_set_priority() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(0);
        pic.pulse_irq(1);
        assert_eq!(pic.acknowledge(), 0x20);
        out(&mut pic, 0x20, 0xA0); // rotate on non-specific EOI: IR0 lowest
        pic.pulse_irq(0);
        assert_eq!(pic.acknowledge(), 0x21);
        out(&mut pic, 0x20, 0xA0); // IR1 lowest now: IR2 highest
        assert_eq!(pic.acknowledge(), 0x20);
        // Rotate on specific EOI 0: IR0 lowest.
        out(&mut pic, 0x20, 0xE0);
        // Set priority: IR5 lowest, so IR6 is highest.
        out(&mut pic, 0x20, 0xC5);
        pic.pulse_irq(5);
        pic.pulse_irq(6);
        pic.pulse_irq(0);
        assert_eq!(pic.acknowledge(), 0x26);
        eoi_master(&mut pic);
        assert_eq!(pic.acknowledge(), 0x20);
        eoi_master(&mut pic);
        assert_eq!(pic.acknowledge(), 0x25);
        eoi_master(&mut pic);
        // OCW2 0x40 is a no-op.
        out(&mut pic, 0x20, 0x40);
        assert_eq!(pic.isr(), 0);
    }

    #[test]
    fn level_triggered_reassertion() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        out(&mut pic, 0x4D1, 0x08); // IRQ11 level
        assert_eq!(pic.elcr(), 1 << 11);
        pic.set_irq(11, true);
        assert_eq!(pic.acknowledge(), 0x2B);
        // Device not serviced: after EOI the still-high line re-requests.
        eoi_slave(&mut pic);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x2B);
        // Serviced: line drops before the EOI, no further interrupt.
        pic.set_irq(11, false);
        eoi_slave(&mut pic);
        assert!(!pic.has_interrupt());
        assert_eq!(pic.irr(), 0);
    }

    #[test]
    fn level_on_master_and_ltim() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.set_elcr(0x0020);
        pic.set_irq(5, true);
        assert_eq!(inb(&mut pic, 0x20), 0x20);
        pic.set_irq(5, false);
        assert_eq!(inb(&mut pic, 0x20), 0);
        assert!(!pic.has_interrupt());
        // ICW1.LTIM makes every input level triggered.
        pic.set_elcr(0);
        out(&mut pic, 0x20, 0x19);
        out(&mut pic, 0x21, 0x20);
        out(&mut pic, 0x21, 4);
        out(&mut pic, 0x21, 1);
        out(&mut pic, 0x21, 0);
        pic.set_irq(3, true);
        assert_eq!(pic.acknowledge(), 0x23);
        eoi_master(&mut pic);
        assert_eq!(pic.acknowledge(), 0x23);
    }

    #[test]
    fn elcr_fixed_edge_bits() {
        let mut pic = PicPair::new();
        out(&mut pic, 0x4D0, 0xFF);
        out(&mut pic, 0x4D1, 0xFF);
        assert_eq!(inb(&mut pic, 0x4D0), 0xF8);
        assert_eq!(inb(&mut pic, 0x4D1), 0xDE);
        assert_eq!(pic.elcr(), 0xDEF8);
        pic.write(0x4D0, 2, 0x0C20);
        assert_eq!(pic.read(0x4D0, 2), 0x0C20);
    }

    #[test]
    fn spurious_irq7_level_dropped() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.set_elcr(1 << 4);
        pic.set_irq(4, true);
        assert!(pic.has_interrupt());
        // The request goes away before the INTA cycle.
        pic.set_irq(4, false);
        assert_eq!(pic.acknowledge(), 0x27);
        // Spurious: ISR7 is not set, no EOI is expected.
        assert_eq!(pic.isr(), 0);
        out(&mut pic, 0x20, 0x0B);
        assert_eq!(inb(&mut pic, 0x20), 0);
    }

    #[test]
    fn spurious_irq15_on_slave() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.set_elcr(1 << 10);
        pic.set_irq(10, true);
        assert!(pic.has_interrupt());
        pic.set_irq(10, false);
        // Master IR2 was latched (edge): the slave has nothing to give.
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x2F);
        // Master IR2 is in service; the slave's ISR is empty.
        assert_eq!(pic.isr(), 1 << 2);
        eoi_master(&mut pic);
        assert_eq!(pic.isr(), 0);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn spurious_irq15_when_slave_masked_late() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(13);
        out(&mut pic, 0xA1, 1 << 5);
        assert_eq!(pic.acknowledge(), 0x2F);
        eoi_master(&mut pic);
        // Unmasking delivers the still-latched IRQ13.
        out(&mut pic, 0xA1, 0);
        assert_eq!(pic.acknowledge(), 0x2D);
    }

    #[test]
    fn acknowledge_without_request_is_spurious() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        assert!(!pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x27);
        assert_eq!(pic.isr(), 0);
        // A real IRQ7 does set ISR7.
        pic.pulse_irq(7);
        assert_eq!(pic.acknowledge(), 0x27);
        assert_eq!(pic.isr(), 1 << 7);
    }

    #[test]
    fn read_irr_isr_via_ocw3() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(1);
        pic.pulse_irq(6);
        pic.pulse_irq(14);
        // Default: IRR.
        assert_eq!(inb(&mut pic, 0x20), 1 << 1 | 1 << 2 | 1 << 6);
        assert_eq!(inb(&mut pic, 0xA0), 1 << 6);
        assert_eq!(pic.acknowledge(), 0x21);
        out(&mut pic, 0x20, 0x0B);
        assert_eq!(inb(&mut pic, 0x20), 1 << 1);
        // The selection is sticky; OCW3 without RR keeps it.
        out(&mut pic, 0x20, 0x08);
        assert_eq!(inb(&mut pic, 0x20), 1 << 1);
        out(&mut pic, 0x20, 0x0A);
        assert_eq!(inb(&mut pic, 0x20), 1 << 2 | 1 << 6);
        // Data port always reads IMR.
        out(&mut pic, 0x21, 0x81);
        assert_eq!(inb(&mut pic, 0x21), 0x81);
        out(&mut pic, 0xA0, 0x0B);
        assert_eq!(inb(&mut pic, 0xA0), 0);
    }

    #[test]
    fn poll_mode() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        out(&mut pic, 0x20, 0x0C);
        assert_eq!(inb(&mut pic, 0x20), 0);
        pic.pulse_irq(6);
        pic.pulse_irq(3);
        out(&mut pic, 0x20, 0x0C);
        assert_eq!(inb(&mut pic, 0x20), 0x83);
        assert_eq!(pic.isr(), 1 << 3);
        // Poll is one-shot: the next read is IRR again.
        assert_eq!(inb(&mut pic, 0x20), 1 << 6);
        eoi_master(&mut pic);
        out(&mut pic, 0x20, 0x0C);
        assert_eq!(inb(&mut pic, 0x21), 0x86);
        eoi_master(&mut pic);
        // Polling the cascade: master says 2, then poll the slave.
        pic.pulse_irq(12);
        out(&mut pic, 0x20, 0x0C);
        assert_eq!(inb(&mut pic, 0x20), 0x82);
        out(&mut pic, 0xA0, 0x0C);
        assert_eq!(inb(&mut pic, 0xA0), 0x84);
        assert_eq!(pic.isr(), 1 << 2 | 1 << 12);
        eoi_slave(&mut pic);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn special_mask_mode() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(3);
        assert_eq!(pic.acknowledge(), 0x23);
        pic.pulse_irq(5);
        assert!(!pic.has_interrupt());
        // The IR3 handler masks itself and enters special mask mode: the
        // lower-priority IR5 can now interrupt.
        out(&mut pic, 0x21, 1 << 3);
        out(&mut pic, 0x20, 0x68);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x25);
        out(&mut pic, 0x20, 0x65);
        // Leave special mask mode: IR3 in service blocks again.
        out(&mut pic, 0x20, 0x48);
        out(&mut pic, 0x21, 0);
        pic.pulse_irq(6);
        assert!(!pic.has_interrupt());
        out(&mut pic, 0x20, 0x63);
        assert_eq!(pic.acknowledge(), 0x26);
    }

    #[test]
    fn special_fully_nested_mode() {
        let mut pic = PicPair::new();
        out(&mut pic, 0x20, 0x11);
        out(&mut pic, 0x21, 0x20);
        out(&mut pic, 0x21, 4);
        out(&mut pic, 0x21, 0x11); // SFNM + 8086
        out(&mut pic, 0x21, 0);
        out(&mut pic, 0xA0, 0x11);
        out(&mut pic, 0xA1, 0x28);
        out(&mut pic, 0xA1, 2);
        out(&mut pic, 0xA1, 0x01);
        out(&mut pic, 0xA1, 0);
        pic.pulse_irq(12);
        assert_eq!(pic.acknowledge(), 0x2C);
        // A higher slave request nests despite master IR2 in service.
        pic.pulse_irq(9);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x29);
        // Lower ones do not (the slave's own ISR blocks them).
        pic.pulse_irq(14);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn irq2_redirects_to_irq9() {
        let mut pic = PicPair::new();
        mb_init(&mut pic, 0, 0);
        pic.pulse_irq(2);
        assert_eq!(pic.acknowledge(), 0x29);
        pic.set_irq(16, true);
        pic.set_irq(255, true);
        eoi_slave(&mut pic);
        assert!(!pic.has_interrupt());
    }

    #[test]
    fn unknown_ports_and_wide_access() {
        let mut pic = PicPair::new();
        assert_eq!(pic.read(0x22, 1), 0xFF);
        pic.write(0x22, 1, 0);
        // Word write to 0x20: ICW1 then (0x21) ICW2.
        pic.write(0x20, 2, 0x4811);
        pic.write(0x21, 1, 4);
        pic.write(0x21, 1, 1);
        assert_eq!(pic.vector_bases().0, 0x48);
        pic.write(0x21, 1, 0x5A);
        assert_eq!(pic.read(0x20, 2), 0x5A00);
    }

    #[test]
    fn shared_on_bus() {
        let pic = SharedPic::new();
        let mut bus = PortBus::new();
        pic.register(&mut bus).unwrap();
        for (port, v) in [
            (0x20u16, 0x11u32),
            (0xA0, 0x11),
            (0x21, 0x20),
            (0xA1, 0x28),
            (0x21, 4),
            (0xA1, 2),
            (0x21, 1),
            (0xA1, 1),
            (0x21, 0),
            (0xA1, 0),
        ] {
            bus.write(port, 1, v).unwrap();
        }
        bus.write(0x4D1, 1, 0x02).unwrap();
        assert_eq!(pic.lock().elcr(), 1 << 9);
        pic.set_irq(9, true);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x29);
        bus.write(0x20, 1, 0x0B).unwrap();
        assert_eq!(bus.read(0x20, 1).unwrap(), 1 << 2);
        bus.write(0xA0, 1, 0x20).unwrap();
        bus.write(0x20, 1, 0x20).unwrap();
        assert!(pic.has_interrupt());
        pic.set_irq(9, false);
        // Level dropped after the cascade latched: spurious IRQ15.
        assert_eq!(pic.acknowledge(), 0x2F);
        assert!(bus.register(0x21, 1, Box::new(pic.clone())).is_err());
    }
}
