//! Intel 8254 PIT and port 0x61: see [`Pit`].

use std::sync::{Arc, Mutex, MutexGuard};

use crate::pic::{read_split, write_split};
use crate::{IoError, PortBus, PortDevice};

/// Input clock of the 8254 on a PC, in Hz.
pub const PIT_FREQ_HZ: u64 = 1_193_182;
/// Port of counter 0 (counters 1, 2 and the control word follow).
pub const PIT_PORT: u16 = 0x40;
/// Number of ports decoded by the 8254.
pub const PIT_PORT_LEN: u16 = 4;
/// System control port B (speaker, counter 2 gate and output).
pub const PORT_B: u16 = 0x61;

const NS_PER_SEC: u128 = 1_000_000_000;

/// Number of PIT clock pulses that have occurred at `ns` nanoseconds.
pub fn ns_to_ticks(ns: u64) -> u64 {
    // ns * 1193182 / 1e9 < ns: always fits.
    (u128::from(ns) * u128::from(PIT_FREQ_HZ) / NS_PER_SEC) as u64
}

/// The earliest time (ns) at which PIT clock pulse `ticks` has occurred,
/// i.e. the smallest `t` with `ns_to_ticks(t) >= ticks` (saturating).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let ns = (u128::from(ticks) * NS_PER_SEC).div_ceil(u128::from(PIT_FREQ_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

fn to_bcd(value: u32) -> u16 {
    let v = value % 10_000;
    ((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | (v % 10)) as u16
}

fn from_bcd(raw: u32) -> u32 {
    let digit = |shift: u32| (raw >> shift) & 0xF;
    (digit(12) * 1000 + digit(8) * 100 + digit(4) * 10 + digit(0)) % 10_000
}

/// Read/write access mode of a counter (control word bits 5-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Lsb = 1,
    Msb = 2,
    Word = 3,
}

/// One counter of the 8254.
///
/// The counting element (CE) is described relative to `base_tick`, the
/// clock pulse at which it was (re)loaded or last frozen; `d` clock pulses
/// later (`d` stays 0 while not counting) its state is a closed formula:
///
/// * modes 0, 1, 4, 5: `base_count` is the number of pulses left until the
///   count reaches zero (1..=65536, or 0..=65536 in modes 4/5) unless `tc`
///   says zero was already passed, in which case it is the current count;
/// * modes 2, 3: the CE restarts with `period` every `period` pulses from
///   `base_tick`; `base_count` is the count held while the gate is low.
#[derive(Debug, Clone)]
struct Channel {
    /// Effective mode 0-5.
    mode: u8,
    /// Mode bits as programmed (6 and 7 are modes 2 and 3), for read-back.
    mode_bits: u8,
    access: Access,
    bcd: bool,
    gate: bool,
    /// Count register: last complete count written (0 stored as 65536/10000).
    cr: u32,
    /// A count was written since the last control word.
    cr_valid: bool,
    /// First byte of a two-byte count write.
    write_lsb: Option<u8>,
    /// Two-byte unlatched reads: the next read returns the MSB.
    read_msb_next: bool,
    /// Latched count and whether its MSB is next (two-byte access).
    latch: Option<(u16, bool)>,
    status_latch: Option<u8>,
    /// NULL COUNT is set until this clock pulse (CR not yet moved to CE).
    null_until: u64,
    /// OUT while the CE holds no count.
    idle_out: bool,
    /// The CE holds a count (modes 1/5: triggered at least once).
    loaded: bool,
    /// The CE decrements with the clock.
    counting: bool,
    base_tick: u64,
    base_count: u32,
    tc: bool,
    period: u32,
    /// Modes 2/3: a new count to load at the given period boundary.
    pending: Option<(u64, u32)>,
    /// OUT rising edges accounted up to this clock pulse...
    edge_tick: u64,
    /// ...and how many of them have not been taken yet.
    edges: u64,
}

impl Channel {
    fn new(gate: bool) -> Self {
        Channel {
            mode: 0,
            mode_bits: 0,
            access: Access::Word,
            bcd: false,
            gate,
            cr: 0x1_0000,
            cr_valid: false,
            write_lsb: None,
            read_msb_next: false,
            latch: None,
            status_latch: None,
            null_until: 0,
            idle_out: true,
            loaded: false,
            counting: false,
            base_tick: 0,
            base_count: 0,
            tc: false,
            period: 0x1_0000,
            pending: None,
            edge_tick: 0,
            edges: 0,
        }
    }

    fn modulus(&self) -> u32 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// `base` minus `d`, modulo the counter range.
    fn wrap(&self, base: u32, d: u64) -> u32 {
        let m = u64::from(self.modulus());
        ((u64::from(base) % m + m - d % m) % m) as u32
    }

    /// Clock pulses the CE has counted at pulse `t` since `base_tick`.
    fn elapsed(&self, t: u64) -> u64 {
        if self.counting {
            t.saturating_sub(self.base_tick)
        } else {
            0
        }
    }

    /// (CE value, OUT) at clock pulse `t`; pending reloads must have been
    /// applied (see [`advance`](Self::advance)).
    fn state(&self, t: u64) -> (u32, bool) {
        if !self.loaded {
            return (self.base_count, self.idle_out);
        }
        let d = self.elapsed(t);
        let bc = u64::from(self.base_count);
        match self.mode {
            0 | 1 => (self.wrap(self.base_count, d), self.tc || d >= bc),
            4 | 5 => (self.wrap(self.base_count, d), self.tc || d != bc),
            _ if !self.counting => (self.base_count, true),
            2 => {
                let n = u64::from(self.period);
                let p = d % n;
                ((n - p) as u32, p != n - 1)
            }
            _ => {
                // Mode 3: OUT high for ceil(n/2) pulses, low for floor(n/2).
                // Even n: the CE counts down by 2 in each half.  Odd n: it
                // loads n, then goes n-1, n-3, ... while high and n, n-3,
                // n-5, ... while low.
                let n = u64::from(self.period);
                let p = d % n;
                let high = n.div_ceil(2);
                let count = if n % 2 == 0 {
                    if p < n / 2 {
                        n - 2 * p
                    } else {
                        n - 2 * (p - n / 2)
                    }
                } else if p < high {
                    if p == 0 {
                        n
                    } else {
                        n + 1 - 2 * p
                    }
                } else {
                    let q = p - high;
                    if q == 0 {
                        n
                    } else {
                        n - 1 - 2 * q
                    }
                };
                (count as u32, p < high)
            }
        }
    }

    /// Rising edges of OUT at pulses in `(a, b]`, with the current settings.
    fn edges_in(&self, a: u64, b: u64) -> u64 {
        if b <= a || !self.loaded || !self.counting {
            return 0;
        }
        match self.mode {
            0 | 1 | 4 | 5 => match self.one_shot_edge() {
                Some(e) => u64::from(a < e && e <= b),
                None => 0,
            },
            _ => {
                let n = u64::from(self.period);
                if n < 2 {
                    return 0;
                }
                let upto = |x: u64| x.saturating_sub(self.base_tick) / n;
                upto(b) - upto(a)
            }
        }
    }

    /// Modes 0/1/4/5: the pulse at which OUT rises, if still to come.
    fn one_shot_edge(&self) -> Option<u64> {
        if self.tc {
            return None;
        }
        let delay = u64::from(self.base_count) + u64::from(matches!(self.mode, 4 | 5));
        Some(self.base_tick + delay)
    }

    /// The first pulse after `t` at which OUT rises (current settings).
    fn next_edge_after(&self, t: u64) -> Option<u64> {
        if !self.loaded || !self.counting {
            return None;
        }
        match self.mode {
            0 | 1 | 4 | 5 => self.one_shot_edge().filter(|&e| e > t),
            _ => {
                let n = u64::from(self.period);
                if n < 2 {
                    None
                } else if t < self.base_tick {
                    Some(self.base_tick + n)
                } else {
                    Some(self.base_tick + ((t - self.base_tick) / n + 1) * n)
                }
            }
        }
    }

    /// Applies pending reloads up to pulse `t` and accounts OUT edges.
    fn advance(&mut self, t: u64) {
        while let Some((boundary, n)) = self.pending {
            if boundary > t {
                break;
            }
            self.edges += self.edges_in(self.edge_tick, boundary);
            self.edge_tick = self.edge_tick.max(boundary);
            self.base_tick = boundary;
            self.period = n;
            self.pending = None;
        }
        if t > self.edge_tick {
            self.edges += self.edges_in(self.edge_tick, t);
            self.edge_tick = t;
        }
    }

    /// Changes the settings at pulse `t`, counting an immediate OUT rise.
    fn mutate(&mut self, t: u64, f: impl FnOnce(&mut Self)) {
        self.advance(t);
        let before = self.state(t).1;
        f(self);
        let after = self.state(t).1;
        if !before && after {
            self.edges += 1;
        }
    }

    /// Modes 0/1/4/5: stops the CE at pulse `t`, keeping its state.
    fn freeze(&mut self, t: u64) {
        let d = self.elapsed(t);
        let bc = u64::from(self.base_count);
        let expired = if matches!(self.mode, 0 | 1) {
            d >= bc
        } else {
            d > bc
        };
        if self.tc || expired {
            self.base_count = self.wrap(self.base_count, d);
            self.tc = true;
        } else {
            // d <= bc < 2^17.
            self.base_count -= d as u32;
        }
        self.base_tick = self.base_tick.max(t);
        self.counting = false;
    }

    /// (Re)starts a periodic mode with `n` at the next pulse.
    fn start_periodic(&mut self, t: u64, n: u32) {
        self.loaded = true;
        self.counting = self.gate;
        self.base_tick = t + 1;
        self.period = n;
        self.base_count = n;
        self.pending = None;
        self.null_until = if self.gate { t + 1 } else { u64::MAX };
    }

    /// Control word (RW != 0) at pulse `t`.
    fn program(&mut self, t: u64, value: u8) {
        self.mutate(t, |c| {
            let (count, _) = c.state(t);
            c.mode_bits = (value >> 1) & 7;
            c.mode = match c.mode_bits {
                6 => 2,
                7 => 3,
                m => m,
            };
            c.access = match (value >> 4) & 3 {
                1 => Access::Lsb,
                2 => Access::Msb,
                _ => Access::Word,
            };
            c.bcd = value & 1 != 0;
            c.base_count = count;
            c.idle_out = c.mode != 0;
            c.loaded = false;
            c.counting = false;
            c.tc = false;
            c.pending = None;
            c.cr_valid = false;
            c.write_lsb = None;
            c.read_msb_next = false;
            c.latch = None;
            c.status_latch = None;
            c.null_until = u64::MAX;
        });
    }

    /// A byte written to the counter's port at pulse `t`.
    fn write_count_byte(&mut self, t: u64, byte: u8) {
        let byte = u32::from(byte);
        match self.access {
            Access::Lsb => self.load_count(t, byte),
            Access::Msb => self.load_count(t, byte << 8),
            Access::Word => match self.write_lsb.take() {
                Some(lsb) => self.load_count(t, u32::from(lsb) | byte << 8),
                None => {
                    self.write_lsb = Some(byte as u8);
                    if self.mode == 0 {
                        // Mode 0: the first byte stops counting, OUT low.
                        self.mutate(t, |c| {
                            let (count, _) = c.state(t);
                            c.base_count = count;
                            c.loaded = false;
                            c.counting = false;
                            c.idle_out = false;
                        });
                    }
                }
            },
        }
    }

    /// A complete count written at pulse `t`.
    fn load_count(&mut self, t: u64, raw: u32) {
        let n = if self.bcd { from_bcd(raw) } else { raw };
        let n = if n == 0 { self.modulus() } else { n };
        self.mutate(t, |c| {
            c.cr = n;
            c.cr_valid = true;
            match c.mode {
                0 | 4 => {
                    c.loaded = true;
                    c.counting = c.gate;
                    c.base_tick = t + 1;
                    c.base_count = n;
                    c.tc = false;
                    c.null_until = t + 1;
                }
                // Waits for (or is only affected by the next) gate trigger.
                1 | 5 => c.null_until = u64::MAX,
                _ => {
                    if c.loaded && c.counting && t >= c.base_tick {
                        match c.next_edge_after(t) {
                            Some(boundary) => {
                                c.pending = Some((boundary, n));
                                c.null_until = boundary;
                            }
                            None => c.start_periodic(t, n),
                        }
                    } else if c.loaded && !c.counting {
                        // Gated off: loaded when the gate rises.
                        c.null_until = u64::MAX;
                    } else {
                        c.start_periodic(t, n);
                    }
                }
            }
        });
    }

    /// GATE input change at pulse `t`.
    fn set_gate(&mut self, t: u64, level: bool) {
        if level == self.gate {
            return;
        }
        self.mutate(t, |c| {
            c.gate = level;
            match c.mode {
                0 | 4 => {
                    if c.loaded {
                        if level {
                            c.counting = true;
                            c.base_tick = c.base_tick.max(t);
                        } else if c.counting {
                            c.freeze(t);
                        }
                    }
                }
                1 | 5 => {
                    if level && c.cr_valid {
                        c.loaded = true;
                        c.counting = true;
                        c.base_tick = t + 1;
                        c.base_count = c.cr;
                        c.tc = false;
                        c.null_until = t + 1;
                    }
                }
                _ => {
                    if level {
                        if c.cr_valid {
                            c.start_periodic(t, c.cr);
                        }
                    } else if c.loaded && c.counting {
                        // Counting stops and OUT goes high at once.
                        let (count, _) = c.state(t);
                        c.base_count = count;
                        c.counting = false;
                        c.pending = None;
                    }
                }
            }
        });
    }

    /// The counter value as the guest reads it (binary or BCD).
    fn count_value(&mut self, t: u64) -> u16 {
        self.advance(t);
        let count = self.state(t).0 % self.modulus();
        if self.bcd {
            to_bcd(count)
        } else {
            count as u16
        }
    }

    fn latch_count(&mut self, t: u64) {
        if self.latch.is_none() {
            self.latch = Some((self.count_value(t), false));
        }
    }

    fn latch_status(&mut self, t: u64) {
        if self.status_latch.is_none() {
            self.advance(t);
            let out = self.state(t).1;
            let null = t < self.null_until;
            self.status_latch = Some(
                u8::from(out) << 7
                    | u8::from(null) << 6
                    | (self.access as u8) << 4
                    | self.mode_bits << 1
                    | u8::from(self.bcd),
            );
        }
    }

    /// A read of the counter's port at pulse `t`.
    fn read_port(&mut self, t: u64) -> u8 {
        if let Some(status) = self.status_latch.take() {
            return status;
        }
        let [lsb, msb] = match self.latch {
            Some((value, msb_next)) => {
                let bytes = value.to_le_bytes();
                if self.access == Access::Word && !msb_next {
                    self.latch = Some((value, true));
                    return bytes[0];
                }
                self.latch = None;
                bytes
            }
            None => {
                let bytes = self.count_value(t).to_le_bytes();
                if self.access == Access::Word {
                    let msb = self.read_msb_next;
                    self.read_msb_next = !msb;
                    return bytes[usize::from(msb)];
                }
                bytes
            }
        };
        if self.access == Access::Lsb {
            lsb
        } else {
            msb
        }
    }
}

/// Intel 8254 programmable interval timer (PC/AT wiring) and the timer
/// related bits of system control port B (0x61).
///
/// * ports 0x40-0x42: counters 0-2; port 0x43: control word (write only);
/// * counter 0: GATE tied high, OUT drives IRQ0;
/// * counter 1: GATE tied high (DRAM refresh on old PCs; unused);
/// * counter 2: GATE = port 0x61 bit 0, OUT readable as port 0x61 bit 5
///   (the PC speaker; Linux uses it to calibrate the TSC).
///
/// Port 0x61 reads: bit 0 = counter 2 gate, bit 1 = speaker data enable,
/// bits 2-3 = as last written (parity/channel check enables), bit 4 = refresh
/// toggle (flips on every read, so busy-waits on it always progress), bit 5
/// = counter 2 OUT, bits 6-7 = 0 (no channel check / parity errors).  Writes
/// store bits 0-3; bits 4-7 are read only.
///
/// # Time
///
/// The counters run on a virtual 1.193182 MHz clock derived from the guest
/// time the monitor passes in (monotonic nanoseconds; time never goes
/// backwards: an earlier value is ignored).  Clock pulse `k` happens at
/// `k / 1193182` seconds, so at time `t` the pulses up to
/// [`ns_to_ticks`]`(t)` have occurred.  Nothing here runs by itself: the
/// state at any instant is computed from the time the counter was loaded.
///
/// * call [`Pit::set_time`] (or [`SharedPit::set_time`]) before forwarding a
///   guest access to 0x40-0x43 or 0x61: the access happens at that time;
/// * [`Pit::next_irq0_deadline`] tells when OUT0 next rises (arm the host
///   timer for it), [`Pit::irq0_edges_until`] how many times it rose since
///   the previous call.  Raise IRQ0 (an edge on the PIC) when that is
///   non-zero.  Edges are counted exactly, but the PIC latches at most one
///   request per line, so edges that arrive while IRQ0 is still pending are
///   coalesced (as on hardware): `pic.pulse_irq(0)` once is enough.
///
/// A port write that makes OUT0 rise immediately (e.g. a mode 2 control
/// word while OUT0 was low in mode 0) counts as an edge, as it would on
/// hardware; after port writes the monitor should ask again
/// (`next_irq0_deadline` then returns the current time).
///
/// # Simplifications
///
/// * Before the first clock pulse after a count is written (under 1 us) the
///   counter reads as the new count rather than the previous contents.
/// * Modes 2 and 3: a count written while counting takes effect at the end
///   of the current period (the 8254 switches mode 3 at the end of the
///   current half period).
/// * Mode 1: OUT goes low at the trigger rather than one clock later.
/// * Gate changes take effect at the current clock pulse (no set-up time).
/// * Illegal counts (1 in modes 2 and 3) give a constant OUT and no edges.
/// * Power-on state (undefined on hardware): no counter counting, all OUT
///   pins high, counter 2 gated off.
#[derive(Debug, Clone)]
pub struct Pit {
    channels: [Channel; 3],
    now_ns: u64,
    /// Port 0x61 bits 0-3.
    port_b: u8,
    refresh: bool,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// A PIT at time 0 with no counter running; counter 2 gated off.
    pub fn new() -> Self {
        Pit {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            now_ns: 0,
            port_b: 0,
            refresh: false,
        }
    }

    /// Sets the current guest time (monotonic ns; earlier values are
    /// ignored).  Port accesses happen at this time.
    pub fn set_time(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
    }

    /// The current guest time.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn tick(&self) -> u64 {
        ns_to_ticks(self.now_ns)
    }

    /// Level of OUT of `channel` (0-2) at the current time.
    ///
    /// # Panics
    /// If `channel` > 2.
    pub fn out(&mut self, channel: usize) -> bool {
        let t = self.tick();
        let c = &mut self.channels[channel];
        c.advance(t);
        c.state(t).1
    }

    /// Current count of `channel` (0-2), as the guest would read it
    /// (without disturbing latches or the read flip-flop).
    ///
    /// # Panics
    /// If `channel` > 2.
    pub fn count(&mut self, channel: usize) -> u16 {
        let t = self.tick();
        self.channels[channel].count_value(t)
    }

    /// Level of OUT0 (IRQ0) at `now_ns`.
    pub fn irq0_level(&mut self, now_ns: u64) -> bool {
        self.set_time(now_ns);
        self.out(0)
    }

    /// Number of rising edges of OUT0 since the previous call, up to
    /// `now_ns` (saturating).  Edges caused by port writes are included.
    pub fn irq0_edges_until(&mut self, now_ns: u64) -> u32 {
        self.set_time(now_ns);
        let t = self.tick();
        let c = &mut self.channels[0];
        c.advance(t);
        let edges = std::mem::take(&mut c.edges);
        u32::try_from(edges).unwrap_or(u32::MAX)
    }

    /// When OUT0 next rises: the current time if edges are waiting to be
    /// taken by [`irq0_edges_until`](Self::irq0_edges_until), otherwise the
    /// time of the next rising edge (strictly after `now_ns`), or `None`
    /// if counter 0 will not raise IRQ0 without further programming.
    pub fn next_irq0_deadline(&mut self, now_ns: u64) -> Option<u64> {
        self.set_time(now_ns);
        let t = self.tick();
        let c = &mut self.channels[0];
        c.advance(t);
        if c.edges > 0 {
            return Some(self.now_ns);
        }
        c.next_edge_after(t).map(ticks_to_ns)
    }

    fn write_control(&mut self, value: u8) {
        let t = self.tick();
        let select = usize::from(value >> 6);
        if select == 3 {
            // Read-back: bit 5 = !COUNT, bit 4 = !STATUS, bits 3-1 = counters.
            for (i, c) in self.channels.iter_mut().enumerate() {
                if value & (2 << i) == 0 {
                    continue;
                }
                if value & 0x20 == 0 {
                    c.latch_count(t);
                }
                if value & 0x10 == 0 {
                    c.latch_status(t);
                }
            }
        } else if value & 0x30 == 0 {
            self.channels[select].latch_count(t);
        } else {
            self.channels[select].program(t, value);
        }
    }

    fn read_port_b(&mut self) -> u8 {
        let out2 = self.out(2);
        let value = self.port_b | u8::from(self.refresh) << 4 | u8::from(out2) << 5;
        self.refresh = !self.refresh;
        value
    }

    fn write_port_b(&mut self, value: u8) {
        self.port_b = value & 0x0F;
        let t = self.tick();
        self.channels[2].set_gate(t, value & 1 != 0);
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        let t = self.tick();
        match port {
            0x40..=0x42 => self.channels[usize::from(port - 0x40)].read_port(t),
            PORT_B => self.read_port_b(),
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        let t = self.tick();
        match port {
            0x40..=0x42 => self.channels[usize::from(port - 0x40)].write_count_byte(t, value),
            0x43 => self.write_control(value),
            PORT_B => self.write_port_b(value),
            _ => {}
        }
    }
}

/// Decodes ports 0x40-0x43 and 0x61 by absolute number (0x43 reads 0xFF);
/// wider accesses are split into byte accesses to consecutive ports.
impl PortDevice for Pit {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        read_split(port, size, |p| self.read_byte(p))
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        write_split(port, size, value, |p, b| self.write_byte(p, b));
    }
}

/// A shared handle to one [`Pit`]: register clones at 0x40 and 0x61 and
/// keep one in the monitor for time keeping.
///
/// ```
/// use ringfold_devices::*;
///
/// let pit = SharedPit::new();
/// let mut bus = PortBus::new();
/// pit.register(&mut bus).unwrap();
/// // Linux: counter 0, mode 2, 100 Hz.
/// bus.write(0x43, 1, 0x34).unwrap();
/// bus.write(0x40, 1, 11932 & 0xFF).unwrap();
/// bus.write(0x40, 1, 11932 >> 8).unwrap();
/// let deadline = pit.next_irq0_deadline(0).unwrap();
/// assert!(deadline > 10_000_000 && deadline < 10_002_000);
/// assert_eq!(pit.irq0_edges_until(deadline), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedPit(Arc<Mutex<Pit>>);

impl SharedPit {
    /// A handle to a new [`Pit`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the PIT (a poisoned lock is recovered: the state is plain data).
    pub fn lock(&self) -> MutexGuard<'_, Pit> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers clones of this handle at 0x40 (4 ports) and 0x61 (1 port).
    pub fn register(&self, bus: &mut PortBus) -> Result<(), IoError> {
        bus.register(PIT_PORT, PIT_PORT_LEN, Box::new(self.clone()))?;
        bus.register(PORT_B, 1, Box::new(self.clone()))?;
        Ok(())
    }

    /// See [`Pit::set_time`].
    pub fn set_time(&self, now_ns: u64) {
        self.lock().set_time(now_ns);
    }

    /// See [`Pit::irq0_level`].
    pub fn irq0_level(&self, now_ns: u64) -> bool {
        self.lock().irq0_level(now_ns)
    }

    /// See [`Pit::irq0_edges_until`].
    pub fn irq0_edges_until(&self, now_ns: u64) -> u32 {
        self.lock().irq0_edges_until(now_ns)
    }

    /// See [`Pit::next_irq0_deadline`].
    pub fn next_irq0_deadline(&self, now_ns: u64) -> Option<u64> {
        self.lock().next_irq0_deadline(now_ns)
    }
}

impl PortDevice for SharedPit {
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

    fn out(pit: &mut Pit, port: u16, value: u8) {
        pit.write(port, 1, u32::from(value));
    }

    fn inb(pit: &mut Pit, port: u16) -> u8 {
        pit.read(port, 1) as u8
    }

    /// Time at which tick `k` has occurred.
    fn at(k: u64) -> u64 {
        ticks_to_ns(k)
    }

    /// Programs counter `ch` with control word `cw` and a two-byte count.
    fn program(pit: &mut Pit, ch: u16, cw: u8, count: u16) {
        out(pit, 0x43, cw);
        out(pit, 0x40 + ch, count as u8);
        out(pit, 0x40 + ch, (count >> 8) as u8);
    }

    /// Latches counter `ch` and reads the two-byte count.
    fn latched(pit: &mut Pit, ch: u16) -> u16 {
        out(pit, 0x43, (ch as u8) << 6);
        let lo = inb(pit, 0x40 + ch);
        let hi = inb(pit, 0x40 + ch);
        u16::from_le_bytes([lo, hi])
    }

    #[test]
    fn tick_conversions() {
        assert_eq!(ns_to_ticks(0), 0);
        assert_eq!(ns_to_ticks(1_000_000_000), PIT_FREQ_HZ);
        assert_eq!(ns_to_ticks(838), 0);
        assert_eq!(ns_to_ticks(839), 1);
        assert_eq!(ticks_to_ns(1), 839);
        for k in [1u64, 2, 11932, 65536, 1 << 40] {
            let t = ticks_to_ns(k);
            assert_eq!(ns_to_ticks(t), k);
            assert_eq!(ns_to_ticks(t - 1), k - 1);
        }
        assert_eq!(ticks_to_ns(u64::MAX), u64::MAX);
        assert_eq!(to_bcd(1234), 0x1234);
        assert_eq!(from_bcd(0x9999), 9999);
    }

    #[test]
    fn mode2_periodic_100hz() {
        let mut pit = Pit::new();
        // Linux: LATCH = (1193182 + 50) / 100.
        program(&mut pit, 0, 0x34, 11932);
        // Loaded at tick 1, edges at 1 + 11932 k.
        let first = pit.next_irq0_deadline(0).unwrap();
        assert_eq!(first, at(1 + 11932));
        assert!((10_000_000..10_002_000).contains(&first));
        assert_eq!(pit.irq0_edges_until(first - 1), 0);
        assert_eq!(pit.irq0_edges_until(first), 1);
        assert_eq!(pit.next_irq0_deadline(first), Some(at(1 + 2 * 11932)));
        // One second: edges at ticks <= 1193182.
        assert_eq!(pit.irq0_edges_until(1_000_000_000), 99 - 1);
        // Ten more seconds.
        let n = pit.irq0_edges_until(11_000_000_000);
        assert_eq!(u64::from(n), (ns_to_ticks(11_000_000_000) - 1) / 11932 - 99);
        // Deadlines step by exactly one period.
        let mut now = 11_000_000_000;
        for _ in 0..50 {
            let d = pit.next_irq0_deadline(now).unwrap();
            assert!(d > now);
            assert_eq!((ns_to_ticks(d) - 1) % 11932, 0);
            assert_eq!(pit.irq0_edges_until(d), 1);
            now = d;
        }
    }

    #[test]
    fn mode2_periodic_1000hz_and_out_pulse() {
        let mut pit = Pit::new();
        pit.set_time(5_000_000);
        let t0 = ns_to_ticks(5_000_000);
        program(&mut pit, 0, 0x34, 1193);
        let load = t0 + 1;
        assert_eq!(pit.next_irq0_deadline(5_000_000), Some(at(load + 1193)));
        // OUT low for exactly the pulse where the count is 1.
        assert!(pit.irq0_level(at(load + 1191)));
        assert!(!pit.irq0_level(at(load + 1192)));
        assert_eq!(pit.count(0), 1);
        assert!(pit.irq0_level(at(load + 1193)));
        assert_eq!(pit.count(0), 1193);
        assert_eq!(pit.irq0_edges_until(at(load + 1193)), 1);
        // 1000 periods.
        assert_eq!(pit.irq0_edges_until(at(load + 1001 * 1193)), 1000);
        // Latched reads while running.
        pit.set_time(at(load + 1001 * 1193 + 100));
        assert_eq!(latched(&mut pit, 0), 1093);
    }

    #[test]
    fn reload_zero_means_65536() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x34, 0);
        assert_eq!(pit.next_irq0_deadline(0), Some(at(1 + 65536)));
        assert_eq!(pit.count(0), 0);
        pit.set_time(at(2));
        assert_eq!(pit.count(0), 0xFFFF);
        assert_eq!(pit.irq0_edges_until(at(1 + 65536 * 18)), 18);
        // Mode 0 with 0: 65536 pulses to terminal count.
        program(&mut pit, 0, 0x30, 0);
        let t = pit.tick();
        assert_eq!(pit.irq0_edges_until(pit.now_ns()), 0);
        assert!(!pit.out(0));
        assert_eq!(pit.next_irq0_deadline(0), Some(at(t + 1 + 65536)));
        assert!(!pit.irq0_level(at(t + 65536)));
        assert!(pit.irq0_level(at(t + 65537)));
        assert_eq!(pit.count(0), 0);
        assert_eq!(pit.irq0_edges_until(0), 1);
        // Mode 3 with 0: 18.2 Hz square wave.
        program(&mut pit, 0, 0x36, 0);
        let t = pit.tick();
        assert!(pit.irq0_level(at(t + 1 + 32767)));
        assert!(!pit.irq0_level(at(t + 1 + 32768)));
        assert_eq!(
            pit.next_irq0_deadline(pit.now_ns()),
            Some(at(t + 1 + 65536))
        );
    }

    #[test]
    fn mode0_one_shot_counter0() {
        let mut pit = Pit::new();
        pit.set_time(1_000);
        let t = pit.tick();
        out(&mut pit, 0x43, 0x30);
        assert!(!pit.out(0));
        out(&mut pit, 0x40, 100);
        // The first byte of a two-byte count stops counting.
        assert!(!pit.out(0));
        assert_eq!(pit.next_irq0_deadline(1_000), None);
        out(&mut pit, 0x40, 0);
        // OUT goes high N+1 pulses after the count is written.
        assert_eq!(pit.next_irq0_deadline(1_000), Some(at(t + 101)));
        assert!(!pit.irq0_level(at(t + 100)));
        assert_eq!(pit.count(0), 1);
        assert!(pit.irq0_level(at(t + 101)));
        assert_eq!(pit.count(0), 0);
        assert_eq!(pit.irq0_edges_until(at(t + 1000)), 1);
        // Keeps counting down (wrapping), OUT stays high, no more edges.
        assert_eq!(pit.count(0), 0u16.wrapping_sub(899));
        assert_eq!(pit.next_irq0_deadline(at(t + 1000)), None);
        assert_eq!(pit.irq0_edges_until(at(t + 1_000_000)), 0);
        // Rewriting the count re-arms: first byte drops OUT.
        out(&mut pit, 0x40, 10);
        assert!(!pit.out(0));
        out(&mut pit, 0x40, 0);
        let t = pit.tick();
        assert_eq!(pit.next_irq0_deadline(pit.now_ns()), Some(at(t + 11)));
    }

    #[test]
    fn mode4_linux_oneshot() {
        // Linux i8253 clockevent, oneshot: 0x38 then the delta.
        let mut pit = Pit::new();
        pit.set_time(7_777);
        let t = pit.tick();
        program(&mut pit, 0, 0x38, 500);
        assert!(pit.out(0));
        assert_eq!(pit.next_irq0_deadline(7_777), Some(at(t + 502)));
        assert!(pit.irq0_level(at(t + 500)));
        assert!(!pit.irq0_level(at(t + 501)));
        assert!(pit.irq0_level(at(t + 502)));
        assert_eq!(pit.irq0_edges_until(at(t + 10_000)), 1);
        assert_eq!(pit.next_irq0_deadline(at(t + 10_000)), None);
        // Rewriting the count retriggers.
        out(&mut pit, 0x40, 20);
        out(&mut pit, 0x40, 0);
        let t = pit.tick();
        assert_eq!(pit.next_irq0_deadline(pit.now_ns()), Some(at(t + 22)));
        // Retrigger before expiry: only the new deadline fires.
        pit.set_time(at(t + 10));
        out(&mut pit, 0x40, 50);
        out(&mut pit, 0x40, 0);
        assert_eq!(pit.next_irq0_deadline(at(t + 10)), Some(at(t + 10 + 52)));
        assert_eq!(pit.irq0_edges_until(at(t + 1000)), 1);
    }

    #[test]
    fn linux_shutdown_then_periodic() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x34, 11932);
        pit.irq0_edges_until(at(5 * 11932));
        // Linux pit_shutdown: mode 0, count 0.
        program(&mut pit, 0, 0x30, 0);
        assert!(!pit.out(0));
        let t = pit.tick();
        assert_eq!(pit.next_irq0_deadline(pit.now_ns()), Some(at(t + 65537)));
        // Going back to periodic raises OUT0 at once: an edge.
        pit.set_time(at(t + 100));
        out(&mut pit, 0x43, 0x34);
        assert!(pit.out(0));
        assert_eq!(pit.next_irq0_deadline(0), Some(pit.now_ns()));
        assert_eq!(pit.irq0_edges_until(0), 1);
        // No counting until the count is written.
        assert_eq!(pit.next_irq0_deadline(0), None);
        out(&mut pit, 0x40, 0x9C);
        out(&mut pit, 0x40, 0x2E);
        assert_eq!(pit.next_irq0_deadline(0), Some(at(t + 100 + 1 + 11932)));
    }

    #[test]
    fn mode2_new_count_at_period_end() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x34, 1000);
        pit.set_time(at(1 + 1500));
        assert_eq!(pit.irq0_edges_until(0), 1);
        out(&mut pit, 0x40, 0xF4);
        out(&mut pit, 0x40, 0x01); // 500
                                   // Current period ends at 1 + 2000, then 500-pulse periods.
        assert_eq!(pit.next_irq0_deadline(0), Some(at(2001)));
        assert_eq!(pit.count(0), 500);
        out(&mut pit, 0x43, 0xC2); // read back status of counter 0
        assert_eq!(inb(&mut pit, 0x40) & 0x40, 0x40, "null count until reload");
        assert_eq!(pit.irq0_edges_until(at(2001)), 1);
        assert_eq!(pit.count(0), 500);
        assert_eq!(pit.next_irq0_deadline(0), Some(at(2501)));
        assert_eq!(pit.irq0_edges_until(at(2001 + 500 * 10)), 10);
        out(&mut pit, 0x43, 0xE2);
        assert_eq!(inb(&mut pit, 0x40) & 0x40, 0);
    }

    #[test]
    fn mode3_square_wave() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x36, 10);
        // Loaded at tick 1: high for 5 pulses, low for 5.
        let levels: Vec<bool> = (1..=21).map(|k| pit.irq0_level(at(k))).collect();
        let expect: Vec<bool> = (0..21).map(|p| p % 10 < 5).collect();
        assert_eq!(levels, expect);
        assert_eq!(pit.irq0_edges_until(at(21)), 2);
        // Counts down by two in each half.
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x36, 10);
        let counts: Vec<u16> = (1..=11)
            .map(|k| {
                pit.set_time(at(k));
                pit.count(0)
            })
            .collect();
        assert_eq!(counts, [10, 8, 6, 4, 2, 10, 8, 6, 4, 2, 10]);
        // Odd count: high (n+1)/2, low (n-1)/2.
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x36, 5);
        let levels: Vec<bool> = (1..=11).map(|k| pit.irq0_level(at(k))).collect();
        assert_eq!(
            levels,
            [true, true, true, false, false, true, true, true, false, false, true]
        );
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x36, 5);
        let counts: Vec<u16> = (1..=6)
            .map(|k| {
                pit.set_time(at(k));
                pit.count(0)
            })
            .collect();
        assert_eq!(counts, [5, 4, 2, 5, 2, 5]);
        // Mode bits 7 are mode 3 too.
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x3E, 100);
        assert_eq!(pit.irq0_edges_until(at(1 + 100 * 7)), 7);
        assert!(!pit.irq0_level(at(1 + 100 * 7 + 50)));
    }

    #[test]
    fn counter_latch_command() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x34, 50_000);
        pit.set_time(at(1 + 1000));
        out(&mut pit, 0x43, 0x00);
        pit.set_time(at(1 + 2000));
        // A second latch before reading is ignored.
        out(&mut pit, 0x43, 0x00);
        assert_eq!(inb(&mut pit, 0x40), (49_000u16 & 0xFF) as u8);
        pit.set_time(at(1 + 3000));
        assert_eq!(inb(&mut pit, 0x40), (49_000u16 >> 8) as u8);
        // Latch released: live reads.
        assert_eq!(inb(&mut pit, 0x40), (47_000u16 & 0xFF) as u8);
        assert_eq!(inb(&mut pit, 0x40), (47_000u16 >> 8) as u8);
    }

    #[test]
    fn lsb_and_msb_only_access() {
        let mut pit = Pit::new();
        // LSB only, mode 2: count 200.
        out(&mut pit, 0x43, 0x14);
        out(&mut pit, 0x40, 200);
        assert_eq!(pit.next_irq0_deadline(0), Some(at(201)));
        pit.set_time(at(51));
        assert_eq!(inb(&mut pit, 0x40), 150);
        assert_eq!(inb(&mut pit, 0x40), 150);
        // MSB only, mode 2: count 0x0300.
        out(&mut pit, 0x43, 0x24);
        out(&mut pit, 0x40, 3);
        let t = pit.tick();
        assert_eq!(pit.next_irq0_deadline(0), Some(at(t + 1 + 0x300)));
        pit.set_time(at(t + 1 + 0x101));
        assert_eq!(inb(&mut pit, 0x40), 0x01);
        out(&mut pit, 0x43, 0x00);
        assert_eq!(inb(&mut pit, 0x40), 0x01);
        // Two-byte mode: reads alternate LSB, MSB.
        program(&mut pit, 1, 0x74, 0x1234);
        assert_eq!(inb(&mut pit, 0x41), 0x34);
        assert_eq!(inb(&mut pit, 0x41), 0x12);
        assert_eq!(inb(&mut pit, 0x43), 0xFF);
    }

    #[test]
    fn read_back_command() {
        let mut pit = Pit::new();
        out(&mut pit, 0x43, 0x34);
        // Status only, counter 0: OUT high, null count, RW=3, mode 2.
        out(&mut pit, 0x43, 0xE2);
        assert_eq!(inb(&mut pit, 0x40), 0x80 | 0x40 | 0x30 | 2 << 1);
        out(&mut pit, 0x40, 0x00);
        out(&mut pit, 0x40, 0x10);
        pit.set_time(at(1 + 0x100));
        // Count and status of counters 0 and 2: status first, then count.
        out(&mut pit, 0x43, 0xC0 | 0x02 | 0x08);
        assert_eq!(inb(&mut pit, 0x40), 0x80 | 0x30 | 2 << 1);
        pit.set_time(at(1 + 0x200));
        assert_eq!(inb(&mut pit, 0x40), 0x00);
        assert_eq!(inb(&mut pit, 0x40), 0x0F);
        // Counter 2 (never programmed): its status, then its count.
        assert_eq!(inb(&mut pit, 0x42), 0x80 | 0x30);
        // Count only, counter 0, twice: the second is ignored until read.
        out(&mut pit, 0x43, 0xD2);
        pit.set_time(at(1 + 0x300));
        out(&mut pit, 0x43, 0xD2);
        assert_eq!(inb(&mut pit, 0x40), 0x00);
        assert_eq!(inb(&mut pit, 0x40), 0x0E);
        // Status of a mode 0 counter after terminal count.
        program(&mut pit, 2, 0xB1, 0x0010); // BCD
        out(&mut pit, 0x61, 0x01);
        out(&mut pit, 0x43, 0xE8);
        assert_eq!(inb(&mut pit, 0x42), 0x40 | 0x30 | 1);
        let t = pit.tick();
        pit.set_time(at(t + 11));
        out(&mut pit, 0x43, 0xE8);
        assert_eq!(inb(&mut pit, 0x42), 0x80 | 0x30 | 1);
    }

    #[test]
    fn bcd_counting() {
        let mut pit = Pit::new();
        // Mode 2, BCD, count 0 = 10000.
        program(&mut pit, 0, 0x35, 0);
        assert_eq!(pit.next_irq0_deadline(0), Some(at(1 + 10_000)));
        pit.set_time(at(1 + 1));
        assert_eq!(latched(&mut pit, 0), 0x9999);
        pit.set_time(at(1 + 8766));
        assert_eq!(latched(&mut pit, 0), 0x1234);
        // BCD count 0x0100 = 100 pulses.
        program(&mut pit, 0, 0x35, 0x0100);
        let t = pit.tick();
        assert_eq!(pit.next_irq0_deadline(0), Some(at(t + 1 + 100)));
    }

    /// Linux `quick_pit_calibrate`: counter 2, mode 0, 0xFFFF, gate on,
    /// speaker off; then unlatched LSB/MSB reads while the MSB counts down.
    #[test]
    fn linux_quick_pit_calibrate() {
        let mut pit = Pit::new();
        pit.set_time(123_456_789);
        let v = inb(&mut pit, 0x61);
        out(&mut pit, 0x61, (v & !0x02) | 0x01);
        out(&mut pit, 0x43, 0xB0);
        out(&mut pit, 0x42, 0xFF);
        out(&mut pit, 0x42, 0xFF);
        let load = pit.tick() + 1;
        // pit_verify_msb: ignore the LSB, compare the MSB.  The guest reads
        // every 3 us of virtual time.
        let mut now = pit.now_ns();
        let mut msbs = Vec::new();
        for _ in 0..2000 {
            now += 3_000;
            pit.set_time(now);
            let _lsb = inb(&mut pit, 0x42);
            let msb = inb(&mut pit, 0x42);
            let elapsed = ns_to_ticks(now) - load;
            assert_eq!(u64::from(msb), (0xFFFF - elapsed) >> 8);
            msbs.push(msb);
        }
        assert_eq!(msbs[0], 0xFF);
        assert!(msbs.windows(2).all(|w| w[1] == w[0] || w[1] + 1 == w[0]));
        // 6 ms at 1.193 MHz: about 28 MSB steps, each seen many times
        // (pit_expect_msb wants more than 5 reads per value).
        let last = *msbs.last().unwrap();
        assert_eq!(0xFF - last, ((ns_to_ticks(now) - load) >> 8) as u8);
        for value in last + 1..0xFF {
            assert!(msbs.iter().filter(|&&m| m == value).count() > 5);
        }
        // Still in mode 0 before terminal count: OUT2 low.
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0);
    }

    /// Linux `pit_calibrate_tsc`: counter 2 mode 0, wait for OUT2 (port
    /// 0x61 bit 5) to go high.
    #[test]
    fn linux_pit_calibrate_tsc_out2() {
        let mut pit = Pit::new();
        let v = inb(&mut pit, 0x61);
        out(&mut pit, 0x61, (v & !0x02) | 0x01);
        out(&mut pit, 0x43, 0xB0);
        let latch: u16 = (PIT_FREQ_HZ / (1000 / 10)) as u16;
        out(&mut pit, 0x42, latch as u8);
        out(&mut pit, 0x42, (latch >> 8) as u8);
        let mut now = 0;
        let mut spins = 0u32;
        while inb(&mut pit, 0x61) & 0x20 == 0 {
            now += 1_000;
            pit.set_time(now);
            spins += 1;
        }
        // Exactly latch + 1 pulses after the write (at tick 0).
        assert!(ns_to_ticks(now - 1_000) < u64::from(latch) + 1);
        assert!(ns_to_ticks(now) > u64::from(latch));
        assert!((9_900..10_100).contains(&spins));
    }

    #[test]
    fn counter2_gate_mode0() {
        let mut pit = Pit::new();
        out(&mut pit, 0x61, 0x00);
        program(&mut pit, 2, 0xB0, 1000);
        // Gate low: loaded but not counting.
        pit.set_time(at(5000));
        assert_eq!(pit.count(2), 1000);
        out(&mut pit, 0x61, 0x01);
        pit.set_time(at(5400));
        assert_eq!(pit.count(2), 600);
        out(&mut pit, 0x61, 0x00);
        pit.set_time(at(9000));
        assert_eq!(pit.count(2), 600);
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0);
        out(&mut pit, 0x61, 0x03);
        pit.set_time(at(9000 + 599));
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0);
        pit.set_time(at(9000 + 600));
        assert_eq!(inb(&mut pit, 0x61) & 0x23, 0x23);
        // Gate low after terminal count: OUT stays high, count frozen.
        pit.set_time(at(9000 + 700));
        out(&mut pit, 0x61, 0x00);
        pit.set_time(at(20_000));
        assert_eq!(pit.count(2), 0u16.wrapping_sub(100));
        assert!(pit.out(2));
    }

    #[test]
    fn counter2_gate_mode2_and_mode3() {
        let mut pit = Pit::new();
        program(&mut pit, 2, 0xB4, 100);
        pit.set_time(at(1000));
        assert!(pit.out(2));
        assert_eq!(pit.count(2), 100);
        // Gate rising: reload on the next pulse.
        out(&mut pit, 0x61, 0x01);
        pit.set_time(at(1000 + 1 + 99));
        assert!(!pit.out(2));
        // Gate low forces OUT high and stops counting.
        out(&mut pit, 0x61, 0x00);
        assert!(pit.out(2));
        pit.set_time(at(5000));
        assert_eq!(pit.count(2), 1);
        // Rising again restarts a full period.
        out(&mut pit, 0x61, 0x01);
        pit.set_time(at(5000 + 1 + 30));
        assert_eq!(pit.count(2), 70);
        // Mode 3 (speaker tone).
        program(&mut pit, 2, 0xB6, 1000);
        let t = pit.tick();
        pit.set_time(at(t + 1 + 499));
        assert!(pit.out(2));
        pit.set_time(at(t + 1 + 500));
        assert!(!pit.out(2));
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0);
        out(&mut pit, 0x61, 0x00);
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0x20);
    }

    #[test]
    fn modes_1_and_5_gate_triggered() {
        let mut pit = Pit::new();
        program(&mut pit, 2, 0xB2, 50); // mode 1
        pit.set_time(at(100));
        assert!(pit.out(2));
        out(&mut pit, 0x61, 0x01);
        let t = pit.tick();
        assert!(!pit.out(2));
        pit.set_time(at(t + 50));
        assert!(!pit.out(2));
        pit.set_time(at(t + 51));
        assert!(pit.out(2));
        // Retrigger.
        out(&mut pit, 0x61, 0x00);
        out(&mut pit, 0x61, 0x01);
        assert!(!pit.out(2));
        // Mode 5: strobe N+1 pulses after the trigger.
        program(&mut pit, 2, 0xBA, 20);
        out(&mut pit, 0x61, 0x00);
        out(&mut pit, 0x61, 0x01);
        let t = pit.tick();
        pit.set_time(at(t + 20));
        assert!(pit.out(2));
        pit.set_time(at(t + 21));
        assert!(!pit.out(2));
        pit.set_time(at(t + 22));
        assert!(pit.out(2));
        // Counter 0 (gate tied high) never triggers in mode 1.
        program(&mut pit, 0, 0x32, 10);
        assert_eq!(pit.next_irq0_deadline(pit.now_ns()), None);
    }

    #[test]
    fn port_b_bits() {
        let mut pit = Pit::new();
        let a = inb(&mut pit, 0x61);
        let b = inb(&mut pit, 0x61);
        assert_eq!((a ^ b) & 0x10, 0x10, "refresh toggles on every read");
        out(&mut pit, 0x61, 0xFF);
        assert_eq!(inb(&mut pit, 0x61) & 0xCF, 0x0F);
        out(&mut pit, 0x61, 0x02);
        assert_eq!(inb(&mut pit, 0x61) & 0x0F, 0x02);
        // Counter 2 OUT in bit 5 (power-on: high).
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0x20);
        out(&mut pit, 0x43, 0xB0);
        assert_eq!(inb(&mut pit, 0x61) & 0x20, 0);
    }

    #[test]
    fn time_is_monotonic_and_counters_independent() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0x34, 1000);
        program(&mut pit, 1, 0x74, 18);
        pit.set_time(at(500));
        pit.set_time(at(100));
        assert_eq!(pit.now_ns(), at(500));
        assert_eq!(pit.count(0), 501);
        assert_eq!(pit.count(1), 18 - (499 % 18) as u16);
        // Channel 1 never contributes IRQ0 edges.
        assert_eq!(pit.irq0_edges_until(at(1001)), 1);
    }

    #[test]
    fn unprogrammed_pit_is_quiet() {
        let mut pit = Pit::new();
        assert_eq!(pit.next_irq0_deadline(0), None);
        assert_eq!(pit.irq0_edges_until(u64::MAX / 2), 0);
        assert!(pit.irq0_level(u64::MAX / 2));
        assert_eq!(pit.read(0x44, 1), 0xFF);
    }

    #[test]
    fn shared_on_bus() {
        let pit = SharedPit::new();
        let mut bus = PortBus::new();
        pit.register(&mut bus).unwrap();
        bus.write(0x43, 1, 0x34).unwrap();
        // A word write to 0x40 is split: LSB to 0x40, MSB to 0x41.
        bus.write(0x40, 1, 0xA9).unwrap();
        bus.write(0x40, 1, 0x04).unwrap();
        assert_eq!(pit.next_irq0_deadline(0), Some(at(1 + 1193)));
        pit.set_time(at(101));
        bus.write(0x43, 1, 0x00).unwrap();
        assert_eq!(bus.read(0x40, 1).unwrap(), (1093 & 0xFF) as u32);
        assert_eq!(bus.read(0x40, 1).unwrap(), (1093 >> 8) as u32);
        bus.write(0x61, 1, 0x01).unwrap();
        assert_eq!(bus.read(0x61, 1).unwrap() & 0x01, 0x01);
        assert_eq!(pit.irq0_edges_until(at(1 + 1193 * 3)), 3);
        assert!(pit.irq0_level(at(1 + 1193 * 3)));
    }
}
