# tls.S -- GS-prefixed ("TLS") memory operands at warm instruction sites.
#
# i386 glibc keeps thread variables at NEGATIVE offsets from the GS base
# (gs:-4 wraps around 4 GiB: linear = GS.base - 4) and the TCB at small
# positive ones (gs:0 self pointer, gs:0x14 stack canary).  A translator may
# rewrite such operands at CPL3 to address through a flat DS with the GS base
# added (folded in at translation time, or read at run time into a scratch
# register saved below ESP).  Every check here is architectural (SDM Vol. 1
# 3.6 address size, 3.7.5 offset computation; Vol. 3A 3.4.2-3.4.3 null
# selectors and the descriptor cache, 5.3-5.4 limit and type checks, 4.7 the
# #PF error code, 6.12 exception frames; the Vol. 2 page of each instruction
# for its results, flags and faults).
#
# Harness: a "site" (SITE ... SITE_END) is a subroutine that loads all eight
# GPRs (ESP too: the site runs on its own stack s_stack) and EFLAGS from
# s_in/s_flin, runs the instruction(s) under test, and stores all eight GPRs
# and EFLAGS to s_out/s_flout.  d_run calls a site 1000 times (the SAME
# instruction address, so a translator runs its warm translation) and after
# every call compares all eight GPRs with s_exp, EFLAGS (under a mask) with
# s_flexp, and up to eight memory dwords (each re-initialised before every
# call) with their expected values; mismatches accumulate.  The harness
# itself addresses memory only through %ss: (SS stays flat), so DS and GS may
# be anything while it runs.  "keep" flags mode (instructions that leave the
# flags alone): the input flags alternate between all of CF PF AF ZF SF OF DF
# set and all clear and must come out unchanged; otherwise the input flags
# are fixed and the output compared under the SDM-defined mask (undefined
# flags masked out).  Values below ESP are never checked (an interrupt may
# write there at any time; a translator may use it as scratch).
# One check per 1000-run case ("1000 runs, GPRs/EFLAGS/memory": got = mask 1
# exception, 2 GPRs, 4 EFLAGS, 8 memory; "# ..." lines then name the wrong
# registers/dwords with the last run's values).  A case expecting a fault
# runs the (warm) site once more under TRY: the exception (vector, error
# code, EIP = the instruction), then "GPRs/EFLAGS/memory unchanged" (all 8
# GPRs, ESP taken from the exception frame, EFLAGS, memory; got = mask 1
# GPRs, 2 EFLAGS, 4 memory, 8 no fault), and CR2 for a #PF.
#
# GS = a TLS data segment in a spare GDT slot, DPL = the CPL, 4 GiB (G=1),
# writable, base TB = tls_buf + 0x2000 (a 16 KiB buffer) unless a section says
# otherwise; DS flat (0x10 / 0x23) unless section F says otherwise.
# Every section runs at CPL0 and at CPL3:
#  A  address forms: moffs (A0/A1/A3), ModRM disp32, SIB without base/index,
#     disp -4/0x1000/0x14/0, XOR with the canary, self pointer, base,
#     base+disp8/disp32, base+disp wrapping, index*scale (no base; positive
#     and negative index), base+index*scale+disp, EBP base (default SS, here
#     GS) with/without index
#  S  ESP as base: GS base = TB - ESP (wraps), loads/stores/index, ADD,
#     PUSH/POP gs:X(%esp) (POP computes the address after incrementing ESP),
#     MOV gs:X(%esp) to ESP, CALL *gs:X(%esp), LEA with gs: and ESP base
#  B  every GPR as destination, base and index of loads and as source, base
#     and index of stores; destination = base / = index; AH/CH/DH/BH and
#     16-bit registers
#  C  MOV 8/16/32 (incl. immediates; 66h before 65h), MOVZX/MOVSX, ADD SUB
#     ADC SBB AND OR XOR CMP TEST (8/16/32-bit), INC DEC NEG NOT, XCHG,
#     CMPXCHG (both outcomes), LOCK ADD, PUSH/POP (32/16-bit), CALL/JMP
#     indirect, LEA with a gs: prefix (the segment is ignored), LODS/MOVS/
#     REP MOVS (DF 0/1) with a gs: source, MOV/ADD/XCHG writing ESP, BOUND
#  D  16-bit address size (67h) with gs: (BX+SI / BP+disp / DI+disp / BX+DI
#     +disp / disp16, offsets wrapping at 64 KiB, LEA)
#  E  GS base changes under warm sites (one site reading gs:-4, gs:0x14 and
#     gs:0x1000): descriptor rewritten without reload (the loaded GS keeps its
#     base), reloaded at the same CPL, rewritten at CPL0 and reloaded by the
#     run; for CPL3 also GS loaded at CPL0 and kept across the IRET to CPL3;
#     two selectors alternating every run; one selector rewritten + reloaded
#     every run; GS reloaded inside the site right before the accesses
#  F  non-flat segments at warm sites (each site first runs with a flat GS):
#     GS limit 0xfff byte-granular (offsets within work; a dword crossing the
#     limit, offset -4, stores and ADD beyond it #GP(0)), read-only 4 GiB GS
#     (loads use its base, a store #GP(0)), expand-down GS (offsets above the
#     limit work, below #GP(0)), null GS (#GP(0)); DS with base 0x1000, DS
#     with a 1 MiB limit (below TB), null DS: gs: accesses use the GS base
#     and limit only
#  G  paging faults at warm sites: the page holding TB-4 not present / read-
#     only / supervisor (CPL3): load, store, ADD $1, PUSH, POP, CALL*, MOVS
#     (and CMPXCHG8B in X) -> #PF with error code, EIP, CR2, all 8 GPRs (POP:
#     ESP unchanged), EFLAGS and memory unchanged; each site works again
#     afterwards
#  H  stack edges (paging): ESP at the start of a page whose preceding page is
#     not present / read-only: warm MOV/ADD from gs:-4 run without any fault
#     (nothing is written below ESP architecturally); PUSH gs:-4 / CALL
#     *gs:-4 there #PF with CR2 = ESP-4 and ESP unchanged (CPL3 only: at CPL0
#     the #PF frame itself would go to that page, a #DF).  CPL3 first.
#  X  the remaining instructions: SHL/SAR/ROL (CL, imm, 1), XADD (also with
#     F0h before 65h), CMPXCHG8B (several address forms leaving 1-2 GPRs
#     unused, both outcomes; #PF as in G), MUL/IMUL (1/2/3 operands)/DIV/IDIV
#     and #DE from DIV/IDIV at a warm site, BT/BTS/BTR with register offsets
#     beyond 31 and negative, BTC with an immediate (mod 32), SETcc, CMOVcc
#     (both outcomes), x87 FLD/FSTP/FILD/FISTP, SSE2 MOVDQU/MOVD (SKIP
#     without SSE2), XLAT and CMPS with gs:.  Paging on, CPL3 first.
#
# Order: G, H and X come last, H and X at CPL3 before CPL0, XLAT and CMPS at
# the very end. When it was written, ringfold trapped and emulated guest-CPL0
# gs: accesses at negative offsets, and stopped the guest on the instructions
# of X (at CPL3 too on XLAT/CMPS, which are not rewritten); the order let
# every other check run there. It now runs X as well (one-shot blocks with
# the GS base added at run time, and XLAT/CMPS emulation).
#
# QEMU 7.2 TCG deviations (tolerated unless booted with "strict", see
# guests/README.md): it checks no segment limit, type or null selector on
# data accesses, so the section F #GP(0) checks accept "no fault"
# (CHECK_FAULT_TOL; the state check of such a case then prints "# SKIP").
# Read-modify-write instructions faulting on a not-present or supervisor
# page: the SDM does not say whether W/R is set then (QEMU reads first), so
# that error code is checked without W.
        .include "rf.inc"
        .include "paging.inc"

        .set ITERS, 1000
        .set R_EAX, 0
        .set R_ECX, 1
        .set R_EDX, 2
        .set R_EBX, 3
        .set R_ESP, 4
        .set R_EBP, 5
        .set R_ESI, 6
        .set R_EDI, 7
        .set FLA, 0x8d5                 # CF PF AF ZF SF OF
        .set FLM, 0xcd5                 # ... and DF
        .set M_MAX, 8

        # selectors: NAME_0 (DPL0) and NAME_3 (DPL3, next slot, RPL3)
        .set T_0, 0x30                  # the TLS segment (base TB)
        .set T_3, 0x3b
        .set U_0, 0x40                  # a second TLS segment (other base)
        .set U_3, 0x4b
        .set X_0, 0x50                  # non-flat GS variants (section F)
        .set X_3, 0x5b
        .set D_0, 0x60                  # non-flat DS (section F)
        .set D_3, 0x6b

        .set TB, tls_buf + 0x2000       # the TLS base B
        .set S_ESP, s_stack + 0xe00     # ESP of the sites
        .set S_ESP2, s_stack + 0x600    # an ESP loaded from TLS memory
        .set TBS, TB - S_ESP            # GS base for section S (wraps)
        .set TB16, TB - 0x10000         # GS base for 16-bit offsets 0xfffc
        .set TBX, TB - 0x1000           # GS base for the 0xfff limit
        .set E_B2, TB - 0x800           # section E: the second base
        .set TLSPG, TB - 0x1000         # the page holding TB-4
        .set E0PG, e_pages              # section H: guard page
        .set E1PG, e_pages + 0x1000     # section H: ESP = its start

# ---------------------------------------------------------------------------
# Sites
        .macro SITE name
\name:
        movl %esp, %ss:h_esp
        pushl %ss:s_flin
        popfl
        movl %ss:s_in+4, %ecx
        movl %ss:s_in+8, %edx
        movl %ss:s_in+12, %ebx
        movl %ss:s_in+20, %ebp
        movl %ss:s_in+24, %esi
        movl %ss:s_in+28, %edi
        movl %ss:s_in+0, %eax
        movl %ss:s_in+16, %esp
\name\()_insn:
        .endm

        .macro SITE_END
        movl %eax, %ss:s_out+0
        movl %ecx, %ss:s_out+4
        movl %edx, %ss:s_out+8
        movl %ebx, %ss:s_out+12
        movl %esp, %ss:s_out+16
        movl %ebp, %ss:s_out+20
        movl %esi, %ss:s_out+24
        movl %edi, %ss:s_out+28
        movl %ss:h_esp, %esp
        pushfl
        popl %ss:s_flout
        cld
        ret
        .endm

# ---------------------------------------------------------------------------
# Case set-up (at CPL0, DS flat)
# CASE cpl, site[, seg]: defaults (distinct GPR values, ESP = S_ESP, s_exp =
# s_in, "keep" flags, no memory, no hook, DS untouched), GS = seg_cpl.
        .macro CASE cpl, site, seg=T
        call case_reset
        movl $\site, d_site
        movl $\seg\()_\cpl, d_gs
        .endm

        .macro SETIN reg, val
        movl \val, s_in + 4 * R_\reg
        movl \val, s_exp + 4 * R_\reg
        .endm

        .macro SETEXP reg, val
        movl \val, s_exp + 4 * R_\reg
        .endm

# FLAGS in, mask, want: fixed input flags; (out & mask) must be `want`
        .macro FLAGS in, mask, want
        movl $0, d_flkeep
        movl $((\in) | 2), s_flin
        movl $(\mask), s_flmask
        movl $(\want), s_flexp
        .endm

# MEM addr, init, want[, mask]: a dword set to init before every call and
# compared afterwards ((got & mask) == (want & mask)); mask 0: not compared
        .macro MEM addr, init, want, mask=$0xffffffff
        pushl \mask
        pushl \want
        pushl \init
        pushl \addr
        call mem_add
        .endm

# RUN cpl, "desc": ITERS calls of the site at CPL cpl, then its check
        .macro RUN cpl, desc
        TRY .Lrun\@
        AT_CPL \cpl
        call run_body
        END_CPL \cpl
        ENDTRY
.Lrun\@:
        call rf_reset_segs
        RESULTS \cpl, "\desc"
        .endm

# RESULTS: one check per warm run: no exception, all 8 GPRs, EFLAGS (under
# the mask) and every memory dword as expected in every run; the got value
# is a mask (1 exception, 2 GPRs, 4 EFLAGS, 8 memory), "# ..." lines follow
        .macro RESULTS cpl, desc
        call res_eval
        CHECK_EQ r_mask, $0, "cpl\cpl: \desc: 1000 runs, GPRs/EFLAGS/memory"
        call case_diag
        .endm

# FRUN cpl: ONE call of the site under TRY (a fault expected); afterwards
# f_badregs/f_badfl compare the registers at the fault with s_in/s_flin and
# f_badmem the memory with the initial values.  noinit=1: the memory is not
# written by the run (done before, e.g. before a PTE change).
        .macro FRUN cpl, noinit=0
        movl $1, d_iters
        movl $\noinit, d_noinit
        movl $RF_NONE, pg_cr2
        TRY .Lfr\@
        AT_CPL \cpl
        call run_body
        END_CPL \cpl
        ENDTRY
.Lfr\@:
        call rf_reset_segs
        .endm

# after FRUN (and after restoring a changed PTE): the fault checks: the
# exception (vector, error code, EIP = the site's instruction), then one
# check that nothing changed: f_mask = 1 GPRs (all 8, ESP from the frame),
# 2 EFLAGS (CF PF AF ZF SF OF DF), 4 memory, 8 no fault at all
        .macro FCHECK cpl, vec, err, desc, errmask=0xffff
        call fault_eval
        .if (\errmask) == 0xffff
        CHECK_FAULT $\vec, $(\err), d_insn, "cpl\cpl: \desc"
        .else
        CHECK_FAULT $\vec, $RF_ANY, d_insn, "cpl\cpl: \desc"
        CHECK_MASK rf_x_err, $(\errmask), $(\err), "cpl\cpl: \desc: error code (W/R not checked)"
        .endif
        CHECK_EQ f_mask, $0, "cpl\cpl: \desc: GPRs/EFLAGS/memory unchanged"
        call fault_diag
        .endm

# the same for a #GP(0) that QEMU TCG does not raise (segment limit/type):
# "no fault" is tolerated unless strict, the state check then SKIPs
        .macro FCHECK_TOL cpl, desc
        call fault_eval
        CHECK_FAULT_TOL $V_GP, $0, d_insn, "cpl\cpl: \desc: #GP(0)"
        cmpl $RF_NONE, rf_x_vec
        jne .Lft\@
        cmpl $0, rf_strict
        jne .Lft\@
        SKIP "cpl\cpl: \desc: GPRs/EFLAGS/memory unchanged (no fault: tolerated QEMU deviation)"
        jmp .Lfd\@
.Lft\@:
        CHECK_EQ f_mask, $0, "cpl\cpl: \desc: GPRs/EFLAGS/memory unchanged"
        call fault_diag
.Lfd\@:
        .endm

# SEGDESC seg, cpl, base[, limit, type, flags]: data descriptor seg_cpl
        .macro SEGDESC seg, cpl, base, limit=$0xfffff, type=0x93, flags=$0xc
        GDT_DESC $\seg\()_\cpl, \base, \limit, $((\type) | ((\cpl) << 5)), \flags
        .endm

# the page holding TB-4 (paging sections)
        .macro TLSPTE flags
        PG_SETPTE $TLSPG, $(TLSPG + (\flags))
        PG_INVLPG $TLSPG
        .endm

        .macro E0PTE flags
        PG_SETPTE $E0PG, $(E0PG + (\flags))
        PG_INVLPG $E0PG
        .endm

        .set URW, PG_P | PG_RW | PG_US

# ===========================================================================
# A: address forms
        .macro SEC_A cpl
        CASE \cpl, a_moffs
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP EAX, $0x89abcdef
        RUN \cpl, "mov %gs:-4 to eax (moffs A1, B-4)"

        CASE \cpl, a_modrm
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP EAX, $0x89abcdef
        RUN \cpl, "mov %gs:-4 to eax (ModRM 8B 05 disp32)"

        CASE \cpl, a_moffs_st
        SETIN EAX, $0x5700a3a3
        MEM $(TB-4), $0, $0x5700a3a3
        RUN \cpl, "mov eax to %gs:-4 (moffs A3)"

        CASE \cpl, a_moffs8
        SETIN EAX, $0x11111111
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP EAX, $0x11111189
        RUN \cpl, "mov %gs:-1 to al (moffs A0)"

        CASE \cpl, a_sib
        MEM $(TB-8), $0x0badf00d, $0x0badf00d
        SETEXP ECX, $0x0badf00d
        RUN \cpl, "mov %gs:-8 to ecx (SIB, no base, no index)"

        CASE \cpl, a_big
        MEM $(TB+0x1000), $0x10002000, $0x10002000
        SETEXP EDX, $0x10002000
        RUN \cpl, "mov %gs:0x1000 to edx"

        CASE \cpl, a_can
        MEM $(TB+0x14), $0xc0ffee14, $0xc0ffee14
        SETEXP EAX, $0xc0ffee14
        RUN \cpl, "mov %gs:0x14 to eax (canary)"

        CASE \cpl, a_canx
        SETIN EDX, $0xc0ffee14
        SETEXP EDX, $0
        FLAGS FLA, FLA&~FL_AF, FL_ZF|FL_PF
        MEM $(TB+0x14), $0xc0ffee14, $0xc0ffee14
        RUN \cpl, "xor %gs:0x14 to edx, equal (ZF=1)"

        CASE \cpl, a_canx
        SETIN EDX, $0xc0ffee15
        SETEXP EDX, $1
        FLAGS FLA, FLA&~FL_AF, 0
        MEM $(TB+0x14), $0xc0ffee14, $0xc0ffee14
        RUN \cpl, "xor %gs:0x14 to edx, different (ZF=0)"

        CASE \cpl, a_self
        MEM $TB, $TB, $TB
        MEM $(TB-4), $0x5e1f0004, $0x5e1f0004
        SETEXP EAX, $TB
        SETEXP ECX, $0x5e1f0004
        RUN \cpl, "mov %gs:0 (self pointer) to eax, then mov -4(%eax) to ecx"

        CASE \cpl, a_base
        SETIN EAX, $-8
        MEM $(TB-8), $0xba5e0008, $0xba5e0008
        SETEXP EAX, $0xba5e0008
        RUN \cpl, "mov %gs:(%eax) to eax, eax=-8"

        CASE \cpl, a_stbase
        SETIN EAX, $0x57005700
        SETIN EDX, $-12
        MEM $(TB-12), $0xdeadbeef, $0x57005700
        RUN \cpl, "mov eax to %gs:(%edx), edx=-12"

        CASE \cpl, a_bd8
        SETIN ECX, $-4
        MEM $(TB-8), $0xd8d8d8d8, $0xd8d8d8d8
        SETEXP ESI, $0xd8d8d8d8
        RUN \cpl, "mov %gs:-4(%ecx) to esi, ecx=-4 (disp8)"

        CASE \cpl, a_bd32
        SETIN EBX, $0x80
        MEM $(TB-0x80), $0xd3200080, $0xd3200080
        SETEXP EDX, $0xd3200080
        RUN \cpl, "mov %gs:-0x100(%ebx) to edx, ebx=0x80 (disp32)"

        CASE \cpl, a_bdwrap
        SETIN EBX, $0x80000000
        MEM $(TB-8), $0xa11a0008, $0xa11a0008
        SETEXP EDX, $0xa11a0008
        RUN \cpl, "mov %gs:0x7ffffff8(%ebx) to edx, ebx=0x80000000 (offset wraps to -8)"

        CASE \cpl, a_idx
        SETIN ESI, $2
        MEM $(TB-8), $0x1d100008, $0x1d100008
        SETEXP ECX, $0x1d100008
        RUN \cpl, "mov %gs:-16(,%esi,4) to ecx, esi=2"

        CASE \cpl, a_idx
        SETIN ESI, $-1
        MEM $(TB-20), $0x1d100014, $0x1d100014
        SETEXP ECX, $0x1d100014
        RUN \cpl, "mov %gs:-16(,%esi,4) to ecx, esi=-1"

        CASE \cpl, a_bis
        SETIN EBX, $-0x20
        SETIN ESI, $3
        MEM $(TB-0x24), $0xb15b1524, $0xb15b1524
        SETEXP ECX, $0xb15b1524
        RUN \cpl, "mov %gs:-16(%ebx,%esi,4) to ecx, ebx=-0x20 esi=3"

        CASE \cpl, a_ebp
        SETIN EBP, $0
        MEM $(TB-4), $0xeb00eb04, $0xeb00eb04
        SETEXP EAX, $0xeb00eb04
        RUN \cpl, "mov %gs:-4(%ebp) to eax, ebp=0"

        CASE \cpl, a_ebp0
        SETIN EBP, $-12
        MEM $(TB-12), $0xeb00000c, $0xeb00000c
        SETEXP ECX, $0xeb00000c
        RUN \cpl, "mov %gs:0(%ebp) to ecx, ebp=-12"

        CASE \cpl, a_ebpst
        SETIN EBP, $-0x20
        SETIN EAX, $0x5708eb08
        MEM $(TB-0x18), $0, $0x5708eb08
        RUN \cpl, "mov eax to %gs:8(%ebp), ebp=-0x20"

        CASE \cpl, a_ebpidx
        SETIN EBP, $-0x40
        SETIN EDI, $0x10
        MEM $(TB-0x30), $0xeb1d0030, $0xeb1d0030
        SETEXP ECX, $0xeb1d0030
        RUN \cpl, "mov %gs:(%ebp,%edi,1) to ecx, ebp=-0x40 edi=0x10"

        .endm

# ===========================================================================
# S: ESP as base; GS = U with base TBS = TB - S_ESP
        .macro SEC_S cpl
        CASE \cpl, s_ld, U
        MEM $(TB+4), $0x5e500004, $0x5e500004
        SETEXP EAX, $0x5e500004
        RUN \cpl, "mov %gs:4(%esp) to eax"

        CASE \cpl, s_ld0, U
        MEM $TB, $0x5e500000, $0x5e500000
        SETEXP ECX, $0x5e500000
        RUN \cpl, "mov %gs:(%esp) to ecx"

        CASE \cpl, s_st, U
        SETIN EDX, $0x5e5057f8
        MEM $(TB-8), $0, $0x5e5057f8
        RUN \cpl, "mov edx to %gs:-8(%esp)"

        CASE \cpl, s_idx, U
        SETIN ECX, $6
        MEM $(TB+4), $0x5e500004, $0x5e500004
        SETEXP EDX, $0x5e500004
        RUN \cpl, "mov %gs:-8(%esp,%ecx,2) to edx, ecx=6"

        CASE \cpl, s_ebpi, U
        SETIN EBP, $8
        MEM $(TB+8), $0x5e500008, $0x5e500008
        SETEXP EAX, $0x5e500008
        RUN \cpl, "mov %gs:(%esp,%ebp,1) to eax, ebp=8"

        CASE \cpl, s_add, U
        SETIN EBX, $0x40000000
        SETEXP EBX, $0x80000000
        FLAGS FL_CF|FL_ZF, FLA, FL_OF|FL_SF|FL_PF
        MEM $TB, $0x40000000, $0x40000000
        RUN \cpl, "add %gs:(%esp) to ebx (OF SF PF)"

        CASE \cpl, s_push, U
        SETEXP ESP, $(S_ESP-4)
        MEM $(TB+4), $0x5e500004, $0x5e500004
        MEM $(S_ESP-4), $0, $0x5e500004
        RUN \cpl, "push %gs:4(%esp) (address before the decrement)"

        CASE \cpl, s_pop, U
        SETEXP ESP, $(S_ESP+4)
        MEM $S_ESP, $0x909009a0, $0, $0
        MEM $(TB+4), $0x11111111, $0x11111111
        MEM $(TB+8), $0, $0x909009a0
        RUN \cpl, "pop %gs:4(%esp) (address after the increment: TB+8)"

        CASE \cpl, s_pop0, U
        SETEXP ESP, $(S_ESP+4)
        MEM $S_ESP, $0x909009a4, $0, $0
        MEM $(TB-4), $0x22222222, $0x22222222
        MEM $TB, $0, $0x909009a4
        RUN \cpl, "pop %gs:-4(%esp) (address after the increment: TB)"

        CASE \cpl, s_mvesp, U
        MEM $(TB+4), $S_ESP2, $S_ESP2
        SETEXP ESP, $S_ESP2
        RUN \cpl, "mov %gs:4(%esp) to esp"

        CASE \cpl, s_call, U
        MEM $(TB+4), $ct_tgt, $ct_tgt
        SETEXP EDI, $s_call_ret
        SETEXP EBP, $(S_ESP-4)
        RUN \cpl, "call *%gs:4(%esp) (return address pushed, ESP back)"

        CASE \cpl, s_lea, U
        SETEXP EAX, $(S_ESP+4)
        RUN \cpl, "lea %gs:4(%esp) to eax (segment ignored)"
        .endm

# ===========================================================================
# B: every GPR in every role
        .macro SEC_B cpl
        # loads: dest R[i], base R[i+1], index R[i+3] (mod 7), scale 1 2 4 8
        CASE \cpl, b_l0
        SETIN ECX, $-0x102
        SETIN EBX, $2
        MEM $(TB-0x100), $0xb0000100, $0xb0000100
        SETEXP EAX, $0xb0000100
        RUN \cpl, "mov %gs:(%ecx,%ebx,1) to eax"

        CASE \cpl, b_l1
        SETIN EDX, $-0xf4
        SETIN EBP, $2
        MEM $(TB-0x110), $0xb1000110, $0xb1000110
        SETEXP ECX, $0xb1000110
        RUN \cpl, "mov %gs:-0x20(%edx,%ebp,2) to ecx"

        CASE \cpl, b_l2
        SETIN EBX, $-0x128
        SETIN ESI, $2
        MEM $(TB-0x120), $0xb2000120, $0xb2000120
        SETEXP EDX, $0xb2000120
        RUN \cpl, "mov %gs:(%ebx,%esi,4) to edx"

        CASE \cpl, b_l3
        SETIN EBP, $-0x120
        SETIN EDI, $2
        MEM $(TB-0x130), $0xb3000130, $0xb3000130
        SETEXP EBX, $0xb3000130
        RUN \cpl, "mov %gs:-0x20(%ebp,%edi,8) to ebx"

        CASE \cpl, b_l4
        SETIN ESI, $-0x142
        SETIN EAX, $2
        MEM $(TB-0x140), $0xb4000140, $0xb4000140
        SETEXP EBP, $0xb4000140
        RUN \cpl, "mov %gs:(%esi,%eax,1) to ebp"

        CASE \cpl, b_l5
        SETIN EDI, $-0x134
        SETIN ECX, $2
        MEM $(TB-0x150), $0xb5000150, $0xb5000150
        SETEXP ESI, $0xb5000150
        RUN \cpl, "mov %gs:-0x20(%edi,%ecx,2) to esi"

        CASE \cpl, b_l6
        SETIN EAX, $-0x168
        SETIN EDX, $2
        MEM $(TB-0x160), $0xb6000160, $0xb6000160
        SETEXP EDI, $0xb6000160
        RUN \cpl, "mov %gs:(%eax,%edx,4) to edi"

        # stores: source R[i], base R[i+2], index R[i+5], scale 1 2 4 8
        CASE \cpl, b_s0
        SETIN EAX, $0x57000200
        SETIN EDX, $-0x203
        SETIN ESI, $3
        MEM $(TB-0x200), $0xdeadbeef, $0x57000200
        RUN \cpl, "mov eax to %gs:(%edx,%esi,1)"

        CASE \cpl, b_s1
        SETIN ECX, $0x57000210
        SETIN EBX, $-0x1f6
        SETIN EDI, $3
        MEM $(TB-0x210), $0xdeadbeef, $0x57000210
        RUN \cpl, "mov ecx to %gs:-0x20(%ebx,%edi,2)"

        CASE \cpl, b_s2
        SETIN EDX, $0x57000220
        SETIN EBP, $-0x22c
        SETIN EAX, $3
        MEM $(TB-0x220), $0xdeadbeef, $0x57000220
        RUN \cpl, "mov edx to %gs:(%ebp,%eax,4)"

        CASE \cpl, b_s3
        SETIN EBX, $0x57000230
        SETIN ESI, $-0x228
        SETIN ECX, $3
        MEM $(TB-0x230), $0xdeadbeef, $0x57000230
        RUN \cpl, "mov ebx to %gs:-0x20(%esi,%ecx,8)"

        CASE \cpl, b_s4
        SETIN EBP, $0x57000240
        SETIN EDI, $-0x243
        SETIN EDX, $3
        MEM $(TB-0x240), $0xdeadbeef, $0x57000240
        RUN \cpl, "mov ebp to %gs:(%edi,%edx,1)"

        CASE \cpl, b_s5
        SETIN ESI, $0x57000250
        SETIN EAX, $-0x236
        SETIN EBX, $3
        MEM $(TB-0x250), $0xdeadbeef, $0x57000250
        RUN \cpl, "mov esi to %gs:-0x20(%eax,%ebx,2)"

        CASE \cpl, b_s6
        SETIN EDI, $0x57000260
        SETIN ECX, $-0x26c
        SETIN EBP, $3
        MEM $(TB-0x260), $0xdeadbeef, $0x57000260
        RUN \cpl, "mov edi to %gs:(%ecx,%ebp,4)"

        CASE \cpl, b_db
        SETIN ESI, $-0x274
        SETIN EDI, $4
        MEM $(TB-0x270), $0xdb000270, $0xdb000270
        SETEXP ESI, $0xdb000270
        RUN \cpl, "mov %gs:(%esi,%edi,1) to esi (destination = base)"

        CASE \cpl, b_dx
        SETIN ECX, $-0x288
        SETIN EDX, $4
        MEM $(TB-0x280), $0xd0000280, $0xd0000280
        SETEXP EDX, $0xd0000280
        RUN \cpl, "mov %gs:(%ecx,%edx,2) to edx (destination = index)"

        CASE \cpl, b_sb
        SETIN EBX, $-0x390
        MEM $(TB-0x290), $0, $-0x390
        RUN \cpl, "mov ebx to %gs:0x100(%ebx) (source = base)"

        CASE \cpl, b_ah
        SETIN EAX, $0x11111111
        MEM $(TB-4), $0xa4112233, $0xa4112233
        SETEXP EAX, $0x1111a411
        RUN \cpl, "mov %gs:-1 to ah"

        CASE \cpl, b_ch
        SETIN EAX, $-0x2ff
        SETIN ECX, $0x0000c500
        MEM $(TB-0x300), $0x33333333, $0x3333c533
        RUN \cpl, "mov ch to %gs:(%eax), eax=-0x2ff"

        CASE \cpl, b_dh
        SETIN EBX, $-0x310
        SETIN ESI, $2
        SETIN EDX, $0x12345678
        MEM $(TB-0x310), $0x44d65544, $0x44d65544
        SETEXP EDX, $0x1234d678
        RUN \cpl, "mov %gs:(%ebx,%esi,1) to dh"

        CASE \cpl, b_bh
        SETIN EDI, $-0x31d
        SETIN EBX, $0x0000b700
        MEM $(TB-0x320), $0x55555555, $0x555555b7
        RUN \cpl, "mov bh to %gs:-3(%edi)"

        CASE \cpl, b_di16
        SETIN ESI, $-0x32e
        SETIN EDI, $0xabcdef01
        MEM $(TB-0x330), $0x1f1e2d2c, $0x1f1e2d2c
        SETEXP EDI, $0xabcd1f1e
        RUN \cpl, "mov %gs:(%esi) to di (16-bit)"

        CASE \cpl, b_bp16
        SETIN ECX, $-0x33e
        SETIN EBP, $0x12348b8b
        MEM $(TB-0x340), $0x66666666, $0x66668b8b
        RUN \cpl, "mov bp to %gs:-2(%ecx) (16-bit)"
        .endm

# ===========================================================================
# C: instructions
        .macro SEC_C cpl
        CASE \cpl, c_movb_ld
        SETIN ECX, $0x11111111
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP ECX, $0x11111189
        RUN \cpl, "movb %gs:-1 to cl"

        CASE \cpl, c_movb_st
        SETIN EDX, $0xa5
        MEM $(TB-4), $0x11223344, $0x1122a544
        RUN \cpl, "movb dl to %gs:-3"

        CASE \cpl, c_movw_ld
        SETIN ESI, $0xffffffff
        MEM $(TB-4), $0x11223344, $0x11223344
        SETEXP ESI, $0xffff1122
        RUN \cpl, "movw %gs:-2 to si"

        CASE \cpl, c_movw_ld2
        SETIN ESI, $0xffffffff
        MEM $(TB-4), $0x11223344, $0x11223344
        SETEXP ESI, $0xffff1122
        RUN \cpl, "movw %gs:-2 to si (66h before 65h)"

        CASE \cpl, c_movw_st
        SETIN EDI, $0x1234beef
        MEM $(TB-8), $0xaaaaaaaa, $0xbeefaaaa
        RUN \cpl, "movw di to %gs:-6"

        CASE \cpl, c_movl_imm
        MEM $(TB-8), $0, $0x13579bdf
        RUN \cpl, "movl $0x13579bdf to %gs:-8"

        CASE \cpl, c_movb_imm
        MEM $(TB-4), $0x11223344, $0x5a223344
        RUN \cpl, "movb $0x5a to %gs:-1"

        CASE \cpl, c_movw_imm
        MEM $(TB-4), $0x11223344, $0x1122beef
        RUN \cpl, "movw $0xbeef to %gs:-4"

        CASE \cpl, c_movzb
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP ECX, $0x89
        RUN \cpl, "movzbl %gs:-1 to ecx"

        CASE \cpl, c_movsb
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP EDX, $0xffffff89
        RUN \cpl, "movsbl %gs:-1 to edx"

        CASE \cpl, c_movzw
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP EBX, $0x89ab
        RUN \cpl, "movzwl %gs:-2 to ebx"

        CASE \cpl, c_movsw
        MEM $(TB-4), $0x89abcdef, $0x89abcdef
        SETEXP EBP, $0xffffcdef
        RUN \cpl, "movswl %gs:-4 to ebp"

        CASE \cpl, c_add_ld
        SETIN ECX, $0x7fffffff
        SETEXP ECX, $0x80000000
        FLAGS 0, FLA, FL_OF|FL_SF|FL_AF|FL_PF
        MEM $(TB-4), $1, $1
        RUN \cpl, "add %gs:-4 to ecx (OF SF AF PF)"

        CASE \cpl, c_add_st
        SETIN ECX, $1
        FLAGS FLA&~FL_CF, FLA, FL_CF|FL_ZF|FL_AF|FL_PF
        MEM $(TB-4), $0xffffffff, $0
        RUN \cpl, "add ecx to %gs:-4 (CF ZF AF PF)"

        CASE \cpl, c_sub_imm
        FLAGS 0, FLA, FL_CF|FL_SF|FL_AF|FL_PF
        MEM $(TB-4), $0, $0xffffffff
        RUN \cpl, "sub $1 from %gs:-4 (CF SF AF PF)"

        CASE \cpl, c_adc
        SETIN EDX, $0x10
        SETEXP EDX, $0x20
        FLAGS FL_CF, FLA, FL_AF
        MEM $(TB-4), $0x0f, $0x0f
        RUN \cpl, "adc %gs:-4 to edx, CF=1"

        CASE \cpl, c_sbb
        SETIN EDX, $0
        FLAGS FL_CF, FLA, FL_OF|FL_AF|FL_PF
        MEM $(TB-4), $0x80000000, $0x7fffffff
        RUN \cpl, "sbb edx from %gs:-4, CF=1 (OF AF PF)"

        CASE \cpl, c_and
        SETIN ESI, $0xf0f0f0f0
        SETEXP ESI, $0x8000f000
        FLAGS FLA, FLA&~FL_AF, FL_SF|FL_PF
        MEM $(TB-4), $0x8f00ff0f, $0x8f00ff0f
        RUN \cpl, "and %gs:-4 to esi"

        CASE \cpl, c_or
        SETIN EDI, $0
        FLAGS FLA&~FL_ZF, FLA&~FL_AF, FL_ZF|FL_PF
        MEM $(TB-8), $0, $0
        RUN \cpl, "or edi to %gs:-8 (ZF)"

        CASE \cpl, c_xor_imm
        FLAGS FL_OF|FL_ZF|FL_CF, FLA&~FL_AF, FL_SF|FL_PF
        MEM $(TB-4), $0x0f0f0f0f, $0xf0f0f0f0
        RUN \cpl, "xor $-1 to %gs:-4"

        CASE \cpl, c_cmp_ld
        SETIN EAX, $5
        FLAGS FL_OF|FL_ZF, FLA, FL_CF|FL_SF|FL_AF|FL_PF
        MEM $(TB-4), $6, $6
        RUN \cpl, "cmp %gs:-4 with eax (5 - 6)"

        CASE \cpl, c_cmp_imm
        FLAGS FL_CF|FL_PF|FL_ZF|FL_SF, FLA, FL_OF|FL_AF
        MEM $(TB-4), $0x80000000, $0x80000000
        RUN \cpl, "cmp $0x7fffffff with %gs:-4 (0x80000000)"

        CASE \cpl, c_test
        SETIN ECX, $0x80000000
        FLAGS FL_OF|FL_ZF|FL_CF, FLA&~FL_AF, FL_SF|FL_PF
        MEM $(TB-4), $0x80000001, $0x80000001
        RUN \cpl, "test ecx with %gs:-4"

        CASE \cpl, c_addb
        SETIN EBX, $0x8000
        SETEXP EBX, $0
        FLAGS FL_AF|FL_SF, FLA, FL_CF|FL_OF|FL_ZF|FL_PF
        MEM $(TB-4), $0x80000000, $0x80000000
        RUN \cpl, "addb %gs:-1 to bh (0x80 + 0x80)"

        CASE \cpl, c_cmpb
        FLAGS FL_ZF|FL_AF, FLA, FL_CF|FL_OF|FL_SF|FL_PF
        MEM $(TB-4), $0x7f000000, $0x7f000000
        RUN \cpl, "cmpb $0x80 with %gs:-1 (0x7f)"

        CASE \cpl, c_addw
        SETIN ESI, $0x12348000
        SETEXP ESI, $0x12340000
        FLAGS 0, FLA, FL_CF|FL_OF|FL_ZF|FL_PF
        MEM $(TB-4), $0x80000000, $0x80000000
        RUN \cpl, "addw %gs:-2 to si"

        CASE \cpl, c_inc
        FLAGS FL_CF, FLA, FL_CF|FL_PF|FL_AF|FL_SF|FL_OF
        MEM $(TB-4), $0x7fffffff, $0x80000000
        RUN \cpl, "inc %gs:-4 (CF=1 kept)"

        CASE \cpl, c_dec
        FLAGS FLA&~FL_CF, FLA, FL_ZF|FL_PF
        MEM $(TB-4), $1, $0
        RUN \cpl, "dec %gs:-4 (CF=0 kept)"

        CASE \cpl, c_neg
        FLAGS FL_ZF|FL_AF, FLA, FL_CF|FL_PF|FL_SF|FL_OF
        MEM $(TB-4), $0x80000000, $0x80000000
        RUN \cpl, "neg %gs:-4 (0x80000000)"

        CASE \cpl, c_not
        MEM $(TB-4), $0x0f0f0f0f, $0xf0f0f0f0
        RUN \cpl, "not %gs:-4"

        CASE \cpl, c_xchg
        SETIN ECX, $0x11112222
        SETEXP ECX, $0x33334444
        MEM $(TB-4), $0x33334444, $0x11112222
        RUN \cpl, "xchg ecx with %gs:-4"

        CASE \cpl, c_cmpxchg
        SETIN EAX, $0x5555
        SETIN ECX, $0x7777
        FLAGS FL_OF|FL_SF|FL_CF, FLA, FL_ZF|FL_PF
        MEM $(TB-4), $0x5555, $0x7777
        RUN \cpl, "cmpxchg ecx with %gs:-4, equal: stored"

        CASE \cpl, c_cmpxchg
        SETIN EAX, $1
        SETIN ECX, $0x7777
        SETEXP EAX, $2
        FLAGS FL_OF|FL_ZF, FLA, FL_CF|FL_SF|FL_AF|FL_PF
        MEM $(TB-4), $2, $2
        RUN \cpl, "cmpxchg ecx with %gs:-4, different: eax loaded"

        CASE \cpl, c_lockadd
        FLAGS FL_CF, FLA, FL_OF|FL_SF|FL_AF|FL_PF
        MEM $(TB-4), $0x7fffffff, $0x80000000
        RUN \cpl, "lock add $1 to %gs:-4"

        CASE \cpl, c_push
        SETEXP ESP, $(S_ESP-4)
        MEM $(TB-4), $0x9a5b0004, $0x9a5b0004
        MEM $(S_ESP-4), $0, $0x9a5b0004
        RUN \cpl, "push %gs:-4"

        CASE \cpl, c_pushw
        SETEXP ESP, $(S_ESP-2)
        MEM $(TB-4), $0x9a5b0004, $0x9a5b0004
        MEM $(S_ESP-4), $0x11111111, $0x9a5b1111
        RUN \cpl, "pushw %gs:-2 (ESP-2)"

        CASE \cpl, c_pop
        SETEXP ESP, $(S_ESP+4)
        MEM $S_ESP, $0x909009a0, $0, $0
        MEM $(TB-4), $0, $0x909009a0
        RUN \cpl, "pop %gs:-4"

        CASE \cpl, c_call
        MEM $(TB-4), $ct_tgt, $ct_tgt
        SETEXP EDI, $c_call_ret
        SETEXP EBP, $(S_ESP-4)
        RUN \cpl, "call *%gs:-4 (target reached, return address pushed)"

        CASE \cpl, c_jmp
        MEM $(TB-8), $jt_tgt, $jt_tgt
        SETEXP EDI, $0x4a4d5021
        RUN \cpl, "jmp *%gs:-8"

        CASE \cpl, c_lea
        SETIN EAX, $0x100
        SETEXP ECX, $0xfc
        RUN \cpl, "lea %gs:-4(%eax) to ecx (65h ignored: eax-4)"

        CASE \cpl, c_lea_abs
        SETEXP EDX, $0xfffffffc
        RUN \cpl, "lea %gs:-4 to edx (65h ignored: 0xfffffffc)"

        CASE \cpl, c_lea_bis
        SETIN EBX, $0x1000
        SETIN ESI, $3
        SETEXP EDI, $0x1014
        RUN \cpl, "lea %gs:8(%ebx,%esi,4) to edi (65h ignored)"

        CASE \cpl, c_lodsl
        SETIN ESI, $-16
        SETEXP ESI, $-12
        SETEXP EAX, $0x10d50010
        FLAGS FLA, FLM, FLA
        MEM $(TB-16), $0x10d50010, $0x10d50010
        RUN \cpl, "lodsl %gs:(%esi), DF=0"

        CASE \cpl, c_lodsl
        SETIN ESI, $-16
        SETEXP ESI, $-20
        SETEXP EAX, $0x10d50010
        FLAGS FL_DF, FLM, FL_DF
        MEM $(TB-16), $0x10d50010, $0x10d50010
        RUN \cpl, "lodsl %gs:(%esi), DF=1"

        CASE \cpl, c_lodsb
        SETIN ESI, $-13
        SETIN EAX, $0xffffffff
        SETEXP ESI, $-12
        SETEXP EAX, $0xffffff10
        FLAGS 0, FLM, 0
        MEM $(TB-16), $0x10d50010, $0x10d50010
        RUN \cpl, "lodsb %gs:(%esi), esi=-13"

        CASE \cpl, c_movsl
        SETIN ESI, $-16
        SETIN EDI, $(TB+0x100)
        SETEXP ESI, $-12
        SETEXP EDI, $(TB+0x104)
        FLAGS 0, FLM, 0
        MEM $(TB-16), $0x4d500010, $0x4d500010
        MEM $(TB+0x100), $0, $0x4d500010
        MEM $(TB+0x104), $0x12121212, $0x12121212
        RUN \cpl, "movsl %gs:(%esi) to %es:(%edi)"

        CASE \cpl, c_repmovsb
        SETIN ECX, $7
        SETIN ESI, $-16
        SETIN EDI, $(TB+0x200)
        SETEXP ECX, $0
        SETEXP ESI, $-9
        SETEXP EDI, $(TB+0x207)
        FLAGS FL_ZF, FLM, FL_ZF
        MEM $(TB-16), $0x44332211, $0x44332211
        MEM $(TB-12), $0x88776655, $0x88776655
        MEM $(TB+0x200), $0xeeeeeeee, $0x44332211
        MEM $(TB+0x204), $0xeeeeeeee, $0xee776655
        RUN \cpl, "rep movsb %gs:(%esi) to %es:(%edi), ecx=7"

        CASE \cpl, c_repmovsl
        SETIN ECX, $3
        SETIN ESI, $-8
        SETIN EDI, $(TB+0x308)
        SETEXP ECX, $0
        SETEXP ESI, $-20
        SETEXP EDI, $(TB+0x2fc)
        FLAGS FL_DF, FLM, FL_DF
        MEM $(TB-16), $0x70000010, $0x70000010
        MEM $(TB-12), $0x7000000c, $0x7000000c
        MEM $(TB-8), $0x70000008, $0x70000008
        MEM $(TB+0x2fc), $0xeeeeeeee, $0xeeeeeeee
        MEM $(TB+0x300), $0, $0x70000010
        MEM $(TB+0x304), $0, $0x7000000c
        MEM $(TB+0x308), $0, $0x70000008
        RUN \cpl, "rep movsl %gs:(%esi) to %es:(%edi), DF=1, ecx=3"

        CASE \cpl, c_mvesp
        MEM $(TB-4), $S_ESP2, $S_ESP2
        SETEXP ESP, $S_ESP2
        RUN \cpl, "mov %gs:-4 to esp"

        CASE \cpl, c_addesp
        SETEXP ESP, $(S_ESP-16)
        FLAGS FLA&~FL_CF, FLA, FL_CF|FL_PF
        MEM $(TB-4), $-16, $-16
        RUN \cpl, "add %gs:-4 (-16) to esp"

        CASE \cpl, c_xchgesp
        MEM $(TB-4), $S_ESP2, $S_ESP
        SETEXP ESP, $S_ESP2
        RUN \cpl, "xchg esp with %gs:-4"

        CASE \cpl, c_bound
        SETIN EAX, $7
        MEM $(TB-8), $-5, $-5
        MEM $(TB-4), $100, $100
        RUN \cpl, "bound eax=7 in %gs:-8 [-5, 100] (no #BR)"
        .endm

# ===========================================================================
# X: the remaining instructions (shifts/rotates, XADD, CMPXCHG8B, MUL/IMUL/
# DIV/IDIV and #DE, BT*, SETcc, CMOVcc, x87, SSE2, then XLAT and CMPS), run
# after everything else (see the header)
        .macro SEC_X cpl
        CASE \cpl, c_shl_cl
        SETIN ECX, $4
        FLAGS FL_ZF|FL_SF, FL_CF|FL_PF|FL_ZF|FL_SF, FL_CF|FL_PF
        MEM $(TB-4), $0x1234567f, $0x234567f0
        RUN \cpl, "shl %cl=4 of %gs:-4"

        CASE \cpl, c_sar_imm
        FLAGS FL_CF|FL_ZF|FL_PF, FL_CF|FL_PF|FL_ZF|FL_SF, FL_SF
        MEM $(TB-4), $0x80000008, $0xf0000001
        RUN \cpl, "sar $3 of %gs:-4"

        CASE \cpl, c_shl1
        FLAGS FL_CF|FL_ZF, FL_CF|FL_PF|FL_ZF|FL_SF|FL_OF, FL_OF|FL_SF|FL_PF
        MEM $(TB-4), $0x40000000, $0x80000000
        RUN \cpl, "shl $1 of %gs:-4 (D1 /4)"

        CASE \cpl, c_rol
        FLAGS FLA, FL_CF|FL_PF|FL_AF|FL_ZF|FL_SF, FL_PF|FL_AF|FL_ZF|FL_SF
        MEM $(TB-4), $0x12345681, $0x34568112
        RUN \cpl, "rol $8 of %gs:-4 (SF ZF AF PF kept)"

        CASE \cpl, c_xadd
        SETIN EDX, $5
        SETEXP EDX, $0xfffffffe
        FLAGS FL_OF|FL_SF|FL_ZF, FLA, FL_CF|FL_PF|FL_AF
        MEM $(TB-4), $0xfffffffe, $3
        RUN \cpl, "lock xadd edx with %gs:-4"

        CASE \cpl, c_xadd2
        SETIN EDX, $5
        SETEXP EDX, $0xfffffffe
        FLAGS FL_OF|FL_SF|FL_ZF, FLA, FL_CF|FL_PF|FL_AF
        MEM $(TB-4), $0xfffffffe, $3
        RUN \cpl, "xadd edx with %gs:-4 (F0h before 65h)"

        CASE \cpl, c_c8b
        SETIN ESI, $-8
        SETIN EDX, $0x11112222
        SETIN EAX, $0x33334444
        SETIN ECX, $0xaaaabbbb
        SETIN EBX, $0xccccdddd
        FLAGS FLA&~FL_ZF, FLA, FLA
        MEM $(TB-8), $0x33334444, $0xccccdddd
        MEM $(TB-4), $0x11112222, $0xaaaabbbb
        RUN \cpl, "cmpxchg8b %gs:(%esi), equal: stored, ZF=1"

        CASE \cpl, c_c8b
        SETIN ESI, $-8
        SETIN EDX, $0x11112222
        SETIN EAX, $0x33334444
        SETIN ECX, $0xaaaabbbb
        SETIN EBX, $0xccccdddd
        SETEXP EDX, $5
        SETEXP EAX, $6
        FLAGS FLA, FLA, FLA&~FL_ZF
        MEM $(TB-8), $6, $6
        MEM $(TB-4), $5, $5
        RUN \cpl, "cmpxchg8b %gs:(%esi), different: edx:eax loaded, ZF=0"

        CASE \cpl, c_c8b_dibp
        SETIN EDI, $-0x10
        SETIN EBP, $8
        SETIN EDX, $0x11112222
        SETIN EAX, $0x33334444
        SETIN ECX, $0xaaaabbbb
        SETIN EBX, $0xccccdddd
        SETEXP EDX, $0x1234
        SETEXP EAX, $0x5678
        FLAGS FLA, FLA, FLA&~FL_ZF
        MEM $(TB-8), $0x5678, $0x5678
        MEM $(TB-4), $0x1234, $0x1234
        RUN \cpl, "cmpxchg8b %gs:(%edi,%ebp,1), different (only esi unused)"

        CASE \cpl, c_c8b_sidi
        SETIN ESI, $-0x20
        SETIN EDI, $0xc
        SETIN EDX, $0x11112222
        SETIN EAX, $0x33334444
        SETIN ECX, $0xaaaabbbb
        SETIN EBX, $0xccccdddd
        FLAGS 0, FLA, FL_ZF
        MEM $(TB-8), $0x33334444, $0xccccdddd
        MEM $(TB-4), $0x11112222, $0xaaaabbbb
        RUN \cpl, "lock cmpxchg8b %gs:(%esi,%edi,2), equal (only ebp unused)"

        CASE \cpl, c_c8b_abs
        SETIN EDX, $0x11112222
        SETIN EAX, $0x33334444
        SETIN ECX, $0xaaaabbbb
        SETIN EBX, $0xccccdddd
        FLAGS 0, FLA, FL_ZF
        MEM $(TB-8), $0x33334444, $0xccccdddd
        MEM $(TB-4), $0x11112222, $0xaaaabbbb
        RUN \cpl, "cmpxchg8b %gs:-8, equal"

        CASE \cpl, c_mul
        SETIN EAX, $0x10000
        SETEXP EAX, $0x10000
        SETEXP EDX, $1
        FLAGS 0, FL_CF|FL_OF, FL_CF|FL_OF
        MEM $(TB-4), $0x10001, $0x10001
        RUN \cpl, "mul %gs:-4 (edx:eax = 0x1:00010000)"

        CASE \cpl, c_imul2
        SETIN ECX, $-3
        SETEXP ECX, $-21
        FLAGS FL_CF|FL_OF, FL_CF|FL_OF, 0
        MEM $(TB-4), $7, $7
        RUN \cpl, "imul %gs:-4 to ecx (-3 * 7)"

        CASE \cpl, c_imul3
        SETIN EBX, $0x12345678
        SETEXP EBX, $0x7ffffffe
        FLAGS 0, FL_CF|FL_OF, FL_CF|FL_OF
        MEM $(TB-4), $0x40000001, $0x40000001
        RUN \cpl, "imul $-2, %gs:-4 to ebx (overflow)"

        CASE \cpl, c_imul1
        SETIN EAX, $-1
        SETEXP EAX, $1
        SETEXP EDX, $0
        FLAGS FL_CF|FL_OF, FL_CF|FL_OF, 0
        MEM $(TB-4), $-1, $-1
        RUN \cpl, "imul %gs:-4 (edx:eax = -1 * -1)"

        CASE \cpl, c_div
        SETIN EDX, $1
        SETIN EAX, $5
        SETEXP EAX, $0x10000000
        SETEXP EDX, $5
        FLAGS 0, 0, 0
        MEM $(TB-4), $0x10, $0x10
        RUN \cpl, "div %gs:-4 (0x100000005 / 0x10)"

        CASE \cpl, c_idiv
        SETIN EDX, $-1
        SETIN EAX, $-100
        SETEXP EAX, $-14
        SETEXP EDX, $-2
        FLAGS 0, 0, 0
        MEM $(TB-4), $7, $7
        RUN \cpl, "idiv %gs:-4 (-100 / 7)"

        CASE \cpl, c_bt
        SETIN ECX, $100
        FLAGS FL_ZF, FL_CF|FL_ZF, FL_CF|FL_ZF
        MEM $(TB-4), $0x10, $0x10
        MEM $(TB-16), $0, $0
        RUN \cpl, "bt ecx=100 in %gs:-16 (bit 4 of gs:-4 set)"

        CASE \cpl, c_bt
        SETIN ECX, $100
        FLAGS FL_CF, FL_CF|FL_ZF, 0
        MEM $(TB-4), $0xffffffef, $0xffffffef
        MEM $(TB-16), $0xffffffff, $0xffffffff
        RUN \cpl, "bt ecx=100 in %gs:-16 (bit 4 of gs:-4 clear)"

        CASE \cpl, c_bts
        SETIN ECX, $-1
        FLAGS FL_CF|FL_ZF, FL_CF|FL_ZF, FL_ZF
        MEM $(TB-20), $1, $0x80000001
        MEM $(TB-16), $0, $0
        RUN \cpl, "bts ecx=-1 in %gs:-16 (bit 31 of gs:-20)"

        CASE \cpl, c_btr
        SETIN EAX, $37
        SETIN EBX, $-12
        FLAGS 0, FL_CF|FL_ZF, FL_CF
        MEM $(TB-8), $0xffffffff, $0xffffffdf
        MEM $(TB-12), $0xffffffff, $0xffffffff
        RUN \cpl, "btr eax=37 in %gs:(%ebx), ebx=-12 (bit 5 of gs:-8)"

        CASE \cpl, c_btc_imm
        FLAGS FL_ZF|FL_CF, FL_CF|FL_ZF, FL_ZF
        MEM $(TB-4), $0, $8
        MEM $TB, $0, $0
        RUN \cpl, "btc $35 in %gs:-4 (immediate taken mod 32: bit 3)"

        CASE \cpl, c_setc
        FLAGS FLA, FLM, FLA
        MEM $(TB-4), $0xffeeddcc, $0x01eeddcc
        RUN \cpl, "setc %gs:-1 (CF=1)"

        CASE \cpl, c_setz
        FLAGS FLA&~FL_ZF, FLM, FLA&~FL_ZF
        MEM $(TB-4), $0xffeeddcc, $0xff00ddcc
        RUN \cpl, "setz %gs:-2 (ZF=0)"

        CASE \cpl, c_cmovz
        SETIN ECX, $0x11111111
        SETEXP ECX, $0xc0c0c0c0
        FLAGS FL_ZF, FLM, FL_ZF
        MEM $(TB-4), $0xc0c0c0c0, $0xc0c0c0c0
        RUN \cpl, "cmovz %gs:-4 to ecx, ZF=1: moved"

        CASE \cpl, c_cmovz
        SETIN ECX, $0x11111111
        FLAGS FLA&~FL_ZF, FLM, FLA&~FL_ZF
        MEM $(TB-4), $0xc0c0c0c0, $0xc0c0c0c0
        RUN \cpl, "cmovz %gs:-4 to ecx, ZF=0: not moved"

        CASE \cpl, c_x87
        MEM $(TB-16), $0x54442d18, $0x54442d18
        MEM $(TB-12), $0x400921fb, $0x400921fb
        MEM $(TB-24), $0, $0x54442d18
        MEM $(TB-20), $0, $0x400921fb
        RUN \cpl, "fldl %gs:-16; fstpl %gs:-24 (pi)"

        CASE \cpl, c_x87i
        MEM $(TB-4), $-123456789, $-123456789
        MEM $(TB-8), $0, $-123456789
        RUN \cpl, "fildl %gs:-4; fistpl %gs:-8"

        cmpl $0, has_sse2
        jne .Lsse\@
        SKIP "cpl\cpl: movdqu %gs:-32 to xmm0, xmm0 to %gs:-48 (no SSE2)"
        SKIP "cpl\cpl: movdqu (no SSE2)"
        SKIP "cpl\cpl: movdqu (no SSE2)"
        SKIP "cpl\cpl: movdqu (no SSE2)"
        SKIP "cpl\cpl: movd %gs:-4 to xmm1, xmm1 to ecx (no SSE2)"
        SKIP "cpl\cpl: movd (no SSE2)"
        SKIP "cpl\cpl: movd (no SSE2)"
        SKIP "cpl\cpl: movd (no SSE2)"
        jmp .Lnosse\@
.Lsse\@:
        CASE \cpl, c_sse
        MEM $(TB-32), $0x03020100, $0x03020100
        MEM $(TB-28), $0x07060504, $0x07060504
        MEM $(TB-24), $0x0b0a0908, $0x0b0a0908
        MEM $(TB-20), $0x0f0e0d0c, $0x0f0e0d0c
        MEM $(TB-48), $0, $0x03020100
        MEM $(TB-44), $0, $0x07060504
        MEM $(TB-40), $0, $0x0b0a0908
        MEM $(TB-36), $0, $0x0f0e0d0c
        RUN \cpl, "movdqu %gs:-32 to xmm0, xmm0 to %gs:-48"

        CASE \cpl, c_ssed
        MEM $(TB-4), $0x5eed0004, $0x5eed0004
        SETEXP ECX, $0x5eed0004
        RUN \cpl, "movd %gs:-4 to xmm1, xmm1 to ecx"
.Lnosse\@:

        SEC_DE \cpl
        G_SITE \cpl, GS_C8B, "cmpxchg8b %gs:(%esi), esi=-8", 1, 1, TB-8
        CASE \cpl, a_xlat
        SETIN EBX, $-16
        SETIN EAX, $0x12345603
        MEM $(TB-16), $0x44332211, $0x44332211
        SETEXP EAX, $0x12345644
        RUN \cpl, "xlat %gs:(%ebx), ebx=-16 al=3"
        CASE \cpl, c_cmpsb
        SETIN ESI, $-1
        SETIN EDI, $(TB+0x400)
        SETEXP ESI, $0
        SETEXP EDI, $(TB+0x401)
        FLAGS FL_ZF|FL_AF, FLM, FL_CF|FL_OF|FL_SF|FL_PF
        MEM $(TB-4), $0x7f000000, $0x7f000000
        MEM $(TB+0x400), $0x80, $0x80
        RUN \cpl, "cmpsb %gs:(%esi) with %es:(%edi) (0x7f - 0x80)"

        .endm

# ===========================================================================
# D: 16-bit address size; GS = T (base TB) or U (base TB16 = TB - 0x10000)
        .macro SEC_D cpl
        CASE \cpl, d_bxsi
        SETIN EBX, $0x1234fff0
        SETIN ESI, $0x56780018
        MEM $(TB+8), $0x16b50008, $0x16b50008
        SETEXP EAX, $0x16b50008
        RUN \cpl, "addr16 mov %gs:(%bx,%si) to eax, bx+si wraps to 8"

        CASE \cpl, d_bp, U
        SETIN EBP, $0xabcd0000
        MEM $(TB-4), $0x16bb0004, $0x16bb0004
        SETEXP ECX, $0x16bb0004
        RUN \cpl, "addr16 mov %gs:-4(%bp) to ecx, offset 0xfffc (base TB-0x10000)"

        CASE \cpl, d_dist
        SETIN EDI, $0x9999fff8
        SETIN EDX, $0x57160008
        MEM $(TB+8), $0, $0x57160008
        RUN \cpl, "addr16 mov edx to %gs:0x10(%di), di+0x10 wraps to 8"

        CASE \cpl, d_disp16, U
        MEM $(TB-4), $0x16bb0004, $0x16bb0004
        SETEXP EBX, $0x16bb0004
        RUN \cpl, "addr16 mov %gs:0xfffc (disp16) to ebx (base TB-0x10000)"

        CASE \cpl, d_bxdi
        SETIN EBX, $0x8000
        SETIN EDI, $0x20
        SETIN ECX, $0xcccccccc
        MEM $(TB+0x10), $0x16b50010, $0x16b50010
        SETEXP ECX, $0xcccc0010
        RUN \cpl, "addr16 movw %gs:0x7ff0(%bx,%di) to cx (wraps to 0x10)"

        CASE \cpl, d_lea
        SETIN EBX, $0x1000
        SETIN ESI, $0x10
        SETEXP EAX, $0x100c
        RUN \cpl, "addr16 lea %gs:-4(%bx,%si) to eax"
        .endm

# ===========================================================================
# E: GS base changes.  Site e_mix loads gs:-4, gs:0x14, gs:0x1000 into EAX,
# ECX, EDX.  Base 1 = TB, base 2 = E_B2 = TB - 0x800.
        .macro E_CASE cpl, site=e_mix
        CASE \cpl, \site
        MEM $(TB-4), $0xe1e1fffc, $0xe1e1fffc
        MEM $(TB+0x14), $0xe1e10014, $0xe1e10014
        MEM $(TB+0x1000), $0xe1e11000, $0xe1e11000
        MEM $(E_B2-4), $0xe2e2fffc, $0xe2e2fffc
        MEM $(E_B2+0x14), $0xe2e20014, $0xe2e20014
        MEM $(E_B2+0x1000), $0xe2e21000, $0xe2e21000
        .endm

        .macro SEC_E cpl
        SEGDESC T, \cpl, $TB
        SEGDESC U, \cpl, $E_B2
        E_CASE \cpl
        pushl $0
        call e_expect
        RUN \cpl, "E1 gs:-4, gs:0x14, gs:0x1000, base 1"

        # rewritten (same CPL) without reload, then reloaded (same CPL)
        E_CASE \cpl
        SEGDESC T, \cpl, $TB
        movl $T_\cpl, e_sel
        TRY .Le2\@
        AT_CPL \cpl
        movl %ss:e_sel, %eax
        movw %ax, %gs
        pushl $0
        call e_expect
        call d_run
        pushl $0
        call e_save
        SEGDESC T, \cpl, $E_B2
        call d_run
        pushl $1
        call e_save
        movl %ss:e_sel, %eax
        movw %ax, %gs
        pushl $1
        call e_expect
        call d_run
        END_CPL \cpl
        ENDTRY
.Le2\@:
        call rf_reset_segs
        pushl $0
        call e_restore
        RESULTS \cpl, "E2 base 1, warm"
        pushl $1
        call e_restore
        RESULTS \cpl, "E2 descriptor rewritten to base 2 at cpl\cpl, GS not reloaded: still base 1"
        RESULTS \cpl, "E2 GS reloaded at cpl\cpl: base 2"

        # rewritten at CPL0, reloaded by the run at its CPL
        SEGDESC T, \cpl, $TB
        E_CASE \cpl
        pushl $0
        call e_expect
        RUN \cpl, "E3 rewritten to base 1 at cpl0, GS reloaded at cpl\cpl"
        SEGDESC T, \cpl, $E_B2
        E_CASE \cpl
        pushl $1
        call e_expect
        RUN \cpl, "E3 rewritten to base 2 at cpl0, GS reloaded at cpl\cpl"

        .if \cpl == 3
        # GS loaded at CPL0 and kept across the IRET to CPL3
        SEGDESC T, 3, $TB
        E_CASE 3
        pushl $0
        call e_expect
        E_KEEPGS "E3k base 1: GS loaded at cpl0, IRET to cpl3 keeps it"
        SEGDESC T, 3, $E_B2
        E_CASE 3
        pushl $1
        call e_expect
        E_KEEPGS "E3k rewritten to base 2 and GS loaded at cpl0, IRET to cpl3"
        SEGDESC T, 3, $TB
        E_CASE 3
        pushl $0
        call e_expect
        E_KEEPGS "E3k back to base 1 (GS loaded at cpl0, IRET to cpl3)"
        .endif

        # two selectors alternating every run
        SEGDESC T, \cpl, $TB
        E_CASE \cpl
        movl $T_\cpl, e_sels
        movl $U_\cpl, e_sels+4
        movl $e_alt_hook, d_pre
        RUN \cpl, "E4 GS alternates between two selectors (bases 1/2) every run"

        # one selector rewritten and reloaded every run
        SEGDESC T, \cpl, $TB
        movl rf_gdt + (T_\cpl & ~7), %eax
        movl %eax, e_img
        movl rf_gdt + (T_\cpl & ~7) + 4, %eax
        movl %eax, e_img + 4
        SEGDESC T, \cpl, $E_B2
        movl rf_gdt + (T_\cpl & ~7), %eax
        movl %eax, e_img + 8
        movl rf_gdt + (T_\cpl & ~7) + 4, %eax
        movl %eax, e_img + 12
        movl $(T_\cpl & ~7), e_slot
        movl $T_\cpl, e_sel
        E_CASE \cpl
        movl $e_rw_hook, d_pre
        RUN \cpl, "E5 same selector, descriptor rewritten (base 1/2) and GS reloaded every run"

        # GS reloaded inside the site, right before the accesses
        SEGDESC T, \cpl, $TB
        E_CASE \cpl, e_inblk
        movl $T_\cpl, e_sels
        movl $U_\cpl, e_sels+4
        movl $e_inblk_hook, d_pre
        RUN \cpl, "E6 mov bx to gs inside the site, then gs:-4/0x14/0x1000 (bases 1/2 alternating)"
        SEGDESC T, \cpl, $TB
        .endm

# E_KEEPGS "desc": GS = T_3 loaded at CPL0, IRET to CPL3 keeping it, d_run
        .macro E_KEEPGS desc
        TRY .Lek\@
        movw $T_3, %ax
        movw %ax, %gs
        pushl $0x202
        call u_enter_keepgs
        call d_run
        USER_END
        ENDTRY
.Lek\@:
        call rf_reset_segs
        RESULTS 3, "\desc"
        .endm

# ===========================================================================
# F: non-flat segments.  U = flat, base TBX = TB - 0x1000; X = variants.
        .macro F_LIMIT cpl
        SEGDESC X, \cpl, $TBX, $0xfff, 0x93, $0x4
        .endm

        .macro SEC_F cpl
        SEGDESC T, \cpl, $TB
        SEGDESC U, \cpl, $TBX
        F_LIMIT \cpl
        CASE \cpl, f_in, U
        MEM $(TB-4), $0xf1f1fffc, $0xf1f1fffc
        SETEXP EAX, $0xf1f1fffc
        RUN \cpl, "F1 mov %gs:0xffc to eax, flat GS (base B-0x1000)"
        CASE \cpl, f_in, X
        MEM $(TB-4), $0xf1f1fffc, $0xf1f1fffc
        SETEXP EAX, $0xf1f1fffc
        RUN \cpl, "F1 same site, GS limit 0xfff (byte granular): 0xffc..0xfff within"

        CASE \cpl, f_edge, U
        MEM $(TB-4), $0xf1f1fffc, $0xf1f1fffc
        MEM $TB, $0xf2f2f200, $0xf2f2f200
        SETEXP EAX, $0x00f1f1ff
        RUN \cpl, "F2 mov %gs:0xffd to eax, flat GS"
        CASE \cpl, f_edge, X
        MEM $(TB-4), $0xf1f1fffc, $0xf1f1fffc
        MEM $TB, $0xf2f2f200, $0xf2f2f200
        FRUN \cpl
        FCHECK_TOL \cpl, "F2 same warm site, GS limit 0xfff: dword at 0xffd crosses the limit"

        CASE \cpl, f_neg, U
        MEM $(TB-0x1004), $0xf3f3f3f3, $0xf3f3f3f3
        SETEXP ECX, $0xf3f3f3f3
        RUN \cpl, "F3 mov %gs:-4 to ecx, flat GS"
        CASE \cpl, f_neg, X
        MEM $(TB-0x1004), $0xf3f3f3f3, $0xf3f3f3f3
        FRUN \cpl
        FCHECK_TOL \cpl, "F3 same warm site, GS limit 0xfff: offset 0xfffffffc beyond it"

        CASE \cpl, f_st, U
        SETIN EDX, $0xf4f4f4f4
        MEM $TB, $0, $0xf4f4f4f4
        RUN \cpl, "F4 mov edx to %gs:0x1000, flat GS"
        CASE \cpl, f_st, X
        SETIN EDX, $0xf4f4f4f4
        MEM $TB, $0, $0
        FRUN \cpl
        FCHECK_TOL \cpl, "F4 same warm site, GS limit 0xfff: store at 0x1000"

        CASE \cpl, f_rmw, U
        FLAGS 0, FLA, FL_PF
        MEM $TB, $5, $6
        RUN \cpl, "F5 add $1 to %gs:0x1000, flat GS"
        CASE \cpl, f_rmw, X
        FLAGS 0, FLA, FL_PF
        MEM $TB, $5, $5
        FRUN \cpl
        FCHECK_TOL \cpl, "F5 same warm site, GS limit 0xfff: add $1 to 0x1000"

        # read-only 4 GiB GS, base TB
        SEGDESC X, \cpl, $TB, $0xfffff, 0x91, $0xc
        CASE \cpl, f_ro_ld
        MEM $(TB-4), $0xf6f6fffc, $0xf6f6fffc
        SETEXP EAX, $0xf6f6fffc
        RUN \cpl, "F6 mov %gs:-4 to eax, writable GS"
        CASE \cpl, f_ro_ld, X
        MEM $(TB-4), $0xf6f6fffc, $0xf6f6fffc
        SETEXP EAX, $0xf6f6fffc
        RUN \cpl, "F6 same site, read-only 4 GiB GS: the load uses its base"

        CASE \cpl, f_ro_st
        SETIN ECX, $0xf7f7f7f7
        MEM $(TB-4), $0, $0xf7f7f7f7
        RUN \cpl, "F7 mov ecx to %gs:-4, writable GS"
        CASE \cpl, f_ro_st, X
        SETIN ECX, $0xf7f7f7f7
        MEM $(TB-4), $0, $0
        FRUN \cpl
        FCHECK_TOL \cpl, "F7 same warm site, read-only 4 GiB GS: store"

        # expand-down GS, B=1, limit 0xffff: offsets 0x10000..0xffffffff
        SEGDESC X, \cpl, $TB, $0xffff, 0x97, $0x4
        CASE \cpl, f_ed_ld
        MEM $(TB-4), $0xf8f8fffc, $0xf8f8fffc
        SETEXP EAX, $0xf8f8fffc
        RUN \cpl, "F8 mov %gs:-4 to eax, expand-up GS"
        CASE \cpl, f_ed_ld, X
        MEM $(TB-4), $0xf8f8fffc, $0xf8f8fffc
        SETEXP EAX, $0xf8f8fffc
        RUN \cpl, "F8 same site, expand-down GS (limit 0xffff): offset -4 valid"

        CASE \cpl, f_ed_st
        SETIN ECX, $0xf9f9f9f9
        MEM $(TB-8), $0, $0xf9f9f9f9
        RUN \cpl, "F9 mov ecx to %gs:-8, expand-up GS"
        CASE \cpl, f_ed_st, X
        SETIN ECX, $0xf9f9f9f9
        MEM $(TB-8), $0, $0xf9f9f9f9
        RUN \cpl, "F9 same site, expand-down GS: store to offset -8"

        CASE \cpl, f_ed_lo
        MEM $(TB+0x14), $0xfafa0014, $0xfafa0014
        SETEXP EAX, $0xfafa0014
        RUN \cpl, "F10 mov %gs:0x14 to eax, expand-up GS"
        CASE \cpl, f_ed_lo, X
        MEM $(TB+0x14), $0xfafa0014, $0xfafa0014
        FRUN \cpl
        FCHECK_TOL \cpl, "F10 same warm site, expand-down GS (limit 0xffff): offset 0x14"

        # DS not flat, GS flat (T, base TB)
        SEGDESC D, \cpl, $0x1000
        CASE \cpl, f_ds
        SETIN EBX, $(TB+0x100)
        SETIN EDX, $0xfbfbfbfb
        MEM $(TB-4), $0xfb00fffc, $0xfb00fffc
        MEM $(TB+0x100), $0xfb000100, $0xfb000100
        MEM $(TB+0x104), $0, $0xfbfbfbfb
        SETEXP EAX, $0xfb00fffc
        SETEXP ECX, $0xfb000100
        RUN \cpl, "F11 gs:-4 load, (%ebx) load and 4(%ebx) store, flat DS"
        CASE \cpl, f_ds
        movl $D_\cpl, d_ds
        SETIN EBX, $(TB+0x100)
        SETIN EDX, $0xfbfbfbfb
        MEM $(TB-4), $0xfb00fffc, $0xfb00fffc
        MEM $(TB+0x1100), $0xfb001100, $0xfb001100
        MEM $(TB+0x1104), $0, $0xfbfbfbfb
        MEM $(TB+0x100), $0xfb000100, $0xfb000100
        SETEXP EAX, $0xfb00fffc
        SETEXP ECX, $0xfb001100
        RUN \cpl, "F11 same site, DS base 0x1000: gs:-4 uses the GS base only"

        CASE \cpl, f_ds2
        SETIN EDX, $0xfcfcfcfc
        MEM $(TB-4), $0xfc00fffc, $0xfc00fffc
        MEM $(TB-8), $0, $0xfcfcfcfc
        SETEXP EAX, $0xfc00fffc
        RUN \cpl, "F12 gs:-4 load, gs:-8 store, flat DS"
        SEGDESC D, \cpl, $0, $0xfffff, 0x93, $0x4
        CASE \cpl, f_ds2
        movl $D_\cpl, d_ds
        SETIN EDX, $0xfcfcfcfc
        MEM $(TB-4), $0xfc00fffc, $0xfc00fffc
        MEM $(TB-8), $0, $0xfcfcfcfc
        SETEXP EAX, $0xfc00fffc
        RUN \cpl, "F12 same site, DS limit 0xfffff (1 MiB, below TB): gs: unaffected"
        CASE \cpl, f_ds2
        movl $\cpl, d_ds
        SETIN EDX, $0xfcfcfcfc
        MEM $(TB-4), $0xfc00fffc, $0xfc00fffc
        MEM $(TB-8), $0, $0xfcfcfcfc
        SETEXP EAX, $0xfc00fffc
        RUN \cpl, "F13 same site, null DS: gs: unaffected"

        # null GS at a warm site
        CASE \cpl, f_null
        MEM $(TB-4), $0xfdfdfffc, $0xfdfdfffc
        SETEXP EAX, $0xfdfdfffc
        RUN \cpl, "F14 mov %gs:-4 to eax, TLS GS"
        CASE \cpl, f_null
        movl $\cpl, d_gs
        MEM $(TB-4), $0xfdfdfffc, $0xfdfdfffc
        FRUN \cpl
        FCHECK_TOL \cpl, "F14 same warm site, GS = null selector"
        .endm

# ===========================================================================
# X (part): #DE from DIV/IDIV with a gs: operand at warm sites
        .macro SEC_DE cpl
        CASE \cpl, g_div
        SETIN EDX, $1
        SETIN EAX, $5
        SETEXP EAX, $0x10000000
        SETEXP EDX, $5
        FLAGS 0, 0, 0
        MEM $(TB-4), $0x10, $0x10
        RUN \cpl, "X div %gs:-4, divisor 0x10"
        CASE \cpl, g_div
        SETIN EDX, $1
        SETIN EAX, $5
        FLAGS FLA, 0, 0
        MEM $(TB-4), $0, $0
        FRUN \cpl
        FCHECK \cpl, V_DE, 0, "X same warm site, divisor 0: #DE"

        CASE \cpl, g_idiv
        SETIN EDX, $-1
        SETIN EAX, $-100
        SETEXP EAX, $-14
        SETEXP EDX, $-2
        FLAGS 0, 0, 0
        MEM $(TB-4), $7, $7
        RUN \cpl, "X idiv %gs:-4 (-100 / 7)"
        CASE \cpl, g_idiv
        SETIN EDX, $-1
        SETIN EAX, $0x80000000
        FLAGS FLA, 0, 0
        MEM $(TB-4), $-1, $-1
        FRUN \cpl
        FCHECK \cpl, V_DE, 0, "X same warm site, 0x80000000 / -1: #DE"
        .endm

# ===========================================================================
# G: paging faults.  GPF site, pte, err, errmask, cr2, "desc": the warm site
# (already run 1000 times, its case set up) with the page of TB-4 = pte:
# one run, #PF(err) at the site's instruction, CR2, registers, memory.
        .macro GPF cpl, pte, err, cr2, desc, errmask=0xffff
        call mem_init
        TLSPTE \pte
        FRUN \cpl, 1
        TLSPTE URW
        FCHECK \cpl, V_PF, \err, "\desc: #PF", \errmask
        CHECK_EQ pg_cr2, $(\cr2), "cpl\cpl: \desc: CR2"
        .endm

# G_SITE cpl, setup-macro, "name", write(0/1), rmw(0/1), cr2: the site warm,
# then not present, read-only (writes only), supervisor (CPL3), warm again
        .macro G_SITE cpl, setup, name, write, rmw, cr2=TB-4
        .set gs_u, 0
        .if \cpl == 3
        .set gs_u, PF_U
        .endif
        .set gs_w, 0
        .if \write
        .set gs_w, PF_W
        .endif
        \setup \cpl
        RUN \cpl, "G \name, page present"
        \setup \cpl
        .if \rmw
        GPF \cpl, PG_RW|PG_US, gs_u, \cr2, "G \name, warm, page not present", 0xffff&~PF_W
        .else
        GPF \cpl, PG_RW|PG_US, gs_u|gs_w, \cr2, "G \name, warm, page not present"
        .endif
        .if \write
        \setup \cpl
        GPF \cpl, PG_P|PG_US, PF_P|PF_W|gs_u, \cr2, "G \name, warm, page read-only"
        .endif
        .if \cpl == 3
        \setup \cpl
        .if \rmw
        GPF \cpl, PG_P|PG_RW, PF_P|PF_U, \cr2, "G \name, warm, supervisor page", 0xffff&~PF_W
        .else
        GPF \cpl, PG_P|PG_RW, PF_P|gs_w|PF_U, \cr2, "G \name, warm, supervisor page"
        .endif
        .endif
        \setup \cpl
        RUN \cpl, "G \name, page present again"
        .endm

        .macro GS_LD cpl
        CASE \cpl, g_ld
        MEM $(TB-4), $0x6a6afffc, $0x6a6afffc
        SETEXP EAX, $0x6a6afffc
        .endm
        .macro GS_ST cpl
        CASE \cpl, g_st
        SETIN ECX, $0x6b6b6b6b
        MEM $(TB-4), $0, $0x6b6b6b6b
        .endm
        .macro GS_RMW cpl
        CASE \cpl, g_rmw
        FLAGS FLA, FLA, FL_PF
        MEM $(TB-4), $0x41, $0x42
        .endm
        .macro GS_PUSH cpl
        CASE \cpl, g_push
        SETEXP ESP, $(S_ESP-4)
        MEM $(TB-4), $0x6c6cfffc, $0x6c6cfffc
        MEM $(S_ESP-4), $0, $0x6c6cfffc
        .endm
        .macro GS_POP cpl
        CASE \cpl, g_pop
        SETEXP ESP, $(S_ESP+4)
        MEM $S_ESP, $0x6d6d6d6d, $0, $0
        MEM $(TB-4), $0, $0x6d6d6d6d
        .endm
        .macro GS_C8B cpl
        CASE \cpl, g_c8b
        SETIN ESI, $-8
        SETIN EDX, $0x11112222
        SETIN EAX, $0x33334444
        SETIN ECX, $0xaaaabbbb
        SETIN EBX, $0xccccdddd
        FLAGS 0, FLA, FL_ZF
        MEM $(TB-8), $0x33334444, $0xccccdddd
        MEM $(TB-4), $0x11112222, $0xaaaabbbb
        .endm
        .macro GS_CALL cpl
        CASE \cpl, g_call
        MEM $(TB-4), $ct_tgt, $ct_tgt
        SETEXP EDI, $g_call_ret
        SETEXP EBP, $(S_ESP-4)
        .endm
        .macro GS_MOVS cpl
        CASE \cpl, g_movs
        SETIN ESI, $-4
        SETIN EDI, $(TB+0x100)
        SETEXP ESI, $0
        SETEXP EDI, $(TB+0x104)
        FLAGS 0, FLM, 0
        MEM $(TB-4), $0x6e6efffc, $0x6e6efffc
        MEM $(TB+0x100), $0, $0x6e6efffc
        .endm

        .macro SEC_G cpl
        SEGDESC T, \cpl, $TB
        G_SITE \cpl, GS_LD, "mov %gs:-4 to eax", 0, 0
        G_SITE \cpl, GS_ST, "mov ecx to %gs:-4", 1, 0
        G_SITE \cpl, GS_RMW, "add $1 to %gs:-4", 1, 1
        G_SITE \cpl, GS_PUSH, "push %gs:-4", 0, 0
        G_SITE \cpl, GS_POP, "pop %gs:-4 (ESP unchanged by the fault)", 1, 0
        G_SITE \cpl, GS_CALL, "call *%gs:-4", 0, 0
        G_SITE \cpl, GS_MOVS, "movsl %gs:(%esi) to %es:(%edi), esi=-4", 0, 0
        .endm

# ===========================================================================
# H: ESP = E1PG (page start); E0PG = the page below.
        .macro HS_LD cpl
        CASE \cpl, h_ld
        SETIN ESP, $E1PG
        MEM $(TB-4), $0x7a7afffc, $0x7a7afffc
        SETEXP EAX, $0x7a7afffc
        .endm
        .macro HS_ADD cpl
        CASE \cpl, h_add
        SETIN ESP, $E1PG
        SETIN ECX, $0x10
        SETEXP ECX, $0x7a7b000c
        FLAGS FLA, FLA, FL_PF
        MEM $(TB-4), $0x7a7afffc, $0x7a7afffc
        .endm
        .macro HS_PUSH cpl
        CASE \cpl, h_push
        SETIN ESP, $E1PG
        SETEXP ESP, $(E1PG-4)
        MEM $(TB-4), $0x7c7cfffc, $0x7c7cfffc
        MEM $(E1PG-4), $0, $0x7c7cfffc
        .endm
        .macro HS_CALL cpl
        CASE \cpl, h_call
        SETIN ESP, $E1PG
        MEM $(TB-4), $ct_tgt, $ct_tgt
        SETEXP EDI, $h_call_ret
        SETEXP EBP, $(E1PG-4)
        .endm

        .macro HPF cpl, pte, err, desc
        call mem_init
        E0PTE \pte
        FRUN \cpl, 1
        E0PTE URW
        FCHECK \cpl, V_PF, \err, "\desc: #PF"
        CHECK_EQ pg_cr2, $(E1PG-4), "cpl\cpl: \desc: CR2 = ESP-4"
        .endm

        .macro SEC_H cpl
        SEGDESC T, \cpl, $TB
        E0PTE URW
        HS_LD \cpl
        RUN \cpl, "H mov %gs:-4 to eax, ESP at a page start, page below present"
        HS_ADD \cpl
        RUN \cpl, "H add %gs:-4 to ecx, ESP at a page start, page below present"
        HS_PUSH \cpl
        RUN \cpl, "H push %gs:-4, ESP at a page start, page below present"
        HS_CALL \cpl
        RUN \cpl, "H call *%gs:-4, ESP at a page start, page below present"
        E0PTE PG_RW|PG_US
        HS_LD \cpl
        RUN \cpl, "H mov %gs:-4 to eax, warm, page below ESP not present: no fault"
        HS_ADD \cpl
        RUN \cpl, "H add %gs:-4 to ecx, warm, page below ESP not present: no fault"
        .if \cpl == 3
        E0PTE PG_P|PG_US
        .else
        E0PTE PG_P
        .endif
        HS_LD \cpl
        RUN \cpl, "H mov %gs:-4 to eax, warm, page below ESP read-only: no fault"
        HS_ADD \cpl
        RUN \cpl, "H add %gs:-4 to ecx, warm, page below ESP read-only: no fault"
        E0PTE URW
        .if \cpl == 3
        HS_PUSH 3
        HPF 3, PG_RW|PG_US, PF_W|PF_U, "H push %gs:-4, warm, page below ESP not present"
        HS_PUSH 3
        HPF 3, PG_P|PG_US, PF_P|PF_W|PF_U, "H push %gs:-4, warm, page below ESP read-only"
        HS_CALL 3
        HPF 3, PG_RW|PG_US, PF_W|PF_U, "H call *%gs:-4, warm, page below ESP not present"
        .else
        SKIP "cpl0: H push %gs:-4 / call *%gs:-4 with the page below ESP not present: not run (the #PF frame would go there: #DF)"
        .endif
        HS_PUSH \cpl
        RUN \cpl, "H push %gs:-4, page below present again"
        .endm

# ===========================================================================
        .text
rf_main:
        NOTE "tls: GS-prefixed memory operands at warm sites (1000 runs each), CPL0 and CPL3"
        call fpu_setup
        SEGDESC T, 0, $TB
        SEGDESC T, 3, $TB

        NOTE "A: address forms (GS base B = TB)"
        SEC_A 0
        SEC_A 3
        NOTE "S: ESP as base (GS base = TB - ESP, wraps around 4 GiB)"
        SEGDESC U, 0, $TBS
        SEGDESC U, 3, $TBS
        SEC_S 0
        SEC_S 3
        NOTE "B: every GPR as destination/source, base and index"
        SEC_B 0
        SEC_B 3
        NOTE "C: instructions with gs: operands"
        SEC_C 0
        SEC_C 3
        NOTE "D: 16-bit address size (67h) with gs:"
        SEGDESC U, 0, $TB16
        SEGDESC U, 3, $TB16
        SEC_D 0
        SEC_D 3
        NOTE "E: GS base changes under warm sites"
        SEC_E 0
        SEC_E 3
        NOTE "F: non-flat GS and DS at warm sites"
        SEC_F 0
        SEC_F 3
        NOTE "G: paging faults inside gs: accesses at warm sites"
        call paging_on
        SEC_G 0
        SEC_G 3
        NOTE "H: ESP at a page start above a not-present / read-only page (CPL3, then CPL0)"
        SEC_H 3
        SEC_H 0
        NOTE "X: shifts, XADD, CMPXCHG8B, MUL/DIV (#DE), BT*, SETcc, CMOVcc, x87, SSE2, XLAT, CMPS (CPL3, then CPL0; paging on)"
        SEC_X 3
        SEC_X 0
        call pg_leave
        ret

# ---------------------------------------------------------------------------
# x87 and SSE: CR0.EM=0, TS=0, MP=1, NE=1; CR4.OSFXSR if FXSR; FNINIT.
# has_sse2 = CPUID.1:EDX.SSE2 (and FXSR)
fpu_setup:
        pushal
        movl %cr0, %eax
        andl $~0xc, %eax
        orl $0x22, %eax
        movl %eax, %cr0
        movl $1, %eax
        cpuid
        testl $(1 << 24), %edx
        jz 1f
        movl %cr4, %eax
        orl $0x200, %eax
        movl %eax, %cr4
        testl $(1 << 26), %edx
        jz 1f
        movl $1, has_sse2
1:      fninit
        popal
        ret

# paging on (32-bit), the guest's own data pages user read/write
paging_on:
        pushal
        call pg_setup
        call pg_enter32
        movl $u_start, %ebx
1:      movl %ebx, %eax
        orl $URW, %eax
        PG_SETPTE %ebx, %eax
        addl $0x1000, %ebx
        cmpl $u_end, %ebx
        jb 1b
        PG_FLUSH
        popal
        ret

# ===========================================================================
# Harness routines
# case_reset: default case (CPL0, DS flat)
case_reset:
        pushal
        movl $0xa1a1a1a1, s_in+0
        movl $0xc1c1c1c1, s_in+4
        movl $0xd1d1d1d1, s_in+8
        movl $0xb1b1b1b1, s_in+12
        movl $S_ESP, s_in+16
        movl $0xbebebebe, s_in+20
        movl $0x51515151, s_in+24
        movl $0xe1e1e1e1, s_in+28
        movl $s_in, %esi
        movl $s_exp, %edi
        movl $8, %ecx
        cld
        rep movsl
        movl $1, d_flkeep
        movl $2, s_flin
        movl $0, s_flexp
        movl $FLM, s_flmask
        movl $0, m_n
        movl $0, d_pre
        movl $-1, d_ds
        movl $ITERS, d_iters
        movl $0, d_noinit
        popal
        ret

# mem_add(addr, init, want, mask)
mem_add:
        pushal
        movl m_n, %ecx
        cmpl $M_MAX, %ecx
        jb 1f
        FAIL "tls.S: more than M_MAX memory dwords in a case"
        jmp 2f
1:      movl 36(%esp), %eax
        movl %eax, m_addr(,%ecx,4)
        movl 40(%esp), %eax
        movl %eax, m_init(,%ecx,4)
        movl 48(%esp), %edx
        movl %edx, m_mask(,%ecx,4)
        movl 44(%esp), %eax
        andl %edx, %eax
        movl %eax, m_exp(,%ecx,4)
        incl m_n
2:      popal
        ret $16

# mem_init: write the initial values (any CPL, %ss:)
mem_init:
        pushal
        xorl %ecx, %ecx
1:      cmpl %ss:m_n, %ecx
        jae 2f
        movl %ss:m_addr(,%ecx,4), %edx
        movl %ss:m_init(,%ecx,4), %eax
        movl %eax, %ss:(%edx)
        incl %ecx
        jmp 1b
2:      popal
        ret

# run_body (at the case's CPL): GS = d_gs, DS = d_ds unless -1, d_run,
# DS back to the flat data segment of the CPL
run_body:
        pushl %eax
        movl %ss:d_gs, %eax
        movw %ax, %gs
        movl %ss:d_ds, %eax
        cmpl $-1, %eax
        je 1f
        movw %ax, %ds
1:      popl %eax
        call d_run
        pushl %eax
        movw %cs, %ax
        andl $3, %eax
        movl $RF_KDS, %eax
        jz 2f
        movl $RF_UDS, %eax
2:      movw %ax, %ds
        popl %eax
        ret

# d_run: d_iters calls of d_site with the comparisons (any CPL; all memory
# accesses through %ss:)
d_run:
        pushal
        movl $0, %ss:d_it
        movl $0, %ss:d_badregs
        movl $0, %ss:d_badfl
        movl $0, %ss:d_badmem
        movl %ss:d_site, %eax
        movl %eax, %ss:d_insn
        addl $(site_insn_off), %ss:d_insn
.Ld_loop:
        movl %ss:d_pre, %eax
        testl %eax, %eax
        jz 1f
        call *%eax
1:      cmpl $0, %ss:d_flkeep
        je 2f
        movl %ss:d_it, %eax
        andl $1, %eax
        negl %eax
        andl $FLM, %eax
        movl %eax, %ss:s_flexp
        orl $2, %eax
        movl %eax, %ss:s_flin
        movl $FLM, %ss:s_flmask
2:      cmpl $0, %ss:d_noinit
        jne 3f
        call mem_init
3:      call *%ss:d_site
        xorl %ecx, %ecx
4:      movl %ss:s_out(,%ecx,4), %eax
        cmpl %ss:s_exp(,%ecx,4), %eax
        je 5f
        btsl %ecx, %ss:d_badregs
5:      incl %ecx
        cmpl $8, %ecx
        jb 4b
        movl %ss:s_flout, %eax
        andl %ss:s_flmask, %eax
        cmpl %ss:s_flexp, %eax
        je 6f
        incl %ss:d_badfl
6:      cmpl $0, %ss:d_noinit
        jne 9f
        xorl %ecx, %ecx
7:      cmpl %ss:m_n, %ecx
        jae 9f
        movl %ss:m_addr(,%ecx,4), %edx
        movl %ss:(%edx), %eax
        movl %eax, %ss:m_got(,%ecx,4)
        andl %ss:m_mask(,%ecx,4), %eax
        cmpl %ss:m_exp(,%ecx,4), %eax
        je 8f
        btsl %ecx, %ss:d_badmem
8:      incl %ecx
        jmp 7b
9:      incl %ss:d_it
        movl %ss:d_it, %eax
        cmpl %ss:d_iters, %eax
        jb .Ld_loop
        popal
        ret

# res_eval: r_mask = 1 exception, 2 GPRs, 4 EFLAGS, 8 memory
res_eval:
        pushl %eax
        xorl %eax, %eax
        cmpl $RF_NONE, rf_x_vec
        je 1f
        orl $1, %eax
1:      cmpl $0, d_badregs
        je 2f
        orl $2, %eax
2:      cmpl $0, d_badfl
        je 3f
        orl $4, %eax
3:      cmpl $0, d_badmem
        je 4f
        orl $8, %eax
4:      movl %eax, r_mask
        popl %eax
        ret

# case_diag: "# ..." lines for what a case got wrong (last run's values)
case_diag:
        pushal
        cmpl $RF_NONE, rf_x_vec
        je 0f
        PUTS "#   exception vec="
        PUTHEX rf_x_vec
        PUTS " err="
        PUTHEX rf_x_err
        PUTS " eip="
        PUTHEX rf_x_eip
        PUTS " in run "
        PUTDEC d_it
        call rf_nl
0:      xorl %ecx, %ecx
1:      btl %ecx, d_badregs
        jnc 2f
        PUTS "#   "
        pushl rname(,%ecx,4)
        call rf_puts_arg
        PUTS ": got "
        movl s_out(,%ecx,4), %eax
        PUTHEX %eax
        PUTS ", want "
        movl s_exp(,%ecx,4), %eax
        PUTHEX %eax
        call rf_nl
2:      incl %ecx
        cmpl $8, %ecx
        jb 1b
        cmpl $0, d_badfl
        je 3f
        PUTS "#   EFLAGS: got "
        PUTHEX s_flout
        PUTS ", want "
        PUTHEX s_flexp
        PUTS " under mask "
        PUTHEX s_flmask
        call rf_nl
3:      xorl %ecx, %ecx
4:      cmpl m_n, %ecx
        jae 6f
        btl %ecx, d_badmem
        jnc 5f
        PUTS "#   dword at "
        movl m_addr(,%ecx,4), %eax
        PUTHEX %eax
        PUTS ": got "
        movl m_got(,%ecx,4), %eax
        PUTHEX %eax
        PUTS ", want "
        movl m_exp(,%ecx,4), %eax
        PUTHEX %eax
        PUTS " under mask "
        movl m_mask(,%ecx,4), %eax
        PUTHEX %eax
        call rf_nl
5:      incl %ecx
        jmp 4b
6:      popal
        ret

# fault_eval: registers at the fault (guest ESP from the frame) vs s_in,
# EFLAGS vs s_flin, memory vs the initial values (CPL0)
fault_eval:
        pushal
        movl $0, f_badregs
        movl $0, f_badfl
        movl $0, f_badmem
        cmpl $RF_NONE, rf_x_vec
        jne 1f
        movl $8, f_mask                 # no fault at all
        jmp 9f
1:      testb $3, rf_x_cs
        jz 2f
        movl rf_x_esp, %eax
        jmp 3f
2:      movl rf_x_hesp, %eax
        addl $12, %eax
3:      movl %eax, f_regs + 16
        xorl %ecx, %ecx
4:      movl $7, %edx
        subl %ecx, %edx
        movl rf_x_regs(,%edx,4), %eax
        cmpl $R_ESP, %ecx
        je 41f
        movl %eax, f_regs(,%ecx,4)
41:     movl f_regs(,%ecx,4), %eax
        cmpl s_in(,%ecx,4), %eax
        je 42f
        btsl %ecx, f_badregs
42:     incl %ecx
        cmpl $8, %ecx
        jb 4b
        movl rf_x_eflags, %eax
        xorl s_flin, %eax
        andl $FLM, %eax
        jz 5f
        movl $1, f_badfl
5:      xorl %ecx, %ecx
6:      cmpl m_n, %ecx
        jae 8f
        movl m_addr(,%ecx,4), %edx
        movl s_in + 4 * R_ESP, %eax     # not below ESP (the CPL0 frame)
        subl %edx, %eax
        decl %eax
        cmpl $0x1000, %eax
        jb 7f
        movl (%edx), %eax
        movl %eax, m_got(,%ecx,4)
        xorl m_init(,%ecx,4), %eax
        andl m_mask(,%ecx,4), %eax
        jz 7f
        btsl %ecx, f_badmem
7:      incl %ecx
        jmp 6b
8:      xorl %eax, %eax
        cmpl $0, f_badregs
        je 81f
        orl $1, %eax
81:     cmpl $0, f_badfl
        je 82f
        orl $2, %eax
82:     cmpl $0, f_badmem
        je 83f
        orl $4, %eax
83:     movl %eax, f_mask
9:      popal
        ret

fault_diag:
        pushal
        cmpl $RF_NONE, rf_x_vec
        je 9f
        xorl %ecx, %ecx
1:      btl %ecx, f_badregs
        jnc 2f
        PUTS "#   "
        pushl rname(,%ecx,4)
        call rf_puts_arg
        PUTS " at the fault: "
        movl f_regs(,%ecx,4), %eax
        PUTHEX %eax
        PUTS ", before: "
        movl s_in(,%ecx,4), %eax
        PUTHEX %eax
        call rf_nl
2:      incl %ecx
        cmpl $8, %ecx
        jb 1b
        cmpl $0, f_badfl
        je 3f
        PUTS "#   EFLAGS at the fault: "
        PUTHEX rf_x_eflags
        PUTS ", before: "
        PUTHEX s_flin
        call rf_nl
3:      xorl %ecx, %ecx
4:      cmpl m_n, %ecx
        jae 9f
        btl %ecx, f_badmem
        jnc 5f
        PUTS "#   dword at "
        movl m_addr(,%ecx,4), %eax
        PUTHEX %eax
        PUTS ": "
        movl m_got(,%ecx,4), %eax
        PUTHEX %eax
        PUTS ", was "
        movl m_init(,%ecx,4), %eax
        PUTHEX %eax
        call rf_nl
5:      incl %ecx
        jmp 4b
9:      popal
        ret

# ---------------------------------------------------------------------------
# Section E helpers
# e_expect(k): s_exp EAX/ECX/EDX = the values at base k (0: TB, 1: E_B2)
e_expect:
        pushl %eax
        pushl %ecx
        movl 12(%esp), %eax
        imull $12, %eax
        movl %ss:e_vals(%eax), %ecx
        movl %ecx, %ss:s_exp + 4 * R_EAX
        movl %ss:e_vals+4(%eax), %ecx
        movl %ecx, %ss:s_exp + 4 * R_ECX
        movl %ss:e_vals+8(%eax), %ecx
        movl %ecx, %ss:s_exp + 4 * R_EDX
        popl %ecx
        popl %eax
        ret $4

# e_save(k) / e_restore(k): d_bad* of a run kept in slot k
e_save:
        pushl %eax
        pushl %ecx
        movl 12(%esp), %ecx
        imull $12, %ecx
        movl %ss:d_badregs, %eax
        movl %eax, %ss:e_res(%ecx)
        movl %ss:d_badfl, %eax
        movl %eax, %ss:e_res+4(%ecx)
        movl %ss:d_badmem, %eax
        movl %eax, %ss:e_res+8(%ecx)
        popl %ecx
        popl %eax
        ret $4

e_restore:
        pushl %eax
        pushl %ecx
        movl 12(%esp), %ecx
        imull $12, %ecx
        movl e_res(%ecx), %eax
        movl %eax, d_badregs
        movl e_res+4(%ecx), %eax
        movl %eax, d_badfl
        movl e_res+8(%ecx), %eax
        movl %eax, d_badmem
        popl %ecx
        popl %eax
        ret $4

# d_pre hooks (at the case's CPL; may clobber EAX..EDI)
e_alt_hook:
        movl %ss:d_it, %eax
        andl $1, %eax
        movl %ss:e_sels(,%eax,4), %ecx
        movw %cx, %gs
        pushl %eax
        call e_expect
        ret

e_rw_hook:
        movl %ss:d_it, %eax
        andl $1, %eax
        movl %ss:e_slot, %edx
        movl %ss:e_img(,%eax,8), %ecx
        movl %ecx, %ss:rf_gdt(%edx)
        movl %ss:e_img+4(,%eax,8), %ecx
        movl %ecx, %ss:rf_gdt+4(%edx)
        movl %ss:e_sel, %ecx
        movw %cx, %gs
        pushl %eax
        call e_expect
        ret

e_inblk_hook:
        movl %ss:d_it, %eax
        andl $1, %eax
        movl %ss:e_sels(,%eax,4), %ecx
        movl %ecx, %ss:s_in + 4 * R_EBX
        movl %ecx, %ss:s_exp + 4 * R_EBX
        pushl %eax
        call e_expect
        ret

# u_enter_keepgs: USER_BEGIN without touching GS (a DPL3 selector loaded at
# CPL0 survives the IRET to CPL3); rf.inc's rf_enter_user otherwise
u_enter_keepgs:                         # stack: [continuation][eflags]
        movl %eax, %ss:rf_tmp_eax
        popl %eax
        movl %eax, %ss:rf_tmp_cont
        popl %eax
        movl %eax, %ss:rf_tmp_ufl
        movl %esp, %ss:rf_k_esp
        pushfl
        popl %ss:rf_k_eflags
        pushl %ss:rf_user_ss
        pushl %ss:rf_user_esp
        pushl %ss:rf_tmp_ufl
        pushl %ss:rf_user_cs
        pushl %ss:rf_tmp_cont
        movw %ss:rf_user_ds, %ds
        movw %ss:rf_user_ds, %es
        movw %ss:rf_user_ds, %fs
        movl %ss:rf_tmp_eax, %eax
        iretl

# call targets: EDI = the return address, EBP = ESP at the target
ct_tgt:
        movl (%esp), %edi
        movl %esp, %ebp
        ret

jt_tgt:
        movl $0x4a4d5021, %edi
        jmp c_jmp_back

# ===========================================================================
# The sites
        SITE site_probe
        SITE_END
        .set site_insn_off, site_probe_insn - site_probe

        SITE a_moffs
        movl %gs:-4, %eax
        SITE_END
        SITE a_modrm
        .byte 0x65, 0x8b, 0x05
        .long -4
        SITE_END
        SITE a_moffs_st
        movl %eax, %gs:-4
        SITE_END
        SITE a_moffs8
        movb %gs:-1, %al
        SITE_END
        SITE a_sib
        .byte 0x65, 0x8b, 0x0c, 0x25
        .long -8
        SITE_END
        SITE a_big
        movl %gs:0x1000, %edx
        SITE_END
        SITE a_can
        movl %gs:0x14, %eax
        SITE_END
        SITE a_canx
        xorl %gs:0x14, %edx
        SITE_END
        SITE a_self
        movl %gs:0, %eax
        movl -4(%eax), %ecx
        SITE_END
        SITE a_base
        movl %gs:(%eax), %eax
        SITE_END
        SITE a_stbase
        movl %eax, %gs:(%edx)
        SITE_END
        SITE a_bd8
        movl %gs:-4(%ecx), %esi
        SITE_END
        SITE a_bd32
        movl %gs:-0x100(%ebx), %edx
        SITE_END
        SITE a_bdwrap
        movl %gs:0x7ffffff8(%ebx), %edx
        SITE_END
        SITE a_idx
        movl %gs:-16(,%esi,4), %ecx
        SITE_END
        SITE a_bis
        movl %gs:-16(%ebx,%esi,4), %ecx
        SITE_END
        SITE a_ebp
        movl %gs:-4(%ebp), %eax
        SITE_END
        SITE a_ebp0
        movl %gs:(%ebp), %ecx
        SITE_END
        SITE a_ebpst
        movl %eax, %gs:8(%ebp)
        SITE_END
        SITE a_ebpidx
        movl %gs:(%ebp,%edi,1), %ecx
        SITE_END
        SITE a_xlat
        xlat %gs:(%ebx)
        SITE_END

        SITE s_ld
        movl %gs:4(%esp), %eax
        SITE_END
        SITE s_ld0
        movl %gs:(%esp), %ecx
        SITE_END
        SITE s_st
        movl %edx, %gs:-8(%esp)
        SITE_END
        SITE s_idx
        movl %gs:-8(%esp,%ecx,2), %edx
        SITE_END
        SITE s_ebpi
        movl %gs:(%esp,%ebp,1), %eax
        SITE_END
        SITE s_add
        addl %gs:(%esp), %ebx
        SITE_END
        SITE s_push
        pushl %gs:4(%esp)
        SITE_END
        SITE s_pop
        popl %gs:4(%esp)
        SITE_END
        SITE s_pop0
        popl %gs:-4(%esp)
        SITE_END
        SITE s_mvesp
        movl %gs:4(%esp), %esp
        SITE_END
        SITE s_call
        call *%gs:4(%esp)
s_call_ret:
        SITE_END
        SITE s_lea
        .byte 0x65
        leal 4(%esp), %eax
        SITE_END

        SITE b_l0
        movl %gs:(%ecx,%ebx,1), %eax
        SITE_END
        SITE b_l1
        movl %gs:-0x20(%edx,%ebp,2), %ecx
        SITE_END
        SITE b_l2
        movl %gs:(%ebx,%esi,4), %edx
        SITE_END
        SITE b_l3
        movl %gs:-0x20(%ebp,%edi,8), %ebx
        SITE_END
        SITE b_l4
        movl %gs:(%esi,%eax,1), %ebp
        SITE_END
        SITE b_l5
        movl %gs:-0x20(%edi,%ecx,2), %esi
        SITE_END
        SITE b_l6
        movl %gs:(%eax,%edx,4), %edi
        SITE_END
        SITE b_s0
        movl %eax, %gs:(%edx,%esi,1)
        SITE_END
        SITE b_s1
        movl %ecx, %gs:-0x20(%ebx,%edi,2)
        SITE_END
        SITE b_s2
        movl %edx, %gs:(%ebp,%eax,4)
        SITE_END
        SITE b_s3
        movl %ebx, %gs:-0x20(%esi,%ecx,8)
        SITE_END
        SITE b_s4
        movl %ebp, %gs:(%edi,%edx,1)
        SITE_END
        SITE b_s5
        movl %esi, %gs:-0x20(%eax,%ebx,2)
        SITE_END
        SITE b_s6
        movl %edi, %gs:(%ecx,%ebp,4)
        SITE_END
        SITE b_db
        movl %gs:(%esi,%edi,1), %esi
        SITE_END
        SITE b_dx
        movl %gs:(%ecx,%edx,2), %edx
        SITE_END
        SITE b_sb
        movl %ebx, %gs:0x100(%ebx)
        SITE_END
        SITE b_ah
        movb %gs:-1, %ah
        SITE_END
        SITE b_ch
        movb %ch, %gs:(%eax)
        SITE_END
        SITE b_dh
        movb %gs:(%ebx,%esi,1), %dh
        SITE_END
        SITE b_bh
        movb %bh, %gs:-3(%edi)
        SITE_END
        SITE b_di16
        movw %gs:(%esi), %di
        SITE_END
        SITE b_bp16
        movw %bp, %gs:-2(%ecx)
        SITE_END

        SITE c_movb_ld
        movb %gs:-1, %cl
        SITE_END
        SITE c_movb_st
        movb %dl, %gs:-3
        SITE_END
        SITE c_movw_ld
        movw %gs:-2, %si
        SITE_END
        SITE c_movw_ld2
        .byte 0x66, 0x65, 0x8b, 0x35
        .long -2
        SITE_END
        SITE c_movw_st
        movw %di, %gs:-6
        SITE_END
        SITE c_movl_imm
        movl $0x13579bdf, %gs:-8
        SITE_END
        SITE c_movb_imm
        movb $0x5a, %gs:-1
        SITE_END
        SITE c_movw_imm
        movw $0xbeef, %gs:-4
        SITE_END
        SITE c_movzb
        movzbl %gs:-1, %ecx
        SITE_END
        SITE c_movsb
        movsbl %gs:-1, %edx
        SITE_END
        SITE c_movzw
        movzwl %gs:-2, %ebx
        SITE_END
        SITE c_movsw
        movswl %gs:-4, %ebp
        SITE_END
        SITE c_add_ld
        addl %gs:-4, %ecx
        SITE_END
        SITE c_add_st
        addl %ecx, %gs:-4
        SITE_END
        SITE c_sub_imm
        subl $1, %gs:-4
        SITE_END
        SITE c_adc
        adcl %gs:-4, %edx
        SITE_END
        SITE c_sbb
        sbbl %edx, %gs:-4
        SITE_END
        SITE c_and
        andl %gs:-4, %esi
        SITE_END
        SITE c_or
        orl %edi, %gs:-8
        SITE_END
        SITE c_xor_imm
        xorl $-1, %gs:-4
        SITE_END
        SITE c_cmp_ld
        cmpl %gs:-4, %eax
        SITE_END
        SITE c_cmp_imm
        cmpl $0x7fffffff, %gs:-4
        SITE_END
        SITE c_test
        testl %ecx, %gs:-4
        SITE_END
        SITE c_addb
        addb %gs:-1, %bh
        SITE_END
        SITE c_cmpb
        cmpb $0x80, %gs:-1
        SITE_END
        SITE c_addw
        addw %gs:-2, %si
        SITE_END
        SITE c_inc
        incl %gs:-4
        SITE_END
        SITE c_dec
        decl %gs:-4
        SITE_END
        SITE c_neg
        negl %gs:-4
        SITE_END
        SITE c_not
        notl %gs:-4
        SITE_END
        SITE c_shl_cl
        shll %cl, %gs:-4
        SITE_END
        SITE c_sar_imm
        sarl $3, %gs:-4
        SITE_END
        SITE c_shl1
        shll $1, %gs:-4
        SITE_END
        SITE c_rol
        roll $8, %gs:-4
        SITE_END
        SITE c_xchg
        xchgl %ecx, %gs:-4
        SITE_END
        SITE c_cmpxchg
        cmpxchgl %ecx, %gs:-4
        SITE_END
        SITE c_xadd
        lock xaddl %edx, %gs:-4
        SITE_END
        SITE c_xadd2
        .byte 0xf0, 0x65, 0x0f, 0xc1, 0x15
        .long -4
        SITE_END
        SITE c_lockadd
        lock addl $1, %gs:-4
        SITE_END
        SITE c_c8b
        cmpxchg8b %gs:(%esi)
        SITE_END
        SITE c_c8b_dibp
        cmpxchg8b %gs:(%edi,%ebp,1)
        SITE_END
        SITE c_c8b_sidi
        lock cmpxchg8b %gs:(%esi,%edi,2)
        SITE_END
        SITE c_c8b_abs
        cmpxchg8b %gs:-8
        SITE_END
        SITE c_mul
        mull %gs:-4
        SITE_END
        SITE c_imul2
        imull %gs:-4, %ecx
        SITE_END
        SITE c_imul3
        imull $-2, %gs:-4, %ebx
        SITE_END
        SITE c_imul1
        imull %gs:-4
        SITE_END
        SITE c_div
        divl %gs:-4
        SITE_END
        SITE c_idiv
        idivl %gs:-4
        SITE_END
        SITE c_bt
        btl %ecx, %gs:-16
        SITE_END
        SITE c_bts
        btsl %ecx, %gs:-16
        SITE_END
        SITE c_btr
        btrl %eax, %gs:(%ebx)
        SITE_END
        SITE c_btc_imm
        btcl $35, %gs:-4
        SITE_END
        SITE c_setc
        setc %gs:-1
        SITE_END
        SITE c_setz
        setz %gs:-2
        SITE_END
        SITE c_cmovz
        cmovzl %gs:-4, %ecx
        SITE_END
        SITE c_x87
        fldl %gs:-16
        fstpl %gs:-24
        SITE_END
        SITE c_x87i
        fildl %gs:-4
        fistpl %gs:-8
        SITE_END
        SITE c_sse
        movdqu %gs:-32, %xmm0
        movdqu %xmm0, %gs:-48
        SITE_END
        SITE c_ssed
        movd %gs:-4, %xmm1
        movd %xmm1, %ecx
        SITE_END
        SITE c_push
        pushl %gs:-4
        SITE_END
        SITE c_pushw
        pushw %gs:-2
        SITE_END
        SITE c_pop
        popl %gs:-4
        SITE_END
        SITE c_call
        call *%gs:-4
c_call_ret:
        SITE_END
        SITE c_jmp
        jmp *%gs:-8
        ud2
c_jmp_back:
        SITE_END
        SITE c_lea
        .byte 0x65
        leal -4(%eax), %ecx
        SITE_END
        SITE c_lea_abs
        .byte 0x65
        leal -4, %edx
        SITE_END
        SITE c_lea_bis
        .byte 0x65
        leal 8(%ebx,%esi,4), %edi
        SITE_END
        SITE c_lodsl
        lodsl %gs:(%esi)
        SITE_END
        SITE c_lodsb
        lodsb %gs:(%esi)
        SITE_END
        SITE c_movsl
        movsl %gs:(%esi), %es:(%edi)
        SITE_END
        SITE c_repmovsb
        rep movsb %gs:(%esi), %es:(%edi)
        SITE_END
        SITE c_repmovsl
        rep movsl %gs:(%esi), %es:(%edi)
        SITE_END
        SITE c_cmpsb
        cmpsb %es:(%edi), %gs:(%esi)
        SITE_END
        SITE c_mvesp
        movl %gs:-4, %esp
        SITE_END
        SITE c_addesp
        addl %gs:-4, %esp
        SITE_END
        SITE c_xchgesp
        xchgl %esp, %gs:-4
        SITE_END
        SITE c_bound
        boundl %eax, %gs:-8
        SITE_END

        SITE d_bxsi
        movl %gs:(%bx,%si), %eax
        SITE_END
        SITE d_bp
        movl %gs:-4(%bp), %ecx
        SITE_END
        SITE d_dist
        movl %edx, %gs:0x10(%di)
        SITE_END
        SITE d_disp16
        .byte 0x67, 0x65, 0x8b, 0x1e
        .word 0xfffc
        SITE_END
        SITE d_bxdi
        movw %gs:0x7ff0(%bx,%di), %cx
        SITE_END
        SITE d_lea
        .byte 0x65
        leal -4(%bx,%si), %eax
        SITE_END

        SITE e_mix
        movl %gs:-4, %eax
        movl %gs:0x14, %ecx
        movl %gs:0x1000, %edx
        SITE_END
        SITE e_inblk
        movw %bx, %gs
        movl %gs:-4, %eax
        movl %gs:0x14, %ecx
        movl %gs:0x1000, %edx
        SITE_END

        SITE f_in
        movl %gs:0xffc, %eax
        SITE_END
        SITE f_edge
        movl %gs:0xffd, %eax
        SITE_END
        SITE f_neg
        movl %gs:-4, %ecx
        SITE_END
        SITE f_st
        movl %edx, %gs:0x1000
        SITE_END
        SITE f_rmw
        addl $1, %gs:0x1000
        SITE_END
        SITE f_ro_ld
        movl %gs:-4, %eax
        SITE_END
        SITE f_ro_st
        movl %ecx, %gs:-4
        SITE_END
        SITE f_ed_ld
        movl %gs:-4, %eax
        SITE_END
        SITE f_ed_st
        movl %ecx, %gs:-8
        SITE_END
        SITE f_ed_lo
        movl %gs:0x14, %eax
        SITE_END
        SITE f_ds
        movl %gs:-4, %eax
        movl (%ebx), %ecx
        movl %edx, 4(%ebx)
        SITE_END
        SITE f_ds2
        movl %gs:-4, %eax
        movl %edx, %gs:-8
        SITE_END

        SITE f_null
        movl %gs:-4, %eax
        SITE_END

        SITE g_div
        divl %gs:-4
        SITE_END
        SITE g_idiv
        idivl %gs:-4
        SITE_END
        SITE g_ld
        movl %gs:-4, %eax
        SITE_END
        SITE g_st
        movl %ecx, %gs:-4
        SITE_END
        SITE g_rmw
        addl $1, %gs:-4
        SITE_END
        SITE g_push
        pushl %gs:-4
        SITE_END
        SITE g_pop
        popl %gs:-4
        SITE_END
        SITE g_c8b
        cmpxchg8b %gs:(%esi)
        SITE_END
        SITE g_call
        call *%gs:-4
g_call_ret:
        SITE_END
        SITE g_movs
        movsl %gs:(%esi), %es:(%edi)
        SITE_END

        SITE h_ld
        movl %gs:-4, %eax
        SITE_END
        SITE h_add
        addl %gs:-4, %ecx
        SITE_END
        SITE h_push
        pushl %gs:-4
        SITE_END
        SITE h_call
        call *%gs:-4
h_call_ret:
        SITE_END

# ===========================================================================
        .section .rodata
rname:  .long rn_eax, rn_ecx, rn_edx, rn_ebx, rn_esp, rn_ebp, rn_esi, rn_edi
rn_eax: .asciz "EAX"
rn_ecx: .asciz "ECX"
rn_edx: .asciz "EDX"
rn_ebx: .asciz "EBX"
rn_esp: .asciz "ESP"
rn_ebp: .asciz "EBP"
rn_esi: .asciz "ESI"
rn_edi: .asciz "EDI"

        .data
        .balign 4
has_sse2:       .long 0
f_badregs:      .long 0
f_badfl:        .long 0
f_badmem:       .long 0
f_mask:         .long 0
r_mask:         .long 0
f_regs:         .fill 8, 4, 0
e_vals:         .long 0xe1e1fffc, 0xe1e10014, 0xe1e11000
                .long 0xe2e2fffc, 0xe2e20014, 0xe2e21000

# Everything CPL3 touches under paging: user read/write pages [u_start, u_end)
        .bss
        .balign 4096
u_start:
# harness variables
s_in:           .fill 8, 4, 0
s_exp:          .fill 8, 4, 0
s_out:          .fill 8, 4, 0
s_flin:         .long 0
s_flexp:        .long 0
s_flmask:       .long 0
s_flout:        .long 0
h_esp:          .long 0
d_site:         .long 0
d_insn:         .long 0
d_iters:        .long 0
d_it:           .long 0
d_pre:          .long 0
d_flkeep:       .long 0
d_noinit:       .long 0
d_gs:           .long 0
d_ds:           .long 0
d_badregs:      .long 0
d_badfl:        .long 0
d_badmem:       .long 0
m_n:            .long 0
m_addr:         .fill M_MAX, 4, 0
m_init:         .fill M_MAX, 4, 0
m_exp:          .fill M_MAX, 4, 0
m_mask:         .fill M_MAX, 4, 0
m_got:          .fill M_MAX, 4, 0
e_sel:          .long 0
e_slot:         .long 0
e_sels:         .fill 2, 4, 0
e_img:          .fill 4, 4, 0
e_res:          .fill 6, 4, 0
        .balign 4096
tls_buf:        .fill 16384, 1, 0       # TB = tls_buf + 0x2000
s_stack:        .fill 4096, 1, 0        # the sites' stack
e_pages:        .fill 8192, 1, 0        # section H: guard page, stack page
u_end:
