//! Watches a guest console's output for the lines by which a Linux kernel announces that
//! it stopped for good (power-off, halt, panic), so that the monitor can end with a clear
//! message and status instead of idling forever (a panicked kernel loops with interrupts
//! on; a powered-off one halts with interrupts off, like any hung guest).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// What the guest announced last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestEvent {
    None = 0,
    /// "reboot: Power down" (poweroff).
    PowerOff = 1,
    /// "reboot: System halted" (halt).
    Halt = 2,
    /// "---[ end Kernel panic" (the last line of a panic report).
    Panic = 3,
}

/// Shared, lock-free view of the last announcement (the console writer and the VM loop
/// may sit on different threads).
#[derive(Clone, Debug, Default)]
pub struct GuestEvents(Arc<AtomicU8>);

impl GuestEvents {
    pub fn get(&self) -> GuestEvent {
        match self.0.load(Ordering::Relaxed) {
            1 => GuestEvent::PowerOff,
            2 => GuestEvent::Halt,
            3 => GuestEvent::Panic,
            _ => GuestEvent::None,
        }
    }
    fn set(&self, e: GuestEvent) {
        self.0.store(e as u8, Ordering::Relaxed);
    }
}

/// Longest line prefix kept for matching (console lines are short; a timestamp prefix
/// like "[   12.345678] " comes first).
const KEEP: usize = 160;

/// A `Write` that passes everything through to `out` and classifies complete lines.
pub struct ConsoleWatch<W: Write> {
    out: W,
    line: Vec<u8>,
    events: GuestEvents,
}

impl<W: Write> ConsoleWatch<W> {
    pub fn new(out: W, events: GuestEvents) -> Self {
        ConsoleWatch { out, line: Vec::with_capacity(KEEP), events }
    }

    fn end_line(&mut self) {
        let l = &self.line[..];
        let has = |pat: &[u8]| l.windows(pat.len()).any(|w| w == pat);
        if has(b"---[ end Kernel panic") {
            self.events.set(GuestEvent::Panic);
        } else if has(b"reboot: Power down") {
            self.events.set(GuestEvent::PowerOff);
        } else if has(b"reboot: System halted") {
            self.events.set(GuestEvent::Halt);
        }
        self.line.clear();
    }
}

impl<W: Write> Write for ConsoleWatch<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        for &b in data {
            if b == b'\n' || b == b'\r' {
                if !self.line.is_empty() {
                    self.end_line();
                }
            } else if self.line.len() < KEEP {
                self.line.push(b);
            }
        }
        self.out.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(chunks: &[&[u8]]) -> (GuestEvent, Vec<u8>) {
        let ev = GuestEvents::default();
        let mut w = ConsoleWatch::new(Vec::new(), ev.clone());
        for c in chunks {
            w.write_all(c).unwrap();
        }
        (ev.get(), w.out)
    }

    #[test]
    fn classifies_linux_stop_lines_and_passes_bytes_through() {
        let (e, out) = feed(&[b"[   3.1] reboot: Power", b" down\r\n"]);
        assert_eq!(e, GuestEvent::PowerOff);
        assert_eq!(out, b"[   3.1] reboot: Power down\r\n");
        assert_eq!(feed(&[b"[ 1.0] reboot: System halted\n"]).0, GuestEvent::Halt);
        let panic: &[&[u8]] = &[
            b"[ 2.0] Kernel panic - not syncing: Attempted to kill init!\r\n",
            b"[ 2.0] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---\r\n",
        ];
        assert_eq!(feed(panic).0, GuestEvent::Panic);
        // The first line alone is not the end of the report yet.
        assert_eq!(feed(&panic[..1]).0, GuestEvent::None);
        // An incomplete line is not classified; ordinary output changes nothing.
        assert_eq!(feed(&[b"reboot: Power down"]).0, GuestEvent::None);
        assert_eq!(feed(&[b"echo reboot: Power\n", b"down\n"]).0, GuestEvent::None);
    }

    #[test]
    fn long_lines_do_not_grow_without_bound() {
        let ev = GuestEvents::default();
        let mut w = ConsoleWatch::new(io::sink(), ev.clone());
        w.write_all(&vec![b'x'; 100_000]).unwrap();
        assert!(w.line.len() <= KEEP);
        w.write_all(b"\n[ 9.9] reboot: System halted\n").unwrap();
        assert_eq!(ev.get(), GuestEvent::Halt);
    }
}
