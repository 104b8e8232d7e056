//! The monitor's ALU emulation (used for instructions that touch MMIO and other memory
//! the host cannot map) against the host CPU: random operands for every operation and
//! operand size, executed natively in a 32-bit code segment, compared on result and flags.

use ringfold_devices::PortBus;
use ringfold_vmm::alu::{alu, AluOp, STATUS};
use ringfold_vmm::vm::Vm;
use ringfold_vmm::Memory;

const CODE: u32 = 0x0040_0000;

#[test]
fn alu_matches_the_host_cpu() {
    let mut vm = Vm::new(16 << 20, PortBus::new()).expect("vm");
    let ops: [(AluOp, u8, Option<u8>); 13] = [
        (AluOp::Add, 0x00, None),
        (AluOp::Or, 0x08, None),
        (AluOp::Adc, 0x10, None),
        (AluOp::Sbb, 0x18, None),
        (AluOp::And, 0x20, None),
        (AluOp::Sub, 0x28, None),
        (AluOp::Xor, 0x30, None),
        (AluOp::Cmp, 0x38, None),
        (AluOp::Test, 0x84, None),
        (AluOp::Inc, 0xFE, Some(0xC0)),
        (AluOp::Dec, 0xFE, Some(0xC8)),
        (AluOp::Neg, 0xF6, Some(0xD8)),
        (AluOp::Not, 0xF6, Some(0xD0)),
    ];
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut checked = 0;
    for _ in 0..400 {
        for &(op, opc, modrm) in &ops {
            for size in [1u32, 2, 4] {
                let r = rnd();
                // Bias towards edge values (0, sign bit, all ones) half of the time.
                let edge = [0u32, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, u32::MAX];
                let a = if r & 1 == 0 { r as u32 >> 1 } else { edge[(r >> 8) as usize % edge.len()] };
                let b = if r & 2 == 0 { (r >> 32) as u32 } else { edge[(r >> 16) as usize % edge.len()] };
                let cf = r & 4 != 0;
                let mut code = vec![0x68];
                code.extend_from_slice(&(0x202u32 | cf as u32).to_le_bytes());
                code.push(0x9D); // popfd
                code.push(0xB8);
                code.extend_from_slice(&a.to_le_bytes());
                code.push(0xB9);
                code.extend_from_slice(&b.to_le_bytes());
                if size == 2 {
                    code.push(0x66);
                }
                let wide = if size == 1 { 0 } else { 1 };
                match modrm {
                    None => code.extend_from_slice(&[opc | wide, 0xC8]), // op eax/ax/al, ecx/cx/cl
                    Some(m) => code.extend_from_slice(&[opc | wide, m]),
                }
                code.extend_from_slice(&[0x9C, 0x5A]); // pushfd; pop edx
                vm.m.mem.write(CODE, &code);
                let mut regs = [0u32; 8];
                regs[4] = 0x0080_0000;
                let (out, _) = vm.run_native(CODE, CODE + code.len() as u32, regs, 0x202).expect("native");
                let mask = if size == 4 { u32::MAX } else { (1 << (size * 8)) - 1 };
                let (res, flags, written) = alu(op, a, b, cf, size);
                let native_res = if matches!(op, AluOp::Cmp | AluOp::Test) { a & mask } else { out[0] & mask };
                let want_res = if matches!(op, AluOp::Cmp | AluOp::Test) { a & mask } else { res };
                assert_eq!(native_res, want_res, "{op:?} size {size} a={a:#x} b={b:#x} cf={cf}");
                // Flags the operation does not write keep their old value natively.
                let old = 0x202 | cf as u32;
                let native_flags = out[2] & STATUS;
                let want_flags = (old & STATUS & !written) | (flags & written);
                assert_eq!(native_flags, want_flags, "{op:?} size {size} a={a:#x} b={b:#x} cf={cf}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 400 * 13 * 3);
}
