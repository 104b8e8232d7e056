//! Fixed layout of the low 4 GiB of the VM process (DESIGN.md decisions 1 and 2).
//!
//! ```text
//! 0x0000_0000 .. 0x0000_1000   unmappable (vm.mmap_min_addr): guest accesses are emulated
//! 0x0000_1000 .. ram_size      guest RAM (memfd), guest-physical = guest-linear while paging is off
//! ram_size    .. MONITOR_START reserved PROT_NONE (guest accesses fault and are emulated)
//! MONITOR_START                monitor region: vCPU context page, translation cache
//! ```
//! Every guest data segment is shadowed with its limit truncated below `MONITOR_START`, so
//! no guest memory access can reach the monitor region natively.

/// First linear address of the monitor region; guest segments never reach it.
pub const MONITOR_START: u32 = 0xFF00_0000;
/// The vCPU context page (register save area shared with the trampolines).
pub const CTX_ADDR: u32 = MONITOR_START;
/// The virtual-flags page: the guest's virtual IF and a pending-interrupt byte, read and
/// written by inline CLI/STI translations through a monitor data segment (LDT slot
/// `VCPU_DS_SLOT`, limit 4 KiB) that only translator-emitted code ever loads.
pub const VCPU_ADDR: u32 = MONITOR_START + 0x1000;
/// Offsets in the virtual-flags page.
pub const VCPU_VIF: u32 = 0;
pub const VCPU_PENDING: u32 = 1;
/// The guest's system flags other than IF (TF, IOPL, NT, AC, ID) as a dword.
pub const VCPU_VSYS: u32 = 4;
/// Start of the translation cache (executable view).
pub const TC_START: u32 = MONITOR_START + 0x1_0000;
/// End (exclusive) of the translation cache; the last 64 KiB stay unmapped as a guard.
pub const TC_END: u64 = 0x1_0000_0000 - 0x1_0000;
/// Size of the translation cache in bytes.
pub const TC_SIZE: usize = (TC_END - TC_START as u64) as usize;
/// Lowest linear address that can be mapped by an unprivileged process.
pub const LOW_LIMIT: u32 = 0x1000;
/// The 64-bit user code selector of the Linux x86-64 kernel (host, never a guest value).
pub const HOST_CS64: u16 = 0x33;
/// The host's flat user data selector, used as SS when returning to 64-bit code.
pub const HOST_DS: u16 = 0x2b;
