//! Random IA-32 test-case generator for ringfold's differential test.
//!
//! The differential test runs each generated [`Case`] twice on the same host
//! CPU: natively in a 32-bit code segment, and as guest code under ringfold's
//! binary translator. It then compares the final EAX..EDI,
//! `EFLAGS & COMPARED_EFLAGS` and the whole data area. This crate only
//! *generates* cases; the runners live elsewhere and rely on this contract:
//!
//! * **Layout.** `code` is assembled for [`CODE_ADDR`]; execution starts at
//!   `CODE_ADDR` and ends by falling off the end of `code` (the runner
//!   appends its own terminator right after it). The data area is
//!   [`DATA_SIZE`] bytes at linear address [`DATA_ADDR`], initialised from
//!   `data`. Both addresses are the same in both runners.
//! * **Registers.** `regs` are the initial EAX ECX EDX EBX ESP EBP ESI EDI.
//!   ESP = [`STACK_TOP`] and EBP = [`MEM_BASE`] always; the others are random.
//! * **Flags.** `eflags` is `0x202` (bit 1 and IF) plus a random subset of
//!   CF PF AF ZF SF OF and DF. The runners compare only [`COMPARED_EFLAGS`].
//! * **Memory.** Every explicit memory operand is `[ebp+disp]` or, right
//!   after `and idx,0x3f`, `[ebp+idx*scale+disp]`, and lies in the first half
//!   of the data area `[DATA_ADDR, DATA_ADDR+0x1000)`. String instructions
//!   use ESI/EDI pointing well inside that half and ECX <= 16, so either value
//!   of DF is safe. The stack (ESP) stays in `[DATA_ADDR+0x1000, STACK_TOP]`.
//! * **Determinism.** The code is unprivileged and depends only on registers,
//!   flags and the data area: no segment registers, no far transfers, no
//!   `int`/`hlt`/`in`/`out`/`cpuid`/`rdtsc`/x87/..., no reading EBP or ESP
//!   as a value (they hold addresses), EBP is never written, XMM registers
//!   are written before they are read, DIV/IDIV use patterns that cannot
//!   fault, every loop is bounded. `pushfd` is only used as
//!   `pushfd; pop r; and r,0xED7` and `popfd` only pops values sanitised with
//!   `and 0xCD5; or 0x202` (so only CF PF AF ZF SF DF OF change). Labels
//!   (call/jump targets stored in registers or memory) are absolute
//!   addresses inside `code`, identical in both runners. Architecturally
//!   undefined flag results are fine because both runs use the same CPU.
//!
//! Instruction classes: ALU (8/16/32-bit incl. AH..BH, 0x66 forms, the
//! `82 /r` alias, LOCK on memory destinations), INC/DEC/NEG/NOT, shifts and
//! rotates (by 1/imm/CL, SHLD/SHRD), MUL/IMUL (1/2/3 operands), safe
//! DIV/IDIV, BT*/BSF/BSR/BSWAP, SETcc/CMOVcc, XCHG/XADD/CMPXCHG/CMPXCHG8B,
//! MOVZX/MOVSX/LEA/CBW..CDQ, flag instructions (CLC..STD, LAHF/SAHF),
//! push/pop (balanced and, at top level, unbalanced), PUSHFD/POPFD patterns,
//! MOVS/STOS/LODS/CMPS/SCAS with and without REP/REPE/REPNE, SSE/SSE2
//! (loads, stores, integer and float arithmetic, shuffles, conversions,
//! COMIS*, moves to GPRs), forward Jcc/JMP (rel8 and rel32), JECXZ,
//! `jmp reg`, `jmp [mem]`, `push label; ret`, bounded LOOP/LOOPE/LOOPNE and
//! `dec; jcc` loops, and local subroutines reached by `call rel32`,
//! `call reg` and `call [mem]`, returning with `ret` or `ret 4`.

#![forbid(unsafe_code)]

mod gen;
mod ir;
mod rng;

use std::fmt::Write as _;

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// Linear address the code is placed at (same in both runners).
pub const CODE_ADDR: u32 = 0x0040_0000;
/// Linear address of the data area (same in both runners).
pub const DATA_ADDR: u32 = 0x0050_0000;
/// Size of the data area in bytes.
pub const DATA_SIZE: usize = 0x2000;
/// Initial ESP, inside the data area.
pub const STACK_TOP: u32 = DATA_ADDR + DATA_SIZE as u32 - 0x100;
/// Initial EBP: the base of all explicit memory operands.
pub const MEM_BASE: u32 = DATA_ADDR + 0x800;

/// EFLAGS bits the runners compare: CF PF AF ZF SF DF OF.
pub const COMPARED_EFLAGS: u32 = 0x0001 | 0x0004 | 0x0010 | 0x0040 | 0x0080 | 0x0400 | 0x0800;

/// Bits of the initial EFLAGS that may be set besides [`EFLAGS_BASE`].
pub const INITIAL_EFLAGS_RANDOM: u32 = COMPARED_EFLAGS;
/// Always-set part of the initial EFLAGS: bit 1 and IF.
pub const EFLAGS_BASE: u32 = 0x0202;

/// Index of each register in [`Case::regs`].
pub mod reg {
    pub const EAX: usize = 0;
    pub const ECX: usize = 1;
    pub const EDX: usize = 2;
    pub const EBX: usize = 3;
    pub const ESP: usize = 4;
    pub const EBP: usize = 5;
    pub const ESI: usize = 6;
    pub const EDI: usize = 7;
}

/// One generated test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The seed it was generated from.
    pub seed: u64,
    /// Machine code assembled for [`CODE_ADDR`]; runs by falling off the end.
    pub code: Vec<u8>,
    /// Initial EAX ECX EDX EBX ESP EBP ESI EDI (ESP = [`STACK_TOP`], EBP = [`MEM_BASE`]).
    pub regs: [u32; 8],
    /// Initial EFLAGS: [`EFLAGS_BASE`] plus any of CF PF AF ZF SF DF OF.
    pub eflags: u32,
    /// Initial contents of the [`DATA_SIZE`]-byte data area.
    pub data: Vec<u8>,
}

/// Generates the case for `seed` with at most `max_insns` instructions.
/// Deterministic: the same arguments always give the same case.
pub fn generate(seed: u64, max_insns: usize) -> Case {
    let mut g = gen::Gen::new(rng::Rng::new(seed));
    let rng = &mut g.rng;

    let mut regs = [0u32; 8];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = match i {
            reg::ESP => STACK_TOP,
            reg::EBP => MEM_BASE,
            _ => rng.value32(),
        };
    }
    let eflags = EFLAGS_BASE | (rng.next_u32() & INITIAL_EFLAGS_RANDOM);

    let mut data = Vec::with_capacity(DATA_SIZE);
    while data.len() < DATA_SIZE {
        // 16-byte chunks with a mix of noise and structure.
        match rng.below(10) {
            0 => data.extend_from_slice(&[0u8; 16]),
            1 => data.extend_from_slice(&[0xFFu8; 16]),
            2 => {
                for _ in 0..4 {
                    let v = rng.value32();
                    data.extend_from_slice(&v.to_le_bytes());
                }
            }
            _ => {
                let a = rng.next_u64().to_le_bytes();
                let b = rng.next_u64().to_le_bytes();
                data.extend_from_slice(&a);
                data.extend_from_slice(&b);
            }
        }
    }
    data.truncate(DATA_SIZE);

    let items = g.program(max_insns);
    let code = match ir::assemble(&items, u64::from(CODE_ADDR)) {
        Ok(c) => c,
        Err(e) => panic!("seed {seed}: generated code failed to assemble: {e}"),
    };
    Case {
        seed,
        code,
        regs,
        eflags,
        data,
    }
}

/// Disassembles `case.code` (Intel syntax), one instruction per line:
/// `address  bytes  instruction`.
pub fn disassemble(case: &Case) -> String {
    let mut dec = Decoder::with_ip(32, &case.code, u64::from(CODE_ADDR), DecoderOptions::NONE);
    let mut fmt = IntelFormatter::new();
    fmt.options_mut().set_hex_prefix("0x");
    fmt.options_mut().set_hex_suffix("");
    fmt.options_mut().set_uppercase_hex(false);
    let mut out = String::new();
    let mut text = String::new();
    while dec.can_decode() {
        let i = dec.decode();
        text.clear();
        fmt.format(&i, &mut text);
        let start = (i.ip() - u64::from(CODE_ADDR)) as usize;
        let bytes: String = case.code[start..start + i.len()]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let _ = writeln!(out, "{:08x}  {:<30} {}", i.ip(), bytes, text);
    }
    out
}

/// A one-line summary of the initial state, for failure reports.
pub fn describe_state(case: &Case) -> String {
    const NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
    let mut s = format!("seed={} ", case.seed);
    for (n, v) in NAMES.iter().zip(case.regs) {
        let _ = write!(s, "{n}={v:08x} ");
    }
    let _ = write!(s, "eflags={:08x}", case.eflags);
    s
}
