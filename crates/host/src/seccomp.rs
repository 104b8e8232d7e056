//! Defence in depth: after set-up, no system call may come from below 4 GiB or via a
//! 32-bit ABI. A guest never gets there (the translator replaces INT 0x80, SYSCALL and
//! SYSENTER, and far transfers to host selectors); if it ever did, the process dies.

use seccompiler::sock_filter;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7FFF_0000;
// struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP_HI: u32 = 12;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The BPF program: kill unless arch is x86-64, the caller's RIP is at or above 4 GiB, and
/// the number is not an x32 one.
pub fn filter() -> Vec<sock_filter> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06;
    vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_IP_HI),
        jump(JEQ_K, 0, 0, 1),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
        jump(JGE_K, 0x4000_0000, 0, 1),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// Installs the filter on every thread of the process.
pub fn install() -> Result<(), seccompiler::Error> {
    seccompiler::apply_filter_all_threads(&filter())
}
