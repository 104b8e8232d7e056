//! The random instruction-sequence generator.
//!
//! Code is generated as a sequence of *units*: one instruction or a small
//! fixed pattern (e.g. `xor edx,edx; or ecx,1; div ecx`). Control-flow units
//! nest further units (the region a forward branch skips, a loop body, a
//! subroutine body). Every unit is generated against a [`Ctx`] describing
//! what it may do (unbalanced stack operations, registers it must not write)
//! and a [`Budget`] (instructions and bytes); units that do not fit are
//! discarded and regenerated, so nested regions can be kept within rel8 range
//! exactly.
//!
//! Safety invariants maintained here (see the crate docs for the contract):
//! * explicit memory operands are `[ebp+disp]` or `[ebp+idx*scale+disp]` with
//!   `idx` masked by `and idx,0x3f` in the same unit, and always lie inside
//!   the first half of the data area;
//! * EBP is never written, EBP/ESP are never register operands;
//! * the stack stays within the second half of the data area;
//! * string instructions get fresh ESI/EDI (well inside the area, so either
//!   value of DF is fine) and ECX <= 16;
//! * every XMM register is fully written before it is first read (the runners
//!   do not initialise XMM state);
//! * every backward branch is bounded by a counter register that the loop
//!   body cannot write.

use iced_x86::{
    Code, Encoder, Instruction, InstructionInfoFactory, MemoryOperand, Mnemonic, OpAccess,
    Register, RepPrefixKind,
};

use crate::ir::{branch_size, code, count, ins, Item, Op};
use crate::rng::Rng;
use crate::CODE_ADDR;

use Op::{I, M, R};

const R32: [Register; 8] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESP,
    Register::EBP,
    Register::ESI,
    Register::EDI,
];
const R16: [Register; 8] = [
    Register::AX,
    Register::CX,
    Register::DX,
    Register::BX,
    Register::SP,
    Register::BP,
    Register::SI,
    Register::DI,
];
const R8: [Register; 8] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::AH,
    Register::CH,
    Register::DH,
    Register::BH,
];
const XMM: [Register; 8] = [
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
];

/// GPR indices (into `R32`) that may hold data: everything but ESP and EBP.
const DATA_REGS: [usize; 6] = [0, 1, 2, 3, 6, 7];
const EAX: usize = 0;
const ECX: usize = 1;
const EDX: usize = 2;
const ESI: usize = 6;
const EDI: usize = 7;

const CCS: [&str; 16] = [
    "o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g",
];

/// Offsets (relative to EBP = MEM_BASE) of the accessible data window:
/// `[DATA_ADDR, DATA_ADDR + 0x1000)`.
const WIN_LO: i64 = -0x800;
const WIN_HI: i64 = 0x800;
/// Margin for string-instruction pointers: 16 elements of 4 bytes either way.
const STR_MARGIN: i64 = 0x48;
/// Maximum bytes the generated code itself may leave pushed on the stack.
const MAX_DEPTH: u32 = 0x200;

/// Mask applied to the value read back by `pushfd; pop reg`: the arithmetic
/// flags, DF, IF and the always-one bit 1 (no IOPL/AC/ID/... which are
/// environment-dependent).
pub(crate) const PUSHF_MASK: i64 = 0x0ED7;
/// Mask applied before `popfd`: only CF PF AF ZF SF DF OF may change ...
pub(crate) const POPF_KEEP: i64 = 0x0CD5;
/// ... and bit 1 and IF are forced on.
pub(crate) const POPF_SET: i64 = 0x0202;

fn bit(i: usize) -> u8 {
    1 << i
}

/// Index into `R32` of the 32-bit register containing `r`, if it is a GPR.
fn gidx(r: Register) -> Option<usize> {
    let full = r.full_register32();
    R32.iter().position(|&x| x == full)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sz {
    B,
    W,
    D,
}

impl Sz {
    fn bits(self) -> u32 {
        match self {
            Sz::B => 8,
            Sz::W => 16,
            Sz::D => 32,
        }
    }
    fn bytes(self) -> u32 {
        self.bits() / 8
    }
    fn acc(self) -> Register {
        match self {
            Sz::B => Register::AL,
            Sz::W => Register::AX,
            Sz::D => Register::EAX,
        }
    }
    fn acc_name(self) -> &'static str {
        match self {
            Sz::B => "AL",
            Sz::W => "AX",
            Sz::D => "EAX",
        }
    }
    /// Name suffix for a full-width immediate of this size.
    fn imm_name(self) -> &'static str {
        match self {
            Sz::B => "imm8",
            Sz::W => "imm16",
            Sz::D => "imm32",
        }
    }
}

/// What a unit being generated may do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    /// Straight-line top level: unbalanced push/pop allowed.
    top: bool,
    /// GPRs (bit per `R32` index) the unit must not write (loop counters).
    reserved: u8,
    /// Control-flow nesting depth.
    nest: u8,
    /// Inside a subroutine body.
    in_sub: bool,
}

impl Ctx {
    pub(crate) const TOP: Ctx = Ctx {
        top: true,
        reserved: 0,
        nest: 0,
        in_sub: false,
    };

    fn inner(self) -> Ctx {
        Ctx {
            top: false,
            nest: self.nest + 1,
            ..self
        }
    }
    fn can_write(self, g: usize) -> bool {
        self.reserved & bit(g) == 0
    }
}

/// Remaining room for a unit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    pub(crate) insns: usize,
    pub(crate) bytes: usize,
}

#[derive(Clone, Copy, Debug)]
struct Sub {
    label: usize,
    ret_imm: u16,
    /// XMM registers the body may read (defined at the definition point).
    xmm_req: u8,
    /// Upper bound on instructions executed by one call.
    cost: u64,
    /// Longest chain of nested calls starting with this subroutine.
    depth: u32,
}

/// Subroutine bodies only call subroutines cheaper / shallower than this,
/// which bounds both run time and stack use however long the sequence is.
const SUB_CALL_MAX_COST: u64 = 2000;
const SUB_CALL_MAX_DEPTH: u32 = 6;
/// At most this many subroutines per case.
const MAX_SUBS: usize = 32;
/// Worst-case iterations of code inside nested loops (two levels of <= 4).
const LOOP_FACTOR: u64 = 16;

/// Generation state that must be rolled back when a unit is discarded.
#[derive(Clone, Debug)]
struct State {
    /// Bytes pushed (and not yet popped) by top-level code.
    depth: u32,
    /// XMM registers known to hold defined (runner-independent) values.
    xmm_def: u8,
    /// Subroutines that may be called.
    subs: Vec<Sub>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Alu,
    Unary,
    Shift,
    MulDiv,
    Bits,
    SetCmov,
    Xchg,
    Ext,
    Flags,
    Stack,
    Str,
    Sse,
    Skip,
    Loop,
    SubDef,
    CallSub,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Imm {
    /// Any 8-bit value (unsigned field).
    U8,
    /// Sign-extended 8-bit field.
    S8,
    I16,
    I32,
}

pub(crate) struct Gen {
    pub(crate) rng: Rng,
    enc: Encoder,
    info: InstructionInfoFactory,
    next_label: usize,
    st: State,
}

impl Gen {
    pub(crate) fn new(rng: Rng) -> Self {
        Gen {
            rng,
            enc: Encoder::new(32),
            info: InstructionInfoFactory::new(),
            next_label: 0,
            st: State {
                depth: 0,
                xmm_def: 0,
                subs: Vec::new(),
            },
        }
    }

    // ------------------------------------------------------------------
    // Sizes and bookkeeping
    // ------------------------------------------------------------------

    fn insn_size(&mut self, i: &Instruction) -> usize {
        let n = match self.enc.encode(i, u64::from(CODE_ADDR)) {
            Ok(n) => n,
            Err(e) => panic!("cannot encode {:?}: {e}", i.code()),
        };
        let _ = self.enc.take_buffer();
        n
    }

    fn bytes(&mut self, items: &[Item]) -> usize {
        items
            .iter()
            .map(|it| match it {
                Item::Ins(i) | Item::LabelImm(i, _) => self.insn_size(i),
                Item::Branch(c, _) => branch_size(*c),
                Item::Label(_) => 0,
            })
            .sum()
    }

    /// GPRs (bit per `R32` index) written by `items`; calls count as
    /// writing everything.
    fn writes_mask(&mut self, items: &[Item]) -> u8 {
        let mut mask = 0u8;
        for it in items {
            match it {
                Item::Ins(i) | Item::LabelImm(i, _) => {
                    if i.mnemonic() == Mnemonic::Call {
                        return 0xFF;
                    }
                    for u in self.info.info(i).used_registers() {
                        let w = matches!(
                            u.access(),
                            OpAccess::Write
                                | OpAccess::CondWrite
                                | OpAccess::ReadWrite
                                | OpAccess::ReadCondWrite
                        );
                        if w {
                            if let Some(g) = gidx(u.register()) {
                                mask |= bit(g);
                            }
                        }
                    }
                }
                Item::Branch(c, _) => match c.mnemonic() {
                    Mnemonic::Call => return 0xFF,
                    Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => mask |= bit(ECX),
                    _ => {}
                },
                Item::Label(_) => {}
            }
        }
        mask
    }

    fn new_label(&mut self) -> usize {
        self.next_label += 1;
        self.next_label
    }

    // ------------------------------------------------------------------
    // Units and blocks
    // ------------------------------------------------------------------

    /// Generates the whole top-level sequence.
    pub(crate) fn program(&mut self, max_insns: usize) -> Vec<Item> {
        let mut items = Vec::new();
        let mut n = 0;
        while n < max_insns {
            let u = self.unit(
                Ctx::TOP,
                Budget {
                    insns: max_insns - n,
                    bytes: usize::MAX,
                },
            );
            n += count(&u);
            items.extend(u);
        }
        if matches!(items.last(), Some(Item::Label(_))) {
            // A final branch target needs an instruction; top-level units
            // ending in a label leave room for it (see `unit`).
            items.push(Item::Ins(Instruction::with(Code::Nopd)));
        }
        items
    }

    /// Generates one unit that fits `budget` and respects `ctx.reserved`.
    /// Returns an empty vector only if not even one byte/instruction fits.
    fn unit(&mut self, ctx: Ctx, budget: Budget) -> Vec<Item> {
        if budget.insns == 0 || budget.bytes == 0 {
            return Vec::new();
        }
        for _ in 0..16 {
            let saved = self.st.clone();
            let saved_label = self.next_label;
            let mut out = Vec::new();
            let class = self.pick_class(ctx);
            let ok = self.gen_class(class, ctx, budget, &mut out).is_some()
                && count(&out) > 0
                && count(&out) + usize::from(ctx.top && matches!(out.last(), Some(Item::Label(_))))
                    <= budget.insns
                && (budget.bytes == usize::MAX || self.bytes(&out) <= budget.bytes)
                && (ctx.reserved == 0 || self.writes_mask(&out) & ctx.reserved == 0);
            if ok {
                return out;
            }
            self.st = saved;
            self.next_label = saved_label;
        }
        // Fallback that always fits and touches only CF.
        vec![Item::Ins(Instruction::with(Code::Cmc))]
    }

    /// Up to `units` units within `budget` (in total).
    fn block(&mut self, ctx: Ctx, units: usize, budget: Budget) -> Vec<Item> {
        let mut out = Vec::new();
        let (mut insns, mut bytes) = (0usize, 0usize);
        for _ in 0..units {
            let rem = Budget {
                insns: budget.insns - insns,
                bytes: budget.bytes.saturating_sub(bytes),
            };
            if rem.insns == 0 || rem.bytes < 8 {
                break;
            }
            let u = self.unit(ctx, rem);
            if u.is_empty() {
                break;
            }
            insns += count(&u);
            if budget.bytes != usize::MAX {
                bytes += self.bytes(&u);
            }
            out.extend(u);
        }
        out
    }

    fn pick_class(&mut self, ctx: Ctx) -> Class {
        let flow_ok = ctx.nest < 2;
        let sub_ok =
            !ctx.in_sub && ctx.reserved == 0 && ctx.nest < 2 && self.st.subs.len() < MAX_SUBS;
        let call_ok = ctx.reserved == 0 && !self.st.subs.is_empty();
        let w = |ok: bool, w: u32| if ok { w } else { 0 };
        self.rng.weighted(&[
            (20, Class::Alu),
            (6, Class::Unary),
            (10, Class::Shift),
            (7, Class::MulDiv),
            (7, Class::Bits),
            (6, Class::SetCmov),
            (6, Class::Xchg),
            (6, Class::Ext),
            (4, Class::Flags),
            (6, Class::Stack),
            (5, Class::Str),
            (10, Class::Sse),
            (w(flow_ok, 9), Class::Skip),
            (w(flow_ok, 3), Class::Loop),
            (w(sub_ok, 3), Class::SubDef),
            (w(call_ok, 3), Class::CallSub),
        ])
    }

    fn gen_class(
        &mut self,
        class: Class,
        ctx: Ctx,
        budget: Budget,
        out: &mut Vec<Item>,
    ) -> Option<()> {
        match class {
            Class::Alu => self.g_alu(ctx, out),
            Class::Unary => self.g_unary(ctx, out),
            Class::Shift => self.g_shift(ctx, out),
            Class::MulDiv => self.g_muldiv(ctx, out),
            Class::Bits => self.g_bits(ctx, out),
            Class::SetCmov => self.g_setcmov(ctx, out),
            Class::Xchg => self.g_xchg(ctx, out),
            Class::Ext => self.g_ext(ctx, out),
            Class::Flags => self.g_flags(ctx, out),
            Class::Stack => self.g_stack(ctx, out),
            Class::Str => self.g_string(ctx, out),
            Class::Sse => self.g_sse(ctx, out),
            Class::Skip => self.g_skip(ctx, budget, out),
            Class::Loop => self.g_loop(ctx, budget, out),
            Class::SubDef => self.g_subdef(ctx, budget, out),
            Class::CallSub => self.g_callsub(ctx, out),
        }
    }

    // ------------------------------------------------------------------
    // Operand helpers
    // ------------------------------------------------------------------

    fn size(&mut self) -> Sz {
        self.rng.weighted(&[(3, Sz::B), (2, Sz::W), (5, Sz::D)])
    }

    /// A GPR of size `sz` (never ESP/EBP), writable if `write`, whose
    /// 32-bit container is not in `exclude`.
    fn reg(&mut self, sz: Sz, ctx: Ctx, write: bool, exclude: u8) -> Option<Register> {
        let mut cands = [Register::None; 8];
        let mut n = 0;
        let ok = |g: usize| exclude & bit(g) == 0 && (!write || ctx.can_write(g));
        match sz {
            Sz::B => {
                for (i, &r) in R8.iter().enumerate() {
                    if ok(i & 3) {
                        cands[n] = r;
                        n += 1;
                    }
                }
            }
            Sz::W | Sz::D => {
                for &g in &DATA_REGS {
                    if ok(g) {
                        cands[n] = if sz == Sz::W { R16[g] } else { R32[g] };
                        n += 1;
                    }
                }
            }
        }
        if n == 0 {
            None
        } else {
            Some(self.rng.pick(&cands[..n]))
        }
    }

    fn imm(&mut self, kind: Imm) -> i64 {
        let v = self.rng.value32();
        match kind {
            Imm::U8 => i64::from(v & 0xFF),
            Imm::S8 => i64::from(v as u8 as i8),
            Imm::I16 => i64::from(v as u16 as i16),
            Imm::I32 => i64::from(v as i32),
        }
    }

    /// A displacement in `lo..=hi`, multiple of `align`, often disp8-sized.
    fn disp(&mut self, lo: i64, hi: i64, align: i64) -> i64 {
        let (l, h) = if self.rng.chance(50) && lo.max(-128) <= hi.min(127) {
            (lo.max(-128), hi.min(127))
        } else {
            (lo, hi)
        };
        let d = self.rng.range(l, h);
        let d = d - d.rem_euclid(align);
        if d < lo {
            d + align
        } else {
            d
        }
    }

    /// An EBP-based memory operand for an access of `size` bytes inside the
    /// data window. With `align == 1` it may use a masked index register
    /// (not in `idx_exclude`), emitting `and idx, 0x3f` into `out`.
    fn mem(
        &mut self,
        out: &mut Vec<Item>,
        ctx: Ctx,
        size: u32,
        align: i64,
        idx_exclude: u8,
    ) -> MemoryOperand {
        let size = i64::from(size);
        let dsz = if self.rng.chance(15) { 4 } else { 1 };
        if align == 1 && self.rng.chance(25) {
            if let Some(idx) = self.reg(Sz::D, ctx, true, idx_exclude) {
                let scale = self.rng.pick(&[1u32, 2, 4, 8]);
                let hi = WIN_HI - size - 63 * i64::from(scale);
                let d = self.disp(WIN_LO, hi, 1);
                out.push(Item::Ins(ins(Code::And_rm32_imm8, &[R(idx), I(0x3F)])));
                return MemoryOperand::with_base_index_scale_displ_size(
                    Register::EBP,
                    idx,
                    scale,
                    d,
                    dsz,
                );
            }
        }
        let d = self.disp(WIN_LO, WIN_HI - size, align);
        MemoryOperand::with_base_index_scale_displ_size(Register::EBP, Register::None, 1, d, dsz)
    }

    /// A register or memory operand of size `sz`; memory with `mem_pct`%.
    fn rm(
        &mut self,
        out: &mut Vec<Item>,
        ctx: Ctx,
        sz: Sz,
        write: bool,
        mem_pct: u64,
    ) -> Option<Op> {
        if !self.rng.chance(mem_pct) {
            if let Some(r) = self.reg(sz, ctx, write, 0) {
                return Some(R(r));
            }
        }
        Some(M(self.mem(out, ctx, sz.bytes(), 1, 0)))
    }

    fn emit(out: &mut Vec<Item>, c: Code, ops: &[Op]) {
        out.push(Item::Ins(ins(c, ops)));
    }

    /// Emits with a LOCK prefix with probability `pct` if `dst` is memory.
    fn emit_lockable(&mut self, out: &mut Vec<Item>, c: Code, ops: &[Op], pct: u64) {
        let mut i = ins(c, ops);
        if matches!(ops.first(), Some(M(_))) && self.rng.chance(pct) {
            i.set_has_lock_prefix(true);
        }
        out.push(Item::Ins(i));
    }

    // ------------------------------------------------------------------
    // Integer classes
    // ------------------------------------------------------------------

    fn g_alu(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let op = self.rng.pick(&[
            "Add", "Or", "Adc", "Sbb", "And", "Sub", "Xor", "Cmp", "Test", "Mov",
        ]);
        let sz = self.size();
        let b = sz.bits();
        let writes = op != "Cmp" && op != "Test";
        let lockable = writes && op != "Mov";
        let lock_pct = if lockable { 15 } else { 0 };
        match self.rng.below(5) {
            0 => {
                let dst = self.rm(out, ctx, sz, writes, 40)?;
                let src = self.reg(sz, ctx, false, 0)?;
                self.emit_lockable(
                    out,
                    code(&format!("{op}_rm{b}_r{b}")),
                    &[dst, R(src)],
                    lock_pct,
                );
            }
            1 => {
                if op == "Test" {
                    return None;
                }
                let dst = self.reg(sz, ctx, writes, 0)?;
                let src = self.rm(out, ctx, sz, false, 40)?;
                Self::emit(out, code(&format!("{op}_r{b}_rm{b}")), &[R(dst), src]);
            }
            2 => {
                let dst = self.rm(out, ctx, sz, writes, 40)?;
                let kind = match sz {
                    Sz::B => Imm::U8,
                    Sz::W => Imm::I16,
                    Sz::D => Imm::I32,
                };
                let v = self.imm(kind);
                self.emit_lockable(
                    out,
                    code(&format!("{op}_rm{b}_{}", sz.imm_name())),
                    &[dst, I(v)],
                    lock_pct,
                );
            }
            3 => {
                // Sign-extended imm8 (83 /r), or the 32-bit-only 82 /r alias for bytes.
                if op == "Test" || op == "Mov" || (sz == Sz::B && !self.rng.chance(30)) {
                    return None;
                }
                let dst = self.rm(out, ctx, sz, writes, 40)?;
                let name = if sz == Sz::B {
                    format!("{op}_rm8_imm8_82")
                } else {
                    format!("{op}_rm{b}_imm8")
                };
                let v = self.imm(Imm::S8);
                self.emit_lockable(out, code(&name), &[dst, I(v)], lock_pct);
            }
            _ => {
                let kind = match sz {
                    Sz::B => Imm::U8,
                    Sz::W => Imm::I16,
                    Sz::D => Imm::I32,
                };
                let v = self.imm(kind);
                if op == "Mov" {
                    // B0+r / B8+r short forms.
                    let dst = self.reg(sz, ctx, true, 0)?;
                    Self::emit(
                        out,
                        code(&format!("Mov_r{b}_{}", sz.imm_name())),
                        &[R(dst), I(v)],
                    );
                } else {
                    if writes && !ctx.can_write(EAX) {
                        return None;
                    }
                    Self::emit(
                        out,
                        code(&format!("{op}_{}_{}", sz.acc_name(), sz.imm_name())),
                        &[R(sz.acc()), I(v)],
                    );
                }
            }
        }
        Some(())
    }

    fn g_unary(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let op = self.rng.pick(&["Inc", "Dec", "Neg", "Not"]);
        let sz = self.size();
        let b = sz.bits();
        if (op == "Inc" || op == "Dec") && sz != Sz::B && self.rng.chance(35) {
            // One-byte 40+r / 48+r forms (with 66 prefix for 16-bit).
            let r = self.reg(sz, ctx, true, 0)?;
            Self::emit(out, code(&format!("{op}_r{b}")), &[R(r)]);
        } else {
            let dst = self.rm(out, ctx, sz, true, 40)?;
            self.emit_lockable(out, code(&format!("{op}_rm{b}")), &[dst], 15);
        }
        Some(())
    }

    fn shift_count(&mut self) -> i64 {
        match self.rng.below(10) {
            0..=5 => self.rng.range(1, 31),
            6 | 7 => self.rng.pick(&[0, 1, 7, 8, 15, 16, 17, 31]),
            _ => self.rng.range(0, 255),
        }
    }

    fn g_shift(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        if self.rng.chance(20) {
            // SHLD/SHRD
            let op = self.rng.pick(&["Shld", "Shrd"]);
            let sz = if self.rng.chance(35) { Sz::W } else { Sz::D };
            let b = sz.bits();
            let dst = self.rm(out, ctx, sz, true, 35)?;
            let src = self.reg(sz, ctx, false, 0)?;
            if self.rng.chance(50) {
                Self::emit(
                    out,
                    code(&format!("{op}_rm{b}_r{b}_CL")),
                    &[dst, R(src), R(Register::CL)],
                );
            } else {
                let c = self.shift_count();
                Self::emit(
                    out,
                    code(&format!("{op}_rm{b}_r{b}_imm8")),
                    &[dst, R(src), I(c)],
                );
            }
            return Some(());
        }
        let op = self
            .rng
            .pick(&["Rol", "Ror", "Rcl", "Rcr", "Shl", "Shr", "Sar"]);
        let sz = self.size();
        let b = sz.bits();
        let dst = self.rm(out, ctx, sz, true, 35)?;
        match self.rng.below(3) {
            0 => Self::emit(out, code(&format!("{op}_rm{b}_1")), &[dst, I(1)]),
            1 => Self::emit(
                out,
                code(&format!("{op}_rm{b}_CL")),
                &[dst, R(Register::CL)],
            ),
            _ => {
                let c = self.shift_count();
                Self::emit(out, code(&format!("{op}_rm{b}_imm8")), &[dst, I(c)]);
            }
        }
        Some(())
    }

    fn g_muldiv(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let sz = self.size();
        let b = sz.bits();
        match self.rng.below(10) {
            0..=1 => {
                // One-operand MUL/IMUL: AX or eDX:eAX <- acc * r/m.
                if !ctx.can_write(EAX) || (sz != Sz::B && !ctx.can_write(EDX)) {
                    return None;
                }
                let op = self.rng.pick(&["Mul", "Imul"]);
                let src = self.rm(out, ctx, sz, false, 35)?;
                Self::emit(out, code(&format!("{op}_rm{b}")), &[src]);
            }
            2..=3 => {
                let sz = if sz == Sz::W { Sz::W } else { Sz::D };
                let b = sz.bits();
                let dst = self.reg(sz, ctx, true, 0)?;
                let src = self.rm(out, ctx, sz, false, 35)?;
                Self::emit(out, code(&format!("Imul_r{b}_rm{b}")), &[R(dst), src]);
            }
            4..=5 => {
                let sz = if sz == Sz::W { Sz::W } else { Sz::D };
                let b = sz.bits();
                let dst = self.reg(sz, ctx, true, 0)?;
                let src = self.rm(out, ctx, sz, false, 35)?;
                if self.rng.chance(50) {
                    let v = self.imm(Imm::S8);
                    Self::emit(
                        out,
                        code(&format!("Imul_r{b}_rm{b}_imm8")),
                        &[R(dst), src, I(v)],
                    );
                } else {
                    let v = self.imm(if sz == Sz::W { Imm::I16 } else { Imm::I32 });
                    Self::emit(
                        out,
                        code(&format!("Imul_r{b}_rm{b}_{}", sz.imm_name())),
                        &[R(dst), src, I(v)],
                    );
                }
            }
            _ => self.g_div(ctx, sz, out)?,
        }
        Some(())
    }

    /// DIV/IDIV in a pattern that cannot raise #DE.
    fn g_div(&mut self, ctx: Ctx, sz: Sz, out: &mut Vec<Item>) -> Option<()> {
        let b = sz.bits();
        if !ctx.can_write(EAX) || (sz != Sz::B && !ctx.can_write(EDX)) {
            return None;
        }
        let signed = self.rng.chance(50);
        // The divisor must not be (part of) the dividend, and a memory divisor
        // must not be indexed by a register the dividend set-up rewrites.
        let exclude = if sz == Sz::B {
            bit(EAX)
        } else {
            bit(EAX) | bit(EDX)
        };
        let div: Op = if self.rng.chance(40) {
            M(self.mem(out, ctx, sz.bytes(), 1, exclude))
        } else {
            R(self.reg(sz, ctx, true, exclude)?)
        };
        let or1 = if sz == Sz::B {
            "Or_rm8_imm8".to_string()
        } else {
            format!("Or_rm{b}_imm8")
        };
        let big_unsigned = !signed && sz == Sz::D && self.rng.chance(30);
        if signed {
            // Positive, non-zero divisor: the quotient of a sign-extended
            // dividend always fits.
            let (name, mask) = match sz {
                Sz::B => ("And_rm8_imm8", 0x7F),
                Sz::W => ("And_rm16_imm16", 0x7FFF),
                Sz::D => (
                    "And_rm32_imm32",
                    self.rng.pick(&[0x7FFF, 0x7FFF_FFFF, 0xFF]),
                ),
            };
            Self::emit(out, code(name), &[div, I(mask)]);
            Self::emit(out, code(&or1), &[div, I(1)]);
            Self::emit(
                out,
                match sz {
                    Sz::B => Code::Cbw,
                    Sz::W => Code::Cwd,
                    Sz::D => Code::Cdq,
                },
                &[],
            );
        } else if big_unsigned {
            // Divisor >= 2^31 > EDX: full 64-bit dividend without overflow.
            Self::emit(out, Code::Or_rm32_imm32, &[div, I(i64::from(i32::MIN))]);
            Self::emit(
                out,
                Code::And_rm32_imm32,
                &[R(Register::EDX), I(0x7FFF_FFFF)],
            );
        } else {
            Self::emit(out, code(&or1), &[div, I(1)]);
            match sz {
                Sz::B => match self.rng.below(3) {
                    0 => Self::emit(out, Code::Xor_rm8_r8, &[R(Register::AH), R(Register::AH)]),
                    1 => Self::emit(out, Code::Mov_r8_imm8, &[R(Register::AH), I(0)]),
                    _ => Self::emit(
                        out,
                        Code::Movzx_r32_rm8,
                        &[R(Register::EAX), R(Register::AL)],
                    ),
                },
                Sz::W => match self.rng.below(3) {
                    0 => Self::emit(out, Code::Xor_rm16_r16, &[R(Register::DX), R(Register::DX)]),
                    1 => Self::emit(out, Code::Mov_r16_imm16, &[R(Register::DX), I(0)]),
                    _ => Self::emit(
                        out,
                        Code::Xor_r32_rm32,
                        &[R(Register::EDX), R(Register::EDX)],
                    ),
                },
                Sz::D => match self.rng.below(3) {
                    0 => Self::emit(
                        out,
                        Code::Xor_rm32_r32,
                        &[R(Register::EDX), R(Register::EDX)],
                    ),
                    1 => Self::emit(out, Code::Mov_r32_imm32, &[R(Register::EDX), I(0)]),
                    _ => Self::emit(
                        out,
                        Code::Sub_r32_rm32,
                        &[R(Register::EDX), R(Register::EDX)],
                    ),
                },
            }
        }
        let op = if signed { "Idiv" } else { "Div" };
        Self::emit(out, code(&format!("{op}_rm{b}")), &[div]);
        Some(())
    }

    fn g_bits(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let sz = if self.rng.chance(30) { Sz::W } else { Sz::D };
        let b = sz.bits();
        match self.rng.below(8) {
            0..=1 => {
                // Register bit offset: register destination only.
                let op = self.rng.pick(&["Bt", "Bts", "Btr", "Btc"]);
                let dst = self.reg(sz, ctx, op != "Bt", 0)?;
                let src = self.reg(sz, ctx, false, 0)?;
                Self::emit(out, code(&format!("{op}_rm{b}_r{b}")), &[R(dst), R(src)]);
            }
            2..=4 => {
                // Immediate bit offset: memory allowed (offset is taken modulo
                // the operand size, so the access stays inside the operand).
                let op = self.rng.pick(&["Bt", "Bts", "Btr", "Btc"]);
                let dst = self.rm(out, ctx, sz, op != "Bt", 45)?;
                let v = self.imm(Imm::U8);
                let pct = if op == "Bt" { 0 } else { 15 };
                self.emit_lockable(out, code(&format!("{op}_rm{b}_imm8")), &[dst, I(v)], pct);
            }
            5..=6 => {
                let op = self.rng.pick(&["Bsf", "Bsr"]);
                let dst = self.reg(sz, ctx, true, 0)?;
                let src = self.rm(out, ctx, sz, false, 35)?;
                Self::emit(out, code(&format!("{op}_r{b}_rm{b}")), &[R(dst), src]);
            }
            _ => {
                let r = self.reg(Sz::D, ctx, true, 0)?;
                Self::emit(out, Code::Bswap_r32, &[R(r)]);
            }
        }
        Some(())
    }

    fn g_setcmov(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let cc = self.rng.pick(&CCS);
        if self.rng.chance(50) {
            let dst = self.rm(out, ctx, Sz::B, true, 30)?;
            Self::emit(out, code(&format!("Set{cc}_rm8")), &[dst]);
        } else {
            let sz = if self.rng.chance(30) { Sz::W } else { Sz::D };
            let b = sz.bits();
            let dst = self.reg(sz, ctx, true, 0)?;
            let src = self.rm(out, ctx, sz, false, 35)?;
            Self::emit(out, code(&format!("Cmov{cc}_r{b}_rm{b}")), &[R(dst), src]);
        }
        Some(())
    }

    fn g_xchg(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let sz = self.size();
        let b = sz.bits();
        match self.rng.below(11) {
            0..=2 => {
                let dst = self.rm(out, ctx, sz, true, 40)?;
                let src = self.reg(sz, ctx, true, 0)?;
                self.emit_lockable(out, code(&format!("Xchg_rm{b}_r{b}")), &[dst, R(src)], 10);
            }
            3 => {
                // 90+r short form (never with EAX itself, which would be NOP).
                if sz == Sz::B || !ctx.can_write(EAX) {
                    return None;
                }
                let r = self.reg(sz, ctx, true, bit(EAX))?;
                Self::emit(
                    out,
                    code(&format!("Xchg_r{b}_{}", sz.acc_name())),
                    &[R(r), R(sz.acc())],
                );
            }
            4..=5 => {
                let dst = self.rm(out, ctx, sz, true, 40)?;
                let src = self.reg(sz, ctx, true, 0)?;
                self.emit_lockable(out, code(&format!("Xadd_rm{b}_r{b}")), &[dst, R(src)], 20);
            }
            6..=8 => {
                if !ctx.can_write(EAX) {
                    return None;
                }
                let dst = self.rm(out, ctx, sz, true, 50)?;
                let src = self.reg(sz, ctx, false, 0)?;
                if self.rng.chance(35) {
                    // Make the comparison succeed (when acc is not the index).
                    let load = ins(code(&format!("Mov_r{b}_rm{b}")), &[R(sz.acc()), dst]);
                    let idx_is_eax = matches!(dst, M(m) if m.index == Register::EAX);
                    if !idx_is_eax {
                        out.push(Item::Ins(load));
                    }
                }
                self.emit_lockable(
                    out,
                    code(&format!("Cmpxchg_rm{b}_r{b}")),
                    &[dst, R(src)],
                    20,
                );
            }
            _ => {
                if !ctx.can_write(EAX) || !ctx.can_write(EDX) {
                    return None;
                }
                let m = self.mem(out, ctx, 8, 1, bit(EAX) | bit(EDX));
                if self.rng.chance(40) {
                    let mut hi = m;
                    hi.displacement += 4;
                    Self::emit(out, Code::Mov_r32_rm32, &[R(Register::EAX), M(m)]);
                    Self::emit(out, Code::Mov_r32_rm32, &[R(Register::EDX), M(hi)]);
                }
                self.emit_lockable(out, Code::Cmpxchg8b_m64, &[M(m)], 30);
            }
        }
        Some(())
    }

    fn g_ext(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        match self.rng.below(10) {
            0..=3 => {
                let (name, dsz, ssz) = self.rng.pick(&[
                    ("Movzx_r32_rm8", Sz::D, Sz::B),
                    ("Movzx_r32_rm16", Sz::D, Sz::W),
                    ("Movzx_r16_rm8", Sz::W, Sz::B),
                    ("Movsx_r32_rm8", Sz::D, Sz::B),
                    ("Movsx_r32_rm16", Sz::D, Sz::W),
                    ("Movsx_r16_rm8", Sz::W, Sz::B),
                ]);
                let dst = self.reg(dsz, ctx, true, 0)?;
                let src = self.rm(out, ctx, ssz, false, 35)?;
                Self::emit(out, code(name), &[R(dst), src]);
            }
            4..=6 => {
                // LEA as pure arithmetic on data registers (never EBP/ESP).
                let sz = if self.rng.chance(25) { Sz::W } else { Sz::D };
                let dst = self.reg(sz, ctx, true, 0)?;
                let base = if self.rng.chance(85) {
                    self.reg(Sz::D, ctx, false, 0)?
                } else {
                    Register::None
                };
                let index = if self.rng.chance(60) {
                    self.reg(Sz::D, ctx, false, 0)?
                } else {
                    Register::None
                };
                let scale = if index == Register::None {
                    1
                } else {
                    self.rng.pick(&[1u32, 2, 4, 8])
                };
                let disp = if self.rng.chance(50) {
                    self.rng.range(-128, 127)
                } else {
                    self.imm(Imm::I32)
                };
                let dsz = if base == Register::None { 4 } else { 1 };
                let m =
                    MemoryOperand::with_base_index_scale_displ_size(base, index, scale, disp, dsz);
                let c = if sz == Sz::W {
                    Code::Lea_r16_m
                } else {
                    Code::Lea_r32_m
                };
                Self::emit(out, c, &[R(dst), M(m)]);
            }
            _ => {
                let (c, g) = self.rng.pick(&[
                    (Code::Cbw, EAX),
                    (Code::Cwde, EAX),
                    (Code::Cwd, EDX),
                    (Code::Cdq, EDX),
                ]);
                if !ctx.can_write(g) {
                    return None;
                }
                Self::emit(out, c, &[]);
            }
        }
        Some(())
    }

    fn g_flags(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let c = self.rng.pick(&[
            Code::Clc,
            Code::Stc,
            Code::Cmc,
            Code::Cld,
            Code::Std,
            Code::Lahf,
            Code::Sahf,
        ]);
        if c == Code::Lahf && !ctx.can_write(EAX) {
            return None;
        }
        Self::emit(out, c, &[]);
        Some(())
    }

    // ------------------------------------------------------------------
    // Stack
    // ------------------------------------------------------------------

    /// Emits a push of `size` (2 or 4) bytes: register, immediate or memory.
    fn push_any(&mut self, out: &mut Vec<Item>, ctx: Ctx, size: u32) -> Option<()> {
        if size == 2 {
            match self.rng.below(4) {
                0 | 1 => {
                    let r = self.reg(Sz::W, ctx, false, 0)?;
                    Self::emit(out, Code::Push_r16, &[R(r)]);
                }
                2 => {
                    let v = self.imm(Imm::I16);
                    Self::emit(out, Code::Push_imm16, &[I(v)]);
                }
                _ => {
                    let v = self.imm(Imm::S8);
                    Self::emit(out, Code::Pushw_imm8, &[I(v)]);
                }
            }
        } else {
            match self.rng.below(6) {
                0..=2 => {
                    let r = self.reg(Sz::D, ctx, false, 0)?;
                    Self::emit(out, Code::Push_r32, &[R(r)]);
                }
                3 => {
                    let v = self.imm(Imm::S8);
                    Self::emit(out, Code::Pushd_imm8, &[I(v)]);
                }
                4 => {
                    let v = self.imm(Imm::I32);
                    Self::emit(out, Code::Pushd_imm32, &[I(v)]);
                }
                _ => {
                    let m = self.mem(out, ctx, 4, 1, 0);
                    Self::emit(out, Code::Push_rm32, &[M(m)]);
                }
            }
        }
        Some(())
    }

    fn pop_any(&mut self, out: &mut Vec<Item>, ctx: Ctx, size: u32) -> Option<()> {
        if size == 2 {
            let r = self.reg(Sz::W, ctx, true, 0)?;
            Self::emit(out, Code::Pop_r16, &[R(r)]);
        } else if self.rng.chance(75) {
            let r = self.reg(Sz::D, ctx, true, 0)?;
            Self::emit(out, Code::Pop_r32, &[R(r)]);
        } else {
            let m = self.mem(out, ctx, 4, 1, 0);
            Self::emit(out, Code::Pop_rm32, &[M(m)]);
        }
        Some(())
    }

    fn g_stack(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        if ctx.top && self.rng.chance(50) {
            // Unbalanced push or pop at the top level, tracked in `depth`.
            let size = if self.rng.chance(20) { 2 } else { 4 };
            if self.st.depth >= size && self.rng.chance(50) {
                self.pop_any(out, ctx, size)?;
                self.st.depth -= size;
            } else if self.st.depth + size <= MAX_DEPTH {
                self.push_any(out, ctx, size)?;
                self.st.depth += size;
            } else {
                return None;
            }
            return Some(());
        }
        match self.rng.below(10) {
            0..=3 => {
                let size = if self.rng.chance(20) { 2 } else { 4 };
                self.push_any(out, ctx, size)?;
                self.pop_any(out, ctx, size)?;
            }
            4..=5 => {
                // Read the flags into a register (masking environment bits).
                let r = self.reg(Sz::D, ctx, true, 0)?;
                Self::emit(out, Code::Pushfd, &[]);
                Self::emit(out, Code::Pop_r32, &[R(r)]);
                Self::emit(out, Code::And_rm32_imm32, &[R(r), I(PUSHF_MASK)]);
            }
            6..=8 => {
                // Load sanitized data into EFLAGS: only CF PF AF ZF SF DF OF vary.
                let src = if self.rng.chance(70) {
                    R(self.reg(Sz::D, ctx, true, 0)?)
                } else {
                    M(self.mem(out, ctx, 4, 1, 0))
                };
                Self::emit(out, Code::And_rm32_imm32, &[src, I(POPF_KEEP)]);
                Self::emit(out, Code::Or_rm32_imm32, &[src, I(POPF_SET)]);
                // One-byte 50+r form for registers, FF /6 for memory.
                let push = if matches!(src, R(_)) {
                    Code::Push_r32
                } else {
                    Code::Push_rm32
                };
                Self::emit(out, push, &[src]);
                Self::emit(out, Code::Popfd, &[]);
            }
            _ => {
                Self::emit(out, Code::Pushfd, &[]);
                Self::emit(out, Code::Popfd, &[]);
            }
        }
        Some(())
    }

    // ------------------------------------------------------------------
    // String instructions
    // ------------------------------------------------------------------

    fn string_ptr(&mut self, out: &mut Vec<Item>, reg: Register, near: Option<i64>) -> i64 {
        let lo = WIN_LO + STR_MARGIN;
        let hi = WIN_HI - STR_MARGIN;
        let d = match near {
            Some(n) if self.rng.chance(50) => (n + self.rng.range(-24, 24)).clamp(lo, hi),
            _ => self.disp(lo, hi, 1),
        };
        let m =
            MemoryOperand::with_base_index_scale_displ_size(Register::EBP, Register::None, 1, d, 1);
        Self::emit(out, Code::Lea_r32_m, &[R(reg), M(m)]);
        d
    }

    fn g_string(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum S {
            Movs,
            Stos,
            Lods,
            Cmps,
            Scas,
        }
        let op = self
            .rng
            .pick(&[S::Movs, S::Stos, S::Lods, S::Cmps, S::Scas]);
        let sz = self.size();
        let rep = match op {
            S::Movs | S::Stos | S::Lods => {
                if self.rng.chance(60) {
                    RepPrefixKind::Repe
                } else {
                    RepPrefixKind::None
                }
            }
            S::Cmps | S::Scas => self.rng.pick(&[
                RepPrefixKind::None,
                RepPrefixKind::Repe,
                RepPrefixKind::Repne,
            ]),
        };
        let uses_esi = matches!(op, S::Movs | S::Lods | S::Cmps);
        let uses_edi = matches!(op, S::Movs | S::Stos | S::Cmps | S::Scas);
        let counted = rep != RepPrefixKind::None;
        if (uses_esi && !ctx.can_write(ESI))
            || (uses_edi && !ctx.can_write(EDI))
            || (counted && !ctx.can_write(ECX))
            || (op == S::Lods && !ctx.can_write(EAX))
        {
            return None;
        }
        if self.rng.chance(20) {
            Self::emit(
                out,
                if self.rng.chance(50) {
                    Code::Cld
                } else {
                    Code::Std
                },
                &[],
            );
        }
        let mut last = None;
        if uses_esi {
            last = Some(self.string_ptr(out, Register::ESI, None));
        }
        if uses_edi {
            self.string_ptr(out, Register::EDI, last);
        }
        if counted {
            let n = self.rng.range(0, 16);
            match self.rng.below(4) {
                0..=1 => Self::emit(out, Code::Mov_r32_imm32, &[R(Register::ECX), I(n)]),
                2 => {
                    Self::emit(
                        out,
                        Code::Xor_r32_rm32,
                        &[R(Register::ECX), R(Register::ECX)],
                    );
                    Self::emit(out, Code::Mov_r8_imm8, &[R(Register::CL), I(n)]);
                }
                _ => {
                    Self::emit(out, Code::Pushd_imm8, &[I(n)]);
                    Self::emit(out, Code::Pop_r32, &[R(Register::ECX)]);
                }
            }
        }
        let none = Register::None;
        let i = match (op, sz) {
            (S::Movs, Sz::B) => Instruction::with_movsb(32, none, rep),
            (S::Movs, Sz::W) => Instruction::with_movsw(32, none, rep),
            (S::Movs, Sz::D) => Instruction::with_movsd(32, none, rep),
            (S::Stos, Sz::B) => Instruction::with_stosb(32, rep),
            (S::Stos, Sz::W) => Instruction::with_stosw(32, rep),
            (S::Stos, Sz::D) => Instruction::with_stosd(32, rep),
            (S::Lods, Sz::B) => Instruction::with_lodsb(32, none, rep),
            (S::Lods, Sz::W) => Instruction::with_lodsw(32, none, rep),
            (S::Lods, Sz::D) => Instruction::with_lodsd(32, none, rep),
            (S::Cmps, Sz::B) => Instruction::with_cmpsb(32, none, rep),
            (S::Cmps, Sz::W) => Instruction::with_cmpsw(32, none, rep),
            (S::Cmps, Sz::D) => Instruction::with_cmpsd(32, none, rep),
            (S::Scas, Sz::B) => Instruction::with_scasb(32, rep),
            (S::Scas, Sz::W) => Instruction::with_scasw(32, rep),
            (S::Scas, Sz::D) => Instruction::with_scasd(32, rep),
        };
        match i {
            Ok(i) => out.push(Item::Ins(i)),
            Err(e) => panic!("cannot build string instruction: {e}"),
        }
        Some(())
    }

    // ------------------------------------------------------------------
    // SSE/SSE2
    // ------------------------------------------------------------------

    fn xmm(&mut self) -> usize {
        self.rng.below(8) as usize
    }

    /// Emits an instruction that fully writes `x` (no dependency on its old value).
    fn xmm_load(&mut self, out: &mut Vec<Item>, ctx: Ctx, x: usize) -> Option<()> {
        let xr = XMM[x];
        match self.rng.below(10) {
            0..=2 => {
                let c = self.rng.pick(&[
                    Code::Movdqu_xmm_xmmm128,
                    Code::Movups_xmm_xmmm128,
                    Code::Movupd_xmm_xmmm128,
                ]);
                let m = self.mem(out, ctx, 16, 1, 0);
                Self::emit(out, c, &[R(xr), M(m)]);
            }
            3 => {
                let c = self.rng.pick(&[
                    Code::Movdqa_xmm_xmmm128,
                    Code::Movaps_xmm_xmmm128,
                    Code::Movapd_xmm_xmmm128,
                ]);
                let m = self.mem(out, ctx, 16, 16, 0);
                Self::emit(out, c, &[R(xr), M(m)]);
            }
            4 => {
                let r = self.reg(Sz::D, ctx, false, 0)?;
                Self::emit(out, Code::Movd_xmm_rm32, &[R(xr), R(r)]);
            }
            5 => {
                let m = self.mem(out, ctx, 4, 1, 0);
                Self::emit(out, Code::Movd_xmm_rm32, &[R(xr), M(m)]);
            }
            6 => {
                let m = self.mem(out, ctx, 8, 1, 0);
                Self::emit(out, Code::Movq_xmm_xmmm64, &[R(xr), M(m)]);
            }
            7 => {
                let (c, n) = self
                    .rng
                    .pick(&[(Code::Movss_xmm_xmmm32, 4), (Code::Movsd_xmm_xmmm64, 8)]);
                let m = self.mem(out, ctx, n, 1, 0);
                Self::emit(out, c, &[R(xr), M(m)]);
            }
            _ => {
                // Zeroing idiom.
                let c = self.rng.pick(&[
                    Code::Pxor_xmm_xmmm128,
                    Code::Xorps_xmm_xmmm128,
                    Code::Pcmpeqd_xmm_xmmm128,
                ]);
                Self::emit(out, c, &[R(xr), R(xr)]);
            }
        }
        self.st.xmm_def |= bit(x);
        Some(())
    }

    /// Makes sure `x` holds a defined value before it is read.
    fn xmm_ready(&mut self, out: &mut Vec<Item>, ctx: Ctx, x: usize) -> Option<()> {
        if self.st.xmm_def & bit(x) == 0 {
            self.xmm_load(out, ctx, x)?;
        }
        Some(())
    }

    /// A source operand: a defined XMM register or memory of `size` bytes
    /// (16-byte aligned when `size == 16`, as legacy SSE requires).
    fn xmm_src(&mut self, out: &mut Vec<Item>, ctx: Ctx, size: u32) -> Option<Op> {
        if self.rng.chance(30) {
            let align = if size == 16 { 16 } else { 1 };
            Some(M(self.mem(out, ctx, size, align, 0)))
        } else {
            let y = self.xmm();
            self.xmm_ready(out, ctx, y)?;
            Some(R(XMM[y]))
        }
    }

    /// Makes `x` visible: store it to memory or move part of it to a GPR.
    fn xmm_export(&mut self, out: &mut Vec<Item>, ctx: Ctx, x: usize) -> Option<()> {
        let xr = XMM[x];
        match self.rng.below(12) {
            0..=2 => {
                let c = self.rng.pick(&[
                    Code::Movdqu_xmmm128_xmm,
                    Code::Movups_xmmm128_xmm,
                    Code::Movupd_xmmm128_xmm,
                ]);
                let m = self.mem(out, ctx, 16, 1, 0);
                Self::emit(out, c, &[M(m), R(xr)]);
            }
            3 => {
                let c = self
                    .rng
                    .pick(&[Code::Movdqa_xmmm128_xmm, Code::Movaps_xmmm128_xmm]);
                let m = self.mem(out, ctx, 16, 16, 0);
                Self::emit(out, c, &[M(m), R(xr)]);
            }
            4 => {
                let m = self.mem(out, ctx, 4, 1, 0);
                let c = self
                    .rng
                    .pick(&[Code::Movd_rm32_xmm, Code::Movss_xmmm32_xmm]);
                Self::emit(out, c, &[M(m), R(xr)]);
            }
            5 => {
                let m = self.mem(out, ctx, 8, 1, 0);
                let c = self.rng.pick(&[
                    Code::Movq_xmmm64_xmm,
                    Code::Movsd_xmmm64_xmm,
                    Code::Movlps_m64_xmm,
                    Code::Movhps_m64_xmm,
                    Code::Movhpd_m64_xmm,
                ]);
                Self::emit(out, c, &[M(m), R(xr)]);
            }
            6..=7 => {
                let r = self.reg(Sz::D, ctx, true, 0)?;
                Self::emit(out, Code::Movd_rm32_xmm, &[R(r), R(xr)]);
            }
            8 => {
                let r = self.reg(Sz::D, ctx, true, 0)?;
                let c = self.rng.pick(&[
                    Code::Pmovmskb_r32_xmm,
                    Code::Movmskps_r32_xmm,
                    Code::Movmskpd_r32_xmm,
                ]);
                Self::emit(out, c, &[R(r), R(xr)]);
            }
            9 => {
                let r = self.reg(Sz::D, ctx, true, 0)?;
                let v = self.rng.range(0, 7);
                Self::emit(out, Code::Pextrw_r32_xmm_imm8, &[R(r), R(xr), I(v)]);
            }
            _ => {
                // Compare into EFLAGS.
                let (c, n) = self.rng.pick(&[
                    ("Comisd_xmm_xmmm64", 8),
                    ("Ucomisd_xmm_xmmm64", 8),
                    ("Comiss_xmm_xmmm32", 4),
                    ("Ucomiss_xmm_xmmm32", 4),
                ]);
                let src = self.xmm_src(out, ctx, n)?;
                Self::emit(out, code(c), &[R(xr), src]);
            }
        }
        Some(())
    }

    fn g_sse(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        const PACKED: [&str; 80] = [
            "Paddb",
            "Paddw",
            "Paddd",
            "Paddq",
            "Psubb",
            "Psubw",
            "Psubd",
            "Psubq",
            "Paddsb",
            "Paddsw",
            "Paddusb",
            "Paddusw",
            "Psubsb",
            "Psubsw",
            "Psubusb",
            "Psubusw",
            "Pmullw",
            "Pmulhw",
            "Pmulhuw",
            "Pmuludq",
            "Pmaddwd",
            "Psadbw",
            "Pavgb",
            "Pavgw",
            "Pmaxub",
            "Pmaxsw",
            "Pminub",
            "Pminsw",
            "Pand",
            "Pandn",
            "Por",
            "Pxor",
            "Pcmpeqb",
            "Pcmpeqw",
            "Pcmpeqd",
            "Pcmpgtb",
            "Pcmpgtw",
            "Pcmpgtd",
            "Punpcklbw",
            "Punpcklwd",
            "Punpckldq",
            "Punpcklqdq",
            "Punpckhbw",
            "Punpckhwd",
            "Punpckhdq",
            "Punpckhqdq",
            "Packsswb",
            "Packssdw",
            "Packuswb",
            "Psllw",
            "Pslld",
            "Psllq",
            "Psrlw",
            "Psrld",
            "Psrlq",
            "Psraw",
            "Psrad",
            "Addps",
            "Addpd",
            "Subps",
            "Subpd",
            "Mulps",
            "Mulpd",
            "Divps",
            "Divpd",
            "Minps",
            "Minpd",
            "Maxps",
            "Maxpd",
            "Andps",
            "Andnpd",
            "Orps",
            "Xorpd",
            "Unpcklps",
            "Unpcklpd",
            "Unpckhps",
            "Unpckhpd",
            "Sqrtps",
            "Sqrtpd",
            "Cvtdq2ps",
        ];
        const SCALAR: [&str; 14] = [
            "Addss", "Subss", "Mulss", "Divss", "Minss", "Maxss", "Sqrtss", "Addsd", "Subsd",
            "Mulsd", "Divsd", "Minsd", "Maxsd", "Sqrtsd",
        ];
        let x = self.xmm();
        let xr = XMM[x];
        let mut export = self.rng.chance(60);
        match self.rng.below(20) {
            0..=2 => {
                self.xmm_load(out, ctx, x)?;
            }
            3..=8 => {
                self.xmm_ready(out, ctx, x)?;
                let op = self.rng.pick(&PACKED);
                let src = self.xmm_src(out, ctx, 16)?;
                Self::emit(out, code(&format!("{op}_xmm_xmmm128")), &[R(xr), src]);
            }
            9..=10 => {
                self.xmm_ready(out, ctx, x)?;
                let op = self.rng.pick(&SCALAR);
                let n = if op.ends_with("ss") { 4 } else { 8 };
                let src = self.xmm_src(out, ctx, n)?;
                Self::emit(out, code(&format!("{op}_xmm_xmmm{}", n * 8)), &[R(xr), src]);
            }
            11 => {
                self.xmm_ready(out, ctx, x)?;
                let op = self.rng.pick(&[
                    "Psllw", "Pslld", "Psllq", "Psrlw", "Psrld", "Psrlq", "Psraw", "Psrad",
                    "Pslldq", "Psrldq",
                ]);
                let v = if self.rng.chance(85) {
                    self.rng.range(0, 17)
                } else {
                    self.rng.range(0, 255)
                };
                Self::emit(out, code(&format!("{op}_xmm_imm8")), &[R(xr), I(v)]);
            }
            12..=13 => {
                // Shuffles. PSHUF* write the whole destination from the source.
                let op = self.rng.pick(&[
                    "Pshufd", "Pshuflw", "Pshufhw", "Shufps", "Shufpd", "Cmpps", "Cmppd",
                ]);
                if matches!(op, "Shufps" | "Shufpd" | "Cmpps" | "Cmppd") {
                    self.xmm_ready(out, ctx, x)?;
                }
                let src = self.xmm_src(out, ctx, 16)?;
                let v = if op.starts_with("Cmp") {
                    self.rng.range(0, 7)
                } else {
                    self.imm(Imm::U8)
                };
                Self::emit(
                    out,
                    code(&format!("{op}_xmm_xmmm128_imm8")),
                    &[R(xr), src, I(v)],
                );
                self.st.xmm_def |= bit(x);
            }
            14..=15 => {
                // Conversions into XMM.
                match self.rng.below(4) {
                    0 => {
                        // Scalar int -> float merges into the destination.
                        self.xmm_ready(out, ctx, x)?;
                        let c = self
                            .rng
                            .pick(&[Code::Cvtsi2sd_xmm_rm32, Code::Cvtsi2ss_xmm_rm32]);
                        let src = self.rm(out, ctx, Sz::D, false, 30)?;
                        Self::emit(out, c, &[R(xr), src]);
                    }
                    1 => {
                        self.xmm_ready(out, ctx, x)?;
                        let (c, n) = self.rng.pick(&[
                            (Code::Cvtss2sd_xmm_xmmm32, 4),
                            (Code::Cvtsd2ss_xmm_xmmm64, 8),
                            (Code::Pinsrw_xmm_r32m16_imm8, 2),
                        ]);
                        if c == Code::Pinsrw_xmm_r32m16_imm8 {
                            let ssz = if self.rng.chance(50) { Sz::D } else { Sz::W };
                            let src = self.rm(out, ctx, ssz, false, 30)?;
                            let src = match src {
                                M(m) => M(m),
                                R(r) => R(R32[gidx(r)?]),
                                I(_) => return None,
                            };
                            let v = self.rng.range(0, 7);
                            Self::emit(out, c, &[R(xr), src, I(v)]);
                        } else {
                            let src = self.xmm_src(out, ctx, n)?;
                            Self::emit(out, c, &[R(xr), src]);
                        }
                    }
                    2 => {
                        let (c, n) = self.rng.pick(&[
                            (Code::Cvtdq2pd_xmm_xmmm64, 8),
                            (Code::Cvtps2pd_xmm_xmmm64, 8),
                            (Code::Cvtps2dq_xmm_xmmm128, 16),
                            (Code::Cvttps2dq_xmm_xmmm128, 16),
                            (Code::Cvtpd2ps_xmm_xmmm128, 16),
                            (Code::Cvttpd2dq_xmm_xmmm128, 16),
                            (Code::Cvtpd2dq_xmm_xmmm128, 16),
                        ]);
                        let src = self.xmm_src(out, ctx, n)?;
                        Self::emit(out, c, &[R(xr), src]);
                        self.st.xmm_def |= bit(x);
                    }
                    _ => {
                        // MOVQ xmm, xmm zeroes the upper half: a full write.
                        let y = self.xmm();
                        self.xmm_ready(out, ctx, y)?;
                        Self::emit(out, Code::Movq_xmm_xmmm64, &[R(xr), R(XMM[y])]);
                        self.st.xmm_def |= bit(x);
                    }
                }
            }
            16..=17 => {
                // Conversions out to a GPR.
                let r = self.reg(Sz::D, ctx, true, 0)?;
                let (c, n) = self.rng.pick(&[
                    (Code::Cvttsd2si_r32_xmmm64, 8),
                    (Code::Cvtsd2si_r32_xmmm64, 8),
                    (Code::Cvttss2si_r32_xmmm32, 4),
                    (Code::Cvtss2si_r32_xmmm32, 4),
                ]);
                let src = self.xmm_src(out, ctx, n)?;
                Self::emit(out, c, &[R(r), src]);
                export = false;
            }
            _ => {
                self.xmm_ready(out, ctx, x)?;
                self.xmm_export(out, ctx, x)?;
                export = false;
            }
        }
        if export && self.st.xmm_def & bit(x) != 0 {
            self.xmm_export(out, ctx, x)?;
        }
        Some(())
    }

    // ------------------------------------------------------------------
    // Control flow
    // ------------------------------------------------------------------

    /// A forward transfer over 0-3 units: Jcc (rel8/rel32), JMP (rel8/rel32),
    /// JECXZ, `jmp reg`, `jmp [mem]`, or `push label; ret`.
    fn g_skip(&mut self, ctx: Ctx, budget: Budget, out: &mut Vec<Item>) -> Option<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum K {
            Jcc,
            Jmp,
            Jecxz,
            JmpReg,
            JmpMem,
            PushRet,
        }
        if budget.insns < 3 {
            return None;
        }
        let kind = self.rng.weighted(&[
            (10, K::Jcc),
            (2, K::Jmp),
            (2, K::Jecxz),
            (2, K::JmpReg),
            (2, K::JmpMem),
            (1, K::PushRet),
        ]);
        let target = self.new_label();
        let short = match kind {
            K::Jcc | K::Jmp => self.rng.chance(60),
            K::Jecxz => true,
            _ => false,
        };
        match kind {
            K::Jcc => {
                let cc = self.rng.pick(&CCS);
                let form = if short { "rel8_32" } else { "rel32_32" };
                out.push(Item::Branch(code(&format!("J{cc}_{form}")), target));
            }
            K::Jmp => {
                out.push(Item::Branch(
                    if short {
                        Code::Jmp_rel8_32
                    } else {
                        Code::Jmp_rel32_32
                    },
                    target,
                ));
            }
            K::Jecxz => {
                if !ctx.can_write(ECX) {
                    return None;
                }
                if self.rng.chance(50) {
                    let v = self.rng.pick(&[1, 3, 7, 0x10]);
                    Self::emit(out, Code::And_rm32_imm8, &[R(Register::ECX), I(v)]);
                } else {
                    let v = self.rng.range(0, 1);
                    Self::emit(out, Code::Mov_r32_imm32, &[R(Register::ECX), I(v)]);
                }
                out.push(Item::Branch(Code::Jecxz_rel8_32, target));
            }
            K::JmpReg => {
                let r = self.reg(Sz::D, ctx, true, 0)?;
                out.push(Item::LabelImm(
                    ins(Code::Mov_r32_imm32, &[R(r), I(0)]),
                    target,
                ));
                Self::emit(out, Code::Jmp_rm32, &[R(r)]);
            }
            K::JmpMem => {
                let m = self.mem(out, ctx, 4, 1, 0);
                out.push(Item::LabelImm(
                    ins(Code::Mov_rm32_imm32, &[M(m), I(0)]),
                    target,
                ));
                Self::emit(out, Code::Jmp_rm32, &[M(m)]);
            }
            K::PushRet => {
                out.push(Item::LabelImm(ins(Code::Pushd_imm32, &[I(0)]), target));
                Self::emit(out, Code::Retnd, &[]);
            }
        }
        let used = count(out);
        if used >= budget.insns {
            return None;
        }
        let mut room = Budget {
            insns: budget.insns - used,
            bytes: usize::MAX,
        };
        if short {
            room.bytes = 127;
        }
        if budget.bytes != usize::MAX {
            let b = self.bytes(out);
            room.bytes = room.bytes.min(budget.bytes.checked_sub(b)?);
        }
        let units = self.rng.range(if kind == K::Jcc { 1 } else { 0 }, 3) as usize;
        let xmm_before = self.st.xmm_def;
        let region = self.block(ctx.inner(), units, room);
        // The region may not run: forget what it defined.
        self.st.xmm_def = xmm_before;
        out.extend(region);
        out.push(Item::Label(target));
        Some(())
    }

    /// A bounded backward loop: `mov ecx,n; L: body; loop L` (or LOOPE/LOOPNE),
    /// or `mov r,n; L: body; dec r; jnz L`. The body cannot write the counter.
    fn g_loop(&mut self, ctx: Ctx, budget: Budget, out: &mut Vec<Item>) -> Option<()> {
        if budget.insns < 4 {
            return None;
        }
        let n = self.rng.range(1, 4);
        let top = self.new_label();
        let use_loop = self.rng.chance(50);
        let counter = if use_loop {
            if !ctx.can_write(ECX) {
                return None;
            }
            Register::ECX
        } else {
            self.reg(Sz::D, ctx, true, 0)?
        };
        let g = gidx(counter)?;
        if self.rng.chance(80) {
            Self::emit(out, Code::Mov_r32_imm32, &[R(counter), I(n)]);
        } else {
            Self::emit(out, Code::Pushd_imm8, &[I(n)]);
            Self::emit(out, Code::Pop_r32, &[R(counter)]);
        }
        out.push(Item::Label(top));
        // Closing sequence, decided up front so the body's byte budget is exact.
        let mut tail = Vec::new();
        let short;
        if use_loop {
            let c = self.rng.pick(&[
                Code::Loop_rel8_32_ECX,
                Code::Loope_rel8_32_ECX,
                Code::Loopne_rel8_32_ECX,
            ]);
            tail.push(Item::Branch(c, top));
            short = true;
        } else {
            match self.rng.below(3) {
                0 => Self::emit(&mut tail, Code::Dec_r32, &[R(counter)]),
                1 => Self::emit(&mut tail, Code::Dec_rm32, &[R(counter)]),
                _ => Self::emit(&mut tail, Code::Sub_rm32_imm8, &[R(counter), I(1)]),
            }
            // Continue while the counter is non-zero (JA also stops early on CF=1).
            let cc = self.rng.pick(&["ne", "ne", "g", "a"]);
            short = self.rng.chance(60);
            let form = if short { "rel8_32" } else { "rel32_32" };
            tail.push(Item::Branch(code(&format!("J{cc}_{form}")), top));
        }
        let used = count(out) + count(&tail);
        if used >= budget.insns {
            return None;
        }
        let tail_bytes = self.bytes(&tail);
        let mut room = Budget {
            insns: budget.insns - used,
            bytes: usize::MAX,
        };
        if short {
            room.bytes = 128 - tail_bytes;
        }
        if budget.bytes != usize::MAX {
            let b = self.bytes(out) + tail_bytes;
            room.bytes = room.bytes.min(budget.bytes.checked_sub(b)?);
        }
        let inner = Ctx {
            reserved: ctx.reserved | bit(g),
            ..ctx.inner()
        };
        let units = self.rng.range(1, 3) as usize;
        let body = self.block(inner, units, room);
        out.extend(body);
        out.extend(tail);
        Some(())
    }

    /// Defines a subroutine (jumped over) and usually calls it right away.
    fn g_subdef(&mut self, ctx: Ctx, budget: Budget, out: &mut Vec<Item>) -> Option<()> {
        if budget.insns < 4 {
            return None;
        }
        let ret_imm: u16 = if self.rng.chance(30) { 4 } else { 0 };
        let entry = self.new_label();
        let over = self.new_label();
        let short = self.rng.chance(50);
        out.push(Item::Branch(
            if short {
                Code::Jmp_rel8_32
            } else {
                Code::Jmp_rel32_32
            },
            over,
        ));
        out.push(Item::Label(entry));
        let ret = if ret_imm == 0 {
            ins(Code::Retnd, &[])
        } else {
            ins(Code::Retnd_imm16, &[I(i64::from(ret_imm))])
        };
        let ret_size = if ret_imm == 0 { 1 } else { 3 };
        // Leave room for the jmp, ret, and a call sequence of up to 3.
        let reserve = if budget.insns >= 7 { 5 } else { 2 };
        let mut room = Budget {
            insns: budget.insns - reserve,
            bytes: usize::MAX,
        };
        if short {
            room.bytes = 127 - ret_size;
        }
        if budget.bytes != usize::MAX {
            room.bytes = room.bytes.min(budget.bytes.checked_sub(5 + ret_size)?);
        }
        let xmm_before = self.st.xmm_def;
        let body_ctx = Ctx {
            top: false,
            reserved: 0,
            nest: ctx.nest + 1,
            in_sub: true,
        };
        let units = self.rng.range(1, 3) as usize;
        let body = self.block(body_ctx, units, room);
        self.st.xmm_def = xmm_before;
        // Bound the work of one call from the body's size and the subroutines it calls.
        let mut cost = LOOP_FACTOR * (count(&body) as u64 + 1);
        let mut depth = 1;
        for it in &body {
            if let Item::Branch(_, l) | Item::LabelImm(_, l) = it {
                if let Some(callee) = self.st.subs.iter().find(|s| s.label == *l) {
                    cost += callee.cost;
                    depth = depth.max(callee.depth + 1);
                }
            }
        }
        out.extend(body);
        out.push(Item::Ins(ret));
        out.push(Item::Label(over));
        let sub = Sub {
            label: entry,
            ret_imm,
            xmm_req: xmm_before,
            cost,
            depth,
        };
        self.st.subs.push(sub);
        if budget.insns - count(out) >= 3 && self.rng.chance(85) {
            self.call_sub(ctx, sub, out)?;
        }
        Some(())
    }

    fn g_callsub(&mut self, ctx: Ctx, out: &mut Vec<Item>) -> Option<()> {
        let def = self.st.xmm_def;
        let ready: Vec<Sub> = self
            .st
            .subs
            .iter()
            .copied()
            .filter(|s| s.xmm_req & !def == 0)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let sub = self.rng.pick(&ready);
        self.call_sub(ctx, sub, out)
    }

    /// `call rel32`, `mov r,label; call r` or `mov [m],label; call [m]`,
    /// preceded by the argument push a `ret 4` subroutine expects.
    fn call_sub(&mut self, ctx: Ctx, sub: Sub, out: &mut Vec<Item>) -> Option<()> {
        if ctx.reserved != 0 || sub.xmm_req & !self.st.xmm_def != 0 {
            return None;
        }
        if ctx.in_sub && (sub.cost > SUB_CALL_MAX_COST || sub.depth >= SUB_CALL_MAX_DEPTH) {
            return None;
        }
        if sub.ret_imm == 4 {
            self.push_any(out, ctx, 4)?;
        }
        match self.rng.below(4) {
            0 | 1 => out.push(Item::Branch(Code::Call_rel32_32, sub.label)),
            2 => {
                let r = self.reg(Sz::D, ctx, true, 0)?;
                out.push(Item::LabelImm(
                    ins(Code::Mov_r32_imm32, &[R(r), I(0)]),
                    sub.label,
                ));
                Self::emit(out, Code::Call_rm32, &[R(r)]);
            }
            _ => {
                let m = self.mem(out, ctx, 4, 1, 0);
                out.push(Item::LabelImm(
                    ins(Code::Mov_rm32_imm32, &[M(m), I(0)]),
                    sub.label,
                ));
                Self::emit(out, Code::Call_rm32, &[M(m)]);
            }
        }
        Some(())
    }
}
