//! Assembles the guest conformance programs (guests/*.S) with GNU as/ld into OUT_DIR so
//! that `cargo test` can boot them. Missing binutils is reported clearly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {:?}: {e} (install GNU binutils: apt-get install binutils)", cmd.get_program())
    });
    if !out.status.success() {
        panic!("{:?} failed:\n{}{}", cmd, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests");
    std::fs::create_dir_all(&out).unwrap();
    let dir = Path::new("guests");
    println!("cargo:rerun-if-changed=guests");
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("S") {
            continue;
        }
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        let obj = out.join(format!("{name}.o"));
        let elf = out.join(format!("{name}.elf"));
        run(Command::new("as").args(["--32", "-I", "guests/include", "-o"]).arg(&obj).arg(&p));
        run(Command::new("ld").args(["-m", "elf_i386", "-nostdlib", "-T", "guests/link.ld", "-o"]).arg(&elf).arg(&obj));
        names.push(name);
    }
    names.sort();
    std::fs::write(out.join("list.txt"), names.join("\n")).unwrap();
    println!("cargo:rustc-env=RINGFOLD_GUESTS_DIR={}", out.display());
}
