//! The register save area shared between Rust and the 32<->64 trampolines.
//!
//! It lives at the fixed address [`CTX_ADDR`](crate::layout::CTX_ADDR) inside the monitor
//! region so that 64-bit trampoline code can reach it with an absolute 32-bit address while
//! every guest segment is truncated below it.

/// Guest GPR indices in [`Ctx::gpr`] (the x86 encoding order).
pub const EAX: usize = 0;
pub const ECX: usize = 1;
pub const EDX: usize = 2;
pub const EBX: usize = 3;
pub const ESP: usize = 4;
pub const EBP: usize = 5;
pub const ESI: usize = 6;
pub const EDI: usize = 7;

/// `exit_site` value written by the signal path (every other value is a translator site).
pub const EXIT_SIGNAL: u32 = 0xFFFF_FFFF;

/// Host register state of the guest at an entry or exit.
#[repr(C, align(64))]
#[derive(Clone)]
pub struct Ctx {
    /// EAX ECX EDX EBX ESP EBP ESI EDI.
    pub gpr: [u32; 8],
    /// Host EFLAGS to run with (arithmetic flags, DF, AC of the guest; IF forced on).
    pub eflags: u32,
    /// On entry: host EIP to start at (in the translation cache). On a signal exit: the
    /// faulting host EIP.
    pub eip: u32,
    /// Host selectors to load: DS ES FS GS SS CS. After an exit, DS ES FS GS SS hold the
    /// selectors the guest code left in them (inline segment loads, SYSENTER, SYSEXIT).
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
    pub ss: u16,
    pub cs: u16,
    /// Which translator site exited, or [`EXIT_SIGNAL`].
    pub exit_site: u32,
    /// Signal exits: signal number, trap number, error code, fault address (CR2 / si_addr).
    pub signo: u32,
    pub trapno: u32,
    pub err: u32,
    pub _pad0: u32,
    pub cr2: u64,
    /// Host stack pointer and FS base saved by `rf_enter_guest`.
    pub host_rsp: u64,
    pub host_fsbase: u64,
    pub _pad1: [u64; 2],
    /// The guest's x87/MMX/SSE state while the monitor runs (FXSAVE image).
    pub fxsave: [u8; 512],
}

impl Default for Ctx {
    fn default() -> Self {
        let mut fx = [0u8; 512];
        // FCW = 0x037F, MXCSR = 0x1F80: the state after FNINIT / power-on.
        fx[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        fx[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        Ctx {
            gpr: [0; 8],
            eflags: 0x202,
            eip: 0,
            ds: 0,
            es: 0,
            fs: 0,
            gs: 0,
            ss: 0,
            cs: 0,
            exit_site: 0,
            signo: 0,
            trapno: 0,
            err: 0,
            _pad0: 0,
            cr2: 0,
            host_rsp: 0,
            host_fsbase: 0,
            _pad1: [0; 2],
            fxsave: fx,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Ctx>() <= 4096);
const _: () = assert!(std::mem::offset_of!(Ctx, fxsave) % 16 == 0);
