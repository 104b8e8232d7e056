use super::*;

const MB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// Tiny image builders

fn mb_header(flags: u32, addr_fields: &[u32]) -> Vec<u8> {
    let checksum = 0u32
        .wrapping_sub(MULTIBOOT_HEADER_MAGIC)
        .wrapping_sub(flags);
    let mut h = Vec::new();
    for v in [MULTIBOOT_HEADER_MAGIC, flags, checksum]
        .iter()
        .chain(addr_fields)
    {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

#[derive(Clone)]
struct Seg {
    p_type: u32,
    vaddr: u32,
    paddr: u32,
    data: Vec<u8>,
    memsz: u32,
}

impl Seg {
    fn load(paddr: u32, data: Vec<u8>, memsz: u32) -> Self {
        Seg {
            p_type: PT_LOAD,
            vaddr: paddr,
            paddr,
            data,
            memsz,
        }
    }
}

#[derive(Clone)]
struct ElfBuilder {
    class: u8,
    data_enc: u8,
    e_type: u16,
    machine: u16,
    entry: u32,
    segs: Vec<Seg>,
    header: Vec<u8>,
}

impl ElfBuilder {
    fn new(entry: u32) -> Self {
        ElfBuilder {
            class: 1,
            data_enc: 1,
            e_type: 2,
            machine: 3,
            entry,
            segs: Vec::new(),
            header: mb_header(HEADER_FLAG_PAGE_ALIGN | HEADER_FLAG_MEMORY_INFO, &[]),
        }
    }

    fn seg(mut self, seg: Seg) -> Self {
        self.segs.push(seg);
        self
    }

    /// Layout: ELF header, program headers, Multiboot header, segment data.
    fn build(&self) -> Vec<u8> {
        let phoff = 52usize;
        let mut off = phoff + 32 * self.segs.len();
        let mb_off = off;
        off += self.header.len();
        let mut data_offs = Vec::new();
        for s in &self.segs {
            off = (off + 15) & !15;
            data_offs.push(off);
            off += s.data.len();
        }
        let mut f = vec![0u8; off];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = self.class;
        f[5] = self.data_enc;
        f[6] = 1;
        let put16 =
            |f: &mut Vec<u8>, at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |f: &mut Vec<u8>, at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut f, 16, self.e_type);
        put16(&mut f, 18, self.machine);
        put32(&mut f, 20, 1);
        put32(&mut f, 24, self.entry);
        put32(&mut f, 28, phoff as u32);
        put16(&mut f, 40, 52);
        put16(&mut f, 42, 32);
        put16(&mut f, 44, self.segs.len() as u16);
        for (i, s) in self.segs.iter().enumerate() {
            let p = phoff + 32 * i;
            put32(&mut f, p, s.p_type);
            put32(&mut f, p + 4, data_offs[i] as u32);
            put32(&mut f, p + 8, s.vaddr);
            put32(&mut f, p + 12, s.paddr);
            put32(&mut f, p + 16, s.data.len() as u32);
            put32(&mut f, p + 20, s.memsz);
            put32(&mut f, p + 24, 5);
            put32(&mut f, p + 28, 0x1000);
            f[data_offs[i]..data_offs[i] + s.data.len()].copy_from_slice(&s.data);
        }
        f[mb_off..mb_off + self.header.len()].copy_from_slice(&self.header);
        f
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Standard test kernel: text at 1 MiB, data+bss at 1 MiB + 8 KiB.
fn sample_kernel() -> Vec<u8> {
    ElfBuilder::new(0x10_0010)
        .seg(Seg::load(0x10_0000, pattern(0x300, 1), 0x300))
        .seg(Seg::load(0x10_2000, pattern(0x10, 2), 0x2000))
        .build()
}

fn ram(size: usize) -> Vec<u8> {
    vec![0xAA; size]
}

fn rd32(ram: &[u8], addr: u32) -> u32 {
    read_u32(ram, addr as usize).expect("in RAM")
}

fn rd64(ram: &[u8], addr: u32) -> u64 {
    u64::from(rd32(ram, addr)) | (u64::from(rd32(ram, addr + 4)) << 32)
}

fn cstr(ram: &[u8], addr: u32) -> String {
    let tail = &ram[addr as usize..];
    let len = tail.iter().position(|&b| b == 0).expect("NUL terminated");
    String::from_utf8(tail[..len].to_vec()).unwrap()
}

fn info(ram: &[u8], boot: &MultibootBoot, off: u32) -> u32 {
    rd32(ram, boot.ebx + off)
}

// ---------------------------------------------------------------------------
// Successful loads

#[test]
fn elf_segments_are_placed_and_bss_zeroed() {
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &sample_kernel(), "", &[]).unwrap();
    assert_eq!(boot.entry, 0x10_0010);
    assert_eq!(boot.eax, 0x2BAD_B002);
    assert_eq!(boot.kernel_end, 0x10_4000);
    assert_eq!(&mem[0x10_0000..0x10_0300], &pattern(0x300, 1)[..]);
    // Untouched between the segments.
    assert!(mem[0x10_0300..0x10_2000].iter().all(|&b| b == 0xAA));
    assert_eq!(&mem[0x10_2000..0x10_2010], &pattern(0x10, 2)[..]);
    assert!(mem[0x10_2010..0x10_4000].iter().all(|&b| b == 0));
    // Info structure: page aligned, right after the kernel.
    assert_eq!(boot.ebx, 0x10_4000);
    assert_eq!(boot.ebx % 0x1000, 0);
    assert!(boot.data_end > boot.ebx);
    assert!(boot.data_end as usize <= mem.len());
}

#[test]
fn info_structure_fields() {
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &sample_kernel(), "console=ttyS0 quiet", &[]).unwrap();
    let flags = info(&mem, &boot, info_offset::FLAGS);
    assert_eq!(flags, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
    assert_eq!(info(&mem, &boot, info_offset::MEM_LOWER), 639);
    assert_eq!(info(&mem, &boot, info_offset::MEM_UPPER), 3 * 1024);
    assert_eq!(info(&mem, &boot, info_offset::BOOT_DEVICE), 0);
    let cmdline = info(&mem, &boot, info_offset::CMDLINE);
    assert_eq!(cstr(&mem, cmdline), "console=ttyS0 quiet");
    let name = info(&mem, &boot, info_offset::BOOT_LOADER_NAME);
    assert_eq!(cstr(&mem, name), "ringfold");
    assert_eq!(info(&mem, &boot, info_offset::MODS_COUNT), 0);
    // Unused fields are zeroed (RAM was filled with 0xAA).
    for off in [28, 32, 36, 40, 52, 56, 60, 68, 72, 76, 80, 84, 88, 112] {
        assert_eq!(info(&mem, &boot, off), 0, "offset {off}");
    }
    // All boot data lies below data_end and above the kernel.
    for addr in [cmdline, name, info(&mem, &boot, info_offset::MMAP_ADDR)] {
        assert!(addr >= boot.kernel_end && addr < boot.data_end);
    }
}

fn read_mmap(mem: &[u8], boot: &MultibootBoot) -> Vec<(u64, u64, u32)> {
    let addr = info(mem, boot, info_offset::MMAP_ADDR);
    let len = info(mem, boot, info_offset::MMAP_LENGTH);
    let mut out = Vec::new();
    let mut at = addr;
    while at < addr + len {
        let size = rd32(mem, at);
        assert_eq!(size, 20);
        out.push((rd64(mem, at + 4), rd64(mem, at + 12), rd32(mem, at + 20)));
        at += size + 4;
    }
    out
}

#[test]
fn memory_map_entries() {
    let mut mem = ram(8 * MB);
    let boot = load_multiboot(&mut mem, &sample_kernel(), "", &[]).unwrap();
    assert_eq!(info(&mem, &boot, info_offset::MMAP_LENGTH), 4 * 24);
    assert_eq!(
        read_mmap(&mem, &boot),
        vec![
            (0, 0x9_FC00, 1),
            (0x9_FC00, 0x400, 2),
            (0xF_0000, 0x1_0000, 2),
            (0x10_0000, 7 * MB as u64, 1),
        ]
    );
    assert_eq!(info(&mem, &boot, info_offset::MEM_UPPER), 7 * 1024);
}

#[test]
fn memory_map_with_exactly_one_mib_of_ram() {
    // A kernel living below the legacy hole; no memory above 1 MiB.
    let kernel = ElfBuilder::new(0x1_0000)
        .seg(Seg::load(0x1_0000, pattern(64, 3), 64))
        .build();
    let mut mem = ram(MB);
    let boot = load_multiboot(&mut mem, &kernel, "x", &[]).unwrap();
    assert_eq!(read_mmap(&mem, &boot).len(), 3);
    assert_eq!(info(&mem, &boot, info_offset::MEM_UPPER), 0);
    assert_eq!(boot.ebx, 0x1_1000);
}

#[test]
fn modules_are_page_aligned_with_strings() {
    let m1 = pattern(5000, 9);
    let m2: Vec<u8> = Vec::new();
    let m3 = pattern(3, 4);
    let mods = [
        Module::new(&m1, "initrd.img root=/dev/ram0"),
        Module::new(&m2, ""),
        Module::new(&m3, "third"),
    ];
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &sample_kernel(), "k", &mods).unwrap();
    assert_eq!(info(&mem, &boot, info_offset::MODS_COUNT), 3);
    let mods_addr = info(&mem, &boot, info_offset::MODS_ADDR);
    let mut prev_end = boot.kernel_end;
    for (i, m) in mods.iter().enumerate() {
        let e = mods_addr + 16 * i as u32;
        let (start, end, string) = (rd32(&mem, e), rd32(&mem, e + 4), rd32(&mem, e + 8));
        assert_eq!(rd32(&mem, e + 12), 0);
        assert_eq!(start % 0x1000, 0, "module {i} page aligned");
        assert!(start >= prev_end);
        assert_eq!((end - start) as usize, m.data.len());
        assert_eq!(&mem[start as usize..end as usize], m.data);
        assert_eq!(cstr(&mem, string), m.cmdline);
        assert!(end <= boot.data_end);
        prev_end = end;
    }
    // Modules do not overlap the metadata.
    let first = rd32(&mem, mods_addr);
    assert!(first >= mods_addr + 48);
    assert!(first > info(&mem, &boot, info_offset::MMAP_ADDR));
}

#[test]
fn boot_data_skips_the_legacy_hole() {
    // Kernel at 64 KiB, module larger than the rest of low memory.
    let kernel = ElfBuilder::new(0x1_0000)
        .seg(Seg::load(0x1_0000, pattern(64, 3), 64))
        .build();
    let big = pattern(700 * 1024, 1);
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &kernel, "", &[Module::new(&big, "big")]).unwrap();
    assert!(boot.ebx < 0x9_FC00);
    let mods_addr = info(&mem, &boot, info_offset::MODS_ADDR);
    assert_eq!(rd32(&mem, mods_addr), 0x10_0000);
    assert_eq!(&mem[0x10_0000..0x10_0000 + big.len()], &big[..]);
    // The reserved region was not written.
    assert!(mem[0x9_FC00..0x10_0000].iter().all(|&b| b == 0xAA));
}

#[test]
fn higher_half_entry_is_translated_to_physical() {
    let mut seg = Seg::load(0x10_0000, pattern(0x100, 5), 0x100);
    seg.vaddr = 0xC010_0000;
    let kernel = ElfBuilder::new(0xC010_0020).seg(seg).build();
    let mut mem = ram(2 * MB);
    let boot = load_multiboot(&mut mem, &kernel, "", &[]).unwrap();
    assert_eq!(boot.entry, 0x10_0020);
    assert_eq!(&mem[0x10_0000..0x10_0100], &pattern(0x100, 5)[..]);
}

#[test]
fn non_load_segments_and_empty_segments_are_ignored() {
    let note = Seg {
        p_type: 4,
        vaddr: 0,
        paddr: 0,
        data: vec![1, 2, 3],
        memsz: 3,
    };
    let kernel = ElfBuilder::new(0x20_0000)
        .seg(note)
        .seg(Seg::load(0, vec![], 0))
        .seg(Seg::load(0x20_0000, pattern(16, 0), 16))
        .build();
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &kernel, "", &[]).unwrap();
    assert_eq!(boot.kernel_end, 0x20_0010);
    assert_eq!(boot.ebx, 0x20_1000);
}

#[test]
fn optional_header_flags_are_accepted() {
    let mut b = ElfBuilder::new(0x10_0000).seg(Seg::load(0x10_0000, vec![0x90; 4], 4));
    b.header = mb_header(1 << 17 | 1 << 31, &[]);
    let mut mem = ram(2 * MB);
    assert!(load_multiboot(&mut mem, &b.build(), "", &[]).is_ok());
}

/// Flat binary using the a.out kludge: 0x40 bytes of code, the header at
/// file offset 0x40, more code after it.
fn aout_kernel(load_end: u32, bss_end: u32, entry: u32) -> Vec<u8> {
    let mut f = pattern(0x40, 7);
    f.extend(mb_header(
        HEADER_FLAG_AOUT_KLUDGE | HEADER_FLAG_PAGE_ALIGN,
        &[0x20_0040, 0x20_0000, load_end, bss_end, entry],
    ));
    f.extend(pattern(0x100, 8));
    f
}

#[test]
fn aout_kludge_loads_flat_binary() {
    let kernel = aout_kernel(0x20_0100, 0x20_3000, 0x20_0004);
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &kernel, "", &[]).unwrap();
    assert_eq!(boot.entry, 0x20_0004);
    assert_eq!(boot.kernel_end, 0x20_3000);
    assert_eq!(&mem[0x20_0000..0x20_0100], &kernel[..0x100]);
    assert!(mem[0x20_0100..0x20_3000].iter().all(|&b| b == 0));
    assert_eq!(boot.ebx, 0x20_3000);
}

#[test]
fn aout_kludge_zero_load_end_and_bss_end_loads_whole_file() {
    let kernel = aout_kernel(0, 0, 0x20_0000);
    let mut mem = ram(4 * MB);
    let boot = load_multiboot(&mut mem, &kernel, "", &[]).unwrap();
    assert_eq!(boot.kernel_end as usize, 0x20_0000 + kernel.len());
    assert_eq!(&mem[0x20_0000..boot.kernel_end as usize], &kernel[..]);
}

#[test]
fn aout_kludge_takes_precedence_over_elf() {
    // A (broken-for-us) ELF64 file whose header uses the a.out kludge.
    let mut b = ElfBuilder::new(0).seg(Seg::load(0x10_0000, vec![0; 8], 8));
    b.class = 2;
    b.header = Vec::new();
    let mut f = b.build();
    let off = f.len();
    let header_addr = 0x10_0000 + off as u32;
    f.extend(mb_header(
        HEADER_FLAG_AOUT_KLUDGE,
        &[header_addr, 0x10_0000, 0, 0x10_8000, 0x10_0000],
    ));
    let mut mem = ram(2 * MB);
    let boot = load_multiboot(&mut mem, &f, "", &[]).unwrap();
    assert_eq!(boot.entry, 0x10_0000);
    assert_eq!(boot.kernel_end, 0x10_8000);
    assert_eq!(&mem[0x10_0000..0x10_0000 + f.len()], &f[..]);
}

// ---------------------------------------------------------------------------
// Errors

fn load_err(kernel: &[u8], ram_size: usize) -> BootError {
    let mut mem = ram(ram_size);
    load_multiboot(&mut mem, kernel, "", &[]).unwrap_err()
}

#[test]
fn missing_header() {
    let mut b = ElfBuilder::new(0x10_0000).seg(Seg::load(0x10_0000, vec![0; 4], 4));
    b.header = vec![0; 12];
    assert_eq!(load_err(&b.build(), 2 * MB), BootError::NoMultibootHeader);
    assert_eq!(load_err(&[], 2 * MB), BootError::NoMultibootHeader);
    // Header beyond the first 8192 bytes is not found.
    let mut f = vec![0u8; 8192];
    f.extend(mb_header(0, &[]));
    assert_eq!(load_err(&f, 2 * MB), BootError::NoMultibootHeader);
    // Misaligned header is not found.
    let mut f = vec![0u8; 2];
    f.extend(mb_header(0, &[]));
    assert_eq!(load_err(&f, 2 * MB), BootError::NoMultibootHeader);
}

#[test]
fn bad_checksum() {
    let mut b = ElfBuilder::new(0x10_0000).seg(Seg::load(0x10_0000, vec![0; 4], 4));
    b.header = mb_header(0, &[]);
    b.header[8] ^= 1;
    let err = load_err(&b.build(), 2 * MB);
    assert!(
        matches!(err, BootError::BadChecksum { offset: 84, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("checksum"));
}

#[test]
fn unsupported_required_flags() {
    for bit in [2u32, 3, 7, 15] {
        let mut b = ElfBuilder::new(0x10_0000).seg(Seg::load(0x10_0000, vec![0; 4], 4));
        b.header = mb_header(1 << bit | 1, &[0; 8]);
        let err = load_err(&b.build(), 2 * MB);
        assert_eq!(err, BootError::UnsupportedRequiredFlag { bit });
        assert!(err.to_string().contains(&format!("bit {bit}")), "{err}");
    }
}

#[test]
fn elf_identification_errors() {
    let base = ElfBuilder::new(0x10_0000).seg(Seg::load(0x10_0000, vec![0; 4], 4));
    let mut b = base.clone();
    b.class = 2;
    assert_eq!(load_err(&b.build(), 2 * MB), BootError::WrongElfClass(2));
    let mut b = base.clone();
    b.data_enc = 2;
    assert_eq!(
        load_err(&b.build(), 2 * MB),
        BootError::WrongElfEndianness(2)
    );
    let mut b = base.clone();
    b.machine = 62;
    assert_eq!(load_err(&b.build(), 2 * MB), BootError::WrongElfMachine(62));
    let mut b = base.clone();
    b.e_type = 3;
    assert_eq!(load_err(&b.build(), 2 * MB), BootError::WrongElfType(3));
    let mut f = base.build();
    f[0] = 0;
    assert_eq!(load_err(&f, 2 * MB), BootError::NotElf);
    let f = base.build();
    assert!(matches!(
        load_err(&f[..40], 2 * MB),
        BootError::NoMultibootHeader
    ));
}

#[test]
fn segment_placement_errors() {
    let one = |paddr: u32, memsz: u32| {
        ElfBuilder::new(paddr.wrapping_add(0x10))
            .seg(Seg::load(paddr, vec![0; 0x20], memsz))
            .build()
    };
    assert!(matches!(
        load_err(&one(0x800, 0x1000), 4 * MB),
        BootError::SegmentInPageZero { addr: 0x800, .. }
    ));
    let err = load_err(&one(0x3F_F000, 0x2000), 4 * MB);
    assert!(matches!(
        err,
        BootError::SegmentDoesNotFit {
            addr: 0x3F_F000,
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("segment at 0x3ff000 does not fit in guest RAM of 4 MiB"),
        "{err}"
    );
    assert!(matches!(
        load_err(&one(0xFFFF_F000, 0xFFFF_FFFF), 4 * MB),
        BootError::SegmentDoesNotFit { .. }
    ));
    assert!(matches!(
        load_err(&one(0xB_8000, 0x100), 4 * MB),
        BootError::SegmentInReservedRegion { .. }
    ));
    assert!(matches!(
        load_err(&one(0x9_F000, 0x1000), 4 * MB),
        BootError::SegmentInReservedRegion { .. }
    ));
    let overlapping = ElfBuilder::new(0x10_0000)
        .seg(Seg::load(0x10_1000, vec![0; 4], 0x100))
        .seg(Seg::load(0x10_0000, vec![0; 4], 0x1001))
        .build();
    assert_eq!(
        load_err(&overlapping, 4 * MB),
        BootError::SegmentsOverlap {
            first: 0x10_0000,
            second: 0x10_1000
        }
    );
}

#[test]
fn entry_and_size_errors() {
    let outside = ElfBuilder::new(0x20_0000)
        .seg(Seg::load(0x10_0000, vec![0; 4], 0x100))
        .build();
    assert_eq!(
        load_err(&outside, 4 * MB),
        BootError::EntryNotInSegment { entry: 0x20_0000 }
    );
    let too_big = ElfBuilder::new(0x10_0000)
        .seg(Seg::load(0x10_0000, vec![0; 0x20], 0x10))
        .build();
    assert!(matches!(
        load_err(&too_big, 4 * MB),
        BootError::SegmentFileSizeTooLarge { .. }
    ));
    let no_load = ElfBuilder::new(0x10_0000)
        .seg(Seg::load(0x10_0000, vec![], 0))
        .build();
    assert_eq!(load_err(&no_load, 4 * MB), BootError::NoLoadableSegments);
    // Segment contents cut off.
    let f = sample_kernel();
    let err = load_err(&f[..f.len() - 1], 4 * MB);
    assert!(matches!(err, BootError::Truncated { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated"));
}

#[test]
fn aout_kludge_errors() {
    assert_eq!(
        load_err(&aout_kernel(0x20_0100, 0x20_3000, 0x20_3000), 4 * MB),
        BootError::EntryNotInSegment { entry: 0x20_3000 }
    );
    assert!(matches!(
        load_err(&aout_kernel(0x1F_0000, 0, 0x20_0000), 4 * MB),
        BootError::BadAoutKludge(_)
    ));
    assert!(matches!(
        load_err(&aout_kernel(0x20_0100, 0x20_0080, 0x20_0000), 4 * MB),
        BootError::BadAoutKludge(_)
    ));
    assert!(matches!(
        load_err(&aout_kernel(0x20_1000, 0, 0x20_0000), 4 * MB),
        BootError::Truncated { .. }
    ));
    // header_addr - load_addr larger than the header offset (0x40).
    let mut f = vec![0u8; 0x40];
    f.extend(mb_header(
        HEADER_FLAG_AOUT_KLUDGE,
        &[0x20_0080, 0x20_0000, 0, 0, 0x20_0000],
    ));
    assert!(matches!(load_err(&f, 4 * MB), BootError::BadAoutKludge(_)));
    // Address fields cut off.
    let mut f = vec![0u8; 0x40];
    f.extend(mb_header(HEADER_FLAG_AOUT_KLUDGE, &[0x20_0040, 0x20_0000]));
    assert!(matches!(load_err(&f, 4 * MB), BootError::Truncated { .. }));
}

#[test]
fn ram_size_errors() {
    assert_eq!(
        load_err(&sample_kernel(), MB - 1),
        BootError::RamTooSmall {
            size: MB as u64 - 1
        }
    );
}

#[test]
fn boot_info_and_modules_must_fit() {
    // Kernel ending right at the end of RAM: no room for the info structure.
    let kernel = ElfBuilder::new(0x1F_F000)
        .seg(Seg::load(0x1F_F000, vec![0; 4], 0x1000))
        .build();
    let err = load_err(&kernel, 2 * MB);
    assert!(
        matches!(err, BootError::BootInfoDoesNotFit { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not fit"));

    let big = vec![1u8; 3 * MB];
    let small = vec![2u8; 10];
    let mut mem = ram(4 * MB);
    let err = load_multiboot(
        &mut mem,
        &sample_kernel(),
        "",
        &[Module::new(&small, "a"), Module::new(&big, "b")],
    )
    .unwrap_err();
    assert_eq!(
        err,
        BootError::ModulesDoNotFit {
            index: 1,
            size: 3 * MB as u64,
            ram_size: 4 * MB as u64
        }
    );
    // Nothing was written on error.
    assert!(mem.iter().all(|&b| b == 0xAA));
}

#[test]
fn nul_bytes_in_command_lines_are_refused() {
    let mut mem = ram(4 * MB);
    assert_eq!(
        load_multiboot(&mut mem, &sample_kernel(), "a\0b", &[]).unwrap_err(),
        BootError::CmdlineContainsNul
    );
    let m = [Module::new(&[], "ok"), Module::new(&[], "x\0")];
    assert_eq!(
        load_multiboot(&mut mem, &sample_kernel(), "", &m).unwrap_err(),
        BootError::ModuleCmdlineContainsNul { index: 1 }
    );
}

// ---------------------------------------------------------------------------
// Robustness

/// xorshift64* — deterministic, no external crates.
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
    let m = pattern(100, 3);
    let modules = [Module::new(&m, "mod")];
    let elf = ElfBuilder::new(0x10_0010)
        .seg(Seg::load(0x10_0000, pattern(0x300, 1), 0x300))
        .seg(Seg::load(0x10_2000, pattern(0x10, 2), 0x2000))
        .seg(Seg {
            p_type: 4,
            vaddr: 0,
            paddr: 0,
            data: vec![9; 8],
            memsz: 8,
        })
        .build();
    let aout = aout_kernel(0x20_0100, 0x20_3000, 0x20_0004);
    let interesting: [u32; 10] = [
        0,
        1,
        0x1000,
        0x10_0000,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_F000,
        0xFFFF_FFFF,
        0xFFFF_FFFC,
        MULTIBOOT_HEADER_MAGIC,
    ];
    let mut mem = vec![0u8; 2 * MB];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut successes = 0;
    for image in [&elf, &aout] {
        // Every truncation.
        for len in 0..=image.len() {
            let _ = load_multiboot(&mut mem, &image[..len], "c", &modules);
        }
        // Random mutations.
        for _ in 0..4000 {
            let mut f = image.clone();
            let n = 1 + rng.below(4);
            for _ in 0..n {
                if f.len() < 4 {
                    break;
                }
                match rng.below(4) {
                    0 => {
                        let i = rng.below(f.len());
                        f[i] = rng.next() as u8;
                    }
                    1 => {
                        // Overwrite an aligned word in the headers with an
                        // interesting value.
                        let i = rng.below(f.len().min(200) / 4) * 4;
                        let v = interesting[rng.below(interesting.len())];
                        f[i..i + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    2 => {
                        let i = rng.below(f.len() - 1);
                        let v = rng.next() as u16;
                        f[i..i + 2].copy_from_slice(&v.to_le_bytes());
                    }
                    _ => {
                        let len = rng.below(f.len());
                        f.truncate(len.max(1));
                    }
                }
            }
            // Keep the Multiboot checksum valid half of the time so the
            // mutations reach the ELF / a.out parsers.
            if rng.below(2) == 0 {
                let limit = f.len().min(MULTIBOOT_SEARCH_LIMIT);
                if let Some(o) = (0..limit.saturating_sub(11))
                    .step_by(4)
                    .find(|&o| read_u32(&f, o) == Some(MULTIBOOT_HEADER_MAGIC))
                {
                    let flags = read_u32(&f, o + 4).unwrap();
                    let sum = 0u32
                        .wrapping_sub(MULTIBOOT_HEADER_MAGIC)
                        .wrapping_sub(flags);
                    f[o + 8..o + 12].copy_from_slice(&sum.to_le_bytes());
                }
            }
            let ram_size = [MB, 2 * MB][rng.below(2)];
            if load_multiboot(&mut mem[..ram_size], &f, "cmd", &modules).is_ok() {
                successes += 1;
            }
        }
    }
    // Sanity: some mutations are harmless, so the loader was exercised.
    assert!(successes > 0);
}
