//! The seccomp filter is the last line of defence: 32-bit code that reaches `int $0x80` or
//! `syscall` (which the translator never lets a guest do) must not get a host system call.
//! Each case runs in a child process (the test binary re-executed), because the filter is
//! irreversible and a VM owns the whole process.

use ringfold_host::{ctx::*, layout::*, *};
use std::process::Command;

fn run_32bit(code32: &[u8], lock: bool) -> Ctx {
    let mut vm = HostVm::new(16 << 20).expect("vm");
    let stub_off = 0x800usize;
    let mut stub = [0u8; EXIT_STUB_LEN];
    write_exit_stub(&mut stub, 7);
    let tc = vm.space_mut().tc_mut();
    tc[..code32.len()].copy_from_slice(code32);
    let j = code32.len();
    tc[j] = 0xEA;
    tc[j + 1..j + 5].copy_from_slice(&(TC_START + stub_off as u32).to_le_bytes());
    tc[j + 5..j + 7].copy_from_slice(&HOST_CS64.to_le_bytes());
    tc[stub_off..stub_off + EXIT_STUB_LEN].copy_from_slice(&stub);
    let ds = ldt_selector(FLAT_DS_SLOT);
    let c = vm.ctx_mut();
    (c.cs, c.ds, c.es, c.ss, c.fs, c.gs) = (ldt_selector(TC_CS_SLOT), ds, ds, ds, 0, 0);
    c.eip = TC_START;
    c.gpr[ESP] = 0x10_0000;
    if lock {
        vm.lock_down().expect("seccomp");
    }
    vm.enter();
    vm.ctx_mut().clone()
}

const GETPID_INT80: &[u8] = &[0xB8, 20, 0, 0, 0, 0xCD, 0x80]; // mov eax, 20 (getpid); int 0x80
const GETPID_SYSCALL: &[u8] = &[0xB8, 20, 0, 0, 0, 0x0F, 0x05]; // mov eax, 20; syscall (ia32 entry)

#[test]
fn child_case() {
    // Only does something when re-executed by `syscalls_from_low_memory_kill_the_process`.
    let Ok(case) = std::env::var("RINGFOLD_SECCOMP_CASE") else { return };
    let (code, lock) = match case.as_str() {
        "int80-open" => (GETPID_INT80, false),
        "int80-locked" => (GETPID_INT80, true),
        "syscall-locked" => (GETPID_SYSCALL, true),
        _ => unreachable!(),
    };
    let c = run_32bit(code, lock);
    // Reaching here means the code ran to its exit: print what getpid returned.
    println!("RESULT exit_site={} eax={} pid={}", c.exit_site, c.gpr[EAX], std::process::id());
}

fn child(case: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_case", "--nocapture", "--test-threads=1"])
        .env("RINGFOLD_SECCOMP_CASE", case)
        .output()
        .unwrap()
}

#[test]
fn syscalls_from_low_memory_kill_the_process() {
    use std::os::unix::process::ExitStatusExt;
    // Without the filter, 32-bit code really performs a host system call (the danger).
    let out = child("int80-open");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.split_once("RESULT ").map(|x| x.1)).unwrap_or_else(|| panic!("{text}"));
    let field = |k: &str| line.split(' ').find_map(|w| w.strip_prefix(k)).unwrap().to_string();
    assert_eq!(field("eax="), field("pid="), "getpid via int 0x80 returned the host pid");
    // With the filter, the same code and the `syscall` form kill the process with SIGSYS.
    for case in ["int80-locked", "syscall-locked"] {
        let out = child(case);
        assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{case}: {:?} {}", out.status, String::from_utf8_lossy(&out.stdout));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("RESULT"));
    }
}
