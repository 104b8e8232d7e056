//! 16550A UART (COM port) built on `vm_superio::Serial`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

use crate::{OutputSink, PortDevice};

/// Register offset of RBR/THR (and DLL when DLAB is set).
const DATA_OFFSET: u8 = 0;

/// An edge-triggered interrupt line: the UART raises it, the monitor polls
/// and clears it.  Cheap to clone; all clones share the same flag, so the
/// monitor can keep one after handing the UART to a [`PortBus`](crate::PortBus).
#[derive(Debug, Clone, Default)]
pub struct IrqLine(Arc<AtomicBool>);

impl IrqLine {
    /// A new, lowered line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the line.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the line has been raised since the last [`take`](Self::take).
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Returns whether the line was raised, and lowers it.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

impl Trigger for IrqLine {
    type E = Infallible;

    fn trigger(&self) -> Result<(), Infallible> {
        self.raise();
        Ok(())
    }
}

/// Adapter giving `Serial` a line-buffered destination.  `Serial` flushes
/// after every byte; that flush is deliberately a no-op here (the sink
/// flushes itself at end of line and on [`Uart16550::flush`]).
struct UartOut(OutputSink);

impl Write for UartOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        for &b in data {
            self.0.push(b);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A 16550A UART occupying 8 consecutive ports.
///
/// The register is selected by the low 3 bits of the port number, so the
/// UART must be registered at an 8-aligned base (all standard COM bases
/// are).  Wider accesses are split into byte accesses to consecutive
/// registers; bytes past the last register read as 0xFF and are ignored on
/// write.
///
/// Guest writes to THR go to the output sink (line buffered, see
/// [`OutputSink`]).  Input is queued with [`enqueue_input`](Self::enqueue_input);
/// bytes beyond the 64-byte receive FIFO wait in an unbounded queue and are
/// moved into the FIFO as the guest reads.  Interrupts are signalled on an
/// [`IrqLine`].
pub struct Uart16550 {
    serial: Serial<IrqLine, NoEvents, UartOut>,
    irq: IrqLine,
    pending_input: VecDeque<u8>,
}

impl std::fmt::Debug for Uart16550 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uart16550")
            .field("irq", &self.irq)
            .field("pending_input", &self.pending_input.len())
            .finish_non_exhaustive()
    }
}

impl Uart16550 {
    /// A UART transmitting to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let irq = IrqLine::new();
        Uart16550 {
            serial: Serial::new(irq.clone(), UartOut(OutputSink::new(out))),
            irq,
            pending_input: VecDeque::new(),
        }
    }

    /// A UART transmitting to the process's standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    /// A handle to the interrupt line (shares state with the UART).
    pub fn irq_line(&self) -> IrqLine {
        self.irq.clone()
    }

    /// Returns whether an interrupt was raised since the last call.
    pub fn take_interrupt(&self) -> bool {
        self.irq.take()
    }

    /// Queues bytes for the guest to receive.  Never drops input.
    pub fn enqueue_input(&mut self, bytes: &[u8]) {
        self.pending_input.extend(bytes);
        self.refill();
    }

    /// Number of queued input bytes not yet read by the guest (including
    /// those in the receive FIFO).
    pub fn pending_input(&self) -> usize {
        self.pending_input.len() + self.serial_fifo_len()
    }

    /// Access to the output sink (e.g. for [`OutputSink::take_error`]).
    pub fn sink_mut(&mut self) -> &mut OutputSink {
        &mut self.serial.writer_mut().0
    }

    fn serial_fifo_len(&self) -> usize {
        // `Serial` exposes free space only; its FIFO holds 64 bytes.
        64usize.saturating_sub(self.serial.fifo_capacity())
    }

    /// Moves queued input into the receive FIFO as space allows.  In
    /// loopback mode `Serial` accepts nothing; input stays queued.
    fn refill(&mut self) {
        while !self.pending_input.is_empty() && self.serial.fifo_capacity() > 0 {
            let (front, _) = self.pending_input.as_slices();
            match self.serial.enqueue_raw_bytes(front) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.pending_input.drain(..n);
                }
            }
        }
    }

    fn read_reg(&mut self, offset: u8) -> u8 {
        let value = self.serial.read(offset);
        if offset == DATA_OFFSET && !self.pending_input.is_empty() {
            self.refill();
        }
        value
    }

    fn write_reg(&mut self, offset: u8, value: u8) {
        // The destination never fails (errors are kept by the sink) and the
        // trigger is infallible.
        let _ = self.serial.write(offset, value);
        if !self.pending_input.is_empty() {
            // E.g. leaving loopback mode lets queued input flow again.
            self.refill();
        }
    }
}

impl PortDevice for Uart16550 {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        let first = (port & 7) as u8;
        let mut value = 0u32;
        for i in 0..size.min(4) {
            let offset = first + i;
            let byte = if offset < 8 {
                self.read_reg(offset)
            } else {
                0xFF
            };
            value |= u32::from(byte) << (8 * i);
        }
        value
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        let first = (port & 7) as u8;
        for i in 0..size.min(4) {
            let offset = first + i;
            if offset < 8 {
                self.write_reg(offset, (value >> (8 * i)) as u8);
            }
        }
    }

    fn flush(&mut self) {
        self.serial.writer_mut().0.flush();
    }
}
