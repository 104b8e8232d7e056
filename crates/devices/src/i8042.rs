//! Intel 8042 keyboard controller with a PS/2 keyboard (ports 0x60 and
//! 0x64): see [`I8042`]; and the PCI reset control register (port 0xCF9):
//! see [`ResetPort`].
//!
//! `vm_superio::I8042Device` only implements the 0xFE reset command and
//! reads every register as 0, which makes Linux's i8042 driver time out on
//! every command, so the controller is modelled here instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::pic::{read_split, write_split};
use crate::{IoError, IrqLine, PortBus, PortDevice};

/// Data port of the 8042 (output buffer / input buffer).
pub const I8042_DATA_PORT: u16 = 0x60;
/// Command (write) / status (read) port of the 8042.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// ISA IRQ of the keyboard (first PS/2 port).
pub const I8042_KBD_IRQ: u8 = 1;
/// ISA IRQ of the auxiliary (mouse) port.
pub const I8042_AUX_IRQ: u8 = 12;
/// Port of the reset control register of PC chipsets.
pub const RESET_PORT: u16 = 0xCF9;

// Status register.
const STR_OBF: u8 = 0x01;
const STR_SYS: u8 = 0x04;
const STR_CMD: u8 = 0x08;
const STR_KEYLOCK: u8 = 0x10;
const STR_AUXDATA: u8 = 0x20;
const STR_TIMEOUT: u8 = 0x40;

// Command byte (controller RAM byte 0).
const CTR_KBDINT: u8 = 0x01;
const CTR_AUXINT: u8 = 0x02;
const CTR_SYS: u8 = 0x04;
const CTR_KBDDIS: u8 = 0x10;
const CTR_AUXDIS: u8 = 0x20;
const CTR_XLATE: u8 = 0x40;
/// As a PC BIOS leaves it: translation, system flag, keyboard interrupt on,
/// aux port disabled (no mouse was found).
const DEFAULT_CTR: u8 = CTR_XLATE | CTR_AUXDIS | CTR_SYS | CTR_KBDINT;

/// Output port bit 0: 0 = hold the CPU in reset.
const OUTPORT_RESET: u8 = 0x01;
/// Output port bit 1: A20 gate.
const OUTPORT_A20: u8 = 0x02;
/// Output port at power-on: CPU running, A20 enabled.
const DEFAULT_OUTPORT: u8 = OUTPORT_RESET | OUTPORT_A20;

// Keyboard replies.
const KBD_ACK: u8 = 0xFA;
const KBD_RESEND: u8 = 0xFE;
const KBD_BAT_OK: u8 = 0xAA;
const KBD_ECHO: u8 = 0xEE;
/// Bytes a keyboard buffers before it stops accepting key input.
const KBD_QUEUE_LIMIT: usize = 16;

/// A byte on its way to the output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutByte {
    value: u8,
    /// Comes from the aux port (status AUXDATA, IRQ12).
    aux: bool,
    /// Status TIMEOUT: the aux device did not answer.
    timeout: bool,
}

impl OutByte {
    fn kbd(value: u8) -> Self {
        OutByte {
            value,
            aux: false,
            timeout: false,
        }
    }

    fn aux(value: u8) -> Self {
        OutByte {
            value,
            aux: true,
            timeout: false,
        }
    }
}

/// The PS/2 keyboard on the first port.
#[derive(Debug, Clone)]
struct Keyboard {
    /// Bytes the keyboard has to send to the controller.
    queue: VecDeque<u8>,
    /// A command waiting for its parameter byte.
    expect: Option<u8>,
    scanning: bool,
    leds: u8,
    typematic: u8,
    scancode_set: u8,
    /// Last byte sent, for the resend command.
    last_sent: u8,
}

impl Keyboard {
    fn new() -> Self {
        Keyboard {
            queue: VecDeque::new(),
            expect: None,
            scanning: true,
            leds: 0,
            typematic: 0x2B,
            scancode_set: 2,
            last_sent: KBD_ACK,
        }
    }

    fn set_defaults(&mut self) {
        self.leds = 0;
        self.typematic = 0x2B;
        self.scancode_set = 2;
    }

    fn send(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.queue.push_back(b);
            self.last_sent = b;
        }
    }

    /// Handles a byte written to the keyboard.  `xlate`: the controller
    /// translates to scan code set 1, which changes the values of the ID
    /// and scan code set replies.
    fn receive(&mut self, byte: u8, xlate: bool) {
        if let Some(cmd) = self.expect.take() {
            // A command code instead of the parameter aborts the command.
            if byte < 0xED {
                self.parameter(cmd, byte, xlate);
                return;
            }
        }
        // A command makes the keyboard drop what it had not sent yet.
        self.queue.clear();
        match byte {
            0xED | 0xF0 | 0xF3 => {
                self.expect = Some(byte);
                self.send(&[KBD_ACK]);
            }
            0xEE => self.send(&[KBD_ECHO]),
            0xF2 => self.send(&[KBD_ACK, 0xAB, if xlate { 0x41 } else { 0x83 }]),
            0xF4 => {
                self.scanning = true;
                self.send(&[KBD_ACK]);
            }
            0xF5 => {
                self.set_defaults();
                self.scanning = false;
                self.send(&[KBD_ACK]);
            }
            0xF6 => {
                self.set_defaults();
                self.send(&[KBD_ACK]);
            }
            // Scan code set 3 key type commands: acknowledged, ignored.
            0xF7..=0xFD => self.send(&[KBD_ACK]),
            0xFE => {
                let last = self.last_sent;
                self.queue.push_back(last);
            }
            0xFF => {
                self.set_defaults();
                self.scanning = true;
                self.send(&[KBD_ACK, KBD_BAT_OK]);
            }
            _ => self.send(&[KBD_RESEND]),
        }
    }

    fn parameter(&mut self, cmd: u8, value: u8, xlate: bool) {
        match cmd {
            0xED => {
                self.leds = value & 0x07;
                self.send(&[KBD_ACK]);
            }
            0xF3 => {
                self.typematic = value & 0x7F;
                self.send(&[KBD_ACK]);
            }
            _ => match value {
                0 => {
                    // Set 1, 2, 3 as seen through the translator.
                    let set = match (xlate, self.scancode_set) {
                        (false, s) => s,
                        (true, 1) => 0x43,
                        (true, 3) => 0x3F,
                        (true, _) => 0x41,
                    };
                    self.send(&[KBD_ACK, set]);
                }
                1..=3 => {
                    self.scancode_set = value;
                    self.send(&[KBD_ACK]);
                }
                _ => self.send(&[KBD_RESEND]),
            },
        }
    }
}

/// Intel 8042 keyboard controller (PS/2 style) with a keyboard attached to
/// the first port and nothing attached to the auxiliary (mouse) port.
///
/// Linux's i8042 driver finds it, passes `i8042_controller_check`,
/// `i8042_controller_selftest` and `i8042_controller_init`, finds the aux
/// port (AUX_LOOP works, the AUX IRQ test needs IRQ12 wired), registers
/// serio0/serio1, atkbd binds to the keyboard ("AT Translated Set 2
/// keyboard") and psmouse's first command on serio1 fails at once with a
/// timeout, so no mouse is registered.  Without IRQ12 wired the driver just
/// waits 250 ms and does without the aux port.
///
/// Ports (by absolute number; wider accesses are split into bytes):
///
/// * 0x60 read: the output buffer (the last value again when empty);
/// * 0x60 write: the parameter of a pending controller command, otherwise a
///   byte for the keyboard;
/// * 0x64 read: status: OBF, IBF = 0 (input is processed at once), SYS
///   (command byte bit 2), CMD (last write went to 0x64), KEYLOCK = 1
///   (not inhibited), AUXDATA (output buffer holds aux data), TIMEOUT (aux
///   device did not answer), parity error = 0;
/// * 0x64 write: a controller command:
///   0x20-0x3F read controller RAM (0x20: the command byte), 0x60-0x7F
///   write it; 0xA4 password check (0xF1: none); 0xA7/0xA8 disable/enable
///   aux; 0xA9 aux interface test (0x00: ok); 0xAA self test (0x55);
///   0xAB keyboard interface test (0x00); 0xAD/0xAE disable/enable keyboard;
///   0xC0 input port; 0xD0/0xD1 read/write output port (writing bit 0 = 0
///   resets); 0xD2/0xD3 write keyboard/aux output buffer (0xD3 is Linux's
///   AUX_LOOP); 0xD4 write to aux device (nothing attached: 0xFE with
///   AUXDATA and TIMEOUT, as a real controller reports a missing device);
///   0xDD/0xDF A20 off/on (recorded only); 0xE0 test inputs (0x00); 0xF0-0xFF
///   pulse output port bits 0-3 where the command has 0 bits: bit 0 (0xFE)
///   is the CPU reset line.  Other commands are ignored.
///
/// The keyboard answers 0xFF (reset) with 0xFA 0xAA, 0xF2 (identify) with
/// 0xFA 0xAB 0x83 (0x41 when the controller translates, as the 8042's
/// translation turns 0x83 into 0x41), 0xED/0xF3/0xF0 and their parameter
/// with 0xFA each (0xF0 0x00 also returns the current set), 0xF4 (enable
/// scanning), 0xF5 (disable), 0xF6 (defaults), 0xF7-0xFD with 0xFA, 0xEE with
/// 0xEE, 0xFE by resending its last byte and anything else with 0xFE.  Its
/// bytes reach the output buffer only while the keyboard interface is
/// enabled (command byte bit 4 clear); controller replies go first.
///
/// # Interrupts and reset
///
/// IRQ1 is asserted while the output buffer holds keyboard-side data and
/// command byte bit 0 is set; IRQ12 while it holds aux data and bit 1 is
/// set.  Each rising edge raises the corresponding [`IrqLine`]
/// ([`irq1_line`](Self::irq1_line), [`irq12_line`](Self::irq12_line)): connect
/// them to IRQ 1 and 12 of the PIC.  Reading a byte lowers the level, so
/// the next queued byte makes a new edge.
///
/// A CPU reset request (0xFE and friends, or output port bit 0 = 0) raises
/// the reset line: poll [`take_reset`](Self::take_reset) (or a clone of
/// [`reset_line`](Self::reset_line)) after port writes and reboot the VM.
///
/// Key input: [`push_key_bytes`](Self::push_key_bytes) queues bytes exactly
/// as the guest should read them (scan code set 1 while the controller
/// translates); nothing translates them here.
#[derive(Debug, Clone)]
pub struct I8042 {
    /// Controller RAM; byte 0 is the command byte.
    ram: [u8; 32],
    output_port: u8,
    out: Option<OutByte>,
    /// Controller-generated bytes (command replies, loop-back, aux errors).
    ctl_queue: VecDeque<OutByte>,
    kbd: Keyboard,
    /// Controller command waiting for its parameter on port 0x60.
    pending: Option<u8>,
    /// Status CMD/DATA bit: the last write went to port 0x64.
    last_was_command: bool,
    last_read: u8,
    irq1: IrqLine,
    irq12: IrqLine,
    reset: IrqLine,
    irq1_level: bool,
    irq12_level: bool,
}

impl Default for I8042 {
    fn default() -> Self {
        Self::new()
    }
}

impl I8042 {
    /// A controller in the state a PC BIOS leaves it: command byte 0x65
    /// (translation, system flag, keyboard interrupt on, aux disabled),
    /// output buffer empty, keyboard scanning.
    pub fn new() -> Self {
        let mut ram = [0; 32];
        ram[0] = DEFAULT_CTR;
        I8042 {
            ram,
            output_port: DEFAULT_OUTPORT,
            out: None,
            ctl_queue: VecDeque::new(),
            kbd: Keyboard::new(),
            pending: None,
            last_was_command: false,
            last_read: 0,
            irq1: IrqLine::new(),
            irq12: IrqLine::new(),
            reset: IrqLine::new(),
            irq1_level: false,
            irq12_level: false,
        }
    }

    /// Returns the controller and keyboard to their power-on state (for a
    /// VM reboot), keeping the interrupt and reset lines.
    pub fn power_cycle(&mut self) {
        let (irq1, irq12, reset) = (self.irq1.clone(), self.irq12.clone(), self.reset.clone());
        *self = I8042 {
            irq1,
            irq12,
            reset,
            ..I8042::new()
        };
    }

    /// The keyboard interrupt line (IRQ1): raised on each rising edge.
    pub fn irq1_line(&self) -> IrqLine {
        self.irq1.clone()
    }

    /// The aux interrupt line (IRQ12): raised on each rising edge.
    pub fn irq12_line(&self) -> IrqLine {
        self.irq12.clone()
    }

    /// The reset request line: raised when the guest asks for a CPU reset.
    pub fn reset_line(&self) -> IrqLine {
        self.reset.clone()
    }

    /// Whether the guest requested a CPU reset since the last call.
    pub fn take_reset(&self) -> bool {
        self.reset.take()
    }

    /// The command byte.
    pub fn command_byte(&self) -> u8 {
        self.ram[0]
    }

    /// Current keyboard LED state (bit 0 scroll, 1 num, 2 caps lock).
    pub fn keyboard_leds(&self) -> u8 {
        self.kbd.leds
    }

    /// Queues bytes from the keyboard (key presses), as the guest should
    /// read them.  Dropped while the keyboard is not scanning (after 0xF5)
    /// or when its 16-byte buffer is full.
    pub fn push_key_bytes(&mut self, bytes: &[u8]) {
        if !self.kbd.scanning {
            return;
        }
        for &b in bytes {
            if self.kbd.queue.len() >= KBD_QUEUE_LIMIT {
                break;
            }
            self.kbd.queue.push_back(b);
        }
        self.refill();
    }

    /// The status register.
    pub fn status(&self) -> u8 {
        let mut s = STR_KEYLOCK;
        if self.ram[0] & CTR_SYS != 0 {
            s |= STR_SYS;
        }
        if self.last_was_command {
            s |= STR_CMD;
        }
        if let Some(b) = self.out {
            s |= STR_OBF;
            if b.aux {
                s |= STR_AUXDATA;
            }
            if b.timeout {
                s |= STR_TIMEOUT;
            }
        }
        s
    }

    /// Reads the output buffer (port 0x60).
    pub fn read_data(&mut self) -> u8 {
        if let Some(b) = self.out.take() {
            self.last_read = b.value;
        }
        // The level drops before the next byte (if any) raises it again.
        self.update_irqs();
        self.refill();
        self.last_read
    }

    /// Writes the input buffer as data (port 0x60).
    pub fn write_data(&mut self, value: u8) {
        self.last_was_command = false;
        let Some(cmd) = self.pending.take() else {
            let xlate = self.ram[0] & CTR_XLATE != 0;
            self.kbd.receive(value, xlate);
            self.refill();
            return;
        };
        match cmd {
            0x60 => self.set_command_byte(value),
            0x61..=0x7F => self.ram[usize::from(cmd & 0x1F)] = value,
            0xD1 => self.write_output_port(value),
            0xD2 => self.reply(OutByte::kbd(value)),
            0xD3 => self.reply(OutByte::aux(value)),
            // Write to the aux device: nothing is attached.
            _ => self.reply(OutByte {
                value: 0xFE,
                aux: true,
                timeout: true,
            }),
        }
    }

    /// Writes a controller command (port 0x64).
    pub fn write_command(&mut self, cmd: u8) {
        self.last_was_command = true;
        self.pending = None;
        match cmd {
            0x20..=0x3F => self.reply(OutByte::kbd(self.ram[usize::from(cmd & 0x1F)])),
            0x60..=0x7F | 0xD1..=0xD4 => self.pending = Some(cmd),
            0xA4 => self.reply(OutByte::kbd(0xF1)),
            0xA7 => self.set_command_byte(self.ram[0] | CTR_AUXDIS),
            0xA8 => self.set_command_byte(self.ram[0] & !CTR_AUXDIS),
            0xA9 | 0xAB | 0xE0 => self.reply(OutByte::kbd(0x00)),
            0xAA => self.reply(OutByte::kbd(0x55)),
            0xAD => self.set_command_byte(self.ram[0] | CTR_KBDDIS),
            0xAE => self.set_command_byte(self.ram[0] & !CTR_KBDDIS),
            // Input port: keyboard not inhibited, no manufacturing jumper.
            0xC0 => self.reply(OutByte::kbd(0xA0)),
            0xD0 => {
                let mut v = self.output_port & !0x30;
                if self.irq1_level {
                    v |= 0x10;
                }
                if self.irq12_level {
                    v |= 0x20;
                }
                self.reply(OutByte::kbd(v));
            }
            0xDD => self.output_port &= !OUTPORT_A20,
            0xDF => self.output_port |= OUTPORT_A20,
            0xF0..=0xFF if cmd & OUTPORT_RESET == 0 => self.reset.raise(),
            _ => {}
        }
    }

    fn write_output_port(&mut self, value: u8) {
        if value & OUTPORT_RESET == 0 {
            self.reset.raise();
        }
        self.output_port = value | OUTPORT_RESET;
    }

    fn set_command_byte(&mut self, value: u8) {
        self.ram[0] = value;
        // Enabling the keyboard may release its bytes, enabling an
        // interrupt with data waiting raises the line.
        self.refill();
    }

    fn reply(&mut self, byte: OutByte) {
        self.ctl_queue.push_back(byte);
        self.refill();
    }

    /// Moves the next byte into an empty output buffer and updates the
    /// interrupt lines.
    fn refill(&mut self) {
        if self.out.is_none() {
            self.out = self.ctl_queue.pop_front().or_else(|| {
                if self.ram[0] & CTR_KBDDIS == 0 {
                    self.kbd.queue.pop_front().map(OutByte::kbd)
                } else {
                    None
                }
            });
        }
        self.update_irqs();
    }

    fn update_irqs(&mut self) {
        let (kbd, aux) = match self.out {
            Some(b) => (!b.aux, b.aux),
            None => (false, false),
        };
        let irq1 = kbd && self.ram[0] & CTR_KBDINT != 0;
        let irq12 = aux && self.ram[0] & CTR_AUXINT != 0;
        if irq1 && !self.irq1_level {
            self.irq1.raise();
        }
        if irq12 && !self.irq12_level {
            self.irq12.raise();
        }
        self.irq1_level = irq1;
        self.irq12_level = irq12;
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        match port {
            I8042_DATA_PORT => self.read_data(),
            I8042_COMMAND_PORT => self.status(),
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            I8042_DATA_PORT => self.write_data(value),
            I8042_COMMAND_PORT => self.write_command(value),
            _ => {}
        }
    }
}

/// Decodes ports 0x60 and 0x64 by absolute number (anything else reads
/// 0xFF); wider accesses are split into byte accesses to consecutive ports.
impl PortDevice for I8042 {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        read_split(port, size, |p| self.read_byte(p))
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        write_split(port, size, value, |p, b| self.write_byte(p, b));
    }
}

/// A shared handle to one [`I8042`]: the controller's ports 0x60 and 0x64
/// are separated by port 0x61 (the PIT's port B), so it is registered twice.
///
/// ```
/// use ringfold_devices::*;
///
/// let kbc = SharedI8042::new();
/// let mut bus = PortBus::new();
/// kbc.register(&mut bus).unwrap();
/// let irq1 = kbc.lock().irq1_line();
/// // Self test.
/// bus.write(0x64, 1, 0xAA).unwrap();
/// assert_eq!(bus.read(0x64, 1).unwrap() & 1, 1);
/// assert_eq!(bus.read(0x60, 1).unwrap(), 0x55);
/// // Keyboard identify, answered through IRQ1.
/// irq1.take();
/// bus.write(0x60, 1, 0xF2).unwrap();
/// assert!(irq1.take());
/// assert_eq!(bus.read(0x60, 1).unwrap(), 0xFA);
/// // Reboot.
/// bus.write(0x64, 1, 0xFE).unwrap();
/// assert!(kbc.take_reset());
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedI8042(Arc<Mutex<I8042>>);

impl SharedI8042 {
    /// A handle to a new [`I8042`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps an existing controller.
    pub fn from_controller(kbc: I8042) -> Self {
        SharedI8042(Arc::new(Mutex::new(kbc)))
    }

    /// Locks the controller (a poisoned lock is recovered: the state is
    /// plain data).
    pub fn lock(&self) -> MutexGuard<'_, I8042> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers clones of this handle at 0x60 and 0x64 (1 port each).
    pub fn register(&self, bus: &mut PortBus) -> Result<(), IoError> {
        bus.register(I8042_DATA_PORT, 1, Box::new(self.clone()))?;
        bus.register(I8042_COMMAND_PORT, 1, Box::new(self.clone()))?;
        Ok(())
    }

    /// See [`I8042::take_reset`].
    pub fn take_reset(&self) -> bool {
        self.lock().take_reset()
    }

    /// See [`I8042::push_key_bytes`].
    pub fn push_key_bytes(&self, bytes: &[u8]) {
        self.lock().push_key_bytes(bytes);
    }
}

impl PortDevice for SharedI8042 {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        self.lock().read(port, size)
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        self.lock().write(port, size, value);
    }
}

/// The reset control register at 0xCF9 (Intel PCH/ICH, also PIIX and most
/// PC chipsets).
///
/// Bit 1 (SYS_RST) selects a hard (1) or soft (0) reset, bit 2 (RST_CPU)
/// performs it when written as 1, bit 3 (FULL_RST) asks for a full power
/// cycle.  Any write with bit 2 set raises the reset line (both kinds mean
/// "reboot the VM" here; [`last_reset_was_hard`](Self::last_reset_was_hard)
/// tells them apart).  Bits 1 and 3 read back as written, bit 2 reads 0.
/// Linux's `reboot=pci` writes 0x02 and then 0x06 (warm) or 0x0E (cold).
///
/// Register it at 0xCF9 with length 1; if a PCI host bridge owns
/// 0xCF8-0xCFB, it has to forward byte accesses to 0xCF9 here instead.
#[derive(Debug, Clone, Default)]
pub struct ResetPort {
    value: u8,
    hard: bool,
    reset: IrqLine,
}

impl ResetPort {
    /// A reset register reading 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reset request line: raised on each reset request.
    pub fn reset_line(&self) -> IrqLine {
        self.reset.clone()
    }

    /// Whether the guest requested a reset since the last call.
    pub fn take_reset(&self) -> bool {
        self.reset.take()
    }

    /// Whether the last reset request asked for a hard (or full) reset
    /// rather than a soft one (INIT).
    pub fn last_reset_was_hard(&self) -> bool {
        self.hard
    }
}

impl PortDevice for ResetPort {
    fn read(&mut self, port: u16, _size: u8) -> u32 {
        // Byte register: other bytes of a wider access read as open bus.
        if port == RESET_PORT {
            0xFFFF_FF00 | u32::from(self.value)
        } else {
            0xFFFF_FFFF
        }
    }

    fn write(&mut self, port: u16, _size: u8, value: u32) {
        if port != RESET_PORT {
            return;
        }
        let value = value as u8;
        if value & 0x04 != 0 {
            self.hard = value & 0x0A != 0;
            self.reset.raise();
        }
        self.value = value & 0x0A;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux `I8042_CTL_TIMEOUT`: polls before a wait gives up.
    const POLLS: usize = 10_000;

    /// The guest side of Linux's i8042 driver, polling as it does.
    struct Driver<'a> {
        kbc: &'a mut I8042,
    }

    impl Driver<'_> {
        fn status(&mut self) -> u8 {
            self.kbc.read(0x64, 1) as u8
        }

        fn wait_write(&mut self) -> Result<(), ()> {
            (0..POLLS)
                .find(|_| self.status() & 0x02 == 0)
                .map(|_| ())
                .ok_or(())
        }

        fn wait_read(&mut self) -> Result<(), ()> {
            (0..POLLS)
                .find(|_| self.status() & STR_OBF != 0)
                .map(|_| ())
                .ok_or(())
        }

        /// `__i8042_command`: command in bits 0-7, parameters out in bits
        /// 12-15, results in bits 8-11.
        fn command(&mut self, param: &mut [u8], command: u16) -> Result<(), ()> {
            self.wait_write()?;
            self.kbc.write(0x64, 1, u32::from(command & 0xFF));
            for p in param.iter().take(usize::from(command >> 12 & 0xF)) {
                self.wait_write()?;
                self.kbc.write(0x60, 1, u32::from(*p));
            }
            for p in param.iter_mut().take(usize::from(command >> 8 & 0xF)) {
                self.wait_read()?;
                if command == 0x11D3 && self.status() & STR_AUXDATA == 0 {
                    return Err(());
                }
                *p = self.kbc.read(0x60, 1) as u8;
            }
            Ok(())
        }

        /// `i8042_flush`.
        fn flush(&mut self) -> Result<Vec<u8>, ()> {
            let mut out = Vec::new();
            while self.status() & STR_OBF != 0 {
                if out.len() >= 16 {
                    return Err(());
                }
                out.push(self.kbc.read(0x60, 1) as u8);
            }
            Ok(out)
        }

        fn read_ctr(&mut self) -> u8 {
            let mut p = [0];
            self.command(&mut p, 0x0120).unwrap();
            p[0]
        }

        fn write_ctr(&mut self, ctr: u8) {
            self.command(&mut [ctr], 0x1060).unwrap();
        }

        /// `i8042_toggle_aux`.
        fn toggle_aux(&mut self, on: bool) -> Result<(), ()> {
            self.command(&mut [0], if on { 0x00A8 } else { 0x00A7 })?;
            let ctr = self.read_ctr();
            if (ctr & CTR_AUXDIS == 0) == on {
                Ok(())
            } else {
                Err(())
            }
        }

        /// A keyboard command through serio (data port writes, replies
        /// through the interrupt handler).
        fn kbd_write(&mut self, byte: u8) {
            self.wait_write().unwrap();
            self.kbc.write(0x60, 1, u32::from(byte));
        }

        /// Bytes delivered by IRQ1: one per rising edge, as the handler
        /// reads one byte per interrupt.
        fn kbd_irq_bytes(&mut self, irq1: &IrqLine) -> Vec<u8> {
            let mut out = Vec::new();
            while irq1.take() {
                let str = self.status();
                assert_ne!(str & STR_OBF, 0, "interrupt without data");
                assert_eq!(str & STR_AUXDATA, 0);
                out.push(self.kbc.read(0x60, 1) as u8);
            }
            out
        }
    }

    /// Linux probe: check, selftest, controller init.  Returns the CTR
    /// Linux writes back.
    fn linux_probe(kbc: &mut I8042) -> u8 {
        let mut d = Driver { kbc };
        // i8042_controller_check
        assert_eq!(d.flush(), Ok(vec![]));
        assert_ne!(d.status(), 0xFF);
        // i8042_controller_selftest
        let mut p = [0];
        d.command(&mut p, 0x01AA).unwrap();
        assert_eq!(p[0], 0x55);
        // i8042_controller_init: two equal CTR reads.
        let (a, b) = (d.read_ctr(), d.read_ctr());
        assert_eq!(a, b);
        assert_eq!(a, DEFAULT_CTR);
        let ctr = (a | CTR_KBDDIS) & !CTR_KBDINT;
        assert_ne!(d.status() & STR_KEYLOCK, 0, "keylock active");
        assert_ne!(ctr & CTR_XLATE, 0);
        d.write_ctr(ctr);
        assert_eq!(d.flush(), Ok(vec![]));
        assert_eq!(d.read_ctr(), ctr);
        ctr
    }

    #[test]
    fn status_at_power_on() {
        let mut kbc = I8042::new();
        // SYS and KEYLOCK (not inhibited), nothing to read, never busy.
        assert_eq!(kbc.read(0x64, 1), u32::from(STR_SYS | STR_KEYLOCK));
        kbc.write(0x64, 1, 0xAD);
        assert_eq!(kbc.read(0x64, 1) & 0x0B, u32::from(STR_CMD));
        kbc.write(0x60, 1, 0xF4);
        assert_eq!(kbc.read(0x64, 1) & 0x0A, 0);
    }

    #[test]
    fn controller_check_selftest_and_init() {
        let mut kbc = I8042::new();
        let ctr = linux_probe(&mut kbc);
        assert_eq!(kbc.command_byte(), ctr);
        // Interface tests.
        let mut d = Driver { kbc: &mut kbc };
        let mut p = [0xFF];
        d.command(&mut p, 0x01AB).unwrap();
        assert_eq!(p[0], 0x00);
        p[0] = 0xFF;
        d.command(&mut p, 0x01A9).unwrap();
        assert_eq!(p[0], 0x00);
        // Controller RAM.
        d.command(&mut [0x5A], 0x1065).unwrap();
        d.command(&mut p, 0x0125).unwrap();
        assert_eq!(p[0], 0x5A);
    }

    #[test]
    fn aux_port_checks() {
        let mut kbc = I8042::new();
        let irq12 = kbc.irq12_line();
        let mut ctr = linux_probe(&mut kbc);
        let mut d = Driver { kbc: &mut kbc };
        // i8042_check_aux: loopback.
        assert_eq!(d.flush(), Ok(vec![]));
        let mut p = [0x5A];
        d.command(&mut p, 0x11D3).unwrap();
        assert_eq!(p[0], 0x5A);
        // Bit assignment test.
        d.toggle_aux(false).unwrap();
        d.toggle_aux(true).unwrap();
        ctr &= !CTR_AUXDIS;
        assert_eq!(d.read_ctr(), ctr);
        // AUX IRQ delivery test: enable the aux port, loop 0xA5 without
        // reading it back; IRQ12 must fire with AUXDATA.
        ctr |= CTR_AUXINT;
        d.write_ctr(ctr);
        irq12.take();
        d.command(&mut [0xA5], 0x10D3).unwrap();
        assert!(irq12.take());
        assert_eq!(d.status() & (STR_OBF | STR_AUXDATA), STR_OBF | STR_AUXDATA);
        assert_eq!(d.kbc.read(0x60, 1), 0xA5);
        assert!(!irq12.take());
        // i8042_check_mux: the third loopback byte comes back unchanged,
        // so there is no active multiplexer.
        for v in [0xF0, 0x56, 0xA4] {
            let mut p = [v];
            d.command(&mut p, 0x11D3).unwrap();
            assert_eq!(p[0], v);
        }
    }

    #[test]
    fn no_mouse_on_the_aux_port() {
        let mut kbc = I8042::new();
        let irq12 = kbc.irq12_line();
        let irq1 = kbc.irq1_line();
        let ctr = linux_probe(&mut kbc);
        let mut d = Driver { kbc: &mut kbc };
        d.write_ctr((ctr & !CTR_AUXDIS) | CTR_AUXINT);
        irq12.take();
        irq1.take();
        // psmouse: GET ID through i8042_aux_write.
        d.command(&mut [0xF2], 0x10D4).unwrap();
        assert!(irq12.take());
        assert!(!irq1.take());
        let str = d.status();
        assert_eq!(
            str & (STR_OBF | STR_AUXDATA | STR_TIMEOUT),
            STR_OBF | STR_AUXDATA | STR_TIMEOUT
        );
        assert_eq!(d.kbc.read(0x60, 1), 0xFE);
        assert_eq!(d.status() & (STR_OBF | STR_TIMEOUT), 0);
        assert_eq!(d.flush(), Ok(vec![]));
    }

    #[test]
    fn keyboard_probe_through_irq1() {
        let mut kbc = I8042::new();
        let irq1 = kbc.irq1_line();
        let ctr = linux_probe(&mut kbc);
        let mut d = Driver { kbc: &mut kbc };
        // i8042_enable_kbd_port
        d.write_ctr((ctr & !CTR_KBDDIS) | CTR_KBDINT);
        irq1.take();
        // atkbd: reset (atkbd.reset=1), GET ID, deactivate, LEDs, rate,
        // enable.
        d.kbd_write(0xFF);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA, 0xAA]);
        d.kbd_write(0xF2);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA, 0xAB, 0x41]);
        d.kbd_write(0xF5);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA]);
        d.kbd_write(0xED);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA]);
        d.kbd_write(0x05);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA]);
        assert_eq!(d.kbc.keyboard_leds(), 0x05);
        d.kbd_write(0xF3);
        d.kbd_write(0x00);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA, 0xFA]);
        d.kbd_write(0xF4);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA]);
        // Echo, unknown command, resend.
        d.kbd_write(0xEE);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xEE]);
        d.kbd_write(0x12);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFE]);
        d.kbd_write(0xF2);
        d.kbd_irq_bytes(&irq1);
        d.kbd_write(0xFE);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0x41]);
        // Scan code set query.
        d.kbd_write(0xF0);
        d.kbd_write(0x00);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA, 0xFA, 0x41]);
        // Without translation the ID is the raw one.
        d.write_ctr((ctr & !(CTR_KBDDIS | CTR_XLATE)) | CTR_KBDINT);
        d.kbd_write(0xF2);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA, 0xAB, 0x83]);
        d.kbd_write(0xF0);
        d.kbd_write(0x00);
        assert_eq!(d.kbd_irq_bytes(&irq1), [0xFA, 0xFA, 0x02]);
    }

    #[test]
    fn disabled_keyboard_holds_its_bytes() {
        let mut kbc = I8042::new();
        let irq1 = kbc.irq1_line();
        kbc.write(0x64, 1, 0xAD);
        kbc.write(0x60, 1, 0xF2);
        assert_eq!(kbc.status() & STR_OBF, 0);
        // Controller replies still come through.
        kbc.write(0x64, 1, 0x20);
        assert_eq!(kbc.read(0x60, 1), u32::from(DEFAULT_CTR | CTR_KBDDIS));
        assert_eq!(kbc.status() & STR_OBF, 0);
        irq1.take();
        kbc.write(0x64, 1, 0xAE);
        assert!(irq1.take());
        let mut d = Driver { kbc: &mut kbc };
        assert_eq!(d.flush(), Ok(vec![0xFA, 0xAB, 0x41]));
        // Key bytes, only while scanning.
        kbc.push_key_bytes(&[0x1E, 0x9E]);
        assert!(irq1.take());
        kbc.write(0x60, 1, 0xF5);
        assert_eq!(kbc.read(0x60, 1), 0x1E, "already in the output buffer");
        assert_eq!(kbc.read(0x60, 1), 0xFA, "the command dropped 0x9E");
        kbc.push_key_bytes(&[0x1E]);
        assert_eq!(kbc.status() & STR_OBF, 0);
        // Reading an empty buffer returns the last byte.
        assert_eq!(kbc.read(0x60, 1), 0xFA);
    }

    #[test]
    fn irq1_only_when_enabled() {
        let mut kbc = I8042::new();
        let irq1 = kbc.irq1_line();
        kbc.write(0x64, 1, 0x60);
        kbc.write(0x60, 1, u32::from(DEFAULT_CTR & !CTR_KBDINT));
        kbc.write(0x64, 1, 0xAA);
        assert!(!irq1.take());
        // Enabling the interrupt with data waiting raises the line.
        kbc.write(0x64, 1, 0x60);
        kbc.write(0x60, 1, u32::from(DEFAULT_CTR));
        assert!(irq1.take());
        assert_eq!(kbc.read(0x60, 1), 0x55);
    }

    #[test]
    fn reset_paths() {
        let mut kbc = I8042::new();
        assert!(!kbc.take_reset());
        // Linux BOOT_KBD: kb_wait, then pulse reset.
        let mut d = Driver { kbc: &mut kbc };
        d.wait_write().unwrap();
        d.kbc.write(0x64, 1, 0xFE);
        assert!(kbc.take_reset());
        assert!(!kbc.take_reset());
        // Pulses that leave bit 0 alone do not reset.
        kbc.write(0x64, 1, 0xFF);
        kbc.write(0x64, 1, 0xFD);
        assert!(!kbc.take_reset());
        kbc.write(0x64, 1, 0xF0);
        assert!(kbc.take_reset());
        // Output port: A20 on/off keeps bit 0 set; bit 0 clear resets.
        kbc.write(0x64, 1, 0xD1);
        kbc.write(0x60, 1, 0xDF);
        kbc.write(0x64, 1, 0xD1);
        kbc.write(0x60, 1, 0xDD);
        assert!(!kbc.take_reset());
        kbc.write(0x64, 1, 0xD0);
        assert_eq!(kbc.read(0x60, 1) & 0x03, 0x01);
        kbc.write(0x64, 1, 0xD1);
        kbc.write(0x60, 1, 0xDE);
        assert!(kbc.take_reset());
        // Shared reset line.
        let line = kbc.reset_line();
        kbc.write(0x64, 1, 0xFE);
        assert!(line.take());
        // Power cycle keeps the lines, restores the state.
        kbc.write(0x64, 1, 0xAD);
        kbc.power_cycle();
        assert_eq!(kbc.command_byte(), DEFAULT_CTR);
        kbc.write(0x64, 1, 0xFE);
        assert!(line.take());
    }

    #[test]
    fn reset_port_cf9() {
        let mut port = ResetPort::new();
        let line = port.reset_line();
        // Linux reboot=pci (warm): read, write 0x02, then 0x06.
        let cf9 = port.read(RESET_PORT, 1) as u8 & !0x06;
        port.write(RESET_PORT, 1, u32::from(cf9 | 0x02));
        assert!(!port.take_reset());
        assert_eq!(port.read(RESET_PORT, 1) & 0xFF, 0x02);
        port.write(RESET_PORT, 1, u32::from(cf9 | 0x06));
        assert!(port.take_reset());
        assert!(port.last_reset_was_hard());
        assert_eq!(port.read(RESET_PORT, 1) & 0xFF, 0x02, "RST_CPU reads 0");
        // Cold: 0x0E.
        port.write(RESET_PORT, 1, 0x0E);
        assert!(line.take());
        assert_eq!(port.read(RESET_PORT, 1) & 0xFF, 0x0A);
        // Soft reset (SYS_RST clear) is a reset too.
        port.write(RESET_PORT, 1, 0x04);
        assert!(port.take_reset());
        assert!(!port.last_reset_was_hard());
    }

    #[test]
    fn on_a_bus_with_the_pit() {
        let mut bus = PortBus::new();
        let pit = crate::SharedPit::new();
        pit.register(&mut bus).unwrap();
        let kbc = SharedI8042::new();
        kbc.register(&mut bus).unwrap();
        let reset = ResetPort::new();
        let reset_line = reset.reset_line();
        bus.register(RESET_PORT, 1, Box::new(reset)).unwrap();
        bus.write(0x64, 1, 0x20).unwrap();
        assert_eq!(bus.read(0x64, 1).unwrap() & 0x01, 1);
        assert_eq!(bus.read(0x60, 1).unwrap(), u32::from(DEFAULT_CTR));
        bus.write(0xCF9, 1, 0x06).unwrap();
        assert!(reset_line.take());
        bus.write(0x64, 1, 0xFE).unwrap();
        assert!(kbc.take_reset());
    }
}
