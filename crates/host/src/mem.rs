//! The address-space jail, guest RAM (memfd) and the monitor region.

use crate::hostpages::{HostOp, HostPages};
use crate::layout::*;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// Errors from setting up the VM address space.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("cannot reserve the low 4 GiB of the address space ({0}); is another VM or library mapped there?")]
    Reserve(io::Error),
    #[error("guest RAM size {0} bytes is invalid: it must be a multiple of 4 KiB between 1 MiB and {max} MiB", max = MAX_RAM >> 20)]
    BadRamSize(u64),
    #[error("memfd_create/ftruncate failed: {0}")]
    Memfd(io::Error),
    #[error("mmap failed: {0}")]
    Map(io::Error),
    #[error("mprotect failed: {0}")]
    Protect(io::Error),
}

/// Largest guest RAM the jail can hold below the monitor region (leaving room for MMIO).
pub const MAX_RAM: u64 = 0xC000_0000;

/// Protection of a guest data page: readable, optionally writable, never executable.
fn data_prot(writable: bool) -> i32 {
    libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 }
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

fn memfd(name: &std::ffi::CStr, size: u64) -> Result<OwnedFd, MemError> {
    // SAFETY: memfd_create takes a valid NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(MemError::Memfd(last_err()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on our own memfd.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } != 0 {
        return Err(MemError::Memfd(last_err()));
    }
    Ok(fd)
}

/// Maps `len` bytes of `fd` at offset `off`, at a fixed low address or anywhere (`at` None).
fn map_fd(at: Option<u64>, len: usize, prot: i32, fd: &OwnedFd, off: u64) -> Result<*mut u8, MemError> {
    let (addr, flags) = match at {
        Some(a) => (a as *mut libc::c_void, libc::MAP_SHARED | libc::MAP_FIXED),
        None => (std::ptr::null_mut(), libc::MAP_SHARED),
    };
    // SAFETY: fixed mappings only ever replace parts of our own PROT_NONE reservation of
    // the low 4 GiB (callers pass addresses inside it); other mappings go anywhere.
    let p = unsafe { libc::mmap(addr, len, prot, flags, fd.as_raw_fd(), off as libc::off_t) };
    if p == libc::MAP_FAILED {
        return Err(MemError::Map(last_err()));
    }
    Ok(p as *mut u8)
}

/// The VM's address space: the reserved low 4 GiB, guest RAM and the monitor region.
pub struct AddressSpace {
    ram_fd: OwnedFd,
    ram_size: u64,
    /// Monitor-side view of all guest RAM (including page 0), above 4 GiB.
    ram_alias: NonNull<u8>,
    tc_fd: OwnedFd,
    /// Monitor-side writable view of the translation cache.
    tc_alias: NonNull<u8>,
    /// What the shadow mappings in the guest part of the jail hold (ghosts: see `hostpages`).
    pages: HostPages,
    ops: Vec<HostOp>,
}

impl AddressSpace {
    /// Reserves [4 KiB, 4 GiB), creates guest RAM and maps it at guest-physical = linear,
    /// maps the context page and the translation cache (read+exec low, read+write alias).
    pub fn new(ram_size: u64) -> Result<Self, MemError> {
        if !((1 << 20)..=MAX_RAM).contains(&ram_size) || !ram_size.is_multiple_of(4096) {
            return Err(MemError::BadRamSize(ram_size));
        }
        let len = (1u64 << 32) - LOW_LIMIT as u64;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; PROT_NONE
        // reservation of address space we then own.
        let p = unsafe {
            libc::mmap(
                LOW_LIMIT as u64 as *mut libc::c_void,
                len as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MemError::Reserve(last_err()));
        }
        if p as u64 != LOW_LIMIT as u64 {
            // SAFETY: unmapping the mapping we just got at a wrong place (old kernels).
            unsafe { libc::munmap(p, len as usize) };
            return Err(MemError::Reserve(io::Error::other("kernel ignored MAP_FIXED_NOREPLACE")));
        }
        let ram_fd = memfd(c"ringfold-ram", ram_size)?;
        map_fd(Some(LOW_LIMIT as u64), (ram_size - LOW_LIMIT as u64) as usize,
            libc::PROT_READ | libc::PROT_WRITE, &ram_fd, LOW_LIMIT as u64)?;
        let ram_alias = map_fd(None, ram_size as usize, libc::PROT_READ | libc::PROT_WRITE, &ram_fd, 0)?;

        // Context page: anonymous, read/write, only reachable from 64-bit code.
        // SAFETY: replaces part of our own reservation.
        let c = unsafe {
            libc::mmap(CTX_ADDR as u64 as *mut libc::c_void, 4096, libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1, 0)
        };
        if c == libc::MAP_FAILED {
            return Err(MemError::Map(last_err()));
        }
        // SAFETY: replaces part of our own reservation (the virtual-flags page).
        let v = unsafe {
            libc::mmap(VCPU_ADDR as u64 as *mut libc::c_void, 4096, libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1, 0)
        };
        if v == libc::MAP_FAILED {
            return Err(MemError::Map(last_err()));
        }
        let tc_fd = memfd(c"ringfold-tc", TC_SIZE as u64)?;
        map_fd(Some(TC_START as u64), TC_SIZE, libc::PROT_READ | libc::PROT_EXEC, &tc_fd, 0)?;
        let tc_alias = map_fd(None, TC_SIZE, libc::PROT_READ | libc::PROT_WRITE, &tc_fd, 0)?;
        Ok(AddressSpace {
            ram_fd,
            ram_size,
            ram_alias: NonNull::new(ram_alias).expect("mmap returned NULL"),
            tc_fd,
            tc_alias: NonNull::new(tc_alias).expect("mmap returned NULL"),
            pages: HostPages::new(MONITOR_START >> 12),
            ops: Vec::new(),
        })
    }

    pub fn ram_size(&self) -> u64 {
        self.ram_size
    }

    /// Guest RAM as a byte slice (monitor view). The guest only runs inside
    /// `Vcpu::run`, which takes `&mut self` of the owner, so no slice outlives a guest run
    /// that could change the bytes under it.
    pub fn ram(&self) -> &[u8] {
        // SAFETY: ram_alias maps ram_size bytes for the life of self.
        unsafe { std::slice::from_raw_parts(self.ram_alias.as_ptr(), self.ram_size as usize) }
    }

    /// Guest RAM, writable.
    pub fn ram_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `ram`, and &mut self gives exclusive access on the monitor side.
        unsafe { std::slice::from_raw_parts_mut(self.ram_alias.as_ptr(), self.ram_size as usize) }
    }

    /// The translation cache, writable (monitor view of the code at `TC_START`).
    pub fn tc_mut(&mut self) -> &mut [u8] {
        // SAFETY: tc_alias maps TC_SIZE bytes for the life of self.
        unsafe { std::slice::from_raw_parts_mut(self.tc_alias.as_ptr(), TC_SIZE) }
    }

    /// Changes the protection of a page-aligned range of the low guest mapping (used by the
    /// native runner to make test code executable).
    pub fn protect_low(&mut self, addr: u32, len: u32, exec: bool) -> Result<(), MemError> {
        assert!(addr >= LOW_LIMIT && (addr as u64 + len as u64) <= self.ram_size && addr.is_multiple_of(4096));
        let prot = libc::PROT_READ | libc::PROT_WRITE | if exec { libc::PROT_EXEC } else { 0 };
        // SAFETY: the range is inside the guest RAM mapping we own (asserted above).
        if unsafe { libc::mprotect(addr as u64 as *mut libc::c_void, len as usize, prot) } != 0 {
            return Err(MemError::Protect(last_err()));
        }
        Ok(())
    }

    #[allow(dead_code)]
    pub(crate) fn fds(&self) -> (i32, i32) {
        (self.ram_fd.as_raw_fd(), self.tc_fd.as_raw_fd())
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; the guest is not running (we own self).
        unsafe {
            libc::munmap(self.ram_alias.as_ptr() as *mut libc::c_void, self.ram_size as usize);
            libc::munmap(self.tc_alias.as_ptr() as *mut libc::c_void, TC_SIZE);
            libc::munmap(LOW_LIMIT as u64 as *mut libc::c_void, ((1u64 << 32) - LOW_LIMIT as u64) as usize);
        }
    }
}

impl AddressSpace {
    /// The virtual-flags page (see `layout::VCPU_ADDR`).
    pub fn vcpu_page(&mut self) -> &mut [u8; 16] {
        // SAFETY: the page is mapped read/write at VCPU_ADDR for the life of self and only
        // written by guest translations while no Rust reference exists (the guest is not
        // running while &mut self is held).
        unsafe { &mut *(VCPU_ADDR as u64 as *mut [u8; 16]) }
    }

    /// The context page shared with the trampolines.
    pub fn ctx_mut(&mut self) -> &mut crate::ctx::Ctx {
        // SAFETY: the context page is mapped read/write at CTX_ADDR for the life of self,
        // is suitably aligned (page aligned) and only written by the trampolines and the
        // signal handler while the guest runs, i.e. while no Rust reference exists.
        unsafe { &mut *(CTX_ADDR as u64 as *mut crate::ctx::Ctx) }
    }
}

impl AddressSpace {
    /// The writable translation cache and read-only guest RAM at once (the translator
    /// fetches guest code while it writes translations).
    pub fn tc_and_ram(&mut self) -> (&mut [u8], &[u8]) {
        // SAFETY: the two mappings are distinct (different memfds), each valid for the
        // life of self; &mut self guarantees no other monitor-side slice exists.
        unsafe {
            (
                std::slice::from_raw_parts_mut(self.tc_alias.as_ptr(), TC_SIZE),
                std::slice::from_raw_parts(self.ram_alias.as_ptr(), self.ram_size as usize),
            )
        }
    }

    /// Write-protects (or unprotects) one page of the low guest RAM mapping, so that guest
    /// writes to pages holding translated code fault (self-modifying-code detection).
    /// The monitor's own alias of RAM stays writable.
    pub fn set_page_writable(&mut self, page: u32, writable: bool) -> Result<(), MemError> {
        let addr = page << 12;
        if addr < LOW_LIMIT || addr as u64 + 4096 > self.ram_size {
            return Ok(());
        }
        let prot = data_prot(writable);
        // SAFETY: the page lies inside the guest RAM mapping we own (checked above).
        if unsafe { libc::mprotect(addr as u64 as *mut libc::c_void, 4096, prot) } != 0 {
            return Err(MemError::Protect(last_err()));
        }
        Ok(())
    }
}

/// The host's time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; it is available on every x86-64 CPU.
    unsafe { std::arch::x86_64::_rdtsc() }
}

impl AddressSpace {
    fn check_low(&self, lin: u32, len: u32) {
        assert!(lin >= LOW_LIMIT && lin.is_multiple_of(4096) && len.is_multiple_of(4096) && lin as u64 + len as u64 <= MONITOR_START as u64,
            "shadow mapping outside the guest part of the jail: {lin:#x}+{len:#x}");
    }

    /// Maps guest-physical page `pa` of RAM at linear page `lin` (shadow paging).
    pub fn map_guest_page(&mut self, lin: u32, pa: u32, writable: bool) -> Result<(), MemError> {
        self.map_guest_run(lin, pa, 4096, writable)
    }

    /// Makes a linear range unreachable for the guest (its accesses fault). Small ranges keep
    /// their RAM pages mapped PROT_NONE (ghosts), so that mapping them again is cheap.
    pub fn unmap_guest(&mut self, lin: u32, len: u32) -> Result<(), MemError> {
        self.check_low(lin, len);
        self.plan_and_apply(|pages, ops| pages.unmap(lin >> 12, len >> 12, ops))
    }

    /// Lets `plan` decide the host calls (in the reused `ops` buffer) and makes them.
    fn plan_and_apply(&mut self, plan: impl FnOnce(&mut HostPages, &mut Vec<HostOp>)) -> Result<(), MemError> {
        let mut ops = std::mem::take(&mut self.ops);
        plan(&mut self.pages, &mut ops);
        let r = self.apply(&ops);
        ops.clear();
        self.ops = ops;
        r
    }

    fn apply(&self, ops: &[HostOp]) -> Result<(), MemError> {
        for &op in ops {
            match op {
                HostOp::Map { lin_page, pa_page, count, writable } => {
                    map_fd(Some((lin_page as u64) << 12), (count as usize) << 12, data_prot(writable), &self.ram_fd, (pa_page as u64) << 12)?;
                }
                HostOp::Protect { lin_page, count, access } => {
                    let prot = access.map_or(libc::PROT_NONE, data_prot);
                    // SAFETY: the range lies in the guest part of our reservation (callers
                    // checked it with `check_low`); it only changes protections there.
                    if unsafe { libc::mprotect(((lin_page as u64) << 12) as *mut libc::c_void, (count as usize) << 12, prot) } != 0 {
                        return Err(MemError::Protect(last_err()));
                    }
                }
                HostOp::Reserve { lin_page, count } => {
                    // SAFETY: replaces part of our own reservation with a fresh PROT_NONE
                    // mapping (never a hole another allocation could take).
                    let p = unsafe {
                        libc::mmap(((lin_page as u64) << 12) as *mut libc::c_void, (count as usize) << 12, libc::PROT_NONE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED, -1, 0)
                    };
                    if p == libc::MAP_FAILED {
                        return Err(MemError::Map(last_err()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Changes the protection of one shadow-mapped linear page.
    pub fn protect_guest_page(&mut self, lin: u32, writable: bool) -> Result<(), MemError> {
        self.check_low(lin, 4096);
        let prot = data_prot(writable);
        // SAFETY: the page lies in the guest part of our reservation (checked above).
        if unsafe { libc::mprotect(lin as u64 as *mut libc::c_void, 4096, prot) } != 0 {
            return Err(MemError::Protect(last_err()));
        }
        Ok(())
    }

    /// Restores the paging-off view: all RAM (but page 0) at guest-linear = physical.
    pub fn map_identity(&mut self) -> Result<(), MemError> {
        self.pages.reset();
        map_fd(Some(LOW_LIMIT as u64), (self.ram_size - LOW_LIMIT as u64) as usize,
            libc::PROT_READ | libc::PROT_WRITE, &self.ram_fd, LOW_LIMIT as u64).map(|_| ())
    }

    /// Removes the paging-off identity view (shadow pages are then mapped on demand).
    pub fn unmap_identity(&mut self) -> Result<(), MemError> {
        let len = (self.ram_size - LOW_LIMIT as u64) as u32 & !0xFFF;
        self.pages.reset();
        self.apply(&[HostOp::Reserve { lin_page: LOW_LIMIT >> 12, count: len >> 12 }])
    }
}

impl AddressSpace {
    /// Maps a run of `len` bytes of RAM from `pa` at linear `lin` in one call.
    pub fn map_guest_run(&mut self, lin: u32, pa: u32, len: u32, writable: bool) -> Result<(), MemError> {
        self.check_low(lin, len);
        assert!(pa as u64 + len as u64 <= self.ram_size);
        self.plan_and_apply(|pages, ops| pages.map(lin >> 12, pa >> 12, len >> 12, writable, ops))
    }
}
