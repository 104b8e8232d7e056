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

fn boot(flavour: &str) {
    boot_with(flavour, &[])
}

fn boot_with(flavour: &str, extra: &[&str]) {
    let dir = guest_dir();
    let kernel = dir.join(format!("vmlinuz-{flavour}"));
    let initrd = dir.join("initramfs.cpio.gz");
    assert!(kernel.exists() && initrd.exists(), "run scripts/fetch-debian-guest.sh first ({} missing)", kernel.display());
    let workload = std::env::var("RINGFOLD_LINUX_WORKLOAD").unwrap_or_else(|_| "boot".into());
    let out = Command::new(env!("CARGO_BIN_EXE_ringfold"))
        .args(["run", "--kernel"])
        .arg(&kernel)
        .arg("--initrd")
        .arg(&initrd)
        .args(["--append", &format!("console=ttyS0 rf.workload={workload}")])
        .args(extra)
        .output()
        .expect("spawn ringfold");
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
    // poweroff -f without ACPI ends in `cli; hlt`: ringfold stops with status 82.
    assert_eq!(out.status.code(), Some(82), "{flavour}: {err}");
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

#[test]
#[ignore = "needs scripts/fetch-debian-guest.sh downloads"]
fn debian_686_boots_to_init_without_apic() {
    boot_with("686", &["--no-apic"]);
}
