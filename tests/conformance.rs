//! Guest conformance suite: every guests/*.S program boots under `ringfold run` and must
//! report `DONE pass=N fail=0` through port 0xE9 and exit through port 0xF4 with value 0
//! (process status 1), in strict mode (no tolerance for the QEMU deviations the guests
//! document). The same programs pass under QEMU (guests/run-qemu.sh).

use std::path::PathBuf;
use std::process::Command;

fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("RINGFOLD_GUESTS_DIR")).join(format!("{name}.elf"))
}

fn run(name: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfold"))
        .args(["run", "--kernel"])
        .arg(guest(name))
        .args(extra)
        .output()
        .expect("spawn ringfold");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn check_passes(name: &str) {
    // "strict": the guests' tolerances for documented QEMU deviations are off; ringfold
    // must be exact to the SDM.
    let (code, out, err) = run(name, &["--append", "strict"]);
    let failures: Vec<&str> = out.lines().filter(|l| l.starts_with("not ok")).collect();
    assert!(failures.is_empty(), "{name}: failing checks:\n{}\nstderr: {err}", failures.join("\n"));
    let done = out.lines().find(|l| l.starts_with("DONE ")).unwrap_or_else(|| panic!("{name}: no DONE line\nstdout:\n{out}\nstderr:\n{err}"));
    assert!(done.ends_with(" fail=0"), "{name}: {done}");
    let passed: u32 = done.split("pass=").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap();
    assert!(passed > 0, "{name}: no checks ran");
    assert_eq!(code, Some(1), "{name}: exit status (stderr: {err})");
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check_passes(stringify!($name)); } )*
        const LISTED: &[&str] = &[$(stringify!($name)),*];
    };
}

conformance!(
    flags, io, ints, segs, farxfer, sysregs, cpuid_msr_tsc, sysenter, attacks, faults, smc, scratch,
    paging32, pagingpae, paging_coherence, paging_attack, mmio, segcache, sysfast, sysexit_trunc, pcthunk, tls,
);

#[test]
fn every_guest_is_tested() {
    let list = std::fs::read_to_string(PathBuf::from(env!("RINGFOLD_GUESTS_DIR")).join("list.txt")).unwrap();
    for name in list.lines().filter(|l| !l.is_empty()) {
        assert!(LISTED.contains(&name) || ["triple", "code16", "halt"].contains(&name), "guest {name} has no test");
    }
}

#[test]
fn triple_fault_stops_cleanly() {
    let (code, out, err) = run("triple", &[]);
    assert!(out.contains("about to triple fault"), "{out}");
    assert!(err.contains("triple fault"), "{err}");
    assert_eq!(code, Some(80));
}

#[test]
fn code16_is_refused_clearly() {
    let (code, _out, err) = run("code16", &[]);
    assert!(err.contains("16-bit code segments are not supported"), "{err}");
    assert_eq!(code, Some(84));
}

#[test]
fn halt_with_interrupts_off_stops() {
    let (code, out, err) = run("halt", &[]);
    assert!(out.contains("# halt: cli; hlt"), "{out}");
    assert!(!out.contains("not ok"), "{out}");
    assert!(err.contains("halted with interrupts disabled"), "{err}");
    assert_eq!(code, Some(82));
}

#[test]
fn bad_kernel_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("ringfold-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("empty", b"", "cannot load"),
        ("text", b"hello, this is not a kernel\n", "cannot load"),
        ("elf-no-mb", b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0", "cannot load"),
    ];
    for (name, data, want) in cases {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ringfold")).args(["run", "--kernel"]).arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(66), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ringfold")).args(["run", "--kernel", "/nonexistent/k"]).output().unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read kernel"));
}
