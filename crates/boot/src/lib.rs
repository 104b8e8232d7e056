#![forbid(unsafe_code)]
//! Multiboot (version 0.6.96) kernel loader for ringfold.
//!
//! This crate is pure logic: guest RAM is presented as a `&mut [u8]` that
//! covers guest-physical addresses `[0, ram.len())`.  [`load_multiboot`]
//! places a kernel image (ELF32 or "a.out kludge") plus optional boot modules
//! in that RAM, builds the Multiboot information structure and returns the
//! register state the guest must be started with.
//!
//! # Guest memory layout produced
//!
//! * Kernel segments at the physical addresses requested by the image.
//! * Starting at the first page boundary after the highest kernel address
//!   (`kernel_end`), in this order: the Multiboot information structure, the
//!   kernel command line, the boot loader name (`"ringfold"`), the module
//!   command lines, the module list, the memory map, then each module's
//!   contents on its own page-aligned address.
//! * Nothing is ever placed in page 0 or in the reserved legacy region
//!   `[0x9FC00, 0x100000)`; boot data that would cross that region is moved
//!   to 1 MiB.
//!
//! The memory map reported to the guest is:
//!
//! | range                  | type          |
//! |------------------------|---------------|
//! | `[0, 0x9FC00)`         | 1 (available) |
//! | `[0x9FC00, 0xA0000)`   | 2 (reserved)  |
//! | `[0xF0000, 0x100000)`  | 2 (reserved)  |
//! | `[0x100000, ram_end)`  | 1 (available) |
//!
//! The loader never panics on malformed input: every failure is reported as
//! a [`BootError`], and guest RAM is only modified once the whole layout has
//! been validated.

use thiserror::Error;

pub mod linux;
pub mod vmlinux;
pub use linux::{default_e820, load_linux, load_linux_decompressed, E820Entry, LinuxBoot, LinuxError};

/// Magic value of the Multiboot header inside the kernel image.
pub const MULTIBOOT_HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Value of EAX handed to the kernel by a Multiboot-compliant loader.
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The Multiboot header must be entirely contained in this many leading bytes.
pub const MULTIBOOT_SEARCH_LIMIT: usize = 8192;
/// Name reported through the `boot_loader_name` field.
pub const BOOT_LOADER_NAME: &str = "ringfold";

/// Header flag bit 0: modules must be page aligned (always honoured).
pub const HEADER_FLAG_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag bit 1: memory information requested (always provided).
pub const HEADER_FLAG_MEMORY_INFO: u32 = 1 << 1;
/// Header flag bit 2: video mode requested (not supported).
pub const HEADER_FLAG_VIDEO_MODE: u32 = 1 << 2;
/// Header flag bit 16: the address fields of the header are valid (a.out kludge).
pub const HEADER_FLAG_AOUT_KLUDGE: u32 = 1 << 16;

/// Information structure flag: `mem_lower` / `mem_upper` valid.
pub const INFO_FLAG_MEMORY: u32 = 1 << 0;
/// Information structure flag: `cmdline` valid.
pub const INFO_FLAG_CMDLINE: u32 = 1 << 2;
/// Information structure flag: `mods_count` / `mods_addr` valid.
pub const INFO_FLAG_MODS: u32 = 1 << 3;
/// Information structure flag: `mmap_length` / `mmap_addr` valid.
pub const INFO_FLAG_MMAP: u32 = 1 << 6;
/// Information structure flag: `boot_loader_name` valid.
pub const INFO_FLAG_BOOT_LOADER_NAME: u32 = 1 << 9;

/// Byte offsets of the fields of the Multiboot information structure.
pub mod info_offset {
    pub const FLAGS: u32 = 0;
    pub const MEM_LOWER: u32 = 4;
    pub const MEM_UPPER: u32 = 8;
    pub const BOOT_DEVICE: u32 = 12;
    pub const CMDLINE: u32 = 16;
    pub const MODS_COUNT: u32 = 20;
    pub const MODS_ADDR: u32 = 24;
    pub const MMAP_LENGTH: u32 = 44;
    pub const MMAP_ADDR: u32 = 48;
    pub const BOOT_LOADER_NAME: u32 = 64;
}

/// Size reserved (and zeroed) for the information structure.  The 0.6.96
/// structure is 116 bytes long including the framebuffer fields.
pub const INFO_SIZE: u32 = 120;
/// Size of one module list entry (`mod_start, mod_end, string, reserved`).
pub const MODULE_ENTRY_SIZE: u32 = 16;
/// Size of one memory map entry including its leading `size` field.
pub const MMAP_ENTRY_SIZE: u32 = 24;

/// Reserved legacy region: EBDA, VGA memory, option ROMs and BIOS.
pub const RESERVED_START: u64 = 0x9_FC00;
/// End (exclusive) of the reserved legacy region.
pub const RESERVED_END: u64 = 0x10_0000;

const PAGE_SIZE: u64 = 0x1000;
const MIB: u64 = 1024 * 1024;
const FOUR_GIB: u64 = 1 << 32;

/// A boot module handed to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module<'a> {
    /// Module contents, copied verbatim into guest RAM.
    pub data: &'a [u8],
    /// Module command line (the `string` field of the module entry).
    pub cmdline: String,
}

impl<'a> Module<'a> {
    /// Convenience constructor.
    pub fn new(data: &'a [u8], cmdline: impl Into<String>) -> Self {
        Self {
            data,
            cmdline: cmdline.into(),
        }
    }
}

/// Result of a successful load: the initial register state of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultibootBoot {
    /// Physical entry point (EIP).  Start in 32-bit protected mode, paging off.
    pub entry: u32,
    /// Value for EAX: always [`MULTIBOOT_BOOTLOADER_MAGIC`].
    pub eax: u32,
    /// Value for EBX: guest-physical address of the information structure.
    pub ebx: u32,
    /// Highest guest-physical address (exclusive) occupied by the kernel,
    /// including its BSS.
    pub kernel_end: u32,
    /// Highest guest-physical address (exclusive) occupied by anything the
    /// loader wrote (kernel, information structure, strings, memory map,
    /// modules).  Memory above it (up to the end of RAM) is free.
    pub data_end: u32,
}

/// Parsed Multiboot header of a kernel image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultibootHeader {
    /// File offset of the `magic` field.
    pub offset: usize,
    /// The `flags` field.
    pub flags: u32,
    /// The address fields, present when flag bit 16 is set.
    pub aout: Option<AoutKludge>,
}

/// Address fields of a Multiboot header (flag bit 16, "a.out kludge").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AoutKludge {
    pub header_addr: u32,
    pub load_addr: u32,
    pub load_end_addr: u32,
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

/// Everything that can go wrong while loading a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BootError {
    #[error("guest RAM of {size} bytes is too small: a Multiboot guest needs at least 1 MiB")]
    RamTooSmall { size: u64 },
    #[error("guest RAM of {size} bytes exceeds the 4 GiB a 32-bit guest can address")]
    RamTooLarge { size: u64 },
    #[error("no Multiboot header (magic 0x1BADB002, 4-byte aligned) in the first 8192 bytes of the kernel image")]
    NoMultibootHeader,
    #[error("Multiboot header at file offset {offset:#x} has a bad checksum (magic + flags + checksum = {sum:#010x}, must be 0)")]
    BadChecksum { offset: usize, sum: u32 },
    #[error("Multiboot header requires unsupported feature: flags bit {bit} ({})", required_flag_name(*.bit))]
    UnsupportedRequiredFlag { bit: u32 },
    #[error("kernel image is truncated: {what} needs file bytes [{start:#x}, {end:#x}) but the file is only {len:#x} bytes long")]
    Truncated {
        what: &'static str,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("kernel image is not an ELF file (bad magic) and its Multiboot header does not set the a.out kludge flag (bit 16)")]
    NotElf,
    #[error("unsupported ELF class {0} (only ELFCLASS32 = 1 is supported)")]
    WrongElfClass(u8),
    #[error("unsupported ELF data encoding {0} (only little-endian ELFDATA2LSB = 1 is supported)")]
    WrongElfEndianness(u8),
    #[error("unsupported ELF version {0} (expected 1)")]
    WrongElfVersion(u32),
    #[error("unsupported ELF type {0} (only ET_EXEC = 2 can be booted)")]
    WrongElfType(u16),
    #[error("unsupported ELF machine {0} (only EM_386 = 3 is supported)")]
    WrongElfMachine(u16),
    #[error("invalid ELF program header entry size {0} (must be at least 32)")]
    BadProgramHeaderSize(u16),
    #[error("ELF image has no loadable (PT_LOAD) segment")]
    NoLoadableSegments,
    #[error("ELF segment {index}: file size {filesz:#x} is larger than memory size {memsz:#x}")]
    SegmentFileSizeTooLarge {
        index: usize,
        filesz: u32,
        memsz: u32,
    },
    #[error("segment at {addr:#x} (size {size:#x}) overlaps page 0 (addresses below 0x1000 cannot be loaded)")]
    SegmentInPageZero { addr: u64, size: u64 },
    #[error("segment at {addr:#x} does not fit in guest RAM of {} MiB (it ends at {:#x}, RAM ends at {ram_size:#x})", ram_size / MIB, addr + size)]
    SegmentDoesNotFit { addr: u64, size: u64, ram_size: u64 },
    #[error("segment at {addr:#x} (size {size:#x}) overlaps the reserved legacy region [0x9fc00, 0x100000)")]
    SegmentInReservedRegion { addr: u64, size: u64 },
    #[error("segments at {first:#x} and {second:#x} overlap")]
    SegmentsOverlap { first: u64, second: u64 },
    #[error("entry point {entry:#x} is not inside any loaded segment")]
    EntryNotInSegment { entry: u32 },
    #[error("invalid Multiboot a.out kludge address fields: {0}")]
    BadAoutKludge(&'static str),
    #[error("kernel command line contains a NUL byte")]
    CmdlineContainsNul,
    #[error("command line of module {index} contains a NUL byte")]
    ModuleCmdlineContainsNul { index: usize },
    #[error("Multiboot boot information ({size:#x} bytes after the kernel end {kernel_end:#x}) does not fit in guest RAM of {} MiB", ram_size / MIB)]
    BootInfoDoesNotFit {
        size: u64,
        kernel_end: u64,
        ram_size: u64,
    },
    #[error("boot module {index} ({size:#x} bytes) does not fit in guest RAM of {} MiB", ram_size / MIB)]
    ModulesDoNotFit {
        index: usize,
        size: u64,
        ram_size: u64,
    },
}

fn required_flag_name(bit: u32) -> &'static str {
    match bit {
        2 => "video mode information",
        _ => "unknown required flag",
    }
}

// ---------------------------------------------------------------------------
// Little helpers

fn read_u16(buf: &[u8], off: usize) -> Option<u16> {
    let bytes = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn read_u32(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn truncated(what: &'static str, start: u64, size: u64, len: usize) -> BootError {
    BootError::Truncated {
        what,
        start,
        end: start.saturating_add(size),
        len: len as u64,
    }
}

/// Reads a little-endian u32 at `off`, reporting truncation as `what`.
fn file_u32(file: &[u8], off: usize, what: &'static str) -> Result<u32, BootError> {
    read_u32(file, off).ok_or_else(|| truncated(what, off as u64, 4, file.len()))
}

fn file_u16(file: &[u8], off: usize, what: &'static str) -> Result<u16, BootError> {
    read_u16(file, off).ok_or_else(|| truncated(what, off as u64, 2, file.len()))
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    Some(value.checked_add(align - 1)? & !(align - 1))
}

// ---------------------------------------------------------------------------
// Multiboot header

/// Locates and validates the Multiboot header of `kernel`.
///
/// The first 4-byte aligned occurrence of the magic whose checksum is valid
/// wins; if the magic only appears with bad checksums, the first such
/// occurrence is reported as [`BootError::BadChecksum`].
pub fn find_header(kernel: &[u8]) -> Result<MultibootHeader, BootError> {
    let limit = kernel.len().min(MULTIBOOT_SEARCH_LIMIT);
    let mut bad_checksum = None;
    let mut offset = 0usize;
    while offset + 12 <= limit {
        if read_u32(kernel, offset) == Some(MULTIBOOT_HEADER_MAGIC) {
            let flags = read_u32(kernel, offset + 4).unwrap_or(0);
            let checksum = read_u32(kernel, offset + 8).unwrap_or(0);
            let sum = MULTIBOOT_HEADER_MAGIC
                .wrapping_add(flags)
                .wrapping_add(checksum);
            if sum == 0 {
                return parse_header(kernel, offset, flags);
            }
            bad_checksum.get_or_insert(BootError::BadChecksum { offset, sum });
        }
        offset += 4;
    }
    Err(bad_checksum.unwrap_or(BootError::NoMultibootHeader))
}

fn parse_header(kernel: &[u8], offset: usize, flags: u32) -> Result<MultibootHeader, BootError> {
    const SUPPORTED_REQUIRED: u32 = HEADER_FLAG_PAGE_ALIGN | HEADER_FLAG_MEMORY_INFO;
    let unsupported = flags & 0xFFFF & !SUPPORTED_REQUIRED;
    if unsupported != 0 {
        return Err(BootError::UnsupportedRequiredFlag {
            bit: unsupported.trailing_zeros(),
        });
    }
    let aout = if flags & HEADER_FLAG_AOUT_KLUDGE != 0 {
        let what = "Multiboot header address fields";
        Some(AoutKludge {
            header_addr: file_u32(kernel, offset + 12, what)?,
            load_addr: file_u32(kernel, offset + 16, what)?,
            load_end_addr: file_u32(kernel, offset + 20, what)?,
            bss_end_addr: file_u32(kernel, offset + 24, what)?,
            entry_addr: file_u32(kernel, offset + 28, what)?,
        })
    } else {
        None
    };
    Ok(MultibootHeader {
        offset,
        flags,
        aout,
    })
}

// ---------------------------------------------------------------------------
// Kernel image parsing

/// One region to load: `filesz` bytes from the file, then zeroes up to `memsz`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadSegment {
    paddr: u64,
    file_offset: u64,
    filesz: u64,
    memsz: u64,
}

impl LoadSegment {
    fn end(&self) -> u64 {
        self.paddr + self.memsz
    }
}

struct KernelImage {
    segments: Vec<LoadSegment>,
    entry: u32,
}

fn parse_aout(
    kernel: &[u8],
    header_offset: usize,
    k: &AoutKludge,
) -> Result<KernelImage, BootError> {
    if k.load_addr > k.header_addr {
        return Err(BootError::BadAoutKludge("load_addr is above header_addr"));
    }
    let delta = u64::from(k.header_addr - k.load_addr);
    let header_offset = header_offset as u64;
    if delta > header_offset {
        return Err(BootError::BadAoutKludge(
            "header_addr - load_addr is larger than the header's file offset",
        ));
    }
    let file_offset = header_offset - delta;
    let file_len = kernel.len() as u64;
    let load_addr = u64::from(k.load_addr);
    let filesz = if k.load_end_addr == 0 {
        file_len - file_offset
    } else {
        if k.load_end_addr < k.load_addr {
            return Err(BootError::BadAoutKludge("load_end_addr is below load_addr"));
        }
        u64::from(k.load_end_addr - k.load_addr)
    };
    if file_offset + filesz > file_len {
        return Err(truncated(
            "a.out kludge load range",
            file_offset,
            filesz,
            kernel.len(),
        ));
    }
    let load_end = load_addr + filesz;
    let memsz = if k.bss_end_addr == 0 {
        filesz
    } else {
        if u64::from(k.bss_end_addr) < load_end {
            return Err(BootError::BadAoutKludge(
                "bss_end_addr is below load_end_addr",
            ));
        }
        u64::from(k.bss_end_addr) - load_addr
    };
    let entry = u64::from(k.entry_addr);
    if entry < load_addr || entry >= load_addr + memsz {
        return Err(BootError::EntryNotInSegment {
            entry: k.entry_addr,
        });
    }
    Ok(KernelImage {
        segments: vec![LoadSegment {
            paddr: load_addr,
            file_offset,
            filesz,
            memsz,
        }],
        entry: k.entry_addr,
    })
}

const ELF_HEADER_SIZE: usize = 52;
const ELF_PHDR_SIZE: usize = 32;
const PT_LOAD: u32 = 1;

fn parse_elf(kernel: &[u8]) -> Result<KernelImage, BootError> {
    let (loads, e_entry) = elf_loads(kernel)?;
    // The entry point is a virtual address; like other Multiboot loaders translate it
    // through the first segment that contains it.
    let e = u64::from(e_entry);
    let entry = loads
        .iter()
        .find(|(s, vaddr)| e >= *vaddr && e < vaddr + s.memsz)
        .map(|(s, vaddr)| e - vaddr + s.paddr);
    if loads.is_empty() {
        return Err(BootError::NoLoadableSegments);
    }
    let entry = entry
        .and_then(|e| u32::try_from(e).ok())
        .ok_or(BootError::EntryNotInSegment { entry: e_entry })?;
    Ok(KernelImage { segments: loads.into_iter().map(|(s, _)| s).collect(), entry })
}

/// The non-empty `PT_LOAD` segments of an ELF32 i386 executable, each with its virtual
/// address, and `e_entry` (shared by the Multiboot loader and the decompressed Linux
/// kernel of [`vmlinux`]).
pub(crate) fn elf_loads(kernel: &[u8]) -> Result<(Vec<(LoadSegment, u64)>, u32), BootError> {
    if kernel.get(0..4) != Some(b"\x7fELF") {
        return Err(BootError::NotElf);
    }
    if kernel.len() < ELF_HEADER_SIZE {
        return Err(truncated(
            "ELF header",
            0,
            ELF_HEADER_SIZE as u64,
            kernel.len(),
        ));
    }
    if kernel[4] != 1 {
        return Err(BootError::WrongElfClass(kernel[4]));
    }
    if kernel[5] != 1 {
        return Err(BootError::WrongElfEndianness(kernel[5]));
    }
    if kernel[6] != 1 {
        return Err(BootError::WrongElfVersion(u32::from(kernel[6])));
    }
    let what = "ELF header";
    let e_type = file_u16(kernel, 16, what)?;
    let e_machine = file_u16(kernel, 18, what)?;
    let e_version = file_u32(kernel, 20, what)?;
    let e_entry = file_u32(kernel, 24, what)?;
    let e_phoff = file_u32(kernel, 28, what)?;
    let e_phentsize = file_u16(kernel, 42, what)?;
    let e_phnum = file_u16(kernel, 44, what)?;
    if e_type != 2 {
        return Err(BootError::WrongElfType(e_type));
    }
    if e_machine != 3 {
        return Err(BootError::WrongElfMachine(e_machine));
    }
    if e_version != 1 {
        return Err(BootError::WrongElfVersion(e_version));
    }
    if e_phnum == 0 {
        return Err(BootError::NoLoadableSegments);
    }
    if usize::from(e_phentsize) < ELF_PHDR_SIZE {
        return Err(BootError::BadProgramHeaderSize(e_phentsize));
    }
    let table_size = u64::from(e_phentsize) * u64::from(e_phnum);
    if u64::from(e_phoff) + table_size > kernel.len() as u64 {
        return Err(truncated(
            "ELF program header table",
            u64::from(e_phoff),
            table_size,
            kernel.len(),
        ));
    }

    let mut loads = Vec::new();
    for index in 0..usize::from(e_phnum) {
        // In bounds: checked against the file length above.
        let base = e_phoff as usize + index * usize::from(e_phentsize);
        let what = "ELF program header";
        let p_type = file_u32(kernel, base, what)?;
        if p_type != PT_LOAD {
            continue;
        }
        let p_offset = file_u32(kernel, base + 4, what)?;
        let p_vaddr = file_u32(kernel, base + 8, what)?;
        let p_paddr = file_u32(kernel, base + 12, what)?;
        let p_filesz = file_u32(kernel, base + 16, what)?;
        let p_memsz = file_u32(kernel, base + 20, what)?;
        if p_filesz > p_memsz {
            return Err(BootError::SegmentFileSizeTooLarge {
                index,
                filesz: p_filesz,
                memsz: p_memsz,
            });
        }
        if p_memsz == 0 {
            continue;
        }
        if u64::from(p_offset) + u64::from(p_filesz) > kernel.len() as u64 {
            return Err(truncated(
                "ELF segment contents",
                u64::from(p_offset),
                u64::from(p_filesz),
                kernel.len(),
            ));
        }
        let segment = LoadSegment {
            paddr: u64::from(p_paddr),
            file_offset: u64::from(p_offset),
            filesz: u64::from(p_filesz),
            memsz: u64::from(p_memsz),
        };
        loads.push((segment, u64::from(p_vaddr)));
    }
    Ok((loads, e_entry))
}

/// Checks that every segment lies in loadable guest RAM and that segments do
/// not overlap each other.  Returns the highest end address.
fn check_segments(
    segments: &mut [LoadSegment],
    ram_limit: u64,
    ram_size: u64,
) -> Result<u64, BootError> {
    for s in segments.iter() {
        if s.paddr < PAGE_SIZE {
            return Err(BootError::SegmentInPageZero {
                addr: s.paddr,
                size: s.memsz,
            });
        }
        if s.end() > ram_limit {
            return Err(BootError::SegmentDoesNotFit {
                addr: s.paddr,
                size: s.memsz,
                ram_size,
            });
        }
        if s.paddr < RESERVED_END && s.end() > RESERVED_START {
            return Err(BootError::SegmentInReservedRegion {
                addr: s.paddr,
                size: s.memsz,
            });
        }
    }
    segments.sort_by_key(|s| s.paddr);
    for pair in segments.windows(2) {
        if pair[0].end() > pair[1].paddr {
            return Err(BootError::SegmentsOverlap {
                first: pair[0].paddr,
                second: pair[1].paddr,
            });
        }
    }
    Ok(segments.iter().map(LoadSegment::end).max().unwrap_or(0))
}

// ---------------------------------------------------------------------------
// Boot data placement

/// Bump allocator for boot data above the kernel, avoiding the legacy hole.
struct Placer {
    cursor: u64,
    limit: u64,
}

impl Placer {
    fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let mut start = align_up(self.cursor, align)?;
        if start < RESERVED_END && start.checked_add(size.max(1))? > RESERVED_START {
            start = align_up(RESERVED_END, align)?;
        }
        let end = start.checked_add(size)?;
        if end > self.limit {
            return None;
        }
        self.cursor = end;
        Some(start)
    }
}

struct MmapEntry {
    base: u64,
    length: u64,
    kind: u32,
}

fn memory_map(ram_size: u64) -> Vec<MmapEntry> {
    let mut map = vec![
        MmapEntry {
            base: 0,
            length: RESERVED_START,
            kind: 1,
        },
        MmapEntry {
            base: RESERVED_START,
            length: 0xA_0000 - RESERVED_START,
            kind: 2,
        },
        MmapEntry {
            base: 0xF_0000,
            length: RESERVED_END - 0xF_0000,
            kind: 2,
        },
    ];
    if ram_size > RESERVED_END {
        map.push(MmapEntry {
            base: RESERVED_END,
            length: ram_size - RESERVED_END,
            kind: 1,
        });
    }
    map
}

/// Guest RAM writer; all addresses were validated by the layout phase, the
/// `get_mut` calls merely keep the code panic-free.
struct Ram<'a>(&'a mut [u8]);

impl Ram<'_> {
    fn slice(&mut self, addr: u64, len: u64) -> &mut [u8] {
        let start = usize::try_from(addr).unwrap_or(usize::MAX);
        let end = usize::try_from(addr.saturating_add(len)).unwrap_or(usize::MAX);
        match self.0.get_mut(start..end) {
            Some(s) => s,
            None => {
                debug_assert!(false, "boot layout wrote outside RAM");
                &mut []
            }
        }
    }

    fn put_bytes(&mut self, addr: u64, bytes: &[u8]) {
        let dst = self.slice(addr, bytes.len() as u64);
        if dst.len() == bytes.len() {
            dst.copy_from_slice(bytes);
        }
    }

    fn put_u32(&mut self, addr: u64, value: u32) {
        self.put_bytes(addr, &value.to_le_bytes());
    }

    fn put_u64(&mut self, addr: u64, value: u64) {
        self.put_bytes(addr, &value.to_le_bytes());
    }

    fn zero(&mut self, addr: u64, len: u64) {
        self.slice(addr, len).fill(0);
    }

    /// Writes `s` followed by a NUL byte.
    fn put_cstr(&mut self, addr: u64, s: &str) {
        self.put_bytes(addr, s.as_bytes());
        self.put_bytes(addr + s.len() as u64, &[0]);
    }
}

/// Loads a Multiboot kernel plus `modules` into guest RAM.
///
/// `ram` covers guest-physical `[0, ram.len())` and must be at least 1 MiB
/// and at most 4 GiB large.  On success the guest must be started in 32-bit
/// protected mode (flat segments, paging off, interrupts disabled) at
/// `entry` with the returned `eax` / `ebx`.  On error guest RAM is left
/// untouched.
pub fn load_multiboot(
    ram: &mut [u8],
    kernel: &[u8],
    cmdline: &str,
    modules: &[Module<'_>],
) -> Result<MultibootBoot, BootError> {
    let ram_size = ram.len() as u64;
    if ram_size < RESERVED_END {
        return Err(BootError::RamTooSmall { size: ram_size });
    }
    if ram_size > FOUR_GIB {
        return Err(BootError::RamTooLarge { size: ram_size });
    }
    // Every address handed to the guest must be representable in 32 bits,
    // including exclusive end addresses such as `mod_end`.
    let ram_limit = ram_size.min(u64::from(u32::MAX));

    if cmdline.as_bytes().contains(&0) {
        return Err(BootError::CmdlineContainsNul);
    }
    if let Some(index) = modules
        .iter()
        .position(|m| m.cmdline.as_bytes().contains(&0))
    {
        return Err(BootError::ModuleCmdlineContainsNul { index });
    }

    // --- Kernel image -----------------------------------------------------
    let header = find_header(kernel)?;
    let mut image = match &header.aout {
        Some(k) => parse_aout(kernel, header.offset, k)?,
        None => parse_elf(kernel)?,
    };
    let kernel_end = check_segments(&mut image.segments, ram_limit, ram_size)?;

    // --- Boot data layout (no RAM writes yet) ------------------------------
    let mut placer = Placer {
        cursor: align_up(kernel_end, PAGE_SIZE).unwrap_or(u64::MAX),
        limit: ram_limit,
    };
    let mmap = memory_map(ram_size);
    let mmap_len = mmap.len() as u64 * u64::from(MMAP_ENTRY_SIZE);
    let mods_len = modules.len() as u64 * u64::from(MODULE_ENTRY_SIZE);
    let info_fits = |size: u64| BootError::BootInfoDoesNotFit {
        size,
        kernel_end,
        ram_size,
    };
    let metadata_size = u64::from(INFO_SIZE)
        + cmdline.len() as u64
        + BOOT_LOADER_NAME.len() as u64
        + modules
            .iter()
            .map(|m| m.cmdline.len() as u64 + 1)
            .sum::<u64>()
        + mods_len
        + mmap_len;
    let info_addr = placer
        .alloc(u64::from(INFO_SIZE), PAGE_SIZE)
        .ok_or_else(|| info_fits(metadata_size))?;
    let mut alloc_meta = |size: u64, align: u64| {
        placer
            .alloc(size, align)
            .ok_or_else(|| info_fits(metadata_size))
    };
    let cmdline_addr = alloc_meta(cmdline.len() as u64 + 1, 1)?;
    let name_addr = alloc_meta(BOOT_LOADER_NAME.len() as u64 + 1, 1)?;
    let mut mod_string_addrs = Vec::with_capacity(modules.len());
    for m in modules {
        mod_string_addrs.push(alloc_meta(m.cmdline.len() as u64 + 1, 1)?);
    }
    let mods_addr = alloc_meta(mods_len, 4)?;
    let mmap_addr = alloc_meta(mmap_len, 8)?;
    let mut mod_addrs = Vec::with_capacity(modules.len());
    for (index, m) in modules.iter().enumerate() {
        let size = m.data.len() as u64;
        let addr = placer
            .alloc(size, PAGE_SIZE)
            .ok_or(BootError::ModulesDoNotFit {
                index,
                size,
                ram_size,
            })?;
        mod_addrs.push(addr);
    }
    let data_end = placer.cursor.max(kernel_end);

    // --- Write everything --------------------------------------------------
    let mut ram = Ram(ram);
    for s in &image.segments {
        // Validated: file range inside `kernel`, memory range inside RAM.
        let from = s.file_offset as usize;
        let to = (s.file_offset + s.filesz) as usize;
        if let Some(src) = kernel.get(from..to) {
            ram.put_bytes(s.paddr, src);
        }
        ram.zero(s.paddr + s.filesz, s.memsz - s.filesz);
    }

    ram.zero(info_addr, u64::from(INFO_SIZE));
    let field = |off: u32| info_addr + u64::from(off);
    let flags = INFO_FLAG_MEMORY
        | INFO_FLAG_CMDLINE
        | INFO_FLAG_MODS
        | INFO_FLAG_MMAP
        | INFO_FLAG_BOOT_LOADER_NAME;
    ram.put_u32(field(info_offset::FLAGS), flags);
    ram.put_u32(
        field(info_offset::MEM_LOWER),
        (RESERVED_START / 1024) as u32,
    );
    ram.put_u32(
        field(info_offset::MEM_UPPER),
        ((ram_size - RESERVED_END) / 1024) as u32,
    );
    ram.put_u32(field(info_offset::CMDLINE), cmdline_addr as u32);
    ram.put_u32(field(info_offset::MODS_COUNT), modules.len() as u32);
    ram.put_u32(field(info_offset::MODS_ADDR), mods_addr as u32);
    ram.put_u32(field(info_offset::MMAP_LENGTH), mmap_len as u32);
    ram.put_u32(field(info_offset::MMAP_ADDR), mmap_addr as u32);
    ram.put_u32(field(info_offset::BOOT_LOADER_NAME), name_addr as u32);

    ram.put_cstr(cmdline_addr, cmdline);
    ram.put_cstr(name_addr, BOOT_LOADER_NAME);

    for (i, m) in modules.iter().enumerate() {
        let entry = mods_addr + i as u64 * u64::from(MODULE_ENTRY_SIZE);
        let start = mod_addrs[i];
        ram.put_u32(entry, start as u32);
        ram.put_u32(entry + 4, (start + m.data.len() as u64) as u32);
        ram.put_u32(entry + 8, mod_string_addrs[i] as u32);
        ram.put_u32(entry + 12, 0);
        ram.put_cstr(mod_string_addrs[i], &m.cmdline);
        ram.put_bytes(start, m.data);
    }

    for (i, e) in mmap.iter().enumerate() {
        let at = mmap_addr + i as u64 * u64::from(MMAP_ENTRY_SIZE);
        ram.put_u32(at, MMAP_ENTRY_SIZE - 4);
        ram.put_u64(at + 4, e.base);
        ram.put_u64(at + 12, e.length);
        ram.put_u32(at + 20, e.kind);
    }

    Ok(MultibootBoot {
        entry: image.entry,
        eax: MULTIBOOT_BOOTLOADER_MAGIC,
        ebx: info_addr as u32,
        kernel_end: kernel_end as u32,
        data_end: data_end as u32,
    })
}

#[cfg(test)]
mod tests;

pub mod mptable;
pub use mptable::{build_mp_table, MP_TABLE_DEFAULT_BASE, MP_TABLE_SIZE};
