//! `ringfold`: run a 32-bit x86 guest natively in this unprivileged process.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringfold_devices::{DebugConsole, ExitDevice, PortBus, Uart16550};
use ringfold_vmm::cpu::Cpu;
use ringfold_vmm::vm::Vm;
use ringfold_vmm::Stop;
use ringfold_host::layout::MONITOR_START;
use std::path::PathBuf;
use std::process::ExitCode;

mod kernel_cache;

/// Exit statuses of `ringfold run` besides the guest's own (odd values from the exit device).
mod status {
    pub const SETUP: u8 = 66;
    pub const TRIPLE_FAULT: u8 = 80;
    pub const RESET: u8 = 81;
    pub const HALTED: u8 = 82;
    pub const PANIC: u8 = 83;
    pub const UNSUPPORTED: u8 = 84;
    pub const IO: u8 = 86;
}

#[derive(Parser)]
#[command(name = "ringfold", version, about = "Run 32-bit x86 guests natively, without hardware virtualization")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a guest kernel.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kernel to boot: a Linux bzImage (32-bit boot protocol >= 2.04) or a Multiboot v1
    /// ELF32 kernel. Without --kernel/--guest: the default Debian i386 guest (fetched by
    /// scripts/fetch-debian-guest.sh on first use) with an interactive busybox shell.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Boot one of the project's conformance guests (guests/NAME.S) built with this binary.
    #[arg(long, conflicts_with = "kernel")]
    guest: Option<String>,
    /// Kernel command line.
    #[arg(long, default_value = "")]
    append: String,
    /// Initial ramdisk (Linux initrd, or the first Multiboot module).
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(2..=3072))]
    mem: u64,
    /// Treat accesses to unassigned I/O ports as errors instead of reading all ones.
    #[arg(long)]
    strict_io: bool,
    /// Print monitor statistics to stderr when the guest stops.
    #[arg(long)]
    stats: bool,
    /// Drop the shadow of an address space at every guest MOV CR3 instead of keeping it
    /// for a switch back (for measurements).
    #[arg(long)]
    no_shadow_cache: bool,
    /// Leave out the local APIC, the IOAPIC and the MP table: interrupts reach the CPU
    /// through the 8259 PIC only and CPUID reports no APIC.
    #[arg(long)]
    no_apic: bool,
    /// Write /tmp/perf-PID.map naming each translated block `guest:EIP`, for `perf report`
    /// (profiling; boot with `nokaslr` to match addresses with the guest's /proc/kallsyms).
    #[arg(long)]
    perf_map: bool,
    /// Boot a bzImage through its own decompressor, run in the guest, instead of inflating
    /// its XZ payload on the host (cached for later boots) and entering the kernel directly.
    #[arg(long)]
    guest_decompress: bool,
    /// Do not read or write the cache of decompressed kernels ($RINGFOLD_CACHE_DIR, else
    /// $XDG_CACHE_HOME/ringfold, else ~/.cache/ringfold).
    #[arg(long)]
    no_kernel_cache: bool,
    /// Do not install the seccomp filter (debugging only).
    #[arg(long, hide = true)]
    no_seccomp: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(a) => match run(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ringfold: {e:#}");
                ExitCode::from(status::SETUP)
            }
        },
    }
}

/// Reads the terminal (or whatever stdin is) and queues bytes for the guest's UART.
/// Ctrl-A x queues `None` (quit); Ctrl-A Ctrl-A sends one Ctrl-A.
fn console_reader(queue: ringfold_vmm::vm::ConsoleQueue) {
    use std::io::Read;
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 256];
    let mut escape = false;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut q = match queue.lock() {
            Ok(q) => q,
            Err(_) => return,
        };
        for &b in &buf[..n] {
            match (escape, b) {
                (false, 0x01) => escape = true,
                (true, b'x') => q.push_back(None),
                (true, b) => {
                    escape = false;
                    q.push_back(Some(b));
                }
                (false, b) => q.push_back(Some(b)),
            }
            if b != 0x01 {
                escape = false;
            }
        }
    }
}

/// Path of a conformance guest assembled by build.rs for this build.
fn built_in_guest(name: &str) -> Result<PathBuf> {
    let dir = PathBuf::from(env!("RINGFOLD_GUESTS_DIR"));
    let names = std::fs::read_to_string(dir.join("list.txt")).unwrap_or_default();
    if !names.lines().any(|n| n == name) {
        bail!("no conformance guest named {name:?}; available: {}", names.lines().collect::<Vec<_>>().join(", "));
    }
    Ok(dir.join(format!("{name}.elf")))
}

/// The default Linux guest (cache/guest in the source tree), fetched by
/// scripts/fetch-debian-guest.sh if it is not there yet.
fn default_guest() -> Result<(PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("cache/guest");
    let (kernel, initrd) = (dir.join("vmlinuz-686"), dir.join("initramfs.cpio.gz"));
    if !(kernel.exists() && initrd.exists()) {
        eprintln!("ringfold: no guest given; fetching the default Debian i386 guest into {}", dir.display());
        let script = root.join("scripts/fetch-debian-guest.sh");
        let st = std::process::Command::new("bash").arg(&script).arg(&dir).status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        if !st.success() || !kernel.exists() {
            bail!("the default guest could not be built ({} failed); pass --kernel FILE instead", script.display());
        }
    }
    Ok((kernel, initrd))
}

fn run(mut a: RunArgs) -> Result<ExitCode> {
    let mut default_initrd = None;
    let kernel_path = match (a.kernel, &a.guest) {
        (Some(k), _) => k,
        (None, Some(name)) => built_in_guest(name)?,
        (None, None) => {
            // The default guest: Debian's 686 kernel with the busybox initramfs, built by
            // the recipe script on first use.
            let (kernel, initrd) = default_guest()?;
            if a.initrd.is_none() {
                default_initrd = Some(initrd);
            }
            if a.append.is_empty() {
                a.append = "console=ttyS0 quiet".into();
            }
            kernel
        }
    };
    let initrd_path = a.initrd.clone().or(default_initrd);
    let kernel = std::fs::read(&kernel_path).with_context(|| format!("cannot read kernel {}", kernel_path.display()))?;
    let initrd = match &initrd_path {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read initrd {}", p.display()))?),
        None => None,
    };
    let mut ports = PortBus::new();
    ports.set_strict(a.strict_io);
    ports.register(ringfold_devices::DEBUG_CONSOLE_PORT, 1, Box::new(DebugConsole::stdout()))?;
    ports.register(ringfold_devices::EXIT_PORT, ringfold_devices::EXIT_PORT_LEN, Box::new(ExitDevice::new()))?;
    // The console is watched for Linux's "reboot: Power down" / "System halted" / panic
    // lines: they say why the guest stopped.
    let events = ringfold_devices::GuestEvents::default();
    let uart = Uart16550::new(Box::new(ringfold_devices::ConsoleWatch::new(std::io::stdout(), events.clone())));
    let uart_irq = uart.irq_line();
    let uart_id = ports.register(ringfold_devices::COM1_PORT, ringfold_devices::UART_PORT_LEN, Box::new(uart))?;
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    ringfold_host::timer::start_tsc_clock();
    let mut platform = ringfold_vmm::platform::PcPlatform::new(&mut ports, ringfold_host::timer::now_ns, a.mem << 20, wall)?;
    platform.connect(4, uart_irq);
    let mut vm = Vm::new(a.mem << 20, ports).context("cannot create the VM")?;
    vm.set_shadow_cache(!a.no_shadow_cache);
    if a.perf_map {
        let path = vm.enable_perf_map().context("cannot create the perf map")?;
        eprintln!("ringfold: writing perf symbols to {}", path.display());
    }
    if !a.no_apic {
        let apic = platform.attach_apics(&mut vm.m.mmio, ringfold_host::timer::tsc_delta_ns).context("cannot register the APICs")?;
        vm.m.apic = Some(Box::new(apic));
    }
    vm.platform = Some(Box::new(platform));
    vm.guest_events = Some(events.clone());
    vm.m.mmio
        .register(ringfold_devices::TESTDEV_BASE, 0x1000, Box::new(ringfold_devices::TestDevice::new()))
        .context("cannot register the MMIO test device")?;
    let is_bzimage = kernel.len() > 0x206 && &kernel[0x202..0x206] == b"HdrS";
    if is_bzimage {
        use ringfold_boot::linux;
        let e820 = linux::default_e820(a.mem << 20);
        // Linux maps its fixmap and CPU entry area at the top of the address space, where
        // ringfold's monitor region is; `reservetop` (a standard boot parameter made for
        // hypervisors) moves them below it. The platform has no ISA bus cards, so no ISA
        // Plug and Play ones: `noisapnp` tells the kernel, which would otherwise run the
        // isolation protocol on 8 read-data ports with fixed delays (0.35 s of every boot).
        let cmdline = format!("{} reservetop={}M noisapnp", a.append, (0x1_0000_0000u64 - MONITOR_START as u64) >> 20);
        let cmdline = cmdline.trim_start();
        let hdr = linux::parse_setup_header(&kernel).with_context(|| format!("cannot load {}", kernel_path.display()))?;
        let payload = ringfold_boot::vmlinux::xz_payload(&kernel, hdr.setup_size, hdr.version).filter(|_| !a.guest_decompress);
        let lb = match payload {
            // XZ (Debian's kernels): inflated on the host, or taken from the cache.
            Some((payload, size)) => {
                let dir = if a.no_kernel_cache { None } else { kernel_cache::cache_dir() };
                let (image, source) = kernel_cache::decompressed(dir.as_deref(), payload, size)?;
                use std::hash::BuildHasher;
                let random = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
                let mut load = |image: &[u8]| linux::load_linux_decompressed(vm.ram_mut(), &kernel, image, random, cmdline, initrd.as_deref(), &e820);
                match (load(&image), &dir) {
                    // A damaged cache entry: forgotten, and the payload inflated again (a
                    // failed load leaves guest RAM untouched).
                    (Err(e), Some(d)) if source == kernel_cache::Source::Cache => {
                        eprintln!("ringfold: warning: the cached decompressed kernel in {} does not load ({e}); inflating it again", d.display());
                        kernel_cache::forget(d, payload, size);
                        load(&kernel_cache::decompressed(dir.as_deref(), payload, size)?.0)
                    }
                    (r, _) => r,
                }
            }
            None => linux::load_linux(vm.ram_mut(), &kernel, cmdline, initrd.as_deref(), &e820),
        }
        .with_context(|| format!("cannot load {}", kernel_path.display()))?;
        if !a.no_apic {
            // Without ACPI tables, the MP table is how Linux learns about the APICs and the
            // ISA IRQ wiring. 0xF0000 is in the BIOS area Linux scans for the floating
            // pointer and is e820-reserved (`default_e820`), so the kernel keeps it intact.
            use ringfold_boot::mptable::{build_mp_table, MP_TABLE_DEFAULT_BASE};
            let leaf1 = ringfold_vmm::cpuid::cpuid(1, 0, true);
            let table = build_mp_table(MP_TABLE_DEFAULT_BASE, leaf1[0], leaf1[3]);
            let at = MP_TABLE_DEFAULT_BASE as usize;
            vm.ram_mut()
                .get_mut(at..at + table.len())
                .context("guest RAM does not cover the MP table at 0xF0000")?
                .copy_from_slice(&table);
        }
        *vm.cpu_mut() = Cpu::linux_entry(lb.entry, lb.esi, linux::BOOT_GDT_ADDR, linux::BOOT_GDT_LIMIT, linux::BOOT_STACK_TOP);
    } else {
        let modules: Vec<ringfold_boot::Module> =
            initrd.iter().map(|d| ringfold_boot::Module::new(d, "initrd")).collect();
        let boot = ringfold_boot::load_multiboot(vm.ram_mut(), &kernel, &a.append, &modules)
            .with_context(|| format!("cannot load {}", kernel_path.display()))?;
        *vm.cpu_mut() = Cpu::multiboot_entry(boot.entry, boot.eax, boot.ebx);
    }
    if !a.no_seccomp {
        vm.lock_down().context("cannot install the seccomp filter")?;
    }
    // Interactive console: keys go to the guest's serial port; Ctrl-A x quits (as in QEMU).
    let _raw = ringfold_host::terminal::RawMode::enable();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    vm.input = Some((queue.clone(), uart_id));
    std::thread::spawn(move || console_reader(queue));
    if a.stats {
        vm.exit_profile = Some(Default::default());
    }
    let stop = vm.run();
    vm.flush_perf_map();
    drop(_raw);
    if a.stats {
        eprintln!("ringfold: stats: {:?} {:?} {:?}", vm.stats, vm.tc_stats(), vm.mmu_stats());
        if let Some(p) = vm.exit_profile.take() {
            let mut v: Vec<_> = p.into_iter().collect();
            v.sort_by_key(|e| std::cmp::Reverse(e.1));
            let top: Vec<String> = v.iter().take(16).map(|((m, cpl), n)| format!("{m:?}@{cpl} {n}")).collect();
            eprintln!("ringfold: interpreted exits (mnemonic@CPL count): {}", top.join(", "));
        }
    }
    // A halted CPU that cannot wake after the kernel said it powers off / halts.
    let announced = match events.get() {
        ringfold_devices::GuestEvent::PowerOff => Some("powered off"),
        ringfold_devices::GuestEvent::Halt => Some("halted the system"),
        _ => None,
    };
    Ok(match stop {
        Stop::Exit(s) => ExitCode::from(s as u8),
        Stop::HaltedForever(_) if announced.is_some() => {
            eprintln!("ringfold: the guest {}", announced.unwrap_or_default());
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("ringfold: {other}");
            ExitCode::from(match other {
                Stop::TripleFault { .. } => status::TRIPLE_FAULT,
                Stop::HaltedForever(_) => status::HALTED,
                Stop::Io { .. } => status::IO,
                Stop::UserQuit => 0,
                Stop::Reset => status::RESET,
                Stop::GuestPanic => status::PANIC,
                _ => status::UNSUPPORTED,
            })
        }
    })
}
