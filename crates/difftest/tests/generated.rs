//! Static checks over many generated cases: they assemble and decode, use
//! only allowed instructions and operands, keep memory accesses inside the
//! data window, bound every loop and string count, and cover every class.

use std::collections::{BTreeSet, HashMap, HashSet};

use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory,
    Mnemonic, OpAccess, OpKind, Register,
};
use ringfold_difftest::{
    disassemble, generate, Case, CODE_ADDR, COMPARED_EFLAGS, DATA_ADDR, DATA_SIZE, MEM_BASE,
    STACK_TOP,
};

const SEEDS: u64 = 2000;
const MAX: usize = 40;

fn decode(case: &Case) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(32, &case.code, u64::from(CODE_ADDR), DecoderOptions::NONE);
    let mut v = Vec::new();
    let mut total = 0;
    while d.can_decode() {
        let i = d.decode();
        assert_ne!(
            i.code(),
            Code::INVALID,
            "seed {}: invalid instruction at {:#x}\n{}",
            case.seed,
            i.ip(),
            disassemble(case)
        );
        total += i.len();
        v.push(i);
    }
    assert_eq!(total, case.code.len());
    v
}

fn writes(info: &mut InstructionInfoFactory, i: &Instruction, reg: Register) -> bool {
    info.info(i).used_registers().iter().any(|u| {
        u.register().full_register32() == reg
            && matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            )
    })
}

/// The most recent instruction before `k` (in code order, up to `window`
/// back) that writes `reg`.
fn last_writer<'a>(
    info: &mut InstructionInfoFactory,
    insns: &'a [Instruction],
    k: usize,
    reg: Register,
    window: usize,
) -> Option<(usize, &'a Instruction)> {
    (k.saturating_sub(window)..k)
        .rev()
        .map(|j| (j, &insns[j]))
        .find(|(_, i)| writes(info, i, reg))
}

const ALLOWED_FEATURES: [CpuidFeature; 9] = [
    CpuidFeature::INTEL8086,
    CpuidFeature::INTEL186,
    CpuidFeature::INTEL286,
    CpuidFeature::INTEL386,
    CpuidFeature::INTEL486,
    CpuidFeature::CMOV,
    CpuidFeature::CX8,
    CpuidFeature::SSE,
    CpuidFeature::SSE2,
];

const DENIED: [Mnemonic; 46] = [
    Mnemonic::Int,
    Mnemonic::Int1,
    Mnemonic::Int3,
    Mnemonic::Into,
    Mnemonic::Bound,
    Mnemonic::Ud0,
    Mnemonic::Ud1,
    Mnemonic::Ud2,
    Mnemonic::Hlt,
    Mnemonic::In,
    Mnemonic::Out,
    Mnemonic::Insb,
    Mnemonic::Insw,
    Mnemonic::Insd,
    Mnemonic::Outsb,
    Mnemonic::Outsw,
    Mnemonic::Outsd,
    Mnemonic::Cli,
    Mnemonic::Sti,
    Mnemonic::Cpuid,
    Mnemonic::Rdtsc,
    Mnemonic::Rdtscp,
    Mnemonic::Rdmsr,
    Mnemonic::Wrmsr,
    Mnemonic::Rdpmc,
    Mnemonic::Lar,
    Mnemonic::Lsl,
    Mnemonic::Sgdt,
    Mnemonic::Sidt,
    Mnemonic::Smsw,
    Mnemonic::Str,
    Mnemonic::Sldt,
    Mnemonic::Iret,
    Mnemonic::Iretd,
    Mnemonic::Sysenter,
    Mnemonic::Syscall,
    Mnemonic::Rdrand,
    Mnemonic::Rdseed,
    Mnemonic::Enter,
    Mnemonic::Leave,
    Mnemonic::Pushad,
    Mnemonic::Popad,
    Mnemonic::Pushf,
    Mnemonic::Popf,
    Mnemonic::Retf,
    Mnemonic::Xlatb,
];

fn is_gpr_ebp_esp(r: Register) -> bool {
    matches!(r.full_register32(), Register::EBP | Register::ESP)
}

/// Checks one case; returns nothing, panics with a disassembly on failure.
fn check_case(case: &Case, info: &mut InstructionInfoFactory) {
    let insns = decode(case);
    let fail = |k: usize, what: &str| -> ! {
        panic!(
            "seed {}: {what} at {:#x} ({:?})\n{}",
            case.seed,
            insns[k].ip(),
            insns[k].code(),
            disassemble(case)
        )
    };
    let starts: HashSet<u64> = insns.iter().map(Instruction::ip).collect();
    let end = u64::from(CODE_ADDR) + case.code.len() as u64;
    let lo = i64::from(DATA_ADDR) - i64::from(MEM_BASE);
    let hi = lo + 0x1000;

    for (k, i) in insns.iter().enumerate() {
        let m = i.mnemonic();
        if DENIED.contains(&m) {
            fail(k, "denied mnemonic");
        }
        if i.code()
            .cpuid_features()
            .iter()
            .any(|f| !ALLOWED_FEATURES.contains(f))
        {
            fail(k, "instruction needs a disallowed CPU feature");
        }
        if matches!(
            i.flow_control(),
            FlowControl::Interrupt | FlowControl::Exception | FlowControl::XbeginXabortXend
        ) || i.is_call_far()
            || i.is_jmp_far()
            || i.is_call_far_indirect()
            || i.is_jmp_far_indirect()
        {
            fail(k, "forbidden control transfer");
        }
        if i.segment_prefix() != Register::None {
            fail(k, "segment override");
        }
        for op in 0..i.op_count() {
            if i.op_kind(op) == OpKind::Register {
                let r = i.op_register(op);
                if r.is_segment_register()
                    || r.is_cr()
                    || r.is_dr()
                    || r.is_tr()
                    || r.is_st()
                    || r.is_mm()
                {
                    fail(k, "forbidden register operand");
                }
                if is_gpr_ebp_esp(r) {
                    fail(k, "EBP/ESP used as a register operand");
                }
            }
        }
        if i.has_lock_prefix() && i.op0_kind() != OpKind::Memory {
            fail(k, "LOCK without memory destination");
        }
        if writes(info, i, Register::EBP) {
            fail(k, "EBP written");
        }
        if writes(info, i, Register::ESP)
            && !matches!(
                m,
                Mnemonic::Push
                    | Mnemonic::Pop
                    | Mnemonic::Pushfd
                    | Mnemonic::Popfd
                    | Mnemonic::Call
                    | Mnemonic::Ret
            )
        {
            fail(k, "ESP written by a non-stack instruction");
        }

        // Explicit memory operands.
        if (0..i.op_count()).any(|op| i.op_kind(op) == OpKind::Memory) {
            let base = i.memory_base();
            let index = i.memory_index();
            let disp = i64::from(i.memory_displacement32() as i32);
            if m == Mnemonic::Lea {
                if base == Register::EBP {
                    // Only string pointer set-up: lea esi/edi, [ebp+disp].
                    let dst = i.op0_register();
                    if !matches!(dst, Register::ESI | Register::EDI) || index != Register::None {
                        fail(k, "lea with EBP other than string pointer set-up");
                    }
                    if disp < lo + 0x40 || disp > hi - 0x44 {
                        fail(k, "string pointer too close to the data window edge");
                    }
                } else if is_gpr_ebp_esp(base) || is_gpr_ebp_esp(index) {
                    fail(k, "lea with ESP/EBP");
                }
            } else {
                if base != Register::EBP {
                    fail(k, "memory operand without EBP base");
                }
                let size = i.memory_size().size() as i64;
                assert!(size > 0, "unknown memory size for {:?}", i.code());
                let reach = if index == Register::None {
                    0
                } else {
                    if is_gpr_ebp_esp(index) {
                        fail(k, "ESP/EBP as index");
                    }
                    match last_writer(info, &insns, k, index, 6) {
                        Some((_, w))
                            if w.code() == Code::And_rm32_imm8
                                && w.op0_register() == index
                                && w.immediate(1) == 0x3F => {}
                        _ => fail(k, "index register not masked with and 0x3f"),
                    }
                    63 * i64::from(i.memory_index_scale())
                };
                if disp < lo || disp + reach + size > hi {
                    fail(k, "memory operand outside the data window");
                }
                if size == 16
                    && !matches!(m, Mnemonic::Movdqu | Mnemonic::Movups | Mnemonic::Movupd)
                    && disp % 16 != 0
                {
                    fail(k, "misaligned 128-bit SSE memory operand");
                }
            }
        }

        // String instructions: fresh pointers and a bounded count.
        if i.is_string_instruction() {
            let uses_esi = matches!(
                m,
                Mnemonic::Movsb
                    | Mnemonic::Movsw
                    | Mnemonic::Movsd
                    | Mnemonic::Lodsb
                    | Mnemonic::Lodsw
                    | Mnemonic::Lodsd
                    | Mnemonic::Cmpsb
                    | Mnemonic::Cmpsw
                    | Mnemonic::Cmpsd
            );
            let uses_edi = !matches!(m, Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd);
            for (used, r) in [(uses_esi, Register::ESI), (uses_edi, Register::EDI)] {
                if used {
                    match last_writer(info, &insns, k, r, 6) {
                        Some((_, w))
                            if w.code() == Code::Lea_r32_m && w.memory_base() == Register::EBP => {}
                        _ => fail(k, "string pointer not freshly set"),
                    }
                }
            }
            if i.has_rep_prefix() || i.has_repne_prefix() {
                let ok = match last_writer(info, &insns, k, Register::ECX, 6) {
                    Some((_, w)) if w.code() == Code::Mov_r32_imm32 => w.immediate(1) <= 16,
                    Some((_, w))
                        if w.code() == Code::Mov_r8_imm8 && w.op0_register() == Register::CL =>
                    {
                        w.immediate(1) <= 16
                    }
                    Some((j, w)) if w.code() == Code::Pop_r32 => {
                        insns[j - 1].code() == Code::Pushd_imm8 && insns[j - 1].immediate(0) <= 16
                    }
                    _ => false,
                };
                if !ok {
                    fail(k, "rep count not bounded");
                }
            }
        }

        // Flags through the stack only in the sanitised patterns.
        if m == Mnemonic::Pushfd {
            let next = insns.get(k + 1).map(Instruction::code);
            let ok = match next {
                Some(Code::Popfd) => true,
                Some(Code::Pop_r32) => {
                    let a = &insns[k + 2];
                    a.code() == Code::And_rm32_imm32
                        && a.op0_register() == insns[k + 1].op0_register()
                        && a.immediate(1) & !0x0ED7 == 0
                }
                _ => false,
            };
            if !ok {
                fail(k, "pushfd outside the allowed patterns");
            }
        }
        if m == Mnemonic::Popfd {
            let p = &insns[k - 1];
            let ok = p.code() == Code::Pushfd
                || (matches!(p.code(), Code::Push_r32 | Code::Push_rm32)
                    && insns[k - 3].code() == Code::And_rm32_imm32
                    && insns[k - 3].immediate(1) & !u64::from(COMPARED_EFLAGS) == 0
                    && insns[k - 2].code() == Code::Or_rm32_imm32
                    && insns[k - 2].immediate(1) == 0x202);
            if !ok {
                fail(k, "popfd of an unsanitised value");
            }
        }

        // Direct branches: targets are instruction starts; backward ones are
        // bounded loops whose body cannot touch the counter.
        if matches!(i.op0_kind(), OpKind::NearBranch32) {
            let t = i.near_branch_target();
            if !starts.contains(&t) || t >= end {
                fail(k, "branch target is not an instruction start");
            }
            if t <= i.ip() && m != Mnemonic::Call {
                let counter = match m {
                    Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => Register::ECX,
                    _ if i.is_jcc_short_or_near() => {
                        let d = &insns[k - 1];
                        if !matches!(
                            d.code(),
                            Code::Dec_r32 | Code::Dec_rm32 | Code::Sub_rm32_imm8
                        ) {
                            fail(k, "backward jcc not preceded by a counter decrement");
                        }
                        d.op0_register()
                    }
                    _ => fail(k, "backward branch that is not a loop"),
                };
                let top = insns.iter().position(|x| x.ip() == t).unwrap();
                let body_end =
                    if m == Mnemonic::Loop || m == Mnemonic::Loope || m == Mnemonic::Loopne {
                        k
                    } else {
                        k - 1
                    };
                for (j, b) in insns.iter().enumerate().take(body_end).skip(top) {
                    if writes(info, b, counter) || b.mnemonic() == Mnemonic::Call {
                        fail(j, "loop body writes its counter or calls");
                    }
                }
                let init = &insns[top - 1];
                let ok = (init.code() == Code::Mov_r32_imm32
                    && init.op0_register() == counter
                    && (1..=4).contains(&init.immediate(1)))
                    || (init.code() == Code::Pop_r32
                        && init.op0_register() == counter
                        && insns[top - 2].code() == Code::Pushd_imm8
                        && (1..=4).contains(&insns[top - 2].immediate(0)));
                if !ok {
                    fail(k, "loop counter not initialised just before the loop");
                }
            }
        }

        // Indirect transfers go to labels set up just before.
        if matches!(i.code(), Code::Jmp_rm32 | Code::Call_rm32) {
            let p = &insns[k - 1];
            let ok = if i.op0_kind() == OpKind::Register {
                p.code() == Code::Mov_r32_imm32 && p.op0_register() == i.op0_register()
            } else {
                p.code() == Code::Mov_rm32_imm32
                    && p.memory_base() == i.memory_base()
                    && p.memory_index() == i.memory_index()
                    && p.memory_displacement32() == i.memory_displacement32()
            };
            if !ok || !starts.contains(&p.immediate(1)) {
                fail(k, "indirect transfer to an unknown target");
            }
            if i.code() == Code::Jmp_rm32 && p.immediate(1) <= i.ip() {
                fail(k, "indirect jump backwards");
            }
        }
    }
}

#[test]
fn cases_assemble_decode_and_obey_the_rules() {
    let mut info = InstructionInfoFactory::new();
    for seed in 0..SEEDS {
        let case = generate(seed, MAX);
        assert_eq!(case.seed, seed);
        assert_eq!(case.regs[4], STACK_TOP);
        assert_eq!(case.regs[5], MEM_BASE);
        assert_eq!(
            case.eflags & !COMPARED_EFLAGS,
            0x202,
            "seed {seed}: eflags {:#x}",
            case.eflags
        );
        assert_eq!(case.data.len(), DATA_SIZE);
        let n = decode(&case).len();
        assert!(n <= MAX, "seed {seed}: {n} instructions > {MAX}");
        assert!(n >= MAX / 2, "seed {seed}: only {n} instructions");
        check_case(&case, &mut info);
    }
}

#[test]
fn other_lengths_work() {
    let mut info = InstructionInfoFactory::new();
    for max in [0usize, 1, 2, 3, 5, 8, 100, 300] {
        for seed in 0..200 {
            let case = generate(seed ^ 0xABCD_0000, max);
            let n = decode(&case).len();
            assert!(n <= max, "seed {seed} max {max}: got {n}");
            if max > 0 {
                assert!(n > 0);
            }
            check_case(&case, &mut info);
        }
    }
}

#[test]
fn generation_is_deterministic() {
    for seed in [0u64, 1, 42, 1234, u64::MAX] {
        assert_eq!(generate(seed, 60), generate(seed, 60));
    }
    assert_ne!(generate(1, 40).code, generate(2, 40).code);
}

#[test]
fn disassembly_lists_every_instruction() {
    let case = generate(7, 40);
    let text = disassemble(&case);
    assert_eq!(text.lines().count(), decode(&case).len());
    assert!(text.starts_with("00400000"));
}

#[test]
fn every_class_is_covered() {
    let mut mnemonics: HashMap<Mnemonic, usize> = HashMap::new();
    let mut codes: HashSet<Code> = HashSet::new();
    let mut features: BTreeSet<&str> = BTreeSet::new();
    for seed in 0..SEEDS {
        let case = generate(seed, MAX);
        let insns = decode(&case);
        for w in insns.windows(2) {
            if w[0].code() == Code::Pushd_imm32 && w[1].code() == Code::Retnd {
                features.insert("push label; ret");
            }
        }
        for i in insns {
            match (i.code(), i.op0_kind()) {
                (Code::Jmp_rm32, OpKind::Register) => features.insert("jmp reg"),
                (Code::Jmp_rm32, OpKind::Memory) => features.insert("jmp [mem]"),
                (Code::Call_rm32, OpKind::Register) => features.insert("call reg"),
                (Code::Call_rm32, OpKind::Memory) => features.insert("call [mem]"),
                _ => false,
            };
            *mnemonics.entry(i.mnemonic()).or_default() += 1;
            codes.insert(i.code());
            if i.has_lock_prefix() {
                features.insert("lock");
            }
            if i.has_rep_prefix() {
                features.insert("rep");
            }
            if i.has_repne_prefix() {
                features.insert("repne");
            }
            if (0..i.op_count())
                .any(|o| i.op_kind(o) == OpKind::Register && i.op_register(o).is_gpr16())
            {
                features.insert("16-bit operand");
            }
            if (0..i.op_count()).any(|o| {
                i.op_kind(o) == OpKind::Register
                    && matches!(
                        i.op_register(o),
                        Register::AH | Register::CH | Register::DH | Register::BH
                    )
            }) {
                features.insert("high byte register");
            }
            if i.op_count() > 0
                && (0..i.op_count()).any(|o| i.op_kind(o) == OpKind::Memory)
                && i.memory_index() != Register::None
                && i.mnemonic() != Mnemonic::Lea
            {
                features.insert("indexed memory");
            }
        }
    }
    use Mnemonic as M;
    let classes: &[(&str, &[Mnemonic])] = &[
        (
            "alu",
            &[
                M::Add,
                M::Adc,
                M::Sub,
                M::Sbb,
                M::And,
                M::Or,
                M::Xor,
                M::Cmp,
                M::Test,
                M::Mov,
                M::Inc,
                M::Dec,
                M::Neg,
                M::Not,
            ],
        ),
        (
            "shift",
            &[
                M::Shl,
                M::Shr,
                M::Sar,
                M::Rol,
                M::Ror,
                M::Rcl,
                M::Rcr,
                M::Shld,
                M::Shrd,
            ],
        ),
        ("muldiv", &[M::Mul, M::Imul, M::Div, M::Idiv]),
        (
            "bits",
            &[M::Bt, M::Bts, M::Btr, M::Btc, M::Bsf, M::Bsr, M::Bswap],
        ),
        (
            "setcc",
            &[
                M::Seto,
                M::Setb,
                M::Sete,
                M::Setne,
                M::Setl,
                M::Setg,
                M::Setp,
                M::Sets,
            ],
        ),
        (
            "cmov",
            &[
                M::Cmovo,
                M::Cmovb,
                M::Cmove,
                M::Cmovne,
                M::Cmovl,
                M::Cmovg,
                M::Cmovp,
                M::Cmovs,
            ],
        ),
        ("xchg", &[M::Xchg, M::Xadd, M::Cmpxchg, M::Cmpxchg8b]),
        (
            "ext",
            &[M::Movzx, M::Movsx, M::Lea, M::Cbw, M::Cwde, M::Cwd, M::Cdq],
        ),
        (
            "flags",
            &[M::Clc, M::Stc, M::Cmc, M::Cld, M::Std, M::Lahf, M::Sahf],
        ),
        ("stack", &[M::Push, M::Pop, M::Pushfd, M::Popfd]),
        (
            "string",
            &[
                M::Movsb,
                M::Movsw,
                M::Stosb,
                M::Stosw,
                M::Stosd,
                M::Lodsb,
                M::Lodsw,
                M::Lodsd,
                M::Cmpsb,
                M::Cmpsw,
                M::Scasb,
                M::Scasw,
                M::Scasd,
            ],
        ),
        (
            "flow",
            &[
                M::Jmp,
                M::Je,
                M::Jne,
                M::Jb,
                M::Ja,
                M::Jl,
                M::Jg,
                M::Jecxz,
                M::Loop,
                M::Loope,
                M::Loopne,
                M::Call,
                M::Ret,
            ],
        ),
        (
            "sse",
            &[
                M::Movdqu,
                M::Movdqa,
                M::Movd,
                M::Movq,
                M::Paddd,
                M::Psubq,
                M::Pxor,
                M::Pand,
                M::Pmullw,
                M::Pshufd,
                M::Punpcklbw,
                M::Addps,
                M::Mulpd,
                M::Cvtsi2sd,
                M::Cvttsd2si,
                M::Comisd,
                M::Pmovmskb,
                M::Pextrw,
                M::Pinsrw,
                M::Psllq,
            ],
        ),
    ];
    let mut missing = Vec::new();
    for (class, ms) in classes {
        for m in *ms {
            if !mnemonics.contains_key(m) {
                missing.push(format!("{class}:{m:?}"));
            }
        }
    }
    let want_codes = [
        Code::Movsd_m32_m32,
        Code::Cmpsd_m32_m32,
        Code::Jmp_rel8_32,
        Code::Jmp_rel32_32,
        Code::Je_rel8_32,
        Code::Jne_rel32_32,
        Code::Jmp_rm32,
        Code::Call_rel32_32,
        Code::Call_rm32,
        Code::Retnd,
        Code::Retnd_imm16,
        Code::Pushd_imm32,
        Code::Push_imm16,
        Code::Push_r16,
        Code::Pop_rm32,
        Code::Inc_r32,
        Code::Add_rm8_imm8_82,
        Code::Imul_r32_rm32_imm8,
        Code::Imul_r16_rm16_imm16,
        Code::Shl_rm32_1,
        Code::Sar_rm8_CL,
        Code::Shld_rm16_r16_CL,
        Code::Xchg_r32_EAX,
        Code::Movsd_xmm_xmmm64,
    ];
    for c in want_codes {
        if !codes.contains(&c) {
            missing.push(format!("code:{c:?}"));
        }
    }
    for f in [
        "lock",
        "rep",
        "repne",
        "16-bit operand",
        "high byte register",
        "indexed memory",
        "jmp reg",
        "jmp [mem]",
        "call reg",
        "call [mem]",
        "push label; ret",
    ] {
        if !features.contains(f) {
            missing.push(format!("feature:{f}"));
        }
    }
    assert!(missing.is_empty(), "not generated: {missing:?}");
}
