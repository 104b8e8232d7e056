//! Differential test: the host CPU is the oracle. Thousands of generated unprivileged
//! instruction sequences run natively (untranslated, in a flat 32-bit code segment of this
//! process) and as guest code under ringfold's translator at guest CPL0 and CPL3; final
//! registers, flags and the data area must match. Override the case count with
//! RINGFOLD_DIFFTEST_CASES.

use ringfold_devices::PortBus;
use ringfold_difftest::{disassemble, generate, CODE_ADDR, COMPARED_EFLAGS, DATA_ADDR, DATA_SIZE};
use ringfold_vmm::cpu::{Cpu, SegReg, TableReg};
use ringfold_vmm::vm::Vm;
use ringfold_vmm::{Memory, Stop};
use ringfold_arch::descriptor::types::{CODE_XR, DATA_RW};

fn guest_cpu(cpl: u8, regs: [u32; 8], eflags: u32) -> Cpu {
    let mut c = Cpu::multiboot_entry(CODE_ADDR, 0, 0);
    let (cs, ds) = if cpl == 3 { (0x1B, 0x23) } else { (0x08, 0x10) };
    let code = SegReg::flat(cs, CODE_XR, cpl);
    let data = SegReg::flat(ds, DATA_RW, cpl);
    c.seg = [data, code, data, data, SegReg::default(), SegReg::default()];
    c.cpl = cpl;
    c.gpr = regs;
    c.eflags = eflags | 0x202;
    c.cr4 = 1 << 9; // OSFXSR: SSE allowed
    // Any exception triple-faults immediately: the test sees the EIP where it happened.
    c.idtr = TableReg { base: 0, limit: 0 };
    c
}

#[test]
fn native_and_translated_agree() {
    let cases: u64 = std::env::var("RINGFOLD_DIFFTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let mut vm = Vm::new(16 << 20, PortBus::new()).expect("vm");
    let mut failures = Vec::new();
    for seed in 0..cases {
        let case = generate(seed, 40);
        let end = CODE_ADDR + case.code.len() as u32;
        // Native run.
        vm.m.mem.write(CODE_ADDR, &case.code);
        vm.m.mem.write(DATA_ADDR, &case.data);
        let native = vm.run_native(CODE_ADDR, end, case.regs, case.eflags | 0x202);
        let (nregs, nflags) = match native {
            Ok(r) => r,
            Err(trap) => panic!("seed {seed}: native run trapped ({trap}):\n{}", disassemble(&case)),
        };
        let mut ndata = vec![0u8; DATA_SIZE];
        vm.m.mem.read(DATA_ADDR, &mut ndata);
        // Translated run, alternating guest CPL0 and CPL3; a UD2 ends it.
        let cpl = if seed % 2 == 0 { 3 } else { 0 };
        vm.m.mem.write(CODE_ADDR, &case.code);
        vm.m.mem.write(end, &[0x0F, 0x0B]);
        vm.m.mem.write(DATA_ADDR, &case.data);
        let tsc = vm.cpu_mut().tsc_offset;
        *vm.cpu_mut() = guest_cpu(cpl, case.regs, case.eflags);
        vm.cpu_mut().tsc_offset = tsc;
        match vm.run() {
            Stop::TripleFault { eip, .. } if eip == end => {}
            other => panic!("seed {seed} (cpl {cpl}): guest stopped with {other}:\n{}", disassemble(&case)),
        }
        let c = vm.cpu_mut().clone();
        let mut gdata = vec![0u8; DATA_SIZE];
        vm.m.mem.read(DATA_ADDR, &mut gdata);
        let mut diffs = Vec::new();
        for (r, (n, g)) in nregs.iter().zip(c.gpr.iter()).enumerate() {
            if n != g {
                diffs.push(format!("reg{r}: native {n:#x} guest {g:#x}"));
            }
        }
        if nflags & COMPARED_EFLAGS != c.eflags & COMPARED_EFLAGS {
            diffs.push(format!("eflags: native {:#x} guest {:#x}", nflags & COMPARED_EFLAGS, c.eflags & COMPARED_EFLAGS));
        }
        // Memory below the final ESP is dead stack: ringfold's inline RET/JMP/CALL lookups
        // use up to 20 bytes below the guest ESP as scratch (docs/ARCHITECTURE.md), so the
        // comparison covers the operand area and the live stack only.
        let live_stack = (nregs[4].wrapping_sub(DATA_ADDR) as usize).min(DATA_SIZE);
        let compared = (0..0x1000).chain(live_stack..DATA_SIZE);
        if let Some(off) = compared.into_iter().find(|&i| ndata[i] != gdata[i]) {
            diffs.push(format!("data differs first at +{off:#x}"));
        }
        if !diffs.is_empty() {
            failures.push(format!("seed {seed} cpl {cpl}: {}\n{}", diffs.join(", "), disassemble(&case)));
            if failures.len() > 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
