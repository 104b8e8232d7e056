//! 32<->64-bit trampolines (TLS-free assembly).
//!
//! * `rf_enter_guest` (64-bit, called from Rust): saves the host callee-saved registers,
//!   stack and FS base, restores the guest's FPU state, loads the guest's shadow selectors
//!   and IRETQs into 32-bit compatibility-mode code at `Ctx::eip`.
//! * `rf_common_exit` (64-bit): reached by a far jump to the host's 64-bit code selector
//!   from a per-site stub in the translation cache (`mov r11d, site; movabs r10, ...;
//!   jmp r10`). Saves the guest GPRs and EFLAGS, then the common tail.
//! * `rf_signal_exit` (64-bit): where the signal handler sends a guest fault on sigreturn;
//!   the handler has already copied the guest registers into the context.
//! * The common tail saves the guest FPU state, resets FCW/MXCSR for Rust, switches the FS
//!   base back to the host's TLS and returns to the Rust caller of `rf_enter_guest`.
//!
//! Nothing here touches the guest stack: guest ESP is saved before RSP is switched, so a
//! guest with an invalid ESP still exits cleanly.

use crate::ctx::Ctx;
use crate::layout::CTX_ADDR;
use std::mem::offset_of;

std::arch::global_asm!(
    ".pushsection .text.ringfold_tramp,\"ax\",@progbits",
    ".p2align 4",
    ".globl rf_enter_guest",
    "rf_enter_guest:",
    "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
    "mov r10d, {ctx}",
    "mov [r10 + {host_rsp}], rsp",
    "rdfsbase rax",
    "mov [r10 + {host_fs}], rax",
    "fxrstor [r10 + {fx}]",
    "mov ds, word ptr [r10 + {ds}]",
    "mov es, word ptr [r10 + {es}]",
    "mov fs, word ptr [r10 + {fs}]",
    "mov gs, word ptr [r10 + {gs}]",
    "movzx eax, word ptr [r10 + {ss}]", "push rax",
    "mov eax, dword ptr [r10 + {esp}]", "push rax",
    "mov eax, dword ptr [r10 + {eflags}]", "push rax",
    "movzx eax, word ptr [r10 + {cs}]", "push rax",
    "mov eax, dword ptr [r10 + {eip}]", "push rax",
    "mov eax, dword ptr [r10 + {eax}]",
    "mov ecx, dword ptr [r10 + {ecx}]",
    "mov edx, dword ptr [r10 + {edx}]",
    "mov ebx, dword ptr [r10 + {ebx}]",
    "mov ebp, dword ptr [r10 + {ebp}]",
    "mov esi, dword ptr [r10 + {esi}]",
    "mov edi, dword ptr [r10 + {edi}]",
    "iretq",

    ".p2align 4",
    ".globl rf_common_exit",
    "rf_common_exit:",
    "mov r10d, {ctx}",
    "mov dword ptr [r10 + {eax}], eax",
    "mov dword ptr [r10 + {ecx}], ecx",
    "mov dword ptr [r10 + {edx}], edx",
    "mov dword ptr [r10 + {ebx}], ebx",
    "mov dword ptr [r10 + {esp}], esp",
    "mov dword ptr [r10 + {ebp}], ebp",
    "mov dword ptr [r10 + {esi}], esi",
    "mov dword ptr [r10 + {edi}], edi",
    "mov dword ptr [r10 + {site}], r11d",
    // SS as the guest left it (inline SYSENTER/SYSEXIT change it; the signal path takes
    // it from the signal frame).
    "mov word ptr [r10 + {ss}], ss",
    "mov rsp, [r10 + {host_rsp}]",
    "pushfq",
    "pop rax",
    "mov dword ptr [r10 + {eflags}], eax",
    // Rust needs DF=0 and AC=0 (CR0.AM is set by Linux).
    "push 0x202",
    "popfq",
    "jmp 2f",

    ".p2align 4",
    ".globl rf_signal_exit",
    "rf_signal_exit:",
    "mov r10d, {ctx}",
    "mov rsp, [r10 + {host_rsp}]",
    "2:",
    // The data segment registers as the guest left them (inline segment loads change
    // them; a signal delivery and sigreturn to 64-bit code keep them).
    "mov word ptr [r10 + {ds}], ds",
    "mov word ptr [r10 + {es}], es",
    "mov word ptr [r10 + {fs}], fs",
    "mov word ptr [r10 + {gs}], gs",
    "fxsave [r10 + {fx}]",
    "fninit",
    "push 0x1f80",
    "ldmxcsr [rsp]",
    "pop rax",
    "mov rax, [r10 + {host_fs}]",
    "wrfsbase rax",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
    "ret",
    ".popsection",
    ctx = const CTX_ADDR,
    host_rsp = const offset_of!(Ctx, host_rsp),
    host_fs = const offset_of!(Ctx, host_fsbase),
    fx = const offset_of!(Ctx, fxsave),
    ds = const offset_of!(Ctx, ds),
    es = const offset_of!(Ctx, es),
    fs = const offset_of!(Ctx, fs),
    gs = const offset_of!(Ctx, gs),
    ss = const offset_of!(Ctx, ss),
    cs = const offset_of!(Ctx, cs),
    eip = const offset_of!(Ctx, eip),
    eflags = const offset_of!(Ctx, eflags),
    site = const offset_of!(Ctx, exit_site),
    eax = const offset_of!(Ctx, gpr),
    ecx = const offset_of!(Ctx, gpr) + 4,
    edx = const offset_of!(Ctx, gpr) + 8,
    ebx = const offset_of!(Ctx, gpr) + 12,
    esp = const offset_of!(Ctx, gpr) + 16,
    ebp = const offset_of!(Ctx, gpr) + 20,
    esi = const offset_of!(Ctx, gpr) + 24,
    edi = const offset_of!(Ctx, gpr) + 28,
);

extern "C" {
    fn rf_enter_guest();
    fn rf_common_exit();
    fn rf_signal_exit();
}

/// Address of the common 64-bit exit path, for per-site stubs in the translation cache.
pub fn common_exit_addr() -> u64 {
    rf_common_exit as *const () as u64
}

/// Address the signal handler redirects guest faults to.
pub(crate) fn signal_exit_addr() -> u64 {
    rf_signal_exit as *const () as u64
}

/// Length of a per-site exit stub written by [`write_exit_stub`].
pub const EXIT_STUB_LEN: usize = 19;

/// Encodes the 64-bit per-site stub: `mov r11d, site; movabs r10, rf_common_exit; jmp r10`.
pub fn write_exit_stub(out: &mut [u8; EXIT_STUB_LEN], site: u32) {
    out[0] = 0x41;
    out[1] = 0xBB;
    out[2..6].copy_from_slice(&site.to_le_bytes());
    out[6] = 0x49;
    out[7] = 0xBA;
    out[8..16].copy_from_slice(&common_exit_addr().to_le_bytes());
    out[16] = 0x41;
    out[17] = 0xFF;
    out[18] = 0xE2;
}

/// Runs the guest from the state in the context page until it exits (site or signal).
///
/// # Safety
/// The context page must be mapped at `CTX_ADDR` and hold selectors of valid LDT
/// entries whose segments cannot reach monitor memory, and `eip` must point at code the
/// monitor generated (a translation or the native-runner code). The signal handlers must
/// be installed so that faults in guest code come back here.
pub(crate) unsafe fn enter_guest() {
    // SAFETY: the caller upholds the contract above; rf_enter_guest preserves every
    // callee-saved register and returns on the same stack.
    unsafe {
        std::arch::asm!(
            "call {f}",
            f = sym rf_enter_guest,
            clobber_abi("C"),
        );
    }
}
