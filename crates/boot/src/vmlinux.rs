//! Direct entry into a decompressed Linux kernel (what a bzImage's own decompressor does,
//! done by the loader on the host).
//!
//! A bzImage's protected-mode part is a small decompressor plus the compressed kernel
//! (`payload_offset` / `payload_length`, boot protocol 2.08+). The decompressor inflates
//! it into `vmlinux.bin.all` (the stripped `vmlinux` ELF followed by the relocation table
//! the build appends), picks the run address (randomized with KASLR), copies the `PT_LOAD`
//! segments there, adds the load delta to every 32-bit absolute address the table lists
//! and jumps to the kernel's `startup_32` with ESI = the zero page.
//!
//! Inflating XZ runs at the same speed in the guest and on the host (~0.43 s for Debian's
//! 686 kernel either way: it is the LZMA decoder's own speed), so the point of doing it
//! here is that the result can be kept: `ringfold run` caches the decompressed image and
//! later boots of the same bzImage skip the step. Everything else the decompressor does
//! for a 32-bit kernel is reproduced: the placement rules (`CONFIG_PHYSICAL_ALIGN`
//! slots from the preferred address up, clear of everything the loader placed), KASLR
//! (`KASLR_FLAG`, `nokaslr`) and the relocation pass with its bounds check.
//!
//! Pure logic like the rest of the crate: nothing panics on malformed input.

use thiserror::Error;

use super::read_u32;

/// The 6-byte magic of an XZ stream.
pub const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0];

/// Everything wrong with a compressed payload or a decompressed kernel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VmlinuxError {
    #[error("the XZ payload does not decompress: {0}")]
    Xz(String),
    #[error("the payload decompresses to {got} bytes, the size the build appended says {want}")]
    SizeMismatch { got: usize, want: usize },
    #[error("the decompressed kernel is not an ELF file: {0}")]
    NotElf(&'static str),
    #[error("the decompressed kernel: {0}")]
    Elf(crate::BootError),
    #[error("loadable segment {index}: {reason}")]
    BadSegment { index: usize, reason: &'static str },
    #[error("the decompressed kernel has no loadable segment")]
    NoSegments,
    #[error("relocation {index} ({value:#x}) points outside the kernel image")]
    BadRelocation { index: usize, value: u32 },
    #[error("the relocation table has no terminator")]
    UnterminatedRelocations,
}

/// The compressed kernel inside a bzImage, if it is an XZ stream (protocol 2.08+), and the
/// decompressed size the kernel build appends after it.
pub fn xz_payload(bzimage: &[u8], setup_size: usize, version: u16) -> Option<(&[u8], usize)> {
    if version < 0x0208 {
        return None;
    }
    let pm = bzimage.get(setup_size..)?;
    let off = read_u32(bzimage, 0x248)? as usize;
    let len = read_u32(bzimage, 0x24C)? as usize;
    let payload = pm.get(off..off.checked_add(len)?)?;
    if !payload.starts_with(&XZ_MAGIC) || payload.len() < XZ_MAGIC.len() + 4 {
        return None;
    }
    let size = read_u32(payload, payload.len() - 4)? as usize;
    Some((payload, size))
}

/// Inflates an XZ payload (LZMA2, with the x86 BCJ filter Linux uses) that must come to
/// `size` bytes.
pub fn decompress_xz(payload: &[u8], size: usize) -> Result<Vec<u8>, VmlinuxError> {
    let mut dec = xz4rust::XzDecoder::in_heap();
    let mut out = vec![0u8; size];
    let (mut ip, mut op) = (0, 0);
    loop {
        // Once `size` bytes are out, one more byte of room tells a longer stream apart.
        let mut spare = [0u8; 1];
        let dst: &mut [u8] = if op < size { &mut out[op..] } else { &mut spare };
        let r = dec.decode(&payload[ip..], dst).map_err(|e| VmlinuxError::Xz(format!("{e:?}")))?;
        ip += r.input_consumed();
        if op < size {
            op += r.output_produced();
        } else if r.output_produced() > 0 {
            return Err(VmlinuxError::SizeMismatch { got: size + 1, want: size });
        }
        if r.is_end_of_stream() {
            break;
        }
        if !r.made_progress() {
            return Err(VmlinuxError::Xz("the stream ends early".into()));
        }
    }
    if op != size {
        return Err(VmlinuxError::SizeMismatch { got: op, want: size });
    }
    Ok(out)
}

/// One `PT_LOAD` segment of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u32,
    pub offset: u32,
    pub filesz: u32,
    pub memsz: u32,
}

/// A parsed `vmlinux.bin.all`: the segments, the entry point and the relocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vmlinux {
    pub segments: Vec<Segment>,
    /// Physical entry point as linked (`phys_startup_32`).
    pub entry: u32,
    /// Linked virtual minus physical address of every segment (`__PAGE_OFFSET`).
    pub page_offset: u32,
    /// Physical address the kernel was linked to run at (`LOAD_PHYSICAL_ADDR`).
    pub link_base: u32,
    /// End of the segments' file contents (relocations must lie below it).
    pub file_end: u32,
    /// End of the segments in memory (incl. BSS).
    pub mem_end: u32,
    /// Linked virtual addresses of the 32-bit words to which the load delta is added.
    pub relocs: Vec<u32>,
}

/// Parses the decompressed image: an ELF32 x86 executable followed by the 32-bit
/// relocation table (`0` terminator, then the entries, read backwards from the end).
/// `relocatable`: the kernel says it can run elsewhere (then the table must be there).
pub fn parse_vmlinux(image: &[u8], relocatable: bool) -> Result<Vmlinux, VmlinuxError> {
    if image.get(..4) != Some(b"\x7FELF".as_slice()) {
        return Err(VmlinuxError::NotElf("no ELF magic"));
    }
    // The program headers as the Multiboot loader reads them (the ELF checks are shared).
    let (loads, entry) = crate::elf_loads(image).map_err(VmlinuxError::Elf)?;
    let mut segments = Vec::new();
    let mut page_offset = None;
    for (index, (s, vaddr)) in loads.into_iter().enumerate() {
        let bad = |reason| VmlinuxError::BadSegment { index, reason };
        // 32-bit fields in the file: only the end can leave 32 bits.
        let (paddr, offset, filesz, memsz) = (s.paddr as u32, s.file_offset as u32, s.filesz as u32, s.memsz as u32);
        if paddr.checked_add(memsz).is_none() {
            return Err(bad("wraps around 4 GiB"));
        }
        let delta = (vaddr as u32).wrapping_sub(paddr);
        if *page_offset.get_or_insert(delta) != delta {
            return Err(bad("virtual minus physical address differs from the other segments"));
        }
        segments.push(Segment { paddr, offset, filesz, memsz });
    }
    let link_base = segments.iter().map(|s| s.paddr).min().ok_or(VmlinuxError::NoSegments)?;
    let file_end = segments.iter().map(|s| s.paddr + s.filesz).max().unwrap_or(link_base);
    let mem_end = segments.iter().map(|s| s.paddr + s.memsz).max().unwrap_or(link_base);
    let page_offset = page_offset.unwrap_or(0);
    let mut relocs = Vec::new();
    if relocatable {
        let mut at = image.len();
        loop {
            at = at.checked_sub(4).ok_or(VmlinuxError::UnterminatedRelocations)?;
            let r = read_u32(image, at).ok_or(VmlinuxError::UnterminatedRelocations)?;
            if r == 0 {
                break;
            }
            let phys = r.wrapping_sub(page_offset);
            if phys < link_base || phys.checked_add(4).is_none_or(|e| e > file_end) {
                return Err(VmlinuxError::BadRelocation { index: relocs.len(), value: r });
            }
            relocs.push(r);
        }
    }
    Ok(Vmlinux { segments, entry, page_offset, link_base, file_end, mem_end, relocs })
}

impl Vmlinux {
    /// Copies the segments into guest RAM so that the kernel runs at `load` (a multiple of
    /// the kernel's alignment), clears their BSS and relocates it. Returns the entry
    /// point. `ram` must cover `[load, load + (mem_end - link_base))`.
    pub fn place(&self, ram: &mut [u8], image: &[u8], load: u32) -> Option<u32> {
        let delta = load.wrapping_sub(self.link_base);
        let at = |paddr: u32| paddr.checked_sub(self.link_base)?.checked_add(load).map(|a| a as usize);
        // Check everything before writing anything.
        for s in &self.segments {
            let dst = at(s.paddr)?;
            ram.get(dst..dst.checked_add(s.memsz as usize)?)?;
            image.get(s.offset as usize..s.offset as usize + s.filesz as usize)?;
        }
        for s in &self.segments {
            let dst = at(s.paddr)?;
            let (f, m) = (s.filesz as usize, s.memsz as usize);
            ram[dst..dst + f].copy_from_slice(&image[s.offset as usize..s.offset as usize + f]);
            ram[dst + f..dst + m].fill(0);
        }
        if delta != 0 {
            for &r in &self.relocs {
                let p = at(r.wrapping_sub(self.page_offset))?;
                let w = ram.get_mut(p..p + 4)?;
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]).wrapping_add(delta);
                w.copy_from_slice(&v.to_le_bytes());
            }
        }
        at(self.entry)?.try_into().ok()
    }
}

/// The run addresses KASLR may choose for a 32-bit kernel: multiples of `align` from
/// `min` up whose `[slot, slot + size)` lies in one of `free` and below `limit`
/// (the kernel's 512 MiB `KERNEL_IMAGE_SIZE` on i386).
pub fn kaslr_slots(free: &[(u64, u64)], min: u64, align: u64, size: u64, limit: u64) -> Vec<u64> {
    if align == 0 || !align.is_power_of_two() {
        return Vec::new();
    }
    let mut slots = Vec::new();
    for &(s, e) in free {
        let Some(mut slot) = crate::align_up(s.max(min), align) else { continue };
        while slot.checked_add(size).is_some_and(|end| end <= e && end <= limit) {
            slots.push(slot);
            slot += align;
        }
    }
    slots
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal vmlinux.bin.all: ELF header, two PT_LOAD headers (text at the link
    /// base, data + BSS after it), contents, then the relocation table.
    pub(crate) fn image(relocs: &[u32]) -> Vec<u8> {
        const BASE: u32 = 0x100_0000;
        const PO: u32 = 0xC000_0000;
        let mut f = vec![0u8; 0x200];
        f[..4].copy_from_slice(b"\x7FELF");
        f[4] = 1;
        f[5] = 1;
        f[6] = 1;
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&3u16.to_le_bytes());
        f[24..28].copy_from_slice(&BASE.to_le_bytes());
        f[28..32].copy_from_slice(&0x40u32.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&3u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, i: usize, v: [u32; 6]| {
            for (k, x) in v.iter().enumerate() {
                f[0x40 + 32 * i + 4 * k..0x40 + 32 * i + 4 * k + 4].copy_from_slice(&x.to_le_bytes());
            }
        };
        // text: 0x100 bytes at file 0x100; data: 0x40 bytes at file 0x200 + 0x1C0 of BSS.
        ph(&mut f, 0, [crate::PT_LOAD, 0x100, PO + BASE, BASE, 0x100, 0x100]);
        ph(&mut f, 1, [4 /* PT_NOTE */, 0, 0, 0, 0, 0]);
        ph(&mut f, 2, [crate::PT_LOAD, 0x200, PO + BASE + 0x1000, BASE + 0x1000, 0x40, 0x200]);
        for (i, b) in f[0x100..0x200].iter_mut().enumerate() {
            *b = i as u8;
        }
        // A pointer in text to data (linked virtual address) and one in data to text.
        f[0x110..0x114].copy_from_slice(&(PO + BASE + 0x1008).to_le_bytes());
        let mut data = vec![0xAAu8; 0x40];
        data[4..8].copy_from_slice(&(PO + BASE + 0x20).to_le_bytes());
        f.extend_from_slice(&data);
        f.extend_from_slice(&0u32.to_le_bytes());
        for r in relocs {
            f.extend_from_slice(&r.to_le_bytes());
        }
        f
    }

    pub(crate) const RELOCS: [u32; 2] = [0xC100_0010, 0xC100_1004];

    #[test]
    fn parses_segments_entry_and_relocations() {
        let v = parse_vmlinux(&image(&RELOCS), true).unwrap();
        assert_eq!(v.segments.len(), 2);
        assert_eq!(v.segments[1], Segment { paddr: 0x100_1000, offset: 0x200, filesz: 0x40, memsz: 0x200 });
        assert_eq!((v.entry, v.page_offset, v.link_base), (0x100_0000, 0xC000_0000, 0x100_0000));
        assert_eq!((v.file_end, v.mem_end), (0x100_1040, 0x100_1200));
        // Read backwards from the end of the image.
        assert_eq!(v.relocs, vec![0xC100_1004, 0xC100_0010]);
    }

    #[test]
    fn placing_at_the_link_address_copies_and_leaves_pointers_alone() {
        let img = image(&RELOCS);
        let v = parse_vmlinux(&img, true).unwrap();
        let mut ram = vec![0x55u8; 0x200_0000];
        assert_eq!(v.place(&mut ram, &img, 0x100_0000), Some(0x100_0000));
        assert_eq!(&ram[0x100_0000..0x100_0010], &img[0x100..0x110]);
        assert_eq!(&ram[0x100_0010..0x100_0014], &0xC100_1008u32.to_le_bytes());
        assert!(ram[0x100_1040..0x100_1200].iter().all(|&b| b == 0), "BSS cleared");
        assert_eq!(ram[0x100_1200], 0x55, "nothing written past the BSS");
    }

    #[test]
    fn placing_elsewhere_relocates_exactly_the_listed_words() {
        let img = image(&RELOCS);
        let v = parse_vmlinux(&img, true).unwrap();
        let mut ram = vec![0u8; 0x400_0000];
        let load = 0x300_0000;
        assert_eq!(v.place(&mut ram, &img, load), Some(load));
        let word = |a: usize| u32::from_le_bytes(ram[a..a + 4].try_into().unwrap());
        assert_eq!(word(0x300_0010), 0xC100_1008 + 0x200_0000);
        assert_eq!(word(0x300_1004), 0xC100_0020 + 0x200_0000);
        // An unlisted word of text is unchanged.
        assert_eq!(word(0x300_0020), u32::from_le_bytes(img[0x120..0x124].try_into().unwrap()));
        assert!(ram[..0x300_0000].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_images_are_errors_not_panics() {
        let img = image(&RELOCS);
        assert_eq!(parse_vmlinux(&img[..3], true), Err(VmlinuxError::NotElf("no ELF magic")));
        let mut x = img.clone();
        x[4] = 2;
        assert_eq!(parse_vmlinux(&x, true), Err(VmlinuxError::Elf(crate::BootError::WrongElfClass(2))));
        // A relocation pointing into the BSS (not file contents) or outside the kernel.
        for bad in [0xC100_1100u32, 0xC000_0000, 0x10] {
            let x = image(&[bad]);
            assert_eq!(parse_vmlinux(&x, true), Err(VmlinuxError::BadRelocation { index: 0, value: bad }));
        }
        // No terminator at all: every word read back to the start is checked first.
        let mut x = img.clone();
        x.truncate(0x240);
        x.extend_from_slice(&0xC100_0010u32.to_le_bytes());
        assert!(parse_vmlinux(&x, true).is_err());
        // A file size above the memory size, then segment contents beyond the end of the image.
        let mut x = img.clone();
        x[0x40 + 64 + 16..0x40 + 64 + 20].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert_eq!(
            parse_vmlinux(&x, true),
            Err(VmlinuxError::Elf(crate::BootError::SegmentFileSizeTooLarge { index: 2, filesz: 0x10_0000, memsz: 0x200 }))
        );
        x[0x40 + 64 + 20..0x40 + 64 + 24].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert!(matches!(parse_vmlinux(&x, true), Err(VmlinuxError::Elf(crate::BootError::Truncated { what: "ELF segment contents", .. }))));
        // RAM too small to place it: None, RAM untouched.
        let v = parse_vmlinux(&img, true).unwrap();
        let mut ram = vec![7u8; 0x100_1100];
        assert_eq!(v.place(&mut ram, &img, 0x100_0000), None);
        assert!(ram.iter().all(|&b| b == 7));
    }

    #[test]
    fn kaslr_slots_are_aligned_inside_free_ram_and_below_the_limit() {
        const M: u64 = 1 << 20;
        let free = [(M, 100 * M), (112 * M, 128 * M)];
        assert_eq!(kaslr_slots(&free, 16 * M, 16 * M, 17 * M, 512 * M), vec![16 * M, 32 * M, 48 * M, 64 * M, 80 * M]);
        assert_eq!(kaslr_slots(&free, 16 * M, 16 * M, 16 * M, 512 * M), vec![16 * M, 32 * M, 48 * M, 64 * M, 80 * M, 112 * M]);
        assert_eq!(kaslr_slots(&free, 16 * M, 16 * M, 21 * M, 512 * M), vec![16 * M, 32 * M, 48 * M, 64 * M]);
        assert_eq!(kaslr_slots(&free, 16 * M, 16 * M, 16 * M, 64 * M), vec![16 * M, 32 * M, 48 * M]);
        assert!(kaslr_slots(&free, 16 * M, 3 * M, 16 * M, 512 * M).is_empty());
    }

    #[test]
    fn xz_round_trip_of_a_known_stream() {
        // `printf 'ringfold\n' | xz --check=crc32 --x86 --lzma2=preset=0 | od`: an XZ stream
        // with the x86 BCJ filter, as Linux's kernel payloads are made.
        let stream: &[u8] = include_bytes!("testdata/ringfold.xz");
        assert_eq!(decompress_xz(stream, 9).unwrap(), b"ringfold\n");
        assert_eq!(decompress_xz(stream, 8), Err(VmlinuxError::SizeMismatch { got: 9, want: 8 }));
        assert!(decompress_xz(&stream[..stream.len() - 8], 9).is_err());
        assert!(decompress_xz(b"\xFD7zXZ\0garbage", 9).is_err());
    }
}
