//! Scan-before-execute translator: guest code is decoded into blocks in the translation
//! cache. Innocuous instructions are copied byte for byte (same mode, same semantics);
//! direct branches are chained to translated targets (through link stubs until the target
//! exists); CALL rel pushes the exact guest return EIP; every sensitive instruction,
//! indirect branch and return becomes an exit to the monitor's interpreter.
//!
//! Pure logic: the cache is a byte buffer whose host address is known; the host layer
//! only provides the buffer and the 64-bit exit stub encoding.

use iced_x86::{CpuidFeature, Decoder, DecoderOptions, FlowControl, Instruction, MemoryOperand, Mnemonic, OpAccess, OpKind, Register};
use crate::fxhash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// What a translation depends on besides the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Linear address of the first instruction.
    pub lin: u32,
    pub cs_base: u32,
    pub cs_limit: u32,
    pub cpl: u8,
    /// Mode bits: bit0 CR0.TS, bit1 CR0.EM, bit2 CR4.OSFXSR, bit3 CR0.MP (FPU availability);
    /// bit4: RDTSC may run natively (guest TSC = host TSC and CR4.TSD does not apply).
    pub fpu: u8,
    /// Guest CPL3 with a flat DS and a 4 GiB GS: GS:-prefixed memory operands address
    /// through DS with the GS base read at run time (`emit_tls`). Blocks without such an
    /// operand are keyed without it (`agnostic`).
    pub tls: bool,
}

/// Everything in a key but the address: translations of one context may jump to each
/// other through the inline lookup tables.
pub type Context = (u32, u32, u8, u8, bool);

impl Key {
    pub fn context(&self) -> Context {
        (self.cs_base, self.cs_limit, self.cpl, self.fpu, self.tls)
    }

    pub fn eip(&self) -> u32 {
        self.lin.wrapping_sub(self.cs_base)
    }
    fn with_eip(&self, eip: u32) -> Key {
        Key { lin: self.cs_base.wrapping_add(eip), ..*self }
    }

    /// The same key for a block with no TLS operand (`tls_operand`): valid whatever DS
    /// and GS are.
    pub fn agnostic(&self) -> Key {
        Key { tls: false, ..*self }
    }
}

/// Why a translator site exits to the monitor.
#[derive(Clone, Debug)]
pub enum SiteKind {
    /// Interpret this guest instruction (sensitive, indirect branch, return, invalid).
    /// `fill`: the instruction is the miss path of an inline lookup; afterwards the monitor
    /// enters the target in that context's table.
    /// `agnostic`: the site's block is valid in TLS and non-TLS contexts (see
    /// `TCache::lookup`), so its table may only name blocks that are too.
    Emulate(Box<Instruction>, bool, bool),
    /// x87/MMX/SSE instruction that must raise #NM or #UD in the current FPU mode.
    Fpu { eip: u32, sse: bool },
    /// A direct branch to a target without translation yet. `patch` is the TC offset of
    /// the rel32 to fix up; `undo_push` is set for CALL (the return address was pushed).
    Link { target: Key, branch_eip: u32, patch: usize, undo_push: bool },
    /// Instruction fetch at `eip` fails (beyond the CS limit: #GP(0); or a page fault on
    /// the instruction's bytes): the monitor works out which and raises it.
    FetchFault { eip: u32 },
    /// Entry of an invalidated block: translate `key` afresh.
    Dispatch { key: Key },
    /// An inline STI set IF while an interrupt is pending: deliver it after the STI shadow.
    StiPending { next: u32 },
    /// The miss path of an inline segment load (MOV/POP to DS, ES, FS, GS): interpret it,
    /// then fill the segment-load table for the selector.
    SegLoad(Box<Instruction>),
    /// An inline SYSEXIT found no translation of EDX in the CPL3 lookup table: the
    /// SYSEXIT is done (the guest is at CPL3, EIP = EDX); fill the table.
    SysexitMiss,
}

/// Scratch state an inline lookup sequence has put on the guest stack at a given host
/// instruction: `reserve` bytes from `lea -n(%esp)`, then `pushes` of EAX, ECX, EDX.
/// A fault there is undone (registers reloaded from the stack, ESP restored) and the guest
/// instruction is interpreted by the monitor, which then takes the guest's own faults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scratch {
    pub in_seq: bool,
    pub reserve: u8,
    pub pushes: u8,
    /// Inline CLI/STI sequences instead: `undo` bytes of scratch on the stack, and the
    /// guest's ECX saved at ESP + `ecx_at` if set.
    pub if_seq: bool,
    pub undo: u8,
    pub ecx_at: Option<i8>,
    /// Also for inline PUSHFD/POPFD: the guest's EAX saved at ESP + `eax_at`, and host
    /// EFLAGS (arithmetic flags to restore) saved at ESP + `flags_at`.
    pub eax_at: Option<i8>,
    pub flags_at: Option<i8>,
    /// Inline segment loads and segment reads also save EDX and EBX (below ESP: offsets
    /// are negative there).
    pub edx_at: Option<i8>,
    pub ebx_at: Option<i8>,
    /// Inline flag sequences: while DS holds the virtual-flags segment, the guest's DS (its
    /// host selector) is saved at ESP + `ds_at`.
    pub ds_at: Option<i8>,
    /// Not rewindable (a kick resumes exactly there; nothing here can fault).
    pub raw_ok: bool,
    /// Past the commit point of an inline SYSENTER/SYSEXIT, or past an inline STI's store
    /// (`fastsys::DONE_*`): undo the scratch state, then the monitor completes the
    /// instruction instead of interpreting it.
    pub done: u8,
    /// The instruction right after an inline STI: interrupts wait until it has run.
    pub sti_shadow: bool,
    /// A TLS access (`emit_tls`): the guest's register `.0` is saved at ESP + `.1` (a
    /// fault or kick here restores it before anything else).
    pub saved: Option<(u8, i8)>,
    /// The instruction starts with a store below ESP that the guest instruction does not
    /// make (`emit_tls`): a fault there is not the guest's.
    pub scratch_store: bool,
}

/// A chained jump into a block: where its rel32 is and what it links to.
#[derive(Clone, Copy, Debug)]
struct Incoming {
    pos: usize,
    target: Key,
    branch_eip: u32,
    undo_push: bool,
    from_block: usize,
}

/// A translated block.
#[derive(Clone, Debug)]
pub struct Block {
    pub key: Key,
    /// TC offsets [start, end) of the block's code (excluding its stubs).
    pub start: usize,
    pub end: usize,
    /// Guest linear bytes [lin_start, lin_end) the block was translated from.
    pub lin_end: u32,
    /// Host instructions that can fault, ascending by TC offset: (TC offset, guest EIP,
    /// scratch state to undo before the guest instruction is interpreted instead).
    pub insns: Vec<(usize, u32, Scratch)>,
    pub live: bool,
    /// Parked while its page is mapped elsewhere (or not at all) in the current address
    /// space: the entry jumps to a `Dispatch` exit; the code stays for a switch back.
    pub suspended: bool,
    /// The entry's original bytes and its parked form (a far jump to the block's own
    /// `Dispatch` exit), once the block has been parked.
    entry: Option<([u8; STUB32], [u8; STUB32])>,
}

/// Counters shown with --stats and used by benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcStats {
    pub blocks: u64,
    pub guest_insns: u64,
    pub flushes: u64,
    pub invalidations: u64,
    pub links: u64,
    /// Pages whose blocks were parked at an address-space switch / brought back.
    pub suspended_pages: u64,
    pub revived_pages: u64,
    /// CALLs to PC thunks translated as the thunk's effect (`emit_thunk_call`).
    pub thunk_calls: u64,
}

/// Translation cache bookkeeping.
pub struct TCache {
    /// Host linear address of `buf[0]` (the executable view).
    pub host_base: u32,
    size: usize,
    top: usize,
    /// Lookup tables are allocated downwards from the end of the cache (blocks grow
    /// upwards from `top`), so a block can name a table it needs without interleaving it.
    tables_bottom: usize,
    /// Key -> block index, for live and parked blocks (parking and reviving leave it alone;
    /// `lookup` only returns live blocks).
    map: HashMap<Key, usize>,
    pub blocks: Vec<Block>,
    /// TC start offset -> block index, for mapping host faults back.
    by_start: BTreeMap<usize, usize>,
    pub sites: Vec<SiteKind>,
    /// Guest page -> blocks translated from it.
    pages: HashMap<u32, Vec<usize>>,
    /// Guest page -> (physical page, blocks) parked by `suspend_page`.
    suspended: HashMap<u32, (u32, Vec<usize>)>,
    /// Lookup table (TC offset) per translation context (`Key::context`).
    tables: HashMap<Context, usize>,
    /// Chained jumps into each block (by TC start offset).
    incoming: HashMap<usize, Vec<Incoming>>,
    /// Links and table entries from blocks shared by TLS and non-TLS contexts to blocks
    /// made for one: undone when the context changes. (rel32 position, previous rel32)
    /// for links; table entry offsets for lookup-table entries.
    ctx_links: Vec<(usize, u32)>,
    ctx_entries: Vec<(usize, u32)>,
    /// The context (shared context, TLS or not) those links and entries were made for.
    ctx_owner: Option<(Context, bool)>,
    pub stats: TcStats,
    exit_stub: fn(u32) -> [u8; 19],
    /// The way `fill_entry` replaced last in a full set.
    victim: u8,
    /// 32-bit code selector of the host's 64-bit code (far-jump target selector).
    host_cs64: u16,
    /// `perf` JIT symbol map being written (`enable_perf_map`).
    perf_map: Option<std::io::BufWriter<std::fs::File>>,
    /// Live blocks that are PC thunks (`mov reg, [esp]; ret`), by TC start offset: the
    /// register and the entry's first dword while the block is live (see `emit_thunk_call`).
    thunks: HashMap<usize, (u8, u32)>,
}

/// Errors the translator reports (not guest exceptions).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error("16-bit code segments are not supported yet (guest CS descriptor has D=0)")]
    Code16,
    #[error("16-bit near branches (operand-size prefix) are not supported yet at EIP {0:#x}")]
    Branch16(u32),
}

const MAX_INSNS: usize = 64;
/// Worst case bytes one block needs (instructions, links, stubs).
const MAX_BLOCK_BYTES: usize = MAX_INSNS * (16 + 40) + 512;
/// Bound on what one guest instruction adds to a block (its code and exit or link stubs)
/// plus the block's closing jump, its link stub and padding: a block stops before an
/// instruction that might not fit in `MAX_BLOCK_BYTES` (blocks go on past conditional
/// branches and PC-thunk calls, whose link stubs add up).
const MAX_EXPANSION: usize = 512;
const STUB32: usize = 7;
/// Lookup tables are two-way set-associative, sets of two 8-byte entries: 8192 sets for
/// CPL0 contexts (the kernel: one context, and the most distinct return addresses; with
/// 4096 sets, conflicts made 290k of W2's 320k interpreted kernel RETs), 4096 for CPL3
/// contexts (shared by all processes).
const SMALL_SETS: u32 = 4096;
const BIG_SETS: u32 = 8192;

/// The number of sets of the lookup table of context `ctx`.
fn table_sets(ctx: &Context) -> u32 {
    match ctx {
        (_, _, 0, ..) => BIG_SETS,
        _ => SMALL_SETS,
    }
}

/// The first bytes of the cache hold data the translations read through CS (the monitor
/// writes them through the cache's alias). The guest's CS and SS selectors (at 4 and 8;
/// the layout is ES CS SS DS FS GS as zero-extended dwords), kept current by the monitor
/// before every entry (CS and SS only change in the monitor).
pub const SELECTOR_MIRROR: usize = 0;
/// Guest selector (u16) for each host selector value 0..SEG_REV_ENTRIES that a data
/// segment register may hold (null selectors 0..3 and the shadow slots): how translated
/// PUSH DS / MOV r32, FS read the guest's DS/ES/FS/GS, which inline loads change.
pub const SEG_REV: usize = 64;
pub const SEG_REV_ENTRIES: usize = 1024;
/// The selector mirror CPL3 blocks read (CS at +4, SS at +8): blocks of the two CPLs
/// read separate mirrors because inline SYSENTER/SYSEXIT change CS and SS without the
/// monitor (see `fastsys`).
pub const SELECTOR_MIRROR3: usize = 32;
/// The inline segment-load table (see `segcache`): 256 entries of 32 bytes, indexed by the
/// low byte of the guest selector.
pub const SEG_TABLE: usize = SEG_REV + 2 * SEG_REV_ENTRIES;
/// Inline SYSEXIT: host selector -> host selector of the same guest segment truncated for
/// CPL3 (`fastsys::USER_SEL_ENTRIES` u32 entries).
pub const USER_SEL: usize = SEG_TABLE + crate::segcache::TABLE_BYTES;
/// The inline SYSENTER/SYSEXIT record (`fastsys::ENTER_SS` ...).
pub const FAST_RECORD: usize = USER_SEL + 4 * crate::fastsys::USER_SEL_ENTRIES;
/// The guest's CR0..CR4 (CRn at 4*n; CR1 unused), kept current by the monitor before every
/// entry (control registers only change in the monitor): how translated MOV r32, CRn reads
/// them. Linux's page-fault handler reads CR2 at every fault (W2: 52 per fork+exec).
pub const CR_MIRROR: usize = FAST_RECORD + crate::fastsys::RECORD_BYTES;
/// The guest's GS base while it runs at CPL3 (written by the monitor before such entries;
/// inline SYSEXIT only continues into the user context entered last): TLS accesses add it
/// at run time (`emit_tls`).
pub const TLS_BASE: usize = CR_MIRROR + 20;
const DATA_BYTES: usize = TLS_BASE + 4;
/// Bytes of the largest lookup table.
const TABLE_BYTES: usize = BIG_SETS as usize * 16;
const STUB64: usize = 19;

/// CPUID features whose instructions may run natively (what our CPUID advertises).
fn feature_allowed(f: CpuidFeature) -> bool {
    use CpuidFeature as F;
    matches!(
        f,
        F::INTEL8086 | F::INTEL186 | F::INTEL286 | F::INTEL386 | F::INTEL486 | F::FPU | F::FPU287
            | F::FPU387 | F::CMOV | F::CX8 | F::MMX | F::SSE | F::SSE2 | F::FXSR | F::MULTIBYTENOP
            | F::PAUSE | F::CLFSH | F::TSC | F::MSR | F::CPUID | F::SEP
    )
}

fn is_fpu_feature(f: CpuidFeature) -> Option<bool> {
    use CpuidFeature as F;
    match f {
        F::FPU | F::FPU287 | F::FPU387 | F::MMX => Some(false),
        F::SSE | F::SSE2 => Some(true),
        _ => None,
    }
}

/// How one instruction is translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Copy,
    /// Copied with its F3 prefix removed (REP-prefixed BSF/BSR on a CPU without BMI1/ABM).
    CopyWithoutRep,
    Jcc,
    Jmp,
    Call,
    LoopLike,
    Emulate,
    Fpu { sse: bool },
    /// PUSH Sreg (32-bit) / MOV r32, Sreg: read the selector from the mirror.
    SregRead,
    /// CLI / STI at guest CPL0: the virtual IF in the virtual-flags page.
    InlineCli,
    InlineSti,
    /// PUSHFD / POPFD at guest CPL0: system flags from/to the virtual-flags page.
    InlinePushfd,
    InlinePopfd,
    /// MOV DS/ES/FS/GS, r/m16 and POP DS/ES/FS/GS at guest CPL0: the segment-load table.
    InlineSegLoad,
    /// MOV r32, CR0/CR2/CR3/CR4 at guest CPL0: the control-register mirror (`CR_MIRROR`).
    InlineCrRead,
    /// Near RET / RET imm16 (32-bit operand size): inline table lookup.
    Ret,
    /// Near JMP/CALL through a 32-bit register or memory operand: inline table lookup.
    IndirectJmp,
    IndirectCall,
    /// SYSENTER at guest CPL3 / SYSEXIT at guest CPL0 (see `fastsys`).
    InlineSysenter,
    InlineSysexit,
}

/// Classifies a decoded 32-bit instruction (translator policy; unit-tested).
pub fn classify(i: &Instruction, fpu: u8) -> Class {
    use Mnemonic as M;
    if i.code() == iced_x86::Code::INVALID {
        return Class::Emulate;
    }
    // VEX/EVEX/XOP encodings (AVX...) are not advertised: #UD via the interpreter.
    if i.encoding() != iced_x86::EncodingKind::Legacy {
        return Class::Emulate;
    }
    // Without BMI1/ABM (not advertised), F3 0F BC/BD are BSF/BSR with an ignored REP
    // prefix; the host has them, so the prefix is dropped to get the guest CPU's meaning.
    if matches!(i.mnemonic(), M::Tzcnt | M::Lzcnt) {
        return Class::CopyWithoutRep;
    }
    let feats = i.cpuid_features();
    if feats.iter().any(|f| !feature_allowed(*f)) {
        return Class::Emulate;
    }
    let fp = feats.iter().find_map(|f| is_fpu_feature(*f));
    let (ts, em, osfxsr, mp) = (fpu & 1 != 0, fpu & 2 != 0, fpu & 4 != 0, fpu & 8 != 0);
    if let Some(sse) = fp {
        let mmx_or_x87 = !sse;
        let fx = matches!(i.mnemonic(), M::Fxsave | M::Fxrstor);
        if (sse && !fx && (!osfxsr || em)) || ts || (mmx_or_x87 && em) {
            return Class::Fpu { sse: sse && !fx };
        }
    }
    if matches!(i.mnemonic(), M::Wait) && ts && mp {
        return Class::Fpu { sse: false };
    }
    if i.mnemonic() == M::Rdtsc && fpu & 0x10 != 0 {
        return Class::Copy;
    }
    match i.flow_control() {
        FlowControl::Next => {}
        FlowControl::UnconditionalBranch if i.op0_kind() == OpKind::NearBranch32 => return Class::Jmp,
        FlowControl::ConditionalBranch if i.op0_kind() == OpKind::NearBranch32 => {
            return if matches!(i.mnemonic(), M::Loop | M::Loope | M::Loopne | M::Jecxz | M::Jcxz) {
                Class::LoopLike
            } else {
                Class::Jcc
            };
        }
        FlowControl::Call if i.op0_kind() == OpKind::NearBranch32 => return Class::Call,
        FlowControl::Return if matches!(i.code(), iced_x86::Code::Retnd | iced_x86::Code::Retnd_imm16) => return Class::Ret,
        FlowControl::IndirectBranch | FlowControl::IndirectCall
            if matches!(i.code(), iced_x86::Code::Jmp_rm32 | iced_x86::Code::Call_rm32)
                && i.segment_prefix() != Register::CS
                && (i.op0_kind() == OpKind::Register
                    || (i.memory_base().size() != 2 && i.memory_index().size() != 2 && i.memory_displ_size() != 2)) =>
        {
            return if i.code() == iced_x86::Code::Jmp_rm32 { Class::IndirectJmp } else { Class::IndirectCall };
        }
        _ => return Class::Emulate,
    }
    // Sensitive instructions with sequential flow.
    let sensitive = matches!(
        i.mnemonic(),
        M::Pushf | M::Pushfd | M::Popf | M::Popfd | M::Cli | M::Sti | M::Hlt | M::In | M::Out
            | M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd | M::Lar | M::Lsl
            | M::Verr | M::Verw | M::Sgdt | M::Sidt | M::Sldt | M::Str | M::Smsw | M::Lmsw
            | M::Lgdt | M::Lidt | M::Lldt | M::Ltr | M::Clts | M::Invd | M::Wbinvd | M::Invlpg
            | M::Rdmsr | M::Wrmsr | M::Rdtsc | M::Rdtscp | M::Rdpmc | M::Rdpid | M::Cpuid
            | M::Sysenter | M::Sysexit | M::Syscall | M::Sysret | M::Bound | M::Lds | M::Les
            | M::Lfs | M::Lgs | M::Lss | M::Xgetbv | M::Monitor | M::Mwait
    );
    if sensitive {
        return Class::Emulate;
    }
    use iced_x86::Code as C;
    // MOV ESP, DS/ES/FS/GS cannot use ESP as the index of the host -> guest selector lookup
    // (`emit_sreg_read`): interpreted.
    if matches!(i.code(), C::Pushd_ES | C::Pushd_CS | C::Pushd_SS | C::Pushd_DS | C::Pushd_FS | C::Pushd_GS)
        || (i.code() == C::Mov_r32m16_Sreg
            && i.op0_kind() == OpKind::Register
            && (i.op0_register() != Register::ESP || matches!(i.op1_register(), Register::CS | Register::SS)))
    {
        return Class::SregRead;
    }
    for n in 0..i.op_count() {
        if i.op_kind(n) == OpKind::Register {
            let r = i.op_register(n);
            if r.is_segment_register() || r.is_cr() || r.is_dr() || r.is_tr() {
                return Class::Emulate;
            }
        }
    }
    // Data accesses through CS would use the translation cache's code segment.
    if i.segment_prefix() == Register::CS
        && (0..i.op_count()).any(|n| {
            matches!(i.op_kind(n), OpKind::Memory | OpKind::MemorySegSI | OpKind::MemorySegESI | OpKind::MemorySegDI | OpKind::MemorySegEDI | OpKind::MemorySegRSI | OpKind::MemorySegRDI)
        })
        || (i.mnemonic() == M::Xlatb && i.segment_prefix() == Register::CS)
    {
        return Class::Emulate;
    }
    Class::Copy
}

/// Emits an inline CLI or STI (guest CPL0): the virtual IF lives in the virtual-flags page,
/// reached through a monitor data segment loaded into DS just for the store:
///
/// ```text
/// CLI: push %ds; push $VCPU_SEL; pop %ds; movb $0,%ds:VIF; pop %ds
/// STI: push %ds; push $VCPU_SEL; pop %ds; movb $1,%ds:VIF; push %ecx;
///      movzx %ds:PENDING,%ecx; jecxz 1f; pop %ecx; pop %ds; ljmp -> "interrupt pending"
///      1: pop %ecx; pop %ds
/// ```
/// Every host instruction has a `Scratch` record so that a fault or a kick anywhere inside
/// is undone and the guest instruction is executed again (both are idempotent), except
/// after STI's store: IF is set then, so the STI is complete and the guest is at `next`
/// in its shadow (`fastsys::DONE_STI`; re-executing it would let an interrupt in before
/// the STI).
fn emit_if_seq(
    tc: &mut [u8],
    at: usize,
    eip: u32,
    sti: bool,
    insns: &mut Vec<(usize, u32, Scratch)>,
    stubs: &mut Vec<(usize, SiteKind)>,
    next: u32,
) -> usize {
    let mut c = at;
    #[allow(clippy::too_many_arguments)]
    fn put(insns: &mut Vec<(usize, u32, Scratch)>, eip: u32, tc: &mut [u8], c: &mut usize, bytes: &[u8], undo: u8, ecx_at: Option<i8>) {
        put_rec(insns, eip, tc, c, bytes, Scratch { in_seq: true, if_seq: true, undo, ecx_at, ..Scratch::default() });
    }
    let done_from = |insns: &mut Vec<(usize, u32, Scratch)>, from: usize| {
        for (_, e, s) in &mut insns[from..] {
            *e = next;
            s.done = crate::fastsys::DONE_STI;
        }
    };
    let sel = ringfold_host::VCPU_SEL as u8;
    let vif = ringfold_host::layout::VCPU_VIF.to_le_bytes();
    let pending = ringfold_host::layout::VCPU_PENDING.to_le_bytes();
    put(insns, eip, tc, &mut c, &[0x1E], 0, None); // push %ds
    put(insns, eip, tc, &mut c, &[0x6A, sel], 4, None); // push $VCPU_SEL
    put(insns, eip, tc, &mut c, &[0x1F], 8, None); // pop %ds
    let mut movb = vec![0xC6, 0x05];
    movb.extend_from_slice(&vif);
    movb.push(sti as u8);
    put(insns, eip, tc, &mut c, &movb, 4, None); // movb $IF,%ds:VIF
    if !sti {
        put(insns, eip, tc, &mut c, &[0x1F], 4, None); // pop %ds
        return c;
    }
    let stored = insns.len();
    put(insns, eip, tc, &mut c, &[0x51], 4, None); // push %ecx
    let mut movzx = vec![0x0F, 0xB6, 0x0D];
    movzx.extend_from_slice(&pending);
    put(insns, eip, tc, &mut c, &movzx, 8, Some(0)); // movzx %ds:PENDING,%ecx
    let jecxz = c;
    put(insns, eip, tc, &mut c, &[0xE3, 0x00], 8, Some(0)); // jecxz 1f
    put(insns, eip, tc, &mut c, &[0x59], 8, Some(0)); // pop %ecx
    put(insns, eip, tc, &mut c, &[0x1F], 4, None); // pop %ds
    done_from(insns, stored);
    stubs.push((c, SiteKind::StiPending { next }));
    insns.push((c, next, Scratch::default()));
    c += STUB32;
    tc[jecxz + 1] = (c - (jecxz + 2)) as u8;
    let tail = insns.len();
    put(insns, eip, tc, &mut c, &[0x59], 8, Some(0)); // 1: pop %ecx
    put(insns, eip, tc, &mut c, &[0x1F], 4, None); // pop %ds
    done_from(insns, tail);
    c
}

/// Notes where the inline flag sequence whose records start at `from` keeps the guest's DS:
/// pushed right after `below` bytes of the sequence's own stack use.
fn note_saved_ds(insns: &mut [(usize, u32, Scratch)], from: usize, below: u8) {
    for (_, _, s) in insns[from..].iter_mut().filter(|(_, _, s)| s.if_seq || s.raw_ok) {
        s.ds_at = if s.raw_ok { Some(0) } else { s.undo.checked_sub(below + 4).map(|o| o as i8) };
    }
}

/// Copies one host instruction of an inline sequence to `tc[*c..]`, recording it (for
/// guest EIP `eip`) with the scratch state to undo if it faults or is kicked.
fn put_rec(insns: &mut Vec<(usize, u32, Scratch)>, eip: u32, tc: &mut [u8], c: &mut usize, bytes: &[u8], s: Scratch) {
    insns.push((*c, eip, s));
    tc[*c..*c + bytes.len()].copy_from_slice(bytes);
    *c += bytes.len();
}

/// Records a host instruction of an inline flags sequence with its undo information.
#[allow(clippy::too_many_arguments)]
fn rec_flags(insns: &mut Vec<(usize, u32, Scratch)>, eip: u32, tc: &mut [u8], c: &mut usize, bytes: &[u8], undo: u8, eax_at: Option<i8>, ecx_at: Option<i8>, flags_at: Option<i8>) {
    put_rec(insns, eip, tc, c, bytes, Scratch { in_seq: true, if_seq: true, undo, ecx_at, eax_at, flags_at, ..Scratch::default() });
}

/// Status flags and DF: what PUSHFD takes from the host EFLAGS.
const HOST_FLAGS: u32 = 0xCD5;

/// Inline PUSHFD at guest CPL0: the host's status flags merged with the virtual system
/// flags (virtual-flags page: VSYS dword and the VIF byte); host EFLAGS are saved and
/// restored around the computation.
///
/// ```text
/// pushfd; pushfd; push %ds; push $VCPU_SEL; pop %ds; push %eax; push %ecx
/// mov 16(%esp),%eax; and $0xCD5,%eax; or %ds:VSYS,%eax
/// movzx %ds:VIF,%ecx; shl $9,%ecx; or %ecx,%eax; mov %eax,16(%esp)
/// pop %ecx; pop %eax; pop %ds; popfd
/// ```
fn emit_pushfd(tc: &mut [u8], at: usize, eip: u32, insns: &mut Vec<(usize, u32, Scratch)>) -> usize {
    let mut c = at;
    let sel = ringfold_host::VCPU_SEL as u8;
    let vsys = ringfold_host::layout::VCPU_VSYS.to_le_bytes();
    let vif = ringfold_host::layout::VCPU_VIF.to_le_bytes();
    let r = rec_flags;
    r(insns, eip, tc, &mut c, &[0x9C], 0, None, None, None); // pushfd (A)
    r(insns, eip, tc, &mut c, &[0x9C], 4, None, None, None); // pushfd (B)
    r(insns, eip, tc, &mut c, &[0x1E], 8, None, None, Some(0)); // push %ds
    r(insns, eip, tc, &mut c, &[0x6A, sel], 12, None, None, Some(4));
    r(insns, eip, tc, &mut c, &[0x1F], 16, None, None, Some(8)); // pop %ds
    r(insns, eip, tc, &mut c, &[0x50], 12, None, None, Some(4)); // push %eax
    r(insns, eip, tc, &mut c, &[0x51], 16, Some(0), None, Some(8)); // push %ecx
    let body = 20; // ecx, eax, ds, B, A
    let mut b = vec![0x8B, 0x44, 0x24, 0x10]; // mov 16(%esp),%eax
    b.extend_from_slice(&[0x25]);
    b.extend_from_slice(&(HOST_FLAGS | 2).to_le_bytes()); // and $0xCD7,%eax (status, DF, bit 1)
    b.extend_from_slice(&[0x0B, 0x05]);
    b.extend_from_slice(&vsys); // or %ds:VSYS,%eax
    b.extend_from_slice(&[0x0F, 0xB6, 0x0D]);
    b.extend_from_slice(&vif); // movzx %ds:VIF,%ecx
    b.extend_from_slice(&[0xC1, 0xE1, 0x09]); // shl $9,%ecx
    b.extend_from_slice(&[0x09, 0xC8]); // or %ecx,%eax
    b.extend_from_slice(&[0x89, 0x44, 0x24, 0x10]); // mov %eax,16(%esp)
    r(insns, eip, tc, &mut c, &b, body, Some(4), Some(0), Some(12));
    r(insns, eip, tc, &mut c, &[0x59], body, Some(4), Some(0), Some(12)); // pop %ecx
    r(insns, eip, tc, &mut c, &[0x58], 16, Some(0), None, Some(8)); // pop %eax
    r(insns, eip, tc, &mut c, &[0x1F], 12, None, None, Some(4)); // pop %ds
    // popfd (B): the image A stays at the guest's new top of stack. Undoing here means
    // dropping B and A (8 bytes) with flags from B.
    r(insns, eip, tc, &mut c, &[0x9D], 8, None, None, Some(0));
    c
}

/// Inline POPFD at guest CPL0: the popped value's system flags go to the virtual-flags page
/// (IF to the VIF byte; TF, IOPL, NT, AC, ID to VSYS), its status flags and DF to the host by
/// a native POPFD of the value with TF/AC/NT cleared. If it sets IF while an interrupt is
/// pending, the instruction is interpreted instead (the monitor then delivers it). The
/// host flags before the POPFD never matter: every path ends with all flags from the value.
///
/// ```text
/// push %ds; push $VCPU_SEL; pop %ds; push %eax; push %ecx
/// mov 12(%esp),%eax; shr $9,%eax; and $1,%eax; movzx %ds:PENDING,%ecx; and %eax,%ecx
/// jecxz 1f; pop %ecx; pop %eax; pop %ds; ljmp -> interpret POPFD
/// 1: mov %al,%ds:VIF; mov 12(%esp),%eax; and $VSYS_MASK,%eax; mov %eax,%ds:VSYS
///    andl $~(TF|AC|NT),12(%esp); pop %ecx; pop %eax; pop %ds; popfd
/// ```
fn emit_popfd(tc: &mut [u8], at: usize, i: &Instruction, insns: &mut Vec<(usize, u32, Scratch)>, stubs: &mut Vec<(usize, SiteKind)>) -> usize {
    let eip = i.ip32();
    let mut c = at;
    let sel = ringfold_host::VCPU_SEL as u8;
    let vsys = ringfold_host::layout::VCPU_VSYS.to_le_bytes();
    let vif = ringfold_host::layout::VCPU_VIF.to_le_bytes();
    let pending = ringfold_host::layout::VCPU_PENDING.to_le_bytes();
    let r = rec_flags;
    r(insns, eip, tc, &mut c, &[0x1E], 0, None, None, None); // push %ds
    r(insns, eip, tc, &mut c, &[0x6A, sel], 4, None, None, None);
    r(insns, eip, tc, &mut c, &[0x1F], 8, None, None, None); // pop %ds
    r(insns, eip, tc, &mut c, &[0x50], 4, None, None, None); // push %eax
    r(insns, eip, tc, &mut c, &[0x51], 8, Some(0), None, None); // push %ecx
    let mut b = vec![0x8B, 0x44, 0x24, 0x0C]; // mov 12(%esp),%eax
    b.extend_from_slice(&[0xC1, 0xE8, 0x09]); // shr $9,%eax
    b.extend_from_slice(&[0x83, 0xE0, 0x01]); // and $1,%eax
    b.extend_from_slice(&[0x0F, 0xB6, 0x0D]);
    b.extend_from_slice(&pending); // movzx %ds:PENDING,%ecx
    b.extend_from_slice(&[0x21, 0xC1]); // and %eax,%ecx
    r(insns, eip, tc, &mut c, &b, 12, Some(4), Some(0), None);
    let jecxz = c;
    r(insns, eip, tc, &mut c, &[0xE3, 0x00], 12, Some(4), Some(0), None);
    r(insns, eip, tc, &mut c, &[0x59], 12, Some(4), Some(0), None); // pop %ecx
    r(insns, eip, tc, &mut c, &[0x58], 8, Some(0), None, None); // pop %eax
    r(insns, eip, tc, &mut c, &[0x1F], 4, None, None, None); // pop %ds
    insns.push((c, eip, Scratch { in_seq: true, if_seq: true, ..Scratch::default() }));
    stubs.push((c, SiteKind::Emulate(Box::new(*i), false, false)));
    c += STUB32;
    tc[jecxz + 1] = (c - (jecxz + 2)) as u8;
    let mut b = vec![0x88, 0x05];
    b.extend_from_slice(&vif); // 1: mov %al,%ds:VIF
    b.extend_from_slice(&[0x8B, 0x44, 0x24, 0x0C]); // mov 12(%esp),%eax
    b.push(0x25);
    b.extend_from_slice(&VSYS_MASK.to_le_bytes()); // and $VSYS_MASK,%eax
    b.extend_from_slice(&[0x89, 0x05]);
    b.extend_from_slice(&vsys); // mov %eax,%ds:VSYS
    b.extend_from_slice(&[0x81, 0x64, 0x24, 0x0C]);
    b.extend_from_slice(&(!(0x100u32 | 0x4_0000 | 0x4000)).to_le_bytes()); // andl $~(TF|AC|NT),12(%esp)
    r(insns, eip, tc, &mut c, &b, 12, Some(4), Some(0), None);
    r(insns, eip, tc, &mut c, &[0x59], 12, Some(4), Some(0), None); // pop %ecx
    r(insns, eip, tc, &mut c, &[0x58], 8, Some(0), None, None); // pop %eax
    // The value on the stack is sanitized now, so re-executing the POPFD would lose
    // TF/AC/NT: a kick here resumes exactly (`pop %ds` itself restores the guest's DS).
    insns.push((c, eip, Scratch { raw_ok: true, ..Scratch::default() }));
    tc[c] = 0x1F; // pop %ds
    tc[c + 1] = 0x9D; // popfd
    c + 2
}

/// A CS-prefixed instruction `op` (opcode and ModRM/SIB bytes) with absolute 32-bit
/// displacement `addr`: how translated code reads the cache's data area.
fn cs_abs(op: &[u8], addr: u32) -> Vec<u8> {
    let mut b = vec![0x2E];
    b.extend_from_slice(op);
    b.extend_from_slice(&addr.to_le_bytes());
    b
}

/// Encodes the host instruction `make` builds around guest instruction `i`'s memory operand
/// (same base, index, scale and segment; displacement `disp` of `displ_size` bytes).
/// 32-bit code has no RIP-relative forms, so the bytes are position-independent.
fn with_guest_operand(i: &Instruction, disp: i64, displ_size: u32, make: impl FnOnce(iced_x86::MemoryOperand) -> Result<Instruction, iced_x86::IcedError>) -> Vec<u8> {
    let mem = iced_x86::MemoryOperand::new(i.memory_base(), i.memory_index(), i.memory_index_scale(), disp, displ_size, false, i.segment_prefix());
    let m = make(mem).expect("a 32-bit memory operand encodes");
    enc_one(&m, 0).expect("a 32-bit memory operand encodes")
}

/// The segment register number (ES 0, CS 1, SS 2, DS 3, FS 4, GS 5) an instruction loads
/// if it is an inline segment load: MOV DS/ES/FS/GS, r/m16 (register or a 32-bit memory
/// operand not addressed through CS) or a 32-bit POP DS/ES/FS/GS.
pub fn inline_seg_load(i: &Instruction) -> Option<u8> {
    use iced_x86::Code as C;
    let sreg = match i.code() {
        C::Popd_DS => Register::DS,
        C::Popd_ES => Register::ES,
        C::Popd_FS => Register::FS,
        C::Popd_GS => Register::GS,
        C::Mov_Sreg_rm16 | C::Mov_Sreg_r32m16 => {
            if i.op1_kind() == OpKind::Memory
                && (i.memory_base().size() == 2 || i.memory_displ_size() == 2 || i.segment_prefix() == Register::CS)
            {
                return None;
            }
            i.op0_register()
        }
        _ => return None,
    };
    match sreg {
        Register::ES => Some(0),
        Register::DS => Some(3),
        Register::FS => Some(4),
        Register::GS => Some(5),
        _ => None,
    }
}

/// Emits an inline segment load (see `segcache`) at `tc[at..]`; `table` is the host
/// address of the segment-load table. EAX, ECX, EDX and EBX are saved below ESP (i386 has
/// no red zone, but nothing else writes the guest stack while translated code runs) and
/// restored on both paths; every host instruction is rewindable (a fault or a kick
/// re-executes the guest instruction, which is idempotent: the source is read again).
///
/// ```text
/// (memory source: push SRC)
/// mov %eax,-4(%esp); mov %ecx,-8(%esp); mov %edx,-12(%esp); mov %ebx,-16(%esp)
/// movzwl %SRC,%ecx                      (POP, memory source: movzwl (%esp),%ecx)
/// movzbl %cl,%eax; lea 0(,%eax,8),%eax  (entry = T + 4*EAX)
/// mov %cs:T+TAG(,%eax,4),%edx; lea 0(%ecx,%edx),%ecx; jecxz 1f; jmp miss   (CPL0: 0 << 16)
/// 1: mov %cs:T+LIN(,%eax,4),%edx; mov %cs:(%edx),%ecx; mov %cs:4(%edx),%edx
///    mov %cs:T+NLO(,%eax,4),%ebx; lea (%ecx,%ebx),%ecx; jecxz 2f; jmp miss
/// 2: mov %cs:T+NHI(,%eax,4),%ebx; lea (%edx,%ebx),%ecx; jecxz 3f; jmp miss
/// 3: mov %cs:T+HOST(,%eax,4),%eax; mov %eax,%SREG; restore x4
///    (POP, memory source: lea 4(%esp),%esp); jmp done
/// miss: restore x4; (memory source: lea 4(%esp),%esp); ljmp -> interpret and fill
/// done:
/// ```
#[allow(clippy::too_many_arguments)]
fn emit_seg_load(tc: &mut [u8], at: usize, i: &Instruction, next: u32, table: u32, insns: &mut Vec<(usize, u32, Scratch)>, stubs: &mut Vec<(usize, SiteKind)>) -> usize {
    use crate::segcache as sc;
    let eip = i.ip32();
    let sreg = inline_seg_load(i).expect("an inline segment load");
    let mut c = at;
    let saved = Scratch { in_seq: true, if_seq: true, eax_at: Some(-4), ecx_at: Some(-8), edx_at: Some(-12), ebx_at: Some(-16), ..Scratch::default() };
    let clean = Scratch { in_seq: true, if_seq: true, ..Scratch::default() };
    let put = |insns: &mut Vec<(usize, u32, Scratch)>, tc: &mut [u8], c: &mut usize, bytes: &[u8], s: Scratch| put_rec(insns, eip, tc, c, bytes, s);
    let cs_sib = |op: &[u8], off: usize| cs_abs(op, table + off as u32);
    // A memory source is read first (it may lie just below ESP, where the registers are
    // saved): PUSH of its dword (the effective address uses ESP before the push; a fault,
    // e.g. on the two extra bytes at a limit, interprets the instruction). The value is
    // then popped (`lea 4(%esp),%esp`) when the load is done.
    let mem_src = i.mnemonic() != Mnemonic::Pop && i.op1_kind() != OpKind::Register;
    let tmp: u8 = if mem_src { 4 } else { 0 };
    let saved = Scratch { undo: tmp, ..saved };
    let clean_tmp = Scratch { undo: tmp, ..clean };
    if mem_src {
        let disp = i.memory_displacement32() as i32 as i64;
        let push = with_guest_operand(i, disp, i.memory_displ_size(), |m| Instruction::with1(iced_x86::Code::Push_rm32, m));
        put(insns, tc, &mut c, &push, clean); // push SRC
    }
    put(insns, tc, &mut c, &[0x89, 0x44, 0x24, 0xFC], clean_tmp); // mov %eax,-4(%esp)
    put(insns, tc, &mut c, &[0x89, 0x4C, 0x24, 0xF8], clean_tmp); // mov %ecx,-8(%esp)
    put(insns, tc, &mut c, &[0x89, 0x54, 0x24, 0xF4], clean_tmp); // mov %edx,-12(%esp)
    put(insns, tc, &mut c, &[0x89, 0x5C, 0x24, 0xF0], clean_tmp); // mov %ebx,-16(%esp)
    let src: Vec<u8> = if i.mnemonic() == Mnemonic::Pop || mem_src {
        vec![0x0F, 0xB7, 0x0C, 0x24] // movzwl (%esp),%ecx
    } else {
        vec![0x0F, 0xB7, 0xC8 | i.op1_register().full_register32().number() as u8]
    };
    put(insns, tc, &mut c, &src, saved);
    put(insns, tc, &mut c, &[0x0F, 0xB6, 0xC1], saved); // movzbl %cl,%eax
    put(insns, tc, &mut c, &[0x8D, 0x04, 0xC5, 0, 0, 0, 0], saved); // lea 0(,%eax,8),%eax
    put(insns, tc, &mut c, &cs_sib(&[0x8B, 0x14, 0x85], sc::TAG), saved); // mov %cs:T+TAG(,%eax,4),%edx
    put(insns, tc, &mut c, &[0x8D, 0x8C, 0x11, 0, 0, 0, 0], saved); // lea 0(%ecx,%edx),%ecx (CPL0)
    let mut misses = Vec::new();
    let mut check = |insns: &mut Vec<(usize, u32, Scratch)>, tc: &mut [u8], c: &mut usize| {
        put(insns, tc, c, &[0xE3, 0x02], saved); // jecxz +2
        misses.push(*c);
        put(insns, tc, c, &[0xEB, 0x00], saved); // jmp miss
    };
    check(insns, tc, &mut c);
    put(insns, tc, &mut c, &cs_sib(&[0x8B, 0x14, 0x85], sc::LIN), saved); // mov %cs:T+LIN(,%eax,4),%edx
    put(insns, tc, &mut c, &[0x2E, 0x8B, 0x0A], saved); // mov %cs:(%edx),%ecx
    put(insns, tc, &mut c, &[0x2E, 0x8B, 0x52, 0x04], saved); // mov %cs:4(%edx),%edx
    put(insns, tc, &mut c, &cs_sib(&[0x8B, 0x1C, 0x85], sc::NLO), saved); // mov %cs:T+NLO(,%eax,4),%ebx
    put(insns, tc, &mut c, &[0x8D, 0x0C, 0x19], saved); // lea (%ecx,%ebx),%ecx
    check(insns, tc, &mut c);
    put(insns, tc, &mut c, &cs_sib(&[0x8B, 0x1C, 0x85], sc::NHI), saved); // mov %cs:T+NHI(,%eax,4),%ebx
    put(insns, tc, &mut c, &[0x8D, 0x0C, 0x1A], saved); // lea (%edx,%ebx),%ecx
    check(insns, tc, &mut c);
    put(insns, tc, &mut c, &cs_sib(&[0x8B, 0x04, 0x85], sc::HOST), saved); // mov %cs:T+HOST(,%eax,4),%eax
    put(insns, tc, &mut c, &[0x8E, 0xC0 | (sreg << 3)], saved); // mov %eax,%SREG
    let restore = |insns: &mut Vec<(usize, u32, Scratch)>, tc: &mut [u8], c: &mut usize| {
        put(insns, tc, c, &[0x8B, 0x44, 0x24, 0xFC], saved); // mov -4(%esp),%eax
        put(insns, tc, c, &[0x8B, 0x4C, 0x24, 0xF8], saved); // mov -8(%esp),%ecx
        put(insns, tc, c, &[0x8B, 0x54, 0x24, 0xF4], saved); // mov -12(%esp),%edx
        put(insns, tc, c, &[0x8B, 0x5C, 0x24, 0xF0], saved); // mov -16(%esp),%ebx
    };
    restore(insns, tc, &mut c);
    if i.mnemonic() == Mnemonic::Pop || mem_src {
        put(insns, tc, &mut c, &[0x8D, 0x64, 0x24, 0x04], clean_tmp); // lea 4(%esp),%esp
    }
    // The guest instruction is complete here.
    let done_jmp = c;
    insns.push((c, next, Scratch::default()));
    tc[c..c + 2].copy_from_slice(&[0xEB, 0x00]); // jmp done
    c += 2;
    let miss = c;
    for m in misses {
        debug_assert!(miss - (m + 2) < 128);
        tc[m + 1] = (miss - (m + 2)) as u8;
    }
    restore(insns, tc, &mut c);
    if mem_src {
        put(insns, tc, &mut c, &[0x8D, 0x64, 0x24, 0x04], clean_tmp); // lea 4(%esp),%esp
    }
    insns.push((c, eip, clean));
    stubs.push((c, SiteKind::SegLoad(Box::new(*i))));
    c += STUB32;
    tc[done_jmp + 1] = (c - (done_jmp + 2)) as u8;
    c
}

/// Emits PUSH Sreg (32-bit) or MOV r32, Sreg for DS/ES/FS/GS (`sreg` 0, 3, 4, 5): the
/// host selector, mapped to the guest's through the table at `rev` (read through CS).
///
/// ```text
/// MOV:  mov %SREG,%r; movzwl %cs:REV(%r,%r),%r
/// PUSH: mov %eax,-8(%esp); mov %SREG,%eax; movzwl %cs:REV(%eax,%eax),%eax; push %eax;
///       mov -4(%esp),%eax
/// ```
fn emit_sreg_read(tc: &mut [u8], at: usize, eip: u32, sreg: u8, dst: Option<Register>, rev: u32, insns: &mut Vec<(usize, u32, Scratch)>) -> usize {
    let mut c = at;
    let mut put = |insns: &mut Vec<(usize, u32, Scratch)>, bytes: &[u8], s: Scratch| put_rec(insns, eip, tc, &mut c, bytes, s);
    let lookup = |r: u8| {
        let mut b = vec![0x2E, 0x0F, 0xB7, 0x84 | (r << 3), (r << 3) | r];
        b.extend_from_slice(&rev.to_le_bytes());
        b
    };
    let plain = Scratch { in_seq: true, if_seq: true, ..Scratch::default() };
    match dst {
        Some(r) => {
            // Re-executing only rewrites the destination: every point rewinds as is.
            let r = r.number() as u8;
            put(insns, &[0x8C, 0xC0 | (sreg << 3) | r], plain); // mov %SREG,%r
            put(insns, &lookup(r), plain);
        }
        None => {
            let saved = Scratch { eax_at: Some(-8), ..plain };
            put(insns, &[0x89, 0x44, 0x24, 0xF8], plain); // mov %eax,-8(%esp)
            put(insns, &[0x8C, 0xC0 | (sreg << 3)], saved); // mov %SREG,%eax
            put(insns, &lookup(0), saved);
            put(insns, &[0x50], saved); // push %eax
            put(insns, &[0x8B, 0x44, 0x24, 0xFC], Scratch { eax_at: Some(-4), undo: 4, ..plain }); // mov -4(%esp),%eax
        }
    }
    c
}

/// The system flags a POPFD at CPL0 changes besides IF (kept in the page's VSYS dword).
pub const VSYS_MASK: u32 = 0x100 | 0x3000 | 0x4000 | 0x4_0000 | 0x20_0000;

/// Guest TLS (glibc keeps thread variables at negative offsets from the GS base) makes
/// `gs:[x]` wrap around 4 GiB, which a shadow segment truncated below the monitor region
/// cannot express, so every such access would trap. When GS is a 4 GiB data segment with
/// base B and DS is flat (`Key::tls`), `gs:[base + index*scale + disp]` is exactly the
/// linear address `ds:[B + base + index*scale + disp]` (32-bit address arithmetic wraps
/// the same way); `emit_tls` addresses it so with B read at run time, which keeps the
/// block valid in every process whatever its TLS base.
///
/// Whether `i` has such an operand to rewrite: a GS-prefixed memory access (not LEA, which
/// ignores the segment) with 32-bit addressing, except at a constant offset below 64 KiB
/// (`gs:[0x14]`, the stack-protector canary in every busybox function; `gs:[0]`, the
/// thread pointer), which lies inside the shadow segment natively (if not, the host
/// faults and the access is emulated).
fn tls_operand(i: &Instruction) -> bool {
    i.segment_prefix() == Register::GS
        && i.mnemonic() != Mnemonic::Lea
        && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory)
        && i.memory_base().size() != 2
        && i.memory_index().size() != 2
        && i.memory_displ_size() != 2
        && !(i.memory_base() == Register::None && i.memory_index() == Register::None && i.memory_displacement32() < 0x1_0000)
}

/// Emits the TLS instruction `i` (`tls_operand`) at `tc[at..]` addressing through DS with
/// the GS base from the cache's data area (`TLS_BASE`, written by the monitor before every
/// entry at CPL3):
///
/// ```text
///   mov %S,-8(%esp)              S: a register the instruction does not use
///   mov %cs:TLS_BASE,%S
///   [lea (%S,%base),%S]          the operand has both a base and an index
///   op ds:disp(%S,%index,scale)  or disp(%S,%base) / disp(%esp,%S) / disp(%S)
///   mov -8-inc(%esp),%S          inc: the instruction's own ESP change (PUSH/POP m)
/// ```
/// Flags are untouched. The save is the instruction's boundary, but its store is
/// ringfold's, not the guest's (`Scratch::scratch_store`: a fault there is not the
/// guest's). From the load of the base through the access, S is saved at ESP-8
/// (`Scratch::saved`: a fault or kick there restores it first); the restore cannot fault
/// and resumes exactly. None (copy the instruction as it is) if no register is free or
/// the instruction writes ESP other than by pushing or popping.
fn emit_tls(tc: &mut [u8], at: usize, i: &Instruction, tls_base: u32, insns: &mut Vec<(usize, u32, Scratch)>) -> Option<usize> {
    let mut factory = iced_x86::InstructionInfoFactory::new();
    let info = factory.info(i);
    let used = |r: Register| info.used_registers().iter().any(|u| u.register().full_register32() == r);
    let inc = i.stack_pointer_increment();
    let writes_esp = info.used_registers().iter().any(|u| {
        u.register().full_register32() == Register::ESP && matches!(u.access(), OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite | OpAccess::ReadCondWrite)
    });
    if (writes_esp && inc == 0) || (inc != 0 && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).full_register32() == Register::ESP)) {
        return None;
    }
    // EBP last: as a base it would default to SS (the DS prefix below overrides that, but
    // a shorter encoding is as good).
    let s = [Register::EAX, Register::ECX, Register::EDX, Register::EBX, Register::ESI, Register::EDI, Register::EBP].into_iter().find(|&r| !used(r))?;
    let (base, index) = (i.memory_base(), i.memory_index());
    let eip = i.ip32();
    let mut j = *i;
    // The moffs forms of MOV have no ModRM: use the general ones (same operand order).
    use iced_x86::Code as C;
    match i.code() {
        C::Mov_AL_moffs8 => j.set_code(C::Mov_r8_rm8),
        C::Mov_AX_moffs16 => j.set_code(C::Mov_r16_rm16),
        C::Mov_EAX_moffs32 => j.set_code(C::Mov_r32_rm32),
        C::Mov_moffs8_AL => j.set_code(C::Mov_rm8_r8),
        C::Mov_moffs16_AX => j.set_code(C::Mov_rm16_r16),
        C::Mov_moffs32_EAX => j.set_code(C::Mov_rm32_r32),
        _ => {}
    }
    let d = i.memory_displacement32() as i32;
    j.set_memory_displ_size(if (-128..128).contains(&d) { 1 } else { 4 });
    let mut lea = None;
    match (base, index) {
        (Register::None, _) => j.set_memory_base(s),
        (Register::ESP, Register::None) => {
            j.set_memory_index(s);
            j.set_memory_index_scale(1);
        }
        (b, Register::None) => {
            j.set_memory_base(s);
            j.set_memory_index(b);
            j.set_memory_index_scale(1);
        }
        (b, _) => {
            lea = Some(b);
            j.set_memory_base(s);
        }
    }
    // A base of ESP or EBP would address SS by default.
    j.set_segment_prefix(if matches!(j.memory_base(), Register::ESP | Register::EBP) { Register::DS } else { Register::None });
    let op = enc_one(&j, eip)?;
    let sn = s.number() as u8 & 7;
    let mut c = at;
    if let Some(r) = insns.last_mut().filter(|r| r.0 == at) {
        r.2.scratch_store = true;
    }
    put(tc, &mut c, &[0x89, 0x44 | (sn << 3), 0x24, 0xF8]); // mov %S,-8(%esp)
    insns.push((c, eip, Scratch { saved: Some((sn, -8)), ..Scratch::default() }));
    put(tc, &mut c, &[0x2E, 0x8B, 0x05 | (sn << 3)]); // mov %cs:TLS_BASE,%S
    put(tc, &mut c, &tls_base.to_le_bytes());
    if let Some(b) = lea {
        // lea (%S,%b),%S (ESP can only be a base: then S is the index).
        let m = if b == Register::ESP { MemoryOperand::with_base_index(b, s) } else { MemoryOperand::with_base_index(s, b) };
        let lea = Instruction::with2(iced_x86::Code::Lea_r32_m, s, m).ok()?;
        put(tc, &mut c, &enc_one(&lea, eip)?);
    }
    put(tc, &mut c, &op);
    insns.push((c, eip, Scratch { raw_ok: true, ..Scratch::default() }));
    let back = (-8i32 - inc) as i8;
    put(tc, &mut c, &[0x8B, 0x44 | (sn << 3), 0x24, back as u8]); // mov -8-inc(%esp),%S
    Some(c)
}

/// One instruction's 32-bit encoding.
fn enc_one(i: &Instruction, ip: u32) -> Option<Vec<u8>> {
    let mut enc = iced_x86::Encoder::new(32);
    enc.encode(i, ip as u64).ok()?;
    Some(enc.take_buffer())
}

/// Appends `bytes` to the code at `tc[*c..]` (the emitters' common step).
fn put(tc: &mut [u8], c: &mut usize, bytes: &[u8]) {
    tc[*c..*c + bytes.len()].copy_from_slice(bytes);
    *c += bytes.len();
}

/// Emits the inline lookup sequence for RET / JMP r/m32 / CALL r/m32 at `tc[at..]`, in
/// the table at host address `table` with `sets` sets (`table_sets`).
/// It does not touch EFLAGS (POPFD is slow and a table compare needs no flags):
///
/// ```text
///   [lea -R(%esp),%esp]            R = 0 (RET), 4 (JMP), 8 (CALL): room for the host target
///   push %eax; push %ecx; push %edx   scratch below the guest's ESP (i386 code has no red zone)
///   mov <target>, %eax             the guest's return slot or branch operand (ESP-relative
///                                  displacements adjusted by the scratch)
///   movzx/bswap/lea/movzx ... %ecx set offset = table_index(target, sets) * 16 (no flags)
///   mov %cs:T+4(%ecx),%edx         candidate host address
///   mov %cs:T(%ecx),%ecx           -(guest EIP) stored in the entry
///   lea (%ecx,%eax),%ecx; jecxz hit   zero iff the entry is for this target
///   pop %edx; pop %ecx; pop %eax; [lea R(%esp),%esp]; ljmp -> interpret, then fill T
/// hit:
///   mov %edx,12(%esp)              host target into the slot
///   [movl $return_eip,16(%esp)]    CALL: the exact guest return address
///   pop %edx; pop %ecx; pop %eax
///   lea 4+imm16(%esp),%esp; jmp *-(4+imm16)(%esp)   like RET [imm16], predicted as a JMP
/// ```
/// Faults inside the sequence are undone with the `Scratch` records and the guest
/// instruction is interpreted instead, so the guest sees exactly its own faults.
fn emit_lookup(
    tc: &mut [u8],
    at: usize,
    i: &Instruction,
    (table, sets): (u32, u32),
    insns: &mut Vec<(usize, u32, Scratch)>,
    stubs: &mut Vec<(usize, SiteKind)>,
    miss: SiteKind,
) -> usize {
    let eip = i.ip32();
    let (reserve, is_call): (u8, bool) = match i.code() {
        iced_x86::Code::Jmp_rm32 => (4, false),
        iced_x86::Code::Call_rm32 => (8, true),
        _ => (0, false),
    };
    let mut c = at;
    let rec = |insns: &mut Vec<(usize, u32, Scratch)>, c: usize, pushes: u8| {
        insns.push((c, eip, Scratch { in_seq: true, reserve, pushes, ..Scratch::default() }));
    };
    rec(insns, c, 0);
    if reserve != 0 {
        put(tc, &mut c, &[0x8D, 0x64, 0x24, (reserve as i8).wrapping_neg() as u8]); // lea -R(%esp),%esp
    }
    put(tc, &mut c, &[0x50]);
    rec(insns, c, 1);
    put(tc, &mut c, &[0x51]);
    rec(insns, c, 2);
    put(tc, &mut c, &[0x52]);
    rec(insns, c, 3);
    let adjust = reserve as i64 + 12;
    if reserve == 0 {
        put(tc, &mut c, &[0x8B, 0x44, 0x24, 0x0C]); // mov 12(%esp),%eax
    } else if i.op0_kind() == OpKind::Register {
        let r = i.op0_register();
        if r == Register::ESP {
            put(tc, &mut c, &[0x8D, 0x44, 0x24, adjust as u8]); // lea adjust(%esp),%eax
        } else {
            put(tc, &mut c, &[0x8B, 0xC0 | r.number() as u8]); // mov %r,%eax
        }
    } else {
        let disp = i.memory_displacement32() as i64 + if i.memory_base() == Register::ESP { adjust } else { 0 };
        put(tc, &mut c, &with_guest_operand(i, disp, 4, |m| Instruction::with2(iced_x86::Code::Mov_r32_rm32, Register::EAX, m)));
    }
    // ECX = table_index(EIP, sets) * 16 (the offset of a set of two entries), flags
    // untouched: the 16-bit truncation comes after *16 (4096 sets) or between *8 and *2
    // (8192 sets).
    put(tc, &mut c, &[0x0F, 0xB6, 0xCC]); // movzx %ah,%ecx: EIP bits 8..15
    put(tc, &mut c, &[0x89, 0xC2, 0x0F, 0xCA]); // mov %eax,%edx; bswap %edx
    put(tc, &mut c, &[0x0F, 0xB6, 0xD6]); // movzx %dh,%edx: EIP bits 16..23
    put(tc, &mut c, &[0x8D, 0x0C, 0x91]); // lea (%ecx,%edx,4),%ecx
    put(tc, &mut c, &[0x8D, 0x0C, 0x08]); // lea (%eax,%ecx),%ecx
    put(tc, &mut c, &[0x8D, 0x0C, 0xCD, 0, 0, 0, 0]); // lea 0(,%ecx,8),%ecx
    debug_assert!(sets == SMALL_SETS || sets == BIG_SETS);
    if sets != SMALL_SETS {
        put(tc, &mut c, &[0x0F, 0xB7, 0xC9]); // movzx %cx,%ecx
        put(tc, &mut c, &[0x8D, 0x0C, 0x09]); // lea (%ecx,%ecx),%ecx
    } else {
        put(tc, &mut c, &[0x8D, 0x0C, 0x09]); // lea (%ecx,%ecx),%ecx
        put(tc, &mut c, &[0x0F, 0xB7, 0xC9]); // movzx %cx,%ecx
    }
    put(tc, &mut c, &[0x2E, 0x8B, 0x91]);
    put(tc, &mut c, &table.to_le_bytes()); // mov %cs:T(%ecx),%edx: way 0's -EIP
    put(tc, &mut c, &[0x8D, 0x14, 0x02]); // lea (%edx,%eax),%edx
    put(tc, &mut c, &[0x87, 0xCA]); // xchg %ecx,%edx: ECX = difference, EDX = set offset
    let jecxz0 = c;
    put(tc, &mut c, &[0xE3, 0x00]);
    put(tc, &mut c, &[0x2E, 0x8B, 0x8A]);
    put(tc, &mut c, &(table + 8).to_le_bytes()); // mov %cs:T+8(%edx),%ecx: way 1's -EIP
    put(tc, &mut c, &[0x8D, 0x0C, 0x01]); // lea (%ecx,%eax),%ecx
    let jecxz1 = c;
    put(tc, &mut c, &[0xE3, 0x00]);
    put(tc, &mut c, &[0x5A, 0x59, 0x58]);
    if reserve != 0 {
        put(tc, &mut c, &[0x8D, 0x64, 0x24, reserve]); // lea R(%esp),%esp
    }
    stubs.push((c, miss));
    c += STUB32;
    tc[jecxz1 + 1] = (c - (jecxz1 + 2)) as u8;
    put(tc, &mut c, &[0x2E, 0x8B, 0x92]);
    put(tc, &mut c, &(table + 12).to_le_bytes()); // mov %cs:T+12(%edx),%edx
    let jmp_common = c;
    put(tc, &mut c, &[0xEB, 0x00]);
    tc[jecxz0 + 1] = (c - (jecxz0 + 2)) as u8;
    put(tc, &mut c, &[0x2E, 0x8B, 0x92]);
    put(tc, &mut c, &(table + 4).to_le_bytes()); // mov %cs:T+4(%edx),%edx
    tc[jmp_common + 1] = (c - (jmp_common + 2)) as u8;
    rec(insns, c, 3);
    put(tc, &mut c, &[0x89, 0x54, 0x24, 0x0C]); // mov %edx,12(%esp)
    if is_call {
        put(tc, &mut c, &[0xC7, 0x44, 0x24, 0x10]);
        put(tc, &mut c, &i.next_ip32().to_le_bytes()); // movl $ret,16(%esp)
    }
    insns.push((c, eip, Scratch::default()));
    put(tc, &mut c, &[0x5A, 0x59, 0x58]);
    // Pop the slot (and RET's immediate) and jump through it: an indirect JMP is predicted
    // per site, a host RET here would never match the return stack (guest CALLs push guest
    // addresses, not host ones) and mispredict every time. The slot stays intact below ESP:
    // host signals run on the alternate stack, guest interrupts only at exits.
    let pop = 4 + if i.code() == iced_x86::Code::Retnd_imm16 { i.immediate16() as u32 } else { 0 };
    put(tc, &mut c, &[0x8D, 0xA4, 0x24]);
    put(tc, &mut c, &pop.to_le_bytes()); // lea pop(%esp),%esp
    put(tc, &mut c, &[0xFF, 0xA4, 0x24]);
    put(tc, &mut c, &pop.wrapping_neg().to_le_bytes()); // jmp *-pop(%esp)
    c
}

/// Emits an inline SYSENTER (guest CPL3; see `fastsys`) at `tc[at..]`; `rec` is the host
/// address of the record.
///
/// ```text
/// mov %cs:R+ENTER_SS,%ss         commit (null while disabled: #GP, then interpreted)
/// mov %cs:R+ENTER_ESP,%esp       (in the MOV SS shadow: no signal between the two)
/// push %ds; push $VCPU_SEL; pop %ds; movb $0,%ds:VIF; pop %ds      IF = 0
/// jmp *%cs:R+ENTER_TARGET        the translation of SYSENTER_EIP at CPL0
/// ```
fn emit_sysenter(tc: &mut [u8], at: usize, eip: u32, rec: u32, insns: &mut Vec<(usize, u32, Scratch)>) -> usize {
    use crate::fastsys as fs;
    let mut c = at;
    let cs_op = |op: &[u8], off: usize| cs_abs(op, rec + off as u32);
    let post = |undo: u8| Scratch { in_seq: true, if_seq: true, undo, done: fs::DONE_SYSENTER, ..Scratch::default() };
    put_rec(insns, eip, tc, &mut c, &cs_op(&[0x8E, 0x15], fs::ENTER_SS), Scratch { in_seq: true, ..Scratch::default() });
    put_rec(insns, eip, tc, &mut c, &cs_op(&[0x8B, 0x25], fs::ENTER_ESP), post(0));
    let sel = ringfold_host::VCPU_SEL as u8;
    let mut movb = vec![0xC6, 0x05];
    movb.extend_from_slice(&ringfold_host::layout::VCPU_VIF.to_le_bytes());
    movb.push(0);
    put_rec(insns, eip, tc, &mut c, &[0x1E], post(0)); // push %ds
    put_rec(insns, eip, tc, &mut c, &[0x6A, sel], post(4)); // push $VCPU_SEL
    put_rec(insns, eip, tc, &mut c, &[0x1F], post(8)); // pop %ds
    put_rec(insns, eip, tc, &mut c, &movb, post(4)); // movb $0,%ds:VIF
    put_rec(insns, eip, tc, &mut c, &[0x1F], post(4)); // pop %ds
    put_rec(insns, eip, tc, &mut c, &cs_op(&[0xFF, 0x25], fs::ENTER_TARGET), post(0));
    c
}

/// Emits an inline SYSEXIT (guest CPL0; see `fastsys`) at `tc[at..]`. `data` is the host
/// address of the cache's data area, `user_table` the flat CPL3 context's lookup table.
/// EAX and ECX are saved below the kernel's ESP.
///
/// ```text
/// mov %eax,-4(%esp); mov %ecx,-8(%esp)
/// for DS, ES, FS, GS:  mov %SREG,%eax; mov %cs:USER_SEL(,%eax,4),%eax
///                      lea 1(%eax),%ecx; jecxz miss; mov %eax,%SREG
/// for DS, GS:          mov %SREG,%ecx; mov %cs:R+EXIT_NEG_xS,%eax; lea (%ecx,%eax),%ecx
///                      jecxz 1f; jmp miss; 1:
/// mov %cs:R+EXIT_SS,%ecx; jecxz miss; jmp commit
/// miss:   mov -4(%esp),%eax; mov -8(%esp),%ecx; ljmp -> interpret SYSEXIT
/// commit: mov -4(%esp),%eax; mov -8(%esp),%ecx
///         mov %cs:R+EXIT_SS,%ss; mov %ecx,%esp          (commit)
///         the inline lookup of `jmp *%edx` in the CPL3 table (scratch below the user ESP)
/// ```
/// A miss before the commit point leaves DS/ES/FS/GS holding CPL3 shadows of the same
/// guest segments, which the monitor reads back as the same guest state.
fn emit_sysexit(tc: &mut [u8], at: usize, i: &Instruction, data: u32, user_table: u32, insns: &mut Vec<(usize, u32, Scratch)>, stubs: &mut Vec<(usize, SiteKind)>) -> usize {
    use crate::fastsys as fs;
    let eip = i.ip32();
    let mut c = at;
    let rec = data + FAST_RECORD as u32;
    let clean = Scratch { in_seq: true, if_seq: true, ..Scratch::default() };
    let saved = Scratch { eax_at: Some(-4), ecx_at: Some(-8), ..clean };
    let put = |insns: &mut Vec<(usize, u32, Scratch)>, tc: &mut [u8], c: &mut usize, bytes: &[u8], s: Scratch| put_rec(insns, eip, tc, c, bytes, s);
    put(insns, tc, &mut c, &[0x89, 0x44, 0x24, 0xFC], clean); // mov %eax,-4(%esp)
    put(insns, tc, &mut c, &[0x89, 0x4C, 0x24, 0xF8], Scratch { eax_at: Some(-4), ..clean }); // mov %ecx,-8(%esp)
    let mut misses = Vec::new(); // rel8 positions to patch with the miss path
    for sreg in [3u8, 0, 4, 5] {
        put(insns, tc, &mut c, &[0x8C, 0xC0 | (sreg << 3)], saved); // mov %SREG,%eax
        put(insns, tc, &mut c, &cs_abs(&[0x8B, 0x04, 0x85], data + USER_SEL as u32), saved);
        put(insns, tc, &mut c, &[0x8D, 0x48, 0x01], saved); // lea 1(%eax),%ecx
        misses.push(c + 1);
        put(insns, tc, &mut c, &[0xE3, 0x00], saved); // jecxz miss
        put(insns, tc, &mut c, &[0x8E, 0xC0 | (sreg << 3)], saved); // mov %eax,%SREG
    }
    for (sreg, off) in [(3u8, fs::EXIT_NEG_DS), (5, fs::EXIT_NEG_GS)] {
        put(insns, tc, &mut c, &[0x8C, 0xC1 | (sreg << 3)], saved); // mov %SREG,%ecx
        put(insns, tc, &mut c, &cs_abs(&[0xA1], rec + off as u32), saved); // mov %cs:R+off,%eax
        put(insns, tc, &mut c, &[0x8D, 0x0C, 0x01], saved); // lea (%ecx,%eax),%ecx
        put(insns, tc, &mut c, &[0xE3, 0x02], saved); // jecxz +2
        misses.push(c + 1);
        put(insns, tc, &mut c, &[0xEB, 0x00], saved); // jmp miss
    }
    put(insns, tc, &mut c, &cs_abs(&[0x8B, 0x0D], rec + fs::EXIT_SS as u32), saved); // mov %cs:R+EXIT_SS,%ecx
    misses.push(c + 1);
    put(insns, tc, &mut c, &[0xE3, 0x00], saved); // jecxz miss
    let to_commit = c + 1;
    put(insns, tc, &mut c, &[0xEB, 0x00], saved); // jmp commit
    let restore = |insns: &mut Vec<(usize, u32, Scratch)>, tc: &mut [u8], c: &mut usize| {
        put(insns, tc, c, &[0x8B, 0x44, 0x24, 0xFC], saved); // mov -4(%esp),%eax
        put(insns, tc, c, &[0x8B, 0x4C, 0x24, 0xF8], Scratch { ecx_at: Some(-8), ..clean }); // mov -8(%esp),%ecx
    };
    for m in misses {
        let d = c - (m + 1);
        assert!(d < 128, "inline SYSEXIT: miss path out of rel8 reach");
        tc[m] = d as u8;
    }
    restore(insns, tc, &mut c);
    insns.push((c, eip, clean));
    stubs.push((c, SiteKind::Emulate(Box::new(*i), false, false)));
    c += STUB32;
    tc[to_commit] = (c - (to_commit + 1)) as u8;
    restore(insns, tc, &mut c);
    put(insns, tc, &mut c, &cs_abs(&[0x8E, 0x15], rec + fs::EXIT_SS as u32), clean); // mov %cs:R+EXIT_SS,%ss
    let done = Scratch { in_seq: true, done: fs::DONE_SYSEXIT, ..Scratch::default() };
    put(insns, tc, &mut c, &[0x89, 0xCC], done); // mov %ecx,%esp
    // EIP = EDX: the lookup of an indirect `jmp *%edx`, at the SYSEXIT's guest EIP.
    let mut jmp = Instruction::with1(iced_x86::Code::Jmp_rm32, Register::EDX).expect("jmp edx");
    jmp.set_ip32(eip);
    let from = insns.len();
    c = emit_lookup(tc, c, &jmp, (user_table, SMALL_SETS), insns, stubs, SiteKind::SysexitMiss);
    for (_, _, s) in insns[from..].iter_mut().filter(|(_, _, s)| s.in_seq) {
        s.done = fs::DONE_SYSEXIT;
    }
    c
}

/// The register a PC thunk's first instruction loads: `mov r32, [esp]` (SS, no index, no
/// displacement; not ESP itself).
fn pc_thunk_load(i: &Instruction) -> Option<u8> {
    let plain = i.code() == iced_x86::Code::Mov_r32_rm32
        && i.op1_kind() == OpKind::Memory
        && i.memory_base() == Register::ESP
        && i.memory_index() == Register::None
        && i.memory_displacement32() == 0
        && matches!(i.segment_prefix(), Register::None | Register::SS)
        && i.op0_register() != Register::ESP;
    plain.then(|| i.op0_register().number() as u8)
}

/// A CALL to a live PC thunk (`mov reg, [esp]; ret`: i386 position-independent code calls
/// one before most accesses to its globals) as the thunk's effect: the return address is
/// stored where the CALL pushes it (a fault there is the CALL's own) and loaded into `reg`,
/// and the block goes on. Executing the thunk would end in a RET whose lookup jumps to
/// every caller from one site, which the host predicts badly (W4: ~12% of the time).
///
/// The thunk's translation vouches for it: while its block is live its entry holds `live`
/// (a parked or killed block's entry is a far jump), which the sequence compares first;
/// a block is live exactly while the thunk's page maps the code it was made from, as for a
/// chained jump. The comparison needs ECX (JECXZ touches no flags), kept meanwhile in `reg`
/// (whose own value is saved below the return address: a fault there is undone and the
/// CALL interpreted, record `in_seq` at `eip`). On a mismatch both are restored and the
/// CALL completes as usual: ESP drops over the stored return address and a chained jump
/// (rel32 at the returned position) goes to the thunk's translation (which may now be
/// something else). The caller makes sure that `next` is within the CS limit (else the
/// thunk's RET faults).
///
/// ```text
///     movl $next, -4(%esp)
///     mov %reg, -8(%esp)
///     mov %ecx, %reg              (not for reg = ECX)
///     mov %cs:entry, %ecx
///     lea -live(%ecx), %ecx
///     jecxz 1f
///     mov %reg, %ecx              (not for reg = ECX)
///     mov -8(%esp), %reg
///     lea -4(%esp), %esp
///     jmp thunk
/// 1:  mov %reg, %ecx              (not for reg = ECX)
///     mov $next, %reg
/// ```
fn emit_thunk_call(tc: &mut [u8], at: usize, eip: u32, thunk: (u8, u32, u32), next: u32, insns: &mut Vec<(usize, u32, Scratch)>) -> (usize, usize) {
    let (reg, entry, live) = thunk;
    let ecx = reg == 1;
    let mut c = at;
    let keep = [0x89, 0xC8 | reg]; // mov %ecx, %reg
    let back = [0x89, 0xC1 | (reg << 3)]; // mov %reg, %ecx
    put(tc, &mut c, &[0xC7, 0x44, 0x24, 0xFC]);
    put(tc, &mut c, &next.to_le_bytes());
    insns.push((c, eip, Scratch { in_seq: true, ..Scratch::default() }));
    put(tc, &mut c, &[0x89, 0x44 | (reg << 3), 0x24, 0xF8]); // mov %reg, -8(%esp)
    if !ecx {
        put(tc, &mut c, &keep);
    }
    put(tc, &mut c, &[0x2E, 0x8B, 0x0D]);
    put(tc, &mut c, &entry.to_le_bytes());
    put(tc, &mut c, &[0x8D, 0x89]);
    put(tc, &mut c, &live.wrapping_neg().to_le_bytes());
    put(tc, &mut c, &[0xE3, if ecx { 13 } else { 15 }]);
    if !ecx {
        put(tc, &mut c, &back);
    }
    put(tc, &mut c, &[0x8B, 0x44 | (reg << 3), 0x24, 0xF8]); // mov -8(%esp), %reg
    put(tc, &mut c, &[0x8D, 0x64, 0x24, 0xFC, 0xE9]);
    let rel = c;
    put(tc, &mut c, &[0; 4]);
    if !ecx {
        put(tc, &mut c, &back);
    }
    put(tc, &mut c, &[0xB8 | reg]);
    put(tc, &mut c, &next.to_le_bytes());
    (c, rel)
}

/// The lookup-table set of guest EIP `eip`, as the inline sequence computes it: the low
/// bits mixed with bits 8..23, because hot return addresses of one program often lie a
/// multiple of 8 KiB apart (indexed on the low bits only, and direct-mapped, two of them
/// evicted each other at every call: 9 interpreted RETs per iteration of a shell loop).
pub fn table_index(eip: u32, sets: u32) -> u32 {
    eip.wrapping_add((eip >> 8) & 0xFF).wrapping_add(4 * ((eip >> 16) & 0xFF)) & (sets - 1)
}

/// A lookup-table entry: (-guest EIP, host address).
fn set_entry(tc: &mut [u8], e: usize, eip: u32, host: u32) {
    tc[e..e + 4].copy_from_slice(&eip.wrapping_neg().to_le_bytes());
    tc[e + 4..e + 8].copy_from_slice(&host.to_le_bytes());
}

/// An EIP whose table set is not `i`: an entry of set `i` naming it never matches.
fn never_matches(i: u32, sets: u32) -> u32 {
    let mut eip = i.wrapping_add(1);
    while table_index(eip, sets) == i {
        eip = eip.wrapping_add(1);
    }
    eip
}

/// An entry of set `i` that never matches (see `never_matches`).
fn clear_entry(tc: &mut [u8], e: usize, i: u32, sets: u32) {
    set_entry(tc, e, never_matches(i, sets), 0);
}

impl TCache {
    /// Names each translated block in `/tmp/perf-PID.map` as `guest:EIP` (the linear
    /// address it starts at), in perf's JIT map format, with a `# flush NS` line
    /// (CLOCK_MONOTONIC) at each cache flush: perf itself does not read the map for the
    /// cache's memfd mapping, `scripts/perf-guest` attributes `perf record -k mono`
    /// samples with it.
    pub fn enable_perf_map(&mut self) -> std::io::Result<std::path::PathBuf> {
        let path = std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
        self.perf_map = Some(std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&path)?));
        Ok(path)
    }

    /// Appends a line to the perf map, if one is being written (a failed write only loses
    /// profiling symbols).
    fn perf_line(&mut self, line: std::fmt::Arguments) {
        if let Some(w) = self.perf_map.as_mut() {
            use std::io::Write;
            let _ = w.write_fmt(line);
        }
    }

    /// Writes out the buffered perf-map lines.
    pub fn flush_perf_map(&mut self) {
        if let Some(w) = self.perf_map.as_mut() {
            use std::io::Write;
            let _ = w.flush();
        }
    }

    pub fn new(host_base: u32, size: usize, exit_stub: fn(u32) -> [u8; 19], host_cs64: u16) -> Self {
        TCache {
            host_base,
            size,
            top: DATA_BYTES,
            tables_bottom: size,
            map: HashMap::default(),
            blocks: Vec::new(),
            by_start: BTreeMap::new(),
            sites: Vec::new(),
            pages: HashMap::default(),
            suspended: HashMap::default(),
            tables: HashMap::default(),
            incoming: HashMap::default(),
            ctx_links: Vec::new(),
            ctx_entries: Vec::new(),
            ctx_owner: None,
            stats: TcStats::default(),
            exit_stub,
            victim: 0,
            host_cs64,
            perf_map: None,
            thunks: HashMap::default(),
        }
    }

    /// Drops every translation (TC full, or a global change).
    pub fn flush(&mut self) {
        if self.perf_map.is_some() {
            self.perf_line(format_args!("# flush {}\n", ringfold_host::timer::now_ns()));
        }
        self.top = DATA_BYTES;
        self.tables_bottom = self.size;
        self.map.clear();
        self.blocks.clear();
        self.by_start.clear();
        self.sites.clear();
        self.pages.clear();
        self.suspended.clear();
        self.tables.clear();
        self.incoming.clear();
        self.ctx_links.clear();
        self.ctx_entries.clear();
        self.ctx_owner = None;
        self.thunks.clear();
        self.stats.flushes += 1;
    }

    /// The live translation for `key` itself, if any.
    fn live(&self, key: &Key) -> Option<u32> {
        let b = &self.blocks[*self.map.get(key)?];
        b.live.then_some(self.host_base + b.start as u32)
    }

    /// The translation for `key`: one made for its context, or one valid in the TLS and
    /// non-TLS contexts alike.
    pub fn lookup(&self, key: &Key) -> Option<u32> {
        match self.live(key) {
            None if key.tls => self.live(&key.agnostic()),
            h => h,
        }
    }

    /// Whether the translation at `host` is valid in the TLS and non-TLS contexts of `key`.
    pub fn is_agnostic(&self, key: &Key, host: u32) -> bool {
        self.live(&key.agnostic()) == Some(host)
    }

    /// Whether the block at `key` (up to its first control transfer, within its page) has
    /// an operand that `emit_tls` would rewrite.
    fn needs_tls(key: &Key, fetch: &mut impl FnMut(u32, &mut [u8]) -> usize, max_insns: usize) -> bool {
        let mut eip = key.eip();
        for _ in 0..max_insns {
            let lin = key.cs_base.wrapping_add(eip);
            if lin >> 12 != key.lin >> 12 {
                return false;
            }
            let mut bytes = [0u8; 16];
            let valid = fetch(lin, &mut bytes).min(16);
            let mut dec = Decoder::with_ip(32, &bytes[..valid], eip as u64, DecoderOptions::NONE);
            let i = dec.decode();
            if dec.last_error() != iced_x86::DecoderError::None {
                return false;
            }
            if tls_operand(&i) {
                return true;
            }
            // Blocks go on past conditional branches (scanning further than a block
            // reaches only costs sharing).
            if !matches!(i.flow_control(), FlowControl::Next | FlowControl::ConditionalBranch | FlowControl::Call) {
                return false;
            }
            eip = eip.wrapping_add(i.len() as u32);
        }
        false
    }

    /// The live PC thunk translated for `key`, if any: (host entry, register, entry dword).
    fn thunk_at(&self, key: &Key) -> Option<(u32, u8, u32)> {
        let h = self.lookup(key)?;
        let &(reg, live) = self.thunks.get(&((h - self.host_base) as usize))?;
        Some((h, reg, live))
    }

    /// Linear pages that currently hold translated code.
    pub fn code_pages(&self) -> Vec<u32> {
        self.pages.keys().copied().collect()
    }

    /// Maps a host EIP inside translated code back to (block, guest EIP).
    pub fn guest_eip_of(&self, host_eip: u32) -> Option<(Key, u32, Scratch)> {
        let off = host_eip.checked_sub(self.host_base)? as usize;
        let (_, &bi) = self.by_start.range(..=off).next_back()?;
        let b = &self.blocks[bi];
        if off >= b.end {
            return None;
        }
        let idx = b.insns.partition_point(|(o, _, _)| *o <= off);
        let (_, eip, scratch) = *b.insns.get(idx.checked_sub(1)?)?;
        Some((b.key, eip, scratch))
    }

    /// If `host_eip` is exactly where the translation of a guest instruction begins (or a
    /// faultable point inside an inline lookup, which can be rewound), returns that guest
    /// instruction's EIP: the guest state there is precise. Elsewhere (between the host
    /// instructions of one guest instruction's expansion, in link or exit stubs) it is not.
    pub fn boundary(&self, host_eip: u32) -> Option<(u32, Scratch)> {
        let off = host_eip.checked_sub(self.host_base)? as usize;
        let (_, &bi) = self.by_start.range(..=off).next_back()?;
        let b = &self.blocks[bi];
        if off >= b.end {
            return None;
        }
        let idx = b.insns.partition_point(|(o, _, _)| *o < off);
        if let Some(&(o, eip, sc)) = b.insns.get(idx) {
            if o == off {
                return (!sc.raw_ok && (sc.in_seq || idx == 0 || b.insns[idx - 1].1 != eip)).then_some((eip, sc));
            }
        }
        // Inside a flags sequence every point is rewindable with the record before it (its
        // instructions keep DS pointing at the virtual-flags page, which an exact resume
        // would not restore).
        let &(_, eip, sc) = b.insns.get(idx.checked_sub(1)?)?;
        (sc.if_seq && !sc.raw_ok).then_some((eip, sc))
    }

    /// The return/indirect-branch lookup table of a translation context (allocated on
    /// first use): `table_sets(ctx)` sets of two (-guest EIP, host address) entries,
    /// indexed by `table_index`.
    fn table_for(&mut self, tc: &mut [u8], key: &Key) -> usize {
        let ctx = key.context();
        if let Some(&t) = self.tables.get(&ctx) {
            return t;
        }
        let sets = table_sets(&ctx);
        self.tables_bottom -= sets as usize * 16;
        let t = self.tables_bottom;
        for i in 0..sets as usize * 2 {
            clear_entry(tc, t + i * 8, (i / 2) as u32, sets);
        }
        self.tables.insert(ctx, t);
        t
    }

    /// The TLS context about to run (before every entry): links and table entries
    /// from shared blocks into another context's blocks are undone.
    /// Only code of the same shared context can reach them (CPL0 code, for one, cannot).
    pub fn set_tls_context(&mut self, tc: &mut [u8], key: &Key) {
        match self.ctx_owner {
            Some((ctx, tls)) if ctx == key.agnostic().context() && tls != key.tls => self.undo_ctx(tc),
            _ => {}
        }
    }

    /// Makes `key`'s context the owner of context-only links (undoing another owner's).
    fn own_ctx(&mut self, tc: &mut [u8], key: &Key) {
        let owner = (key.agnostic().context(), key.tls);
        if self.ctx_owner != Some(owner) {
            self.undo_ctx(tc);
            self.ctx_owner = Some(owner);
        }
    }

    fn undo_ctx(&mut self, tc: &mut [u8]) {
        // The entries are in the table of the owner's shared context.
        let sets = self.ctx_owner.take().map_or(SMALL_SETS, |(ctx, _)| table_sets(&ctx));
        for (pos, rel) in std::mem::take(&mut self.ctx_links) {
            self.write_rel32(tc, pos, rel);
        }
        for (e, i) in std::mem::take(&mut self.ctx_entries) {
            clear_entry(tc, e, i, sets);
        }
    }

    /// Chains the link at `patch` of a block shared by all FS/GS contexts to `target_host`,
    /// a block made for the current context only: undone when the context changes.
    pub fn patch_link_ctx(&mut self, tc: &mut [u8], patch: usize, cur: &Key) -> Option<()> {
        self.own_ctx(tc, cur);
        let mut b = [0u8; 4];
        b.copy_from_slice(tc.get(patch..patch + 4)?);
        self.ctx_links.push((patch, u32::from_le_bytes(b)));
        Some(())
    }

    /// Enters `host` (a block for the current FS/GS context) in the shared context's table
    /// of `key`: undone when the context changes.
    pub fn fill_table_ctx(&mut self, tc: &mut [u8], key: &Key, host: u32) {
        self.own_ctx(tc, key);
        if let Some(e) = self.fill_entry(tc, &key.agnostic(), host) {
            self.ctx_entries.push(e);
        }
    }

    /// Records that guest EIP `eip` of context `key` is translated at `host` in the lookup
    /// table used by that context's inline RET/JMP/CALL sequences.
    pub fn fill_table(&mut self, tc: &mut [u8], key: &Key, host: u32) {
        self.fill_entry(tc, key, host);
    }

    /// Writes `key`'s entry in its context's table (if the table exists); returns the
    /// entry's TC offset and set. An entry for the same EIP is overwritten, else a free
    /// way, else the ways take turns. Entries never move: a context-only entry recorded by
    /// `fill_table_ctx` stays where `undo_ctx` will clear it.
    fn fill_entry(&mut self, tc: &mut [u8], key: &Key, host: u32) -> Option<(usize, u32)> {
        let t = *self.tables.get(&key.context())?;
        let sets = table_sets(&key.context());
        let i = table_index(key.eip(), sets);
        let set = t + i as usize * 16;
        let word = |e: usize| u32::from_le_bytes([tc[e], tc[e + 1], tc[e + 2], tc[e + 3]]);
        let holds = |e: usize| word(e) == key.eip().wrapping_neg();
        let free = |e: usize| word(e + 4) == 0;
        let e = if holds(set) {
            set
        } else if holds(set + 8) {
            set + 8
        } else if free(set) {
            set
        } else if free(set + 8) {
            set + 8
        } else {
            self.victim ^= 1;
            set + 8 * self.victim as usize
        };
        set_entry(tc, e, key.eip(), host);
        Some((e, i))
    }

    /// Emits a 32-bit `ljmp 0x33:stub64` at `tc[at..]` plus the 64-bit stub at `stub_at`.
    fn emit_exit(&mut self, tc: &mut [u8], at: usize, stub_at: usize, kind: SiteKind) {
        let site = self.sites.len() as u32;
        self.sites.push(kind);
        tc[at] = 0xEA;
        tc[at + 1..at + 5].copy_from_slice(&(self.host_base + stub_at as u32).to_le_bytes());
        tc[at + 5..at + 7].copy_from_slice(&self.host_cs64.to_le_bytes());
        tc[stub_at..stub_at + STUB64].copy_from_slice(&(self.exit_stub)(site));
    }

    /// Overwrites the entry of block `bi` with a far jump to its `Dispatch` exit (made on
    /// first use, the original bytes kept). False if the cache has no room for the exit.
    fn park(&mut self, tc: &mut [u8], bi: usize) -> bool {
        let start = self.blocks[bi].start;
        if let Some((orig, parked)) = self.blocks[bi].entry.as_mut() {
            // The entry may have been re-chained since the last park.
            orig.copy_from_slice(&tc[start..start + STUB32]);
            tc[start..start + STUB32].copy_from_slice(parked);
            return true;
        }
        if self.top + STUB64 + 16 > self.tables_bottom {
            return false;
        }
        let mut orig = [0u8; STUB32];
        orig.copy_from_slice(&tc[start..start + STUB32]);
        let stub_at = self.top;
        self.top += STUB64 + 5;
        let key = self.blocks[bi].key;
        self.emit_exit(tc, start, stub_at, SiteKind::Dispatch { key });
        let mut parked = [0u8; STUB32];
        parked.copy_from_slice(&tc[start..start + STUB32]);
        self.blocks[bi].entry = Some((orig, parked));
        true
    }

    /// Kills block `bi` (live or parked) for good: its entry exits to re-translate, and
    /// chained jumps into it go back to link stubs, so that they are re-chained to the new
    /// translation on first use instead of exiting forever. False if the cache had to be
    /// flushed (no room for stubs).
    fn kill_block(&mut self, tc: &mut [u8], bi: usize) -> bool {
        let b = &self.blocks[bi];
        if !b.live && !b.suspended {
            return true;
        }
        let (key, start, was_live) = (b.key, b.start, b.live);
        self.blocks[bi].live = false;
        self.blocks[bi].suspended = false;
        if self.map.get(&key) == Some(&bi) {
            self.map.remove(&key);
        }
        let incoming = self.incoming.remove(&start).unwrap_or_default();
        if self.top + STUB64 + 16 + incoming.len() * (STUB32 + STUB64) > self.tables_bottom || (was_live && !self.park(tc, bi)) {
            self.flush();
            return false;
        }
        for l in incoming {
            let from = &self.blocks[l.from_block];
            if !from.live && !from.suspended {
                continue;
            }
            let at = self.top;
            self.top += STUB32 + STUB64;
            self.emit_exit(tc, at, at + STUB32, SiteKind::Link {
                target: l.target,
                branch_eip: l.branch_eip,
                patch: l.pos,
                undo_push: l.undo_push,
            });
            let rel = (self.host_base + at as u32).wrapping_sub(self.host_base + l.pos as u32 + 4);
            self.write_rel32(tc, l.pos, rel);
        }
        self.stats.invalidations += 1;
        true
    }

    /// Kills every block translated from guest page `page` (live or parked). Returns how
    /// many blocks died (the cache may have been flushed instead: see `stats.flushes`).
    pub fn invalidate_page(&mut self, tc: &mut [u8], page: u32) -> usize {
        let mut list = self.pages.remove(&page).unwrap_or_default();
        if let Some((_, parked)) = self.suspended.remove(&page) {
            list.extend(parked);
        }
        let mut n = 0;
        for bi in list {
            if !self.blocks[bi].live && !self.blocks[bi].suspended {
                continue;
            }
            if !self.kill_block(tc, bi) {
                return n + 1;
            }
            n += 1;
        }
        n
    }

    /// The current address space maps guest page `page` elsewhere or not at all: parks its
    /// blocks (kept for `revive_page` while physical page `pa` holds the same code). Blocks
    /// that straddle into the next page die instead.
    pub fn suspend_page(&mut self, tc: &mut [u8], page: u32, pa: u32) {
        let Some(list) = self.pages.remove(&page) else { return };
        let mut parked = match self.suspended.remove(&page) {
            Some((p, old)) if p == pa => old,
            Some((_, old)) => {
                for bi in old {
                    if !self.kill_block(tc, bi) {
                        return;
                    }
                }
                Vec::new()
            }
            None => Vec::new(),
        };
        for bi in list {
            let b = &self.blocks[bi];
            if !b.live {
                continue;
            }
            let straddles = b.lin_end != b.key.lin && b.lin_end.wrapping_sub(1) >> 12 != page;
            if straddles || b.key.lin >> 12 != page {
                if !self.kill_block(tc, bi) {
                    return;
                }
                continue;
            }
            if !self.park(tc, bi) {
                self.flush();
                return;
            }
            self.blocks[bi].live = false;
            self.blocks[bi].suspended = true;
            parked.push(bi);
        }
        self.stats.suspended_pages += 1;
        self.suspended.insert(page, (pa, parked));
    }

    /// The physical page behind parked guest page `page`, and whether any of its blocks
    /// runs at CPL3 (the check before `revive_page` must then be a user fetch).
    pub fn suspended(&self, page: u32) -> Option<(u32, bool)> {
        let (pa, list) = self.suspended.get(&page)?;
        Some((*pa, list.iter().any(|&bi| self.blocks[bi].key.cpl == 3)))
    }

    /// Whether `page` has live blocks.
    pub fn page_live(&self, page: u32) -> bool {
        self.pages.get(&page).is_some_and(|l| l.iter().any(|&bi| self.blocks[bi].live))
    }

    /// Whether any live block of `page` runs at CPL3.
    pub fn page_user(&self, page: u32) -> bool {
        self.pages.get(&page).is_some_and(|l| l.iter().any(|&bi| self.blocks[bi].live && self.blocks[bi].key.cpl == 3))
    }

    /// Guest page `page` maps the same physical page again: its parked blocks run again,
    /// except TLS blocks when `tls` is false (the current context could not use them),
    /// which stay parked for when a TLS context looks up code on the page.
    pub fn revive_page(&mut self, tc: &mut [u8], page: u32, tls: bool) {
        let Some((pa, list)) = self.suspended.remove(&page) else { return };
        let mut other = Vec::new();
        for bi in list {
            let b = &self.blocks[bi];
            if !b.suspended {
                continue;
            }
            if b.key.tls && !tls {
                other.push(bi);
                continue;
            }
            let (key, start) = (b.key, b.start);
            if self.map.get(&key) != Some(&bi) {
                // Translated afresh meanwhile (cannot normally happen): this copy dies.
                if !self.kill_block(tc, bi) {
                    return;
                }
                continue;
            }
            if let Some((orig, _)) = self.blocks[bi].entry {
                tc[start..start + STUB32].copy_from_slice(&orig);
            }
            self.blocks[bi].suspended = false;
            self.blocks[bi].live = true;
            self.pages.entry(page).or_default().push(bi);
        }
        if !other.is_empty() {
            self.suspended.insert(page, (pa, other));
        }
        self.stats.revived_pages += 1;
    }

    /// Patches a chained jump's rel32 at `pos`. A parked block's entry holds its far jump
    /// to the dispatch exit: bytes that fall there go to the saved original entry instead.
    fn write_rel32(&mut self, tc: &mut [u8], pos: usize, rel: u32) {
        let bytes = rel.to_le_bytes();
        let parked = self.block_at(pos).filter(|&bi| !self.blocks[bi].live && self.blocks[bi].entry.is_some());
        for (k, b) in bytes.into_iter().enumerate() {
            let p = pos + k;
            match parked {
                Some(bi) if p < self.blocks[bi].start + STUB32 => {
                    let start = self.blocks[bi].start;
                    self.blocks[bi].entry.as_mut().unwrap().0[p - start] = b;
                }
                _ => tc[p] = b,
            }
        }
    }

    /// The block whose code contains TC offset `off`.
    /// The host entry of the block whose code contains `host_eip`.
    pub fn block_entry(&self, host_eip: u32) -> Option<u32> {
        let bi = self.block_at(host_eip.checked_sub(self.host_base)? as usize)?;
        Some(self.host_base + self.blocks[bi].start as u32)
    }

    fn block_at(&self, off: usize) -> Option<usize> {
        let (_, &bi) = self.by_start.range(..=off).next_back()?;
        (off < self.blocks[bi].end).then_some(bi)
    }

    /// Patches a link site's rel32 at TC offset `patch` to jump to `target_host` (the
    /// cached translation of `target`), remembering the chain for invalidation.
    pub fn patch_link(&mut self, tc: &mut [u8], patch: usize, target_host: u32, target: Key, branch_eip: u32, undo_push: bool) {
        let rel = target_host.wrapping_sub(self.host_base + patch as u32 + 4);
        self.write_rel32(tc, patch, rel);
        self.stats.links += 1;
        if let Some(from_block) = self.block_at(patch) {
            let t = (target_host - self.host_base) as usize;
            self.incoming.entry(t).or_default().push(Incoming { pos: patch, target, branch_eip, undo_push, from_block });
        }
    }

    /// Translates the block at `key`, writing into `tc` (the writable view of the cache).
    /// `fetch(lin, buf)` reads guest code bytes and returns how many could be fetched
    /// (the rest faults). A block never extends past the page it starts in, except for a
    /// last instruction that straddles into the next. Returns the block's host address.
    pub fn translate(
        &mut self,
        tc: &mut [u8],
        key: Key,
        fetch: impl FnMut(u32, &mut [u8]) -> usize,
    ) -> Result<u32, TranslateError> {
        if let Some(h) = self.lookup(&key) {
            return Ok(h);
        }
        self.translate_block(tc, key, fetch, MAX_INSNS, true)
    }

    /// Translates just the instruction at `key` into a one-shot block that is neither
    /// registered for lookup nor tied to its guest page: used to let a store into a page
    /// of translated code run once while that page is unprotected.
    pub fn translate_once(
        &mut self,
        tc: &mut [u8],
        key: Key,
        fetch: impl FnMut(u32, &mut [u8]) -> usize,
    ) -> Result<u32, TranslateError> {
        self.translate_block(tc, key, fetch, 1, false)
    }

    fn translate_block(
        &mut self,
        tc: &mut [u8],
        key: Key,
        mut fetch: impl FnMut(u32, &mut [u8]) -> usize,
        max_insns: usize,
        mut register: bool,
    ) -> Result<u32, TranslateError> {
        // Room for the block and for the (at most two) lookup tables it may need.
        if self.top + MAX_BLOCK_BYTES + 2 * TABLE_BYTES > self.tables_bottom {
            self.flush();
        }
        // Blocks without TLS operands are valid whatever DS and GS are.
        let key = if key.tls && !Self::needs_tls(&key, &mut fetch, max_insns) { key.agnostic() } else { key };
        let table = self.host_base + self.table_for(tc, &key) as u32;
        // Inline SYSEXIT continues in the flat CPL3 context's shared lookup table.
        let user_key = Key { lin: 0, cs_base: 0, cs_limit: u32::MAX, cpl: 3, tls: false, ..key };
        let user_table = if key.cpl == 0 { self.host_base + self.table_for(tc, &user_key) as u32 } else { 0 };
        let start = self.top;
        // Code goes first; exit stubs go after MAX_INSNS*... bytes reserved for code.
        let mut code = start;
        let mut stubs: Vec<(usize, SiteKind)> = Vec::new(); // (32-bit exit position, kind)
        let mut rel_links: Vec<(usize, Key, u32, bool)> = Vec::new(); // (rel32 pos, target, branch eip, call)
        let mut insns = Vec::new();
        let mut eip = key.eip();
        let limit = key.cs_limit;
        let mut lin_end = key.lin;
        let mut ended = false;
        // Records from here on belong to the instruction in an inline STI's shadow (set by
        // the STI, marked after the next instruction).
        let mut sti_next: Option<usize> = None;
        let mut sti_shadow: Option<usize> = None;
        // A PC thunk's register (first instruction `mov reg, [esp]`, then the block is one if
        // the second is a plain RET).
        let mut thunk_reg: Option<u8> = None;
        let mut thunk: Option<u8> = None;
        // Where the block's closing RET/JMP/CALL lookup starts (a separate `perf` symbol).
        let mut lookup_at: Option<usize> = None;
        for n_insn in 0..max_insns {
            let mut bytes = [0u8; 16];
            let lin = key.cs_base.wrapping_add(eip);
            if n_insn > 0 && lin >> 12 != key.lin >> 12 {
                break; // next page: its own block (its mapping may change independently)
            }
            let used = code - start + stubs.len() * STUB64 + rel_links.len() * (STUB32 + STUB64);
            if n_insn > 0 && used + MAX_EXPANSION > MAX_BLOCK_BYTES {
                break;
            }
            let valid = fetch(lin, &mut bytes).min(16);
            let mut dec = Decoder::with_ip(32, &bytes[..valid], eip as u64, DecoderOptions::NONE);
            let i = dec.decode();
            let incomplete = dec.last_error() == iced_x86::DecoderError::NoMoreBytes;
            let len = if incomplete { valid as u32 + 1 } else { i.len().max(1) as u32 };
            if eip as u64 + len as u64 - 1 > limit as u64 || incomplete {
                if n_insn > 0 {
                    break; // the fault belongs to this instruction: it starts its own block
                }
                insns.push((code, eip, Scratch::default()));
                stubs.push((code, SiteKind::FetchFault { eip }));
                code += STUB32;
                ended = true;
                // Not cached: the page may become fetchable (a not-present page being
                // mapped needs no invalidation on hardware), and then the code must run.
                register = false;
                break;
            }
            insns.push((code, eip, Scratch::default()));
            lin_end = lin.wrapping_add(len);
            let next = eip.wrapping_add(len);
            if n_insn == 0 {
                thunk_reg = pc_thunk_load(&i);
            }
            if i.op0_kind() == OpKind::NearBranch16 {
                return Err(TranslateError::Branch16(eip));
            }
            let mut class = classify(&i, key.fpu);
            if key.cpl == 0 && class == Class::Emulate {
                class = match i.mnemonic() {
                    Mnemonic::Cli => Class::InlineCli,
                    Mnemonic::Sti => Class::InlineSti,
                    Mnemonic::Pushfd => Class::InlinePushfd,
                    Mnemonic::Popfd => Class::InlinePopfd,
                    // A one-shot block must end after its instruction (STI shadow, SMC).
                    Mnemonic::Sysexit if max_insns > 1 => Class::InlineSysexit,
                    _ if inline_seg_load(&i).is_some() => Class::InlineSegLoad,
                    Mnemonic::Mov if i.code() == iced_x86::Code::Mov_r32_cr && matches!(i.op1_register(), Register::CR0 | Register::CR2 | Register::CR3 | Register::CR4) => {
                        Class::InlineCrRead
                    }
                    _ => class,
                };
            }
            if key.cpl == 3 && class == Class::Emulate && i.mnemonic() == Mnemonic::Sysenter && max_insns > 1 {
                class = Class::InlineSysenter;
            }
            match class {
                Class::Copy => {
                    match key.tls.then(|| tls_operand(&i)).filter(|&t| t).and_then(|_| emit_tls(tc, code, &i, self.host_base + TLS_BASE as u32, &mut insns)) {
                        Some(end) => code = end,
                        None => {
                            tc[code..code + len as usize].copy_from_slice(&bytes[..len as usize]);
                            code += len as usize;
                        }
                    }
                    eip = next;
                }
                Class::CopyWithoutRep => {
                    let l = len as usize;
                    let opcode_at = (0..l).find(|&k| bytes[k] == 0x0F).unwrap_or(0);
                    let drop = (0..opcode_at).find(|&k| bytes[k] == 0xF3).unwrap_or(usize::MAX);
                    let mut n = 0;
                    for (k, b) in bytes[..l].iter().enumerate() {
                        if k != drop {
                            tc[code + n] = *b;
                            n += 1;
                        }
                    }
                    code += n;
                    eip = next;
                }
                Class::Jcc => {
                    let cc = i.condition_code() as u8 - 1;
                    tc[code] = 0x0F;
                    tc[code + 1] = 0x80 | cc;
                    rel_links.push((code + 2, key.with_eip(i.near_branch32()), eip, false));
                    code += 6;
                    // The block goes on with the fall-through path (the loop's page and
                    // limit checks end it, with a jump to `next`, where it cannot).
                    eip = next;
                }
                Class::Jmp => {
                    tc[code] = 0xE9;
                    rel_links.push((code + 1, key.with_eip(i.near_branch32()), eip, false));
                    code += 5;
                    ended = true;
                }
                Class::Call => {
                    let target = key.with_eip(i.near_branch32());
                    match self.thunk_at(&target).filter(|_| next <= key.cs_limit) {
                        Some((h, reg, live)) => {
                            let (end, rel) = emit_thunk_call(tc, code, eip, (reg, h, live), next, &mut insns);
                            rel_links.push((rel, target, eip, true));
                            code = end;
                            self.stats.thunk_calls += 1;
                            eip = next;
                        }
                        None => {
                            tc[code] = 0x68;
                            tc[code + 1..code + 5].copy_from_slice(&next.to_le_bytes());
                            tc[code + 5] = 0xE9;
                            rel_links.push((code + 6, target, eip, true));
                            code += 10;
                            ended = true;
                        }
                    }
                }
                Class::LoopLike => {
                    // loop/jecxz +2; jmp +5; jmp target; jmp next
                    let l = len as usize;
                    tc[code..code + l].copy_from_slice(&bytes[..l]);
                    tc[code + l - 1] = 2;
                    code += l;
                    tc[code] = 0xEB;
                    tc[code + 1] = 5;
                    code += 2;
                    tc[code] = 0xE9;
                    rel_links.push((code + 1, key.with_eip(i.near_branch32()), eip, false));
                    code += 5;
                    tc[code] = 0xE9;
                    rel_links.push((code + 1, key.with_eip(next), eip, false));
                    code += 5;
                    ended = true;
                }
                Class::Emulate => {
                    stubs.push((code, SiteKind::Emulate(Box::new(i), false, false)));
                    code += STUB32;
                    ended = true;
                }
                Class::Fpu { sse } => {
                    stubs.push((code, SiteKind::Fpu { eip, sse }));
                    code += STUB32;
                    ended = true;
                }
                Class::InlineCli | Class::InlineSti => {
                    let sti = class == Class::InlineSti;
                    insns.pop();
                    let from = insns.len();
                    code = emit_if_seq(tc, code, eip, sti, &mut insns, &mut stubs, next);
                    note_saved_ds(&mut insns, from, 0);
                    eip = next;
                    if sti {
                        // The next instruction runs in the STI shadow: it is translated in
                        // this block with its records marked, so that a kick there runs it
                        // before delivering. (Where it cannot follow, at the end of the
                        // page or of the block, the block ends with its usual jump to it.)
                        sti_next = Some(insns.len());
                    }
                }
                Class::InlinePushfd => {
                    insns.pop();
                    let from = insns.len();
                    code = emit_pushfd(tc, code, eip, &mut insns);
                    note_saved_ds(&mut insns, from, 8);
                    eip = next;
                }
                Class::InlinePopfd => {
                    insns.pop();
                    let from = insns.len();
                    code = emit_popfd(tc, code, &i, &mut insns, &mut stubs);
                    note_saved_ds(&mut insns, from, 0);
                    eip = next;
                }
                Class::InlineCrRead => {
                    // mov %cs:CR_MIRROR+4n, %r32 (reads the cache: cannot fault)
                    let (r, n) = (i.op0_register().number() as u8, i.op1_register().number() as u32);
                    tc[code..code + 3].copy_from_slice(&[0x2E, 0x8B, 0x05 | (r << 3)]);
                    tc[code + 3..code + 7].copy_from_slice(&(self.host_base + CR_MIRROR as u32 + 4 * n).to_le_bytes());
                    code += 7;
                    eip = next;
                }
                Class::InlineSegLoad => {
                    insns.pop();
                    code = emit_seg_load(tc, code, &i, next, self.host_base + SEG_TABLE as u32, &mut insns, &mut stubs);
                    eip = next;
                }
                Class::SregRead => {
                    // push dword ptr cs:[mirror + 4*sreg]  /  movzx r32, word ptr cs:[mirror + 4*sreg]
                    let (sreg, dst) = if i.mnemonic() == Mnemonic::Push {
                        (i.op0_register(), None)
                    } else {
                        (i.op1_register(), Some(i.op0_register()))
                    };
                    let idx = match sreg {
                        Register::ES => 0,
                        Register::CS => 1,
                        Register::SS => 2,
                        Register::DS => 3,
                        Register::FS => 4,
                        _ => 5,
                    };
                    insns.pop();
                    if matches!(idx, 0 | 3 | 4 | 5) {
                        // DS/ES/FS/GS may have been loaded inline: the host selector names
                        // the guest's (`SEG_REV`).
                        code = emit_sreg_read(tc, code, eip, idx as u8, dst, self.host_base + SEG_REV as u32, &mut insns);
                        eip = next;
                        continue;
                    }
                    let mirror = if key.cpl == 3 { SELECTOR_MIRROR3 } else { SELECTOR_MIRROR };
                    let addr = self.host_base + (mirror + idx * 4) as u32;
                    // A host fault here (stack) is handled by interpreting the guest
                    // instruction, which raises the guest's own fault.
                    insns.push((code, eip, Scratch { in_seq: true, ..Scratch::default() }));
                    let enc: &[u8] = match dst {
                        None => &[0x2E, 0xFF, 0x35],
                        Some(r) => &[0x2E, 0x0F, 0xB7, 0x05 | ((r.number() as u8) << 3)],
                    };
                    tc[code..code + enc.len()].copy_from_slice(enc);
                    code += enc.len();
                    tc[code..code + 4].copy_from_slice(&addr.to_le_bytes());
                    code += 4;
                    eip = next;
                }
                Class::Ret | Class::IndirectJmp | Class::IndirectCall => {
                    if n_insn == 1 && i.code() == iced_x86::Code::Retnd {
                        thunk = thunk_reg.take();
                    }
                    insns.pop();
                    let agnostic = !key.tls;
                    lookup_at = Some(code);
                    code = emit_lookup(tc, code, &i, (table, table_sets(&key.context())), &mut insns, &mut stubs, SiteKind::Emulate(Box::new(i), true, agnostic));
                    ended = true;
                }
                Class::InlineSysenter => {
                    insns.pop();
                    let from = insns.len();
                    code = emit_sysenter(tc, code, eip, self.host_base + FAST_RECORD as u32, &mut insns);
                    note_saved_ds(&mut insns, from, 0);
                    ended = true;
                }
                Class::InlineSysexit => {
                    insns.pop();
                    code = emit_sysexit(tc, code, &i, self.host_base, user_table, &mut insns, &mut stubs);
                    ended = true;
                }
            }
            if let Some(from) = sti_shadow.take() {
                for (_, _, s) in insns[from..].iter_mut().filter(|(_, _, s)| s.done == 0) {
                    s.sti_shadow = true;
                }
            }
            sti_shadow = sti_next.take();
            if ended {
                break;
            }
        }
        if let Some(from) = sti_shadow {
            // The shadowed instruction was not translated here (fetch fault, page end).
            for (_, _, s) in insns[from..].iter_mut() {
                s.sti_shadow = true;
            }
        }
        if max_insns == 1 {
            // A one-shot block runs the instruction in an STI / MOV SS shadow (or a store
            // into translated code): a kick before it completes must not deliver.
            for (_, _, s) in insns.iter_mut().filter(|(_, _, s)| s.done == 0) {
                s.sti_shadow = true;
            }
        }
        if !ended {
            tc[code] = 0xE9;
            insns.push((code, eip, Scratch::default()));
            rel_links.push((code + 1, key.with_eip(eip), eip, false));
            code += 5;
        }
        // Pad so that an invalidation can overwrite the entry with a 7-byte far jump.
        while code - start < STUB32 {
            tc[code] = 0xCC;
            code += 1;
        }
        let end = code;
        let mut tail = end;
        for (at, kind) in stubs {
            self.emit_exit(tc, at, tail, kind);
            tail += STUB64;
        }
        // Links: a direct jump when the target exists, else a link stub.
        let mut direct = Vec::new();
        for (pos, target, branch_eip, call) in rel_links {
            let dest = match (self.lookup(&target), target == key && register) {
                (Some(h), _) => {
                    direct.push((pos, h, target, branch_eip, call));
                    h
                }
                (None, true) => self.host_base + start as u32,
                (None, false) => {
                    let at = tail;
                    let stub_at = tail + STUB32;
                    tail += STUB32 + STUB64;
                    self.emit_exit(tc, at, stub_at, SiteKind::Link { target, branch_eip, patch: pos, undo_push: call });
                    self.host_base + at as u32
                }
            };
            let rel = dest.wrapping_sub(self.host_base + pos as u32 + 4);
            tc[pos..pos + 4].copy_from_slice(&rel.to_le_bytes());
        }
        // Blocks start on a cache line: hot loops then sit where the guest's did relative to
        // line boundaries no worse than native code usually does.
        self.top = (tail + 63) & !63;
        self.stats.blocks += 1;
        self.stats.guest_insns += insns.len() as u64;
        let block_index = self.blocks.len();
        for (pos, h, target, branch_eip, undo_push) in direct {
            let t = (h - self.host_base) as usize;
            self.incoming.entry(t).or_default().push(Incoming { pos, target, branch_eip, undo_push, from_block: block_index });
        }
        if !register {
            self.blocks.push(Block { key, start, end, lin_end, insns, live: false, suspended: false, entry: None });
            self.by_start.insert(start, block_index);
            return Ok(self.host_base + start as u32);
        }
        let first_page = key.lin >> 12;
        // An empty block (its first instruction cannot be fetched) still covers its page.
        let last_page = if lin_end == key.lin { first_page } else { lin_end.wrapping_sub(1) >> 12 };
        let mut p = first_page;
        loop {
            self.pages.entry(p).or_default().push(block_index);
            if p == last_page {
                break;
            }
            p = p.wrapping_add(1);
        }
        self.blocks.push(Block { key, start, end, lin_end, insns, live: true, suspended: false, entry: None });
        self.by_start.insert(start, block_index);
        self.map.insert(key, block_index);
        if let Some(reg) = thunk {
            let live = u32::from_le_bytes(tc[start..start + 4].try_into().unwrap());
            self.thunks.insert(start, (reg, live));
        }
        // The lookup sequence (and the exits after it) is its own symbol, `guest:LIN:lookup`.
        let split = lookup_at.unwrap_or(tail);
        self.perf_line(format_args!("{:x} {:x} guest:{:08x}\n", self.host_base as usize + start, split - start, key.lin));
        if split < tail {
            self.perf_line(format_args!("{:x} {:x} guest:{:08x}:lookup\n", self.host_base as usize + split, tail - split, key.lin));
        }
        Ok(self.host_base + start as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(32, bytes, 0x1000, DecoderOptions::NONE).decode()
    }

    #[test]
    fn innocuous_instructions_are_copied() {
        for b in [&[0x01, 0xC8][..], &[0x8B, 0x45, 0x08], &[0x0F, 0xAF, 0xC1], &[0xF3, 0xA5], &[0x66, 0x0F, 0xFE, 0xC1]] {
            assert_eq!(classify(&dec(b), 4), Class::Copy, "{b:x?}");
        }
    }

    #[test]
    fn sensitive_instructions_exit() {
        let cases: &[&[u8]] = &[
            &[0x9C], &[0x9D], &[0xFA], &[0xFB], &[0xF4], &[0xE4, 0x60], &[0xEE], &[0xF3, 0x6C], &[0x6E],
            &[0xCD, 0x80], &[0xCC], &[0xCE], &[0x62, 0x03], &[0x0F, 0x0B], &[0xEA, 0, 0, 0, 0, 0x33, 0],
            &[0xFF, 0x28], &[0xCB], &[0xCF], &[0x66, 0xC3], &[0x66, 0xFF, 0xE0], &[0x67, 0xFF, 0x27],
            &[0x2E, 0xFF, 0x20],
            &[0x8E, 0xD8], &[0x66, 0x1E], &[0x1F], &[0x8C, 0x18], &[0x66, 0x8C, 0xD8], &[0x0F, 0xA9], &[0xC5, 0x06, 0, 0, 0, 0],
            &[0x0F, 0xB2, 0x06], &[0x0F, 0x02, 0xC0], &[0x0F, 0x03, 0xC0], &[0x0F, 0x00, 0xE0], &[0x0F, 0x00, 0xE8],
            &[0x0F, 0x01, 0x00], &[0x0F, 0x01, 0x08], &[0x0F, 0x00, 0xC0], &[0x0F, 0x00, 0xC8], &[0x0F, 0x01, 0xE0],
            &[0x0F, 0x01, 0xF0], &[0x0F, 0x01, 0x10], &[0x0F, 0x01, 0x18], &[0x0F, 0x00, 0xD0], &[0x0F, 0x00, 0xD8],
            &[0x0F, 0x06], &[0x0F, 0x20, 0xC0], &[0x0F, 0x22, 0xD8], &[0x0F, 0x21, 0xC0], &[0x0F, 0x23, 0xF8],
            &[0x0F, 0x08], &[0x0F, 0x09], &[0x0F, 0x01, 0x38], &[0x0F, 0x32], &[0x0F, 0x30], &[0x0F, 0x31],
            &[0x0F, 0x01, 0xF9], &[0x0F, 0x33], &[0xF3, 0x0F, 0xC7, 0xF8], &[0x0F, 0xA2], &[0x0F, 0x34],
            &[0x0F, 0x35], &[0x0F, 0x05], &[0x0F, 0x07], &[0xC5, 0xF8, 0x77], &[0x0F, 0x01, 0xD0],
            &[0x2E, 0x8B, 0x00], &[0x2E, 0xA4], &[0xF1], &[0xFF, 0xFF],
        ];
        for b in cases {
            assert_eq!(classify(&dec(b), 4), Class::Emulate, "{b:x?} {}", dec(b));
        }
    }

    #[test]
    fn returns_and_indirect_branches_use_inline_lookup() {
        assert_eq!(classify(&dec(&[0xC3]), 4), Class::Ret);
        assert_eq!(classify(&dec(&[0xC2, 8, 0]), 4), Class::Ret);
        assert_eq!(classify(&dec(&[0xFF, 0xE0]), 4), Class::IndirectJmp);
        assert_eq!(classify(&dec(&[0xFF, 0x24, 0x85, 0, 0x10, 0, 0]), 4), Class::IndirectJmp);
        assert_eq!(classify(&dec(&[0xFF, 0xD0]), 4), Class::IndirectCall);
        assert_eq!(classify(&dec(&[0x64, 0xFF, 0x10]), 4), Class::IndirectCall);
    }

    /// The emitted sequence for `call *8(%esp)` decodes to the documented shape, reads
    /// the operand with the ESP displacement adjusted by the scratch (8 + 12 bytes), and
    /// every faultable host instruction before the stores carries its scratch depth.
    #[test]
    fn lookup_sequence_shape() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let mut guest = vec![0x90u8; 0x1000];
        guest[0x100..0x104].copy_from_slice(&[0xFF, 0x54, 0x24, 0x08]); // call *8(%esp)
        let key = Key { lin: 0x100, cs_base: 0, cs_limit: 0xFFFF_FFFF, cpl: 3, fpu: 4, tls: false };
        let h = t.translate(&mut tc, key, |lin, b| {
            for (k, x) in b.iter_mut().enumerate() {
                *x = *guest.get(lin as usize + k).unwrap_or(&0xFF);
            }
            b.len()
        }).unwrap();
        let off = (h - 0x1000_0000) as usize;
        let mut d = Decoder::with_ip(32, &tc[off..off + 200], h as u64, DecoderOptions::NONE);
        let text: Vec<String> = (0..36).map(|_| format!("{}", d.decode())).collect();
        assert_eq!(text[0], "lea esp,[esp-8]");
        assert_eq!(&text[1..4], &["push eax", "push ecx", "push edx"]);
        assert_eq!(text[4], "mov eax,[esp+1Ch]", "8 + 8 reserve + 12 scratch");
        assert_eq!(text[5], "movzx ecx,ah");
        assert_eq!(&text[6..9], &["mov edx,eax", "bswap edx", "movzx edx,dh"]);
        assert_eq!(&text[9..14], &["lea ecx,[ecx+edx*4]", "lea ecx,[eax+ecx]", "lea ecx,[ecx*8]", "lea ecx,[ecx+ecx]", "movzx ecx,cx"]);
        assert!(text[14].starts_with("mov edx,cs:[ecx+"), "{}", text[14]);
        assert_eq!(&text[15..17], &["lea edx,[edx+eax]", "xchg edx,ecx"]);
        assert!(text[17].starts_with("jecxz"), "{}", text[17]);
        assert!(text[18].starts_with("mov ecx,cs:[edx+"), "{}", text[18]);
        assert_eq!(text[19], "lea ecx,[ecx+eax]");
        assert!(text[20].starts_with("jecxz"), "{}", text[20]);
        assert_eq!(&text[21..25], &["pop edx", "pop ecx", "pop eax", "lea esp,[esp+8]"]);
        assert!(text[25].starts_with("jmp far"), "{text:?}");
        assert!(text[26].starts_with("mov edx,cs:[edx+"), "way 1's host address: {}", text[26]);
        assert!(text[27].starts_with("jmp short"), "{}", text[27]);
        assert!(text[28].starts_with("mov edx,cs:[edx+"), "way 0's host address: {}", text[28]);
        assert_eq!(text[29], "mov [esp+0Ch],edx");
        assert!(text[30].starts_with("mov dword ptr [esp+10h],"), "CALL's return EIP: {}", text[30]);
        assert_eq!(&text[31..36], &["pop edx", "pop ecx", "pop eax", "lea esp,[esp+4]", "jmp dword ptr [esp-4]"]);
        let b = &t.blocks[0];
        let depths: Vec<u8> = b.insns.iter().filter(|x| x.2.in_seq).map(|x| x.2.pushes).collect();
        assert_eq!(depths, vec![0, 1, 2, 3, 3]);
        assert!(b.insns.iter().all(|x| x.1 == 0x100));
    }

    /// The slot function the inline sequence implements: its arithmetic, replayed on the
    /// instructions' definitions (movzx of AH / of DH after BSWAP, then the LEAs).
    #[test]
    fn table_index_matches_the_sequence_and_spreads_8k_strides() {
        for eip in [0u32, 1, 0x1FFF, 0x2000, 0x0816_F71E, 0x0817_371E, 0xC600_0000, 0xC17F_FFFF, u32::MAX] {
            let ecx = (eip >> 8) & 0xFF;
            let edx = (eip.swap_bytes() >> 8) & 0xFF;
            let ecx = ecx.wrapping_add(edx.wrapping_mul(4));
            let ecx = eip.wrapping_add(ecx);
            let small = ecx.wrapping_mul(16) & 0xFFFF;
            assert_eq!(small / 16, table_index(eip, SMALL_SETS), "{eip:#x}");
            let big = (ecx.wrapping_mul(8) & 0xFFFF) * 2;
            assert_eq!(big / 16, table_index(eip, BIG_SETS), "{eip:#x}");
        }
        // Return addresses 16 KiB apart (seen in busybox) no longer share a slot.
        assert_ne!(table_index(0x0816_F71E, SMALL_SETS), table_index(0x0817_371E, SMALL_SETS));
        let slots: std::collections::HashSet<u32> = (0..8).map(|k| table_index(0x0810_0123 + k * 0x2000, SMALL_SETS)).collect();
        assert_eq!(slots.len(), 8);
        for sets in [SMALL_SETS, BIG_SETS] {
            for i in 0..sets {
                assert_ne!(table_index(never_matches(i, sets), sets), i);
            }
        }
    }

    /// A CPL0 block's lookup indexes the kernel context's 8192-set table: the 16-bit
    /// truncation comes between the two scalings, and the table is that large.
    #[test]
    fn kernel_lookups_use_the_big_table() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let key = Key { lin: 0xC100_0000, cs_base: 0, cs_limit: 0xFFFF_FFFF, cpl: 0, fpu: 4, tls: false };
        let h = t.translate(&mut tc, key, |_, b| {
            b[0] = 0xC3; // ret
            1
        }).unwrap();
        let off = (h - 0x1000_0000) as usize;
        let mut d = Decoder::with_ip(32, &tc[off..off + 100], h as u64, DecoderOptions::NONE);
        let text: Vec<String> = (0..14).map(|_| format!("{}", d.decode())).collect();
        assert_eq!(&text[10..13], &["lea ecx,[ecx*8]", "movzx ecx,cx", "lea ecx,[ecx+ecx]"], "{text:?}");
        let table = t.tables[&key.context()];
        assert_eq!(t.size - table, BIG_SETS as usize * 16, "the first table is allocated at the end");
        let user = Key { cpl: 3, ..key };
        let ut = t.table_for(&mut tc, &user);
        assert_eq!(table - ut, SMALL_SETS as usize * 16);
        // The TLS context (mov eax, gs:[-4]; ret) has its own table, as large: every
        // process shares it.
        let tls = Key { lin: 0x0804_8000, tls: true, ..user };
        let code = [0x65, 0xA1, 0xFC, 0xFF, 0xFF, 0xFF, 0xC3];
        let h = t.translate(&mut tc, tls, |lin, b| {
            let from = code.get((lin - 0x0804_8000) as usize..).unwrap_or(&[]);
            let n = from.len().min(b.len());
            b[..n].copy_from_slice(&from[..n]);
            n
        }).unwrap();
        assert_eq!(t.lookup(&tls), Some(h));
        assert_eq!(ut - t.tables[&tls.context()], SMALL_SETS as usize * 16);
    }

    /// Two targets of one set both stay in the table; a third replaces one of them; a
    /// refill of a present target rewrites its own entry.
    #[test]
    fn lookup_table_sets_hold_two_targets() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let key = |eip: u32| Key { lin: eip, cs_base: 0, cs_limit: u32::MAX, cpl: 3, fpu: 4, tls: false };
        let base = t.table_for(&mut tc, &key(0));
        let a = 0x0816_F71E;
        let mut same = (a + 1..).filter(|&e| table_index(e, SMALL_SETS) == table_index(a, SMALL_SETS));
        let (b, c) = (same.next().unwrap(), same.next().unwrap());
        let word = |tc: &[u8], e: usize| u32::from_le_bytes(tc[e..e + 4].try_into().unwrap());
        let present = |tc: &[u8], eip: u32| {
            let set = base + table_index(eip, SMALL_SETS) as usize * 16;
            [set, set + 8].into_iter().find(|&e| word(tc, e) == eip.wrapping_neg()).map(|e| word(tc, e + 4))
        };
        assert_eq!(present(&tc, a), None);
        let (ea, _) = t.fill_entry(&mut tc, &key(a), 0x1111).unwrap();
        let (eb, _) = t.fill_entry(&mut tc, &key(b), 0x2222).unwrap();
        assert_ne!(ea, eb);
        assert_eq!((present(&tc, a), present(&tc, b)), (Some(0x1111), Some(0x2222)));
        assert_eq!(t.fill_entry(&mut tc, &key(a), 0x3333).unwrap().0, ea);
        assert_eq!(present(&tc, b), Some(0x2222));
        t.fill_entry(&mut tc, &key(c), 0x4444).unwrap();
        assert_eq!(present(&tc, c), Some(0x4444));
        assert!(present(&tc, a).is_some() != present(&tc, b).is_some());
    }

    /// Translates `key` from `guest` (bytes outside it read as 0xFF); returns the host
    /// entry and the block's first `n` host instructions as text.
    fn translate_text(t: &mut TCache, tc: &mut [u8], guest: &[u8], key: Key, n: usize) -> (u32, Vec<String>) {
        let h = t.translate(tc, key, |lin, b| {
            for (k, x) in b.iter_mut().enumerate() {
                *x = *guest.get(lin as usize + k).unwrap_or(&0xFF);
            }
            b.len()
        }).unwrap();
        let off = (h - t.host_base) as usize;
        let text = Decoder::with_ip(32, &tc[off..off + 256], h as u64, DecoderOptions::NONE).into_iter().take(n).map(|i| format!("{i}")).collect();
        (h, text)
    }

    #[test]
    fn control_register_reads_use_the_mirror_at_cpl0() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let mut guest = vec![0x90u8; 0x2000];
        // mov edi, cr2; mov eax, cr0; mov ebx, cr4; mov ecx, cr3; mov eax, cr8 (lock); ret
        guest[0x100..0x10F].copy_from_slice(&[0x0F, 0x20, 0xD7, 0x0F, 0x20, 0xC0, 0x0F, 0x20, 0xE3, 0x0F, 0x20, 0xD9, 0xF0, 0x0F, 0x20]);
        guest[0x10F] = 0xC0;
        let key = Key { lin: 0x100, cs_base: 0, cs_limit: u32::MAX, cpl: 0, fpu: 4, tls: false };
        let (h, text) = translate_text(&mut t, &mut tc, &guest, key, 5);
        let m = |n: u32, r: &str| format!("mov {r},cs:[{:X}h]", 0x1000_0000 + CR_MIRROR as u32 + 4 * n);
        assert_eq!(&text[..4], &[m(2, "edi"), m(0, "eax"), m(4, "ebx"), m(3, "ecx")]);
        assert!(text[4].starts_with("jmp far"), "CR8 is not mirrored (#UD): {text:?}");
        assert_eq!(t.guest_eip_of(h + 7).map(|x| x.1), Some(0x103));
        // At CPL3 the read is the guest's #GP: interpreted.
        let (_, text) = translate_text(&mut t, &mut tc, &guest, Key { cpl: 3, ..key }, 1);
        assert!(text[0].starts_with("jmp far"), "{text:?}");
    }

    #[test]
    fn blocks_go_on_past_conditional_branches() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let mut guest = vec![0x90u8; 0x2000];
        // jz +0x10; inc eax; mov eax, gs:[-4]; jmp +0
        guest[0x100..0x10E].copy_from_slice(&[0x74, 0x10, 0x40, 0x65, 0xA1, 0xFC, 0xFF, 0xFF, 0xFF, 0xE9, 0, 0, 0, 0]);
        let key = Key { lin: 0x100, cs_base: 0, cs_limit: u32::MAX, cpl: 3, fpu: 4, tls: true };
        let (_, text) = translate_text(&mut t, &mut tc, &guest, key, 7);
        assert!(text[0].starts_with("je "), "{text:?}");
        assert_eq!(&text[1..3], &["inc eax", "mov [esp-8],ecx"], "the fall-through path follows in the same block");
        assert_eq!(text[4], "mov eax,[ecx-4]");
        assert!(text[6].starts_with("jmp "), "{text:?}");
        // The TLS operand after the branch keeps the block out of the shared context.
        assert_eq!(t.blocks[0].key, key);
        assert_eq!(t.blocks[0].insns.iter().map(|x| x.1).collect::<Vec<_>>(), vec![0x100, 0x102, 0x103, 0x103, 0x103, 0x109]);
        // 64 branches (each with a link stub) fit in a block.
        for k in 0..200 {
            guest[0x400 + 2 * k..0x402 + 2 * k].copy_from_slice(&[0x75, 0x00]); // jnz +0
        }
        let key = Key { lin: 0x400, tls: false, ..key };
        translate_text(&mut t, &mut tc, &guest, key, 1);
        assert_eq!(t.blocks[1].insns.len(), MAX_INSNS + 1, "64 and the closing jump");
    }

    #[test]
    fn pc_thunk_calls_become_the_thunks_effect() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let mut guest = vec![0x90u8; 0x3000];
        guest[0x2000..0x2004].copy_from_slice(&[0x8B, 0x1C, 0x24, 0xC3]); // mov ebx,[esp]; ret
        guest[0x2010..0x2014].copy_from_slice(&[0x8B, 0x0C, 0x24, 0xC3]); // mov ecx,[esp]; ret
        guest[0x2020..0x2005 + 0x20].copy_from_slice(&[0x8B, 0x5C, 0x24, 0x04, 0xC3]); // mov ebx,[esp+4]; ret: no thunk
        guest[0x2030..0x2006 + 0x30].copy_from_slice(&[0x8B, 0x1C, 0x24, 0xC2, 0x04, 0x00]); // ret 4: no thunk
        // call 0x2000; inc eax; call 0x2010; call 0x2020; (call 0x2030 at 0x1200)
        guest[0x1000..0x1010].copy_from_slice(&[0xE8, 0xFB, 0x0F, 0, 0, 0x40, 0xE8, 0x05, 0x10, 0, 0, 0xE8, 0x10, 0x10, 0, 0]);
        guest[0x1200..0x1205].copy_from_slice(&[0xE8, 0x2B, 0x0E, 0, 0]);
        let key = Key { lin: 0, cs_base: 0, cs_limit: u32::MAX, cpl: 3, fpu: 4, tls: false };
        let k = |lin: u32| Key { lin, ..key };
        // Before the thunk has a translation, the CALL is a CALL.
        let (_, text) = translate_text(&mut t, &mut tc, &guest, k(0x1200), 1);
        assert_eq!(text[0], "push 1205h");
        let mut thunks = Vec::new();
        for lin in [0x2000, 0x2010, 0x2020, 0x2030] {
            thunks.push(translate_text(&mut t, &mut tc, &guest, k(lin), 1).0);
        }
        assert_eq!(t.thunks.len(), 2, "mov reg,[esp+4] and ret 4 are no thunks");
        let (_, text) = translate_text(&mut t, &mut tc, &guest, k(0x1000), 23);
        let entry = |h: u32| format!("mov ecx,cs:[{h:X}h]");
        let live = |tc: &[u8], h: u32| u32::from_le_bytes(tc[(h - 0x1000_0000) as usize..][..4].try_into().unwrap());
        let neg = |v: u32| format!("lea ecx,[ecx-{:X}h]", v);
        let call = |next: u32, h: u32, reg: &str| {
            let ecx = reg == "ecx";
            let keep = format!("mov {reg},ecx");
            let back = format!("mov ecx,{reg}");
            let mut v = vec![format!("mov dword ptr [esp-4],{next:X}h"), format!("mov [esp-8],{reg}")];
            v.extend((!ecx).then(|| keep.clone()));
            v.extend([entry(h), neg(live(&tc, h)), "jecxz".into()]);
            v.extend((!ecx).then(|| back.clone()));
            v.extend([format!("mov {reg},[esp-8]"), "lea esp,[esp-4]".into(), "jmp".into()]);
            v.extend((!ecx).then(|| back.clone()));
            v.push(format!("mov {reg},{next:X}h"));
            v
        };
        let short: Vec<String> = text.iter().map(|t| if t.starts_with("jecxz") || t.starts_with("jmp ") { t.split(' ').next().unwrap().into() } else { t.clone() }).collect();
        assert_eq!(&short[..12], &call(0x1005, thunks[0], "ebx")[..], "{text:?}");
        assert_eq!(text[12], "inc eax");
        assert_eq!(&short[13..22], &call(0x100B, thunks[1], "ecx")[..], "{text:?}");
        assert_eq!(text[22], "push 1010h", "no thunk: a CALL");
        assert_eq!(t.stats.thunk_calls, 2);
        // A fault on the store is the CALL's; one on the save of ECX interprets the CALL.
        let b = t.blocks.last().unwrap();
        assert_eq!(b.insns.iter().map(|x| (x.1, x.2.in_seq)).collect::<Vec<_>>(), vec![(0x1000, false), (0x1000, true), (0x1005, false), (0x1006, false), (0x1006, true), (0x100B, false)]);
        // A CALL whose return address lies beyond the CS limit stays a CALL (the RET faults):
        // call 0x2000 at 0x2FFB, limit 0x2FFF; with limit 0x3000 it is the thunk's effect.
        guest[0x2FFB..0x3000].copy_from_slice(&[0xE8, 0x00, 0xF0, 0xFF, 0xFF]);
        for (limit, first) in [(0x2FFF, "push 3000h"), (0x3000, "mov dword ptr [esp-4],3000h")] {
            translate_text(&mut t, &mut tc, &guest, Key { cs_limit: limit, ..k(0x2000) }, 1);
            let (_, text) = translate_text(&mut t, &mut tc, &guest, Key { cs_limit: limit, ..k(0x2FFB) }, 1);
            assert_eq!(text[0], first, "limit {limit:#x}");
        }
        // The guard: a killed thunk's entry no longer holds the live dword.
        let before = live(&tc, thunks[0]);
        t.invalidate_page(&mut tc, 2);
        assert_ne!(live(&tc, thunks[0]), before);
        assert!(t.thunk_at(&k(0x2000)).is_none());
        guest[0x1100..0x1105].copy_from_slice(&[0xE8, 0xFB, 0x0E, 0, 0]); // call 0x2000
        let (_, text) = translate_text(&mut t, &mut tc, &guest, k(0x1100), 1);
        assert_eq!(text[0], "push 1105h", "no live thunk: a CALL");
        // A run of thunk calls (each adds code and a link stub) stops before the block
        // could outgrow its space.
        translate_text(&mut t, &mut tc, &guest, k(0x2010), 1);
        for n in 0..64 {
            let at = 0x1400 + 5 * n;
            guest[at..at + 5].copy_from_slice(&[0xE8, 0, 0, 0, 0]);
            guest[at + 1..at + 5].copy_from_slice(&(0x2010u32.wrapping_sub(at as u32 + 5)).to_le_bytes());
        }
        let calls = t.stats.thunk_calls;
        let (h, _) = translate_text(&mut t, &mut tc, &guest, k(0x1400), 1);
        let (n, used) = (t.stats.thunk_calls - calls, t.top - (h - t.host_base) as usize);
        assert!(n > 32 && n < 64 && used <= MAX_BLOCK_BYTES + 63, "{n} calls in {used} bytes");
    }

    /// `emit_tls` for the bytes of one guest instruction at 0x1000 (TLS_BASE at 0x5000):
    /// the expansion's text and its records, or None if it is copied unchanged.
    type Expansion = (Vec<String>, Vec<(usize, u32, Scratch)>);

    fn tls_text(bytes: &[u8]) -> Option<Expansion> {
        let i = Decoder::with_ip(32, bytes, 0x1000, DecoderOptions::NONE).decode();
        if !tls_operand(&i) {
            return None;
        }
        let mut tc = vec![0u8; 256];
        let mut insns = vec![(0, 0x1000, Scratch::default())];
        let end = emit_tls(&mut tc, 0, &i, 0x5000, &mut insns)?;
        let text = Decoder::with_ip(32, &tc[..end], 0, DecoderOptions::NONE).into_iter().map(|i| format!("{i}")).collect();
        Some((text, insns))
    }

    #[test]
    fn tls_accesses_read_the_gs_base_at_run_time() {
        // mov eax, gs:[-20]: ECX (the first register the instruction does not use) holds
        // the GS base during the access, saved 8 bytes below ESP.
        let (text, insns) = tls_text(&[0x65, 0xA1, 0xEC, 0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!(text, ["mov [esp-8],ecx", "mov ecx,cs:[5000h]", "mov eax,[ecx-14h]", "mov ecx,[esp-8]"]);
        // Records: the save (a store that is not the guest's), the base load through the
        // access (ECX saved at ESP-8), the restore (resumes exactly).
        assert_eq!(insns.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(), [(0, 0x1000), (4, 0x1000), (14, 0x1000)]);
        assert!(insns[0].2.scratch_store && insns[0].2.saved.is_none());
        assert_eq!(insns[1].2.saved, Some((1, -8)));
        assert!(insns[2].2.raw_ok && insns[2].2.saved.is_none());
        // PUSH moves ESP: the restore reads the same slot 4 bytes closer.
        let (text, _) = tls_text(&[0x65, 0xFF, 0x70, 0xFC]).unwrap(); // push dword ptr gs:[eax-4]
        assert_eq!(text, ["mov [esp-8],ecx", "mov ecx,cs:[5000h]", "push dword ptr [ecx+eax-4]", "mov ecx,[esp-4]"]);
        let (text, _) = tls_text(&[0x65, 0x8F, 0x00]).unwrap(); // pop dword ptr gs:[eax]
        assert_eq!(text[3], "mov ecx,[esp-0Ch]");
        // EBP as the base would default to SS: DS stays explicit.
        let (text, _) = tls_text(&[0x65, 0x8B, 0x45, 0x08]).unwrap(); // mov eax, gs:[ebp+8]
        assert_eq!(text[2], "mov eax,[ecx+ebp+8]");
        // Base and index: the base is added to S first.
        let (text, _) = tls_text(&[0x65, 0x8B, 0x4C, 0xB3, 0xF0]).unwrap(); // mov ecx, gs:[ebx+esi*4-16]
        assert_eq!(&text[..4], ["mov [esp-8],eax", "mov eax,cs:[5000h]", "lea eax,[eax+ebx]", "mov ecx,[eax+esi*4-10h]"]);
        // ESP as the base (it cannot be an index): S is the index, alone or with a LEA.
        let (text, _) = tls_text(&[0x65, 0x8B, 0x44, 0x24, 0x04]).unwrap(); // mov eax, gs:[esp+4]
        assert_eq!(text[2], "mov eax,ds:[esp+ecx+4]");
        let (text, _) = tls_text(&[0x65, 0x8B, 0x44, 0x8C, 0x04]).unwrap(); // mov eax, gs:[esp+ecx*4+4]
        assert_eq!(&text[2..4], ["lea edx,[esp+edx]", "mov eax,[edx+ecx*4+4]"]);
        // Implicit registers are not picked: CMPXCHG8B uses EDX:EAX, ECX:EBX and ESI here.
        let (text, _) = tls_text(&[0x65, 0x0F, 0xC7, 0x0E]).unwrap(); // cmpxchg8b gs:[esi]
        assert_eq!(text[2], "cmpxchg8b [edi+esi]");
        let (text, _) = tls_text(&[0x65, 0xF7, 0x25, 0xFC, 0xFF, 0xFF, 0xFF]).unwrap(); // mul dword ptr gs:[-4]
        assert_eq!(text[0], "mov [esp-8],ecx");
        let (text, _) = tls_text(&[0x65, 0xD3, 0x25, 0xFC, 0xFF, 0xFF, 0xFF]).unwrap(); // shl dword ptr gs:[-4],cl
        assert_eq!(&text[..3], ["mov [esp-8],eax", "mov eax,cs:[5000h]", "shl dword ptr [eax-4],cl"]);
        // Copied unchanged: a write of ESP, LEA (no memory access), FS, 16-bit addressing,
        // and small constant offsets (gs:[14h], the stack canary), which stay native.
        assert!(tls_text(&[0x65, 0x8B, 0x25, 0xFC, 0xFF, 0xFF, 0xFF]).is_none()); // mov esp, gs:[-4]
        assert!(tls_text(&[0x65, 0x8D, 0x48, 0xFC]).is_none()); // lea ecx, gs:[eax-4]
        assert!(tls_text(&[0x64, 0xA1, 0xFC, 0xFF, 0xFF, 0xFF]).is_none()); // mov eax, fs:[-4]
        assert!(tls_text(&[0x65, 0x67, 0x8B, 0x00]).is_none()); // mov eax, gs:[bx+si]
        assert!(tls_text(&[0x65, 0xA1, 0x14, 0, 0, 0]).is_none()); // mov eax, gs:[14h]
        assert!(tls_text(&[0x65, 0x33, 0x15, 0x14, 0, 0, 0]).is_none()); // xor edx, gs:[14h]
        assert!(tls_text(&[0x65, 0xA1, 0, 0, 1, 0]).is_some()); // mov eax, gs:[10000h]
    }

    #[test]
    fn segment_register_reads() {
        assert_eq!(classify(&dec(&[0x1E]), 4), Class::SregRead, "push ds");
        assert_eq!(classify(&dec(&[0x0F, 0xA0]), 4), Class::SregRead, "push fs");
        assert_eq!(classify(&dec(&[0x8C, 0xD8]), 4), Class::SregRead, "mov eax, ds");
        assert_eq!(classify(&dec(&[0x8C, 0xDC]), 4), Class::Emulate, "mov esp, ds");
        assert_eq!(classify(&dec(&[0x8C, 0xD4]), 4), Class::SregRead, "mov esp, ss");
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let key = Key { lin: 0x100, cs_base: 0, cs_limit: u32::MAX, cpl: 0, fpu: 4, tls: false };
        // push ss; mov ecx, cs; push ds; mov ebx, fs; nop
        let code = [0x16, 0x8C, 0xC9, 0x1E, 0x8C, 0xE3, 0x90];
        let h = t.translate(&mut tc, key, |lin, b| {
            for (k, x) in b.iter_mut().enumerate() {
                *x = *code.get((lin - 0x100) as usize + k).unwrap_or(&0x90);
            }
            b.len()
        }).unwrap();
        let off = (h - 0x1000_0000) as usize;
        let mut d = Decoder::with_ip(32, &tc[off..off + 60], h as u64, DecoderOptions::NONE);
        let mut next = || format!("{}", d.decode());
        // CS and SS from the mirror (only the monitor changes them).
        assert_eq!(next(), "push dword ptr cs:[10000008h]");
        assert_eq!(next(), "movzx ecx,word ptr cs:[10000004h]");
        // DS, ES, FS, GS: the host selector mapped back to the guest's.
        assert_eq!(next(), "mov [esp-8],eax");
        assert_eq!(next(), "mov eax,ds");
        assert_eq!(next(), "movzx eax,word ptr cs:[eax+eax+10000040h]");
        assert_eq!(next(), "push eax");
        assert_eq!(next(), "mov eax,[esp-4]");
        assert_eq!(next(), "mov ebx,fs");
        assert_eq!(next(), "movzx ebx,word ptr cs:[ebx+ebx+10000040h]");
    }

    #[test]
    fn inline_segment_loads() {
        // Only DS/ES/FS/GS loads from a register, a 32-bit memory operand not through CS, or
        // a 32-bit POP.
        assert_eq!(inline_seg_load(&dec(&[0x8E, 0xDA])), Some(3), "mov ds, edx");
        assert_eq!(inline_seg_load(&dec(&[0x66, 0x8E, 0xC0])), Some(0), "mov es, ax");
        assert_eq!(inline_seg_load(&dec(&[0x8E, 0x64, 0x24, 0x2C])), Some(4), "mov fs, [esp+2Ch]");
        assert_eq!(inline_seg_load(&dec(&[0x0F, 0xA9])), Some(5), "pop gs");
        assert_eq!(inline_seg_load(&dec(&[0x1F])), Some(3), "pop ds");
        assert_eq!(inline_seg_load(&dec(&[0x8E, 0xD0])), None, "mov ss, eax");
        assert_eq!(inline_seg_load(&dec(&[0x17])), None, "pop ss");
        assert_eq!(inline_seg_load(&dec(&[0x66, 0x1F])), None, "16-bit pop ds");
        assert_eq!(inline_seg_load(&dec(&[0x2E, 0x8E, 0x18])), None, "mov ds, cs:[eax]");
        assert_eq!(inline_seg_load(&dec(&[0x67, 0x8E, 0x1F])), None, "mov ds, [bx]");
        // At CPL0 the sequence checks the table through CS and loads with a host MOV.
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let key = Key { lin: 0x100, cs_base: 0, cs_limit: u32::MAX, cpl: 0, fpu: 4, tls: false };
        let code = [0x8E, 0xDA, 0x90]; // mov ds, edx; nop
        let h = t.translate(&mut tc, key, |lin, b| {
            for (k, x) in b.iter_mut().enumerate() {
                *x = *code.get((lin - 0x100) as usize + k).unwrap_or(&0x90);
            }
            b.len()
        }).unwrap();
        let off = (h - 0x1000_0000) as usize;
        let text: Vec<String> = Decoder::with_ip(32, &tc[off..off + 160], h as u64, DecoderOptions::NONE).into_iter().take(28).map(|i| format!("{i}")).collect();
        let table = 0x1000_0000 + SEG_TABLE as u32;
        assert_eq!(text[4], "movzx ecx,dx");
        assert_eq!(text[7], format!("mov edx,cs:[eax*4+{:X}h]", table));
        assert!(text.contains(&"mov ds,ax".to_string()), "{text:?}");
        // A user-mode block interprets the load (the GS fold and the user-mode DS checks
        // depend on it).
        let key3 = Key { cpl: 3, lin: 0x200, ..key };
        let h3 = t.translate(&mut tc, key3, |_, b| {
            b[..2].copy_from_slice(&[0x8E, 0xDA]);
            b.len()
        }).unwrap();
        assert!(t.sites.iter().any(|s| matches!(s, SiteKind::Emulate(i, ..) if i.ip32() == 0x200)), "{h3:#x}");
    }

    #[test]
    fn fast_system_calls() {
        use crate::fastsys as fs;
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let rec = 0x1000_0000 + FAST_RECORD as u32;
        let one = |bytes: &'static [u8]| move |_: u32, b: &mut [u8]| {
            b.fill(0x90);
            b[..bytes.len()].copy_from_slice(bytes);
            b.len()
        };
        let text = |tc: &[u8], h: u32, n: usize| -> Vec<String> {
            let off = (h - 0x1000_0000) as usize;
            Decoder::with_ip(32, &tc[off..off + 400], h as u64, DecoderOptions::NONE).into_iter().take(n).map(|i| format!("{i}")).collect()
        };
        // SYSENTER at CPL3: SS first (the commit point), ESP, IF = 0, jump to the record.
        let user = Key { lin: 0x100, cs_base: 0, cs_limit: u32::MAX, cpl: 3, fpu: 4, tls: false };
        let h = t.translate(&mut tc, user, one(&[0x0F, 0x34])).unwrap();
        let x = text(&tc, h, 8);
        assert_eq!(x[0], format!("mov ss,cs:[{:X}h]", rec + fs::ENTER_SS as u32), "{x:?}");
        assert_eq!(x[1], format!("mov esp,cs:[{:X}h]", rec + fs::ENTER_ESP as u32));
        assert_eq!(x[5], format!("mov byte ptr [{:X}],0", ringfold_host::layout::VCPU_VIF));
        assert_eq!(x[7], format!("jmp dword ptr cs:[{:X}h]", rec + fs::ENTER_TARGET as u32));
        let b = t.blocks.last().unwrap();
        assert!(b.insns[0].2.in_seq && b.insns[0].2.done == 0, "before the SS load: rewind and interpret");
        assert!(b.insns[1..].iter().all(|(_, _, s)| s.done == fs::DONE_SYSENTER && s.in_seq), "after it: completed");
        // SYSEXIT at CPL0: DS, ES, FS, GS through USER_SEL, then the checks, then SS, ESP
        // and the lookup of EDX in the flat CPL3 context's table.
        let kernel = Key { cpl: 0, lin: 0x200, ..user };
        let h = t.translate(&mut tc, kernel, one(&[0x0F, 0x35])).unwrap();
        let x = text(&tc, h, 80);
        let user_sel = 0x1000_0000 + USER_SEL as u32;
        for (k, s) in ["ds", "es", "fs", "gs"].iter().enumerate() {
            assert_eq!(x[2 + 5 * k], format!("mov eax,{s}"), "{x:?}");
            assert_eq!(x[3 + 5 * k], format!("mov eax,cs:[eax*4+{user_sel:X}h]"));
            assert_eq!(x[6 + 5 * k], format!("mov {s},ax"));
        }
        let ss_load = x.iter().position(|i| i == &format!("mov ss,cs:[{:X}h]", rec + fs::EXIT_SS as u32)).expect("SS load");
        assert_eq!(x[ss_load + 1], "mov esp,ecx");
        let b = t.blocks.last().unwrap();
        let table = t.tables[&Key { lin: 0, cs_base: 0, cs_limit: u32::MAX, cpl: 3, fpu: 4, tls: false }.context()];
        assert!(x.iter().any(|i| i == &format!("mov edx,cs:[ecx+{:X}h]", 0x1000_0000 + table as u32)), "CPL3 table: {x:?}");
        let (pre, post): (Vec<_>, Vec<_>) = b.insns.iter().partition(|(_, _, s)| s.done == 0);
        assert!(pre.iter().all(|(_, e, s)| *e == 0x200 && (s.in_seq || s.raw_ok || s == &Scratch::default())));
        assert!(post.len() > 5 && post.iter().all(|(_, _, s)| s.done == fs::DONE_SYSEXIT));
        assert!(t.sites.iter().any(|s| matches!(s, SiteKind::SysexitMiss)));
        assert!(t.sites.iter().any(|s| matches!(s, SiteKind::Emulate(i, false, false) if i.mnemonic() == Mnemonic::Sysexit)), "pre-commit miss");
        // One-shot blocks (STI shadow) must end after the instruction: interpreted.
        let n = t.sites.len();
        t.translate_once(&mut tc, Key { lin: 0x300, ..kernel }, one(&[0x0F, 0x35])).unwrap();
        t.translate_once(&mut tc, Key { lin: 0x300, ..user }, one(&[0x0F, 0x34])).unwrap();
        assert!(t.sites[n..].iter().all(|s| matches!(s, SiteKind::Emulate(..))), "{:?}", &t.sites[n..]);
        // SYSENTER at CPL0 and SYSEXIT at CPL3 are interpreted (#GP or rare).
        let n = t.sites.len();
        t.translate(&mut tc, Key { lin: 0x400, ..kernel }, one(&[0x0F, 0x34])).unwrap();
        t.translate(&mut tc, Key { lin: 0x400, ..user }, one(&[0x0F, 0x35])).unwrap();
        assert_eq!(t.sites[n..].iter().filter(|s| matches!(s, SiteKind::Emulate(..))).count(), 2);
    }

    #[test]
    fn branches_and_fpu_modes() {
        assert_eq!(classify(&dec(&[0x74, 0x10]), 4), Class::Jcc);
        assert_eq!(classify(&dec(&[0xE9, 0, 0, 0, 0]), 4), Class::Jmp);
        assert_eq!(classify(&dec(&[0xE8, 0, 0, 0, 0]), 4), Class::Call);
        assert_eq!(classify(&dec(&[0xE2, 0xFE]), 4), Class::LoopLike);
        assert_eq!(classify(&dec(&[0xE3, 0x00]), 4), Class::LoopLike);
        let addps = [0x0F, 0x58, 0xC1];
        assert_eq!(classify(&dec(&addps), 4), Class::Copy);
        assert_eq!(classify(&dec(&addps), 0), Class::Fpu { sse: true }, "no OSFXSR");
        assert_eq!(classify(&dec(&addps), 5), Class::Fpu { sse: true }, "TS");
        let fadd = [0xD8, 0xC1];
        assert_eq!(classify(&dec(&fadd), 0), Class::Copy);
        assert_eq!(classify(&dec(&fadd), 2), Class::Fpu { sse: false }, "EM");
        assert_eq!(classify(&dec(&[0x9B]), 1 | 8), Class::Fpu { sse: false }, "WAIT with TS+MP");
        assert_eq!(classify(&dec(&[0x9B]), 1), Class::Copy, "WAIT with TS only");
        assert_eq!(classify(&dec(&[0x0F, 0x31]), 4), Class::Emulate, "RDTSC with an offset or TSD");
        assert_eq!(classify(&dec(&[0xF3, 0x0F, 0xBC, 0xC9]), 4), Class::CopyWithoutRep, "rep bsf, not tzcnt");
        assert_eq!(classify(&dec(&[0xF3, 0x0F, 0xBD, 0xC9]), 4), Class::CopyWithoutRep, "rep bsr, not lzcnt");
        assert_eq!(classify(&dec(&[0x0F, 0x31]), 4 | 0x10), Class::Copy, "RDTSC native");
    }

    fn stub(site: u32) -> [u8; 19] {
        let mut s = [0x90u8; 19];
        s[..4].copy_from_slice(&site.to_le_bytes());
        s
    }

    #[test]
    fn blocks_chain_and_map_back() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        // 0x100: add eax, ecx ; call 0x200 ; (0x107) 
        let mut guest = vec![0x90u8; 0x1000];
        guest[0x100..0x107].copy_from_slice(&[0x01, 0xC8, 0xE8, 0xF9, 0x00, 0x00, 0x00]);
        guest[0x200..0x202].copy_from_slice(&[0x0F, 0x0B]); // ud2
        let key = Key { lin: 0x100, cs_base: 0, cs_limit: 0xFFFF_FFFF, cpl: 0, fpu: 4, tls: false };
        fn fetch(g: &[u8]) -> impl FnMut(u32, &mut [u8]) -> usize + '_ {
            move |lin: u32, b: &mut [u8]| {
                for (k, x) in b.iter_mut().enumerate() {
                    *x = *g.get(lin as usize + k).unwrap_or(&0xFF);
                }
                b.len()
            }
        }
        let h = t.translate(&mut tc, key, fetch(&guest)).unwrap();
        let off = (h - 0x1000_0000) as usize;
        assert_eq!(&tc[off..off + 2], &[0x01, 0xC8]);
        assert_eq!(tc[off + 2], 0x68, "push of the return address");
        assert_eq!(&tc[off + 3..off + 7], &0x107u32.to_le_bytes());
        assert_eq!(t.guest_eip_of(h + 1), Some((key, 0x100, Scratch::default())));
        assert_eq!(t.guest_eip_of(h + 2), Some((key, 0x102, Scratch::default())));
        // The call goes to a link site.
        let rel = u32::from_le_bytes(tc[off + 8..off + 12].try_into().unwrap());
        let link = (h + 12).wrapping_add(rel);
        assert_eq!(tc[(link - 0x1000_0000) as usize], 0xEA);
        assert!(matches!(t.sites.last(), Some(SiteKind::Link { undo_push: true, .. })));
        // Translating the target and patching chains directly.
        let k2 = Key { lin: 0x200, ..key };
        let h2 = t.translate(&mut tc, k2, fetch(&guest)).unwrap();
        t.patch_link(&mut tc, off + 8, h2, k2, 0x102, true);
        let rel = u32::from_le_bytes(tc[off + 8..off + 12].try_into().unwrap());
        assert_eq!((h + 12).wrapping_add(rel), h2);
        // Invalidating the page turns both entries into dispatch exits.
        assert_eq!(t.invalidate_page(&mut tc, 0), 2);
        assert_eq!(tc[off], 0xEA);
        assert!(t.lookup(&key).is_none());
    }

    #[test]
    fn fetch_beyond_cs_limit_faults() {
        let mut tc = vec![0u8; 4 << 20];
        let mut t = TCache::new(0x1000_0000, tc.len(), stub, 0x33);
        let nops = |_: u32, b: &mut [u8]| {
            b.fill(0x90);
            b.len()
        };
        // The block at 0xFFE stops at the page end; the one at 0x1000 is beyond the limit.
        let key = Key { lin: 0x0FFE, cs_base: 0, cs_limit: 0x0FFF, cpl: 3, fpu: 4, tls: false };
        t.translate(&mut tc, key, nops).unwrap();
        assert!(!t.sites.iter().any(|s| matches!(s, SiteKind::FetchFault { .. })));
        t.translate(&mut tc, Key { lin: 0x1000, ..key }, nops).unwrap();
        assert!(t.sites.iter().any(|s| matches!(s, SiteKind::FetchFault { eip: 0x1000 })));
        // Bytes that cannot be fetched (page fault) also end in a fetch-fault site.
        let short = |_: u32, b: &mut [u8]| {
            b[0] = 0xB8; // mov eax, imm32 needs 5 bytes; only 2 are fetchable
            b[1] = 0x01;
            2
        };
        t.translate(&mut tc, Key { lin: 0x2000, cs_limit: 0xFFFF_FFFF, ..key }, short).unwrap();
        assert!(t.sites.iter().any(|s| matches!(s, SiteKind::FetchFault { eip: 0x2000 })));
    }
}
