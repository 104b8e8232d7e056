//! The generator's intermediate representation and its lowering through
//! iced-x86's `CodeAssembler`.
//!
//! Generated code is a flat list of [`Item`]s. Branches refer to labels by a
//! small integer id; instructions that need a label's absolute address as an
//! immediate (`mov reg, label`, `mov [mem], label`, `push label`) carry the
//! label id too. Lowering runs the assembler twice: once with placeholder
//! immediates to learn every label's address (all label-carrying instructions
//! use fixed-size imm32 encodings, so addresses cannot move), then again with
//! the real addresses patched in. Branches are assembled with
//! `DONT_FIX_BRANCHES`, so the short/near form chosen by the generator is kept
//! and the generator can rely on exact instruction sizes.

use std::collections::HashMap;
use std::sync::OnceLock;

use iced_x86::code_asm::{CodeAssembler, CodeLabel};
use iced_x86::{BlockEncoderOptions, Code, Instruction, MemoryOperand, Mnemonic, Register};

/// One element of generated code.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// An ordinary instruction without label references.
    Ins(Instruction),
    /// An instruction whose (imm32) immediate is replaced by a label's address.
    LabelImm(Instruction, usize),
    /// A relative branch (`Jcc`, `JMP`, `CALL`, `LOOPcc`, `JECXZ`) to a label.
    /// The `Code` fixes the encoding (rel8 or rel32).
    Branch(Code, usize),
    /// Defines a label at the next instruction.
    Label(usize),
}

/// An instruction operand for [`ins`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    R(Register),
    I(i64),
    M(MemoryOperand),
}

/// Looks up an iced `Code` by its variant name (e.g. `"Add_rm32_imm8"`).
/// Lets the generator compose opcode forms from mnemonic + form strings.
pub(crate) fn code(name: &str) -> Code {
    static MAP: OnceLock<HashMap<String, Code>> = OnceLock::new();
    let map = MAP.get_or_init(|| Code::values().map(|c| (format!("{c:?}"), c)).collect());
    match map.get(name) {
        Some(&c) => c,
        None => panic!("unknown iced Code name {name}"),
    }
}

/// Builds an instruction; panics on an invalid combination (a generator bug).
pub(crate) fn ins(code: Code, ops: &[Op]) -> Instruction {
    use Op::{I, M, R};
    let r = match *ops {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Instruction::with1(code, a),
        [I(a)] => Instruction::with1(code, a as i32),
        [M(a)] => Instruction::with1(code, a),
        [R(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), I(b)] => Instruction::with2(code, a, b as i32),
        [R(a), M(b)] => Instruction::with2(code, a, b),
        [M(a), R(b)] => Instruction::with2(code, a, b),
        [M(a), I(b)] => Instruction::with2(code, a, b as i32),
        [R(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), I(c)] => Instruction::with3(code, a, b, c as i32),
        [R(a), M(b), I(c)] => Instruction::with3(code, a, b, c as i32),
        [M(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), I(c)] => Instruction::with3(code, a, b, c as i32),
        _ => panic!("unsupported operand combination for {code:?}: {ops:?}"),
    };
    match r {
        Ok(i) => i,
        Err(e) => panic!("cannot build {code:?} {ops:?}: {e}"),
    }
}

/// Number of machine instructions in `items` (labels are free).
pub(crate) fn count(items: &[Item]) -> usize {
    items
        .iter()
        .filter(|i| !matches!(i, Item::Label(_)))
        .count()
}

/// Encoded size of a relative branch with the given code.
pub(crate) fn branch_size(code: Code) -> usize {
    match code.mnemonic() {
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne | Mnemonic::Jecxz => 2,
        Mnemonic::Call => 5,
        Mnemonic::Jmp => {
            if code == Code::Jmp_rel8_32 {
                2
            } else {
                5
            }
        }
        _ => {
            if code.as_short_branch() == code {
                2
            } else {
                6
            }
        }
    }
}

fn add_branch(a: &mut CodeAssembler, code: Code, l: CodeLabel) -> Result<(), String> {
    let short = code.as_short_branch() == code;
    a.set_prefer_short_branch(short);
    match code.mnemonic() {
        Mnemonic::Jo => a.jo(l),
        Mnemonic::Jno => a.jno(l),
        Mnemonic::Jb => a.jb(l),
        Mnemonic::Jae => a.jae(l),
        Mnemonic::Je => a.je(l),
        Mnemonic::Jne => a.jne(l),
        Mnemonic::Jbe => a.jbe(l),
        Mnemonic::Ja => a.ja(l),
        Mnemonic::Js => a.js(l),
        Mnemonic::Jns => a.jns(l),
        Mnemonic::Jp => a.jp(l),
        Mnemonic::Jnp => a.jnp(l),
        Mnemonic::Jl => a.jl(l),
        Mnemonic::Jge => a.jge(l),
        Mnemonic::Jle => a.jle(l),
        Mnemonic::Jg => a.jg(l),
        Mnemonic::Jmp => a.jmp(l),
        Mnemonic::Call => a.call(l),
        Mnemonic::Loop => a.loop_(l),
        Mnemonic::Loope => a.loope(l),
        Mnemonic::Loopne => a.loopne(l),
        Mnemonic::Jecxz => a.jecxz(l),
        m => return Err(format!("unsupported branch mnemonic {m:?}")),
    }
    .map_err(|e| e.to_string())?;
    // Guard against the assembler picking a different form than requested.
    let got = a.instructions().last().map(Instruction::code);
    if got != Some(code) {
        return Err(format!("branch {code:?} assembled as {got:?}"));
    }
    Ok(())
}

const ASM_OPTIONS: u32 =
    BlockEncoderOptions::DONT_FIX_BRANCHES | BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS;

/// Feeds `items` into a fresh assembler. `addrs` gives label addresses to
/// patch into label immediates (or `None` for the placeholder pass).
fn build(
    items: &[Item],
    canon: &HashMap<usize, usize>,
    addrs: Option<&HashMap<usize, u64>>,
) -> Result<(CodeAssembler, HashMap<usize, CodeLabel>), String> {
    let err = |e: iced_x86::IcedError| e.to_string();
    let mut a = CodeAssembler::new(32).map_err(err)?;
    let mut labels: HashMap<usize, CodeLabel> = HashMap::new();
    for &c in canon.values() {
        labels.entry(c).or_insert_with(|| a.create_label());
    }
    let target = |l: &usize| {
        canon
            .get(l)
            .copied()
            .ok_or_else(|| "reference to undefined label".to_string())
    };
    let mut pending_label = false;
    for item in items {
        match item {
            Item::Label(id) => {
                if canon[id] == *id {
                    let lab = labels
                        .get_mut(id)
                        .ok_or_else(|| "label missing".to_string())?;
                    a.set_label(lab).map_err(err)?;
                    pending_label = true;
                }
            }
            Item::Ins(i) => {
                a.add_instruction(*i).map_err(err)?;
                pending_label = false;
            }
            Item::LabelImm(i, l) => {
                let mut i = *i;
                let addr = match addrs {
                    Some(m) => *m
                        .get(&target(l)?)
                        .ok_or_else(|| "label address missing".to_string())?,
                    None => 0,
                };
                i.set_immediate32(addr as u32);
                a.add_instruction(i).map_err(err)?;
                pending_label = false;
            }
            Item::Branch(code, l) => {
                let lab = labels[&target(l)?];
                add_branch(&mut a, *code, lab)?;
                pending_label = false;
            }
        }
    }
    if pending_label {
        // A label at the very end needs an instruction to attach to.
        a.nop().map_err(err)?;
    }
    Ok((a, labels))
}

/// Assembles `items` at `ip`, resolving all labels.
pub(crate) fn assemble(items: &[Item], ip: u64) -> Result<Vec<u8>, String> {
    let err = |e: iced_x86::IcedError| e.to_string();
    // Consecutive labels share one assembler label (only one is allowed per
    // instruction).
    let mut canon = HashMap::new();
    let mut run: Option<usize> = None;
    for item in items {
        if let Item::Label(id) = item {
            let c = *run.get_or_insert(*id);
            canon.insert(*id, c);
        } else {
            run = None;
        }
    }

    let (mut a, labels) = build(items, &canon, None)?;
    let first = a.assemble_options(ip, ASM_OPTIONS).map_err(err)?;
    let mut addrs = HashMap::new();
    for (&id, lab) in &labels {
        addrs.insert(id, first.label_ip(lab).map_err(err)?);
    }

    let (mut a, _) = build(items, &canon, Some(&addrs))?;
    let second = a.assemble_options(ip, ASM_OPTIONS).map_err(err)?;
    let code = second.inner.code_buffer;
    if code.len() != first.inner.code_buffer.len() {
        return Err("code size changed between assembler passes".to_string());
    }
    Ok(code)
}
