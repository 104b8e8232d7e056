//! Motorola MC146818 real-time clock and the PC's CMOS NVRAM (ports 0x70 and
//! 0x71): see [`Rtc`].

use std::sync::{Arc, Mutex, MutexGuard};

use crate::pic::{read_split, write_split};
use crate::{IoError, PortBus, PortDevice};

/// Index port of the RTC/CMOS (the data port follows).
pub const RTC_PORT: u16 = 0x70;
/// Number of ports decoded by the RTC (index and data).
pub const RTC_PORT_LEN: u16 = 2;
/// ISA IRQ of the RTC.
pub const RTC_IRQ: u8 = 8;
/// How long before each update register A's UIP bit is set, in ns.
pub const RTC_UIP_NS: u64 = 244_000;

const DATA_PORT: u16 = RTC_PORT + 1;

const NS: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// Frequency of the divider chain input (32.768 kHz time base), in Hz.
const DIVIDER_HZ: i128 = 32_768;

// Register indices.
const REG_SECONDS: u8 = 0x00;
const REG_SECONDS_ALARM: u8 = 0x01;
const REG_MINUTES: u8 = 0x02;
const REG_MINUTES_ALARM: u8 = 0x03;
const REG_HOURS: u8 = 0x04;
const REG_HOURS_ALARM: u8 = 0x05;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0A;
const REG_B: u8 = 0x0B;
const REG_C: u8 = 0x0C;
const REG_D: u8 = 0x0D;
/// IBM PC convention: the century lives in CMOS byte 0x32.
const REG_CENTURY: u8 = 0x32;

// Register A.
const A_UIP: u8 = 0x80;
const A_RS: u8 = 0x0F;
// Register B.
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_DM_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
// Register C (the flags sit at the positions of their enables in B).
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
const C_ENABLES: u8 = C_PF | C_AF | C_UF;
// Register D.
const D_VRT: u8 = 0x80;

/// Register A after a PC BIOS POST: 32.768 kHz time base, rate 6 (1024 Hz).
const DEFAULT_REG_A: u8 = 0x26;
/// Register B after a PC BIOS POST: BCD, 24-hour, no interrupts.
const DEFAULT_REG_B: u8 = B_24H;

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian calendar,
/// `month` 1-12, any `day`: out of range days spill into adjacent months).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    // Shift the year to start in March so the leap day is the last day of
    // the (shifted) year; 400-year eras repeat exactly (146097 days).
    let m = i64::from(month);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (m + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468 = days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month 1-12, day 1-31)`.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // month is 1..=12 and day 1..=31 by construction.
    (year, month as u8, day as u8)
}

/// Broken-down RTC time in binary, 24-hour form.  Fields may hold values a
/// guest wrote that are out of range (while the clock is held); they are
/// normalized when converted to seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl DateTime {
    fn from_secs(secs: i64) -> Self {
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // sod < 86400: all fit.
        DateTime {
            year,
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
        }
    }

    fn to_secs(self) -> i64 {
        // Normalize an out of range month into the year.
        let m0 = i64::from(self.month) - 1;
        let year = self.year + m0.div_euclid(12);
        let month = (m0.rem_euclid(12) + 1) as u8;
        let days = days_from_civil(year, month, 1) + i64::from(self.day) - 1;
        days * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Day of the week, 1 = Sunday .. 7 = Saturday.
    fn weekday(self) -> u8 {
        // 1970-01-01 was a Thursday (5).
        let days = self.to_secs().div_euclid(SECS_PER_DAY);
        ((days + 4).rem_euclid(7) + 1) as u8
    }
}

/// Divider chain taps `x` ns (on the RTC's time line) correspond to.
fn divider_ticks(x: i128) -> i128 {
    (x * DIVIDER_HZ).div_euclid(NS)
}

/// Motorola MC146818 real-time clock with the PC/AT CMOS RAM layout.
///
/// Ports (by absolute number): 0x70 selects a register (bits 0-6; bit 7,
/// the NMI mask on a PC, is ignored; reading 0x70 returns the last value
/// written); 0x71 reads or writes the selected register.  Wider accesses are
/// split into byte accesses to consecutive ports (`outw 0x70` writes the
/// index and the data in one go).
///
/// * 0x00-0x09: seconds, seconds alarm, minutes, minutes alarm, hours, hours
///   alarm, day of week (1 = Sunday), day of month, month, year (00-99), in
///   BCD or binary (register B bit 2) and with 12- or 24-hour hours
///   (register B bit 1; in 12-hour mode bit 7 of the hours means PM);
/// * 0x0A (A): bit 7 UIP (read only), bits 6-4 divider, bits 3-0 periodic
///   rate; 0x0B (B): SET, PIE, AIE, UIE, SQWE (stored), DM, 24/12, DSE
///   (stored, no daylight saving is applied); 0x0C (C): IRQF, PF, AF, UF,
///   read only, cleared by reading; 0x0D (D): VRT = 1 (RAM and time valid),
///   read only;
/// * 0x32: century (same BCD/binary format as the other time registers);
/// * 0x0E-0x7F otherwise: 114 bytes of NVRAM.  [`Rtc::new`] presets the PC
///   values: 0x10 no floppy drives, 0x12 no hard disks, 0x14 equipment (FPU
///   present, VGA), 0x15/0x16 base memory 640 KiB, 0x17/0x18 and 0x30/0x31
///   memory above 1 MiB in KiB, 0x34/0x35 memory above 16 MiB in 64 KiB
///   units (both capped at 0xFFFF), 0x2E/0x2F checksum of 0x10-0x2D (high
///   byte first).
///
/// # Time
///
/// Two time bases are involved, both in nanoseconds:
///
/// * guest time, monotonic, as for the [`Pit`](crate::Pit): call
///   [`Rtc::set_time`] before forwarding a guest access (the access happens
///   at that time; earlier values are ignored).  UIP, the update cycle and
///   the interrupts follow it;
/// * wall-clock time: [`Rtc::set_wall_time`] says "at the current guest time
///   the wall clock reads `unix_ns`" (Unix epoch; the clock shows the UTC
///   calendar of that value, so pass local time to get a local-time RTC).
///   From then on the clock runs with guest time.  Call it once at start
///   (before that the clock starts at 1970-01-01 00:00:00 at guest time 0),
///   and again whenever the host clock should be followed more closely.
///
/// The guest can set the clock (time registers, normally under SET): the
/// difference it makes is kept across later [`set_wall_time`](Rtc::set_wall_time)
/// calls, as a battery-backed clock keeps a user-set time.
///
/// Updates happen on whole seconds of the RTC's time line; UIP reads as 1
/// for the [`RTC_UIP_NS`] before each.  While register B's SET bit is 1 or
/// the divider is held in reset (register A bits 6-5 = 11), no updates
/// happen, the time registers keep their values and can be rewritten one by
/// one (no normalization until the clock runs again).  Clearing SET resumes
/// counting at the sub-second phase the divider chain kept; leaving divider
/// reset starts the first update half a second later.  A time register
/// written while the clock runs takes effect at once (normalized: writing
/// month 2 while the day is 31 gives March 2 or 3).
///
/// # Interrupts
///
/// PF is set at the periodic rate of register A (rates 3-15: 32768 >>
/// (rate - 1) Hz; rates 1 and 2 give 256 and 128 Hz as on the MC146818 with
/// a 32.768 kHz time base; 0 = off; not while the divider is in reset, even
/// if SET is 1); UF at each update; AF at each update whose new
/// hours:minutes:seconds match the alarm registers (a value 0xC0-0xFF is a
/// don't-care and matches anything).  IRQF = PF·PIE + AF·AIE + UF·UIE; the
/// interrupt line is asserted while IRQF is 1, i.e. until register C is
/// read, so IRQ8 sees one rising edge per C read at most.
///
/// * [`Rtc::next_irq8_deadline`] tells when IRQF next rises (arm a host
///   timer for it); [`Rtc::irq8_edges_until`] how many times it rose since
///   the previous call: pulse IRQ8 on the PIC when that is non-zero;
/// * a port write can raise IRQF at once (e.g. setting PIE while PF is
///   already set), so the monitor should ask again after port accesses.
///
/// # Simplifications
///
/// * The update cycle is instantaneous at the second boundary (the time
///   registers hold the old time while UIP is set, the new one after).
/// * Day of week is always computed from the date; writes to 0x06 are
///   ignored.
/// * Changing DM or 24/12 reformats the time registers at once (on the chip
///   they must be rewritten); alarm registers are compared in the current
///   format, as stored.
/// * Divider values other than reset (11x) all run the clock at 32.768 kHz;
///   the square-wave output is not modelled.
#[derive(Debug, Clone)]
pub struct Rtc {
    /// Current guest time.
    now_ns: u64,
    /// RTC time line (ns since 1970-01-01 00:00:00 of the RTC) minus guest
    /// time.
    offset_ns: i128,
    /// Part of `offset_ns` made by the guest setting the clock.
    guest_ns: i128,
    /// Point of the RTC time line up to which flags have been raised.
    accounted_ns: i128,
    /// Last value written to port 0x70.
    index_port: u8,
    /// Register A without UIP.
    reg_a: u8,
    reg_b: u8,
    /// Register C.
    flags: u8,
    /// Seconds, minutes and hours alarm registers, as written.
    alarm: [u8; 3],
    /// The time registers while the clock is stopped (SET or divider reset).
    held: Option<DateTime>,
    /// The divider left reset while SET was still 1: start half a second
    /// before the next update when the clock runs again.
    half_second_start: bool,
    nvram: [u8; 128],
    /// Rising edges of IRQF not yet taken by `irq8_edges_until`.
    edges: u64,
}

impl Rtc {
    /// An RTC for a machine with `ram_bytes` of RAM (for the CMOS memory
    /// size bytes), at guest time 0, reading 1970-01-01 00:00:00 until
    /// [`set_wall_time`](Self::set_wall_time) is called.  Registers as a PC
    /// BIOS leaves them: A = 0x26, B = 0x02 (BCD, 24-hour, no interrupts).
    pub fn new(ram_bytes: u64) -> Self {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        let mut nvram = [0u8; 128];
        nvram[0x10] = 0x00; // no floppy drives
        nvram[0x12] = 0x00; // no hard disks
        nvram[0x14] = 0x02; // equipment: math coprocessor, EGA/VGA, no floppy
        let [lo, hi] = 640u16.to_le_bytes();
        nvram[0x15] = lo;
        nvram[0x16] = hi;
        let ext_kib = (ram_bytes.saturating_sub(MIB) / KIB).min(0xFFFF) as u16;
        let [lo, hi] = ext_kib.to_le_bytes();
        nvram[0x17] = lo;
        nvram[0x18] = hi;
        nvram[0x30] = lo;
        nvram[0x31] = hi;
        let high_64k = (ram_bytes.saturating_sub(16 * MIB) / (64 * KIB)).min(0xFFFF) as u16;
        let [lo, hi] = high_64k.to_le_bytes();
        nvram[0x34] = lo;
        nvram[0x35] = hi;
        let sum: u16 = nvram[0x10..=0x2D].iter().map(|&b| u16::from(b)).sum();
        let [hi, lo] = sum.to_be_bytes();
        nvram[0x2E] = hi;
        nvram[0x2F] = lo;
        Rtc {
            now_ns: 0,
            offset_ns: 0,
            guest_ns: 0,
            accounted_ns: 0,
            index_port: 0,
            reg_a: DEFAULT_REG_A,
            reg_b: DEFAULT_REG_B,
            flags: 0,
            alarm: [0; 3],
            held: None,
            half_second_start: false,
            nvram,
            edges: 0,
        }
    }

    /// Sets the current guest time (monotonic ns; earlier values are
    /// ignored).  Port accesses happen at this time.
    pub fn set_time(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.advance();
    }

    /// The current guest time.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Declares that the wall clock reads `unix_ns` (ns since the Unix
    /// epoch) at the current guest time; the RTC runs from there with guest
    /// time, plus whatever adjustment the guest made by setting the clock.
    /// Values past `u64::MAX` ns (year 2554) are clamped.
    pub fn set_wall_time(&mut self, unix_ns: u128) {
        self.advance();
        let unix_ns = i128::from(u64::try_from(unix_ns).unwrap_or(u64::MAX));
        self.offset_ns = unix_ns - i128::from(self.now_ns) + self.guest_ns;
        self.accounted_ns = self.rtc_ns();
    }

    /// The RTC's current time in ns since 1970-01-01 00:00:00 (what the guest
    /// reads, including its own adjustments; while the clock is stopped, the
    /// time it will resume from).
    pub fn time_ns(&self) -> i128 {
        match self.held {
            Some(dt) => i128::from(dt.to_secs()) * NS,
            None => self.rtc_ns(),
        }
    }

    /// Level of the interrupt output (IRQF) at `now_ns`.
    pub fn irq8_level(&mut self, now_ns: u64) -> bool {
        self.set_time(now_ns);
        self.flags & C_IRQF != 0
    }

    /// Number of rising edges of IRQF since the previous call, up to
    /// `now_ns` (saturating).  Edges caused by port accesses are included.
    pub fn irq8_edges_until(&mut self, now_ns: u64) -> u32 {
        self.set_time(now_ns);
        u32::try_from(std::mem::take(&mut self.edges)).unwrap_or(u32::MAX)
    }

    /// When IRQF next rises: the current time if edges are waiting to be
    /// taken by [`irq8_edges_until`](Self::irq8_edges_until), otherwise the
    /// time (strictly after `now_ns`) of the next enabled periodic, update
    /// or alarm event, or `None` if no interrupt can happen without a port
    /// access (nothing enabled, or IRQF still set because register C has
    /// not been read).
    pub fn next_irq8_deadline(&mut self, now_ns: u64) -> Option<u64> {
        self.set_time(now_ns);
        if self.edges > 0 {
            return Some(self.now_ns);
        }
        if self.flags & C_IRQF != 0 {
            return None;
        }
        let rtc = self.rtc_ns();
        let mut next: Option<i128> = None;
        let mut consider = |t: i128| next = Some(next.map_or(t, |n| n.min(t)));
        if self.reg_b & B_PIE != 0 {
            if let Some(p) = self.periodic_ticks() {
                let k = divider_ticks(rtc).div_euclid(p) + 1;
                // First instant whose divider count reaches k * p.
                consider(-(-(k * p * NS)).div_euclid(DIVIDER_HZ));
            }
        }
        if self.held.is_none() {
            let sec = rtc.div_euclid(NS);
            if self.reg_b & B_UIE != 0 {
                consider((sec + 1) * NS);
            }
            if self.reg_b & B_AIE != 0 {
                if let Some(s) = self.next_alarm_after(clamp_i64(sec)) {
                    consider(i128::from(s) * NS);
                }
            }
        }
        next.map(|t| {
            let at = i128::from(self.now_ns) + (t - rtc);
            u64::try_from(at).unwrap_or(u64::MAX)
        })
    }

    /// Reads CMOS register `index` (0-0x7F; higher bits ignored) as the guest
    /// would through port 0x71, with the same side effects (reading C clears
    /// it).
    pub fn read_register(&mut self, index: u8) -> u8 {
        self.advance();
        let index = index & 0x7F;
        let dt = self.now_dt();
        match index {
            REG_SECONDS => self.encode(i64::from(dt.second)),
            REG_MINUTES => self.encode(i64::from(dt.minute)),
            REG_HOURS => self.encode_hours(dt.hour),
            REG_SECONDS_ALARM => self.alarm[0],
            REG_MINUTES_ALARM => self.alarm[1],
            REG_HOURS_ALARM => self.alarm[2],
            REG_WEEKDAY => self.encode(i64::from(dt.weekday())),
            REG_DAY => self.encode(i64::from(dt.day)),
            REG_MONTH => self.encode(i64::from(dt.month)),
            REG_YEAR => self.encode(dt.year.rem_euclid(100)),
            REG_CENTURY => self.encode(dt.year.div_euclid(100)),
            REG_A => self.reg_a | if self.uip() { A_UIP } else { 0 },
            REG_B => self.reg_b,
            REG_C => std::mem::take(&mut self.flags),
            REG_D => D_VRT,
            _ => self.nvram[usize::from(index)],
        }
    }

    /// Writes CMOS register `index` (0-0x7F; higher bits ignored) as the
    /// guest would through port 0x71.
    pub fn write_register(&mut self, index: u8, value: u8) {
        self.advance();
        let index = index & 0x7F;
        match index {
            REG_SECONDS | REG_MINUTES | REG_HOURS | REG_DAY | REG_MONTH | REG_YEAR
            | REG_CENTURY => self.write_time(index, value),
            REG_SECONDS_ALARM => self.alarm[0] = value,
            REG_MINUTES_ALARM => self.alarm[1] = value,
            REG_HOURS_ALARM => self.alarm[2] = value,
            REG_A => self.write_a(value),
            REG_B => self.write_b(value),
            REG_WEEKDAY | REG_C | REG_D => {}
            _ => self.nvram[usize::from(index)] = value,
        }
    }

    /// The RTC time line at the current guest time.
    fn rtc_ns(&self) -> i128 {
        i128::from(self.now_ns) + self.offset_ns
    }

    /// The time registers' contents (binary, 24-hour).
    fn now_dt(&self) -> DateTime {
        self.held
            .unwrap_or_else(|| DateTime::from_secs(clamp_i64(self.rtc_ns().div_euclid(NS))))
    }

    fn binary(&self) -> bool {
        self.reg_b & B_DM_BINARY != 0
    }

    fn divider_reset(&self) -> bool {
        self.reg_a & 0x60 == 0x60
    }

    fn uip(&self) -> bool {
        self.held.is_none() && self.rtc_ns().rem_euclid(NS) >= NS - i128::from(RTC_UIP_NS)
    }

    /// Periodic interrupt period in divider ticks (1/32768 s), if running.
    fn periodic_ticks(&self) -> Option<i128> {
        let rate = match self.reg_a & A_RS {
            0 => return None,
            1 => 8,
            2 => 9,
            r => r,
        };
        (!self.divider_reset()).then(|| 1i128 << (rate - 1))
    }

    /// Formats a register value (0-99 in BCD mode; larger values wrap).
    fn encode(&self, value: i64) -> u8 {
        if self.binary() {
            value as u8
        } else {
            let v = value.rem_euclid(100) as u8;
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(&self, raw: u8) -> u8 {
        if self.binary() {
            raw
        } else {
            (raw >> 4) * 10 + (raw & 0xF)
        }
    }

    fn encode_hours(&self, hour: u8) -> u8 {
        if self.reg_b & B_24H != 0 {
            self.encode(i64::from(hour))
        } else {
            let h12 = match hour % 12 {
                0 => 12,
                h => h,
            };
            let pm = if hour % 24 >= 12 { 0x80 } else { 0 };
            self.encode(i64::from(h12)) | pm
        }
    }

    fn decode_hours(&self, raw: u8) -> u8 {
        if self.reg_b & B_24H != 0 {
            self.decode(raw)
        } else {
            let h12 = self.decode(raw & 0x7F);
            h12 % 12 + if raw & 0x80 != 0 { 12 } else { 0 }
        }
    }

    /// An alarm register as a value to match: `None` = don't care,
    /// `Some(None)` = can never match.
    fn alarm_field(&self, raw: u8, hours: bool, limit: u8) -> Option<Option<i64>> {
        if raw & 0xC0 == 0xC0 {
            return None;
        }
        let v = if hours {
            self.decode_hours(raw)
        } else {
            self.decode(raw)
        };
        Some((v < limit).then_some(i64::from(v)))
    }

    /// The first RTC second strictly after `after` at which an update makes
    /// the time match the alarm registers.
    fn next_alarm_after(&self, after: i64) -> Option<i64> {
        let hour = self.alarm_field(self.alarm[2], true, 24);
        let minute = self.alarm_field(self.alarm[1], false, 60);
        let second = self.alarm_field(self.alarm[0], false, 60);
        if [hour, minute, second].contains(&Some(None)) {
            return None;
        }
        let (hour, minute, second) = (hour.flatten(), minute.flatten(), second.flatten());
        let mut t = after.checked_add(1)?;
        // Each step fixes one field (moving forward to its next match) and
        // resets the lower ones; a handful of steps always suffices.
        for _ in 0..16 {
            let day = t - t.rem_euclid(SECS_PER_DAY);
            let sod = t.rem_euclid(SECS_PER_DAY);
            let (h, m, s) = (sod / 3600, sod / 60 % 60, sod % 60);
            if let Some(ah) = hour.filter(|&ah| ah != h) {
                t = day + ah * 3600 + if ah > h { 0 } else { SECS_PER_DAY };
            } else if let Some(am) = minute.filter(|&am| am != m) {
                t = day + h * 3600 + if am > m { am * 60 } else { 3600 };
            } else if let Some(a) = second.filter(|&a| a != s) {
                t = day + h * 3600 + m * 60 + if a > s { a } else { 60 };
            } else {
                return Some(t);
            }
        }
        None
    }

    /// Raises the flags of the events between the last accounted instant and
    /// now.
    fn advance(&mut self) {
        let now = self.rtc_ns();
        let from = self.accounted_ns;
        if now <= from {
            return;
        }
        let mut new = 0;
        if let Some(p) = self.periodic_ticks() {
            if divider_ticks(now).div_euclid(p) > divider_ticks(from).div_euclid(p) {
                new |= C_PF;
            }
        }
        if self.held.is_none() {
            let (s0, s1) = (from.div_euclid(NS), now.div_euclid(NS));
            if s1 > s0 {
                new |= C_UF;
                if let Some(s) = self.next_alarm_after(clamp_i64(s0)) {
                    if i128::from(s) <= s1 {
                        new |= C_AF;
                    }
                }
            }
        }
        self.accounted_ns = now;
        self.flags |= new;
        self.update_irqf();
    }

    fn update_irqf(&mut self) {
        if self.flags & C_IRQF == 0 && self.flags & self.reg_b & C_ENABLES != 0 {
            self.flags |= C_IRQF;
            self.edges += 1;
        }
    }

    /// Moves the RTC time line by `delta` ns (the guest set the clock).
    fn shift(&mut self, delta: i128) {
        self.offset_ns += delta;
        self.guest_ns += delta;
        self.accounted_ns = self.rtc_ns();
    }

    fn write_time(&mut self, index: u8, raw: u8) {
        let mut dt = self.now_dt();
        let v = self.decode(raw);
        match index {
            REG_SECONDS => dt.second = v,
            REG_MINUTES => dt.minute = v,
            REG_HOURS => dt.hour = self.decode_hours(raw),
            REG_DAY => dt.day = v,
            REG_MONTH => dt.month = v,
            REG_YEAR => dt.year = dt.year.div_euclid(100) * 100 + i64::from(v),
            _ => dt.year = i64::from(v) * 100 + dt.year.rem_euclid(100),
        }
        match &mut self.held {
            Some(held) => *held = dt,
            None => {
                let now = self.rtc_ns();
                let target = i128::from(dt.to_secs()) * NS + now.rem_euclid(NS);
                self.shift(target - now);
            }
        }
    }

    fn write_a(&mut self, value: u8) {
        let was_reset = self.divider_reset();
        self.reg_a = value & !A_UIP;
        if was_reset && !self.divider_reset() {
            self.half_second_start = true;
        }
        self.update_hold();
    }

    fn write_b(&mut self, value: u8) {
        // Setting SET clears UIE.
        self.reg_b = if value & B_SET != 0 {
            value & !B_UIE
        } else {
            value
        };
        self.update_hold();
        self.update_irqf();
    }

    /// Stops or restarts the clock after a change of SET or the divider.
    fn update_hold(&mut self) {
        let stop = self.reg_b & B_SET != 0 || self.divider_reset();
        match self.held {
            None if stop => {
                self.held = Some(self.now_dt());
                self.half_second_start = false;
            }
            Some(dt) if !stop => {
                self.held = None;
                let now = self.rtc_ns();
                let phase = if std::mem::take(&mut self.half_second_start) {
                    NS / 2
                } else {
                    now.rem_euclid(NS)
                };
                self.shift(i128::from(dt.to_secs()) * NS + phase - now);
            }
            _ => {}
        }
    }

    fn read_byte(&mut self, port: u16) -> u8 {
        match port {
            RTC_PORT => self.index_port,
            DATA_PORT => self.read_register(self.index_port),
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, value: u8) {
        match port {
            RTC_PORT => self.index_port = value,
            DATA_PORT => self.write_register(self.index_port, value),
            _ => {}
        }
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Decodes ports 0x70 and 0x71 by absolute number; wider accesses are split
/// into byte accesses to consecutive ports.
impl PortDevice for Rtc {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        read_split(port, size, |p| self.read_byte(p))
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        write_split(port, size, value, |p, b| self.write_byte(p, b));
    }
}

/// A shared handle to one [`Rtc`]: register a clone at 0x70 and keep one in
/// the monitor for time keeping.
///
/// ```
/// use ringfold_devices::*;
///
/// let rtc = SharedRtc::new(128 << 20);
/// let mut bus = PortBus::new();
/// rtc.register(&mut bus).unwrap();
/// // 2024-03-15 13:45:30 UTC.
/// rtc.set_wall_time(1_710_510_330 * 1_000_000_000);
/// bus.write(0x70, 1, 0x04).unwrap();
/// assert_eq!(bus.read(0x71, 1).unwrap(), 0x13); // hours, BCD
/// // Update-ended interrupt: IRQ8 at the next second boundary.
/// bus.write(0x70, 1, 0x0B).unwrap();
/// bus.write(0x71, 1, 0x12).unwrap();
/// assert_eq!(rtc.next_irq8_deadline(0), Some(1_000_000_000));
/// assert_eq!(rtc.irq8_edges_until(1_000_000_000), 1);
/// ```
#[derive(Debug, Clone)]
pub struct SharedRtc(Arc<Mutex<Rtc>>);

impl SharedRtc {
    /// A handle to a new [`Rtc`] (see [`Rtc::new`]).
    pub fn new(ram_bytes: u64) -> Self {
        Self::from_rtc(Rtc::new(ram_bytes))
    }

    /// Wraps an existing RTC.
    pub fn from_rtc(rtc: Rtc) -> Self {
        SharedRtc(Arc::new(Mutex::new(rtc)))
    }

    /// Locks the RTC (a poisoned lock is recovered: the state is plain data).
    pub fn lock(&self) -> MutexGuard<'_, Rtc> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a clone of this handle at 0x70 (2 ports).
    pub fn register(&self, bus: &mut PortBus) -> Result<(), IoError> {
        bus.register(RTC_PORT, RTC_PORT_LEN, Box::new(self.clone()))?;
        Ok(())
    }

    /// See [`Rtc::set_time`].
    pub fn set_time(&self, now_ns: u64) {
        self.lock().set_time(now_ns);
    }

    /// See [`Rtc::set_wall_time`].
    pub fn set_wall_time(&self, unix_ns: u128) {
        self.lock().set_wall_time(unix_ns);
    }

    /// See [`Rtc::irq8_level`].
    pub fn irq8_level(&self, now_ns: u64) -> bool {
        self.lock().irq8_level(now_ns)
    }

    /// See [`Rtc::irq8_edges_until`].
    pub fn irq8_edges_until(&self, now_ns: u64) -> u32 {
        self.lock().irq8_edges_until(now_ns)
    }

    /// See [`Rtc::next_irq8_deadline`].
    pub fn next_irq8_deadline(&self, now_ns: u64) -> Option<u64> {
        self.lock().next_irq8_deadline(now_ns)
    }
}

impl PortDevice for SharedRtc {
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

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000_000_000;
    /// 2024-03-15 13:45:30 UTC (a Friday).
    const T0: u64 = 1_710_510_330;

    /// Guest-side view: an RTC driven through its ports, with a clock that
    /// advances by 1 us per port access.
    struct Guest {
        rtc: Rtc,
        t: u64,
    }

    impl Guest {
        fn new() -> Self {
            let mut rtc = Rtc::new(128 << 20);
            rtc.set_wall_time(u128::from(T0) * u128::from(SEC) + 250 * 1_000_000);
            Guest { rtc, t: 0 }
        }

        fn at(mut self, t: u64) -> Self {
            self.t = t;
            self
        }

        fn read(&mut self, index: u8) -> u8 {
            self.t += 1000;
            self.rtc.set_time(self.t);
            self.rtc.write(0x70, 1, u32::from(index | 0x80)); // NMI masked
            self.rtc.read(0x71, 1) as u8
        }

        fn write(&mut self, index: u8, value: u8) {
            self.t += 1000;
            self.rtc.set_time(self.t);
            self.rtc.write(0x70, 1, u32::from(index));
            self.rtc.write(0x71, 1, u32::from(value));
        }

        /// Linux `mc146818_get_time` (no ACPI century): returns
        /// (year, month 1-12, day, hour register decoded, minute, second)
        /// plus the raw hours register.
        fn linux_get_time(&mut self) -> ((u32, u8, u8, u8, u8, u8), u8) {
            loop {
                assert_eq!(self.read(REG_D) & 0x40, 0, "RTC_VALID bit 6 must be 0");
                let sec = self.read(REG_SECONDS);
                if self.read(REG_A) & A_UIP != 0 {
                    self.t += 100_000; // udelay(100)
                    continue;
                }
                if sec != self.read(REG_SECONDS) {
                    continue;
                }
                let min = self.read(REG_MINUTES);
                let hour = self.read(REG_HOURS);
                let mday = self.read(REG_DAY);
                let mon = self.read(REG_MONTH);
                let year = self.read(REG_YEAR);
                let ctrl = self.read(REG_B);
                let mut retry = self.read(REG_A) & A_UIP != 0;
                retry |= sec != self.read(REG_SECONDS);
                if retry {
                    continue;
                }
                let bcd2bin = |v: u8| (v >> 4) * 10 + (v & 0xF);
                let conv = |v: u8| {
                    if ctrl & B_DM_BINARY == 0 {
                        bcd2bin(v)
                    } else {
                        v
                    }
                };
                let raw_hour = hour;
                let hour = if ctrl & B_24H != 0 {
                    conv(hour)
                } else {
                    conv(hour & 0x7F) % 12 + if hour & 0x80 != 0 { 12 } else { 0 }
                };
                let year = u32::from(conv(year));
                let year = if year <= 69 { 2000 + year } else { 1900 + year };
                return (
                    (year, conv(mon), conv(mday), hour, conv(min), conv(sec)),
                    raw_hour,
                );
            }
        }

        /// Linux `mc146818_set_time` for a 20xx date, in the current mode.
        fn linux_set_time(&mut self, year: u32, mon: u8, day: u8, hour: u8, min: u8, sec: u8) {
            let ctrl = self.read(REG_B);
            let binary = ctrl & B_DM_BINARY != 0;
            let enc = |v: u8| {
                if binary {
                    v
                } else {
                    ((v / 10) << 4) | (v % 10)
                }
            };
            let freq = self.read(REG_A);
            self.write(REG_B, ctrl | B_SET);
            self.write(REG_A, freq | 0x70); // divider reset
            self.write(REG_YEAR, enc((year % 100) as u8));
            self.write(REG_MONTH, enc(mon));
            self.write(REG_DAY, enc(day));
            self.write(REG_HOURS, enc(hour));
            self.write(REG_MINUTES, enc(min));
            self.write(REG_SECONDS, enc(sec));
            self.write(REG_B, ctrl);
            self.write(REG_A, freq);
        }
    }

    #[test]
    fn calendar_conversions() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(DateTime::from_secs(951_868_799).to_secs(), 951_868_799);
        let leap = DateTime::from_secs(951_868_799);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        assert_eq!((leap.hour, leap.minute, leap.second), (23, 59, 59));
        let t0 = DateTime::from_secs(T0 as i64);
        assert_eq!(t0.weekday(), 6); // Friday
        for days in [-800_000i64, -1, 0, 1, 59, 10_957, 19_797, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        // Out of range fields normalize.
        let dt = DateTime {
            year: 2024,
            month: 2,
            day: 31,
            hour: 0,
            minute: 0,
            second: 0,
        };
        let n = DateTime::from_secs(dt.to_secs());
        assert_eq!((n.year, n.month, n.day), (2024, 3, 2));
    }

    #[test]
    fn linux_reads_bcd_time() {
        let mut g = Guest::new();
        assert_eq!(g.read(REG_B), 0x02);
        let (time, raw_hour) = g.linux_get_time();
        assert_eq!(time, (2024, 3, 15, 13, 45, 30));
        assert_eq!(raw_hour, 0x13);
        assert_eq!(g.read(REG_WEEKDAY), 6);
        assert_eq!(g.read(REG_CENTURY), 0x20);
        assert_eq!(g.read(REG_D), 0x80);
    }

    #[test]
    fn linux_reads_binary_time() {
        let mut g = Guest::new();
        g.write(REG_B, B_24H | B_DM_BINARY);
        let (time, raw_hour) = g.linux_get_time();
        assert_eq!(time, (2024, 3, 15, 13, 45, 30));
        assert_eq!(raw_hour, 13);
        assert_eq!(g.read(REG_YEAR), 24);
        assert_eq!(g.read(REG_CENTURY), 20);
    }

    #[test]
    fn twelve_hour_mode() {
        // BCD, 12-hour: 13:45 is 1 PM.
        let mut g = Guest::new();
        g.write(REG_B, 0);
        let (time, raw_hour) = g.linux_get_time();
        assert_eq!(time, (2024, 3, 15, 13, 45, 30));
        assert_eq!(raw_hour, 0x81);
        // Binary, 12-hour.
        g.write(REG_B, B_DM_BINARY);
        assert_eq!(g.read(REG_HOURS), 0x81);
        // Midnight is 12 AM, noon 12 PM, 11:xx 11 AM.
        for (h24, bcd12) in [(0u64, 0x12u8), (12, 0x92), (11, 0x11), (23, 0x91)] {
            let mut rtc = Rtc::new(0);
            rtc.set_wall_time(u128::from(h24 * 3600 * SEC));
            rtc.write_register(REG_B, 0);
            assert_eq!(rtc.read_register(REG_HOURS), bcd12, "{h24}h");
        }
        // Writing hours in 12-hour mode.
        let mut rtc = Rtc::new(0);
        rtc.write_register(REG_B, 0);
        rtc.write_register(REG_HOURS, 0x92); // 12 PM
        rtc.write_register(REG_B, B_24H);
        assert_eq!(rtc.read_register(REG_HOURS), 0x12);
        rtc.write_register(REG_B, 0);
        rtc.write_register(REG_HOURS, 0x12); // 12 AM
        rtc.write_register(REG_B, B_24H);
        assert_eq!(rtc.read_register(REG_HOURS), 0x00);
    }

    #[test]
    fn uip_window_and_update() {
        // 0.9997 s into second 30: inside the 244 us window.
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC));
        rtc.set_time(SEC - 300_000);
        assert_eq!(rtc.read_register(REG_A), 0x26);
        rtc.set_time(SEC - 244_000);
        assert_eq!(rtc.read_register(REG_A), 0xA6);
        assert_eq!(rtc.read_register(REG_SECONDS), 0x30);
        rtc.set_time(SEC - 1);
        assert_eq!(rtc.read_register(REG_A), 0xA6);
        rtc.set_time(SEC);
        assert_eq!(rtc.read_register(REG_A), 0x26);
        assert_eq!(rtc.read_register(REG_SECONDS), 0x31);

        // Linux waits out the UIP window and reads the new second.
        let mut g = Guest::new().at(750 * MS - 200_000);
        assert_eq!(g.linux_get_time().0, (2024, 3, 15, 13, 45, 31));
        // Starting just before UIP rises: the revalidation catches it.
        let mut g = Guest::new().at(750 * MS - 248_000);
        assert_eq!(g.linux_get_time().0, (2024, 3, 15, 13, 45, 31));
    }

    #[test]
    fn carries_through_midnight_and_year() {
        let mut rtc = Rtc::new(0);
        // 1999-12-31 23:59:59.
        rtc.set_wall_time(946_684_799 * u128::from(SEC));
        rtc.set_time(SEC);
        assert_eq!(rtc.read_register(REG_YEAR), 0x00);
        assert_eq!(rtc.read_register(REG_CENTURY), 0x20);
        assert_eq!(rtc.read_register(REG_MONTH), 0x01);
        assert_eq!(rtc.read_register(REG_DAY), 0x01);
        assert_eq!(rtc.read_register(REG_HOURS), 0x00);
        assert_eq!(rtc.read_register(REG_WEEKDAY), 7); // Saturday
    }

    #[test]
    fn set_bit_freezes_and_linux_set_time() {
        let mut g = Guest::new();
        // Set 2025-02-28 23:59:58 from a Jan 31 start, month before day.
        g.rtc.set_wall_time(1_738_281_600 * u128::from(SEC)); // 2025-01-31
        g.linux_set_time(2025, 2, 28, 23, 59, 58);
        assert_eq!(g.linux_get_time().0, (2025, 2, 28, 23, 59, 58));
        // Divider left reset: first update half a second later.
        let start = g.t;
        g.t = start + 490 * MS;
        assert_eq!(g.linux_get_time().0, (2025, 2, 28, 23, 59, 58));
        g.t = start + 510 * MS;
        assert_eq!(g.linux_get_time().0, (2025, 2, 28, 23, 59, 59));
        g.t = start + 1510 * MS;
        assert_eq!(g.linux_get_time().0, (2025, 3, 1, 0, 0, 0));

        // SET alone: registers frozen, no UIP, no update flags.
        g.read(REG_C);
        let b = g.read(REG_B);
        g.write(REG_B, b | B_SET | B_UIE);
        assert_eq!(g.read(REG_B), b | B_SET, "SET clears UIE");
        let frozen = g.read(REG_SECONDS);
        for _ in 0..30 {
            g.t += 100 * MS;
            assert_eq!(g.read(REG_A) & A_UIP, 0);
            assert_eq!(g.read(REG_SECONDS), frozen);
        }
        assert_eq!(g.read(REG_C) & C_UF, 0);
        g.write(REG_B, b);
        g.t += 1200 * MS;
        assert_ne!(g.read(REG_SECONDS), frozen);
    }

    #[test]
    fn guest_adjustment_survives_wall_clock_resync() {
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC));
        rtc.write_register(REG_HOURS, 0x15); // two hours ahead
        rtc.set_time(10 * SEC);
        rtc.set_wall_time(u128::from(T0 + 10) * u128::from(SEC));
        assert_eq!(rtc.read_register(REG_HOURS), 0x15);
        assert_eq!(rtc.read_register(REG_MINUTES), 0x45);
        assert_eq!(rtc.read_register(REG_SECONDS), 0x40);
        assert_eq!(rtc.time_ns(), i128::from(T0 + 2 * 3600 + 10) * NS);
    }

    #[test]
    fn century_register() {
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC));
        rtc.write_register(REG_CENTURY, 0x19);
        assert_eq!(rtc.read_register(REG_YEAR), 0x24);
        assert_eq!(
            DateTime::from_secs(clamp_i64(rtc.time_ns().div_euclid(NS))).year,
            1924
        );
        rtc.write_register(REG_YEAR, 0x99);
        assert_eq!(
            DateTime::from_secs(clamp_i64(rtc.time_ns().div_euclid(NS))).year,
            1999
        );
    }

    #[test]
    fn periodic_interrupt() {
        let mut rtc = Rtc::new(0);
        assert_eq!(rtc.next_irq8_deadline(0), None);
        // Rate 6 = 1024 Hz: period 976562.5 ns.
        rtc.write_register(REG_B, B_24H | B_PIE);
        assert_eq!(rtc.next_irq8_deadline(0), Some(976_563));
        assert_eq!(rtc.irq8_edges_until(976_562), 0);
        assert_eq!(rtc.irq8_edges_until(976_563), 1);
        // IRQF stays set until C is read: no new edges, no deadline.
        assert_eq!(rtc.next_irq8_deadline(5 * MS), None);
        assert_eq!(rtc.irq8_edges_until(5 * MS), 0);
        assert!(rtc.irq8_level(5 * MS));
        assert_eq!(rtc.read_register(REG_C), C_IRQF | C_PF);
        assert!(!rtc.irq8_level(5 * MS));
        assert_eq!(rtc.read_register(REG_C), 0);
        // Next tap after 5 ms: 6 * 976562.5 = 5859375.
        assert_eq!(rtc.next_irq8_deadline(5 * MS), Some(5_859_375));
        // Rate 15 = 2 Hz, rate 3 = 8192 Hz, rate 1 = 256 Hz.
        rtc.write_register(REG_A, 0x2F);
        assert_eq!(rtc.next_irq8_deadline(5 * MS), Some(500 * MS));
        rtc.write_register(REG_A, 0x23);
        assert_eq!(rtc.next_irq8_deadline(5 * MS), Some(5_004_883));
        rtc.write_register(REG_A, 0x21);
        assert_eq!(rtc.next_irq8_deadline(5 * MS), Some(7_812_500));
        rtc.write_register(REG_A, 0x20);
        assert_eq!(rtc.next_irq8_deadline(5 * MS), None);
        // PF is set even with PIE clear; enabling PIE then raises IRQF at once.
        rtc.write_register(REG_A, 0x26);
        rtc.write_register(REG_B, B_24H);
        rtc.set_time(10 * MS);
        assert_eq!(rtc.irq8_edges_until(10 * MS), 0);
        rtc.write_register(REG_B, B_24H | B_PIE);
        assert_eq!(rtc.next_irq8_deadline(10 * MS), Some(10 * MS));
        assert_eq!(rtc.irq8_edges_until(10 * MS), 1);
        // Divider reset stops it.
        rtc.read_register(REG_C);
        rtc.write_register(REG_A, 0x66);
        assert_eq!(rtc.next_irq8_deadline(10 * MS), None);
        assert_eq!(rtc.irq8_edges_until(20 * MS), 0);
    }

    #[test]
    fn periodic_edges_counted_per_register_c_read() {
        let mut rtc = Rtc::new(0);
        rtc.write_register(REG_A, 0x2F); // 2 Hz
        rtc.write_register(REG_B, B_24H | B_PIE);
        let mut edges = 0;
        let mut t = 0;
        while t < 10 * SEC {
            t = rtc.next_irq8_deadline(t).unwrap();
            edges += rtc.irq8_edges_until(t);
            rtc.set_time(t);
            assert_ne!(rtc.read_register(REG_C) & C_PF, 0);
        }
        assert_eq!(edges, 20);
    }

    #[test]
    fn update_ended_interrupt() {
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC) + 250 * u128::from(MS));
        rtc.write_register(REG_A, 0x20); // no periodic flag
        rtc.write_register(REG_B, B_24H | B_UIE);
        assert_eq!(rtc.next_irq8_deadline(0), Some(750 * MS));
        assert_eq!(rtc.irq8_edges_until(750 * MS), 1);
        rtc.set_time(800 * MS);
        assert_eq!(rtc.read_register(REG_SECONDS), 0x31);
        assert_eq!(rtc.read_register(REG_C), C_IRQF | C_UF);
        assert_eq!(rtc.next_irq8_deadline(800 * MS), Some(1750 * MS));
        // Flags without enables do not interrupt.
        rtc.write_register(REG_B, B_24H);
        assert_eq!(rtc.irq8_edges_until(5 * SEC), 0);
        assert_eq!(rtc.read_register(REG_C), C_UF);
    }

    #[test]
    fn alarm_interrupt() {
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC)); // 13:45:30
                                                             // No periodic flag; alarm at 13:46:00 exactly.
        rtc.write_register(REG_A, 0x20);
        rtc.write_register(REG_HOURS_ALARM, 0x13);
        rtc.write_register(REG_MINUTES_ALARM, 0x46);
        rtc.write_register(REG_SECONDS_ALARM, 0x00);
        rtc.write_register(REG_B, B_24H | B_AIE);
        assert_eq!(rtc.next_irq8_deadline(0), Some(30 * SEC));
        assert_eq!(rtc.irq8_edges_until(30 * SEC - 1), 0);
        assert_eq!(rtc.irq8_edges_until(30 * SEC), 1);
        assert_eq!(rtc.read_register(REG_C), C_IRQF | C_AF | C_UF);
        // Same time tomorrow.
        assert_eq!(rtc.next_irq8_deadline(30 * SEC), Some((30 + 86_400) * SEC));
        // Don't-care hours and minutes: every minute at :15.
        rtc.write_register(REG_HOURS_ALARM, 0xC0);
        rtc.write_register(REG_MINUTES_ALARM, 0xFF);
        rtc.write_register(REG_SECONDS_ALARM, 0x15);
        assert_eq!(rtc.next_irq8_deadline(30 * SEC), Some(45 * SEC));
        // All don't-care: every second.
        rtc.write_register(REG_SECONDS_ALARM, 0xC0);
        assert_eq!(rtc.next_irq8_deadline(30 * SEC), Some(31 * SEC));
        // Hour wildcard, minute and second fixed: 14:10:05.
        rtc.write_register(REG_MINUTES_ALARM, 0x10);
        rtc.write_register(REG_SECONDS_ALARM, 0x05);
        assert_eq!(rtc.next_irq8_deadline(30 * SEC), Some((24 * 60 + 35) * SEC));
        // Earlier hour: tomorrow (10:00:00 from 13:46:00).
        rtc.write_register(REG_HOURS_ALARM, 0x10);
        rtc.write_register(REG_MINUTES_ALARM, 0x00);
        rtc.write_register(REG_SECONDS_ALARM, 0x00);
        let delta = (24 - 3) * 3600 - 46 * 60;
        assert_eq!(rtc.next_irq8_deadline(30 * SEC), Some((30 + delta) * SEC));
        // An impossible alarm never fires.
        rtc.write_register(REG_HOURS_ALARM, 0x25);
        assert_eq!(rtc.next_irq8_deadline(30 * SEC), None);
        // AF without AIE, found over a long gap.
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC));
        rtc.write_register(REG_A, 0x20);
        rtc.write_register(REG_HOURS_ALARM, 0x02);
        rtc.write_register(REG_MINUTES_ALARM, 0x00);
        rtc.write_register(REG_SECONDS_ALARM, 0x00);
        rtc.set_time(12 * 3600 * SEC);
        assert_eq!(rtc.read_register(REG_C), C_UF);
        rtc.set_time(13 * 3600 * SEC);
        assert_eq!(rtc.read_register(REG_C), C_UF | C_AF);
    }

    #[test]
    fn alarm_in_twelve_hour_binary_mode() {
        let mut rtc = Rtc::new(0);
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC)); // 13:45:30
        rtc.write_register(REG_B, B_DM_BINARY | B_AIE);
        rtc.write_register(REG_HOURS_ALARM, 0x81); // 1 PM
        rtc.write_register(REG_MINUTES_ALARM, 45);
        rtc.write_register(REG_SECONDS_ALARM, 40);
        assert_eq!(rtc.next_irq8_deadline(0), Some(10 * SEC));
    }

    #[test]
    fn nvram_and_memory_size() {
        let mut rtc = Rtc::new(128 << 20);
        let word = |rtc: &mut Rtc, lo: u8| {
            u16::from_le_bytes([rtc.read_register(lo), rtc.read_register(lo + 1)])
        };
        assert_eq!(rtc.read_register(0x10), 0);
        assert_eq!(rtc.read_register(0x14), 0x02);
        assert_eq!(word(&mut rtc, 0x15), 640);
        assert_eq!(word(&mut rtc, 0x17), 0xFFFF);
        assert_eq!(word(&mut rtc, 0x30), 0xFFFF);
        assert_eq!(word(&mut rtc, 0x34), (128 - 16) * 16);
        let sum: u16 = (0x10..=0x2D).map(|i| u16::from(rtc.read_register(i))).sum();
        let stored = u16::from_be_bytes([rtc.read_register(0x2E), rtc.read_register(0x2F)]);
        assert_eq!(sum, stored);

        let mut small = Rtc::new(32 << 20);
        assert_eq!(word(&mut small, 0x17), 31 * 1024);
        assert_eq!(word(&mut small, 0x30), 31 * 1024);
        assert_eq!(word(&mut small, 0x34), 16 * 16);
        let mut tiny = Rtc::new(512 << 10);
        assert_eq!(word(&mut tiny, 0x17), 0);
        assert_eq!(word(&mut tiny, 0x34), 0);
        let mut huge = Rtc::new(8 << 30);
        assert_eq!(word(&mut huge, 0x34), 0xFFFF);

        // Read/write bytes through the ports, NMI bit ignored.
        for index in (0x0E..=0x7F).filter(|&i| i != REG_CENTURY) {
            rtc.write(0x70, 1, u32::from(index) | 0x80);
            rtc.write(0x71, 1, u32::from(index) ^ 0x5A);
        }
        for index in (0x0E..=0x7F).filter(|&i| i != REG_CENTURY) {
            rtc.write(0x70, 1, u32::from(index));
            assert_eq!(rtc.read(0x71, 1), u32::from(index) ^ 0x5A);
        }
        // Read-only registers.
        rtc.write_register(REG_D, 0);
        assert_eq!(rtc.read_register(REG_D), D_VRT);
        rtc.write_register(REG_C, 0xF0);
        assert_eq!(rtc.read_register(REG_C), 0);
        rtc.write_register(REG_A, 0xA6);
        assert_eq!(rtc.read_register(REG_A) & 0x7F, 0x26);
        // Word access: index and data at once.
        rtc.write(0x70, 2, 0x7700 | 0x40);
        assert_eq!(rtc.read_register(0x40), 0x77);
        assert_eq!(rtc.read(0x70, 1), 0x40);
    }

    #[test]
    fn shared_rtc_on_a_bus() {
        let rtc = SharedRtc::new(64 << 20);
        let mut bus = PortBus::new();
        rtc.register(&mut bus).unwrap();
        rtc.set_wall_time(u128::from(T0) * u128::from(SEC));
        bus.write(0x70, 1, 0x09).unwrap();
        assert_eq!(bus.read(0x71, 1).unwrap(), 0x24);
        bus.write(0x70, 1, 0x0B).unwrap();
        bus.write(0x71, 1, 0x42).unwrap();
        assert_eq!(rtc.next_irq8_deadline(0), Some(976_563));
        assert_eq!(rtc.irq8_edges_until(SEC), 1);
        bus.write(0x70, 1, 0x0C).unwrap();
        assert_eq!(bus.read(0x71, 1).unwrap(), u32::from(C_IRQF | C_PF | C_UF));
    }
}
