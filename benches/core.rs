//! Execution-core benchmark (not a test): run with `cargo bench --bench core`.
//!
//! * A guest compute loop run translated (guest CPL3 and CPL0) vs the same bytes run
//!   natively in a flat 32-bit code segment: reported as a ratio (target <= 1.05x).
//! * The cost of one helper call (a sensitive instruction emulated by the monitor:
//!   CLI at guest CPL0) and of one signal-path trap (a guest load from linear page 0,
//!   which the host cannot map, emulated after SIGSEGV), in TSC cycles per event.

use ringfold_arch::descriptor::types::{CODE_XR, DATA_RW};
use ringfold_devices::PortBus;
use ringfold_vmm::cpu::{Cpu, SegReg, TableReg};
use ringfold_vmm::vm::Vm;
use ringfold_vmm::{Memory, Stop};

const CODE: u32 = 0x0040_0000;

fn rdtsc() -> u64 {
    ringfold_host::rdtsc()
}

fn guest_cpu(cpl: u8, ecx: u32) -> Cpu {
    let mut c = Cpu::multiboot_entry(CODE, 0, 0);
    let (cs, ds) = if cpl == 3 { (0x1B, 0x23) } else { (0x08, 0x10) };
    let data = SegReg::flat(ds, DATA_RW, cpl);
    c.seg = [data, SegReg::flat(cs, CODE_XR, cpl), data, data, data, data];
    c.cpl = cpl;
    c.gpr[1] = ecx;
    c.gpr[4] = 0x0080_0000;
    c.idtr = TableReg { base: 0, limit: 0 };
    c
}

/// Runs `body` (ending in `dec ecx; jnz start`) as guest code; returns TSC ticks.
fn guest(vm: &mut Vm, body: &[u8], cpl: u8, iters: u32) -> u64 {
    vm.m.mem.write(CODE, body);
    vm.m.mem.write(CODE + body.len() as u32, &[0x0F, 0x0B]);
    let tsc = vm.cpu_mut().tsc_offset;
    *vm.cpu_mut() = guest_cpu(cpl, iters);
    vm.cpu_mut().tsc_offset = tsc;
    let t0 = rdtsc();
    let stop = vm.run();
    let t = rdtsc() - t0;
    assert!(matches!(stop, Stop::TripleFault { eip, .. } if eip == CODE + body.len() as u32), "{stop}");
    t
}

fn native(vm: &mut Vm, body: &[u8], iters: u32) -> u64 {
    vm.m.mem.write(CODE, body);
    let mut regs = [0u32; 8];
    regs[1] = iters;
    regs[4] = 0x0080_0000;
    let t0 = rdtsc();
    vm.run_native(CODE, CODE + body.len() as u32, regs, 0x202).expect("native run");
    rdtsc() - t0
}

fn with_loop(body: &[u8]) -> Vec<u8> {
    let mut v = body.to_vec();
    v.push(0x49); // dec ecx
    let back = -(v.len() as i32 + 2);
    v.extend_from_slice(&[0x75, back as i8 as u8]); // jnz start
    v
}

fn best<F: FnMut() -> u64>(n: usize, mut f: F) -> u64 {
    (0..n).map(|_| f()).min().unwrap()
}

fn main() {
    let mut vm = Vm::new(64 << 20, PortBus::new()).expect("vm");
    // Compute loop: LCG + mixing, no memory traffic but a load/store to the stack.
    let compute = with_loop(&[
        0x69, 0xC0, 0x6D, 0x4E, 0xC6, 0x41, // imul eax, eax, 0x41C64E6D
        0x05, 0x39, 0x30, 0x00, 0x00, // add eax, 12345
        0x31, 0xC2, // xor edx, eax
        0xC1, 0xC2, 0x05, // rol edx, 5
        0x01, 0xD3, // add ebx, edx
        0x89, 0x1C, 0x24, // mov [esp], ebx
        0x03, 0x34, 0x24, // add esi, [esp]
    ]);
    let iters = 200_000_000;
    let n = best(3, || native(&mut vm, &compute, iters));
    let g3 = best(3, || guest(&mut vm, &compute, 3, iters));
    let g0 = best(3, || guest(&mut vm, &compute, 0, iters));
    println!("compute loop ({iters} iterations): native {:.3} Gcycles", n as f64 / 1e9);
    println!("  translated at guest CPL3: {:.3} Gcycles  ratio {:.3}x", g3 as f64 / 1e9, g3 as f64 / n as f64);
    println!("  translated at guest CPL0: {:.3} Gcycles  ratio {:.3}x", g0 as f64 / 1e9, g0 as f64 / n as f64);

    // Calls and returns: `call f` / `f: add eax, ecx; ret` and an indirect `call *%edx`
    // (inline lookup of the return / target in the translation cache's table).
    let mut calls = with_loop(&[0xE8, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xD2]); // call f; call *%edx
    let body_len = calls.len() as u32;
    calls.extend_from_slice(&[0x0F, 0x0B]); // ud2 (end of the guest run)
    // f lives 2 KiB further (the native runner's terminator is written right after the body).
    calls.resize(0x800, 0xCC);
    let f = CODE + calls.len() as u32;
    calls.extend_from_slice(&[0x01, 0xC8, 0xC3]); // f: add eax, ecx; ret
    let rel = f.wrapping_sub(CODE + 5);
    calls[1..5].copy_from_slice(&rel.to_le_bytes());
    let k = 20_000_000;
    let run_native_calls = |vm: &mut Vm| {
        vm.m.mem.write(CODE, &calls);
        let mut regs = [0u32; 8];
        regs[1] = k;
        regs[2] = f;
        regs[4] = 0x0080_0000;
        let t0 = rdtsc();
        vm.run_native(CODE, CODE + body_len, regs, 0x202).expect("native run");
        rdtsc() - t0
    };
    let run_guest_calls = |vm: &mut Vm| {
        vm.m.mem.write(CODE, &calls);
        let tsc = vm.cpu_mut().tsc_offset;
        *vm.cpu_mut() = guest_cpu(3, k);
        vm.cpu_mut().gpr[2] = f;
        vm.cpu_mut().tsc_offset = tsc;
        let t0 = rdtsc();
        let stop = vm.run();
        let t = rdtsc() - t0;
        assert!(matches!(stop, Stop::TripleFault { eip, .. } if eip == CODE + body_len), "{stop}");
        t
    };
    let n = best(3, || run_native_calls(&mut vm));
    let g = best(3, || run_guest_calls(&mut vm));
    println!("call/ret loop ({k} iterations, 2 calls each): native {:.1} cycles/iter, translated {:.1} cycles/iter, ratio {:.2}x",
        n as f64 / k as f64, g as f64 / k as f64, g as f64 / n as f64);

    // Helper call: CLI at CPL0 (IF already 0) vs NOP, per iteration.
    let k = 2_000_000;
    let with_cli = best(3, || guest(&mut vm, &with_loop(&[0xFA]), 0, k));
    let with_nop = best(3, || guest(&mut vm, &with_loop(&[0x90]), 0, k));
    println!("helper call (guest CLI emulated by the monitor): {} cycles each",
        (with_cli.saturating_sub(with_nop)) / k as u64);

    // Signal-path trap: a load from linear page 0 (unmappable on the host), emulated.
    let k = 200_000;
    let with_trap = best(3, || guest(&mut vm, &with_loop(&[0xA1, 0x10, 0, 0, 0]), 0, k));
    let with_ram = best(3, || guest(&mut vm, &with_loop(&[0xA1, 0x10, 0x10, 0, 0]), 0, k));
    println!("signal-path trap (guest load from page 0, SIGSEGV + decode + emulate): {} cycles each",
        (with_trap.saturating_sub(with_ram)) / k as u64);
    println!("monitor: {:?}", vm.stats);
}
