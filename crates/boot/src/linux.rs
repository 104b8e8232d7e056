//! Linux/x86 32-bit boot protocol loader for bzImage kernels.
//!
//! Implements the boot loader side of the protocol described in the kernel's
//! `Documentation/arch/x86/boot.rst` for protocol versions 2.04 and later,
//! entering the kernel through the *32-bit boot protocol*: the real-mode setup
//! code is never run, the loader builds the zero page (`struct boot_params`)
//! itself and jumps to the protected-mode kernel (`code32_start`), or, given the
//! decompressed kernel ([`load_linux_decompressed`], [`crate::vmlinux`]), places and
//! relocates it itself and jumps to its `startup_32`.
//!
//! Like the Multiboot loader this is pure logic: guest RAM is a `&mut [u8]`
//! covering guest-physical `[0, ram.len())`, all structures are written with
//! explicit little-endian offsets, nothing panics on malformed input and guest
//! RAM is only modified once the whole layout has been validated.
//!
//! # Guest memory layout produced
//!
//! | guest-physical range                     | contents                                   |
//! |------------------------------------------|--------------------------------------------|
//! | `[0x1000, 0x1020)`                       | boot GDT ([`BOOT_GDT`], 4 descriptors)     |
//! | `[0x1020, 0x7000)`                       | free; suggested stack, ESP = [`BOOT_STACK_TOP`] = 0x7000 |
//! | `[0x7000, 0x8000)`                       | zero page (`struct boot_params`)           |
//! | `[0x20000, 0x20000 + len + 1)`           | command line, NUL terminated (below 0x9FC00) |
//! | `[0x100000, 0x100000 + pm_size)`         | protected-mode kernel (the file from offset `(setup_sects + 1) * 512`) |
//! | `[runtime_start, runtime_start + init_size)` | reserved for in-place decompression (protocol >= 2.10), never used for the initrd |
//! | page aligned, as high as possible         | initrd, below `min(initrd_addr_max + 1, RAM end)` |
//!
//! The real-mode setup code is not loaded.  `runtime_start` is computed as the
//! protocol document prescribes: `pref_address` for non-relocatable kernels,
//! `align_up(max(0x100000, pref_address), kernel_alignment)` for relocatable
//! ones (16 MiB for Debian's 686 kernels, so they need a few tens of MiB of RAM).
//!
//! # Register state at entry
//!
//! 32-bit protected mode, paging off (CR0 = PE | ET), EFLAGS = 0x2 (IF and
//! DF clear), GDTR = { base [`BOOT_GDT_ADDR`], limit [`BOOT_GDT_LIMIT`] },
//! CS = [`BOOT_CS`] (0x10, flat 4 GiB execute/read), DS = ES = SS = FS = GS =
//! [`BOOT_DS`] (0x18, flat 4 GiB read/write), EIP = [`LinuxBoot::entry`],
//! ESI = [`LinuxBoot::esi`] (the zero page), EBP = EDI = EBX = 0 (EAX, ECX,
//! EDX are free; 0 is fine), ESP = [`BOOT_STACK_TOP`] (the kernel does not
//! need a stack from the loader, it uses `boot_params.scratch` first).

use thiserror::Error;

use super::{align_up, read_u16, read_u32, Ram};

const MIB: u64 = 1024 * 1024;
const PAGE_SIZE: u64 = 0x1000;
const FOUR_GIB: u64 = 1 << 32;

/// Where the protected-mode kernel is loaded (and `code32_start` of a bzImage).
pub const KERNEL_LOAD_ADDR: u32 = 0x10_0000;
/// Guest-physical address of the zero page (`struct boot_params`).
pub const ZERO_PAGE_ADDR: u32 = 0x7000;
/// Size of the zero page.
pub const ZERO_PAGE_SIZE: u32 = 4096;
/// Guest-physical address of the kernel command line.
pub const CMDLINE_ADDR: u32 = 0x2_0000;
/// The command line (including its NUL) must end at or below this address
/// (the start of the EBDA in [`default_e820`]).
pub const CMDLINE_LIMIT: u32 = 0x9_FC00;
/// Guest-physical address of the boot GDT written by [`load_linux`].
pub const BOOT_GDT_ADDR: u32 = 0x1000;
/// GDTR limit for the boot GDT (4 descriptors).
pub const BOOT_GDT_LIMIT: u16 = 4 * 8 - 1;
/// The boot GDT: null, unused, `__BOOT_CS` (flat 32-bit code, DPL 0,
/// accessed), `__BOOT_DS` (flat 32-bit data, DPL 0, accessed).
pub const BOOT_GDT: [u64; 4] = [0, 0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF];
/// `__BOOT_CS`: code selector expected by the 32-bit boot protocol.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`: data selector expected by the 32-bit boot protocol.
pub const BOOT_DS: u16 = 0x18;
/// Suggested initial ESP (grows down below the zero page, above the GDT).
pub const BOOT_STACK_TOP: u32 = 0x7000;

/// Lowest boot protocol version supported (2.04: `syssize` is 32 bits).
pub const MIN_PROTOCOL: u16 = 0x0204;
/// `type_of_loader` value written: 0xFF, "undefined" boot loader.
pub const TYPE_OF_LOADER: u8 = 0xFF;
/// `heap_end_ptr` value written (heap end 0xE000 relative to the real-mode
/// code, minus 0x200), as in the protocol's sample configuration.
pub const HEAP_END_PTR: u16 = 0xE000 - 0x200;
/// `vid_mode` value written: 0xFFFF, "normal" (no video mode selection).
pub const VID_MODE_NORMAL: u16 = 0xFFFF;
/// `initrd_addr_max` assumed for protocol versions before 2.03.
pub const DEFAULT_INITRD_ADDR_MAX: u32 = 0x37FF_FFFF;
/// `cmdline_size` assumed for protocol versions before 2.06.
pub const DEFAULT_CMDLINE_SIZE: u32 = 255;
/// Number of e820 entries the zero page can hold.
pub const E820_MAX_ENTRIES: usize = 128;
/// Size of one e820 entry in the zero page (`addr: u64, size: u64, type: u32`, packed).
pub const E820_ENTRY_SIZE: u32 = 20;

/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000 (bzImage).
pub const LOADED_HIGH: u8 = 0x01;
/// `loadflags` bit 1: set by the kernel when KASLR is in use.
pub const KASLR_FLAG: u8 = 0x02;
/// `loadflags` bit 5: suppress early messages.
pub const QUIET_FLAG: u8 = 0x20;
/// `loadflags` bit 6: do not reload segment registers at the 32-bit entry (obsolete).
pub const KEEP_SEGMENTS: u8 = 0x40;
/// `loadflags` bit 7: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 0x80;
/// `xloadflags` bit 0: the kernel is a 64-bit kernel.
pub const XLF_KERNEL_64: u16 = 0x0001;

/// e820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// e820 type: ACPI tables (reclaimable).
pub const E820_ACPI: u32 = 3;
/// e820 type: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// e820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// Byte offsets inside the zero page (`struct boot_params`).  The setup
/// header fields (0x1F1 and up) have the same offsets in the bzImage file.
pub mod zp {
    pub const EXT_MEM_K: u32 = 0x002;
    pub const EXT_RAMDISK_IMAGE: u32 = 0x0C0;
    pub const EXT_RAMDISK_SIZE: u32 = 0x0C4;
    pub const EXT_CMD_LINE_PTR: u32 = 0x0C8;
    pub const ALT_MEM_K: u32 = 0x1E0;
    pub const SCRATCH: u32 = 0x1E4;
    pub const E820_ENTRIES: u32 = 0x1E8;
    pub const SENTINEL: u32 = 0x1EF;
    /// Start of `struct setup_header`.
    pub const SETUP_HEADER: u32 = 0x1F1;
    pub const SETUP_SECTS: u32 = 0x1F1;
    pub const ROOT_FLAGS: u32 = 0x1F2;
    pub const SYSSIZE: u32 = 0x1F4;
    pub const VID_MODE: u32 = 0x1FA;
    pub const ROOT_DEV: u32 = 0x1FC;
    pub const BOOT_FLAG: u32 = 0x1FE;
    pub const JUMP: u32 = 0x200;
    pub const HEADER: u32 = 0x202;
    pub const VERSION: u32 = 0x206;
    pub const KERNEL_VERSION: u32 = 0x20E;
    pub const TYPE_OF_LOADER: u32 = 0x210;
    pub const LOADFLAGS: u32 = 0x211;
    pub const CODE32_START: u32 = 0x214;
    pub const RAMDISK_IMAGE: u32 = 0x218;
    pub const RAMDISK_SIZE: u32 = 0x21C;
    pub const HEAP_END_PTR: u32 = 0x224;
    pub const EXT_LOADER_VER: u32 = 0x226;
    pub const EXT_LOADER_TYPE: u32 = 0x227;
    pub const CMD_LINE_PTR: u32 = 0x228;
    pub const INITRD_ADDR_MAX: u32 = 0x22C;
    pub const KERNEL_ALIGNMENT: u32 = 0x230;
    pub const RELOCATABLE_KERNEL: u32 = 0x234;
    pub const MIN_ALIGNMENT: u32 = 0x235;
    pub const XLOADFLAGS: u32 = 0x236;
    pub const CMDLINE_SIZE: u32 = 0x238;
    pub const HARDWARE_SUBARCH: u32 = 0x23C;
    pub const HARDWARE_SUBARCH_DATA: u32 = 0x240;
    pub const PAYLOAD_OFFSET: u32 = 0x248;
    pub const PAYLOAD_LENGTH: u32 = 0x24C;
    pub const SETUP_DATA: u32 = 0x250;
    pub const PREF_ADDRESS: u32 = 0x258;
    pub const INIT_SIZE: u32 = 0x260;
    pub const HANDOVER_OFFSET: u32 = 0x264;
    pub const KERNEL_INFO_OFFSET: u32 = 0x268;
    /// End of the setup header as defined by protocol 2.15.
    pub const SETUP_HEADER_END_2_15: u32 = 0x26C;
    /// First byte after the space `struct boot_params` reserves for the
    /// setup header (`edd_mbr_sig_buffer`); header copies are clamped here.
    pub const SETUP_HEADER_LIMIT: u32 = 0x290;
    pub const E820_TABLE: u32 = 0x2D0;
}

/// One entry of the BIOS e820 memory map handed to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    /// [`E820_RAM`], [`E820_RESERVED`], ...
    pub typ: u32,
}

impl E820Entry {
    fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// The PC memory map for `ram_size` bytes of RAM starting at 0:
/// `[0, 0x9FC00)` RAM, `[0x9FC00, 0xA0000)` reserved (EBDA),
/// `[0xF0000, 0x100000)` reserved (BIOS), `[0x100000, ram_size)` RAM.
///
/// RAM entries are clipped to `ram_size` and omitted when empty; the two
/// reserved entries are always present.
pub fn default_e820(ram_size: u64) -> Vec<E820Entry> {
    const EBDA: u64 = 0x9_FC00;
    let mut map = Vec::with_capacity(4);
    if ram_size > 0 {
        map.push(E820Entry {
            addr: 0,
            size: ram_size.min(EBDA),
            typ: E820_RAM,
        });
    }
    map.push(E820Entry {
        addr: EBDA,
        size: 0xA_0000 - EBDA,
        typ: E820_RESERVED,
    });
    map.push(E820Entry {
        addr: 0xF_0000,
        size: 0x1_0000,
        typ: E820_RESERVED,
    });
    if ram_size > MIB {
        map.push(E820Entry {
            addr: MIB,
            size: ram_size - MIB,
            typ: E820_RAM,
        });
    }
    map
}

/// Result of a successful load: where things are and how to enter the kernel.
/// See the module documentation for the complete register state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxBoot {
    /// EIP: `code32_start` (normally 0x100000).
    pub entry: u32,
    /// ESI: guest-physical address of the zero page.
    pub esi: u32,
    /// Guest-physical address of the zero page (same as `esi`).
    pub zero_page: u32,
    /// Guest-physical address of the NUL-terminated command line.
    pub cmdline_addr: u32,
    /// `(address, size)` of the initrd, if one was loaded.
    pub initrd: Option<(u32, u32)>,
    /// Where the kernel runs, when the loader placed the decompressed kernel itself
    /// ([`load_linux_decompressed`]; with KASLR a random slot).
    pub run_addr: Option<u32>,
    /// Boot protocol version of the kernel (e.g. 0x020F for 2.15).
    pub protocol: u16,
}

/// The fields of a bzImage setup header the loader uses, with the defaults
/// the protocol prescribes for fields the kernel's version does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupHeader {
    /// Raw `setup_sects` byte (0 means 4).
    pub setup_sects: u8,
    /// Size in bytes of the real-mode part (boot sector + setup code): the
    /// protected-mode kernel starts at this file offset.
    pub setup_size: usize,
    /// `syssize`: size of the protected-mode code in 16-byte paragraphs.
    pub syssize: u32,
    /// Boot protocol version, e.g. 0x020F for 2.15.
    pub version: u16,
    pub loadflags: u8,
    pub code32_start: u32,
    /// Highest address the initrd may occupy (inclusive).
    pub initrd_addr_max: u32,
    /// 0 before protocol 2.05.
    pub kernel_alignment: u32,
    /// false before protocol 2.05.
    pub relocatable_kernel: bool,
    /// 0 before protocol 2.12.
    pub xloadflags: u16,
    /// Maximum command line length without the NUL.
    pub cmdline_size: u32,
    /// `pref_address` (2.10+), else [`KERNEL_LOAD_ADDR`].
    pub pref_address: u64,
    /// `init_size` (2.10+), else 0 (unknown).
    pub init_size: u32,
    /// File offset one past the setup header (`0x202 + byte at 0x201`,
    /// clamped to the space `struct boot_params` has for it).
    pub header_end: usize,
    /// The kernel version string pointed to by `kernel_version`, if any.
    pub kernel_version: Option<String>,
}

impl SetupHeader {
    /// Protocol version as text, e.g. "2.15".
    pub fn version_string(&self) -> String {
        protocol_string(self.version)
    }
}

fn protocol_string(version: u16) -> String {
    format!("{}.{:02}", version >> 8, version & 0xFF)
}

fn mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// Everything that can go wrong while loading a Linux kernel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinuxError {
    #[error("guest RAM of {size} bytes exceeds the 4 GiB a 32-bit guest can address")]
    RamTooLarge { size: u64 },
    #[error("not a Linux bzImage: {0}")]
    NotBzImage(String),
    #[error("boot protocol {} too old (need >= 2.04)", protocol_string(*.version))]
    ProtocolTooOld { version: u16 },
    #[error("kernel is a zImage (loadflags LOADED_HIGH clear, loaded at 0x10000): only bzImage kernels are supported")]
    NotLoadedHigh,
    #[error("kernel is a 64-bit kernel (xloadflags XLF_KERNEL_64 set): only 32-bit (i386/686) kernels can run")]
    Kernel64Bit,
    #[error("kernel image is truncated: {what} needs {needed} bytes but the file is only {len} bytes long")]
    Truncated {
        what: &'static str,
        needed: u64,
        len: u64,
    },
    #[error("invalid setup header: {field} = {value:#x} ({reason})")]
    InvalidHeader {
        field: &'static str,
        value: u64,
        reason: &'static str,
    },
    #[error("kernel does not fit in guest RAM: it needs [{start:#x}, {end:#x}) ({} MiB of RAM) but guest RAM is {} MiB", mib_ceil(*.end), .ram_size / MIB)]
    KernelDoesNotFit { start: u64, end: u64, ram_size: u64 },
    #[error("initrd of {} MiB does not fit below {limit:#x} with {} MiB of RAM (it must be page aligned, above 1 MiB, in e820 RAM and clear of the kernel)", mib_ceil(*.size), .ram_size / MIB)]
    InitrdDoesNotFit {
        size: u64,
        limit: u64,
        ram_size: u64,
    },
    #[error("kernel command line of {len} bytes is too long (at most {max} bytes)")]
    CmdlineTooLong { len: usize, max: usize },
    #[error("kernel command line contains a NUL byte")]
    CmdlineContainsNul,
    #[error("e820 memory map has {count} entries, the zero page holds at most 128")]
    TooManyE820Entries { count: usize },
    #[error("decompressed kernel: {0}")]
    Vmlinux(#[from] crate::vmlinux::VmlinuxError),
}

fn not_bzimage(reason: impl Into<String>) -> LinuxError {
    LinuxError::NotBzImage(reason.into())
}

fn read_u8(buf: &[u8], off: u32) -> u8 {
    buf.get(off as usize).copied().unwrap_or(0)
}

fn read_u16_or0(buf: &[u8], off: u32) -> u16 {
    read_u16(buf, off as usize).unwrap_or(0)
}

fn read_u32_or0(buf: &[u8], off: u32) -> u32 {
    read_u32(buf, off as usize).unwrap_or(0)
}

fn read_u64_or0(buf: &[u8], off: u32) -> u64 {
    let lo = u64::from(read_u32_or0(buf, off));
    let hi = u64::from(read_u32_or0(buf, off + 4));
    lo | hi << 32
}

/// Parses and validates the setup header of a bzImage.
///
/// Checks the boot sector signature, the "HdrS" magic, the protocol version
/// (>= 2.04), that the whole real-mode part is present, that the kernel is a
/// bzImage (`LOADED_HIGH`) and that it is not a 64-bit kernel.
pub fn parse_setup_header(image: &[u8]) -> Result<SetupHeader, LinuxError> {
    if image.len() < (zp::VERSION + 2) as usize {
        return Err(not_bzimage(format!(
            "file is only {} bytes long, too short for a setup header",
            image.len()
        )));
    }
    let boot_flag = read_u16_or0(image, zp::BOOT_FLAG);
    if boot_flag != 0xAA55 {
        return Err(not_bzimage(format!(
            "no boot sector signature 0xAA55 at offset 0x1fe (found {boot_flag:#06x})"
        )));
    }
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err(not_bzimage(
            "no \"HdrS\" setup header signature at offset 0x202",
        ));
    }
    let version = read_u16_or0(image, zp::VERSION);
    if version < MIN_PROTOCOL {
        return Err(LinuxError::ProtocolTooOld { version });
    }
    let setup_sects = read_u8(image, zp::SETUP_SECTS);
    let sects = if setup_sects == 0 { 4 } else { setup_sects };
    let setup_size = (usize::from(sects) + 1) * 512;
    if image.len() < setup_size {
        return Err(LinuxError::Truncated {
            what: "the real-mode setup code (setup_sects)",
            needed: setup_size as u64,
            len: image.len() as u64,
        });
    }
    // From here on every header offset is in bounds: setup_size >= 1024.
    let loadflags = read_u8(image, zp::LOADFLAGS);
    if loadflags & LOADED_HIGH == 0 {
        return Err(LinuxError::NotLoadedHigh);
    }
    let at_least = |v: u16| version >= v;
    let xloadflags = if at_least(0x020C) {
        read_u16_or0(image, zp::XLOADFLAGS)
    } else {
        0
    };
    if xloadflags & XLF_KERNEL_64 != 0 {
        return Err(LinuxError::Kernel64Bit);
    }
    let header_end = (zp::HEADER as usize + usize::from(read_u8(image, zp::JUMP + 1)))
        .min(zp::SETUP_HEADER_LIMIT as usize);
    let (kernel_alignment, relocatable_kernel) = if at_least(0x0205) {
        (
            read_u32_or0(image, zp::KERNEL_ALIGNMENT),
            read_u8(image, zp::RELOCATABLE_KERNEL) != 0,
        )
    } else {
        (0, false)
    };
    let (pref_address, init_size) = if at_least(0x020A) {
        (
            read_u64_or0(image, zp::PREF_ADDRESS),
            read_u32_or0(image, zp::INIT_SIZE),
        )
    } else {
        (u64::from(KERNEL_LOAD_ADDR), 0)
    };
    Ok(SetupHeader {
        setup_sects,
        setup_size,
        syssize: read_u32_or0(image, zp::SYSSIZE),
        version,
        loadflags,
        code32_start: read_u32_or0(image, zp::CODE32_START),
        initrd_addr_max: if at_least(0x0203) {
            read_u32_or0(image, zp::INITRD_ADDR_MAX)
        } else {
            DEFAULT_INITRD_ADDR_MAX
        },
        kernel_alignment,
        relocatable_kernel,
        xloadflags,
        cmdline_size: if at_least(0x0206) {
            read_u32_or0(image, zp::CMDLINE_SIZE)
        } else {
            DEFAULT_CMDLINE_SIZE
        },
        pref_address,
        init_size,
        header_end,
        kernel_version: kernel_version_string(image, setup_size),
    })
}

/// The string `kernel_version` points at (offset + 0x200, inside the setup code).
fn kernel_version_string(image: &[u8], setup_size: usize) -> Option<String> {
    let ptr = read_u16_or0(image, zp::KERNEL_VERSION);
    if ptr == 0 {
        return None;
    }
    let start = usize::from(ptr) + 0x200;
    let area = image.get(start..setup_size)?;
    let area = &area[..area.len().min(256)];
    let len = area.iter().position(|&b| b == 0)?;
    let s = String::from_utf8_lossy(&area[..len]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Validated placement of everything, computed before RAM is touched.
struct Plan {
    hdr: SetupHeader,
    kernel_len: u64,
    cmdline_max: usize,
    initrd_addr: Option<u64>,
    alt_mem_k: u32,
    /// Where the kernel runs after decompression (`[runtime_start, runtime_end)`).
    runtime: (u64, u64),
    /// e820 RAM ranges (or all of RAM without a map).
    ram_ranges: Vec<(u64, u64)>,
}

/// Half-open address ranges, sorted and coalesced.
fn normalize(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|&(s, e)| s < e);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn subtract(ranges: Vec<(u64, u64)>, hole: (u64, u64)) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for (s, e) in ranges {
        if hole.1 <= s || hole.0 >= e {
            out.push((s, e));
            continue;
        }
        if s < hole.0 {
            out.push((s, hole.0));
        }
        if hole.1 < e {
            out.push((hole.1, e));
        }
    }
    out
}

/// Highest page-aligned start for `size` bytes inside one of `free`.
fn highest_fit(free: &[(u64, u64)], size: u64) -> Option<u64> {
    free.iter()
        .filter_map(|&(s, e)| {
            let start = e.checked_sub(size)? & !(PAGE_SIZE - 1);
            (start >= s).then_some(start)
        })
        .max()
}

fn plan(
    ram_size: u64,
    bzimage: &[u8],
    cmdline: &str,
    initrd: Option<&[u8]>,
    e820: &[E820Entry],
) -> Result<Plan, LinuxError> {
    if ram_size > FOUR_GIB {
        return Err(LinuxError::RamTooLarge { size: ram_size });
    }
    let hdr = parse_setup_header(bzimage)?;

    // --- Protected-mode kernel --------------------------------------------
    let kernel_len = (bzimage.len() - hdr.setup_size) as u64;
    if kernel_len == 0 {
        return Err(LinuxError::Truncated {
            what: "the protected-mode kernel (nothing follows the setup code)",
            needed: hdr.setup_size as u64 + 1,
            len: bzimage.len() as u64,
        });
    }
    // syssize counts 16-byte paragraphs, rounded up: the file must hold at
    // least the bytes of the last paragraph's start.
    let sys_bytes = u64::from(hdr.syssize) * 16;
    if kernel_len + 15 < sys_bytes {
        return Err(LinuxError::Truncated {
            what: "the protected-mode kernel (syssize)",
            needed: hdr.setup_size as u64 + sys_bytes,
            len: bzimage.len() as u64,
        });
    }
    let load = u64::from(KERNEL_LOAD_ADDR);
    let loaded_end = load + kernel_len;
    let entry = u64::from(hdr.code32_start);
    if entry < load || entry >= loaded_end {
        return Err(LinuxError::InvalidHeader {
            field: "code32_start",
            value: entry,
            reason: "not inside the protected-mode kernel loaded at 0x100000",
        });
    }
    // Memory the kernel decompresses into before it reads the memory map.
    let (runtime_start, runtime_end) = if hdr.version >= 0x020A {
        let start = if hdr.relocatable_kernel {
            let align = u64::from(hdr.kernel_alignment);
            if !align.is_power_of_two() {
                return Err(LinuxError::InvalidHeader {
                    field: "kernel_alignment",
                    value: align,
                    reason: "not a power of two",
                });
            }
            align_up(load.max(hdr.pref_address), align)
        } else {
            if hdr.pref_address < load {
                return Err(LinuxError::InvalidHeader {
                    field: "pref_address",
                    value: hdr.pref_address,
                    reason: "a non-relocatable kernel must run at or above 1 MiB",
                });
            }
            Some(hdr.pref_address)
        };
        let len = u64::from(hdr.init_size).max(kernel_len);
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) => (s, e),
            _ => {
                return Err(LinuxError::KernelDoesNotFit {
                    start: hdr.pref_address,
                    end: u64::MAX,
                    ram_size,
                })
            }
        }
    } else {
        (load, loaded_end)
    };
    let kernel_end = loaded_end.max(runtime_end);
    if kernel_end > ram_size {
        return Err(LinuxError::KernelDoesNotFit {
            start: load.min(runtime_start),
            end: kernel_end,
            ram_size,
        });
    }

    // --- Command line -------------------------------------------------------
    if cmdline.as_bytes().contains(&0) {
        return Err(LinuxError::CmdlineContainsNul);
    }
    let area = (CMDLINE_LIMIT - CMDLINE_ADDR - 1) as usize;
    let cmdline_max = usize::try_from(hdr.cmdline_size)
        .unwrap_or(usize::MAX)
        .min(area);
    if cmdline.len() > cmdline_max {
        return Err(LinuxError::CmdlineTooLong {
            len: cmdline.len(),
            max: cmdline_max,
        });
    }

    // --- e820 ---------------------------------------------------------------
    if e820.len() > E820_MAX_ENTRIES {
        return Err(LinuxError::TooManyE820Entries { count: e820.len() });
    }

    // --- Initrd -------------------------------------------------------------
    let ram_ranges: Vec<(u64, u64)> = if e820.is_empty() {
        vec![(0, ram_size)]
    } else {
        normalize(e820.iter().filter(|e| e.typ == E820_RAM).map(|e| (e.addr, e.end().min(ram_size))).collect())
    };
    let initrd_addr = match initrd {
        Some(data) if !data.is_empty() => {
            let size = data.len() as u64;
            let limit = (u64::from(hdr.initrd_addr_max) + 1).min(ram_size);
            let mut free = normalize(
                ram_ranges
                    .iter()
                    .copied()
                    .map(|(s, e)| (s.max(load), e.min(limit)))
                    .collect(),
            );
            for e in e820.iter().filter(|e| e.typ != E820_RAM) {
                free = subtract(free, (e.addr, e.end()));
            }
            free = subtract(free, (load, loaded_end));
            free = subtract(free, (runtime_start, runtime_end));
            Some(
                highest_fit(&free, size).ok_or(LinuxError::InitrdDoesNotFit {
                    size,
                    limit,
                    ram_size,
                })?,
            )
        }
        _ => None,
    };

    let alt_mem_k = u32::try_from(ram_size.saturating_sub(MIB) / 1024).unwrap_or(u32::MAX);
    Ok(Plan {
        hdr,
        kernel_len,
        cmdline_max,
        initrd_addr,
        alt_mem_k,
        runtime: (runtime_start, runtime_end),
        ram_ranges,
    })
}

/// Loads a bzImage kernel, its command line and an optional initrd into
/// guest RAM and builds the zero page for the 32-bit boot protocol.
///
/// `ram` covers guest-physical `[0, ram.len())` (at most 4 GiB).  `e820` is
/// copied into the zero page as the memory map (use [`default_e820`]); the
/// initrd is only placed in its RAM (type 1) ranges.  An empty initrd is
/// treated as none.  On error guest RAM is left untouched.  See the module
/// documentation for the memory layout and the entry register state.
pub fn load_linux(
    ram: &mut [u8],
    bzimage: &[u8],
    cmdline: &str,
    initrd: Option<&[u8]>,
    e820: &[E820Entry],
) -> Result<LinuxBoot, LinuxError> {
    let p = plan(ram.len() as u64, bzimage, cmdline, initrd, e820)?;
    write_boot_data(ram, &p, bzimage, cmdline, initrd, e820, 0);
    let hdr = &p.hdr;
    if let Some(pm) = bzimage.get(hdr.setup_size..) {
        debug_assert_eq!(pm.len() as u64, p.kernel_len);
        Ram(ram).put_bytes(u64::from(KERNEL_LOAD_ADDR), pm);
    }
    Ok(LinuxBoot {
        entry: hdr.code32_start,
        esi: ZERO_PAGE_ADDR,
        zero_page: ZERO_PAGE_ADDR,
        cmdline_addr: CMDLINE_ADDR,
        initrd: p.initrd_addr.zip(initrd).map(|(a, d)| (a as u32, d.len() as u32)),
        protocol: hdr.version,
        run_addr: None,
    })
}

/// The highest address a 32-bit kernel may run at (`KERNEL_IMAGE_SIZE` on i386).
const KASLR_LIMIT: u64 = 512 * MIB;

/// Like [`load_linux`], but for a bzImage whose compressed payload the caller has
/// already inflated (`image`: `vmlinux.bin.all`, see [`crate::vmlinux`]): the kernel is
/// placed and relocated here and entered at its own `startup_32`, as the bzImage's
/// decompressor would do. Unless the command line says `nokaslr` (or the kernel is not
/// relocatable), the run address is a `kernel_alignment` slot chosen with `random` among
/// those clear of everything else, and `loadflags` gets `KASLR_FLAG`, as with the
/// decompressor's KASLR. Guest RAM is untouched on error.
pub fn load_linux_decompressed(
    ram: &mut [u8],
    bzimage: &[u8],
    image: &[u8],
    random: u64,
    cmdline: &str,
    initrd: Option<&[u8]>,
    e820: &[E820Entry],
) -> Result<LinuxBoot, LinuxError> {
    let p = plan(ram.len() as u64, bzimage, cmdline, initrd, e820)?;
    let hdr = &p.hdr;
    let v = crate::vmlinux::parse_vmlinux(image, hdr.relocatable_kernel)?;
    if u64::from(v.link_base) != hdr.pref_address {
        return Err(LinuxError::InvalidHeader {
            field: "pref_address",
            value: hdr.pref_address,
            reason: "differs from the address the decompressed kernel is linked at",
        });
    }
    let need = u64::from(hdr.init_size).max(u64::from(v.mem_end - v.link_base));
    let (start, end) = (p.runtime.0, p.runtime.0 + need);
    if end > ram.len() as u64 {
        return Err(LinuxError::KernelDoesNotFit { start, end, ram_size: ram.len() as u64 });
    }
    let kaslr = hdr.relocatable_kernel && !v.relocs.is_empty() && !cmdline.split_ascii_whitespace().any(|w| w == "nokaslr");
    let run = if kaslr {
        // Clear of the boot data below 1 MiB and of the initrd; the protected-mode part
        // of the bzImage is not loaded on this path.
        let mut free = p.ram_ranges.iter().map(|&(s, e)| (s.max(MIB), e)).collect::<Vec<_>>();
        if let (Some(a), Some(d)) = (p.initrd_addr, initrd) {
            free = subtract(free, (a, a + d.len() as u64));
        }
        let slots = crate::vmlinux::kaslr_slots(&normalize(free), start, u64::from(hdr.kernel_alignment), need, KASLR_LIMIT);
        if slots.is_empty() {
            start
        } else {
            slots[(random % slots.len() as u64) as usize]
        }
    } else {
        start
    };
    // Not relocatable (or no table): only the linked address will do.
    if run != u64::from(v.link_base) && v.relocs.is_empty() {
        return Err(LinuxError::InvalidHeader {
            field: "relocatable_kernel",
            value: u64::from(hdr.relocatable_kernel),
            reason: "the kernel must run elsewhere than it is linked but has no relocations",
        });
    }
    if let (Some(a), Some(d)) = (p.initrd_addr, initrd) {
        if a < run + need && run < a + d.len() as u64 {
            return Err(LinuxError::KernelDoesNotFit { start: run, end: run + need, ram_size: ram.len() as u64 });
        }
    }
    // `place` checks every destination before it writes; the boot data goes in after.
    let entry = v
        .place(ram, image, run as u32)
        .ok_or(LinuxError::KernelDoesNotFit { start: run, end: run + need, ram_size: ram.len() as u64 })?;
    write_boot_data(ram, &p, bzimage, cmdline, initrd, e820, if kaslr { KASLR_FLAG } else { 0 });
    Ok(LinuxBoot {
        entry,
        esi: ZERO_PAGE_ADDR,
        zero_page: ZERO_PAGE_ADDR,
        cmdline_addr: CMDLINE_ADDR,
        initrd: p.initrd_addr.zip(initrd).map(|(a, d)| (a as u32, d.len() as u32)),
        protocol: hdr.version,
        run_addr: Some(run as u32),
    })
}

/// Writes the boot GDT, the zero page (with `extra_loadflags`), the command line and the
/// initrd of plan `p`.
fn write_boot_data(ram: &mut [u8], p: &Plan, bzimage: &[u8], cmdline: &str, initrd: Option<&[u8]>, e820: &[E820Entry], extra_loadflags: u8) {
    debug_assert!(cmdline.len() <= p.cmdline_max);
    let hdr = &p.hdr;
    let mut ram = Ram(ram);

    // Boot GDT.
    for (i, d) in BOOT_GDT.iter().enumerate() {
        ram.put_u64(u64::from(BOOT_GDT_ADDR) + 8 * i as u64, *d);
    }

    // Zero page: cleared, setup header copied from the image, then the
    // fields a boot loader must fill in.
    let zpa = u64::from(ZERO_PAGE_ADDR);
    let f = |off: u32| zpa + u64::from(off);
    ram.zero(zpa, u64::from(ZERO_PAGE_SIZE));
    if let Some(h) = bzimage.get(zp::SETUP_HEADER as usize..hdr.header_end) {
        ram.put_bytes(f(zp::SETUP_HEADER), h);
    }
    let ext_k = p.alt_mem_k.min(0xFFFF) as u16;
    ram.put_bytes(f(zp::EXT_MEM_K), &ext_k.to_le_bytes());
    ram.put_u32(f(zp::ALT_MEM_K), p.alt_mem_k);
    ram.put_bytes(f(zp::VID_MODE), &VID_MODE_NORMAL.to_le_bytes());
    ram.put_bytes(f(zp::TYPE_OF_LOADER), &[TYPE_OF_LOADER]);
    let loadflags = ((hdr.loadflags | CAN_USE_HEAP) & !(QUIET_FLAG | KEEP_SEGMENTS | KASLR_FLAG)) | extra_loadflags;
    ram.put_bytes(f(zp::LOADFLAGS), &[loadflags]);
    let (rd_addr, rd_size) = match (p.initrd_addr, initrd) {
        (Some(a), Some(d)) => (a as u32, d.len() as u32),
        _ => (0, 0),
    };
    ram.put_u32(f(zp::RAMDISK_IMAGE), rd_addr);
    ram.put_u32(f(zp::RAMDISK_SIZE), rd_size);
    ram.put_bytes(f(zp::HEAP_END_PTR), &HEAP_END_PTR.to_le_bytes());
    ram.put_bytes(f(zp::EXT_LOADER_VER), &[0, 0]);
    ram.put_u32(f(zp::CMD_LINE_PTR), CMDLINE_ADDR);
    if hdr.version >= 0x0207 {
        ram.put_u32(f(zp::HARDWARE_SUBARCH), 0);
        ram.put_u64(f(zp::HARDWARE_SUBARCH_DATA), 0);
    }
    if hdr.version >= 0x0209 {
        ram.put_u64(f(zp::SETUP_DATA), 0);
    }
    ram.put_bytes(f(zp::E820_ENTRIES), &[e820.len() as u8]);
    for (i, e) in e820.iter().enumerate() {
        let at = f(zp::E820_TABLE) + i as u64 * u64::from(E820_ENTRY_SIZE);
        ram.put_u64(at, e.addr);
        ram.put_u64(at + 8, e.size);
        ram.put_u32(at + 16, e.typ);
    }

    ram.put_cstr(u64::from(CMDLINE_ADDR), cmdline);
    if let (Some(a), Some(d)) = (p.initrd_addr, initrd) {
        ram.put_bytes(a, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1024 * 1024;
    const VERSION_STR: &str =
        "6.1.0-99-686-pae (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.999-1";

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    /// A synthetic bzImage: boot sector + setup code with a setup header,
    /// followed by a "protected-mode kernel" payload.
    #[derive(Clone)]
    struct Image {
        version: u16,
        setup_sects: u8,
        /// File offset one past the header, encoded in the jump at 0x200.
        header_end: usize,
        loadflags: u8,
        code32_start: u32,
        initrd_addr_max: u32,
        kernel_alignment: u32,
        relocatable: u8,
        xloadflags: u16,
        cmdline_size: u32,
        pref_address: u64,
        init_size: u32,
        syssize: Option<u32>,
        kernel_version_ptr: u16,
        payload: Vec<u8>,
    }

    impl Image {
        /// Protocol 2.15, relocatable, decompresses at 16 MiB using 8 MiB.
        fn new() -> Self {
            Image {
                version: 0x020F,
                setup_sects: 4,
                header_end: 0x26C,
                loadflags: LOADED_HIGH | QUIET_FLAG | KEEP_SEGMENTS,
                code32_start: 0x10_0000,
                initrd_addr_max: 0x7FFF_FFFF,
                kernel_alignment: 0x20_0000,
                relocatable: 1,
                xloadflags: 0x0004,
                cmdline_size: 2047,
                pref_address: 0x100_0000,
                init_size: 0x80_0000,
                syssize: None,
                kernel_version_ptr: 0x100,
                payload: pattern(0x2345, 7),
            }
        }

        fn setup_size(&self) -> usize {
            let s = if self.setup_sects == 0 {
                4
            } else {
                self.setup_sects
            };
            (usize::from(s) + 1) * 512
        }

        fn build(&self) -> Vec<u8> {
            let ss = self.setup_size();
            // Setup "code" filler everywhere, then a clean header area.
            let mut f: Vec<u8> = (0..ss).map(|i| 0x90 ^ i as u8).collect();
            f[0x1F1..0x26C].fill(0);
            let put = |f: &mut Vec<u8>, off: usize, bytes: &[u8]| {
                f[off..off + bytes.len()].copy_from_slice(bytes);
            };
            let syssize = self
                .syssize
                .unwrap_or(self.payload.len().div_ceil(16) as u32);
            put(&mut f, 0x1F1, &[self.setup_sects]);
            put(&mut f, 0x1F2, &1u16.to_le_bytes()); // root_flags
            put(&mut f, 0x1F4, &syssize.to_le_bytes());
            put(&mut f, 0x1FA, &0xFFFDu16.to_le_bytes()); // vid_mode: "ask"
            put(&mut f, 0x1FC, &0x0801u16.to_le_bytes()); // root_dev
            put(&mut f, 0x1FE, &0xAA55u16.to_le_bytes());
            put(&mut f, 0x200, &[0xEB, (self.header_end - 0x202) as u8]);
            put(&mut f, 0x202, b"HdrS");
            put(&mut f, 0x206, &self.version.to_le_bytes());
            put(&mut f, 0x20C, &0x1000u16.to_le_bytes()); // start_sys_seg
            put(&mut f, 0x20E, &self.kernel_version_ptr.to_le_bytes());
            put(&mut f, 0x211, &[self.loadflags]);
            put(&mut f, 0x212, &0x8000u16.to_le_bytes()); // setup_move_size
            put(&mut f, 0x214, &self.code32_start.to_le_bytes());
            put(&mut f, 0x22C, &self.initrd_addr_max.to_le_bytes());
            put(&mut f, 0x230, &self.kernel_alignment.to_le_bytes());
            put(&mut f, 0x234, &[self.relocatable, 0x15]);
            put(&mut f, 0x236, &self.xloadflags.to_le_bytes());
            put(&mut f, 0x238, &self.cmdline_size.to_le_bytes());
            put(&mut f, 0x23C, &0x1234u32.to_le_bytes()); // hardware_subarch
            put(&mut f, 0x240, &0x5678u64.to_le_bytes()); // hardware_subarch_data
            put(&mut f, 0x248, &0x3A5u32.to_le_bytes()); // payload_offset
            put(&mut f, 0x24C, &0x1F00u32.to_le_bytes()); // payload_length
            put(&mut f, 0x250, &0x9999u64.to_le_bytes()); // setup_data
            put(&mut f, 0x258, &self.pref_address.to_le_bytes());
            put(&mut f, 0x260, &self.init_size.to_le_bytes());
            put(&mut f, 0x264, &0x190u32.to_le_bytes()); // handover_offset
            put(&mut f, 0x268, &0x1234u32.to_le_bytes()); // kernel_info_offset
            let kv = 0x200 + usize::from(self.kernel_version_ptr);
            if self.kernel_version_ptr != 0 && kv + VERSION_STR.len() < ss {
                put(&mut f, kv, VERSION_STR.as_bytes());
                put(&mut f, kv + VERSION_STR.len(), &[0]);
            }
            f.extend_from_slice(&self.payload);
            f
        }
    }

    /// The decompressed-kernel path: the kernel runs at 16 MiB with `nokaslr` (nothing
    /// relocated), at a seed-chosen `kernel_alignment` slot otherwise (relocated, KASLR_FLAG),
    /// never over the initrd; errors leave RAM untouched.
    #[test]
    fn decompressed_kernel_is_placed_relocated_and_randomized() {
        use crate::vmlinux::tests::{image, RELOCS};
        let mut hdr = Image::new();
        hdr.kernel_alignment = 0x100_0000;
        let bz = hdr.build();
        let vm = image(&RELOCS);
        let e820 = default_e820(96 * MB as u64);
        let initrd = pattern(3 * MB, 5);
        let word = |ram: &[u8], a: usize| u32::from_le_bytes(ram[a..a + 4].try_into().unwrap());

        let mut ram = vec![0u8; 96 * MB];
        let b = load_linux_decompressed(&mut ram, &bz, &vm, 1, "nokaslr", Some(&initrd), &e820).unwrap();
        assert_eq!((b.entry, b.run_addr, b.esi), (0x100_0000, Some(0x100_0000), ZERO_PAGE_ADDR));
        assert_eq!(word(&ram, 0x100_0010), 0xC100_1008, "not relocated at the link address");
        assert_eq!(zero_page(&ram)[0x211] & KASLR_FLAG, 0);
        assert!(ram[0x10_0000..0x20_0000].iter().all(|&v| v == 0), "no decompressor loaded at 1 MiB");

        // 96 MiB of RAM, 3 MiB of initrd at the top, 8 MiB (init_size) per kernel: slots 16,
        // 32, 48, 64 and 80 MiB (80 + 8 ends below the initrd).
        let (rd, _) = b.initrd.unwrap();
        assert!((88 * MB..=93 * MB).contains(&(rd as usize)), "initrd at {rd:#x}");
        let mut seen = Vec::new();
        for seed in 0..8u64 {
            let mut ram = vec![0u8; 96 * MB];
            let b = load_linux_decompressed(&mut ram, &bz, &vm, seed, "console=ttyS0", Some(&initrd), &e820).unwrap();
            let run = b.run_addr.unwrap();
            assert_eq!(run, [0x100_0000, 0x200_0000, 0x300_0000, 0x400_0000, 0x500_0000][(seed % 5) as usize]);
            assert_eq!(b.entry, run);
            let delta = run - 0x100_0000;
            assert_eq!(word(&ram, run as usize + 0x10), 0xC100_1008 + delta);
            assert_eq!(word(&ram, run as usize + 0x1004), 0xC100_0020 + delta);
            assert_eq!(zero_page(&ram)[0x211] & KASLR_FLAG, KASLR_FLAG);
            assert_eq!(&ram[rd as usize..rd as usize + initrd.len()], &initrd[..]);
            seen.push(run);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 5);

        // Linked elsewhere than the header says, or a kernel that is not an ELF: errors, RAM
        // untouched.
        let mut other = hdr;
        other.pref_address = 0x200_0000;
        let mut ram = vec![0u8; 96 * MB];
        assert!(load_linux_decompressed(&mut ram, &other.build(), &vm, 0, "", None, &e820).is_err());
        assert!(matches!(load_linux_decompressed(&mut ram, &bz, &vm[1..], 0, "", None, &e820), Err(LinuxError::Vmlinux(_))));
        assert!(ram.iter().all(|&v| v == 0));
    }

    fn rd32(buf: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(buf[off..off + 4].try_into().unwrap())
    }

    /// The zero page a correct loader must produce, built from raw offsets.
    fn expected_zero_page(
        img: &[u8],
        header_end: usize,
        version: u16,
        ram_size: u64,
        e820: &[E820Entry],
        initrd: (u32, u32),
    ) -> Vec<u8> {
        let mut z = vec![0u8; 4096];
        z[0x1F1..header_end].copy_from_slice(&img[0x1F1..header_end]);
        let alt = ((ram_size - 0x10_0000) / 1024) as u32;
        z[0x002..0x004].copy_from_slice(&(alt.min(0xFFFF) as u16).to_le_bytes());
        z[0x1E0..0x1E4].copy_from_slice(&alt.to_le_bytes());
        z[0x1E8] = e820.len() as u8;
        z[0x1FA..0x1FC].copy_from_slice(&0xFFFFu16.to_le_bytes());
        z[0x210] = 0xFF;
        z[0x211] = 0x81;
        z[0x218..0x21C].copy_from_slice(&initrd.0.to_le_bytes());
        z[0x21C..0x220].copy_from_slice(&initrd.1.to_le_bytes());
        z[0x224..0x226].copy_from_slice(&0xDE00u16.to_le_bytes());
        z[0x226] = 0;
        z[0x227] = 0;
        z[0x228..0x22C].copy_from_slice(&0x2_0000u32.to_le_bytes());
        if version >= 0x0207 {
            z[0x23C..0x248].fill(0);
        }
        if version >= 0x0209 {
            z[0x250..0x258].fill(0);
        }
        for (i, e) in e820.iter().enumerate() {
            let at = 0x2D0 + 20 * i;
            z[at..at + 8].copy_from_slice(&e.addr.to_le_bytes());
            z[at + 8..at + 16].copy_from_slice(&e.size.to_le_bytes());
            z[at + 16..at + 20].copy_from_slice(&e.typ.to_le_bytes());
        }
        z
    }

    fn zero_page(ram: &[u8]) -> &[u8] {
        &ram[0x7000..0x8000]
    }

    /// Loads and expects an error, checking that RAM was not modified.
    fn load_err(
        ram_size: usize,
        img: &[u8],
        cmdline: &str,
        initrd: Option<&[u8]>,
        e820: &[E820Entry],
    ) -> LinuxError {
        let mut ram = vec![0u8; ram_size];
        let err = load_linux(&mut ram, img, cmdline, initrd, e820).unwrap_err();
        assert!(ram.iter().all(|&b| b == 0), "RAM modified on error {err}");
        err
    }

    fn e820_default(ram: usize) -> Vec<E820Entry> {
        default_e820(ram as u64)
    }

    #[test]
    fn default_e820_layout() {
        let ram = |addr: u64, size: u64| E820Entry {
            addr,
            size,
            typ: E820_RAM,
        };
        let res = |addr: u64, size: u64| E820Entry {
            addr,
            size,
            typ: E820_RESERVED,
        };
        assert_eq!(
            default_e820(64 << 20),
            vec![
                ram(0, 0x9_FC00),
                res(0x9_FC00, 0x400),
                res(0xF_0000, 0x1_0000),
                ram(0x10_0000, (64 << 20) - 0x10_0000),
            ]
        );
        assert_eq!(
            default_e820(0x10_0000),
            vec![
                ram(0, 0x9_FC00),
                res(0x9_FC00, 0x400),
                res(0xF_0000, 0x1_0000)
            ]
        );
        assert_eq!(
            default_e820(0x5_0000),
            vec![
                ram(0, 0x5_0000),
                res(0x9_FC00, 0x400),
                res(0xF_0000, 0x1_0000)
            ]
        );
        assert_eq!(
            default_e820(0),
            vec![res(0x9_FC00, 0x400), res(0xF_0000, 0x1_0000)]
        );
    }

    #[test]
    fn parses_setup_header_fields() {
        let img = Image::new().build();
        let h = parse_setup_header(&img).unwrap();
        assert_eq!(
            h,
            SetupHeader {
                setup_sects: 4,
                setup_size: 2560,
                syssize: 0x2345_u32.div_ceil(16),
                version: 0x020F,
                loadflags: LOADED_HIGH | QUIET_FLAG | KEEP_SEGMENTS,
                code32_start: 0x10_0000,
                initrd_addr_max: 0x7FFF_FFFF,
                kernel_alignment: 0x20_0000,
                relocatable_kernel: true,
                xloadflags: 4,
                cmdline_size: 2047,
                pref_address: 0x100_0000,
                init_size: 0x80_0000,
                header_end: 0x26C,
                kernel_version: Some(VERSION_STR.to_string()),
            }
        );
        assert_eq!(h.version_string(), "2.15");

        // The header end is clamped to the space boot_params has for it.
        let mut img2 = img.clone();
        img2[0x201] = 0xFF;
        assert_eq!(parse_setup_header(&img2).unwrap().header_end, 0x290);
        // A kernel_version pointer outside the setup code is ignored.
        let mut i = Image::new();
        i.kernel_version_ptr = 0x4000;
        assert_eq!(parse_setup_header(&i.build()).unwrap().kernel_version, None);
        i.kernel_version_ptr = 0;
        assert_eq!(parse_setup_header(&i.build()).unwrap().kernel_version, None);
    }

    #[test]
    fn loads_protocol_2_15_image_and_fills_every_zero_page_field() {
        let image = Image::new();
        let img = image.build();
        let cmdline = "console=ttyS0 root=/dev/vda ro earlyprintk=serial";
        let initrd = pattern(MB + 123, 42);
        let ram_size = 64 * MB;
        let e820 = e820_default(ram_size);
        let mut ram = vec![0u8; ram_size];
        let boot = load_linux(&mut ram, &img, cmdline, Some(&initrd), &e820).unwrap();

        // Highest page-aligned address below the end of RAM.
        let initrd_addr = ((ram_size - initrd.len()) & !0xFFF) as u32;
        assert_eq!(initrd_addr, 0x3EF_F000);
        assert_eq!(
            boot,
            LinuxBoot {
                entry: 0x10_0000,
                esi: 0x7000,
                zero_page: 0x7000,
                cmdline_addr: 0x2_0000,
                initrd: Some((initrd_addr, initrd.len() as u32)),
                protocol: 0x020F,
                run_addr: None,
            }
        );

        // Every byte of the zero page.
        let expected = expected_zero_page(
            &img,
            0x26C,
            0x020F,
            ram_size as u64,
            &e820,
            (initrd_addr, initrd.len() as u32),
        );
        assert_eq!(zero_page(&ram), &expected[..]);
        // Spot checks of the most important fields by name.
        let z = zero_page(&ram);
        assert_eq!(&z[0x202..0x206], b"HdrS");
        assert_eq!(z[zp::TYPE_OF_LOADER as usize], 0xFF);
        assert_eq!(z[zp::LOADFLAGS as usize], LOADED_HIGH | CAN_USE_HEAP);
        assert_eq!(rd32(z, zp::CMD_LINE_PTR as usize), 0x2_0000);
        assert_eq!(rd32(z, zp::RAMDISK_IMAGE as usize), initrd_addr);
        assert_eq!(rd32(z, zp::RAMDISK_SIZE as usize), initrd.len() as u32);
        assert_eq!(rd32(z, zp::EXT_RAMDISK_IMAGE as usize), 0);
        assert_eq!(rd32(z, zp::EXT_RAMDISK_SIZE as usize), 0);
        assert_eq!(rd32(z, zp::EXT_CMD_LINE_PTR as usize), 0);
        assert_eq!(rd32(z, zp::CODE32_START as usize), 0x10_0000);
        assert_eq!(rd32(z, zp::KERNEL_ALIGNMENT as usize), 0x20_0000);
        assert_eq!(rd32(z, zp::INIT_SIZE as usize), 0x80_0000);
        assert_eq!(rd32(z, zp::ALT_MEM_K as usize), 63 * 1024);
        assert_eq!(z[zp::SENTINEL as usize], 0);
        assert_eq!(z[zp::E820_ENTRIES as usize], 4);
        assert_eq!(rd32(z, 0x2D0 + 3 * 20), 0x10_0000);
        assert_eq!(rd32(z, 0x2D0 + 3 * 20 + 8), (63 * MB) as u32);
        assert_eq!(rd32(z, 0x2D0 + 3 * 20 + 16), E820_RAM);
        // Nothing after the header copy (0x26C..0x290 is setup code filler
        // in the image).
        assert!(z[0x26C..0x2D0].iter().all(|&b| b == 0));
        assert!(z[0x2D0 + 4 * 20..].iter().all(|&b| b == 0));

        // Boot GDT.
        let gdt: Vec<u8> = BOOT_GDT.iter().flat_map(|d| d.to_le_bytes()).collect();
        assert_eq!(&ram[0x1000..0x1020], &gdt[..]);
        assert_eq!(&ram[0x1010..0x1018], &[0xFF, 0xFF, 0, 0, 0, 0x9B, 0xCF, 0]);
        assert_eq!(&ram[0x1018..0x1020], &[0xFF, 0xFF, 0, 0, 0, 0x93, 0xCF, 0]);
        assert_eq!(BOOT_GDT_LIMIT, 0x1F);

        // Command line, NUL terminated.
        let c = 0x2_0000;
        assert_eq!(&ram[c..c + cmdline.len()], cmdline.as_bytes());
        assert_eq!(ram[c + cmdline.len()], 0);

        // Protected-mode kernel at 1 MiB, initrd at its address.
        let pm = &img[2560..];
        assert_eq!(&ram[0x10_0000..0x10_0000 + pm.len()], pm);
        let a = initrd_addr as usize;
        assert_eq!(&ram[a..a + initrd.len()], &initrd[..]);

        // Nothing else was written.
        let written = [
            (0x1000, 0x1020),
            (0x7000, 0x8000),
            (c, c + cmdline.len() + 1),
            (0x10_0000, 0x10_0000 + pm.len()),
            (a, a + initrd.len()),
        ];
        let stray = ram
            .iter()
            .enumerate()
            .position(|(i, &b)| b != 0 && !written.iter().any(|&(s, e)| i >= s && i < e));
        assert_eq!(stray, None);
    }

    #[test]
    fn no_initrd_and_empty_initrd() {
        let img = Image::new().build();
        let e820 = e820_default(32 * MB);
        for initrd in [None, Some(&[][..])] {
            let mut ram = vec![0u8; 32 * MB];
            let boot = load_linux(&mut ram, &img, "", initrd, &e820).unwrap();
            assert_eq!(boot.initrd, None);
            let z = zero_page(&ram);
            assert_eq!(rd32(z, 0x218), 0);
            assert_eq!(rd32(z, 0x21C), 0);
            assert_eq!(ram[0x2_0000], 0);
        }
    }

    #[test]
    fn initrd_respects_initrd_addr_max() {
        let mut image = Image::new();
        image.initrd_addr_max = 0x01FF_FFFF;
        let img = image.build();
        let initrd = pattern(3 * MB + 5, 1);
        let mut ram = vec![0u8; 64 * MB];
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820_default(64 * MB)).unwrap();
        let addr = ((32 * MB - initrd.len()) & !0xFFF) as u32;
        assert_eq!(boot.initrd, Some((addr, initrd.len() as u32)));
        assert!(addr as usize + initrd.len() <= 32 * MB);

        // An initrd exactly as large as the room is placed flush with the top.
        let initrd = pattern(8 * MB, 1);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820_default(64 * MB)).unwrap();
        assert_eq!(boot.initrd, Some((24 * MB as u32, 8 * MB as u32)));
    }

    #[test]
    fn initrd_avoids_the_kernel() {
        // Kernel runtime area [16 MiB, 24 MiB); initrd must end <= 32 MiB.
        let mut image = Image::new();
        image.initrd_addr_max = 0x01FF_FFFF;
        let img = image.build();
        let e820 = e820_default(64 * MB);
        let mut ram = vec![0u8; 64 * MB];
        // 10 MiB does not fit in [24, 32): it goes below 16 MiB.
        let initrd = pattern(10 * MB, 3);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820).unwrap();
        assert_eq!(boot.initrd, Some((6 * MB as u32, 10 * MB as u32)));
        // Just below 15 MiB still fits above the loaded image.
        let size = 15 * MB - 0x4000;
        let initrd = pattern(size, 3);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820).unwrap();
        let (a, _) = boot.initrd.unwrap();
        assert_eq!(a as usize, 16 * MB - size);
        assert!(a as usize >= 0x10_0000 + image.payload.len());
    }

    #[test]
    fn initrd_does_not_fit() {
        let img = Image::new().build();
        let e820 = e820_default(32 * MB);
        // Free: [1 MiB + payload, 16 MiB) and [24 MiB, 32 MiB).
        let initrd = vec![1u8; 15 * MB];
        let err = load_err(32 * MB, &img, "", Some(&initrd), &e820);
        assert_eq!(
            err,
            LinuxError::InitrdDoesNotFit {
                size: 15 * MB as u64,
                limit: 32 * MB as u64,
                ram_size: 32 * MB as u64,
            }
        );
        assert!(err
            .to_string()
            .starts_with("initrd of 15 MiB does not fit below 0x2000000 with 32 MiB of RAM"));
        // initrd_addr_max below 1 MiB: nowhere to go.
        let mut image = Image::new();
        image.initrd_addr_max = 0xF_FFFF;
        let err = load_err(32 * MB, &image.build(), "", Some(&[1, 2, 3]), &e820);
        assert!(matches!(
            err,
            LinuxError::InitrdDoesNotFit {
                limit: 0x10_0000,
                ..
            }
        ));
    }

    #[test]
    fn initrd_follows_the_e820_map() {
        let img = Image::new().build();
        let ram_e = |addr: usize, end: usize| E820Entry {
            addr: addr as u64,
            size: (end - addr) as u64,
            typ: E820_RAM,
        };
        let res = |addr: usize, end: usize| E820Entry {
            addr: addr as u64,
            size: (end - addr) as u64,
            typ: E820_RESERVED,
        };
        let e820 = vec![
            ram_e(0, 0x9_FC00),
            ram_e(0x10_0000, 24 * MB),
            ram_e(24 * MB, 32 * MB), // adjacent entries are merged
            ram_e(32 * MB, 40 * MB),
            res(36 * MB, 37 * MB), // reserved inside a RAM entry
            res(40 * MB, 48 * MB),
            ram_e(48 * MB, 50 * MB),
        ];
        let mut ram = vec![0u8; 64 * MB];
        // 4 MiB: not in [48, 50), not across [36, 37): [32, 36).
        let initrd = pattern(4 * MB, 9);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820).unwrap();
        assert_eq!(boot.initrd, Some((32 * MB as u32, 4 * MB as u32)));
        // 10 MiB: spans the two adjacent entries [24, 36).
        let initrd = pattern(10 * MB, 9);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820).unwrap();
        assert_eq!(boot.initrd, Some((26 * MB as u32, 10 * MB as u32)));
        // 2 MiB: the top RAM entry.
        let initrd = pattern(2 * MB, 9);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820).unwrap();
        assert_eq!(boot.initrd, Some((48 * MB as u32, 2 * MB as u32)));
        // The map is copied verbatim.
        let z = zero_page(&ram);
        assert_eq!(z[0x1E8], 7);
        assert_eq!(rd32(z, 0x2D0 + 4 * 20), 36 * MB as u32);
        assert_eq!(rd32(z, 0x2D0 + 4 * 20 + 16), E820_RESERVED);
        // An empty map: all of RAM counts.
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &[]).unwrap();
        assert_eq!(boot.initrd, Some((62 * MB as u32, 2 * MB as u32)));
        assert_eq!(zero_page(&ram)[0x1E8], 0);
    }

    #[test]
    fn non_relocatable_kernel_runs_at_pref_address() {
        let mut image = Image::new();
        image.relocatable = 0;
        image.pref_address = 0x200_0000; // 32 MiB
        let img = image.build();
        let mut ram = vec![0u8; 64 * MB];
        let initrd = pattern(30 * MB, 5);
        // [40, 64) is too small; below 32 MiB it fits at 2 MiB.
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &e820_default(64 * MB)).unwrap();
        assert_eq!(boot.initrd, Some((2 * MB as u32, 30 * MB as u32)));
        // Needs [32 MiB, 40 MiB).
        let err = load_err(36 * MB, &img, "", None, &e820_default(36 * MB));
        assert_eq!(
            err,
            LinuxError::KernelDoesNotFit {
                start: 0x10_0000,
                end: 40 * MB as u64,
                ram_size: 36 * MB as u64,
            }
        );
        let mut ram = vec![0u8; 40 * MB];
        assert!(load_linux(&mut ram, &img, "", None, &e820_default(40 * MB)).is_ok());
    }

    #[test]
    fn relocatable_kernel_runtime_start_is_aligned() {
        let mut image = Image::new();
        image.pref_address = 0x110_0000;
        image.kernel_alignment = 0x40_0000;
        let img = image.build();
        // Runtime area [0x1400000, 0x1C00000).
        let err = load_err(0x1C0_0000 - 0x1000, &img, "", None, &[]);
        assert_eq!(
            err,
            LinuxError::KernelDoesNotFit {
                start: 0x10_0000,
                end: 0x1C0_0000,
                ram_size: 0x1C0_0000 - 0x1000,
            }
        );
        let mut ram = vec![0u8; 0x1C0_0000];
        let initrd = pattern(0x30_0000, 1);
        let boot = load_linux(&mut ram, &img, "", Some(&initrd), &[]).unwrap();
        // [0x1100000, 0x1400000) is free between pref_address and the
        // aligned runtime start.
        assert_eq!(boot.initrd, Some((0x110_0000, 0x30_0000)));
    }

    #[test]
    fn kernel_does_not_fit() {
        let img = Image::new().build();
        for ram_size in [0, 0x8_0000, MB, 16 * MB, 24 * MB - 1] {
            let err = load_err(ram_size, &img, "", None, &[]);
            assert_eq!(
                err,
                LinuxError::KernelDoesNotFit {
                    start: 0x10_0000,
                    end: 24 * MB as u64,
                    ram_size: ram_size as u64,
                }
            );
        }
        assert_eq!(
            load_err(16 * MB, &img, "", None, &[]).to_string(),
            "kernel does not fit in guest RAM: it needs [0x100000, 0x1800000) (24 MiB of RAM) but guest RAM is 16 MiB"
        );
        // Protocol < 2.10: only the loaded image itself must fit.
        let mut image = Image::new();
        image.version = 0x0209;
        image.header_end = 0x258;
        let img = image.build();
        let mut ram = vec![0u8; MB + 0x3000];
        assert!(load_linux(&mut ram, &img, "", None, &[]).is_ok());
        let err = load_err(MB + 0x2000, &img, "", None, &[]);
        assert_eq!(
            err,
            LinuxError::KernelDoesNotFit {
                start: 0x10_0000,
                end: 0x10_0000 + 0x2345,
                ram_size: MB as u64 + 0x2000,
            }
        );
    }

    #[test]
    fn protocol_2_04_uses_defaults_and_copies_the_short_header() {
        let mut image = Image::new();
        image.version = 0x0204;
        image.header_end = 0x230; // up to initrd_addr_max
        image.initrd_addr_max = 0x0FFF_FFFF;
        // Fields of later versions hold garbage (setup code) and are ignored.
        image.cmdline_size = 7;
        image.pref_address = 0xFFFF_FFFF_0000_0000;
        image.init_size = 0xFFFF_FFFF;
        image.kernel_alignment = 3;
        image.xloadflags = XLF_KERNEL_64;
        let img = image.build();
        let h = parse_setup_header(&img).unwrap();
        assert_eq!(h.cmdline_size, 255);
        assert_eq!(h.pref_address, 0x10_0000);
        assert_eq!(h.init_size, 0);
        assert_eq!(h.kernel_alignment, 0);
        assert!(!h.relocatable_kernel);
        assert_eq!(h.xloadflags, 0);
        assert_eq!(h.initrd_addr_max, 0x0FFF_FFFF);
        assert_eq!(h.header_end, 0x230);

        let ram_size = 4 * MB;
        let e820 = e820_default(ram_size);
        let initrd = pattern(0x1800, 2);
        let cmdline = "x".repeat(255);
        let mut ram = vec![0u8; ram_size];
        let boot = load_linux(&mut ram, &img, &cmdline, Some(&initrd), &e820).unwrap();
        assert_eq!(boot.protocol, 0x0204);
        assert_eq!(boot.initrd, Some((4 * MB as u32 - 0x2000, 0x1800)));
        let expected = expected_zero_page(
            &img,
            0x230,
            0x0204,
            ram_size as u64,
            &e820,
            (4 * MB as u32 - 0x2000, 0x1800),
        );
        assert_eq!(zero_page(&ram), &expected[..]);
        assert!(zero_page(&ram)[0x230..0x2D0].iter().all(|&b| b == 0));

        let err = load_err(ram_size, &img, &"x".repeat(256), None, &e820);
        assert_eq!(err, LinuxError::CmdlineTooLong { len: 256, max: 255 });
    }

    #[test]
    fn setup_sects_zero_means_four() {
        let mut image = Image::new();
        image.setup_sects = 0;
        let img = image.build();
        assert_eq!(img.len(), 2560 + 0x2345);
        let mut ram = vec![0u8; 32 * MB];
        load_linux(&mut ram, &img, "", None, &[]).unwrap();
        assert_eq!(&ram[0x10_0000..0x10_0000 + 0x2345], &image.payload[..]);

        let mut image = Image::new();
        image.setup_sects = 1;
        image.kernel_version_ptr = 0x80;
        let img = image.build();
        assert_eq!(parse_setup_header(&img).unwrap().setup_size, 1024);
        load_linux(&mut ram, &img, "", None, &[]).unwrap();
        assert_eq!(&ram[0x10_0000..0x10_0000 + 0x2345], &image.payload[..]);
    }

    #[test]
    fn not_a_bzimage() {
        let img = Image::new().build();
        for len in [0, 1, 0x1FF, 0x207] {
            let err = load_err(32 * MB, &img[..len], "", None, &[]);
            assert!(matches!(err, LinuxError::NotBzImage(_)), "{len}: {err}");
            assert!(err.to_string().contains("too short"));
        }
        let mut bad = img.clone();
        bad[0x1FE] = 0;
        let err = load_err(32 * MB, &bad, "", None, &[]);
        assert_eq!(
            err.to_string(),
            "not a Linux bzImage: no boot sector signature 0xAA55 at offset 0x1fe (found 0xaa00)"
        );
        let mut bad = img.clone();
        bad[0x205] = b'Z';
        let err = load_err(32 * MB, &bad, "", None, &[]);
        assert_eq!(
            err.to_string(),
            "not a Linux bzImage: no \"HdrS\" setup header signature at offset 0x202"
        );
        // An ELF file.
        let mut elf = vec![0u8; 4096];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert!(matches!(
            load_err(32 * MB, &elf, "", None, &[]),
            LinuxError::NotBzImage(_)
        ));
    }

    #[test]
    fn protocol_too_old() {
        for (version, text) in [(0x0203, "2.03"), (0x0200, "2.00"), (0x0100, "1.00")] {
            let mut image = Image::new();
            image.version = version;
            let err = load_err(32 * MB, &image.build(), "", None, &[]);
            assert_eq!(err, LinuxError::ProtocolTooOld { version });
            assert_eq!(
                err.to_string(),
                format!("boot protocol {text} too old (need >= 2.04)")
            );
        }
    }

    #[test]
    fn zimage_and_64_bit_kernels_are_rejected() {
        let mut image = Image::new();
        image.loadflags = 0;
        let err = load_err(32 * MB, &image.build(), "", None, &[]);
        assert_eq!(err, LinuxError::NotLoadedHigh);
        assert!(err.to_string().contains("zImage"));

        let mut image = Image::new();
        image.xloadflags = XLF_KERNEL_64 | 0x2;
        assert_eq!(
            load_err(32 * MB, &image.build(), "", None, &[]),
            LinuxError::Kernel64Bit
        );
        // xloadflags only exists from 2.12 on.
        image.version = 0x020B;
        image.header_end = 0x268;
        let mut ram = vec![0u8; 32 * MB];
        assert!(load_linux(&mut ram, &image.build(), "", None, &[]).is_ok());
    }

    #[test]
    fn truncated_images() {
        let image = Image::new();
        let img = image.build();
        // Setup code cut short.
        let err = load_err(32 * MB, &img[..2000], "", None, &[]);
        assert_eq!(
            err,
            LinuxError::Truncated {
                what: "the real-mode setup code (setup_sects)",
                needed: 2560,
                len: 2000,
            }
        );
        // No protected-mode part at all.
        let err = load_err(32 * MB, &img[..2560], "", None, &[]);
        assert!(matches!(
            err,
            LinuxError::Truncated {
                needed: 2561,
                len: 2560,
                ..
            }
        ));
        // Shorter than syssize says.
        let err = load_err(32 * MB, &img[..img.len() - 100], "", None, &[]);
        assert_eq!(
            err,
            LinuxError::Truncated {
                what: "the protected-mode kernel (syssize)",
                needed: 2560 + 0x2350,
                len: img.len() as u64 - 100,
            }
        );
        // Rounding of syssize to paragraphs and trailing data are fine.
        let mut ram = vec![0u8; 32 * MB];
        let mut longer = img.clone();
        longer.extend_from_slice(&[0xAB; 4096]); // e.g. an appended signature
        assert!(load_linux(&mut ram, &longer, "", None, &[]).is_ok());
        assert_eq!(ram[0x10_0000 + 0x2345], 0xAB);
        let mut exact = image.clone();
        exact.syssize = Some(0x2345 / 16 + 1);
        assert!(load_linux(&mut ram, &exact.build(), "", None, &[]).is_ok());
        exact.syssize = Some(0x2345 / 16 + 2);
        assert!(matches!(
            load_err(32 * MB, &exact.build(), "", None, &[]),
            LinuxError::Truncated { .. }
        ));
    }

    #[test]
    fn invalid_header_fields() {
        let mut image = Image::new();
        image.code32_start = 0x10_0000 + 0x2345;
        let err = load_err(32 * MB, &image.build(), "", None, &[]);
        assert!(matches!(
            err,
            LinuxError::InvalidHeader {
                field: "code32_start",
                value: 0x10_2345,
                ..
            }
        ));
        image.code32_start = 0x9_0000;
        assert!(matches!(
            load_err(32 * MB, &image.build(), "", None, &[]),
            LinuxError::InvalidHeader {
                field: "code32_start",
                ..
            }
        ));
        // An entry point inside the image is honoured.
        image.code32_start = 0x10_0200;
        let mut ram = vec![0u8; 32 * MB];
        assert_eq!(
            load_linux(&mut ram, &image.build(), "", None, &[])
                .unwrap()
                .entry,
            0x10_0200
        );

        for align in [0, 3, 0x30_0000] {
            let mut image = Image::new();
            image.kernel_alignment = align;
            let err = load_err(32 * MB, &image.build(), "", None, &[]);
            assert!(
                matches!(
                    err,
                    LinuxError::InvalidHeader {
                        field: "kernel_alignment",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let mut image = Image::new();
        image.relocatable = 0;
        image.pref_address = 0x1_0000;
        let err = load_err(32 * MB, &image.build(), "", None, &[]);
        assert!(matches!(
            err,
            LinuxError::InvalidHeader {
                field: "pref_address",
                ..
            }
        ));
        // Absurd addresses overflow into "does not fit", not a panic.
        for (reloc, pref) in [(1, u64::MAX), (0, u64::MAX), (1, 0xFFFF_FFFF_FFC0_0000)] {
            let mut image = Image::new();
            image.relocatable = reloc;
            image.pref_address = pref;
            let err = load_err(32 * MB, &image.build(), "", None, &[]);
            assert!(matches!(err, LinuxError::KernelDoesNotFit { .. }), "{err}");
        }
    }

    #[test]
    fn command_line_limits() {
        let img = Image::new().build();
        let mut ram = vec![0u8; 32 * MB];
        let max = "y".repeat(2047);
        load_linux(&mut ram, &img, &max, None, &[]).unwrap();
        assert_eq!(&ram[0x2_0000..0x2_0000 + 2047], max.as_bytes());
        assert_eq!(ram[0x2_0000 + 2047], 0);
        let err = load_err(32 * MB, &img, &"y".repeat(2048), None, &[]);
        assert_eq!(
            err,
            LinuxError::CmdlineTooLong {
                len: 2048,
                max: 2047
            }
        );
        assert_eq!(
            err.to_string(),
            "kernel command line of 2048 bytes is too long (at most 2047 bytes)"
        );
        assert_eq!(
            load_err(32 * MB, &img, "a\0b", None, &[]),
            LinuxError::CmdlineContainsNul
        );
        // A huge cmdline_size is limited by the room below 0x9FC00.
        let mut image = Image::new();
        image.cmdline_size = u32::MAX;
        let img = image.build();
        let room = 0x9_FC00 - 0x2_0000 - 1;
        load_linux(&mut ram, &img, &"z".repeat(room), None, &[]).unwrap();
        assert_eq!(ram[0x9_FC00 - 1], 0);
        assert_eq!(ram[0x9_FC00 - 2], b'z');
        let err = load_err(32 * MB, &img, &"z".repeat(room + 1), None, &[]);
        assert_eq!(
            err,
            LinuxError::CmdlineTooLong {
                len: room + 1,
                max: room
            }
        );
    }

    #[test]
    fn e820_and_ram_limits() {
        let img = Image::new().build();
        let e820 = vec![
            E820Entry {
                addr: 0,
                size: 0x1000,
                typ: E820_RAM,
            };
            129
        ];
        assert_eq!(
            load_err(32 * MB, &img, "", None, &e820),
            LinuxError::TooManyE820Entries { count: 129 }
        );
        let mut ram = vec![0u8; 32 * MB];
        load_linux(&mut ram, &img, "", None, &e820[..128]).unwrap();
        assert_eq!(zero_page(&ram)[0x1E8], 128);
        assert_eq!(rd32(zero_page(&ram), 0x2D0 + 127 * 20 + 8), 0x1000);
        assert_eq!(rd32(zero_page(&ram), 0x2D0 + 127 * 20 + 16), 1);
        // More than 4 GiB of RAM cannot be addressed (checked on the plan,
        // no need to allocate it).
        let err = plan((4 << 30) + 4096, &img, "", None, &[]).err().unwrap();
        assert_eq!(
            err,
            LinuxError::RamTooLarge {
                size: (4 << 30) + 4096
            }
        );
        assert!(plan(4 << 30, &img, "", None, &[]).is_ok());
        // With 4 GiB the initrd goes just below initrd_addr_max + 1 = 2 GiB.
        let p = plan(4 << 30, &img, "", Some(&[1; 5000]), &default_e820(4 << 30)).unwrap();
        assert_eq!(p.initrd_addr, Some((2 << 30) - 0x2000));
        assert_eq!(p.alt_mem_k, (4 << 20) - 1024);
    }

    /// xorshift64*.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn truncated_and_mutated_images_never_panic() {
        let mut small = Image::new();
        small.payload = pattern(700, 1);
        small.init_size = 0x1000;
        small.pref_address = 0x10_0000;
        let mut old = small.clone();
        old.version = 0x0204;
        old.header_end = 0x230;
        let mut fixed = small.clone();
        fixed.relocatable = 0;
        let images = [small.build(), old.build(), fixed.build()];
        let interesting: [u32; 10] = [
            0,
            1,
            0x1000,
            0x10_0000,
            0x37FF_FFFF,
            0x7FFF_FFFF,
            0x8000_0000,
            0xFFFF_F000,
            0xFFFF_FFFF,
            0x5372_6448, // "HdrS"
        ];
        let initrd = pattern(3 * MB + 17, 4);
        let mut mem = vec![0u8; 8 * MB];
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let mut successes = 0;
        let e820s = [
            default_e820(8 * MB as u64),
            Vec::new(),
            default_e820(2 * MB as u64),
        ];
        let long_cmdline = "c".repeat(300);
        for img in &images {
            for len in 0..=img.len() {
                let _ = load_linux(
                    &mut mem,
                    &img[..len],
                    "console=ttyS0",
                    Some(&initrd),
                    &e820s[0],
                );
            }
            for _ in 0..6000 {
                let mut f = img.clone();
                for _ in 0..1 + rng.below(4) {
                    match rng.below(5) {
                        0 => {
                            let i = 0x1F0 + rng.below(0xA0);
                            f[i] = rng.next() as u8;
                        }
                        1 => {
                            let i = 0x1F0 + rng.below(0x9C);
                            let v = interesting[rng.below(interesting.len())];
                            f[i..i + 4].copy_from_slice(&v.to_le_bytes());
                        }
                        2 => {
                            let i = rng.below(f.len() - 1);
                            f[i] = rng.next() as u8;
                        }
                        3 => {
                            // setup_sects / jump length / version / flags.
                            let i = [0x1F1, 0x201, 0x206, 0x207, 0x211, 0x234, 0x236][rng.below(7)];
                            f[i] = rng.next() as u8;
                        }
                        _ => {
                            let len = rng.below(f.len() + 1);
                            f.truncate(len);
                            if f.len() < 0x290 {
                                break;
                            }
                        }
                    }
                }
                let ram_size = [MB, 2 * MB, 5 * MB, 8 * MB][rng.below(4)];
                let cmdline = ["", "root=/dev/vda", &long_cmdline][rng.below(3)];
                let rd_len = [0, 1, 4096, MB, initrd.len()][rng.below(5)];
                let rd = if rng.below(4) == 0 {
                    None
                } else {
                    Some(&initrd[..rd_len])
                };
                let e820 = &e820s[rng.below(e820s.len())];
                if let Ok(boot) = load_linux(&mut mem[..ram_size], &f, cmdline, rd, e820) {
                    successes += 1;
                    // Whatever was accepted is consistent.
                    assert!(boot.entry >= KERNEL_LOAD_ADDR);
                    if let Some((a, s)) = boot.initrd {
                        assert_eq!(a % 0x1000, 0);
                        assert!(u64::from(a) + u64::from(s) <= ram_size as u64);
                        let h = parse_setup_header(&f).unwrap();
                        let kernel_end = 0x10_0000 + (f.len() - h.setup_size) as u64;
                        assert!(u64::from(a) >= kernel_end);
                    }
                }
            }
        }
        assert!(successes > 1000, "only {successes} successful loads");
    }
}
