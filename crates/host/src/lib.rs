//! The small unsafe host layer of ringfold.
//!
//! Everything that needs `unsafe` lives here: the 4 GiB address-space jail and guest RAM
//! (`mem`), the process LDT (`ldt`), the 32<->64 trampolines (`tramp`), signal entry
//! (`signals`) and the seccomp filter (`seccomp`). The monitor (`ringfold-vmm`) is safe code
//! on top of [`HostVm`].

pub mod ctx;
pub mod hostpages;
pub mod layout;
pub mod ldt;
pub mod mem;
pub mod seccomp;
mod signals;
pub mod terminal;
pub mod timer;
mod tramp;

pub use ctx::Ctx;
pub use ldt::{ldt_selector, LdtEntry};
pub use mem::{rdtsc, AddressSpace, MemError};
pub use tramp::{common_exit_addr, write_exit_stub, EXIT_STUB_LEN};

use std::sync::atomic::{AtomicBool, Ordering};

/// LDT slot of the flat code segment all translated code runs in.
pub const TC_CS_SLOT: u16 = 0;
/// LDT slot of a flat read/write data segment (native runner only; never given to guests).
pub const FLAT_DS_SLOT: u16 = 1;
/// LDT slot of the virtual-flags page's data segment (translator-emitted code only).
pub const VCPU_DS_SLOT: u16 = 2;
/// Its selector.
pub const VCPU_SEL: u16 = ldt::ldt_selector(VCPU_DS_SLOT);
/// First LDT slot available for shadow descriptors.
pub const FIRST_SHADOW_SLOT: u16 = 3;
/// LDT slots of the stack segments inline SYSENTER and SYSEXIT load (the kernel's and the
/// user's flat SS that IA32_SYSENTER_CS defines): only translator-emitted code loads them,
/// so SS holding one of them at an exit tells the monitor which transition ran last.
pub const SYSENTER_SS_SLOT: u16 = 70;
pub const SYSEXIT_SS_SLOT: u16 = 71;

/// Errors from creating the host side of a VM.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("this host CPU/kernel does not allow FSGSBASE instructions in user mode (Linux >= 5.9 on a CPU with FSGSBASE is required)")]
    NoFsGsBase,
    #[error("only one VM can exist in a process at a time")]
    Busy,
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error("modify_ldt failed: {0}")]
    Ldt(std::io::Error),
    #[error("installing signal handlers failed: {0}")]
    Signals(std::io::Error),
    #[error("installing the seccomp filter failed: {0}")]
    Seccomp(#[from] seccompiler::Error),
}

static VM_EXISTS: AtomicBool = AtomicBool::new(false);

/// The host side of one VM: its address space, LDT and signal set-up.
/// Guest code must be entered from the thread that created it.
pub struct HostVm {
    space: AddressSpace,
}

fn has_fsgsbase() -> bool {
    const HWCAP2_FSGSBASE: u64 = 1 << 1;
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP2) & HWCAP2_FSGSBASE != 0 }
}

impl HostVm {
    /// Reserves the address space, creates `ram_size` bytes of guest RAM and prepares the
    /// LDT and signal handling on the calling thread.
    pub fn new(ram_size: u64) -> Result<Self, HostError> {
        if !has_fsgsbase() {
            return Err(HostError::NoFsGsBase);
        }
        if VM_EXISTS.swap(true, Ordering::AcqRel) {
            return Err(HostError::Busy);
        }
        let r = (|| {
            let mut space = AddressSpace::new(ram_size)?;
            *space.ctx_mut() = Ctx::default();
            ldt::write_entry(TC_CS_SLOT, Some(&LdtEntry::flat_code())).map_err(HostError::Ldt)?;
            let flat_data = LdtEntry { contents: 0, ..LdtEntry::flat_code() };
            ldt::write_entry(FLAT_DS_SLOT, Some(&flat_data)).map_err(HostError::Ldt)?;
            let vcpu = LdtEntry { base: layout::VCPU_ADDR, limit: 0xFFF, limit_in_pages: false, ..flat_data };
            ldt::write_entry(VCPU_DS_SLOT, Some(&vcpu)).map_err(HostError::Ldt)?;
            signals::install_for_current_thread().map_err(HostError::Signals)?;
            Ok(HostVm { space })
        })();
        if r.is_err() {
            VM_EXISTS.store(false, Ordering::Release);
        }
        r
    }

    pub fn space(&self) -> &AddressSpace {
        &self.space
    }

    pub fn space_mut(&mut self) -> &mut AddressSpace {
        &mut self.space
    }

    pub fn ctx_mut(&mut self) -> &mut Ctx {
        self.space.ctx_mut()
    }

    /// Writes (or clears) a process LDT entry.
    pub fn set_ldt(&mut self, slot: u16, e: Option<&LdtEntry>) -> Result<(), HostError> {
        ldt::write_entry(slot, e).map_err(HostError::Ldt)
    }

    /// Enters 32-bit code with the state in the context page and returns at the next exit
    /// (a translator site's far jump to the host, or a fault delivered as a signal).
    ///
    /// The caller (the monitor) guarantees that `ctx.eip` is code it generated and that
    /// every selector in the context names an LDT entry it installed; both are upheld by
    /// construction in `ringfold-vmm`, which never hands guest-chosen selectors or EIPs to
    /// the host.
    pub fn enter(&mut self) {
        // SAFETY: see the doc comment; signal handlers are installed for this thread by `new`.
        unsafe { tramp::enter_guest() }
    }

    /// Takes (and clears) the flag set by a kick signal that arrived while monitor code ran.
    pub fn take_kick(&mut self) -> bool {
        signals::KICKED.swap(false, Ordering::Relaxed)
    }

    /// Installs the seccomp filter (irreversible for the process).
    pub fn lock_down(&mut self) -> Result<(), HostError> {
        seccomp::install()?;
        Ok(())
    }
}

impl Drop for HostVm {
    fn drop(&mut self) {
        VM_EXISTS.store(false, Ordering::Release);
    }
}
