//! Host-layer smoke tests: 32-bit code entered through the trampolines exits through a
//! far jump to the host and through signals, with registers and FPU state intact.
//! One test function: a process holds one VM at a time.

use ringfold_host::{ctx::*, layout::*, *};

fn setup_code(vm: &mut HostVm, code32: &[u8]) {
    let stub_off = 0x800usize;
    let mut stub = [0u8; EXIT_STUB_LEN];
    write_exit_stub(&mut stub, 0x1234);
    let tc = vm.space_mut().tc_mut();
    tc[..code32.len()].copy_from_slice(code32);
    // ljmp 0x33:TC_START+stub_off
    let j = code32.len();
    tc[j] = 0xEA;
    tc[j + 1..j + 5].copy_from_slice(&(TC_START + stub_off as u32).to_le_bytes());
    tc[j + 5..j + 7].copy_from_slice(&HOST_CS64.to_le_bytes());
    tc[stub_off..stub_off + EXIT_STUB_LEN].copy_from_slice(&stub);
}

fn flat_ctx(vm: &mut HostVm) {
    let ds = ldt_selector(FLAT_DS_SLOT);
    let c = vm.ctx_mut();
    c.cs = ldt_selector(TC_CS_SLOT);
    c.ds = ds;
    c.es = ds;
    c.ss = ds;
    c.fs = 0;
    c.gs = 0;
    c.eip = TC_START;
    c.gpr[ESP] = 0x10_0000;
}

#[test]
fn enter_and_exit_paths() {
    let mut vm = HostVm::new(16 << 20).expect("vm");
    // mov eax, 42; add ecx, eax; push ecx; pop edx; movd xmm0, edx (66 0F 6E C2)
    setup_code(&mut vm, &[0xB8, 42, 0, 0, 0, 0x01, 0xC1, 0x51, 0x5A, 0x66, 0x0F, 0x6E, 0xC2]);
    flat_ctx(&mut vm);
    vm.ctx_mut().gpr[ECX] = 8;
    vm.ctx_mut().eflags = 0x202 | 0x400; // DF=1 must survive into the guest and back
    vm.enter();
    let c = vm.ctx_mut().clone();
    assert_eq!(c.exit_site, 0x1234);
    assert_eq!(c.gpr[EAX], 42);
    assert_eq!(c.gpr[ECX], 50);
    assert_eq!(c.gpr[EDX], 50);
    assert_eq!(c.gpr[ESP], 0x10_0000);
    assert_ne!(c.eflags & 0x400, 0, "guest DF saved");
    // xmm0 low dword in the FXSAVE image (offset 160)
    assert_eq!(u32::from_le_bytes(c.fxsave[160..164].try_into().unwrap()), 50);
    // Rust still works with a sane TLS and DF after the exit.
    let v: Vec<u32> = (0..100).collect();
    assert_eq!(v.iter().sum::<u32>(), 4950);

    // The guest's xmm0 survives a round trip through the monitor: movd eax, xmm0.
    setup_code(&mut vm, &[0x66, 0x0F, 0x7E, 0xC0]);
    flat_ctx(&mut vm);
    vm.ctx_mut().gpr[EAX] = 0;
    vm.enter();
    assert_eq!(vm.ctx_mut().gpr[EAX], 50);

    // Faults come back as signal exits with the faulting EIP: ud2, then a page fault.
    setup_code(&mut vm, &[0x90, 0x0F, 0x0B]);
    flat_ctx(&mut vm);
    vm.enter();
    let c = vm.ctx_mut().clone();
    assert_eq!(c.exit_site, EXIT_SIGNAL);
    assert_eq!(c.trapno, 6);
    assert_eq!(c.eip, TC_START + 1);

    // mov eax, [0x00000010] (page 0 is never mapped)
    setup_code(&mut vm, &[0xA1, 0x10, 0, 0, 0]);
    flat_ctx(&mut vm);
    vm.enter();
    let c = vm.ctx_mut().clone();
    assert_eq!((c.exit_site, c.trapno, c.cr2), (EXIT_SIGNAL, 14, 0x10));
    assert_eq!(c.err & 2, 0, "read fault");

    // A limit violation on a small data segment raises #GP (trapno 13).
    let small = LdtEntry { base: 0x2000, limit: 0xFF, contents: 0, limit_in_pages: false, ..LdtEntry::flat_code() };
    vm.set_ldt(FIRST_SHADOW_SLOT, Some(&small)).unwrap();
    setup_code(&mut vm, &[0x8B, 0x05, 0x00, 0x01, 0, 0]); // mov eax, [0x100]
    flat_ctx(&mut vm);
    vm.ctx_mut().ds = ldt_selector(FIRST_SHADOW_SLOT);
    vm.enter();
    let c = vm.ctx_mut().clone();
    assert_eq!((c.exit_site, c.trapno), (EXIT_SIGNAL, 13));
    assert_eq!(c.eip, TC_START);
    let v: Vec<u64> = (0..10).map(|x| x * 3).collect();
    assert_eq!(v[9], 27);
}
