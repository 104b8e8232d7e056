# segs.S -- segment register loads, reads and protection checks.
#
# SDM references: Vol. 3A ch. 3 "Protected-Mode Memory Management" (3.4.2
# segment selectors, 3.4.3 segment registers and the hidden descriptor
# cache, 3.4.5 segment descriptors incl. the accessed bit, 3.4.5.1 types,
# expand-down), ch. 5 "Protection" (5.3 limit checking, 5.4 type checking,
# 5.4.1 null selectors, 5.6 data-segment privilege checks, 5.7 SS checks);
# Vol. 2A/2B "MOV" (to/from Sreg), "PUSH", "POP", "LDS/LES/LFS/LGS/LSS".
#
# QEMU TCG deviation (documented, tolerated unless booted with "strict"):
# QEMU does not check segment limits (incl. expand-down), writes through
# read-only segments, or accesses through a null selector on ordinary data
# accesses; the SDM requires #GP(0) (#SS(0) for SS).  Those checks use
# CHECK_FAULT_TOL; every other check is strict.
        .include "rf.inc"

        .set BUF, rf_scratch            # 16 KiB, page aligned
        .set S_SMALL, 0x30              # DPL3 RW data, base BUF, limit 0xfff
        .set S_NA, 0x38                 # DPL3 RW data, accessed bit clear
        .set S_NP, 0x40                 # DPL3 RW data, not present
        .set S_XO, 0x48                 # DPL3 execute-only code
        .set S_CRD, 0x50                # DPL3 readable code, base BUF
        .set S_ED16, 0x58               # DPL3 expand-down, B=0, valid 0xf000..0xffff
        .set S_ED32, 0x60               # DPL3 expand-down, B=1 G=1, valid 0xfffff000..
        .set S_RO, 0x68                 # DPL3 read-only data, base BUF
        .set S_SS, 0x70                 # small stack segment (rewritten)
        .set S_CONF, 0x78               # DPL0 conforming readable code, base BUF

# Loading `sel` into `seg` faults with vec(err); EIP must be at the MOV.
        .macro LOADF cpl, seg, sel, vec, err, desc
        TRY 1f
        AT_CPL \cpl
        movw $\sel, %ax
2:      movw %ax, %\seg
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $\vec, $\err, $2b, "cpl\cpl: mov \sel to \seg -> \desc"
        .endm

# Loading `sel` into `seg` works and reads back; then restore the segment.
        .macro LOADOK cpl, seg, sel, desc
        TRY 1f
        AT_CPL \cpl
        movl $0xffffffff, %ebx
        movw $\sel, %ax
        movw %ax, %\seg
        movl $0xffffffff, %ebx
        movl %\seg, %ebx
        .if \cpl == 3
        movw $RF_UDS, %ax
        .else
        movw $RF_KDS, %ax
        .endif
        movw %ax, %\seg
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: mov \sel to \seg \desc"
        CHECK_EQ %ebx, $\sel, "cpl\cpl: mov from \seg to r32 reads \sel zero-extended"
        .endm

setup_gdt:
        GDT_DESC $S_SMALL, $BUF, $0xfff, $0xf3, $0x4
        GDT_DESC $S_NA, $BUF, $0xfff, $0xf2, $0x4
        GDT_DESC $S_NP, $BUF, $0xfff, $0x73, $0x4
        GDT_DESC $S_XO, $0, $0xfffff, $0xf9, $0xc
        GDT_DESC $S_CRD, $BUF, $0xfff, $0xfb, $0x4
        GDT_DESC $S_ED16, $(BUF-0xf000), $0xefff, $0xf7, $0x0
        GDT_DESC $S_ED32, $(BUF+0x1000), $0xffffe, $0xf7, $0xc
        GDT_DESC $S_RO, $BUF, $0xfff, $0xf1, $0x4
        GDT_DESC $S_SS, $rf_ustack, $0xfff, $0xf3, $0x4
        GDT_DESC $S_CONF, $BUF, $0xfff, $0x9f, $0x4
        movl $0x11111111, BUF
        movl $0x22222222, BUF+0x10
        movl $0x33333333, BUF+0x110
        movl $0x44444444, BUF+0xffc
        movl $0x55555555, BUF+0x800
        ret

# ------------------------------------------------------------------------
# Reading segment registers: guest-visible selectors at each CPL.
        .macro READBACK cpl
        AT_CPL \cpl
        movl $0xffffffff, %eax
        movl %cs, %eax
        movl $0xffffffff, %ebx
        movl %ss, %ebx
        movl $0xffffffff, %ecx
        movl %ds, %ecx
        movl $0xffffffff, %edx
        movl %es, %edx
        pushl %cs
        popl %esi
        andl $0xffff, %esi
        movw %fs, %di
        movw %gs, %bp
        END_CPL \cpl
        .if \cpl == 3
        CHECK_EQ %eax, $RF_UCS, "cpl3: mov %cs reads 0x1b"
        CHECK_EQ %ebx, $RF_UDS, "cpl3: mov %ss reads 0x23"
        CHECK_EQ %ecx, $RF_UDS, "cpl3: mov %ds reads 0x23"
        CHECK_EQ %edx, $RF_UDS, "cpl3: mov %es reads 0x23"
        CHECK_EQ %esi, $RF_UCS, "cpl3: push %cs pushes 0x1b"
        andl $0xffff, %edi
        CHECK_EQ %edi, $RF_UDS, "cpl3: mov %fs reads 0x23"
        andl $0xffff, %ebp
        CHECK_EQ %ebp, $RF_UDS, "cpl3: mov %gs reads 0x23"
        .else
        CHECK_EQ %eax, $RF_KCS, "cpl0: mov %cs reads 0x08"
        CHECK_EQ %ebx, $RF_KDS, "cpl0: mov %ss reads 0x10"
        CHECK_EQ %ecx, $RF_KDS, "cpl0: mov %ds reads 0x10"
        CHECK_EQ %edx, $RF_KDS, "cpl0: mov %es reads 0x10"
        CHECK_EQ %esi, $RF_KCS, "cpl0: push %cs pushes 0x08"
        .endif
        .endm

# ------------------------------------------------------------------------
# PUSH/POP of segment registers, 32- and 16-bit.
        .macro PUSHPOP cpl
        .if \cpl == 3
        .set PP_SEL, S_SMALL|3
        .set PP_SS, RF_UDS
        .else
        .set PP_SEL, S_SMALL
        .set PP_SS, RF_KDS
        .endif
        TRY 1f
        AT_CPL \cpl
        movw $PP_SEL, %ax
        movw %ax, %fs
        movl %esp, %ebp
        pushl %fs
        movl %esp, %ecx
        popl %es
        movl %esp, %edx
        pushw %fs
        movl %esp, %esi
        popw %gs
        movl %esp, %edi
        movw %es, %ax
        shll $16, %eax
        movw %gs, %ax
        pushl %ss
        popl %ss
        movl %ss, %ebx
        pushl %ds
        popl %ds
        subl %ebp, %ecx
        subl %ebp, %edx
        subl %ebp, %esi
        subl %ebp, %edi
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: push/pop of segment registers"
        CHECK_EQ %ecx, $-4, "cpl\cpl: pushl %fs moves ESP by 4"
        CHECK_EQ %edx, $0, "cpl\cpl: popl %es moves ESP back"
        CHECK_EQ %esi, $-2, "cpl\cpl: pushw %fs moves ESP by 2"
        CHECK_EQ %edi, $0, "cpl\cpl: popw %gs moves ESP back"
        CHECK_EQ %eax, $(PP_SEL*0x10001), "cpl\cpl: pop %es / pop %gs load the pushed selector"
        CHECK_EQ %ebx, $PP_SS, "cpl\cpl: push %ss / pop %ss round trip"
        .endm

# ------------------------------------------------------------------------
# LDS/LES/LFS/LGS/LSS
        .macro FARLOADS cpl
        .if \cpl == 3
        .set FL_SEL, S_SMALL|3
        .set FL_SS, RF_UDS
        .else
        .set FL_SEL, S_SMALL
        .set FL_SS, RF_KDS
        .endif
        movl $0x12345678, fptr
        movw $FL_SEL, fptr+4
        TRY 1f
        AT_CPL \cpl
        lfs fptr, %eax
        movl %fs:0x10, %ebx
        lgs fptr, %ecx
        movl %gs:0x110, %edx
        movw %fs, %si
        shll $16, %esi
        movw %gs, %si
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: lfs/lgs"
        CHECK_EQ %eax, $0x12345678, "cpl\cpl: lfs loads the offset"
        CHECK_EQ %ecx, $0x12345678, "cpl\cpl: lgs loads the offset"
        CHECK_EQ %esi, $(FL_SEL*0x10001), "cpl\cpl: lfs/lgs load the selector"
        CHECK_EQ %ebx, $0x22222222, "cpl\cpl: read through lfs-loaded FS uses its base"
        CHECK_EQ %edx, $0x33333333, "cpl\cpl: read through lgs-loaded GS uses its base"
        movl $0x0badf00d, fptr
        TRY 1f
        AT_CPL \cpl
        movl %ds, %eax
        movl %eax, %ebp
        lds %ss:fptr, %esi
        les %ss:fptr, %edi
        movl %ds, %eax
        shll $16, %eax
        movl %es, %ebx
        orl %ebx, %eax
        movl %ds:0x10, %ecx
        movl %ebp, %ds
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: lds/les"
        CHECK_EQ %esi, $0x0badf00d, "cpl\cpl: lds loads the offset"
        CHECK_EQ %edi, $0x0badf00d, "cpl\cpl: les loads the offset"
        CHECK_EQ %eax, $(FL_SEL*0x10001), "cpl\cpl: lds/les load the selector"
        CHECK_EQ %ecx, $0x22222222, "cpl\cpl: read through lds-loaded DS uses its base"
        # LSS: switch to a new stack offset in the same stack segment
        TRY 1f
        AT_CPL \cpl
        movl %esp, %ebp
        leal -0x40(%esp), %eax
        movl %eax, %ss:fptr
        movw $FL_SS, %ss:fptr+4
        lss %ss:fptr, %esp
        movl %esp, %ebx
        movl %ss, %ecx
        movl %ebp, %esp
        subl %ebp, %ebx
        END_CPL \cpl
        ENDTRY
1:      CHECK_NOFAULT "cpl\cpl: lss"
        CHECK_EQ %ebx, $-0x40, "cpl\cpl: lss loads ESP"
        CHECK_EQ %ecx, $FL_SS, "cpl\cpl: lss loads SS"
        # LFS with a bad selector: #GP(sel), offset register not written
        .if \cpl == 3
        movw $RF_KDS|3, fptr+4
        .else
        movw $S_NP, fptr+4
        .endif
        TRY 1f
        AT_CPL \cpl
        movl $0xaaaa5555, %edi
2:      lfs fptr, %edi
        END_CPL \cpl
        ENDTRY
1:      .if \cpl == 3
        CHECK_FAULT $V_GP, $RF_KDS, $2b, "cpl3: lfs with a DPL0 selector -> #GP(0x10)"
        .else
        CHECK_FAULT $V_NP, $S_NP, $2b, "cpl0: lfs with a not-present selector -> #NP(0x40)"
        .endif
        CHECK_EQ rf_x_regs, $0xaaaa5555, "cpl\cpl: faulting lfs leaves the offset register"
        .endm

# ------------------------------------------------------------------------
# A non-zero base offsets accesses; the descriptor cache keeps the old base
# until the register is reloaded.
        .macro BASECACHE cpl
        .if \cpl == 3
        .set BC_SEL, S_SMALL|3
        .else
        .set BC_SEL, S_SMALL
        .endif
        movl $0, BUF+0x20
        TRY 1f
        AT_CPL \cpl
        movw $BC_SEL, %ax
        movw %ax, %fs
        movl %fs:0x10, %ebx             # BUF+0x10
        movl $0xfeedface, %fs:0x20      # BUF+0x20
        movl %fs:0x110, %esi            # BUF+0x110
        # move the base by 0x100 in the GDT (plain memory write)
        addb $1, rf_gdt+S_SMALL+3
        movl %fs:0x10, %ecx             # still BUF+0x10 (cached base)
        movw %ax, %fs                   # reload
        movl %fs:0x10, %edx             # now BUF+0x110
        subb $1, rf_gdt+S_SMALL+3
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: base/cache sequence"
        CHECK_EQ %ebx, $0x22222222, "cpl\cpl: read via FS (base BUF) offset 0x10"
        CHECK_EQ %esi, $0x33333333, "cpl\cpl: read via FS offset 0x110"
        CHECK_EQ BUF+0x20, $0xfeedface, "cpl\cpl: write via FS lands at base+offset"
        CHECK_EQ %ecx, $0x22222222, "cpl\cpl: GDT base change invisible until FS reload"
        CHECK_EQ %edx, $0x33333333, "cpl\cpl: after reload FS uses the new base"
        .endm

# ------------------------------------------------------------------------
        .macro ACCESSED cpl
        movb $0xf2, rf_gdt+S_NA+5
        TRY 1f
        AT_CPL \cpl
        movw $S_NA|3, %ax
        movw %ax, %es
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: load of a descriptor with A=0"
        movzbl rf_gdt+S_NA+5, %eax
        CHECK_EQ %eax, $0xf3, "cpl\cpl: segment load sets the accessed bit in the GDT"
        .endm

# ------------------------------------------------------------------------
        .macro PROT cpl
        .if \cpl == 3
        LOADF 3, ds, 0x13, V_GP, 0x10, "#GP(0x10) (DPL0 data)"
        LOADF 3, es, 0x10, V_GP, 0x10, "#GP(0x10) (DPL0 data RPL0)"
        LOADF 3, ds, 0x43, V_NP, 0x40, "#NP(0x40) (not present)"
        LOADF 3, fs, 0x43, V_NP, 0x40, "#NP(0x40) (not present)"
        LOADF 3, gs, 0x4b, V_GP, 0x48, "#GP(0x48) (execute-only code)"
        LOADF 3, ss, 0x13, V_GP, 0x10, "#GP(0x10) (SS DPL != CPL)"
        LOADF 3, ss, 0x20, V_GP, 0x20, "#GP(0x20) (SS RPL != CPL)"
        LOADF 3, ss, 0x6b, V_GP, 0x68, "#GP(0x68) (SS read-only data)"
        LOADF 3, ss, 0x1b, V_GP, 0x18, "#GP(0x18) (SS code segment)"
        LOADF 3, ss, 0x43, V_SS, 0x40, "#SS(0x40) (SS not present)"
        LOADF 3, ss, 0x0, V_GP, 0x0, "#GP(0) (null SS)"
        LOADF 3, ss, 0x3, V_GP, 0x0, "#GP(0) (null SS with RPL3)"
        LOADF 3, ds, 0x83, V_GP, 0x80, "#GP(0x80) (beyond GDT limit)"
        LOADF 3, ds, 0xfffb, V_GP, 0xfff8, "#GP(0xfff8) (far beyond GDT limit)"
        LOADF 3, ds, 0x0f, V_GP, 0x0c, "#GP(0x0c) (TI=1 with a null LDTR)"
        LOADF 3, ds, 0x2b, V_GP, 0x28, "#GP(0x28) (TSS descriptor)"
        .else
        LOADF 0, ds, 0x13, V_GP, 0x10, "#GP(0x10) (RPL3 > DPL0)"
        LOADF 0, ds, 0x40, V_NP, 0x40, "#NP(0x40) (not present)"
        LOADF 0, gs, 0x40, V_NP, 0x40, "#NP(0x40) (not present)"
        LOADF 0, es, 0x48, V_GP, 0x48, "#GP(0x48) (execute-only code)"
        LOADF 0, ss, 0x23, V_GP, 0x20, "#GP(0x20) (SS RPL != CPL)"
        LOADF 0, ss, 0x20, V_GP, 0x20, "#GP(0x20) (SS DPL != CPL)"
        LOADF 0, ss, 0x08, V_GP, 0x08, "#GP(0x08) (SS code segment)"
        LOADF 0, ss, 0x0, V_GP, 0x0, "#GP(0) (null SS)"
        LOADF 0, ss, 0x80, V_GP, 0x80, "#GP(0x80) (SS beyond GDT limit)"
        LOADF 0, ds, 0x80, V_GP, 0x80, "#GP(0x80) (beyond GDT limit)"
        LOADF 0, fs, 0x0c, V_GP, 0x0c, "#GP(0x0c) (TI=1 with a null LDTR)"
        LOADF 0, ds, 0x04, V_GP, 0x04, "#GP(0x04) (LDT index 0 is not a null selector)"
        LOADF 0, ds, 0x28, V_GP, 0x28, "#GP(0x28) (TSS descriptor)"
        # not-present DPL0 stack segment -> #SS(sel)
        movb $0x13, rf_gdt+S_NP+5
        LOADF 0, ss, 0x40, V_SS, 0x40, "#SS(0x40) (SS not present)"
        movb $0x73, rf_gdt+S_NP+5
        .endif
        .endm

# ------------------------------------------------------------------------
        .macro ODDSEGS cpl
        # readable code segment in DS: reads work, writes -> #GP(0)
        TRY 1f
        AT_CPL \cpl
        movw $S_CRD|3, %ax
        movw %ax, %ds
        movl 0x10, %ebx
        movl %ds, %ecx
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: readable code segment loads into DS"
        CHECK_EQ %ebx, $0x22222222, "cpl\cpl: read through a readable code segment"
        CHECK_EQ %ecx, $S_CRD|3, "cpl\cpl: DS reads back the code selector"
        TRY 1f
        AT_CPL \cpl
        movw $S_CRD|3, %ax
        movw %ax, %ds
2:      movl %eax, 0x800
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: write through a code segment in DS -> #GP(0)"
        TRY 1f
        AT_CPL \cpl
        movw $S_RO|3, %ax
        movw %ax, %es
        movl %es:0xffc, %ebx
2:      movl %eax, %es:0x800
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_EQ %ebx, $0x44444444, "cpl\cpl: read through read-only data"
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: write through read-only data -> #GP(0)"
        # conforming code segment: no privilege check for data loads
        TRY 1f
        AT_CPL \cpl
        movw $S_CONF|3, %ax
        movw %ax, %fs
        movl %fs:0x10, %ebx
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: DPL0 conforming readable code (RPL3) loads into FS"
        CHECK_EQ %ebx, $0x22222222, "cpl\cpl: read through conforming code segment"
        # null selectors
        TRY 1f
        AT_CPL \cpl
        movw $3, %ax
        movw %ax, %gs
        movl %gs, %ebx
        xorl %eax, %eax
        movw %ax, %fs
        movl %fs, %ecx
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: null selectors load into FS/GS"
        CHECK_EQ %ebx, $3, "cpl\cpl: GS reads back null selector 0x0003"
        CHECK_EQ %ecx, $0, "cpl\cpl: FS reads back null selector 0"
        TRY 1f
        AT_CPL \cpl
        xorl %eax, %eax
        movw %ax, %ds
        movl $BUF, %ebx
2:      movl (%ebx), %eax
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: read through null DS -> #GP(0)"
        TRY 1f
        AT_CPL \cpl
        xorl %eax, %eax
        movw %ax, %es
        movl $BUF+0x800, %edi
2:      stosl
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: stosl through null ES -> #GP(0)"
        # MOV to CS does not exist
        TRY 1f
        AT_CPL \cpl
        movw $RF_KCS, %ax
2:      .byte 0x8e, 0xc8                # mov %ax, %cs
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl\cpl: mov to CS -> #UD"
        # POP of a bad selector: #GP(sel), ESP unchanged
        TRY 1f
        AT_CPL \cpl
        pushl $S_XO
        movl %esp, %esi
2:      popl %es
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $S_XO, $2b, "cpl\cpl: pop %es of an execute-only selector -> #GP(0x48)"
        .if \cpl == 3
        CHECK_EQ rf_x_esp, %esi, "cpl3: ESP unchanged by the faulting pop"
        .else
        movl rf_x_hesp, %eax
        addl $12, %eax
        CHECK_EQ %eax, %esi, "cpl0: ESP unchanged by the faulting pop"
        .endif
        .endm

# ------------------------------------------------------------------------
        .macro LIMITS cpl
        .if \cpl == 3
        .set LM_SEL, S_SMALL|3
        .else
        .set LM_SEL, S_SMALL
        .endif
        TRY 1f
        AT_CPL \cpl
        movw $LM_SEL, %ax
        movw %ax, %fs
        movl %fs:0xffc, %ebx
        movb %fs:0xfff, %cl
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: accesses up to the limit (0xfff) work"
        CHECK_EQ %ebx, $0x44444444, "cpl\cpl: dword at the limit"
        .irp acc, "movl %fs:0xffd, %eax", "movb %fs:0x1000, %al", "movl %eax, %fs:0x1000", "movw %fs:0xfffff000, %ax"
        TRY 1f
        AT_CPL \cpl
        movw $LM_SEL, %ax
        movw %ax, %fs
2:      \acc
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: beyond the limit: \acc -> #GP(0)"
        .endr
        # expand-down, 16-bit: valid offsets 0xf000..0xffff
        TRY 1f
        AT_CPL \cpl
        movw $S_ED16|3, %ax
        movw %ax, %es
        movl %es:0xf000, %ebx
        movl %es:0xfffc, %ecx
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: expand-down (B=0) offsets 0xf000 and 0xfffc are valid"
        CHECK_EQ %ebx, $0x11111111, "cpl\cpl: expand-down offset 0xf000 reads base+0xf000"
        CHECK_EQ %ecx, $0x44444444, "cpl\cpl: expand-down offset 0xfffc reads base+0xfffc"
        .irp acc, "movb %es:0xefff, %al", "movl %es:0xfffd, %eax", "movb %es:0x10000, %al", "movb %es:0, %al"
        TRY 1f
        AT_CPL \cpl
        movw $S_ED16|3, %ax
        movw %ax, %es
2:      \acc
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: expand-down B=0 invalid: \acc -> #GP(0)"
        .endr
        # expand-down, 32-bit, 4 KiB granular: valid 0xfffff000..0xffffffff
        TRY 1f
        AT_CPL \cpl
        movw $S_ED32|3, %ax
        movw %ax, %es
        movl %es:0xfffff000, %ebx
        movl %es:0xfffffffc, %ecx
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: expand-down (B=1,G=1) offsets 0xfffff000.. are valid"
        CHECK_EQ %ebx, $0x11111111, "cpl\cpl: expand-down B=1 offset 0xfffff000 wraps to BUF"
        CHECK_EQ %ecx, $0x44444444, "cpl\cpl: expand-down B=1 offset 0xfffffffc wraps to BUF+0xffc"
        .irp acc, "movb %es:0xffffefff, %al", "movb %es:0, %al"
        TRY 1f
        AT_CPL \cpl
        movw $S_ED32|3, %ax
        movw %ax, %es
2:      \acc
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: expand-down B=1 invalid: \acc -> #GP(0)"
        .endr
        .endm

# ========================================================================
rf_main:
        NOTE "segs: segment register loads, reads, caching and protection"
        call setup_gdt

        NOTE "reading segment registers"
        READBACK 0
        READBACK 3

        NOTE "MOV to segment registers"
        LOADOK 0, ds, 0x10, "works"
        LOADOK 0, es, 0x23, "works (DPL3 data at CPL0)"
        LOADOK 0, fs, 0x30, "works"
        LOADOK 0, gs, 0x33, "works"
        LOADOK 0, ss, 0x10, "works"
        LOADOK 3, ds, 0x23, "works"
        LOADOK 3, es, 0x33, "works"
        LOADOK 3, fs, 0x33, "works"
        LOADOK 3, gs, 0x23, "works"
        LOADOK 3, ss, 0x23, "works"
        LOADOK 3, ss, 0x33, "works (another DPL3 writable data segment)"
        LOADOK 3, ds, 0x7b, "works (DPL0 conforming readable code)"

        NOTE "PUSH/POP segment registers"
        PUSHPOP 0
        PUSHPOP 3

        NOTE "LDS/LES/LFS/LGS/LSS"
        FARLOADS 0
        FARLOADS 3

        NOTE "segment base and descriptor cache"
        BASECACHE 0
        BASECACHE 3

        NOTE "accessed bit"
        ACCESSED 0
        ACCESSED 3

        NOTE "protection checks on loads"
        PROT 0
        PROT 3

        NOTE "code, read-only and null segments; MOV CS; POP"
        ODDSEGS 0
        ODDSEGS 3

        NOTE "limit checks and expand-down segments"
        LIMITS 0
        LIMITS 3

        NOTE "stack segment limit -> #SS(0)"
        # CPL3: small SS (base rf_ustack, limit 0xfff)
        TRY 1f
        USER_BEGIN
        movw $S_SS|3, %ax
        movw %ax, %ss
        movl $0x800, %esp
        pushl $0x77
        popl %ebx
        movl %ss:0xffc, %ecx
        movl $RF_UDS, %eax
        movw %ax, %ss
        movl $rf_ustack_top, %esp
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: push/pop/read within a small SS"
        CHECK_EQ %ebx, $0x77, "cpl3: push/pop through the small SS"
        .irp acc, "movl %ss:0x1000, %eax", "movl 0xffe(%ebp), %eax", "pushl $0"
        TRY 1f
        USER_BEGIN
        movw $S_SS|3, %ax
        movw %ax, %ss
        movl $0x800, %esp
        movl $0x0, %ebp
        .ifc "\acc", "pushl $0"
        movl $0, %esp
        .endif
2:      \acc
        movl $RF_UDS, %eax
        movw %ax, %ss
        movl $rf_ustack_top, %esp
        USER_END
        ENDTRY
1:      CHECK_FAULT_TOL $V_SS, $0, $2b, "cpl3: small SS: \acc -> #SS(0)"
        .endr
        # CPL0: DPL0 stack segment, limit 8 MiB - 1
        GDT_DESC $S_SS, $0, $0x7ff, $0x93, $0xc
        TRY 1f
        movw $S_SS, %ax
        movw %ax, %ss
2:      movl %ss:0x900000, %eax
        movw $RF_KDS, %ax
        movw %ax, %ss
        ENDTRY
1:      movw $RF_KDS, %ax
        movw %ax, %ss
        CHECK_FAULT_TOL $V_SS, $0, $2b, "cpl0: SS limit 8 MiB: read at 9 MiB -> #SS(0)"

        # the kernel's segments are intact
        movl %ss, %eax
        movl %ds, %ebx
        CHECK_EQ %eax, $RF_KDS, "cpl0: SS is 0x10 at the end"
        CHECK_EQ %ebx, $RF_KDS, "cpl0: DS is 0x10 at the end"
        ret

        .data
        .balign 4
fptr:   .long 0
        .word 0
        .word 0
        .text
