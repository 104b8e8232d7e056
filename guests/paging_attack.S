# paging_attack.S -- CPL3 code against supervisor pages and the top of the
# linear address space, with 32-bit paging and again with PAE paging.
#
# Every attempt must end in a guest #PF with the exact error code and CR2,
# and the target memory must be unchanged.  Positive controls show that
# the same pages work when they are user pages.
#
# SDM Vol. 3A: 4.6.1 (user-mode accesses need U/S=1 at every level; writes
# also R/W=1; fetches also XD=0), 4.7 (error code P, W/R, U/S, I/D; CR2),
# 3.4 / 5.3 (linear address = segment base + offset, modulo 2^32), Vol. 2B
# "REP/STOS" (a fault in a repeated string instruction leaves ECX/EDI at the
# faulting element, the earlier elements are stored), Vol. 3A 6.5 (faults
# are precise: a faulting MOV stores nothing).
#
# Layout (paging.inc): the identity map gives the framework's GDT, IDT,
# TSS, kernel stacks, data and page tables supervisor read/write, the image
# code user read-only.  With PAE paging, EFER.NXE is set when CPUID has NX,
# so fetch faults then also carry I/D.
        .include "rf.inc"
        .include "paging.inc"

        .set SRW, PG_LB                 # supervisor read/write page
        .set SRO, PG_LB + 0x1000        # supervisor read-only page
        .set UPG, PG_LB + 0x2000        # user page followed by ...
        .set SPG, PG_LB + 0x3000        # ... a supervisor page
        .set USD, PG_LA + 0x40000       # user PTE under a supervisor PDE
        .set F_S, PG_FRAMES + 0x30000
        .set F_SRO, PG_FRAMES + 0x31000
        .set F_U, PG_FRAMES + 0x32000
        .set F_S2, PG_FRAMES + 0x33000
        .set F_TOP, PG_FRAMES + 0x34000 # frame of 0xfffff000
        .set F_TOP2, PG_FRAMES + 0x35000 # frame of 0xffffe000
        .set F_TOPLO, PG_FRAMES + 0x36000 # frame of 0xffe00000
        .set S_WRAP, 0x30               # DPL3 data, base 0xfffff000, 4 GiB
        .set SENT, 0x5e5e5e5e           # sentinel in every target frame
        .set URW, PG_P | PG_RW | PG_US
        .set SUP, PG_P | PG_RW

# fill a frame with the sentinel and put "mov $imm, %eax; ret" at +off
        .macro FRAME frame, off=0
        pushl $4096
        pushl $\frame
        call fill_sent
        PG_CODE $(\frame + \off), $0x600d
        .endm

fill_sent:
        pushal
        movl 36(%esp), %edi
        movl 40(%esp), %ecx
        shrl $2, %ecx
        movl $SENT, %eax
        cld
        rep stosl
        popal
        ret $8

# ATK mode, cpl, acc, lin, err, "desc": the access must raise #PF(err) at it with
# CR2 = lin (for exec, err gets I/D when NXE is on: atk_id).  If the target
# is mapped for CPL0 (chk=y), its dword is compared before/after.
        .macro ATK mode, cpl, acc, lin, err, desc, chk=y
        .ifc \chk, y
        movl \lin, %eax
        movl %eax, atk_saved
        .endif
        PG_ACCESS \cpl, \acc, \lin
        movl $(\err), %eax
        .ifc \acc, exec
        orl atk_id, %eax
        .endif
        movl %eax, atk_err
        .ifc \acc, exec
        PG_CHECK_PF atk_err, $(\lin), $(\lin), "cpl\cpl: \mode: \acc \desc: #PF"
        .else
        PG_CHECK_PF atk_err, $2b, $(\lin), "cpl\cpl: \mode: \acc \desc: #PF"
        .endif
        .ifc \chk, y
        movl \lin, %eax
        CHECK_EQ %eax, atk_saved, "cpl\cpl: \mode: \acc \desc: memory unchanged"
        .endif
        .endm

# OKACC mode, cpl, acc, lin, "desc": positive control, the access works
        .macro OKACC mode, cpl, acc, lin, desc
        PG_ACCESS \cpl, \acc, \lin
        CHECK_NOFAULT "cpl\cpl: \mode: \acc \desc: allowed"
        .endm

        .macro ATTACK_BODY mode
        NOTE "\mode: supervisor pages"
        FRAME F_S
        FRAME F_SRO
        PG_SETPTE $SRW, $(F_S | SUP)
        PG_SETPTE $SRO, $(F_SRO | PG_P)
        PG_FLUSH
        OKACC \mode, 0, read, SRW+0x100, "supervisor page"
        OKACC \mode, 0, exec, SRW, "supervisor page"
        OKACC \mode, 0, read, SRO+0x100, "supervisor read-only page"
        ATK \mode, 3, read, SRW+0x100, PF_P|PF_U, "supervisor page"
        ATK \mode, 3, write, SRW+0x100, PF_P|PF_W|PF_U, "supervisor page"
        ATK \mode, 3, exec, SRW, PF_P|PF_U, "supervisor page"
        ATK \mode, 3, read, SRO+0x100, PF_P|PF_U, "supervisor read-only page"
        ATK \mode, 3, write, SRO+0x100, PF_P|PF_W|PF_U, "supervisor read-only page"
        ATK \mode, 0, write, SRO+0x100, PF_P|PF_W, "supervisor read-only page, CR0.WP=1"
        CHECK_EQ F_S + 0x100, $SENT, "\mode: supervisor frame still holds the sentinel"

        NOTE "\mode: user PTE under a supervisor PDE"
        FRAME F_U
        PG_SETPTE $USD, $(F_U | URW)
        PG_PDEFLAGS $USD, $SUP
        PG_FLUSH
        ATK \mode, 3, read, USD+0x10, PF_P|PF_U, "user PTE, supervisor PDE"
        ATK \mode, 3, write, USD+0x10, PF_P|PF_W|PF_U, "user PTE, supervisor PDE"
        ATK \mode, 3, exec, USD, PF_P|PF_U, "user PTE, supervisor PDE"
        PG_PDEFLAGS $USD, $URW
        PG_FLUSH
        OKACC \mode, 3, read, USD+0x10, "user PTE, user PDE (control)"
        PG_SETPTE $USD, $0
        PG_FLUSH

        NOTE "\mode: the framework's own structures from CPL3"
        ATK \mode, 3, read, rf_gdt+0x18, PF_P|PF_U, "GDT"
        ATK \mode, 3, write, rf_gdt+0x18, PF_P|PF_W|PF_U, "GDT"
        ATK \mode, 3, read, rf_idt+0x30*8, PF_P|PF_U, "IDT"
        ATK \mode, 3, write, rf_idt+0x30*8, PF_P|PF_W|PF_U, "IDT"
        ATK \mode, 3, read, rf_tss+4, PF_P|PF_U, "TSS.ESP0"
        ATK \mode, 3, write, rf_tss+4, PF_P|PF_W|PF_U, "TSS.ESP0"
        ATK \mode, 3, write, rf_istack+0x100, PF_P|PF_W|PF_U, "ring-0 stack (TSS.ESP0 side)"
        ATK \mode, 3, read, rf_stack+0x100, PF_P|PF_U, "kernel stack"
        ATK \mode, 3, write, rf_recover_eip, PF_P|PF_W|PF_U, "framework data"
        ATK \mode, 3, exec, rf_scratch, PF_P|PF_U, "supervisor data page"
        ATK \mode, 3, write, rf_main, PF_P|PF_W|PF_U, "own code page (user, read-only)"
        ATK \mode, 0, write, rf_main, PF_P|PF_W, "user read-only code page, CR0.WP=1"
        cmpl $0, pg_mode
        jne .Latk_pae\@
        ATK \mode, 3, read, pg_pd, PF_P|PF_U, "page directory"
        ATK \mode, 3, write, pg_pd+(PG_LB>>22)*4, PF_P|PF_W|PF_U, "page directory"
        ATK \mode, 3, write, pg_pt_b, PF_P|PF_W|PF_U, "page table"
        jmp .Latk_tabdone\@
.Latk_pae\@:
        ATK \mode, 3, read, pg_pdpt, PF_P|PF_U, "PDPT"
        ATK \mode, 3, write, pg_pae_pd+(PG_LB>>21)*8, PF_P|PF_W|PF_U, "page directory"
        ATK \mode, 3, write, pg_pae_pt_b, PF_P|PF_W|PF_U, "page table"
.Latk_tabdone\@:
        NOTE "\mode: top of the linear address space"
        FRAME F_TOP, 0xff0
        FRAME F_TOP2
        FRAME F_TOPLO
        movl $0x70707070, F_TOP + 0xffc
        PG_SETPTE $0xfffff000, $(F_TOP | URW)
        PG_FLUSH
        OKACC \mode, 3, read, 0xfffffffc, "user page at 0xfffff000"
        CHECK_EQ %eax, $0x70707070, "cpl3: \mode: read at 0xfffffffc: value"
        OKACC \mode, 3, exec, 0xfffffff0, "user page at 0xfffff000"
        CHECK_EQ %eax, $0x600d, "cpl3: \mode: code at 0xfffffff0 ran"
        PG_TRY 1f
        AT_CPL 3
        movb $0x99, 0xffffffff
        END_CPL 3
        ENDTRY
1:      CHECK_NOFAULT "cpl3: \mode: byte write at 0xffffffff: allowed"
        CHECK_EQ F_TOP + 0xffc, $0x99707070, "cpl3: \mode: byte write at 0xffffffff: stored"
        movl $0x70707070, F_TOP + 0xffc
        PG_SETPTE $0xfffff000, $(F_TOP | SUP)
        PG_INVLPG $0xfffff000
        ATK \mode, 3, read, 0xfffffffc, PF_P|PF_U, "supervisor page at 0xfffff000"
        ATK \mode, 3, write, 0xfffffffc, PF_P|PF_W|PF_U, "supervisor page at 0xfffff000"
        ATK \mode, 3, exec, 0xfffffff0, PF_P|PF_U, "supervisor page at 0xfffff000"
        PG_TRY 1f
        AT_CPL 3
2:      movb $0x99, 0xffffffff
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_P | PF_W | PF_U), $2b, $0xffffffff, "cpl3: \mode: byte write 0xffffffff, supervisor page: #PF"
        CHECK_EQ F_TOP + 0xffc, $0x70707070, "cpl3: \mode: top frame unchanged"
        ATK \mode, 3, read, 0xffffe010, PF_U, "not-present page 0xffffe000", n
        ATK \mode, 3, write, 0xffffe010, PF_W|PF_U, "not-present page 0xffffe000", n
        ATK \mode, 3, exec, 0xffffe000, PF_U, "not-present page 0xffffe000", n
        ATK \mode, 0, read, 0xffffe010, 0, "not-present page 0xffffe000", n
        PG_SETPTE $0xffe00000, $(F_TOPLO | PG_P)
        PG_FLUSH
        ATK \mode, 3, read, 0xffe00000, PF_P|PF_U, "supervisor read-only page 0xffe00000"
        ATK \mode, 0, write, 0xffe00000, PF_P|PF_W, "supervisor read-only page 0xffe00000, CR0.WP=1"
        ATK \mode, 3, read, 0xffc00000, PF_U, "unmapped 0xffc00000", n
        ATK \mode, 3, read, 0xff000000, PF_U, "0xff000000, PDE not present", n
        ATK \mode, 3, write, 0xff000000, PF_W|PF_U, "0xff000000, PDE not present", n
        # a supervisor large page at 0xff000000 (4 MiB with PSE / 2 MiB PAE)
        cmpl $0, pg_mode
        jne .Latk_big\@
        cmpl $0, pg_has_pse
        jne .Latk_big\@
        SKIP "\mode: supervisor 4 MiB page at 0xff000000 (no PSE)"
        jmp .Latk_bigdone\@
.Latk_big\@:
        movl $0x1a1a1a1a, PG_BIG1 + 0x10
        PG_CODE $PG_BIG1, $0x600d
        PG_SETPDE $PG_LTB, $(PG_BIG1 | PG_PS | SUP)
        PG_FLUSH
        OKACC \mode, 0, read, 0xff000010, "supervisor large page 0xff000000"
        CHECK_EQ %eax, $0x1a1a1a1a, "cpl0: \mode: supervisor large page at 0xff000000: value"
        ATK \mode, 3, read, 0xff000010, PF_P|PF_U, "supervisor large page 0xff000000"
        ATK \mode, 3, write, 0xff000010, PF_P|PF_W|PF_U, "supervisor large page 0xff000000"
        ATK \mode, 3, exec, 0xff000000, PF_P|PF_U, "supervisor large page 0xff000000"
        PG_SETPDE $PG_LTB, $0
        PG_FLUSH
.Latk_bigdone\@:
        NOTE "\mode: REP STOSB from a user page into a supervisor page"
        PG_SETPTE $0xffffe000, $(F_TOP2 | URW)
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
        movl $0xfffffff8 - 0x1000, %edi
        movl $16, %ecx
        movb $0xee, %al
        cld
2:      rep stosb
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_P | PF_W | PF_U), $2b, $0xfffff000, "cpl3: \mode: rep stosb 0xffffeff8..+16 into the supervisor page 0xfffff000: #PF"
        CHECK_EQ %ecx, $8, "cpl3: \mode: rep stosb: ECX = elements left"
        CHECK_EQ %edi, $0xfffff000, "cpl3: \mode: rep stosb: EDI = faulting element"
        CHECK_EQ F_TOP2 + 0xff8, $0xeeeeeeee, "cpl3: \mode: rep stosb: user bytes stored"
        CHECK_EQ F_TOP2 + 0xffc, $0xeeeeeeee, "cpl3: \mode: rep stosb: user bytes stored (2)"
        CHECK_EQ F_TOP, $SENT, "cpl3: \mode: rep stosb: supervisor page unchanged"
        PG_SETPTE $0xffffe000, $0

        NOTE "\mode: a dword store split between a user and a supervisor page"
        FRAME F_U
        FRAME F_S2, 0x800
        PG_SETPTE $UPG, $(F_U | URW)
        PG_SETPTE $SPG, $(F_S2 | SUP)
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
        movl $0x12345678, %eax
2:      movl %eax, UPG + 0xffe
        END_CPL 3
        ENDTRY
1:      CHECK_FAULT $V_PF, $(PF_P | PF_W | PF_U), $2b, "cpl3: \mode: split store user|supervisor: #PF(P|W|U)"
        # CR2: the SDM names "the linear address that generated the
        # exception" without saying which byte of a page-split access; any
        # byte of the access is accepted (QEMU: the first supervisor byte)
        movl pg_cr2, %eax
        subl $(UPG + 0xffe), %eax
        cmpl $4, %eax
        setb %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl3: \mode: split store: CR2 is a byte of the access"
        CHECK_EQ F_U + 0xffc, $SENT, "cpl3: \mode: split store: user half not written"
        CHECK_EQ F_S2, $SENT, "cpl3: \mode: split store: supervisor half not written"

        NOTE "\mode: segment base + offset reaching the top / wrapping to page 0"
        GDT_DESC $S_WRAP, $0xfffff000, $0xfffff, $0xf3, $0xc
        PG_SETPTE $0xfffff000, $(F_TOP | SUP)
        PG_FLUSH
        PG_TRY 1f
        AT_CPL 3
        movw $(S_WRAP | 3), %ax
        movw %ax, %es
2:      movl %es:0xffc, %eax
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_P | PF_U), $2b, $0xfffffffc, "cpl3: \mode: base 0xfffff000 + 0xffc -> supervisor 0xfffffffc"
        PG_TRY 1f
        AT_CPL 3
        movw $(S_WRAP | 3), %ax
        movw %ax, %es
2:      movl %es:0x1010, %eax
        END_CPL 3
        ENDTRY
1:      PG_CHECK_PF $(PF_U), $2b, $0x10, "cpl3: \mode: base 0xfffff000 + 0x1010 wraps to linear 0x10 (page 0 not present)"
        PG_TRY 1f
2:      movl 0x20, %eax
        ENDTRY
1:      PG_CHECK_PF $0, $2b, $0x20, "cpl0: \mode: read of linear 0x20 (page 0 not present)"
        PG_SETPTE $0xfffff000, $0
        PG_FLUSH
        .endm

rf_main:
        NOTE "paging_attack: CPL3 vs supervisor pages and the top of the linear space"
        call pg_setup
        call pg_enter32
        movl $0, atk_id
        ATTACK_BODY paging32
        cmpl $0, pg_has_pae
        jne 1f
        SKIP "PAE part (CPUID.01H:EDX.PAE=0)"
        jmp 9f
1:      call pg_enter_pae
        cmpl $0, pg_has_nx
        je 2f
        PG_NXE 1
        PG_FLUSH
        movl $PF_ID, atk_id
        NOTE "PAE with EFER.NXE=1: fetch faults carry I/D"
        jmp 3f
2:      NOTE "PAE without NX (CPUID.80000001H:EDX.NX=0): no I/D"
3:      ATTACK_BODY pae
        cmpl $0, pg_has_nx
        je 9f
        PG_NXE 0
9:      call pg_leave
        jmp rf_done

        .data
        .balign 4
atk_saved:      .long 0
atk_err:        .long 0
atk_id:         .long 0
