//! The process LDT (modify_ldt(2)): shadow descriptors and monitor segments.

use std::io;

/// Fields of Linux's `struct user_desc` (see modify_ldt(2)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LdtEntry {
    pub base: u32,
    pub limit: u32,
    pub seg_32bit: bool,
    /// 0 data, 1 expand-down data, 2 code.
    pub contents: u8,
    pub read_exec_only: bool,
    pub limit_in_pages: bool,
    pub seg_not_present: bool,
    pub useable: bool,
}

impl LdtEntry {
    /// Flat 4 GiB 32-bit code segment (execute/read).
    pub const fn flat_code() -> Self {
        LdtEntry { base: 0, limit: 0xFFFFF, seg_32bit: true, contents: 2, read_exec_only: false,
            limit_in_pages: true, seg_not_present: false, useable: false }
    }
}

/// Selector (TI=1, RPL=3) of LDT entry `index`.
pub const fn ldt_selector(index: u16) -> u16 {
    (index << 3) | 4 | 3
}

/// Writes LDT entry `index` (modify_ldt func 0x11). A `None` entry clears the slot.
pub fn write_entry(index: u16, e: Option<&LdtEntry>) -> io::Result<()> {
    let mut words = [0u32; 4];
    words[0] = index as u32;
    match e {
        Some(e) => {
            words[1] = e.base;
            words[2] = e.limit;
            words[3] = (e.seg_32bit as u32)
                | ((e.contents as u32 & 3) << 1)
                | ((e.read_exec_only as u32) << 3)
                | ((e.limit_in_pages as u32) << 4)
                | ((e.seg_not_present as u32) << 5)
                | ((e.useable as u32) << 6);
        }
        // An all-zero descriptor with read_exec_only and seg_not_present set is "empty".
        None => words[3] = (1 << 3) | (1 << 5),
    }
    // SAFETY: modify_ldt reads a 16-byte struct user_desc from a valid pointer.
    let r = unsafe { libc::syscall(libc::SYS_modify_ldt, 0x11, words.as_ptr(), 16usize) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads back raw descriptor `index` of the process LDT (for tests and debugging).
pub fn read_raw(index: u16) -> io::Result<Option<u64>> {
    let mut buf = vec![0u64; index as usize + 1];
    // SAFETY: modify_ldt(0) copies at most `len` bytes into our buffer.
    let r = unsafe { libc::syscall(libc::SYS_modify_ldt, 0, buf.as_mut_ptr(), buf.len() * 8) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if (r as usize) > index as usize * 8 { Some(buf[index as usize]) } else { None })
}
