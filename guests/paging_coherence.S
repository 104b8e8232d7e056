# paging_coherence.S -- TLB coherence: the translation the guest sees after
# it changes its own page tables.
#
# SDM Vol. 3A: 4.10.2 (TLBs; global pages with CR4.PGE=1 and G=1),
# 4.10.4.1 "Operations that Invalidate TLBs and Paging-Structure Caches"
# (INVLPG invalidates the page of the address, also a 4-MiB/2-MiB page; MOV
# to CR3 invalidates all non-global entries; MOV to CR4 changing PGE, and
# MOV to CR0 changing PG, invalidate everything; a #PF invalidates the
# entries for the faulting address), 4.10.4.2 "Recommended Invalidation",
# 4.10.4.3 "Optional Invalidation" (P 0->1 needs no invalidation; a
# rights upgrade without invalidation may give one spurious #PF), 4.8 (A/D
# are set when a translation is (re)loaded), 4.4.1 (PDPTEs loaded by MOV
# CR3), Vol. 3A 8.1.3 (self-/cross-modifying code, here through an alias
# mapping), Vol. 2A "INVLPG" (#GP(0) at CPL>0, no fault for an unmapped
# address).
#
# Stale translations are never asserted: only that after the required
# invalidation the NEW entry is used.  The body runs with 32-bit paging and
# again with PAE paging; the guest-written page tables (recursive PDE) part
# and the paging off/on part use 32-bit paging and switch modes.
        .include "rf.inc"
        .include "paging.inc"

        .set CL, PG_LA + 0x20000        # data test page
        .set CX, PG_LA + 0x30000        # code page (user, read-only)
        .set CY, PG_LA + 0x31000        # writable alias of the code frame
        .set F_A, PG_FRAMES + 0x10000
        .set F_B, PG_FRAMES + 0x11000
        .set F_C, PG_FRAMES + 0x12000
        .set F_D, PG_FRAMES + 0x13000
        .set F_CODE, PG_FRAMES + 0x14000
        .set F_CODE2, PG_FRAMES + 0x15000
        .set V_A, 0xaaaa0001
        .set V_B, 0xbbbb0002
        .set V_C, 0xcccc0003
        .set V_D, 0xdddd0004
        .set URW, PG_P | PG_RW | PG_US
        .set RECUR, 0xc0000000          # 32-bit: page tables seen through PDE 0x300
        .set ID_PAGE, 0x00d00000        # identity page remapped for the PG tests

        .set F_PT, PG_FRAMES + 0x20000  # spare page table
        .set F_PD, PG_FRAMES + 0x21000  # spare PAE page directory

# spare_pt: F_PT = a page table (format of pg_mode) whose only entry, the
# one for CL, maps F_C (user, read/write)
spare_pt:
        pushal
        pushl $4096
        pushl $F_PT
        call pg_zero
        movl $((CL >> 12) & 0x3ff), %eax
        cmpl $0, pg_mode
        je 1f
        movl $((CL >> 12) & 0x1ff), %eax
        movl $(F_C | URW), F_PT(,%eax,8)
        popal
        ret
1:      movl $(F_C | URW), F_PT(,%eax,4)
        popal
        ret

# fresh frame contents
init_frames:
        movl $V_A, F_A
        movl $V_B, F_B
        movl $V_C, F_C
        movl $V_D, F_D
        ret

# REMAP cpl, how: L -> A (used), L -> B, invalidate by `how`, L gives B;
# a store through L then lands in B, not A.
        .macro REMAP cpl, how
        call init_frames
        PG_SETPTE $CL, $(F_A | URW)
        PG_FLUSH
        AT_CPL \cpl
        movl CL, %ebx
        END_CPL \cpl
        PG_SETPTE $CL, $(F_B | URW)
        .ifc \how, invlpg
        PG_INVLPG $CL
        .else
        PG_FLUSH
        .endif
        AT_CPL \cpl
        movl CL, %ecx
        movl $0x5107e, CL
        END_CPL \cpl
        CHECK_EQ %ebx, $V_A, "cpl\cpl: \how: old mapping before the change"
        CHECK_EQ %ecx, $V_B, "cpl\cpl: \how: PTE changed + \how -> new frame read"
        CHECK_EQ F_B, $0x5107e, "cpl\cpl: \how: store lands in the new frame"
        CHECK_EQ F_A, $V_A, "cpl\cpl: \how: old frame untouched"
        .endm

# DOWNGRADE how: user read/write page, CPL3 writes; PTE made read-only
# (invlpg) or supervisor (cr3); then the CPL3 access faults.
        .macro DOWNGRADE how
        call init_frames
        PG_SETPTE $CL, $(F_A | URW)
        PG_FLUSH
        AT_CPL 3
        movl $0x1111, CL
        END_CPL 3
        CHECK_EQ F_A, $0x1111, "cpl3: \how downgrade: write allowed first"
        .ifc \how, invlpg
        PG_SETPTE $CL, $(F_A | PG_P | PG_US)
        PG_INVLPG $CL
        .else
        PG_SETPTE $CL, $(F_A | PG_P | PG_RW)
        PG_FLUSH
        .endif
        PG_TRY 1f
        AT_CPL 3
2:      movl $0x2222, CL
        END_CPL 3
        ENDTRY
1:      .ifc \how, invlpg
        PG_CHECK_PF $(PF_P | PF_W | PF_U), $2b, $CL, "cpl3: PTE made read-only + invlpg: write #PF"
        .else
        PG_CHECK_PF $(PF_P | PF_W | PF_U), $2b, $CL, "cpl3: PTE made supervisor + MOV CR3: write #PF"
        .endif
        CHECK_EQ F_A, $0x1111, "cpl3: \how downgrade: memory unchanged"
        .endm

# AD_AGAIN how: A and D cleared by software + invalidation are set again
        .macro AD_AGAIN cpl, how
        PG_SETPTE $CL, $(F_A | URW)
        PG_FLUSH
        AT_CPL \cpl
        movl $1, CL
        END_CPL \cpl
        PG_SETPTE $CL, $(F_A | URW)     # A=D=0 again
        .ifc \how, invlpg
        PG_INVLPG $CL
        .else
        PG_FLUSH
        .endif
        AT_CPL \cpl
        movl CL, %eax
        END_CPL \cpl
        PG_READ $CL
        CHECK_MASK pg_pte, $(PG_A | PG_D), $PG_A, "cpl\cpl: A cleared + \how, read: A set again, D not"
        AT_CPL \cpl
        movl $2, CL
        END_CPL \cpl
        PG_READ $CL
        CHECK_MASK pg_pte, $(PG_A | PG_D), $(PG_A | PG_D), "cpl\cpl: then a write: D set again"
        .endm

# CALLX cpl, lin, reg: call the code at lin at CPL cpl, result (EAX) in reg
        .macro CALLX cpl, lin, reg
        AT_CPL \cpl
        movl $\lin, %ebx
        call *%ebx
        movl %eax, %\reg
        END_CPL \cpl
        .endm

        .macro COH_BODY mode
        NOTE "\mode: INVLPG / MOV CR3 after changing a PTE"
        .irp cpl, 0, 3
        REMAP \cpl, invlpg
        REMAP \cpl, cr3
        .endr
        DOWNGRADE invlpg
        DOWNGRADE cr3

        NOTE "\mode: PDE pointed at another page table + INVLPG"
        call init_frames
        PG_SETPTE $CL, $(F_A | URW)
        PG_FLUSH
        AT_CPL 3
        movl CL, %ebx
        END_CPL 3
        call spare_pt                   # spare table: CL's entry -> F_C
        PG_READ $CL
        movl pg_pde, %esi
        PG_SETPDE $CL, $(F_PT + URW)
        PG_INVLPG $CL
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        PG_SETPDE $CL, %esi
        PG_FLUSH
        CHECK_EQ %ebx, $V_A, "cpl3: \mode: through the region's page table"
        CHECK_EQ %ecx, $V_C, "cpl3: \mode: PDE changed + INVLPG: through the new page table"

        NOTE "\mode: not present -> present needs no invalidation"
        call init_frames
        PG_SETPTE $CL, $(F_A | PG_RW | PG_US)
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
2:      movl CL, %eax
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_U), $2b, $CL, "cpl3: \mode: read of a not-present page: #PF"
        PG_SETPTE $CL, $(F_A | URW)
        PG_TRY 1f
        AT_CPL 3
        movl CL, %eax
        END_CPL 3
        ENDTRY
1:      CHECK_NOFAULT "cpl3: \mode: PTE made present, no INVLPG: no fault"
        CHECK_EQ %eax, $V_A, "cpl3: \mode: PTE made present, no INVLPG: value"

        NOTE "\mode: a #PF invalidates the faulting page's translation"
        PG_SETPTE $CL, $(F_A | PG_P | PG_US)
        PG_FLUSH
        AT_CPL 3
        movl CL, %eax                   # caches the read-only translation
        END_CPL 3
        PG_TRY 1f
        AT_CPL 3
2:      movl $0x3333, CL
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_P | PF_W | PF_U), $2b, $CL, "cpl3: \mode: write to read-only page: #PF"
        PG_SETPTE $CL, $(F_A | URW)     # upgrade without invalidation
        PG_TRY 1f
        AT_CPL 3
        movl $0x4444, CL
        END_CPL 3
        ENDTRY
1:      CHECK_NOFAULT "cpl3: \mode: PTE made writable after the #PF: write allowed"
        CHECK_EQ F_A, $0x4444, "cpl3: \mode: PTE made writable after the #PF: stored"

        NOTE "\mode: rights upgrade without invalidation: at most one spurious #PF"
        PG_SETPTE $CL, $(F_A | PG_P | PG_US)
        PG_FLUSH
        AT_CPL 3
        movl CL, %eax
        END_CPL 3
        PG_SETPTE $CL, $(F_A | URW)
        PG_TRY 1f
        AT_CPL 3
2:      movl $0x5555, CL
        END_CPL 3
        ENDTRY
1:      xorl %eax, %eax                 # EAX = 1: no fault or the spurious one
        cmpl $RF_NONE, rf_x_vec
        je 3f
        cmpl $V_PF, rf_x_vec
        jne 4f
        cmpl $(PF_P | PF_W | PF_U), rf_x_err
        jne 4f
        cmpl $2b, rf_x_eip
        jne 4f
        cmpl $CL, pg_cr2
        jne 4f
3:      movl $1, %eax
4:      CHECK_TRUE %eax, "cpl3: \mode: first write: no fault or #PF(P|W|U) at CL"
        PG_TRY 1f
        AT_CPL 3
        movl $0x6666, CL
        END_CPL 3
        ENDTRY
1:      CHECK_NOFAULT "cpl3: \mode: retried write: allowed"
        CHECK_EQ F_A, $0x6666, "cpl3: \mode: retried write: stored"

        NOTE "\mode: A/D set again after software clears them and invalidates"
        .irp cpl, 0, 3
        AD_AGAIN \cpl, invlpg
        AD_AGAIN \cpl, cr3
        .endr

        # ------------------------------------------------ large pages
        cmpl $0, pg_has_pse
        jne 5f
        cmpl $1, pg_mode                # 2-MiB PAE pages need no PSE
        je 5f
        SKIP "\mode: INVLPG of a large page (no PSE)"
        jmp 6f
5:      NOTE "\mode: INVLPG anywhere in a large page invalidates the whole page"
        movl $0x0b190000, PG_BIG0 + 0x100000
        movl $0x0b191111, PG_BIG1 + 0x100000
        PG_SETPDE $PG_LL, $(PG_BIG0 | PG_PS | URW)
        PG_FLUSH
        AT_CPL 3
        movl PG_LL + 0x100000, %ebx
        END_CPL 3
        PG_SETPDE $PG_LL, $(PG_BIG1 | PG_PS | URW)
        PG_INVLPG $(PG_LL + 0x1000)
        AT_CPL 3
        movl PG_LL + 0x100000, %ecx
        END_CPL 3
        CHECK_EQ %ebx, $0x0b190000, "cpl3: \mode: large page, first frame"
        CHECK_EQ %ecx, $0x0b191111, "cpl3: \mode: PDE changed + INVLPG of another address in the page: new frame"
        PG_SETPDE $PG_LL, $0
        PG_FLUSH
6:
        # ----------------------------------------------- global pages
        cmpl $0, pg_has_pge
        jne 5f
        SKIP "\mode: global pages (CPUID.01H:EDX.PGE=0)"
        jmp 6f
5:      NOTE "\mode: global pages (CR4.PGE=1, G=1)"
        call init_frames
        # G=1 with CR4.PGE=0: G is ignored, MOV CR3 flushes the entry
        PG_SETPTE $CL, $(F_A | URW | PG_G)
        PG_FLUSH
        AT_CPL 3
        movl CL, %ebx
        END_CPL 3
        PG_SETPTE $CL, $(F_B | URW | PG_G)
        PG_FLUSH
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        CHECK_EQ %ebx, $V_A, "cpl3: \mode: CR4.PGE=0, G=1 page: first frame"
        CHECK_EQ %ecx, $V_B, "cpl3: \mode: CR4.PGE=0: MOV CR3 flushes a G=1 entry"
        movl %cr4, %eax
        orl $CR4_PGE, %eax
        movl %eax, %cr4
        movl %cr4, %eax
        CHECK_MASK %eax, $CR4_PGE, $CR4_PGE, "cpl0: \mode: CR4.PGE set"
        # global entry: INVLPG invalidates it
        PG_SETPTE $CL, $(F_A | URW | PG_G)
        PG_FLUSH
        AT_CPL 3
        movl CL, %ebx
        END_CPL 3
        PG_SETPTE $CL, $(F_B | URW | PG_G)
        PG_INVLPG $CL
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        CHECK_EQ %ebx, $V_A, "cpl3: \mode: global page: first frame"
        CHECK_EQ %ecx, $V_B, "cpl3: \mode: global page: PTE changed + INVLPG -> new frame"
        # global entry: MOV CR3 (may keep it -- not asserted), then clearing
        # CR4.PGE flushes it
        PG_SETPTE $CL, $(F_C | URW | PG_G)
        PG_FLUSH
        movl %cr4, %eax
        andl $~CR4_PGE, %eax
        movl %eax, %cr4
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        CHECK_EQ %ecx, $V_C, "cpl3: \mode: global page: CR4.PGE 1->0 flushes -> new frame"
        # ... and a PGE 0->1->0 toggle with PGE in use
        movl %cr4, %eax
        orl $CR4_PGE, %eax
        movl %eax, %cr4
        AT_CPL 3
        movl CL, %ecx                   # global again
        END_CPL 3
        PG_SETPTE $CL, $(F_D | URW | PG_G)
        movl %cr4, %eax
        andl $~CR4_PGE, %eax
        movl %eax, %cr4
        orl $CR4_PGE, %eax
        movl %eax, %cr4
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        CHECK_EQ %ecx, $V_D, "cpl3: \mode: global page: CR4.PGE toggled -> new frame"
        # non-global page with CR4.PGE=1: MOV CR3 flushes it
        PG_SETPTE $CL, $(F_A | URW)
        PG_INVLPG $CL
        AT_CPL 3
        movl CL, %ebx
        END_CPL 3
        PG_SETPTE $CL, $(F_B | URW)
        PG_FLUSH
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        CHECK_EQ %ebx, $V_A, "cpl3: \mode: CR4.PGE=1, G=0 page: first frame"
        CHECK_EQ %ecx, $V_B, "cpl3: \mode: CR4.PGE=1, G=0 page: MOV CR3 -> new frame"
        movl %cr4, %eax
        andl $~CR4_PGE, %eax
        movl %eax, %cr4                 # flushes all global entries
6:
        # ------------------------------------------ code through an alias
        NOTE "\mode: code written through a writable alias, executed through the other mapping"
        .irp cpl, 0, 3
        PG_SETPTE $CX, $(F_CODE | PG_P | PG_US)         # user, read-only
        PG_SETPTE $CY, $(F_CODE | URW)                  # user, read/write alias
        PG_FLUSH
        PG_CODE $F_CODE, $1
        CALLX \cpl, CX, esi
        AT_CPL \cpl
        movl $2, CY + 1                 # patch the immediate via the alias
        END_CPL \cpl
        CALLX \cpl, CX, edi
        CHECK_EQ %esi, $1, "cpl\cpl: \mode: code page runs"
        CHECK_EQ %edi, $2, "cpl\cpl: \mode: immediate patched via the alias takes effect"
        AT_CPL \cpl
        # xor %eax,%eax; inc %eax x3; ret: another instruction sequence
        movl $0x4040c031, CY
        movw $0xc340, CY + 4
        END_CPL \cpl
        CALLX \cpl, CX, edi
        CHECK_EQ %edi, $3, "cpl\cpl: \mode: instructions replaced via the alias take effect"
        # the code patches its own next instruction through the alias:
        #   movb $5, CY+8 ; mov $7, %eax ; ret
        movl $(0x05c6 | ((CY + 8) & 0xff) << 16 | (((CY + 8) >> 8) & 0xff) << 24), F_CODE
        movl $((((CY + 8) >> 16) & 0xff) | (((CY + 8) >> 24) & 0xff) << 8 | 0x05 << 16 | 0xb8 << 24), F_CODE + 4
        movl $7, F_CODE + 8
        movb $0xc3, F_CODE + 12
        CALLX \cpl, CX, edi
        CHECK_EQ %edi, $5, "cpl\cpl: \mode: code patching its next instruction via the alias"
        .endr

        NOTE "\mode: one code frame at two linear addresses; a code page remapped"
        .irp cpl, 0, 3
        # call 1f; 1: pop %eax; ret  -> returns its own linear address + 5
        PG_SETPTE $CX, $(F_CODE | PG_P | PG_US)
        PG_SETPTE $CY, $(F_CODE | URW)
        PG_FLUSH
        movl $0x000000e8, F_CODE
        movl $0x00c35800, F_CODE + 4
        CALLX \cpl, CX, esi
        CALLX \cpl, CY, edi
        CHECK_EQ %esi, $(CX + 5), "cpl\cpl: \mode: same code frame via CX sees EIP in CX"
        CHECK_EQ %edi, $(CY + 5), "cpl\cpl: \mode: same code frame via CY sees EIP in CY"
        PG_CODE $F_CODE, $0x100
        PG_CODE $F_CODE2, $0x200
        PG_SETPTE $CX, $(F_CODE | PG_P | PG_US)
        PG_FLUSH
        CALLX \cpl, CX, esi
        PG_SETPTE $CX, $(F_CODE2 | PG_P | PG_US)
        PG_INVLPG $CX
        CALLX \cpl, CX, edi
        PG_SETPTE $CX, $(F_CODE | PG_P | PG_US)
        PG_FLUSH
        CALLX \cpl, CX, ebp
        CHECK_EQ %esi, $0x100, "cpl\cpl: \mode: code page, first frame"
        CHECK_EQ %edi, $0x200, "cpl\cpl: \mode: code PTE remapped + INVLPG: other frame's code runs"
        CHECK_EQ %ebp, $0x100, "cpl\cpl: \mode: code PTE remapped back + MOV CR3: first code again"
        .endr
        .endm

rf_main:
        NOTE "paging_coherence: INVLPG, MOV CR3, global pages, guest-written tables, alias code, PG off/on"
        call pg_setup
        call pg_enter32

        NOTE "INVLPG privilege and unmapped addresses"
        PG_TRY 1f
        invlpg 0xdead0000               # not mapped: no fault
        ENDTRY
1:      CHECK_NOFAULT "cpl0: invlpg of an unmapped address: no fault"
        PG_TRY 1f
        AT_CPL 3
2:      invlpg CL
        END_CPL 3
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: invlpg -> #GP(0)"
        PG_TRY 1f
        AT_CPL 3
        movl $pg_pd, %eax
2:      movl %eax, %cr3
        END_CPL 3
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: mov to CR3 -> #GP(0)"

        COH_BODY paging32

        # --------------------------------- guest-written page tables
        NOTE "paging32: page tables written through a recursive mapping"
        # PDE 0x300 -> the page directory itself: the page table of linear L
        # appears at RECUR + (L >> 22) * 4096, the directory at RECUR + 0x300000
        movl $(pg_pd + PG_P + PG_RW), pg_pd + (RECUR >> 22) * 4
        PG_SETPTE $CL, $(F_A | URW)
        PG_FLUSH
        call init_frames
        AT_CPL 3
        movl CL, %ebx
        END_CPL 3
        movl RECUR + (CL >> 12) * 4, %eax     # the PTE, read through paging
        movl $(F_B | URW), RECUR + (CL >> 12) * 4   # written through paging
        invlpg CL
        AT_CPL 3
        movl CL, %ecx
        END_CPL 3
        andl $~(PG_A | PG_D), %eax
        CHECK_EQ %eax, $(F_A | URW), "cpl0: PTE read through the recursive mapping"
        CHECK_EQ %ebx, $V_A, "cpl3: before: first frame"
        CHECK_EQ %ecx, $V_B, "cpl3: PTE written through the recursive mapping + INVLPG: new frame"
        PG_READ $CL
        CHECK_MASK pg_pte, $~(PG_A | PG_D), $(F_B | URW), "cpl0: the write reached the page table"
        # a new PDE written through the directory's own mapping: linear
        # 0x50000000 gets region A's page table
        movl RECUR + 0x300000 + (PG_LA >> 22) * 4, %eax
        movl %eax, RECUR + 0x300000 + (0x50000000 >> 22) * 4
        movl %cr3, %eax
        movl %eax, %cr3
        AT_CPL 3
        movl 0x50000000 + (CL - PG_LA), %ecx
        END_CPL 3
        CHECK_EQ %ecx, $V_B, "cpl3: PDE written through the recursive mapping + MOV CR3: alias region works"
        # a PTE changed through one region, read through both after INVLPG
        movl $(F_C | URW), RECUR + (CL >> 12) * 4
        invlpg CL
        invlpg 0x50000000 + (CL - PG_LA)
        AT_CPL 3
        movl CL, %ebx
        movl 0x50000000 + (CL - PG_LA), %ecx
        END_CPL 3
        CHECK_EQ %ebx, $V_C, "cpl3: shared page table changed + INVLPG: region A sees the new frame"
        CHECK_EQ %ecx, $V_C, "cpl3: shared page table changed + INVLPG: alias region too"
        movl $0, pg_pd + (0x50000000 >> 22) * 4
        movl $0, pg_pd + (RECUR >> 22) * 4
        PG_FLUSH

        # ------------------------------------------------- PG off / on
        NOTE "paging turned off and on again (32-bit), then PAE, then 32-bit"
        movl $0x0d0d0d0d, ID_PAGE + 0x800
        PG_CODE $ID_PAGE, $0x0d
        call init_frames
        PG_CODE $F_A, $0x0a
        PG_CODE $F_B, $0x0b
        movl $V_A, F_A + 0x800
        movl $V_B, F_B + 0x800
        PG_SETPTE $ID_PAGE, $(F_A | URW)
        PG_INVLPG $ID_PAGE
        CALLX 3, ID_PAGE, esi
        movl ID_PAGE + 0x800, %edi
        CHECK_EQ %esi, $0x0a, "cpl3: paging on: ID_PAGE remapped, its code runs"
        CHECK_EQ %edi, $V_A, "cpl0: paging on: ID_PAGE data from the remapped frame"
        movl %cr0, %eax
        andl $~CR0_PG, %eax
        movl %eax, %cr0
        jmp 1f
1:      movl %cr0, %eax
        CHECK_MASK %eax, $CR0_PG, $0, "cpl0: CR0.PG cleared"
        CALLX 3, ID_PAGE, esi
        movl ID_PAGE + 0x800, %edi
        CHECK_EQ %esi, $0x0d, "cpl3: paging off: physical code at ID_PAGE runs"
        CHECK_EQ %edi, $0x0d0d0d0d, "cpl0: paging off: physical data at ID_PAGE"
        PG_TRY 1f
        AT_CPL 3
        movl pg_pd, %eax                # supervisor page when paging is on
        END_CPL 3
        ENDTRY
1:      CHECK_NOFAULT "cpl3: paging off: no page protection (reads the page directory)"
        # change the PTE while paging is off, then turn paging on
        PG_SETPTE $ID_PAGE, $(F_B | URW)
        movl %cr0, %eax
        orl $CR0_PG, %eax
        movl %eax, %cr0
        jmp 1f
1:      CALLX 3, ID_PAGE, esi
        movl ID_PAGE + 0x800, %edi
        CHECK_EQ %esi, $0x0b, "cpl3: paging on again: new PTE's code runs"
        CHECK_EQ %edi, $V_B, "cpl0: paging on again: new PTE's data"
        PG_TRY 1f
        AT_CPL 3
2:      movl pg_pd, %eax
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_P | PF_U), $2b, $pg_pd, "cpl3: paging on again: page directory is supervisor"

        cmpl $0, pg_has_pae
        jne 1f
        SKIP "PAE part (CPUID.01H:EDX.PAE=0)"
        jmp 9f
1:      call pg_enter_pae               # PG off, PAE tables (identity ID_PAGE), PG on
        CALLX 0, ID_PAGE, esi
        CHECK_EQ %esi, $0x0d, "cpl0: PAE: ID_PAGE identity-mapped again: physical code"
        PG_SETPTE $ID_PAGE, $(F_A | URW)
        PG_INVLPG $ID_PAGE
        CALLX 3, ID_PAGE, esi
        CHECK_EQ %esi, $0x0a, "cpl3: PAE: ID_PAGE remapped: its code runs"
        COH_BODY pae

        NOTE "pae: a PDPTE changed in memory is used after MOV CR3"
        call init_frames
        PG_SETPTE $CL, $(F_A | URW)
        PG_FLUSH
        # spare page directory: its entry 0 -> region A's page table, so
        # with it in PDPTE 2, linear 0x80000000 + x aliases PG_LA + x
        pushl $4096
        pushl $F_PD
        call pg_zero
        movl pg_pae_pd + (PG_LA >> 21) * 8, %eax
        movl %eax, F_PD
        movl pg_pdpt + 2 * 8, %esi
        movl $(F_PD + PG_P), pg_pdpt + 2 * 8
        PG_FLUSH
        AT_CPL 3
        movl PG_LB + (CL - PG_LA), %ecx
        END_CPL 3
        movl %esi, pg_pdpt + 2 * 8
        PG_FLUSH
        CHECK_EQ %ecx, $V_A, "cpl3: pae: PDPTE 2 replaced + MOV CR3: region B aliases region A"
        PG_SETPTE $PG_LB, $(F_B | URW)
        PG_INVLPG $PG_LB
        AT_CPL 3
        movl PG_LB, %ecx
        END_CPL 3
        CHECK_EQ %ecx, $V_B, "cpl3: pae: PDPTE 2 restored + MOV CR3: region B again"
        call pg_enter32
        CALLX 0, ID_PAGE, esi
        CHECK_EQ %esi, $0x0d, "cpl0: back to 32-bit paging: ID_PAGE identity again"
9:
        call pg_leave
        jmp rf_done
