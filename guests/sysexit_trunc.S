# sysexit_trunc.S -- a DPL0 data segment left loaded by SYSEXIT must not open
# supervisor pages to CPL3 code, also when SYSEXIT runs warm (thousands of
# round trips through the same sites) and every supervisor page lies in a
# kernel half above 2 GiB.
#
# SDM references: Vol. 2B "SYSEXIT" (CS/SS get flat CPL3 values, DS/ES/FS/GS
# are left untouched: a DPL0 flat data segment stays loaded at CPL3),
# "SYSENTER"; Vol. 3A 4.6 (a CPL3 data access to a page with U/S = 0 in its
# translation is a #PF whatever segment it goes through), 4.7 (error code
# P=1, W for writes, U/S=1; CR2 = the linear address), 5.8.7 (fast system
# calls), "IRET" (a return to CPL3 nulls DS/ES/FS/GS holding DPL0 data
# segments).
#
# Target (ringfold): guest CPL0 and CPL3 both run at host CPL3.  Supervisor
# pages at or above `user_top` stay mapped on the host while CPL3 code runs;
# only the truncation of every CPL3 data segment below `user_top` keeps CPL3
# code away from them.  `user_top` is lowered to a 4 MiB aligned address
# >= 2 GiB when every supervisor page lies at/above 2 GiB and no user page
# is mapped above it -- the layout of this guest.  SYSEXIT run inline in
# translated code must then swap each data segment register's host selector
# for the CPL3-truncated shadow of the same guest segment (its USER_SEL
# table); with the untruncated kernel selector left in place, the CPL3 access
# below would read or write the supervisor page without a fault.
#
# Layout (32-bit paging, CR0.WP=1, own tables, no paging.inc):
#   0x00000000                 not present
#   [0x1000, 4 MiB)            identity, USER read/write: code, data, stacks,
#                              GDT, IDT, TSS, these page tables -- every page
#                              mapped below 2 GiB is a user page
#   sx_sec_a / sx_sec_b        (their identity PTEs) not present
#   0xBFFFF000                 user page (frame sx_upage), just below
#   0xC0000000 = S_A           supervisor R/W, frame sx_sec_a: the first
#                              supervisor byte, at the expected user_top
#   0xC0005000 = S_B page      supervisor R/W, frame sx_sec_b
#   everything else            not present (no user page above 3 GiB)
# Both secret frames are filled with a known dword pattern.
#
# Each loop (SX_N = 3000 round trips through its own SYSENTER site and its
# own kernel entry / SYSEXIT site):
#   kernel (CPL0, entered by SYSENTER, SS = 0x10): reads the secret through
#   SS (must see the pattern: the page is mapped and hot) and stores the
#   pattern back (the page is dirty, so a host that maps clean pages
#   read-only has it writable: the user's write attempts meet no second
#   line of defence), loads one of DS,
#   ES, FS, GS with the flat DPL0 data selector 0x10, SYSEXITs to the
#   loop's landing label.
#   user (CPL3): the loaded register must still read 0x10; after the first
#   WARM = 1000 round trips, every 4th round trip reads or writes the secret
#   through that register: #PF(P|U [|W]) with CR2 = the address, at the
#   access, every time (rf_hook resumes the user at a recovery label with an
#   IRET).  Three clean round trips precede each access: the IRET nulls the
#   DPL0 register, so the first SYSEXIT after a fault returns to a different
#   user context (for DS and GS ringfold then interprets that SYSEXIT); the
#   following ones are warm again, and the access comes right after a warm
#   SYSEXIT.
#   Counted and checked per loop: round trips, kernel entries, the kernel's
#   reads of the secret, the selector after SYSEXIT, accesses done, accesses
#   that completed (leaks, must be 0), #PF vector/error/EIP/CS/CR2 and the
#   access's destination register (unchanged), #PF count.
# Accesses: dword read at S_B (0xC0005FF0), at S_A (0xC0000000, the first
# byte of the kernel half), a dword straddling 0xBFFFFFFE..0xC0000001 (the
# user half is readable, the supervisor half faults), and dword writes at S_B
# and S_A (the secret pages are compared with their pattern at the end).  All
# four segment registers, each for all accesses.  CR2 of the straddling read
# is 0xC0000000, the first byte of the access in the faulting page (as QEMU
# reports; ringfold reported the access's last byte, 0xC0000001, until this
# guest found it).
#
# No QEMU deviation is tolerated here.  Everything is gated on
# CPUID.1:EDX.SEP (one "# SKIP" line without it).
#
# Ringfold coverage: sysfast.S runs its DPL0-segment-after-SYSEXIT checks
# with the framework's structures mapped as supervisor pages below 2 GiB,
# which keeps ringfold's SYSEXIT interpreted; this guest gets the inline
# SYSEXIT.  Run `ringfold run --guest sysexit_trunc --stats`: the interpreted
# SYSEXITs (Sysexit@0/@3 in the exit profile) were, when this guest was
# written, 5020 of 60000: one per access in the DS and GS loops (the first
# SYSEXIT after each fault: the IRET nulled the register, so the user context
# differs) and one per loop otherwise.  With a broken USER_SEL (every host
# selector mapped to itself) the ES and FS loops leak (reads return the
# secret, writes land); the DS and GS loops are then still caught by the
# inline SYSEXIT's check of DS/GS against the user context entered last
# (every such SYSEXIT is interpreted).  Both sides push and pop once per round trip: ringfold's inline
# sequences use scratch slots below ESP, and a stack page the guest itself
# never touched is not mapped on the host -- without the pushes every inline
# SYSENTER/SYSEXIT faulted on its scratch store and was interpreted.
        .include "rf.inc"

        .set MSR_CS, 0x174
        .set MSR_ESP, 0x175
        .set MSR_EIP, 0x176

        .set SX_N, 3000                 # round trips per loop
        .set WARM, 1000                 # clean round trips before the first access
        .set SX_ATT, (SX_N - WARM) / 4  # accesses per loop (every 4th round trip)

        .set PG_P, 0x1
        .set PG_RW, 0x2
        .set PG_US, 0x4
        .set PF_P, 0x1
        .set PF_W, 0x2
        .set PF_U, 0x4
        .set CR0_PG, 0x80000000
        .set CR0_WP, 0x10000
        .set CR4_PSE, 0x10
        .set CR4_PAE, 0x20
        .set CR4_PGE, 0x80
        .set CR4_TSD, 0x4

        .set HI, 0xc0000000             # the kernel half (expected user_top)
        .set S_A, HI                    # first supervisor byte
        .set S_B, HI + 0x5ff0           # in the second supervisor page
        .set S_BPG, HI + 0x5000
        .set U_TOP, HI - 0x1000         # user page right below the kernel half
        .set S_X, HI - 2                # straddling dword
        .set PAT_A, 0x5ec0a11a
        .set PAT_B, 0x5ec0b22b
        .set PAT_U, 0x05e0c33c
        .set PAT_X, ((PAT_A & 0xffff) << 16) | ((PAT_U >> 16) & 0xffff)
        .set SENTINEL, 0x5e471ae1       # what the writes store / EAX before a read

        .set UESP, rf_ustack_top - 0x100

# SAFE_CALL fn, "desc": call fn (a loop at CPL3) under TRY; an exception
# sx_hook does not resume ends it and fails the check.
        .macro SAFE_CALL fn, desc
        TRY_CALL \fn
        movl $0, SX_RESUME
        CHECK_EQ rf_tc_vec, $RF_NONE, "\desc: no unexpected exception"
        call rf_tc_note
        .endm

# BAD ctr: count a mismatch (any CPL, any DS: SS-relative)
        .macro BAD ctr
        incl %ss:\ctr
        .endm

# SX_LOOP seg, acc, addr, pat, err, cr2, cr2hi, "name"
#   seg: ds es fs gs   acc: read write   addr: the accessed dword
#   pat: what the kernel reads at addr   err: the expected #PF error code
#   cr2..cr2hi: the CR2 values accepted (one value in every loop today)
        .macro SX_LOOP seg, acc, addr, pat, err, cr2, cr2hi, name
        call sx_reset
        movl $MSR_EIP, %ecx
        movl $.Lk\@, %eax
        xorl %edx, %edx
        wrmsr
        movl $.Lres\@, SX_RESUME
        SAFE_CALL .Lfn\@, "\name"
        jmp .Lchk\@

# kernel side: CPL0, SS = 0x10 (flat), DS..GS whatever the user left
.Lk\@:
        pushl %eax                      # use the stack, as a kernel would (see
        popl %eax                       # "Ringfold coverage" above)
        incl %ss:K_N
        movl %ss:\addr, %eax
        cmpl $(\pat), %eax
        je 1f
        BAD K_BAD_SECRET
1:      movl $(\pat), %ss:\addr       # and writes it (dirty: writable on a host)
        movl $RF_KDS, %eax
        movw %ax, %\seg
        movl $UESP, %ecx
        movl $.Lland\@, %edx
        sysexit

# user side
.Lfn\@:
        USER_BEGIN
.Lsite\@:
        sysenter
        ud2
.Lland\@:
        movl %\seg, %eax
        movzwl %ax, %eax
        cmpl $RF_KDS, %eax
        je 1f
        BAD U_BAD_SEL
1:      cmpl $UESP, %esp
        je 2f
        BAD U_BAD_ESP
2:      pushl %eax
        popl %eax
        incl %ss:U_I
        movl %ss:U_I, %eax
        cmpl $WARM, %eax
        jbe .Lnext\@
        testl $3, %eax
        jnz .Lnext\@
        incl %ss:U_ATT
        movl %ss:PF_N, %ebx
        incl %ebx                       # the #PF count the access must reach
        movl $SENTINEL, %eax
.Lacc\@:
        .ifc \acc,read
        movl %\seg:\addr, %eax
        .else
        movl %eax, %\seg:\addr
        .endif
        incl %ss:U_LEAK                 # the access completed
        cmpl $0, %ss:U_LEAK_SET
        jne .Lnext\@
        movl %eax, %ss:U_LEAK_VAL
        movl $1, %ss:U_LEAK_SET
        jmp .Lnext\@
.Lres\@:                                # sx_hook resumes here after the #PF
        cmpl $SENTINEL, %eax
        je 3f
        BAD U_BAD_EAX
3:      movl $0, %ecx
        cmpl %ss:PF_N, %ebx
        je 4f
        incl %ecx
4:      cmpl $V_PF, %ss:PF_VEC
        je 5f
        incl %ecx
5:      movl %ss:PF_ERR, %eax
        andl $0xffff, %eax
        cmpl $(\err), %eax
        je 6f
        incl %ecx
6:      cmpl $.Lacc\@, %ss:PF_EIP
        je 7f
        incl %ecx
7:      movl %ss:PF_CR2, %eax
        subl $(\cr2), %eax
        cmpl $((\cr2hi) - (\cr2)), %eax
        jbe 8f
        incl %ecx
8:      cmpl $RF_UCS, %ss:PF_CS
        je 9f
        incl %ecx
9:      testl %ecx, %ecx
        jz .Lnext\@
        BAD U_BAD_PF
        cmpl $0, %ss:FIRST_SET
        jne .Lnext\@
        movl $1, %ss:FIRST_SET
        movl %ss:PF_VEC, %eax
        movl %eax, %ss:FIRST_VEC
        movl %ss:PF_ERR, %eax
        movl %eax, %ss:FIRST_ERR
        movl %ss:PF_EIP, %eax
        movl %eax, %ss:FIRST_EIP
        movl %ss:PF_CR2, %eax
        movl %eax, %ss:FIRST_CR2
.Lnext\@:
        movl %ss:U_I, %eax
        cmpl $SX_N, %eax
        jb .Lsite\@
        USER_END
        ret

.Lchk\@:
        CHECK_EQ U_I, $SX_N, "\name: round trips done"
        CHECK_EQ K_N, $SX_N, "\name: kernel entries"
        CHECK_EQ K_BAD_SECRET, $0, "\name: kernel (CPL0) reads the secret (pattern) every round trip"
        CHECK_EQ U_BAD_SEL, $0, "\name: user: \seg = 0x10 after SYSEXIT"
        CHECK_EQ U_BAD_ESP, $0, "\name: user: ESP = ECX after SYSEXIT"
        CHECK_EQ U_ATT, $SX_ATT, "\name: user accesses done"
        CHECK_EQ U_LEAK, $0, "\name: no access completed (no #PF = leak)"
        CHECK_EQ U_BAD_EAX, $0, "\name: EAX unchanged by the faulting access"
        CHECK_EQ PF_N, $SX_ATT, "\name: one #PF per access"
        CHECK_EQ U_BAD_PF, $0, "\name: #PF(\err) at the access from CPL3, CR2 in [\cr2, \cr2hi]"
        RF_DESCSTR "\name"
        call sx_report
        .endm

# ===========================================================================
rf_main:
        NOTE "sysexit_trunc: DPL0 DS/ES/FS/GS after warm SYSEXIT vs supervisor pages above 2 GiB"
        movl $1, %eax
        cpuid
        testl $(1<<11), %edx
        jnz 1f
        SKIP "SYSENTER/SYSEXIT (no CPUID.1:EDX.SEP)"
        ret
1:      cmpl $0x400000, sx_image_end
        jbe 2f
        FAIL "setup: the image must end below 4 MiB"
        ret
2:      movl $sx_hook, rf_hook
        call sx_paging

        # baseline: the layout as CPL0 and CPL3 see it (interpreted paths)
        movl S_A, %eax
        CHECK_EQ %eax, $PAT_A, "setup: CPL0 reads S 0xc0000000"
        movl S_B, %eax
        CHECK_EQ %eax, $PAT_B, "setup: CPL0 reads S 0xc0005ff0"
        movl S_X, %eax
        CHECK_EQ %eax, $PAT_X, "setup: CPL0 reads the dword at 0xbffffffe"
        USER_BEGIN
        movl U_TOP + 0xffc, %eax
        USER_END
        CHECK_EQ %eax, $PAT_U, "setup: CPL3 reads the user page at 0xbffff000"
        movl $RF_NONE, PF_CR2
        TRY 3f
        USER_BEGIN
4:      movl S_B, %eax
        USER_END
        ENDTRY
3:      CHECK_FAULT $V_PF, $(PF_P|PF_U), $4b, "setup: CPL3 read of S 0xc0005ff0 through DS=0x23 -> #PF"
        CHECK_EQ PF_CR2, $S_B, "setup: ... CR2"

        movl $MSR_CS, %ecx
        movl $RF_KCS, %eax
        xorl %edx, %edx
        wrmsr
        movl $MSR_ESP, %ecx
        movl $sx_kstk_top, %eax
        wrmsr

        NOTE "reads through a DPL0 segment register left by SYSEXIT"
        SX_LOOP ds, read, S_B, PAT_B, PF_P|PF_U, S_B, S_B, "DS=0x10: read S 0xc0005ff0"
        SX_LOOP es, read, S_B, PAT_B, PF_P|PF_U, S_B, S_B, "ES=0x10: read S 0xc0005ff0"
        SX_LOOP fs, read, S_B, PAT_B, PF_P|PF_U, S_B, S_B, "FS=0x10: read S 0xc0005ff0"
        SX_LOOP gs, read, S_B, PAT_B, PF_P|PF_U, S_B, S_B, "GS=0x10: read S 0xc0005ff0"
        SX_LOOP ds, read, S_A, PAT_A, PF_P|PF_U, S_A, S_A, "DS=0x10: read S 0xc0000000"
        SX_LOOP es, read, S_A, PAT_A, PF_P|PF_U, S_A, S_A, "ES=0x10: read S 0xc0000000"
        SX_LOOP fs, read, S_A, PAT_A, PF_P|PF_U, S_A, S_A, "FS=0x10: read S 0xc0000000"
        SX_LOOP gs, read, S_A, PAT_A, PF_P|PF_U, S_A, S_A, "GS=0x10: read S 0xc0000000"
        NOTE "a dword across 0xc0000000 (user page below, supervisor page above)"
        SX_LOOP ds, read, S_X, PAT_X, PF_P|PF_U, S_A, S_A, "DS=0x10: read 0xbffffffe"
        SX_LOOP es, read, S_X, PAT_X, PF_P|PF_U, S_A, S_A, "ES=0x10: read 0xbffffffe"
        SX_LOOP fs, read, S_X, PAT_X, PF_P|PF_U, S_A, S_A, "FS=0x10: read 0xbffffffe"
        SX_LOOP gs, read, S_X, PAT_X, PF_P|PF_U, S_A, S_A, "GS=0x10: read 0xbffffffe"
        NOTE "writes through a DPL0 segment register left by SYSEXIT"
        SX_LOOP ds, write, S_B, PAT_B, PF_P|PF_W|PF_U, S_B, S_B, "DS=0x10: write S 0xc0005ff0"
        SX_LOOP es, write, S_B, PAT_B, PF_P|PF_W|PF_U, S_B, S_B, "ES=0x10: write S 0xc0005ff0"
        SX_LOOP fs, write, S_B, PAT_B, PF_P|PF_W|PF_U, S_B, S_B, "FS=0x10: write S 0xc0005ff0"
        SX_LOOP gs, write, S_B, PAT_B, PF_P|PF_W|PF_U, S_B, S_B, "GS=0x10: write S 0xc0005ff0"
        SX_LOOP ds, write, S_A, PAT_A, PF_P|PF_W|PF_U, S_A, S_A, "DS=0x10: write S 0xc0000000"
        SX_LOOP es, write, S_A, PAT_A, PF_P|PF_W|PF_U, S_A, S_A, "ES=0x10: write S 0xc0000000"
        SX_LOOP fs, write, S_A, PAT_A, PF_P|PF_W|PF_U, S_A, S_A, "FS=0x10: write S 0xc0000000"
        SX_LOOP gs, write, S_A, PAT_A, PF_P|PF_W|PF_U, S_A, S_A, "GS=0x10: write S 0xc0000000"

        # the secret pages after all the writes (CPL0, through the kernel half)
        pushl $HI
        pushl $PAT_A
        call sx_count_bad
        CHECK_EQ %eax, $0, "end: supervisor page 0xc0000000 unchanged (dwords differing)"
        pushl $S_BPG
        pushl $PAT_B
        call sx_count_bad
        CHECK_EQ %eax, $0, "end: supervisor page 0xc0005000 unchanged (dwords differing)"
        movl U_TOP, %eax
        CHECK_EQ %eax, $PAT_U, "end: user page 0xbffff000 unchanged"
        movl U_TOP + 0xffc, %eax
        CHECK_EQ %eax, $PAT_U, "end: user page 0xbffff000 unchanged (last dword)"
        ret

# ===========================================================================
# sx_paging: build the tables, fill the frames, CR0.PG = CR0.WP = 1
sx_paging:
        pushal
        cld
        movl $sx_tables, %edi
        movl $((sx_tables_end - sx_tables) / 4), %ecx
        xorl %eax, %eax
        rep stosl
        # identity 0-4 MiB: user read/write, except page 0 and the secrets
        movl $1, %ecx
1:      movl %ecx, %eax
        shll $12, %eax
        orl $(PG_P | PG_RW | PG_US), %eax
        movl %eax, sx_pt0(,%ecx,4)
        incl %ecx
        cmpl $1024, %ecx
        jb 1b
        movl $sx_sec_a, %eax
        shrl $12, %eax
        movl $0, sx_pt0(,%eax,4)
        movl $sx_sec_b, %eax
        shrl $12, %eax
        movl $0, sx_pt0(,%eax,4)
        movl $(sx_pt0 + PG_P + PG_RW + PG_US), sx_pd
        # 0xBFFFF000: user page
        movl $(sx_pt_u + PG_P + PG_RW + PG_US), sx_pd + (U_TOP >> 22) * 4
        movl $(sx_upage + PG_P + PG_RW + PG_US), sx_pt_u + ((U_TOP >> 12) & 0x3ff) * 4
        # kernel half: the two supervisor pages (PDE U/S=1, the leaf decides)
        movl $(sx_pt_hi + PG_P + PG_RW + PG_US), sx_pd + (HI >> 22) * 4
        movl $(sx_sec_a + PG_P + PG_RW), sx_pt_hi + ((S_A >> 12) & 0x3ff) * 4
        movl $(sx_sec_b + PG_P + PG_RW), sx_pt_hi + ((S_BPG >> 12) & 0x3ff) * 4
        # contents (physical, paging still off)
        movl $sx_sec_a, %edi
        movl $1024, %ecx
        movl $PAT_A, %eax
        rep stosl
        movl $sx_sec_b, %edi
        movl $1024, %ecx
        movl $PAT_B, %eax
        rep stosl
        movl $sx_upage, %edi
        movl $1024, %ecx
        movl $PAT_U, %eax
        rep stosl
        movl %cr4, %eax
        andl $~(CR4_PAE | CR4_PGE | CR4_PSE | CR4_TSD), %eax
        movl %eax, %cr4
        movl $sx_pd, %eax
        movl %eax, %cr3
        movl %cr0, %eax
        orl $(CR0_PG | CR0_WP), %eax
        movl %eax, %cr0
        jmp 2f
2:      popal
        ret

# sx_count_bad(pattern, page): EAX = dwords of the page != pattern
sx_count_bad:
        pushl %ecx
        pushl %esi
        movl 12(%esp), %edx
        movl 16(%esp), %esi
        xorl %eax, %eax
        xorl %ecx, %ecx
1:      cmpl %edx, (%esi,%ecx,4)
        je 2f
        incl %eax
2:      incl %ecx
        cmpl $1024, %ecx
        jb 1b
        popl %esi
        popl %ecx
        ret $8

# sx_reset: zero the per-loop counters
sx_reset:
        pushal
        cld
        movl $sx_zero, %edi
        movl $((sx_zero_end - sx_zero) / 4), %ecx
        xorl %eax, %eax
        rep stosl
        popal
        ret

# sx_report(desc): details of a failed loop, if any
sx_report:
        pushal
        cmpl $0, U_LEAK
        je 1f
        PUTS "# "
        pushl 36(%esp)
        call rf_puts_arg
        PUTS ": "
        PUTDEC U_LEAK
        PUTS " accesses completed at CPL3, first value "
        PUTHEX U_LEAK_VAL
        call rf_nl
1:      cmpl $0, FIRST_SET
        je 2f
        PUTS "# "
        pushl 36(%esp)
        call rf_puts_arg
        PUTS ": first bad #PF: vec="
        PUTHEX FIRST_VEC
        PUTS " err="
        PUTHEX FIRST_ERR
        PUTS " eip="
        PUTHEX FIRST_EIP
        PUTS " cr2="
        PUTHEX FIRST_CR2
        call rf_nl
2:      popal
        ret $4

# sx_hook (rf_hook): CR2 on #PF; while SX_RESUME != 0, a #PF from CPL3 is
# recorded in PF_* and the user resumes at SX_RESUME (IRET, which nulls a
# DPL0 DS/ES/FS/GS).  Anything else: the framework's decision (TRY).
sx_hook:
        cmpl $V_PF, rf_x_vec
        jne 9f
        movl %cr2, %eax
        movl %eax, PF_CR2
        cmpl $0, SX_RESUME
        je 9f
        testb $3, rf_x_cs
        jz 9f
        incl PF_N
        movl rf_x_vec, %eax
        movl %eax, PF_VEC
        movl rf_x_err, %eax
        movl %eax, PF_ERR
        movl rf_x_eip, %eax
        movl %eax, PF_EIP
        movl rf_x_cs, %eax
        movl %eax, PF_CS
        movl 4(%esp), %ecx
        movl SX_RESUME, %eax
        movl %eax, 60(%ecx)
        movl $1, %eax
        ret
9:      xorl %eax, %eax
        ret

# ===========================================================================
        .data
        .balign 4
sx_image_end:   .long _rf_image_end
SX_RESUME:      .long 0
PF_CR2:         .long 0

        .bss
        .balign 4
sx_zero:
K_N:            .long 0
K_BAD_SECRET:   .long 0
U_I:            .long 0
U_ATT:          .long 0
U_BAD_SEL:      .long 0
U_BAD_ESP:      .long 0
U_LEAK:         .long 0
U_LEAK_SET:     .long 0
U_LEAK_VAL:     .long 0
U_BAD_EAX:      .long 0
U_BAD_PF:       .long 0
PF_N:           .long 0
PF_VEC:         .long 0
PF_ERR:         .long 0
PF_EIP:         .long 0
PF_CS:          .long 0
FIRST_SET:      .long 0
FIRST_VEC:      .long 0
FIRST_ERR:      .long 0
FIRST_EIP:      .long 0
FIRST_CR2:      .long 0
sx_zero_end:

        .balign 4096
sx_kstk:        .fill 4096, 1, 0
sx_kstk_top:
sx_tables:
sx_pd:          .fill 4096, 1, 0
sx_pt0:         .fill 4096, 1, 0
sx_pt_u:        .fill 4096, 1, 0
sx_pt_hi:       .fill 4096, 1, 0
sx_tables_end:
sx_upage:       .fill 4096, 1, 0
sx_sec_a:       .fill 4096, 1, 0
sx_sec_b:       .fill 4096, 1, 0

        .text
