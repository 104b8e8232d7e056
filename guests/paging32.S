# paging32.S -- 32-bit (non-PAE) paging: 4-KiB pages and 4-MiB pages.
#
# SDM Vol. 3A: 4.3 "32-Bit Paging" (Tables 4-4..4-6: PDE/PTE formats, PS
# honoured only with CR4.PSE=1, bit 21 of a 4-MiB PDE reserved), 4.5/4.6
# "Access Rights" (4.6.1: supervisor accesses, CR0.WP; user accesses need
# U/S=1 at every level, writes R/W=1 at every level), 4.7 "Page-Fault
# Exceptions" (error code P, W/R, U/S, RSVD; I/D is never set with 32-bit
# paging; CR2 = faulting linear address), 4.8 "Accessed and Dirty Flags".
#
# Layout and helpers: include/paging.inc.  The rights matrix (PG_RIGHTS)
# runs every U/S x R/W combination of the PDE and the PTE, for reads and
# writes at CPL0 and CPL3 with CR0.WP=0 and 1, and fetches at CPL0/CPL3; the
# same for the rights of a 4-MiB page.  On a fault: #PF error code, EIP,
# CR2, leaf A/D still clear, memory unchanged; on success: the value, A set
# in the PDE and PTE (D in the leaf after a write only).  The PDE's A flag
# is not checked after a faulting access (the processor may set it).
#
# QEMU 7.2 TCG deviation (tolerated unless booted with "strict"): a
# reserved-bit #PF reports RSVD without P (SDM 4.7: RSVD=1 implies P=1);
# PG_CHECK_RSVD accepts err & ~P via CHECK_FAULT_ALT.
        .include "rf.inc"
        .include "paging.inc"

        .set NP_LIN, PG_LA + 0x5000     # A/D sequence page
        .set NP_FRAME, PG_FRAMES + 0x5000

rf_main:
        NOTE "paging32: 32-bit paging, 4 KiB and 4 MiB pages, rights, A/D, #PF"
        call pg_setup
        call pg_enter32

        # --------------------------------------------------- sanity
        movl %cr0, %eax
        CHECK_MASK %eax, $(CR0_PG | CR0_WP), $(CR0_PG | CR0_WP), "cpl0: CR0.PG and CR0.WP set"
        movl %cr3, %eax
        CHECK_EQ %eax, $pg_pd, "cpl0: CR3 = page directory"
        movl %cr4, %eax
        CHECK_MASK %eax, $CR4_PAE, $0, "cpl0: CR4.PAE clear"
        AT_CPL 3
        movl $0x11, %eax
        END_CPL 3
        CHECK_EQ %eax, $0x11, "cpl3 round trip works with supervisor-only GDT/IDT/TSS/stack pages"

        # ---------------------------------------- 4-KiB rights matrix
        NOTE "4 KiB pages: PDE x PTE rights, reads and writes, CR0.WP=1 and 0"
        .irp wp, 1, 0
        .irp cpl, 0, 3
        .irp pde, S_RO, S_RW, U_RO, U_RW
        .irp pte, S_RO, S_RW, U_RO, U_RW
        .irp acc, read, write
        PG_RIGHTS 4k, \cpl, \wp, \pde, \pte, \acc
        .endr
        .endr
        .endr
        .endr
        .endr
        NOTE "4 KiB pages: instruction fetches (no I/D bit with 32-bit paging)"
        .irp cpl, 0, 3
        .irp pde, S_RO, S_RW, U_RO, U_RW
        .irp pte, S_RO, S_RW, U_RO, U_RW
        PG_RIGHTS 4k, \cpl, 1, \pde, \pte, exec
        .endr
        .endr
        .endr
        PG_WP 1

        # ------------------------------------------------- not present
        NOTE "not-present PDE / PTE: error code P=0"
        .irp level, pde, pte
        .irp cpl, 0, 3
        .irp acc, read, write, exec
        PG_NOTPRESENT \level, \cpl, \acc
        .endr
        .endr
        .endr

        # -------------------------------------------- A/D sequences
        NOTE "A/D: a write after a read sets D; the processor never clears A/D"
        .irp cpl, 0, 3
        PG_PDEFLAGS $NP_LIN, $(PG_P | PG_RW | PG_US)
        PG_SETPTE $NP_LIN, $(NP_FRAME | PG_P | PG_RW | PG_US)
        movl $0x77, NP_FRAME
        PG_FLUSH
        AT_CPL \cpl
        movl NP_LIN, %eax               # read: A=1, D=0 (translation cached)
        END_CPL \cpl
        PG_READ $NP_LIN
        CHECK_MASK pg_pte, $(PG_A | PG_D), $PG_A, "cpl\cpl: read: PTE A=1 D=0"
        AT_CPL \cpl
        movl NP_LIN, %eax               # second read through the TLB
        movl $0x78, NP_LIN              # first write: must set D
        END_CPL \cpl
        PG_READ $NP_LIN
        CHECK_MASK pg_pte, $(PG_A | PG_D), $(PG_A | PG_D), "cpl\cpl: write after read: PTE D=1"
        CHECK_EQ NP_FRAME, $0x78, "cpl\cpl: write after read: stored"
        AT_CPL \cpl
        movl NP_LIN+4, %eax
        END_CPL \cpl
        PG_READ $NP_LIN
        CHECK_MASK pg_pte, $(PG_A | PG_D), $(PG_A | PG_D), "cpl\cpl: later read: A and D stay set"
        # read-modify-write instructions set D too
        PG_SETPTE $NP_LIN, $(NP_FRAME | PG_P | PG_RW | PG_US)
        PG_FLUSH
        AT_CPL \cpl
        movl $5, %eax
        lock xaddl %eax, NP_LIN+8
        incl NP_LIN+12
        END_CPL \cpl
        PG_READ $NP_LIN
        CHECK_MASK pg_pte, $(PG_A | PG_D), $(PG_A | PG_D), "cpl\cpl: lock xadd / inc: PTE A=1 D=1"
        .endr

        # --------------------------------------------- 4-MiB pages
        cmpl $0, pg_has_pse
        jne big_pages
        SKIP "4 MiB pages (CPUID.01H:EDX.PSE=0)"
        jmp big_done
big_pages:
        NOTE "4 MiB pages (CR4.PSE=1): rights and A/D in the PDE"
        .irp wp, 1, 0
        .irp cpl, 0, 3
        .irp f, S_RO, S_RW, U_RO, U_RW
        .irp acc, read, write
        PG_RIGHTS big, \cpl, \wp, \f, none, \acc
        .endr
        .endr
        .endr
        .endr
        .irp cpl, 0, 3
        .irp f, S_RO, U_RO
        PG_RIGHTS big, \cpl, 1, \f, none, exec
        .endr
        .endr
        PG_WP 1

        # translation: linear bits 21:0 are the offset into the 4-MiB frame
        movl $0xb0b0b0b0, PG_BIG1
        movl $0xe0e0e0e0, PG_BIG1 + 0x3ffffc
        movl $0x1f1f1f1f, PG_BIG1 + 0x200000
        PG_SETPDE $PG_LL, $(PG_BIG1 | PG_PS | PG_P | PG_RW | PG_US)
        PG_FLUSH
        AT_CPL 3
        movl PG_LL, %eax
        movl PG_LL + 0x3ffffc, %ebx
        movl PG_LL + 0x200000, %ecx
        END_CPL 3
        CHECK_EQ %eax, $0xb0b0b0b0, "cpl3: 4 MiB page: first dword"
        CHECK_EQ %ebx, $0xe0e0e0e0, "cpl3: 4 MiB page: last dword (offset 0x3ffffc)"
        CHECK_EQ %ecx, $0x1f1f1f1f, "cpl3: 4 MiB page: offset 0x200000 (bit 21 is an offset bit)"

        # reserved bit 21 of a 4-MiB PDE: #PF with P=1 and RSVD=1
        NOTE "4 MiB PDE with reserved bit 21: error code P|RSVD"
        .irp cpl, 0, 3
        .irp acc, read, write
        PG_SETPDE $PG_LL, $(PG_BIG1 | 0x200000 | PG_PS | PG_P | PG_RW | PG_US)
        PG_FLUSH
        PG_TRY 1f
        AT_CPL \cpl
        .ifc \acc, read
2:      movl PG_LL + 0x10, %eax
        .set rsv_err, PF_P | PF_RSVD
        .else
2:      movl %eax, PG_LL + 0x10
        .set rsv_err, PF_P | PF_RSVD | PF_W
        .endif
        END_CPL \cpl
        ENDTRY
1:      .if \cpl == 3
        .set rsv_err, rsv_err | PF_U
        .endif
        PG_CHECK_RSVD rsv_err, $2b, $(PG_LL + 0x10), "cpl\cpl: \acc, 4 MiB PDE bit 21 set: #PF(P|RSVD)"
        .endr
        .endr
        # ... also on a supervisor page at CPL3 (RSVD reported with U/S=1)
        PG_SETPDE $PG_LL, $(PG_BIG1 | 0x200000 | PG_PS | PG_P | PG_RW)
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
2:      movl PG_LL + 0x20, %eax
        END_CPL 3
        ENDTRY
1:      PG_CHECK_RSVD (PF_P | PF_RSVD | PF_U), $2b, $(PG_LL + 0x20), "cpl3: read, supervisor 4 MiB PDE with bit 21: #PF(P|RSVD|U)"

        # CR4.PSE=0: the PS bit is ignored, the PDE references a page table
        NOTE "CR4.PSE=0: PS ignored, the PDE names a page table"
        PG_SETPDE $PG_LL, $(PG_BIG0 | PG_PS | PG_P | PG_RW | PG_US)
        movl $(PG_FRAMES + 0x7000 | PG_P | PG_RW | PG_US), PG_BIG0 + 4 * 3
        movl $0x600dbeef, PG_FRAMES + 0x7000 + 0x44
        movl $0xbadbad00, PG_BIG0 + 0x3044
        movl %cr4, %eax
        andl $~CR4_PSE, %eax
        movl %eax, %cr4
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
        movl PG_LL + 0x3044, %ebx
        END_CPL 3
        ENDTRY
1:      movl %cr4, %eax
        orl $CR4_PSE, %eax
        movl %eax, %cr4
        CHECK_NOFAULT "cpl3: CR4.PSE=0, PDE with PS=1: access goes through a page table"
        CHECK_EQ %ebx, $0x600dbeef, "cpl3: CR4.PSE=0: value from the page named by PTE 3"
        movl %cr4, %eax
        CHECK_MASK %eax, $CR4_PSE, $CR4_PSE, "cpl0: CR4.PSE set again"
        PG_FLUSH
        AT_CPL 3
        movl PG_LL + 0x3044, %ebx
        END_CPL 3
        CHECK_EQ %ebx, $0xbadbad00, "cpl3: CR4.PSE=1 again: same PDE maps a 4 MiB page"
        PG_SETPDE $PG_LL, $0
        PG_FLUSH
big_done:

        call pg_leave
        movl %cr0, %eax
        CHECK_MASK %eax, $CR0_PG, $0, "cpl0: paging off at the end"
        jmp rf_done
