//! Buffered output sinks for console-like devices.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// Buffer size after which output is flushed even without a newline.
const FLUSH_THRESHOLD: usize = 4096;

/// Line-buffered byte sink in front of a `Write` destination.
///
/// Bytes are collected and written out when a `'\n'` arrives, when 4 KiB
/// have accumulated, on [`flush`](Self::flush) and on drop.  Write errors of
/// the destination are not reported to the guest: the affected bytes are
/// dropped and the error is kept for [`take_error`](Self::take_error).
pub struct OutputSink {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSink")
            .field("buffered", &self.buf.len())
            .field("error", &self.error)
            .finish()
    }
}

impl OutputSink {
    /// Wraps `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        OutputSink {
            buf: Vec::with_capacity(256),
            out,
            error: None,
        }
    }

    /// Appends one byte, flushing at end of line.
    #[inline]
    pub fn push(&mut self, byte: u8) {
        self.buf.push(byte);
        if byte == b'\n' || self.buf.len() >= FLUSH_THRESHOLD {
            self.flush();
        }
    }

    /// Writes the buffered bytes to the destination and flushes it.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let result = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        self.buf.clear();
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
    }

    /// Returns (and clears) the first write error of the destination.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }
}

impl Drop for OutputSink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A cloneable in-memory `Write` destination: every clone appends to the
/// same buffer.  Handy for tests and for capturing guest output.
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything written so far, leaving the buffer empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
