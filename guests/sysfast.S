# sysfast.S -- SYSENTER/SYSEXIT round trips run many times ("warm"), as a
# Linux-style kernel entry/exit: CPL3 <-> CPL0 through the fast system call
# instructions, thousands of times per instruction site.
#
# Target: a translator that runs SYSENTER (at CPL3) and SYSEXIT (at CPL0)
# inline once a site is hot, instead of exiting to an interpreter.  The first
# execution of a site is usually interpreted; every check here therefore runs
# in loops (1000-10000 round trips through the SAME sysenter site u_site and
# the same six sysexit sites of the kernel side) and either compares on every
# iteration, counting mismatches (CHECK_EQ counter, $0 afterwards, with the
# first mismatch printed as a "# ..." line), or counts events.
#
# SDM references: Vol. 2B "SYSENTER" (#GP(0) if IA32_SYSENTER_CS[15:2] = 0;
# CS = SYSENTER_CS & FFFCH, SS = CS + 8, flat CPL0 caches NOT read from the
# GDT; ESP = SYSENTER_ESP; EIP = SYSENTER_EIP; EFLAGS.VM/IF/RF cleared, all
# other flags and all GPRs kept; DS/ES/FS/GS untouched), "SYSEXIT" (#GP(0) if
# SYSENTER_CS[15:2] = 0 or CPL != 0; CS = (SYSENTER_CS + 16) | 3, SS =
# (SYSENTER_CS + 24) | 3, flat CPL3 caches, no GDT read; ESP = ECX, EIP =
# EDX; EFLAGS unchanged; DS/ES/FS/GS untouched, i.e. a DPL0 data segment
# stays loaded at CPL3); Vol. 3A 5.8.7 (fast system calls), 3.4.3 (the
# descriptor cache: rewriting a GDT entry does not change a loaded register),
# 4.6/4.7 (a CPL3 access to a supervisor page is a #PF whatever the segment;
# error code P/W/U), 6.8.3 (STI delays interrupts by one instruction: "sti;
# sysexit" takes a pending interrupt at CPL3), 6.12.1 (interrupt gates clear
# IF), "IRET" (a return to CPL3 nulls DS/ES/FS/GS that hold DPL0 data
# segments).
#
# Kernel side (k_entry / k_entry2 = SYSENTER_EIP): records ESP, EFLAGS, GPRs,
# CS/SS (MOV and PUSH), DS..GS; compares them with what the user side left
# (counters K_BAD_*); runs a per-test action (k_action: WRMSR of the next
# SYSENTER_CS/ESP/EIP, loads of DS..GS, a GDT rewrite of the GS descriptor,
# touching supervisor pages); then returns with ECX/EDX = U_RET_ESP/U_RET_EIP
# [round trip & 1] and EFLAGS chosen by round trip & 7: 0,1 restore or invert
# the user's arithmetic flags and DF with POPF; 2,3 set them with a CMP right
# before SYSEXIT (lazy flags); 0-3 end with "sti; sysexit", 4-7 with a plain
# "sysexit" (the user then runs one round trip with IF=0).
#
# User side (u_iter .. u_land, CPL3, all memory accesses through %ss: or an
# explicit segment, DS..GS may be anything): per round trip chooses EAX/EBX
# from a table of 8 CMP operand pairs (CF/ZF/SF/OF/PF/AF patterns), ESI/EDI/
# EBP from the round trip number, DF by round trip & 8, sets the flags with
# CMP (lazy) right before SYSENTER; after SYSEXIT it records ESP, EFLAGS,
# GPRs, CS/SS (MOV and PUSH) and DS..GS first, then compares (U_BAD_*).
#
# Sections:
#  1  round trips, paging off and on
#  2  WRMSR between loops (SYSENTER_ESP, SYSENTER_EIP, SYSENTER_CS with RPL
#     bits -> GDT slots with bogus descriptors, SYSENTER_CS -> empty slots)
#     and inside the kernel side on every round trip (all three MSRs flip)
#  3  security: the kernel side loads DS (ES, FS, GS) = 0x10 before
#     SYSEXIT; the user reads a user page through it (works) and a
#     supervisor page at 0xC0005000 / 0x40004000 (and writes one, and reads
#     a not-present page): #PF with CR2 on every round trip, the kernel side
#     having read the supervisor pages just before; again after a user page
#     above 3 GiB was mapped
#  4  the kernel side loads DS/ES/FS/GS with DPL3 segments of other bases
#  5  TLS: the kernel rewrites the base of the GS descriptor (4 GiB, DPL3) and
#     reloads GS, or only rewrites it (the loaded GS keeps its base); the
#     user reads gs:-4, gs:0x20000, gs:0x14, gs:0 (DS flat)
#  6  1, 4 and 5 again with the PIT at ~20 kHz (IRQ0 -> vector 0x20)
#  7  SYSEXIT with ESP in a read-only page, at a page start above a
#     not-present page, in a not-present page, in supervisor pages, ESP=0
#  8  after the warm loops: SYSENTER with SYSENTER_CS=0 and SYSEXIT at CPL3
#     (user site and the kernel's warm site) -> #GP(0), SYSEXIT at CPL0 with
#     SYSENTER_CS=0 -> #GP(0), each 1000 times
#
# Faults the loops expect (sections 3 and 8) go through rf_hook (sf_hook):
# it records vector/error/EIP/CS/CR2 in SF_* and IRETs to SF_RESUME.  Any
# other exception ends the loop through TRY ("no unexpected exception").
#
# Everything about SYSENTER is gated on CPUID.1:EDX.SEP[bit 11]; without it
# one "# SKIP" line is printed.  No QEMU deviation is tolerated here.
#
# The section 6 checks "no interrupt at CPL0 (sti; sysexit ...)" found a
# ringfold bug when this guest was written (a few interrupts per ~1000 taken
# inside the STI shadow: kicks rewound a half-done inline STI to the STI with
# the virtual IF already set, or landed on the instruction after it); fixed
# with this guest.  QEMU passes all checks.
#
# Coverage note (ringfold): with paging on, this framework's own kernel
# structures are supervisor pages below 2 GiB, so ringfold keeps SYSEXIT
# interpreted there (a supervisor page mapped below the user segments' reach
# disables the inline path); sections 1p and 3 check the interpreted path,
# the paging-off sections and Linux the inline one.  sysexit_trunc.S checks
# DPL0 data segments after an inline SYSEXIT (every supervisor page above
# 2 GiB, user segments truncated).
        .include "rf.inc"
        .include "paging.inc"

        .set MSR_CS, 0x174
        .set MSR_ESP, 0x175
        .set MSR_EIP, 0x176

        # loop lengths
        .set RT_N, 4000                 # round trips per section 1/2/4/5 loop
        .set SEC_N, 1000                # section 3 loops (one #PF each)
        .set STK_N, 2000                # section 7
        .set G_N, 1000                  # section 8
        .set IRQ_NMIN, 10000            # section 6: at least this many round trips
        .set IRQ_NMAX, 400000           # ... at most
        .set IRQ_WANT, 300              # ... stop once this many IRQs arrived
        .set PIT_DIV, 60                # 1193182 / 60 = 19.9 kHz

        .set XMASK, FL_CF|FL_PF|FL_AF|FL_ZF|FL_SF|FL_OF|FL_DF
        .set ARITH, FL_CF|FL_PF|FL_AF|FL_ZF|FL_SF|FL_OF
        .set KC_REGS, 1                 # k_cfg: kernel checks EFLAGS + GPRs
        .set KC_SEGS, 2                 # k_cfg: kernel checks DS..GS
        .set K_C2A, 0x7fffffff          # kernel exit kind 2: cmp $-1, K_C2A
        .set K_C3A, 0x1000              # kernel exit kind 3: cmp $K_C3B, K_C3A
        .set K_C3B, 0x1000

        # RT_REPORT options
        .set O_KR, 1                    # kernel: EFLAGS + GPRs
        .set O_KS, 2                    # kernel: DS..GS
        .set O_UR, 4                    # user: GPRs + EFLAGS
        .set O_US, 8                    # user: DS..GS
        .set O_UV, 16                   # user: values read through segments
        .set O_ALL, 31

        .set UESP_A, rf_ustack_top - 0x200   # user ESP after SYSEXIT, even
        .set UESP_B, rf_ustack_top - 0x340   # ... odd round trips

        # section 2: SYSENTER_CS values and their GDT slots
        .set CS_POISON, 0x33            # 0x30 0x38 0x40 0x48: base 0x1000, limit 0xfff
        .set CS_NULL, 0x50              # 0x50 0x58 0x60 0x68: all zero
        # section 4: DPL3 data segments 0x33 0x3b 0x43 0x4b, bases SEGB + 0/1/2/3 pages
        .set SEGB, rf_scratch
        .set SEGVAL, 0x5e600000         # dword at SEGB + j*0x1000 + off = SEGVAL + j*0x100 + off
        # section 5: GS slot and the two TLS bases
        .set SG, 0x70
        .set GSB1, 0x00600000
        .set GSB2, 0x00680000
        .set GSV1, 0x65100000
        .set GSV2, 0x65200000

        # paging sections (region A of paging.inc, and our own table at 3 GiB)
        .set S_LO, PG_LA + 0x4000       # supervisor page, low
        .set UPG, PG_LA + 0x6000        # user page
        .set S_NP, PG_LA + 0x7000       # not present
        .set R_PG, PG_LA + 0x8000       # user read-only
        .set P_PG, PG_LA + 0xb000       # user read/write; P_PG - 4 KiB not present
        .set NP_PG, PG_LA + 0xd000      # not present
        .set HI_BASE, 0xc0000000
        .set S_HI, HI_BASE + 0x5000     # supervisor page, high
        .set U_HI, HI_BASE + 0x8000     # user page, high (phase B of section 3)
        .set F_S_LO, PG_FRAMES + 0x40000
        .set F_UPG, PG_FRAMES + 0x41000
        .set F_R, PG_FRAMES + 0x42000
        .set F_P, PG_FRAMES + 0x43000
        .set F_S_HI, PG_FRAMES + 0x44000
        .set F_U_HI, PG_FRAMES + 0x45000
        .set PAT_S_LO, 0x5ec10000
        .set PAT_UPG, 0x05e60000
        .set PAT_S_HI, 0x5ec20000
        .set PAT_U_HI, 0x05e70000
        .set SENTINEL, 0x5e471ae1

        .set SEGIDX_ds, 0
        .set SEGIDX_es, 1
        .set SEGIDX_fs, 2
        .set SEGIDX_gs, 3

# SAVE_SREGS: CS and SS as MOV and PUSH read them, then DS ES FS GS (each
# zero-extended) into the eight given dwords (SS-relative); clobbers EAX.
        .macro SAVE_SREG_MOV sreg, dst
        movl %\sreg, %eax
        movzwl %ax, %eax
        movl %eax, %ss:\dst
        .endm
        .macro SAVE_SREG_PUSH sreg, dst
        pushl %\sreg
        popl %eax
        movzwl %ax, %eax
        movl %eax, %ss:\dst
        .endm
        .macro SAVE_SREGS cs1, cs2, ss1, ss2, ds, es, fs, gs
        SAVE_SREG_MOV cs, \cs1
        SAVE_SREG_PUSH cs, \cs2
        SAVE_SREG_MOV ss, \ss1
        SAVE_SREG_PUSH ss, \ss2
        SAVE_SREG_MOV ds, \ds
        SAVE_SREG_MOV es, \es
        SAVE_SREG_MOV fs, \fs
        SAVE_SREG_MOV gs, \gs
        .endm

        .macro WRMSR_ msr, val
        movl $\msr, %ecx
        movl \val, %eax
        xorl %edx, %edx
        wrmsr
        .endm

# MM ctr, got, want: if got != want, increment ctr and, for the first
# mismatch of a loop, remember ctr's name, got, want and the round trip.
# Clobbers ECX, EDX and the flags; no stack; works at any CPL and any DS.
        .macro MM ctr, got, want
        movl \got, %edx
        movl \want, %ecx
        cmpl %ecx, %edx
        je .Lmm\@
        incl %ss:\ctr
        cmpl $0, %ss:FIRST_NAME
        jne .Lmm\@
        movl %edx, %ss:FIRST_GOT
        movl %ecx, %ss:FIRST_WANT
        movl %ss:U_I, %edx
        movl %edx, %ss:FIRST_I
        movl $.Lmmn\@, %ss:FIRST_NAME
        .pushsection .rodata
.Lmmn\@: .asciz "\ctr"
        .popsection
.Lmm\@:
        .endm

# U_BASIC: user-side checks of one landing (EBP = round trip): landed at the
# label for this round trip's parity, ESP = ECX = U_RET_ESP[label], EDX =
# U_RET_EIP[label], CS/SS = U_EXP_CS/SS[parity] (MOV and PUSH).  No stack.
        .macro U_BASIC
        movl %ss:U_GOT_LBL, %ebx
        movl %ebp, %eax
        andl $1, %eax
        MM U_BAD_EIP, %ebx, %eax
        andl $1, %ebx
        shll $2, %ebx                   # label * 4
        shll $2, %eax                   # parity * 4
        MM U_BAD_ESP, %ss:U_GOT_ESP, %ss:U_RET_ESP(%ebx)
        MM U_BAD_CXDX, %ss:U_GOT_ECX, %ss:U_GOT_ESP
        MM U_BAD_CXDX, %ss:U_GOT_EDX, %ss:U_RET_EIP(%ebx)
        MM U_BAD_CS, %ss:U_GOT_CS1, %ss:U_EXP_CS(%eax)
        MM U_BAD_CS, %ss:U_GOT_CS2, %ss:U_EXP_CS(%eax)
        MM U_BAD_SS, %ss:U_GOT_SS1, %ss:U_EXP_SS(%eax)
        MM U_BAD_SS, %ss:U_GOT_SS2, %ss:U_EXP_SS(%eax)
        .endm

# SAFE_CALL fn, "desc": call fn (which runs a loop, usually at CPL3) under
# TRY; an exception that sf_hook does not resume ends it and fails the check.
        .macro SAFE_CALL fn, desc
        TRY_CALL \fn
        movl $0, SF_RESUME
        movl $0, k_in
        CHECK_EQ rf_tc_vec, $RF_NONE, "\desc: no unexpected exception"
        call rf_tc_note
        .endm

# RT_REPORT "name", opts: the checks of one round-trip loop
        .macro RT_REPORT name, opts
        CHECK_EQ k_n, U_I, "\name: kernel entries = user round trips"
        CHECK_EQ K_BAD_ENTRY, $0, "\name: kernel: entered at SYSENTER_EIP"
        CHECK_EQ K_BAD_CS, $0, "\name: kernel: CS = SYSENTER_CS & 0xfffc (mov, push)"
        CHECK_EQ K_BAD_SS, $0, "\name: kernel: SS = CS + 8 (mov, push)"
        CHECK_EQ K_BAD_ESP, $0, "\name: kernel: ESP = SYSENTER_ESP"
        CHECK_EQ K_BAD_IF, $0, "\name: kernel: IF = VM = RF = 0"
        .if (\opts) & O_KR
        CHECK_EQ K_BAD_FL, $0, "\name: kernel: other EFLAGS bits as the user left them"
        CHECK_EQ K_BAD_REGS, $0, "\name: kernel: EAX EBX ESI EDI EBP as the user left them"
        .endif
        .if (\opts) & O_KS
        CHECK_EQ K_BAD_SEGS, $0, "\name: kernel: DS ES FS GS unchanged by SYSENTER"
        .endif
        CHECK_EQ U_BAD_EIP, $0, "\name: user: EIP = EDX (landed at the label of this round trip)"
        CHECK_EQ U_BAD_ESP, $0, "\name: user: ESP = ECX"
        CHECK_EQ U_BAD_CXDX, $0, "\name: user: ECX and EDX kept"
        CHECK_EQ U_BAD_CS, $0, "\name: user: CS = (SYSENTER_CS + 16) | 3 (mov, push)"
        CHECK_EQ U_BAD_SS, $0, "\name: user: SS = (SYSENTER_CS + 24) | 3 (mov, push)"
        .if (\opts) & O_UR
        CHECK_EQ U_BAD_REGS, $0, "\name: user: EAX EBX ESI EDI EBP kept"
        CHECK_EQ U_BAD_FL, $0, "\name: user: EFLAGS = the kernel's at SYSEXIT"
        .endif
        .if (\opts) & O_US
        CHECK_EQ U_BAD_SEGS, $0, "\name: user: DS ES FS GS selectors"
        .endif
        .if (\opts) & O_UV
        CHECK_EQ U_BAD_VAL, $0, "\name: user: values read through DS ES FS GS (bases)"
        .endif
        RF_DESCSTR "\name"
        call rt_first
        .endm

# RT_LOOP "name", opts, n: run the round-trip loop (set up before) n times
        .macro RT_LOOP name, opts, n=$RT_N
        movl \n, U_N
        SAFE_CALL run_user_loop, "\name"
        CHECK_EQ U_I, \n, "\name: round trips done"
        RT_REPORT "\name", \opts
        .endm

# ===========================================================================
# Kernel side
# ===========================================================================
k_entry:                                # SYSENTER_EIP, entry 0
        movl $1, %ss:k_in
        movl $0, %ss:k_got_entry
        jmp k_common
k_entry2:                               # SYSENTER_EIP, entry 1
        movl $1, %ss:k_in
        movl $1, %ss:k_got_entry
k_common:
        movl %esp, %ss:k_got_esp
        pushfl
        popl %ss:k_got_fl
        movl %eax, %ss:k_got_eax
        movl %ebx, %ss:k_got_ebx
        movl %ecx, %ss:k_got_ecx
        movl %edx, %ss:k_got_edx
        movl %esi, %ss:k_got_esi
        movl %edi, %ss:k_got_edi
        movl %ebp, %ss:k_got_ebp
        SAVE_SREGS k_got_cs1, k_got_cs2, k_got_ss1, k_got_ss2, k_got_ds, k_got_es, k_got_fs, k_got_gs
        call k_verify
        movl %ss:k_action, %eax
        testl %eax, %eax
        jz 1f
        call *%eax
1:      movl %ss:k_n, %ebx              # this round trip
        movl %ebx, %eax
        andl $1, %eax
        movl %ss:U_RET_ESP(,%eax,4), %ecx
        movl %ss:U_RET_EIP(,%eax,4), %edx
        movl %ss:k_got_fl, %esi
        movl %ebx, %eax
        andl $3, %eax
        cmpl $1, %eax
        jne 2f
        xorl $XMASK, %esi
2:      movl %esi, %ss:k_exit_fl
        movl %ebx, %eax
        andl $7, %eax
        movl %ss:k_tails(,%eax,4), %eax
        movl %eax, %ss:k_tail
        incl %ss:k_n
        movl %ss:k_got_eax, %eax
        movl %ss:k_got_ebx, %ebx
        movl %ss:k_got_esi, %esi
        movl %ss:k_got_edi, %edi
        movl %ss:k_got_ebp, %ebp
        pushl %ss:k_exit_fl
        popfl
        jmp *%ss:k_tail

# the six SYSEXIT sites
kt_sti:
        movl $0, %ss:k_in
        sti
k_sx_plain:
        sysexit
kt_c2_sti:
        cmpl $-1, %ss:k_c2a
        movl $0, %ss:k_in
        sti
        sysexit
kt_c3_sti:
        cmpl $K_C3B, %ss:k_c3a
        movl $0, %ss:k_in
        sti
        sysexit
kt_cli:
        movl $0, %ss:k_in
        sysexit
kt_c2_cli:
        cmpl $-1, %ss:k_c2a
        movl $0, %ss:k_in
        sysexit
kt_c3_cli:
        cmpl $K_C3B, %ss:k_c3a
        movl $0, %ss:k_in
        sysexit

# kernel-side comparisons (SYSENTER stack, any DS)
k_verify:
        movl %ss:k_n, %ebx
        andl $1, %ebx
        shll $2, %ebx                   # parity * 4
        MM K_BAD_ENTRY, %ss:k_got_entry, %ss:k_exp_entry(%ebx)
        MM K_BAD_ESP, %ss:k_got_esp, %ss:k_exp_esp(%ebx)
        movl %ss:k_exp_cs(%ebx), %esi
        andl $0xfffc, %esi
        MM K_BAD_CS, %ss:k_got_cs1, %esi
        MM K_BAD_CS, %ss:k_got_cs2, %esi
        addl $8, %esi
        MM K_BAD_SS, %ss:k_got_ss1, %esi
        MM K_BAD_SS, %ss:k_got_ss2, %esi
        movl %ss:k_got_fl, %eax
        andl $(FL_IF|FL_VM|FL_RF), %eax
        MM K_BAD_IF, %eax, $0
        testl $KC_REGS, %ss:k_cfg
        jz 1f
        movl %ss:U_EXPFL, %eax
        andl $~FL_IF, %eax
        MM K_BAD_FL, %ss:k_got_fl, %eax
        MM K_BAD_REGS, %ss:k_got_eax, %ss:U_EXP_EAX
        MM K_BAD_REGS, %ss:k_got_ebx, %ss:U_EXP_EBX
        MM K_BAD_REGS, %ss:k_got_esi, %ss:U_EXP_ESI
        MM K_BAD_REGS, %ss:k_got_edi, %ss:U_EXP_EDI
        MM K_BAD_REGS, %ss:k_got_ebp, %ss:U_EXP_EBP
1:      testl $KC_SEGS, %ss:k_cfg
        jz 2f
        MM K_BAD_SEGS, %ss:k_got_ds, %ss:U_PRE_DS
        MM K_BAD_SEGS, %ss:k_got_es, %ss:U_PRE_ES
        MM K_BAD_SEGS, %ss:k_got_fs, %ss:U_PRE_FS
        MM K_BAD_SEGS, %ss:k_got_gs, %ss:U_PRE_GS
2:      ret

# --- kernel actions (called before the exit; SYSENTER stack, any DS) -------
# section 2: write SYSENTER_CS/ESP/EIP for the next round trip
k_act_flip:
        movl %ss:k_n, %ebx
        incl %ebx
        andl $1, %ebx
        movl $MSR_CS, %ecx
        movl %ss:k_exp_cs(,%ebx,4), %eax
        xorl %edx, %edx
        wrmsr
        movl $MSR_ESP, %ecx
        movl %ss:k_exp_esp(,%ebx,4), %eax
        wrmsr
        movl $MSR_EIP, %ecx
        movl %ss:k_exp_entry(,%ebx,4), %eax
        movl %ss:k_entries(,%eax,4), %eax
        wrmsr
        ret

# section 3: touch the supervisor pages (CPL0 reads), then load the segment
# register k_sec_seg with 0x10
k_act_sec:
        movl %ss:S_HI, %eax
        movl %ss:S_LO, %eax
        movl $RF_KDS, %eax
        movl %ss:k_sec_seg, %ebx
        jmp *%ss:k_sec_ld(,%ebx,4)
k_ld_ds: movw %ax, %ds
        ret
k_ld_es: movw %ax, %es
        ret
k_ld_fs: movw %ax, %fs
        ret
k_ld_gs: movw %ax, %gs
        ret

# section 4: round trip & 3 = 0: DS..GS = set 0; 2: set 1; odd: unchanged
k_act_segs:
        movl %ss:k_n, %eax
        testl $1, %eax
        jnz 1f
        andl $2, %eax
        shll $3, %eax                   # 0 or 16
        movl %ss:k_segset(%eax), %ecx
        movw %cx, %ds
        movl %ss:k_segset+4(%eax), %ecx
        movw %cx, %es
        movl %ss:k_segset+8(%eax), %ecx
        movw %cx, %fs
        movl %ss:k_segset+12(%eax), %ecx
        movw %cx, %gs
1:      ret

# section 5: round trip & 3 = 0: GDT[SG] base B1 + reload GS; 1: base B2, no
# reload (GS keeps B1); 2: reload (B2); 3: base B1, no reload (GS keeps B2)
k_act_gs:
        movl %ss:k_n, %eax
        andl $3, %eax
        movl %ss:k_gs_pick(,%eax,4), %ebx
        movl %ss:k_gs_desc(,%ebx,8), %ecx
        movl %ecx, %ss:rf_gdt+SG
        movl %ss:k_gs_desc+4(,%ebx,8), %ecx
        movl %ecx, %ss:rf_gdt+SG+4
        testl $1, %eax
        jnz 1f
        movl $(SG|3), %ecx
        movw %cx, %gs
1:      ret

# ===========================================================================
# User side
# ===========================================================================
# run_user_loop (CPL0): U_N round trips (fewer with U_IRQMIN, section 6)
run_user_loop:
        USER_BEGIN
u_iter:
        movl %ss:U_I, %ebp
        movl %ebp, %ecx
        andl $7, %ecx
        movl %ss:cmp_tbl(,%ecx,8), %eax
        movl %ss:cmp_tbl+4(,%ecx,8), %ebx
        imull $0x9e3779b1, %ebp, %esi
        movl %esi, %edi
        notl %edi
        xorl %ebp, %edi
        roll $7, %edi
        xorl $0x5a5a5a5a, %ebp
        movl %eax, %ss:U_EXP_EAX
        movl %ebx, %ss:U_EXP_EBX
        movl %esi, %ss:U_EXP_ESI
        movl %edi, %ss:U_EXP_EDI
        movl %ebp, %ss:U_EXP_EBP
        testl $8, %ss:U_I
        jz 1f
        std
        jmp 2f
1:      cld
2:      movw %ds, %ss:U_PRE_DS
        movw %es, %ss:U_PRE_ES
        movw %fs, %ss:U_PRE_FS
        movw %gs, %ss:U_PRE_GS
        cmpl %ebx, %eax
        pushfl
        popl %ss:U_EXPFL
        cmpl %ebx, %eax                 # the flags SYSENTER sees: lazy
u_site:                                 # THE sysenter site of every section
        sysenter
        ud2
u_land_a:                               # U_RET_EIP[0]
        movl %esp, %ss:U_GOT_ESP
        movl $0, %ss:U_GOT_LBL
        jmp u_land
u_land_b:                               # U_RET_EIP[1]
        movl %esp, %ss:U_GOT_ESP
        movl $1, %ss:U_GOT_LBL
u_land:
        pushfl
        popl %ss:U_GOT_FL
        movl %eax, %ss:U_GOT_EAX
        movl %ebx, %ss:U_GOT_EBX
        movl %ecx, %ss:U_GOT_ECX
        movl %edx, %ss:U_GOT_EDX
        movl %esi, %ss:U_GOT_ESI
        movl %edi, %ss:U_GOT_EDI
        movl %ebp, %ss:U_GOT_EBP
        SAVE_SREGS U_GOT_CS1, U_GOT_CS2, U_GOT_SS1, U_GOT_SS2, U_GOT_DS, U_GOT_ES, U_GOT_FS, U_GOT_GS
        call *%ss:U_POST
        call u_verify
        incl %ss:U_I
        movl %ss:U_I, %eax
        cmpl %ss:U_N, %eax
        jae 8f
        cmpl $0, %ss:U_IRQMIN
        je u_iter
        cmpl %ss:U_IRQMIN, %eax
        jb u_iter
        cmpl $IRQ_WANT, %ss:U_IRQ
        jb u_iter
8:      USER_END
        ret

# u_verify (CPL3): compare the landing state with the expectations
u_verify:
        movl %ss:U_I, %ebp
        U_BASIC
        MM U_BAD_REGS, %ss:U_GOT_EAX, %ss:U_EXP_EAX
        MM U_BAD_REGS, %ss:U_GOT_EBX, %ss:U_EXP_EBX
        MM U_BAD_REGS, %ss:U_GOT_ESI, %ss:U_EXP_ESI
        MM U_BAD_REGS, %ss:U_GOT_EDI, %ss:U_EXP_EDI
        MM U_BAD_REGS, %ss:U_GOT_EBP, %ss:U_EXP_EBP
        # EFLAGS: the user's (as the kernel saw them), changed as the kernel's
        # exit kind (round trip & 3) says; IF = 1 unless round trip & 4
        movl %ss:U_EXPFL, %eax
        movl %ebp, %ecx
        andl $3, %ecx
        cmpl $1, %ecx
        jne 1f
        xorl $XMASK, %eax
        jmp 3f
1:      cmpl $2, %ecx
        jne 2f
        andl $~ARITH, %eax
        orl %ss:U_FLC2, %eax
        jmp 3f
2:      cmpl $3, %ecx
        jne 3f
        andl $~ARITH, %eax
        orl %ss:U_FLC3, %eax
3:      andl $~FL_IF, %eax
        testl $4, %ebp
        jnz 4f
        orl $FL_IF, %eax
4:      MM U_BAD_FL, %ss:U_GOT_FL, %eax
        # DS..GS and the values read through them: U_EXP_SEG/VAL[round trip & 3]
        movl %ebp, %ebx
        andl $3, %ebx
        shll $4, %ebx
        MM U_BAD_SEGS, %ss:U_GOT_DS, %ss:U_EXP_SEG(%ebx)
        MM U_BAD_SEGS, %ss:U_GOT_ES, %ss:U_EXP_SEG+4(%ebx)
        MM U_BAD_SEGS, %ss:U_GOT_FS, %ss:U_EXP_SEG+8(%ebx)
        MM U_BAD_SEGS, %ss:U_GOT_GS, %ss:U_EXP_SEG+12(%ebx)
        MM U_BAD_VAL, %ss:U_GOT_V0, %ss:U_EXP_VAL(%ebx)
        MM U_BAD_VAL, %ss:U_GOT_V1, %ss:U_EXP_VAL+4(%ebx)
        MM U_BAD_VAL, %ss:U_GOT_V2, %ss:U_EXP_VAL+8(%ebx)
        MM U_BAD_VAL, %ss:U_GOT_V3, %ss:U_EXP_VAL+12(%ebx)
        ret

# U_POST routines (CPL3, after the landing state was recorded)
u_post_none:
        ret
u_post_segs:                            # section 4
        movl %ds:0, %eax
        movl %eax, %ss:U_GOT_V0
        movl %es:0x10, %eax
        movl %eax, %ss:U_GOT_V1
        movl %fs:0x20, %ebx
        movl %ebx, %ss:U_GOT_V2
        movl %gs:0x30, %ecx
        movl %ecx, %ss:U_GOT_V3
        ret
u_post_gs:                              # section 5: TLS-style GS operands
        movl %gs:-4, %edx
        movl %edx, %ss:U_GOT_V0
        movl %gs:0x20000, %eax
        movl %eax, %ss:U_GOT_V1
        movl %gs:0x14, %ebx
        movl %ebx, %ss:U_GOT_V2
        movl %gs:0, %ecx
        movl %ecx, %ss:U_GOT_V3
        ret

# run_ns_loop (CPL0): round trips whose landing never touches the user stack
# (section 7: ESP points to pages a push would fault on)
run_ns_loop:
        USER_BEGIN
        jmp u_site
ns_land_a:
        movl %esp, %ss:U_GOT_ESP
        movl $0, %ss:U_GOT_LBL
        jmp ns_land
ns_land_b:
        movl %esp, %ss:U_GOT_ESP
        movl $1, %ss:U_GOT_LBL
ns_land:
        movl %ecx, %ss:U_GOT_ECX
        movl %edx, %ss:U_GOT_EDX
        movl %cs, %eax
        movzwl %ax, %eax
        movl %eax, %ss:U_GOT_CS1
        movl %eax, %ss:U_GOT_CS2
        movl %ss, %eax
        movzwl %ax, %eax
        movl %eax, %ss:U_GOT_SS1
        movl %eax, %ss:U_GOT_SS2
        movl %ss:U_I, %ebp
        U_BASIC
        incl %ss:U_I
        movl %ss:U_I, %eax
        cmpl %ss:U_N, %eax
        jb u_site
        USER_END
        ret

# ===========================================================================
# CPL0 helpers
# ===========================================================================
# rt_defaults: counters zero, 0x08 / kstk_a / k_entry, landing u_land_a/b on
# the user stack, flat user segments expected, no action, all kernel checks
rt_defaults:
        pushal
        movl $sf_zero, %edi
        movl $((sf_zero_end - sf_zero) / 4), %ecx
        xorl %eax, %eax
        cld
        rep stosl
        movl $u_land_a, U_RET_EIP
        movl $u_land_b, U_RET_EIP+4
        movl $UESP_A, U_RET_ESP
        movl $UESP_B, U_RET_ESP+4
        movl $u_post_none, U_POST
        movl $RF_UDS, %eax
        movl $U_EXP_SEG, %edi
        movl $16, %ecx
        rep stosl
        movl $(KC_REGS|KC_SEGS), k_cfg
        movl $RF_KCS, k_exp_cs
        movl $RF_KCS, k_exp_cs+4
        movl $kstk_a_top, k_exp_esp
        movl $kstk_a_top, k_exp_esp+4
        popal
        ret

# rt_apply: SYSENTER_CS/ESP/EIP = k_exp_*[0]; user CS/SS expectations for
# both parities (with k_act_flip the MSRs at SYSEXIT are those of the next
# round trip)
rt_apply:
        pushal
        WRMSR_ MSR_CS, k_exp_cs
        WRMSR_ MSR_ESP, k_exp_esp
        movl k_exp_entry, %eax
        movl k_entries(,%eax,4), %eax
        movl $MSR_EIP, %ecx
        xorl %edx, %edx
        wrmsr
        xorl %ebx, %ebx
        cmpl $k_act_flip, k_action
        jne 1f
        movl $1, %ebx
1:      xorl %esi, %esi
2:      leal (%esi,%ebx), %edi
        andl $1, %edi
        movl k_exp_cs(,%edi,4), %eax
        leal 16(%eax), %ecx
        orl $3, %ecx
        movl %ecx, U_EXP_CS(,%esi,4)
        leal 24(%eax), %ecx
        orl $3, %ecx
        movl %ecx, U_EXP_SS(,%esi,4)
        incl %esi
        cmpl $2, %esi
        jb 2b
        popal
        ret

# rt_first(desc): print the first recorded mismatch of the loop, if any
rt_first:
        pushal
        cmpl $0, FIRST_NAME
        je 1f
        PUTS "# "
        pushl 36(%esp)
        call rf_puts_arg
        PUTS ": first mismatch: "
        pushl FIRST_NAME
        call rf_puts_arg
        PUTS " at round trip "
        PUTDEC FIRST_I
        PUTS ": got "
        PUTHEX FIRST_GOT
        PUTS ", want "
        PUTHEX FIRST_WANT
        call rf_nl
1:      popal
        ret $4

# irq_note: where the first interrupt taken at CPL0 (if any) landed
irq_note:
        cmpl $0, T_CPL0_EIP
        je 1f
        PUTS "# first interrupt at CPL0: eip="
        PUTHEX T_CPL0_EIP
        PUTS " cs="
        PUTHEX T_CPL0_CS
        PUTS " eflags="
        PUTHEX T_CPL0_FL
        call rf_nl
1:      ret

# k_bad_sum: EAX = sum of the kernel side's basic mismatch counters
k_bad_sum:
        movl K_BAD_ENTRY, %eax
        addl K_BAD_CS, %eax
        addl K_BAD_SS, %eax
        addl K_BAD_ESP, %eax
        addl K_BAD_IF, %eax
        ret

# sf_hook (rf_hook): CR2 on #PF; while SF_RESUME != 0 and the fault came
# from CPL SF_RPL: record it in SF_* and IRET to SF_RESUME
sf_hook:
        cmpl $V_PF, rf_x_vec
        jne 1f
        movl %cr2, %eax
        movl %eax, SF_CR2
        movl %eax, pg_cr2
1:      cmpl $0, SF_RESUME
        je 9f
        movl rf_x_cs, %eax
        andl $3, %eax
        cmpl SF_RPL, %eax
        jne 9f
        incl SF_N
        movl rf_x_vec, %eax
        movl %eax, SF_VEC
        movl rf_x_err, %eax
        movl %eax, SF_ERR
        movl rf_x_eip, %eax
        movl %eax, SF_EIP
        movl rf_x_cs, %eax
        movl %eax, SF_CS
        movl 4(%esp), %ecx
        movl SF_RESUME, %eax
        movl %eax, 60(%ecx)
        movl $1, %eax
        ret
9:      xorl %eax, %eax
        ret

# IRQ0 (vector 0x20): count, check where it landed, EOI
t_irq0:
        pushl %eax
        pushl %ds
        movl $RF_KDS, %eax
        movw %ax, %ds
        incl U_IRQ
        cmpl $0, k_in
        je 1f
        incl T_BAD_KIN
1:      testb $3, 12(%esp)
        jnz 2f
        incl T_BAD_CPL0
        cmpl $0, T_CPL0_EIP
        jne 2f
        movl 8(%esp), %eax              # first one: where
        movl %eax, T_CPL0_EIP
        movl 12(%esp), %eax
        movl %eax, T_CPL0_CS
        movl 16(%esp), %eax
        movl %eax, T_CPL0_FL
2:      testl $FL_IF, 16(%esp)
        jnz 3f
        incl T_BAD_IF
3:      movl 8(%esp), %eax
        cmpl $u_land_a, %eax
        je 4f
        cmpl $u_land_b, %eax
        jne 5f
4:      incl T_AT_LAND
5:      movb $0x20, %al
        outb %al, $0x20
        popl %ds
        popl %eax
        iret

t_spurious:                             # IRQ7 (vector 0x27): no EOI
        iret

# PIC: IRQ0-7 -> vectors 0x20-0x27, only IRQ0 unmasked; PIT channel 0 mode 2
pit_start:
        pushl %eax
        movb $0x11, %al
        outb %al, $0x20
        outb %al, $0xa0
        movb $0x20, %al
        outb %al, $0x21
        movb $0x28, %al
        outb %al, $0xa1
        movb $0x04, %al
        outb %al, $0x21
        movb $0x02, %al
        outb %al, $0xa1
        movb $0x01, %al
        outb %al, $0x21
        outb %al, $0xa1
        movb $0xff, %al
        outb %al, $0xa1
        movb $0x34, %al
        outb %al, $0x43
        movb $(PIT_DIV & 0xff), %al
        outb %al, $0x40
        movb $(PIT_DIV >> 8), %al
        outb %al, $0x40
        movb $0xfe, %al
        outb %al, $0x21
        popl %eax
        ret

pit_stop:
        pushl %eax
        movb $0xff, %al
        outb %al, $0x21
        movb $0x30, %al                 # mode 0 (one shot), count 0xffff
        outb %al, $0x43
        movb $0xff, %al
        outb %al, $0x40
        outb %al, $0x40
        popl %eax
        ret

# ===========================================================================
# Section 3 loop: SEC_LOOP seg, addr, err, acc, "name"
#   the kernel side loads `seg` = 0x10 (after reading S_HI and S_LO); the
#   user reads UPG through it (must work), then reads (acc=read) or writes
#   (acc=write) `addr` through it: #PF(err), CR2 = addr, EAX unchanged.
        .macro SEC_LOOP seg, addr, err, acc, name
        call rt_defaults
        movl $0, k_cfg
        movl $k_act_sec, k_action
        movl $SEGIDX_\seg, k_sec_seg
        movl $.Lsl_land\@, U_RET_EIP
        movl $.Lsl_land\@, U_RET_EIP+4
        movl $SEC_N, U_N
        movl $.Lsl_res\@, SF_RESUME
        movl $3, SF_RPL
        call rt_apply
        SAFE_CALL .Lsl_fn\@, "\name"
        jmp .Lsl_chk\@
.Lsl_fn\@:
        USER_BEGIN
        jmp u_site
.Lsl_land\@:
        movl %\seg:UPG, %eax
        MM U_BAD_UREAD, %eax, $PAT_UPG
        movl %\seg, %eax
        movzwl %ax, %eax
        MM U_BAD_SEGS, %eax, $RF_KDS
        movl %ss:SF_N, %ebx
        incl %ebx
        movl $SENTINEL, %eax
.Lsl_acc\@:
        .ifc \acc,read
        movl %\seg:\addr, %eax
        .else
        movl %eax, %\seg:\addr
        .endif
        incl %ss:U_LEAK
        jmp .Lsl_next\@
.Lsl_res\@:
        MM U_LEAK, %eax, $SENTINEL
        MM U_BAD_PF, %ss:SF_N, %ebx
        MM U_BAD_PF, %ss:SF_VEC, $V_PF
        MM U_BAD_PF, %ss:SF_ERR, $(\err)
        MM U_BAD_PF, %ss:SF_EIP, $.Lsl_acc\@
        MM U_BAD_PF, %ss:SF_CR2, $(\addr)
        MM U_BAD_PF, %ss:SF_CS, $RF_UCS
.Lsl_next\@:
        incl %ss:U_I
        movl %ss:U_I, %eax
        cmpl %ss:U_N, %eax
        jb u_site
        USER_END
        ret
.Lsl_chk\@:
        CHECK_EQ U_I, $SEC_N, "\name: round trips done"
        CHECK_EQ k_n, $SEC_N, "\name: kernel entries"
        call k_bad_sum
        CHECK_EQ %eax, $0, "\name: kernel side: EIP CS SS ESP IF"
        CHECK_EQ U_BAD_SEGS, $0, "\name: user: \seg = 0x10 after SYSEXIT"
        CHECK_EQ U_BAD_UREAD, $0, "\name: user page readable through \seg = 0x10"
        CHECK_EQ U_LEAK, $0, "\name: the access never completes, EAX unchanged"
        CHECK_EQ U_BAD_PF, $0, "\name: #PF(\err) at the access, CR2, every round trip"
        RF_DESCSTR "\name"
        call rt_first
        .endm

# Section 7 loop: STK_LOOP espa, espb, "name" -- SYSEXIT with ECX = espa on
# even round trips and espb on odd ones; the user never pushes
        .macro STK_LOOP espa, espb, name
        call rt_defaults
        movl $0, k_cfg
        movl $ns_land_a, U_RET_EIP
        movl $ns_land_b, U_RET_EIP+4
        movl $(\espa), U_RET_ESP
        movl $(\espb), U_RET_ESP+4
        movl $STK_N, U_N
        call rt_apply
        SAFE_CALL run_ns_loop, "\name"
        CHECK_EQ U_I, $STK_N, "\name: round trips done"
        CHECK_EQ k_n, $STK_N, "\name: kernel entries"
        call k_bad_sum
        CHECK_EQ %eax, $0, "\name: kernel side: EIP CS SS ESP IF"
        CHECK_EQ U_BAD_EIP, $0, "\name: user: EIP = EDX"
        CHECK_EQ U_BAD_ESP, $0, "\name: user: ESP = ECX"
        CHECK_EQ U_BAD_CXDX, $0, "\name: user: ECX and EDX kept"
        CHECK_EQ U_BAD_CS, $0, "\name: user: CS = 0x1b"
        CHECK_EQ U_BAD_SS, $0, "\name: user: SS = 0x23"
        RF_DESCSTR "\name"
        call rt_first
        .endm

# IRQ_LOOP "name": the loop set up before, with the PIT running, until
# IRQ_WANT interrupts arrived (at least IRQ_NMIN round trips)
        .macro IRQ_LOOP name
        movl $IRQ_NMAX, U_N
        movl $IRQ_NMIN, U_IRQMIN
        call pit_start
        SAFE_CALL run_user_loop, "\name"
        call pit_stop
        movl U_I, %eax
        cmpl $IRQ_NMIN, %eax
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "\name: at least IRQ_NMIN round trips"
        RT_REPORT "\name", O_ALL
        CHECK_TRUE U_IRQ, "\name: timer interrupts arrived"
        CHECK_EQ T_BAD_KIN, $0, "\name: no interrupt while the kernel side ran (IF=0 after SYSENTER)"
        CHECK_EQ T_BAD_CPL0, $0, "\name: no interrupt at CPL0 (sti; sysexit: taken after SYSEXIT)"
        CHECK_EQ T_BAD_IF, $0, "\name: no interrupt while the user ran with IF=0"
        PUTS "# \name: "
        PUTDEC U_I
        PUTS " round trips, "
        PUTDEC U_IRQ
        PUTS " interrupts, "
        PUTDEC T_AT_LAND
        PUTS " of them right after SYSEXIT"
        call rf_nl
        call irq_note
        .endm

# ===========================================================================
rf_main:
        NOTE "sysfast: warm SYSENTER/SYSEXIT round trips (inline fast system calls)"
        movl $1, %eax
        cpuid
        testl $(1<<11), %edx
        jnz 1f
        SKIP "SYSENTER/SYSEXIT (no CPUID.1:EDX.SEP)"
        ret
1:      call pg_setup                   # CPUID probe, image size check
        movl $sf_hook, rf_hook
        # flags produced by the kernel's exit kinds 2 and 3
        cmpl $-1, k_c2a
        pushfl
        popl %eax
        andl $ARITH, %eax
        movl %eax, U_FLC2
        cmpl $K_C3B, k_c3a
        pushfl
        popl %eax
        andl $ARITH, %eax
        movl %eax, U_FLC3
        CHECK_MASK U_FLC2, $(FL_CF|FL_ZF|FL_SF|FL_OF), $(FL_CF|FL_SF|FL_OF), "setup: flags of the exit kind 2 (CF SF OF)"
        CHECK_MASK U_FLC3, $(FL_CF|FL_ZF|FL_SF|FL_OF), $FL_ZF, "setup: flags of the exit kind 3 (ZF)"

        # ------------------------------------------------------------ 1
        NOTE "1: round trips (SYSENTER_CS=0x08), paging off"
        call rt_defaults
        call rt_apply
        RT_LOOP "1 round trip", O_ALL-O_UV

        # ------------------------------------------------------------ 2
        NOTE "2: WRMSR between loops and inside the kernel side"
        call rt_defaults
        movl $kstk_b_top, k_exp_esp
        movl $kstk_b_top, k_exp_esp+4
        call rt_apply
        RT_LOOP "2 SYSENTER_ESP changed", O_ALL-O_UV

        call rt_defaults
        movl $1, k_exp_entry
        movl $1, k_exp_entry+4
        call rt_apply
        RT_LOOP "2 SYSENTER_EIP changed", O_ALL-O_UV

        # bogus descriptors (base 0x1000, limit 0xfff) in the slots: the
        # instructions must not read them
        GDT_DESC $0x30, $0x1000, $0xfff, $0x9b, $0x4
        GDT_DESC $0x38, $0x1000, $0xfff, $0x93, $0x4
        GDT_DESC $0x40, $0x1000, $0xfff, $0xfb, $0x4
        GDT_DESC $0x48, $0x1000, $0xfff, $0xf3, $0x4
        call rt_defaults
        movl $CS_POISON, k_exp_cs
        movl $CS_POISON, k_exp_cs+4
        call rt_apply
        RT_LOOP "2 SYSENTER_CS=0x33 (GDT 0x30-0x48 bogus)", O_ALL-O_UV

        call rt_defaults
        movl $CS_NULL, k_exp_cs
        movl $CS_NULL, k_exp_cs+4
        movl $kstk_b_top, k_exp_esp
        movl $kstk_b_top, k_exp_esp+4
        call rt_apply
        RT_LOOP "2 SYSENTER_CS=0x50 (GDT 0x50-0x68 empty)", O_ALL-O_UV

        call rt_defaults
        call rt_apply
        RT_LOOP "2 SYSENTER_CS/ESP/EIP back to 0x08/A/entry", O_ALL-O_UV

        # all three MSRs written by the kernel side on every round trip
        call rt_defaults
        movl $RF_KCS, k_exp_cs
        movl $CS_POISON, k_exp_cs+4
        movl $kstk_b_top, k_exp_esp+4
        movl $1, k_exp_entry+4
        movl $k_act_flip, k_action
        call rt_apply
        RT_LOOP "2 kernel flips SYSENTER_CS/ESP/EIP every round trip", O_ALL-O_UV
        call rt_defaults
        call rt_apply

        # ------------------------------------------------------------ 4
        NOTE "4: the kernel side loads DS ES FS GS with DPL3 segments of other bases"
        call setup_segs
        call rt_defaults
        call setup_segs_exp
        call rt_apply
        RT_LOOP "4 kernel sets DS ES FS GS", O_ALL

        # ------------------------------------------------------------ 5
        NOTE "5: TLS: the GS descriptor's base rewritten in the GDT (+ GS reloaded)"
        call setup_gs
        call rt_defaults
        call setup_gs_exp
        call rt_apply
        RT_LOOP "5 GS base switch", O_ALL

        # ------------------------------------------------------------ 6
        NOTE "6: PIT at ~20 kHz during the round trips (IRQ0 -> 0x20)"
        IDT_GATE $0x20, $0x8e, $t_irq0
        IDT_GATE $0x27, $0x8e, $t_spurious
        call rt_defaults
        call rt_apply
        IRQ_LOOP "6 round trips + IRQ0"
        call rt_defaults
        call setup_segs_exp
        call rt_apply
        IRQ_LOOP "6 DS ES FS GS switch + IRQ0"
        call rt_defaults
        call setup_gs_exp
        call rt_apply
        IRQ_LOOP "6 GS base switch + IRQ0"

        # ------------------------------------------------------------ paging
        call setup_paging
        NOTE "1p: round trips with paging on"
        call rt_defaults
        call rt_apply
        RT_LOOP "1p round trip (paging)", O_ALL-O_UV

        # ------------------------------------------------------------ 3
        NOTE "3: ring-0 data segments after SYSEXIT: paging still protects"
        SEC_LOOP ds, S_HI, PF_P|PF_U, read, "3 DS=0x10: read S 0xc0005000"
        SEC_LOOP ds, S_LO, PF_P|PF_U, read, "3 DS=0x10: read S 0x40004000"
        SEC_LOOP ds, S_HI, PF_P|PF_W|PF_U, write, "3 DS=0x10: write S 0xc0005000"
        CHECK_EQ F_S_HI, $PAT_S_HI, "3 DS=0x10: supervisor page unchanged by the writes"
        SEC_LOOP ds, S_NP, PF_U, read, "3 DS=0x10: read not-present 0x40007000"
        SEC_LOOP es, S_HI, PF_P|PF_U, read, "3 ES=0x10: read S 0xc0005000"
        SEC_LOOP es, S_LO, PF_P|PF_U, read, "3 ES=0x10: read S 0x40004000"
        SEC_LOOP fs, S_HI, PF_P|PF_U, read, "3 FS=0x10: read S 0xc0005000"
        SEC_LOOP fs, S_LO, PF_P|PF_U, read, "3 FS=0x10: read S 0x40004000"
        SEC_LOOP gs, S_HI, PF_P|PF_U, read, "3 GS=0x10: read S 0xc0005000"
        SEC_LOOP gs, S_LO, PF_P|PF_U, read, "3 GS=0x10: read S 0x40004000"
        # phase B: a user page above 3 GiB exists (and was accessed at CPL3)
        PG_SETPTE $U_HI, $(F_U_HI|PG_P|PG_RW|PG_US)
        PG_FLUSH
        USER_BEGIN
        movl U_HI, %eax
        USER_END
        CHECK_EQ %eax, $PAT_U_HI, "3 phase B: user page at 0xc0008000 readable at CPL3"
        SEC_LOOP ds, S_HI, PF_P|PF_U, read, "3B DS=0x10: read S 0xc0005000"
        SEC_LOOP ds, S_LO, PF_P|PF_U, read, "3B DS=0x10: read S 0x40004000"
        SEC_LOOP gs, S_HI, PF_P|PF_U, read, "3B GS=0x10: read S 0xc0005000"

        # ------------------------------------------------------------ 7
        NOTE "7: SYSEXIT to a user stack a push would fault on (no push follows)"
        STK_LOOP R_PG+4, P_PG, "7 ESP in a read-only page / at a page above a not-present one"
        STK_LOOP NP_PG+0x800, S_LO+0x800, "7 ESP in a not-present page / a supervisor page"
        STK_LOOP 0, S_HI+4, "7 ESP=0 / ESP in a supervisor page at 3 GiB"
        call pg_leave

        # ------------------------------------------------------------ 8
        NOTE "8: #GP(0) from the warm sites"
        call section8
        WRMSR_ MSR_CS, $0
        ret


# section 4 setup: descriptors 0x30..0x48 = DPL3 data, base SEGB + j pages,
# memory SEGVAL + j*0x100 + off at SEGB + j*0x1000 + off (off 0..0x30)
setup_segs:
        GDT_DESC $0x30, $SEGB, $0xfff, $0xf3, $0x4
        GDT_DESC $0x38, $(SEGB+0x1000), $0xfff, $0xf3, $0x4
        GDT_DESC $0x40, $(SEGB+0x2000), $0xfff, $0xf3, $0x4
        GDT_DESC $0x48, $(SEGB+0x3000), $0xfff, $0xf3, $0x4
        xorl %ecx, %ecx                 # j
1:      xorl %edx, %edx                 # off
2:      movl %ecx, %eax
        shll $8, %eax
        addl $SEGVAL, %eax
        addl %edx, %eax
        movl %ecx, %edi
        shll $12, %edi
        movl %eax, SEGB(%edi,%edx)
        addl $0x10, %edx
        cmpl $0x40, %edx
        jb 2b
        incl %ecx
        cmpl $4, %ecx
        jb 1b
        ret

setup_segs_exp:
        pushal
        movl $seg_exp_seg, %esi
        movl $U_EXP_SEG, %edi
        movl $32, %ecx
        cld
        rep movsl
        movl $k_act_segs, k_action
        movl $u_post_segs, U_POST
        popal
        ret

# section 5 setup: the two versions of the GS descriptor, the data at
# B-4, B+0x20000, B+0x14, B+0 for both bases, and the expectations
setup_gs:
        GDT_DESC $SG, $GSB2, $0xfffff, $0xf3, $0xc
        movl rf_gdt+SG, %eax
        movl %eax, k_gs_desc+8
        movl rf_gdt+SG+4, %eax
        movl %eax, k_gs_desc+12
        GDT_DESC $SG, $GSB1, $0xfffff, $0xf3, $0xc
        movl rf_gdt+SG, %eax
        movl %eax, k_gs_desc
        movl rf_gdt+SG+4, %eax
        movl %eax, k_gs_desc+4
        movl $(GSV1|0xfc), GSB1-4
        movl $(GSV1|0x20), GSB1+0x20000
        movl $(GSV1|0x14), GSB1+0x14
        movl $(GSV1|0x00), GSB1
        movl $(GSV2|0xfc), GSB2-4
        movl $(GSV2|0x20), GSB2+0x20000
        movl $(GSV2|0x14), GSB2+0x14
        movl $(GSV2|0x00), GSB2
        ret

setup_gs_exp:
        pushal
        movl $gs_exp_val, %esi
        movl $U_EXP_VAL, %edi
        movl $16, %ecx
        cld
        rep movsl
        movl $(SG|3), U_EXP_SEG+12
        movl $(SG|3), U_EXP_SEG+16+12
        movl $(SG|3), U_EXP_SEG+32+12
        movl $(SG|3), U_EXP_SEG+48+12
        movl $k_act_gs, k_action
        movl $u_post_gs, U_POST
        popal
        ret

# paging on (32-bit), our user data page user/RW, the section 3/7 pages
setup_paging:
        call pg_enter32
        movl $PAT_S_LO, F_S_LO
        movl $PAT_UPG, F_UPG
        movl $PAT_S_HI, F_S_HI
        movl $PAT_U_HI, F_U_HI
        PG_SETPTE $sf_udata, $(sf_udata+PG_P+PG_RW+PG_US)
        PG_SETPTE $S_LO, $(F_S_LO|PG_P|PG_RW)
        PG_SETPTE $UPG, $(F_UPG|PG_P|PG_RW|PG_US)
        PG_SETPTE $R_PG, $(F_R|PG_P|PG_US)
        PG_SETPTE $P_PG, $(F_P|PG_P|PG_RW|PG_US)
        PG_SETPDE $HI_BASE, $(sf_pt_hi+PG_P+PG_RW+PG_US)
        PG_SETPTE $S_HI, $(F_S_HI|PG_P|PG_RW)
        PG_FLUSH
        ret

# ===========================================================================
# Section 8: #GP(0) from warm sites
section8:
        # (a) SYSENTER at CPL3 (u_site, warm) with SYSENTER_CS = 0
        call rt_defaults
        call rt_apply
        WRMSR_ MSR_CS, $0
        movl $G_N, U_N
        movl $g_res_a, SF_RESUME
        movl $3, SF_RPL
        SAFE_CALL g_loop_a, "8 sysenter with SYSENTER_CS=0"
        CHECK_EQ U_I, $G_N, "8 sysenter with SYSENTER_CS=0: attempts"
        CHECK_EQ k_n, $0, "8 sysenter with SYSENTER_CS=0: SYSENTER_EIP never reached"
        CHECK_EQ U_BAD_PF, $0, "8 sysenter with SYSENTER_CS=0: #GP(0) at the site, every time"
        RF_DESCSTR "8 sysenter with SYSENTER_CS=0"
        call rt_first

        # (b) SYSEXIT at CPL3: the kernel's warm site and a user site
        call rt_defaults
        call rt_apply
        movl $G_N, U_N
        movl $g_res_b, SF_RESUME
        movl $3, SF_RPL
        SAFE_CALL g_loop_b, "8 sysexit at CPL3"
        CHECK_EQ U_I, $G_N, "8 sysexit at CPL3: attempts"
        CHECK_EQ U_LEAK, $0, "8 sysexit at CPL3: never completes"
        CHECK_EQ U_BAD_PF, $0, "8 sysexit at CPL3: #GP(0) at the site, every time"
        RF_DESCSTR "8 sysexit at CPL3"
        call rt_first

        # (c) SYSEXIT at CPL0 (the kernel's warm site) with SYSENTER_CS = 0
        call rt_defaults
        call rt_apply
        WRMSR_ MSR_CS, $0
        movl $G_N, U_N
        movl $g_res_c, SF_RESUME
        movl $0, SF_RPL
        SAFE_CALL g_loop_c, "8 sysexit with SYSENTER_CS=0"
        CHECK_EQ U_I, $G_N, "8 sysexit with SYSENTER_CS=0: attempts"
        CHECK_EQ U_BAD_PF, $0, "8 sysexit with SYSENTER_CS=0: #GP(0) at the site, every time"
        RF_DESCSTR "8 sysexit with SYSENTER_CS=0"
        call rt_first
        ret

g_loop_a:
        USER_BEGIN
1:      movl %ss:SF_N, %ebx
        incl %ebx
        jmp u_site
g_res_a:
        MM U_BAD_PF, %ss:SF_N, %ebx
        MM U_BAD_PF, %ss:SF_VEC, $V_GP
        MM U_BAD_PF, %ss:SF_ERR, $0
        MM U_BAD_PF, %ss:SF_EIP, $u_site
        MM U_BAD_PF, %ss:SF_CS, $RF_UCS
        incl %ss:U_I
        movl %ss:U_I, %eax
        cmpl %ss:U_N, %eax
        jb 1b
        USER_END
        ret

g_loop_b:
        USER_BEGIN
1:      movl %ss:SF_N, %ebx
        incl %ebx
        movl $g_esc_b, %edx
        movl %esp, %ecx
        testl $1, %ss:U_I
        jnz 2f
        movl $k_sx_plain, %esi
        jmp k_sx_plain                  # the kernel's warm SYSEXIT, at CPL3
2:      movl $u_sx_site, %esi
u_sx_site:
        sysexit
g_esc_b:
        incl %ss:U_LEAK
        jmp 3f
g_res_b:
        MM U_BAD_PF, %ss:SF_N, %ebx
        MM U_BAD_PF, %ss:SF_VEC, $V_GP
        MM U_BAD_PF, %ss:SF_ERR, $0
        MM U_BAD_PF, %ss:SF_EIP, %esi
        MM U_BAD_PF, %ss:SF_CS, $RF_UCS
3:      incl %ss:U_I
        movl %ss:U_I, %eax
        cmpl %ss:U_N, %eax
        jb 1b
        USER_END
        ret

g_loop_c:
1:      movl SF_N, %ebx
        incl %ebx
        movl $g_esc_c, %edx
        movl %esp, %ecx
        jmp k_sx_plain
g_res_c:
        MM U_BAD_PF, %ss:SF_N, %ebx
        MM U_BAD_PF, %ss:SF_VEC, $V_GP
        MM U_BAD_PF, %ss:SF_ERR, $0
        MM U_BAD_PF, %ss:SF_EIP, $k_sx_plain
        MM U_BAD_PF, %ss:SF_CS, $RF_KCS
        incl U_I
        movl U_I, %eax
        cmpl U_N, %eax
        jb 1b
        ret
g_esc_c:                                # only if SYSEXIT did not fault (CPL3)
        ud2

# ===========================================================================
        .section .rodata
        .balign 4
# CMP operand pairs (EAX, EBX) for round trip & 7
cmp_tbl:
        .long 5, 5                      # ZF PF
        .long 1, 2                      # CF SF AF PF
        .long 0x80000000, 1             # OF AF PF
        .long 0x7fffffff, 0xffffffff    # OF SF CF
        .long 0x12345678, 0x1234
        .long 0x10, 0x01                # AF
        .long 3, 0x80000003             # CF SF OF
        .long 0xdeadbeef, 0x01234567

# section 4 expectations by round trip & 3: sets 0, 0, 1, 1
seg_exp_seg:
        .rept 2
        .long 0x33, 0x3b, 0x43, 0x4b
        .endr
        .rept 2
        .long 0x4b, 0x43, 0x3b, 0x33
        .endr
seg_exp_val:                            # DS:0, ES:0x10, FS:0x20, GS:0x30
        .rept 2
        .long SEGVAL+0x000, SEGVAL+0x110, SEGVAL+0x220, SEGVAL+0x330
        .endr
        .rept 2
        .long SEGVAL+0x300, SEGVAL+0x210, SEGVAL+0x120, SEGVAL+0x030
        .endr
# section 5 expectations: gs:-4, gs:0x20000, gs:0x14, gs:0 for B1 B1 B2 B2
gs_exp_val:
        .rept 2
        .long GSV1|0xfc, GSV1|0x20, GSV1|0x14, GSV1
        .endr
        .rept 2
        .long GSV2|0xfc, GSV2|0x20, GSV2|0x14, GSV2
        .endr

        .data
        .balign 4
k_entries:      .long k_entry, k_entry2
k_tails:        .long kt_sti, kt_sti, kt_c2_sti, kt_c3_sti
                .long kt_cli, kt_cli, kt_c2_cli, kt_c3_cli
k_sec_ld:       .long k_ld_ds, k_ld_es, k_ld_fs, k_ld_gs
k_segset:       .long 0x33, 0x3b, 0x43, 0x4b
                .long 0x4b, 0x43, 0x3b, 0x33
k_gs_pick:      .long 0, 1, 1, 0
k_c2a:          .long K_C2A
k_c3a:          .long K_C3A

        .bss
        .balign 4096
sf_pt_hi:       .fill 4096, 1, 0        # page table for 0xc0000000-0xc03fffff
kstk_a:         .fill 4096, 1, 0
kstk_a_top:
kstk_b:         .fill 4096, 1, 0
kstk_b_top:
# one page, user read/write under paging: the state of both sides
sf_udata:
U_FLC2:         .long 0                 # flags of the kernel's exit kinds 2, 3
U_FLC3:         .long 0
k_gs_desc:      .fill 4, 4, 0           # section 5: GS descriptor, base B1 / B2
# zeroed by rt_defaults (then defaults set)
sf_zero:
U_N:            .long 0
U_POST:         .long 0
U_IRQMIN:       .long 0
U_RET_EIP:      .long 0, 0
U_RET_ESP:      .long 0, 0
U_EXP_CS:       .long 0, 0
U_EXP_SS:       .long 0, 0
U_EXP_SEG:      .fill 16, 4, 0          # [round trip & 3][DS ES FS GS]
U_EXP_VAL:      .fill 16, 4, 0          # (must follow U_EXP_SEG)
k_cfg:          .long 0
k_action:       .long 0
k_exp_cs:       .long 0, 0              # [round trip & 1]: SYSENTER_CS
k_exp_esp:      .long 0, 0              # ... SYSENTER_ESP
k_exp_entry:    .long 0, 0              # ... 0 = k_entry, 1 = k_entry2
k_sec_seg:      .long 0
SF_RESUME:      .long 0
SF_RPL:         .long 0
k_tail:         .long 0
k_exit_fl:      .long 0
U_I:            .long 0
U_IRQ:          .long 0
U_EXP_EAX:      .long 0
U_EXP_EBX:      .long 0
U_EXP_ESI:      .long 0
U_EXP_EDI:      .long 0
U_EXP_EBP:      .long 0
U_EXPFL:        .long 0
U_PRE_DS:       .long 0
U_PRE_ES:       .long 0
U_PRE_FS:       .long 0
U_PRE_GS:       .long 0
U_GOT_ESP:      .long 0
U_GOT_LBL:      .long 0
U_GOT_FL:       .long 0
U_GOT_EAX:      .long 0
U_GOT_EBX:      .long 0
U_GOT_ECX:      .long 0
U_GOT_EDX:      .long 0
U_GOT_ESI:      .long 0
U_GOT_EDI:      .long 0
U_GOT_EBP:      .long 0
U_GOT_CS1:      .long 0
U_GOT_CS2:      .long 0
U_GOT_SS1:      .long 0
U_GOT_SS2:      .long 0
U_GOT_DS:       .long 0
U_GOT_ES:       .long 0
U_GOT_FS:       .long 0
U_GOT_GS:       .long 0
U_GOT_V0:       .long 0
U_GOT_V1:       .long 0
U_GOT_V2:       .long 0
U_GOT_V3:       .long 0
U_BAD_EIP:      .long 0
U_BAD_ESP:      .long 0
U_BAD_CXDX:     .long 0
U_BAD_CS:       .long 0
U_BAD_SS:       .long 0
U_BAD_REGS:     .long 0
U_BAD_FL:       .long 0
U_BAD_SEGS:     .long 0
U_BAD_VAL:      .long 0
U_BAD_UREAD:    .long 0
U_LEAK:         .long 0
U_BAD_PF:       .long 0
K_BAD_ENTRY:    .long 0
K_BAD_CS:       .long 0
K_BAD_SS:       .long 0
K_BAD_ESP:      .long 0
K_BAD_IF:       .long 0
K_BAD_FL:       .long 0
K_BAD_REGS:     .long 0
K_BAD_SEGS:     .long 0
T_BAD_KIN:      .long 0
T_BAD_CPL0:     .long 0
T_BAD_IF:       .long 0
T_AT_LAND:      .long 0
T_CPL0_EIP:     .long 0
T_CPL0_CS:      .long 0
T_CPL0_FL:      .long 0
FIRST_NAME:     .long 0
FIRST_I:        .long 0
FIRST_GOT:      .long 0
FIRST_WANT:     .long 0
SF_N:           .long 0
SF_VEC:         .long 0
SF_ERR:         .long 0
SF_EIP:         .long 0
SF_CS:          .long 0
SF_CR2:         .long 0
k_n:            .long 0
k_in:           .long 0
k_got_entry:    .long 0
k_got_esp:      .long 0
k_got_fl:       .long 0
k_got_eax:      .long 0
k_got_ebx:      .long 0
k_got_ecx:      .long 0
k_got_edx:      .long 0
k_got_esi:      .long 0
k_got_edi:      .long 0
k_got_ebp:      .long 0
k_got_cs1:      .long 0
k_got_cs2:      .long 0
k_got_ss1:      .long 0
k_got_ss2:      .long 0
k_got_ds:       .long 0
k_got_es:       .long 0
k_got_fs:       .long 0
k_got_gs:       .long 0
sf_zero_end:
sf_udata_end:
        .if sf_udata_end - sf_udata > 4096
        .error "sf_udata does not fit in one page"
        .endif
        .balign 4096
        .text
