use super::*;

/// Records every access; reads return a value derived from the port.
#[derive(Default)]
struct Recorder {
    log: Vec<(u16, u8, Option<u32>)>,
}

impl PortDevice for Recorder {
    fn read(&mut self, port: u16, size: u8) -> u32 {
        self.log.push((port, size, None));
        0xA5A5_0000 | u32::from(port)
    }

    fn write(&mut self, port: u16, size: u8, value: u32) {
        self.log.push((port, size, Some(value)));
    }
}

fn buffer_sink() -> (SharedBuffer, Box<dyn std::io::Write + Send>) {
    let buf = SharedBuffer::new();
    (buf.clone(), Box::new(buf))
}

// ---------------------------------------------------------------------------
// Bus

#[test]
fn bus_dispatches_to_the_owning_device() {
    let mut bus = PortBus::new();
    let id = bus
        .register(0x60, 4, Box::new(Recorder::default()))
        .unwrap();
    let other = bus
        .register(0x70, 2, Box::new(Recorder::default()))
        .unwrap();
    assert_eq!(bus.read(0x62, 1).unwrap(), 0x62);
    assert_eq!(bus.read(0x61, 2).unwrap(), 0x0061);
    assert_eq!(bus.read(0x60, 4).unwrap(), 0xA5A5_0060);
    bus.write(0x63, 1, 0x1234).unwrap();
    bus.write(0x71, 2, 0xDEAD_BEEF).unwrap();
    assert_eq!(
        bus.device::<Recorder>(id).unwrap().log,
        vec![
            (0x62, 1, None),
            (0x61, 2, None),
            (0x60, 4, None),
            // Values are masked to the access size.
            (0x63, 1, Some(0x34)),
        ]
    );
    assert_eq!(
        bus.device::<Recorder>(other).unwrap().log,
        vec![(0x71, 2, Some(0xBEEF))]
    );
    assert_eq!(bus.device_at(0x63), Some(id));
    assert_eq!(bus.device_at(0x64), None);
    assert_eq!(bus.range(other), Some((0x70, 2)));
    // Wrong concrete type.
    assert!(bus.device_mut::<ExitDevice>(id).is_none());
}

#[test]
fn bus_refuses_overlaps_and_bad_ranges() {
    let mut bus = PortBus::new();
    bus.register(0x3F8, 8, Box::new(Recorder::default()))
        .unwrap();
    let err = bus
        .register(0x3FF, 1, Box::new(Recorder::default()))
        .unwrap_err();
    assert_eq!(
        err,
        IoError::Overlap {
            base: 0x3FF,
            len: 1,
            existing_base: 0x3F8,
            existing_len: 8
        }
    );
    assert!(err.to_string().contains("overlap"));
    assert!(matches!(
        bus.register(0x3F0, 9, Box::new(Recorder::default())),
        Err(IoError::Overlap { .. })
    ));
    // Adjacent ranges are fine.
    bus.register(0x3F0, 8, Box::new(Recorder::default()))
        .unwrap();
    bus.register(0x400, 1, Box::new(Recorder::default()))
        .unwrap();
    assert_eq!(
        bus.register(0x10, 0, Box::new(Recorder::default()))
            .unwrap_err(),
        IoError::InvalidRange { base: 0x10, len: 0 }
    );
    assert!(matches!(
        bus.register(0xFFFF, 2, Box::new(Recorder::default())),
        Err(IoError::InvalidRange { .. })
    ));
    bus.register(0xFFFF, 1, Box::new(Recorder::default()))
        .unwrap();
    assert_eq!(bus.read(0xFFFF, 1).unwrap(), 0xFF);
}

#[test]
fn unassigned_ports_float_high_by_default() {
    let mut bus = PortBus::new();
    assert!(!bus.is_strict());
    assert_eq!(bus.read(0x80, 1).unwrap(), 0xFF);
    assert_eq!(bus.read(0x80, 2).unwrap(), 0xFFFF);
    assert_eq!(bus.read(0x80, 4).unwrap(), 0xFFFF_FFFF);
    bus.write(0x80, 1, 0).unwrap();
    bus.write(0x80, 4, 0).unwrap();
    assert_eq!(bus.take_exit(), None);
}

#[test]
fn unassigned_ports_are_errors_in_strict_mode() {
    let mut bus = PortBus::new();
    bus.set_strict(true);
    assert_eq!(
        bus.read(0x80, 2),
        Err(IoError::Unassigned {
            port: 0x80,
            size: 2,
            write: false
        })
    );
    let err = bus.write(0x1F0, 4, 7).unwrap_err();
    assert_eq!(
        err,
        IoError::Unassigned {
            port: 0x1F0,
            size: 4,
            write: true
        }
    );
    assert_eq!(
        err.to_string(),
        "write of 4 byte(s) at unassigned I/O port 0x01f0"
    );
    // Assigned ports still work.
    bus.register(0x80, 1, Box::new(Recorder::default()))
        .unwrap();
    assert_eq!(bus.read(0x80, 1).unwrap(), 0x80);
}

#[test]
fn invalid_access_sizes_are_rejected() {
    let mut bus = PortBus::new();
    for size in [0u8, 3, 5, 8] {
        assert_eq!(
            bus.read(0x80, size),
            Err(IoError::InvalidSize { port: 0x80, size })
        );
        assert_eq!(
            bus.write(0x80, size, 0),
            Err(IoError::InvalidSize { port: 0x80, size })
        );
    }
}

// ---------------------------------------------------------------------------
// Exit device

#[test]
fn exit_status_math() {
    assert_eq!(exit_status(0), 1);
    assert_eq!(exit_status(1), 3);
    assert_eq!(exit_status(0x41), 0x83);
    assert_eq!(exit_status(0x7FFF_FFFF), -1);
    assert_eq!(exit_status(0x8000_0000), 1);
    assert_eq!(exit_status(0xFFFF_FFFF), -1);
    assert_eq!(exit_status(0x4000_0000), i32::MIN | 1);
}

#[test]
fn exit_device_through_the_bus() {
    let mut bus = PortBus::new();
    bus.register(EXIT_PORT, EXIT_PORT_LEN, Box::new(ExitDevice::new()))
        .unwrap();
    assert_eq!(bus.read(0xF4, 1).unwrap(), 0);
    bus.write(0xF4, 1, 0).unwrap();
    assert!(bus.exit_pending());
    assert_eq!(bus.take_exit(), Some(ExitRequest::Status(1)));
    assert_eq!(bus.take_exit(), None);
    bus.write(0xF4, 4, 1).unwrap();
    assert_eq!(bus.take_exit(), Some(ExitRequest::Status(3)));
    // Byte write: only the low byte counts.
    bus.write(0xF4, 1, 0x1FF).unwrap();
    assert_eq!(bus.take_exit(), Some(ExitRequest::Status(0x1FF)));
    bus.write(0xF6, 2, 0x1_0010).unwrap();
    assert_eq!(bus.take_exit(), Some(ExitRequest::Status(0x21)));
    // The first request wins until taken.
    bus.write(0xF4, 1, 2).unwrap();
    bus.write(0xF4, 1, 3).unwrap();
    assert_eq!(bus.take_exit(), Some(ExitRequest::Status(5)));
    assert_eq!(bus.take_exit(), None);
}

// ---------------------------------------------------------------------------
// Debug console

#[test]
fn debug_console_is_line_buffered() {
    let (buf, sink) = buffer_sink();
    let mut bus = PortBus::new();
    bus.register(DEBUG_CONSOLE_PORT, 1, Box::new(DebugConsole::new(sink)))
        .unwrap();
    assert_eq!(bus.read(0xE9, 1).unwrap(), 0xE9);
    assert_eq!(bus.read(0xE9, 2).unwrap(), 0xFFE9);
    for &b in b"hello" {
        bus.write(0xE9, 1, u32::from(b)).unwrap();
    }
    assert_eq!(buf.contents(), b"");
    bus.write(0xE9, 1, u32::from(b'\n')).unwrap();
    assert_eq!(buf.take(), b"hello\n");
    // Wider writes emit the low byte only.
    bus.write(0xE9, 4, 0x4443_4241).unwrap();
    bus.flush_all();
    assert_eq!(buf.take(), b"A");
}

#[test]
fn output_sink_flushes_large_output_and_on_drop() {
    let (buf, sink) = buffer_sink();
    let mut con = DebugConsole::new(sink);
    for _ in 0..5000 {
        con.write(0xE9, 1, u32::from(b'x'));
    }
    assert_eq!(buf.contents().len(), 4096);
    con.write(0xE9, 1, u32::from(b'y'));
    drop(con);
    assert_eq!(buf.contents().len(), 5001);
    assert_eq!(buf.contents().last(), Some(&b'y'));
}

#[test]
fn output_sink_keeps_write_errors() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut con = DebugConsole::new(Box::new(Broken));
    con.write(0xE9, 1, u32::from(b'\n'));
    let err = con.sink_mut().take_error().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    assert!(con.sink_mut().take_error().is_none());
}

// ---------------------------------------------------------------------------
// UART

const THR: u16 = COM1_PORT;
const RBR: u16 = COM1_PORT;
const IER: u16 = COM1_PORT + 1;
const IIR: u16 = COM1_PORT + 2;
const LCR: u16 = COM1_PORT + 3;
const LSR: u16 = COM1_PORT + 5;
const SCR: u16 = COM1_PORT + 7;

fn uart_bus() -> (PortBus, DeviceId, SharedBuffer, IrqLine) {
    let (buf, sink) = buffer_sink();
    let uart = Uart16550::new(sink);
    let irq = uart.irq_line();
    let mut bus = PortBus::new();
    let id = bus
        .register(COM1_PORT, UART_PORT_LEN, Box::new(uart))
        .unwrap();
    (bus, id, buf, irq)
}

#[test]
fn uart_transmits_to_the_sink() {
    let (mut bus, id, buf, _irq) = uart_bus();
    // Program 115200 8N1 the way a driver does.
    bus.write(LCR, 1, 0x80).unwrap();
    bus.write(COM1_PORT, 1, 0x01).unwrap();
    bus.write(COM1_PORT + 1, 1, 0x00).unwrap();
    assert_eq!(bus.read(COM1_PORT, 1).unwrap(), 0x01);
    assert_eq!(bus.read(COM1_PORT + 1, 1).unwrap(), 0x00);
    bus.write(LCR, 1, 0x03).unwrap();
    assert_eq!(bus.read(LCR, 1).unwrap(), 0x03);
    // THR empty and transmitter idle.
    assert_eq!(bus.read(LSR, 1).unwrap() & 0x60, 0x60);
    for &b in b"Hi!\n" {
        assert_ne!(bus.read(LSR, 1).unwrap() & 0x20, 0);
        bus.write(THR, 1, u32::from(b)).unwrap();
    }
    assert_eq!(buf.take(), b"Hi!\n");
    // Without a newline the output waits for a flush.
    bus.write(THR, 1, u32::from(b'>')).unwrap();
    assert_eq!(buf.contents(), b"");
    bus.device_mut::<Uart16550>(id).unwrap().flush();
    assert_eq!(buf.take(), b">");
    bus.write(THR, 1, u32::from(b'$')).unwrap();
    bus.flush_all();
    assert_eq!(buf.take(), b"$");
    // Scratch register round trip.
    bus.write(SCR, 1, 0x5A).unwrap();
    assert_eq!(bus.read(SCR, 1).unwrap(), 0x5A);
}

#[test]
fn uart_wide_accesses_are_split_into_bytes() {
    let (mut bus, _id, _buf, _irq) = uart_bus();
    bus.write(LCR, 1, 0x83).unwrap();
    // DLL = 0x0C, DLM = 0x00 in one 16-bit write.
    bus.write(COM1_PORT, 2, 0x000C).unwrap();
    assert_eq!(bus.read(COM1_PORT, 2).unwrap(), 0x000C);
    bus.write(LCR, 1, 0x03).unwrap();
    // Past the last register reads float high.
    let v = bus.read(SCR, 4).unwrap();
    assert_eq!(v >> 8, 0xFF_FFFF);
}

#[test]
fn uart_raises_interrupts_on_the_irq_line() {
    let (mut bus, id, _buf, irq) = uart_bus();
    assert!(!irq.is_raised());
    // Enabling the THR-empty interrupt fires it right away.
    bus.write(IER, 1, 0x02).unwrap();
    assert!(irq.take());
    assert!(!irq.is_raised());
    assert_eq!(bus.read(IIR, 1).unwrap() & 0x0F, 0x02);
    bus.write(THR, 1, u32::from(b'a')).unwrap();
    assert!(bus.device::<Uart16550>(id).unwrap().take_interrupt());
}

#[test]
fn uart_receives_queued_input_without_loss() {
    let (mut bus, id, _buf, irq) = uart_bus();
    bus.write(IER, 1, 0x01).unwrap();
    assert!(!irq.take());
    assert_eq!(bus.read(LSR, 1).unwrap() & 1, 0);
    let input: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
    let uart = bus.device_mut::<Uart16550>(id).unwrap();
    uart.enqueue_input(&input);
    assert_eq!(uart.pending_input(), 200);
    assert!(irq.take());
    let mut got = Vec::new();
    while bus.read(LSR, 1).unwrap() & 1 != 0 {
        got.push(bus.read(RBR, 1).unwrap() as u8);
    }
    assert_eq!(got, input);
    assert_eq!(bus.device_mut::<Uart16550>(id).unwrap().pending_input(), 0);
}

#[test]
fn devices_and_bus_are_send() {
    fn is_send<T: Send>() {}
    is_send::<PortBus>();
    is_send::<Uart16550>();
    is_send::<DebugConsole>();
    is_send::<IrqLine>();
}
