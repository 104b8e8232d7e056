//! Real guests: Debian's i386 kernels (686 and 686-pae) with the busybox initramfs built by
//! `scripts/fetch-debian-guest.sh` (cached under cache/guest). Opt-in because it needs
//! those downloads: `scripts/fetch-debian-guest.sh && cargo test --release --test
//! linux_boot -- --ignored`. Each boot runs the `boot` workload (or `all` with
//! RINGFOLD_LINUX_WORKLOAD=all) and must reach the init banner, the workload end marker and
//! the kernel's halt.

use std::path::PathBuf;
use std::process::Command;

fn guest_dir() -> PathBuf {
    std::env::var_os("RINGFOLD_GUEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cache/guest"))
}

fn run_linux(flavour: &str, append: &str, extra: &[&str]) -> std::process::Output {
    let dir = guest_dir();
    let kernel = dir.join(format!("vmlinuz-{flavour}"));
    let initrd = dir.join("initramfs.cpio.gz");
    assert!(kernel.exists() && initrd.exists(), "run scripts/fetch-debian-guest.sh first ({} missing)", kernel.display());
    Command::new(env!("CARGO_BIN_EXE_ringfold"))
        .args(["run", "--kernel"])
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--append", append])
        .args(extra)
        .output()
        .expect("spawn ringfold")
}

fn boot(flavour: &str) {
    boot_with(flavour, "", &[])
}

fn boot_with(flavour: &str, append: &str, extra: &[&str]) {
    let workload = std::env::var("RINGFOLD_LINUX_WORKLOAD").unwrap_or_else(|_| "boot".into());
    let out = run_linux(flavour, &format!("console=ttyS0 rf.workload={workload} {append}"), extra);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("ringfold guest: busybox shell"), "{flavour}: no init banner\n{text}\n{err}");
    assert!(text.contains(&format!("WORKLOAD {workload} DONE")), "{flavour}: workload did not finish\n{text}\n{err}");
    if workload == "all" {
        // sha256 of 64 MiB of zeros
        assert!(text.contains("3b6a07d0d404fab4e23b6d34bc6696a6a312dd92821332385e5af7c01c421351"), "{flavour}: W1 hash");
    }
    assert!(text.contains("reboot: System halted"), "{flavour}: no halt\n{text}");
    assert!(!text.contains("Kernel panic") && !text.contains("BUG:"), "{flavour}:\n{text}");
    if extra.contains(&"--no-apic") {
        assert!(text.contains("APIC: Keep in PIC mode(8259)"), "{flavour}: PIC mode\n{text}");
    } else {
        // The MP table was found and IRQ0 works through IOAPIC pin 2 (check_timer).
        assert!(text.contains("found SMP MP-table at [mem 0x000f0000"), "{flavour}: MP table\n{text}");
        assert!(text.contains("..TIMER: vector=") && text.contains(" apic1=0 pin1=2 "), "{flavour}: IOAPIC timer\n{text}");
        assert!(!text.contains("MP-BIOS bug") && !text.contains("timer doesn't work"), "{flavour}:\n{text}");
    }
    if append.contains("pti=on") {
        assert!(text.contains("Kernel/User page tables isolation: enabled"), "{flavour}: PTI\n{text}");
    }
    // poweroff -f without ACPI halts (`cli; hlt` after "reboot: System halted"): ringfold
    // says so and ends with status 0.
    assert!(err.contains("the guest halted the system"), "{flavour}: {err}");
    assert_eq!(out.status.code(), Some(0), "{flavour}: {err}");
}

#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_boots_to_init() {
    boot("686");
}

#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_pae_boots_to_init() {
    boot("686-pae");
}

/// Page-table isolation on (what the kernel does by default on CPUs that need it; our
/// CPUID's vendor is AMD, for which Linux leaves it off, so it is asked for).
#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_pae_boots_to_init_with_pti() {
    boot_with("686-pae", "pti=on", &[]);
}

#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_boots_to_init_without_apic() {
    boot_with("686", "", &["--no-apic"]);
}

/// The bzImage's own decompressor, run in the guest (every other test boots the kernel
/// ringfold inflated on the host and placed at a random KASLR slot).
#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_boots_through_its_own_decompressor() {
    boot_with("686", "", &["--guest-decompress"]);
}

/// A kernel panic ends ringfold with status 83 and a message, instead of idling forever
/// in the panic loop (no init: the kernel cannot mount a root file system).
#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_panic_ends_the_run() {
    let out = run_linux("686", "console=ttyS0 rdinit=/nonexistent panic=0", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Kernel panic - not syncing"), "no panic?\n{text}\n{err}");
    assert!(err.contains("the guest kernel panicked"), "{err}");
    assert_eq!(out.status.code(), Some(83), "{err}");
}
