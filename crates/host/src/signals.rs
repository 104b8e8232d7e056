//! Signal entry: guest faults come back to the monitor as exits.
//!
//! Handlers run on an alternate stack (the guest's ESP is not a host stack). The first
//! instructions (TLS-free assembly) switch the FS base back to the host's TLS when the
//! interrupted code was guest code (its CS is an LDT selector); then the Rust handler copies
//! the guest registers into the context page and rewrites the signal frame so that
//! sigreturn lands in `rf_signal_exit`, which returns from `enter_guest`.

use crate::ctx::{Ctx, EXIT_SIGNAL};
use crate::layout::{CTX_ADDR, HOST_CS64, HOST_DS};
use std::mem::offset_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Host FS base of the VM thread, read by the TLS-free signal stub.
static HOST_FSBASE: AtomicU64 = AtomicU64::new(0);

const CSGSFS_OFF: usize =
    offset_of!(libc::ucontext_t, uc_mcontext.gregs) + libc::REG_CSGSFS as usize * 8;

std::arch::global_asm!(
    ".pushsection .text.ringfold_tramp,\"ax\",@progbits",
    ".p2align 4",
    ".globl rf_sig_stub",
    "rf_sig_stub:",
    // rdx = ucontext; its saved CS has TI=1 iff guest code was interrupted.
    "test byte ptr [rdx + {csoff}], 4",
    "jz 1f",
    "mov rax, qword ptr [rip + {fsb}]",
    "wrfsbase rax",
    "1:",
    "jmp {handler}",
    ".popsection",
    csoff = const CSGSFS_OFF,
    fsb = sym HOST_FSBASE,
    handler = sym handler,
);

extern "C" {
    fn rf_sig_stub();
}

const SIGNALS: [libc::c_int; 6] =
    [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, crate::timer::KICK_SIGNAL];

/// Set when a kick signal arrived while the monitor (not guest code) was running.
pub static KICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn handler(sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t for SA_SIGINFO handlers.
    let uc = unsafe { &mut *(uc as *mut libc::ucontext_t) };
    let g = &mut uc.uc_mcontext.gregs;
    let csgsfs = g[libc::REG_CSGSFS as usize] as u64;
    if sig == crate::timer::KICK_SIGNAL && csgsfs & 4 == 0 {
        // The monitor itself was running: it checks the flag before the next entry.
        KICKED.store(true, Ordering::Relaxed);
        return;
    }
    if csgsfs & 4 == 0 {
        // A fault in 64-bit code is a monitor bug: report it and die with the default action.
        let msg = b"ringfold: fatal fault inside the monitor itself\n";
        // SAFETY: write(2) and signal(2) are async-signal-safe; we then re-fault.
        unsafe {
            libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
            libc::signal(sig, libc::SIG_DFL);
        }
        return;
    }
    // SAFETY: guest code only runs inside `enter_guest`, with the context page mapped and
    // no Rust reference to it alive.
    let ctx = unsafe { &mut *(CTX_ADDR as u64 as *mut Ctx) };
    use libc::*;
    let regs = [REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI];
    for (i, r) in regs.iter().enumerate() {
        ctx.gpr[i] = g[*r as usize] as u32;
    }
    ctx.eflags = g[REG_EFL as usize] as u32;
    ctx.eip = g[REG_RIP as usize] as u32;
    ctx.signo = sig as u32;
    ctx.trapno = g[REG_TRAPNO as usize] as u32;
    ctx.err = g[REG_ERR as usize] as u32;
    ctx.cr2 = g[REG_CR2 as usize] as u64;
    ctx.exit_site = EXIT_SIGNAL;
    // The interrupted SS (bits 48..63 of the CS/GS/FS/SS slot).
    ctx.ss = (csgsfs >> 48) as u16;
    // Resume in 64-bit mode at rf_signal_exit with clean flags and the host data selector
    // as SS (restored by sigreturn because UC_SIGCONTEXT_SS is set).
    g[REG_RIP as usize] = crate::tramp::signal_exit_addr() as i64;
    g[REG_EFL as usize] = 0x202;
    g[REG_RSP as usize] = ctx.host_rsp as i64;
    let kept = csgsfs & 0x0000_FFFF_FFFF_0000;
    g[REG_CSGSFS as usize] = (kept | HOST_CS64 as u64 | ((HOST_DS as u64) << 48)) as i64;
    uc.uc_flags |= 0x2; // UC_SIGCONTEXT_SS
}

static INSTALL: Once = Once::new();

/// Installs the fault handlers (once per process) and an alternate signal stack for the
/// calling thread, and records the calling thread's FS base for the signal stub.
pub fn install_for_current_thread() -> std::io::Result<()> {
    let mut err = None;
    INSTALL.call_once(|| {
        for s in SIGNALS {
            // SAFETY: sigaction with a zeroed struct plus our handler and flags.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = rf_sig_stub as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(s, &sa, std::ptr::null_mut()) != 0 {
                    err = Some(std::io::Error::last_os_error());
                }
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    thread_local! {
        static ALTSTACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !ALTSTACK.get() {
        const SZ: usize = 256 * 1024;
        // SAFETY: a fresh anonymous mapping, leaked on purpose: it backs the thread's
        // signal stack for the rest of the thread's life.
        unsafe {
            let p = libc::mmap(std::ptr::null_mut(), SZ, libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            if p == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            let ss = libc::stack_t { ss_sp: p, ss_flags: 0, ss_size: SZ };
            if libc::sigaltstack(&ss, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        ALTSTACK.set(true);
    }
    let fsbase: u64;
    // SAFETY: rdfsbase is enabled (checked by `check_host`) and has no side effects.
    unsafe { std::arch::asm!("rdfsbase {}", out(reg) fsbase, options(nomem, nostack)) };
    HOST_FSBASE.store(fsbase, Ordering::Relaxed);
    Ok(())
}
