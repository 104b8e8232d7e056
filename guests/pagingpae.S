# pagingpae.S -- PAE paging: 4-KiB and 2-MiB pages, reserved bits, NX.
#
# SDM Vol. 3A: 4.4 "PAE Paging" (4.4.1: the four PDPTEs are loaded by MOV to
# CR3, a PDPTE with P=1 and a reserved bit set makes MOV CR3 #GP(0);
# Tables 4-8..4-11: PDPTE/PDE/PTE formats, bits 62:M reserved, bits 20:13
# of a 2-MiB PDE reserved, bit 63 = XD with EFER.NXE=1 and reserved
# otherwise; 2-MiB pages do not depend on CR4.PSE), 4.6 "Access Rights"
# (4.6.1 execute-disable: fetches need XD=0 at every level when NXE=1),
# 4.7 "Page-Fault Exceptions" (P, W/R, U/S, RSVD; I/D = 1 for a fetch when
# PAE and EFER.NXE=1), 4.8 "Accessed and Dirty Flags".
#
# NX: CPUID.80000001H:EDX.NX[bit 20] is checked first; without it every NX
# check is reported as "# SKIP" (the XD bit with NXE=0 -- a reserved bit --
# is tested either way).
#
# QEMU 7.2 TCG deviations (tolerated unless booted with "strict"):
#  * reserved-bit #PF reports RSVD without P (PG_CHECK_RSVD, CHECK_FAULT_ALT);
#  * a PDPTE with a reserved bit is not checked by MOV to CR3 (no #GP;
#    CHECK_FAULT_TOL); the same PDPTE then gives a reserved-bit #PF on use.
        .include "rf.inc"
        .include "paging.inc"

        .set AD_LIN, PG_LA + 0x5000
        .set AD_FRAME, PG_FRAMES + 0x5000

# RSVD_CASE cpl, level, lo, hi, acc, what[, idbit]: the test page (user,
# read/write) with extra bits lo:hi (named `what`) ORed into its PTE, its
# PDE, or (level big) a 2-MiB PDE: #PF(P|RSVD|W/R|U/S|I/D) with CR2.  hi
# may be a memory operand.
        .macro RSVD_CASE cpl, level, lo, hi, acc, what, idbit=0
        .set rc_err, PF_P | PF_RSVD
        .if \cpl == 3
        .set rc_err, rc_err | PF_U
        .endif
        .ifc \acc, write
        .set rc_err, rc_err | PF_W
        .endif
        .ifc \acc, exec
        .set rc_err, rc_err | \idbit
        .endif
        .ifc \level, big
        pushl $1
        pushl $(PG_BIG1 | PG_PS | PG_P | PG_RW | PG_US | \lo)
        call pg_big_setup
        movl \hi, %eax
        PG_SETPDE $PG_LL, $(PG_BIG1 | PG_PS | PG_P | PG_RW | PG_US | \lo), %eax
        .set rc_lin, PG_BLIN
        .else
        pushl $1
        pushl $(PG_TFRAME | PG_P | PG_RW | PG_US)
        pushl $(PG_P | PG_RW | PG_US)
        call pg_rights_setup
        movl \hi, %eax
        .ifc \level, pde
        PG_PDEFLAGS $PG_TLIN, $(PG_P | PG_RW | PG_US | \lo), %eax
        .else
        PG_SETPTE $PG_TLIN, $(PG_TFRAME | PG_P | PG_RW | PG_US | \lo), %eax
        .endif
        .set rc_lin, PG_TLIN
        .endif
        PG_FLUSH
        .ifc \acc, exec
        PG_ACCESS \cpl, \acc, rc_lin
        PG_EXPECT_RSVD \acc, rc_lin, rc_err, "cpl\cpl: \acc, \what in the \level entry: #PF(P|RSVD)"
        .else
        PG_ACCESS \cpl, \acc, (rc_lin + PG_DOFF)
        PG_EXPECT_RSVD \acc, (rc_lin + PG_DOFF), rc_err, "cpl\cpl: \acc, \what in the \level entry: #PF(P|RSVD)"
        .endif
        .endm

# XD_CASE cpl, level, acc: EFER.NXE=1, the test page is user read/write
# with XD=1 in its PTE, its PDE only, or its 2-MiB PDE (level big).
# Data accesses work; a fetch faults with #PF(P|I/D|U/S), the leaf's A flag
# stays clear.
        .macro XD_CASE cpl, level, acc
        .ifc \level, big
        pushl $1
        pushl $(PG_BIG1 | PG_PS | PG_P | PG_RW | PG_US)
        call pg_big_setup
        PG_SETPDE $PG_LL, $(PG_BIG1 | PG_PS | PG_P | PG_RW | PG_US), $PG_XDH
        .set xc_lin, PG_BLIN
        .set xc_frame, PG_BFRAME
        .else
        pushl $1
        pushl $(PG_TFRAME | PG_P | PG_RW | PG_US)
        pushl $(PG_P | PG_RW | PG_US)
        call pg_rights_setup
        .ifc \level, pde
        PG_PDEFLAGS $PG_TLIN, $(PG_P | PG_RW | PG_US), $PG_XDH
        .else
        PG_SETPTE $PG_TLIN, $(PG_TFRAME | PG_P | PG_RW | PG_US), $PG_XDH
        .endif
        .set xc_lin, PG_TLIN
        .set xc_frame, PG_TFRAME
        .endif
        PG_FLUSH
        .set xc_err, PF_P | PF_ID
        .if \cpl == 3
        .set xc_err, xc_err | PF_U
        .endif
        .ifc \acc, exec
        PG_ACCESS \cpl, exec, xc_lin
        PG_READ $xc_lin
        PG_EXPECT_PF exec, xc_lin, xc_err, "cpl\cpl: fetch, XD=1 in the \level entry: #PF(P|I/D)"
        .ifc \level, big
        CHECK_MASK pg_pde, $PG_A, $0, "cpl\cpl: fetch, XD=1 in the \level entry: leaf A not set"
        .else
        CHECK_MASK pg_pte, $PG_A, $0, "cpl\cpl: fetch, XD=1 in the \level entry: leaf A not set"
        .endif
        .else
        PG_ACCESS \cpl, \acc, (xc_lin + PG_DOFF)
        CHECK_NOFAULT "cpl\cpl: \acc, XD=1 in the \level entry: data access allowed"
        .ifc \acc, read
        CHECK_EQ %eax, $PG_PAT_R, "cpl\cpl: \acc, XD=1 in the \level entry: value"
        .else
        CHECK_EQ xc_frame + PG_DOFF, $PG_PAT_W, "cpl\cpl: \acc, XD=1 in the \level entry: stored"
        .endif
        .endif
        .endm

rf_main:
        NOTE "pagingpae: PAE paging, 4 KiB and 2 MiB pages, reserved bits, NX"
        call pg_setup
        cmpl $0, pg_has_pae
        jne 1f
        SKIP "PAE paging (CPUID.01H:EDX.PAE=0)"
        jmp rf_done
1:      call pg_enter_pae

        # --------------------------------------------------- sanity
        movl %cr0, %eax
        CHECK_MASK %eax, $(CR0_PG | CR0_WP), $(CR0_PG | CR0_WP), "cpl0: CR0.PG and CR0.WP set"
        movl %cr4, %eax
        CHECK_MASK %eax, $CR4_PAE, $CR4_PAE, "cpl0: CR4.PAE set"
        movl %cr3, %eax
        CHECK_EQ %eax, $pg_pdpt, "cpl0: CR3 = PDPT"
        AT_CPL 3
        movl $0x22, %eax
        END_CPL 3
        CHECK_EQ %eax, $0x22, "cpl3 round trip works with supervisor-only GDT/IDT/TSS/stack pages"
        cmpl $0, pg_has_nx
        je 1f
        PG_NXE 0
1:      PG_FLUSH

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
        NOTE "4 KiB pages: instruction fetches with EFER.NXE=0 (I/D stays 0)"
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

        NOTE "not-present PDPTE (loaded by MOV CR3)"
        movl $0xabcdef01, PG_FRAMES + 0x4000
        PG_SETPTE $PG_LB, $(PG_FRAMES + 0x4000 | PG_P | PG_RW | PG_US)
        PG_FLUSH
        AT_CPL 3
        movl PG_LB, %ebx
        END_CPL 3
        CHECK_EQ %ebx, $0xabcdef01, "cpl3: region B mapped through PDPTE 2"
        movl pg_pdpt + 2 * 8, %esi
        movl $0, pg_pdpt + 2 * 8
        PG_FLUSH
        .irp cpl, 0, 3
        .irp acc, read, write
        .set np_err, 0
        .if \cpl == 3
        .set np_err, PF_U
        .endif
        .ifc \acc, write
        .set np_err, np_err | PF_W
        .endif
        PG_ACCESS \cpl, \acc, (PG_LB + 0x10)
        PG_EXPECT_PF \acc, (PG_LB + 0x10), np_err, "cpl\cpl: \acc, PDPTE 2 not present: #PF"
        .endr
        .endr
        movl %esi, pg_pdpt + 2 * 8
        PG_FLUSH
        AT_CPL 3
        movl PG_LB, %ebx
        END_CPL 3
        CHECK_EQ %ebx, $0xabcdef01, "cpl3: PDPTE 2 present again after MOV CR3"

        # ------------------------------------------------ A/D sequence
        NOTE "A/D: a write after a read sets D"
        .irp cpl, 0, 3
        PG_SETPTE $AD_LIN, $(AD_FRAME | PG_P | PG_RW | PG_US)
        PG_FLUSH
        AT_CPL \cpl
        movl AD_LIN, %eax
        END_CPL \cpl
        PG_READ $AD_LIN
        CHECK_MASK pg_pte, $(PG_A | PG_D), $PG_A, "cpl\cpl: read: PTE A=1 D=0"
        AT_CPL \cpl
        movl %eax, AD_LIN
        END_CPL \cpl
        PG_READ $AD_LIN
        CHECK_MASK pg_pte, $(PG_A | PG_D), $(PG_A | PG_D), "cpl\cpl: write after read: PTE D=1"
        CHECK_EQ pg_pteh, $0, "cpl\cpl: PTE high dword untouched"
        .endr

        # ----------------------------------------------- 2-MiB pages
        NOTE "2 MiB pages: rights and A/D in the PDE"
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

        movl $0xb0b0b0b0, PG_BIG1
        movl $0xe0e0e0e0, PG_BIG1 + 0x1ffffc
        movl $0x1f1f1f1f, PG_BIG1 + 0x200000
        PG_SETPDE $PG_LL, $(PG_BIG1 | PG_PS | PG_P | PG_RW | PG_US)
        PG_SETPDE $(PG_LL + 0x200000), $(PG_BIG1 + 0x200000 | PG_PS | PG_P | PG_RW | PG_US)
        PG_FLUSH
        AT_CPL 3
        movl PG_LL, %eax
        movl PG_LL + 0x1ffffc, %ebx
        movl PG_LL + 0x200000, %ecx
        END_CPL 3
        CHECK_EQ %eax, $0xb0b0b0b0, "cpl3: 2 MiB page: first dword"
        CHECK_EQ %ebx, $0xe0e0e0e0, "cpl3: 2 MiB page: last dword (offset 0x1ffffc)"
        CHECK_EQ %ecx, $0x1f1f1f1f, "cpl3: next 2 MiB page (next PDE)"

        # 2-MiB pages do not depend on CR4.PSE
        movl %cr4, %eax
        andl $~CR4_PSE, %eax
        movl %eax, %cr4
        movl $0x2b2b2b2b, PG_BIG1 + 0x1000
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
        movl PG_LL + 0x1000, %ebx
        END_CPL 3
        ENDTRY
1:      CHECK_NOFAULT "cpl3: CR4.PSE=0: 2 MiB page still used"
        CHECK_EQ %ebx, $0x2b2b2b2b, "cpl3: CR4.PSE=0: 2 MiB page value"
        cmpl $0, pg_has_pse
        je 1f
        movl %cr4, %eax
        orl $CR4_PSE, %eax
        movl %eax, %cr4
1:      PG_SETPDE $(PG_LL + 0x200000), $0
        PG_FLUSH

        # ---------------------------------------------- reserved bits
        NOTE "reserved bits: #PF with P=1 and RSVD=1"
        # bit M (MAXPHYADDR) of the entries, if M < 52
        movl pg_maxphys, %ecx
        cmpl $52, %ecx
        jb rsv_m
        SKIP "reserved address bit M (MAXPHYADDR = 52)"
        jmp rsv_m_done
rsv_m:  subl $32, %ecx
        movl $1, %eax
        shll %cl, %eax
        movl %eax, rsv_hi
        .irp cpl, 0, 3
        .irp acc, read, write, exec
        RSVD_CASE \cpl, pte, 0, rsv_hi, \acc, "bit M"
        .endr
        .endr
        RSVD_CASE 0, pde, 0, rsv_hi, read, "bit M"
        RSVD_CASE 3, pde, 0, rsv_hi, write, "bit M"
        RSVD_CASE 3, big, 0, rsv_hi, read, "bit M"
rsv_m_done:
        # bits 20:13 of a 2-MiB PDE
        RSVD_CASE 0, big, 0x2000, $0, read, "bit 13"
        RSVD_CASE 3, big, 0x100000, $0, write, "bit 20"
        RSVD_CASE 3, big, 0x2000, $0, exec, "bit 13"
        # XD (bit 63) with EFER.NXE=0 is reserved; a fetch fault has I/D=0
        RSVD_CASE 0, pte, 0, $PG_XDH, read, "XD with NXE=0"
        RSVD_CASE 3, pte, 0, $PG_XDH, write, "XD with NXE=0"
        RSVD_CASE 0, pte, 0, $PG_XDH, exec, "XD with NXE=0"
        RSVD_CASE 3, pte, 0, $PG_XDH, exec, "XD with NXE=0"
        RSVD_CASE 3, pde, 0, $PG_XDH, read, "XD with NXE=0"
        RSVD_CASE 0, big, 0, $PG_XDH, exec, "XD with NXE=0"

        # bits 62:52 of a PTE are reserved too in PAE paging
        RSVD_CASE 0, pte, 0, $0x40000000, read, "bit 62"
        RSVD_CASE 3, pte, 0, $0x00100000, write, "bit 52"
        RSVD_CASE 3, pde, 0, $0x40000000, read, "bit 62"

        # a PDPTE with P=1 and a reserved bit: MOV to CR3 faults
        NOTE "PDPTE with a reserved bit (R/W, bit 1): MOV CR3 -> #GP(0)"
        movl pg_pdpt + 2 * 8, %esi
        orl $PG_RW, pg_pdpt + 2 * 8
        PG_TRY 1f
        movl $pg_pdpt, %eax
2:      movl %eax, %cr3
        ENDTRY
1:      CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl0: MOV CR3 with a reserved bit in PDPTE 2: #GP(0)"
        movl %esi, pg_pdpt + 2 * 8
        PG_FLUSH
        AT_CPL 3
        movl PG_LB, %ebx
        END_CPL 3
        CHECK_EQ %ebx, $0xabcdef01, "cpl3: PDPTE 2 valid again after MOV CR3"

        # ------------------------------------------------ instruction
        # fetches across a page boundary (second page not present)
        NOTE "instruction fetch across a page boundary, next page not present"
        .irp cpl, 0, 3
        .irp kind, nop, insn
        PG_STRADDLE \cpl, \kind, $(PG_SYF | PG_P | PG_RW | PG_US), $0, ok, "next page present"
        PG_STRADDLE \cpl, \kind, $(PG_SYF | PG_RW | PG_US), $0, ((\cpl>>1)*PF_U), "next page not present"
        .endr
        .endr

        # -------------------------------------------------------- NX
        cmpl $0, pg_has_nx
        jne nx_tests
        NOTE "CPUID.80000001H:EDX.NX=0: no execute-disable"
        SKIP "NX: XD in PTE / PDE / 2 MiB PDE, data and fetch (CPUID.80000001H:EDX.NX=0)"
        SKIP "NX: fetch rights matrix with NXE=1 (CPUID.80000001H:EDX.NX=0)"
        SKIP "NX: not-present fetch sets I/D (CPUID.80000001H:EDX.NX=0)"
        SKIP "NX: reserved bit + fetch: P|RSVD|I/D (CPUID.80000001H:EDX.NX=0)"
        SKIP "NX: execution running into an XD page (CPUID.80000001H:EDX.NX=0)"
        jmp nx_done
nx_tests:
        NOTE "NX: EFER.NXE=1"
        PG_NXE 1
        movl $MSR_EFER, %ecx
        rdmsr
        CHECK_MASK %eax, $EFER_NXE, $EFER_NXE, "cpl0: EFER.NXE set"
        .irp cpl, 0, 3
        .irp level, pte, pde, big
        .irp acc, read, write, exec
        XD_CASE \cpl, \level, \acc
        .endr
        .endr
        .endr
        NOTE "NX: fetch rights matrix with NXE=1 (I/D set in every fetch fault)"
        .irp cpl, 0, 3
        .irp pde, S_RO, U_RW
        .irp pte, S_RO, S_RW, U_RO, U_RW
        PG_RIGHTS 4k, \cpl, 1, \pde, \pte, exec, PF_ID
        .endr
        .endr
        .endr
        NOTE "NX: not-present fetch: I/D; not-present read: no I/D"
        .irp level, pde, pte
        .irp cpl, 0, 3
        PG_NOTPRESENT \level, \cpl, exec, PF_ID
        PG_NOTPRESENT \level, \cpl, read
        .endr
        .endr
        NOTE "NX: reserved bit + fetch: P|RSVD|I/D"
        RSVD_CASE 0, big, 0x2000, $0, exec, "bit 13", PF_ID
        RSVD_CASE 3, big, 0x2000, $0, exec, "bit 13", PF_ID
        NOTE "NX: execution running into an XD page"
        .irp cpl, 0, 3
        .irp kind, nop, insn
        PG_STRADDLE \cpl, \kind, $(PG_SYF | PG_P | PG_RW | PG_US), $PG_XDH, (PF_P|PF_ID|((\cpl>>1)*PF_U)), "next page XD"
        .endr
        .endr
        PG_NXE 0
        PG_FLUSH
nx_done:

        call pg_leave
        movl %cr0, %eax
        CHECK_MASK %eax, $CR0_PG, $0, "cpl0: paging off at the end"
        jmp rf_done

        .data
        .balign 4
rsv_hi: .long 0
