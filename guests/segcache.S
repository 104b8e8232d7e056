# segcache.S -- segment loads at CPL0 with a warm cache, then a change.
#
# Target: the translator runs MOV DS/ES/FS/GS, r/m16 and POP DS/ES/FS/GS at
# guest CPL0 inline, through a table (selector, CPL) -> (linear address of
# the descriptor, its 8 bytes with the accessed bit set, host selector).  A
# hit is only valid while the descriptor in guest memory still has exactly
# those bytes, and the table must be emptied when GDTR or LDTR change (or
# when a host shadow slot is reused).  A stale entry would make a load
# succeed with an old base/limit/type, skip a fault, or skip the accessed-bit
# write.
#
# Pattern of every check: load the SAME selector several times first (so the
# translated site is hot and the table entry filled), then change exactly one
# thing (descriptor byte, GDTR, LDTR, ...), then load again and check the
# architectural result.  Most loads go through one MOV site per register
# (ld_ds/ld_es/ld_fs/ld_gs), used both to warm and for the load after the
# change; loops also contain inline MOVs of their own.
#
# Nothing here is specific to ringfold: every result is the SDM's (Vol. 3A
# 3.4.3 descriptor cache, 3.4.5 accessed bit, 5.4.1 null selectors, 5.6
# data-segment privilege checks; Vol. 2B "MOV", "POP" -- protected-mode
# segment register loads), and the program passes under QEMU.
#
# QEMU TCG deviation (documented, tolerated unless booted with "strict"):
# QEMU does not check segment limits, expand-down, writes through read-only
# or code segments, or data accesses through a null selector; the SDM
# requires #GP(0).  Those checks use CHECK_FAULT_TOL; all others are strict.
#
# Test bodies that run with a non-flat DS address memory through %ss:
# (SS is always the flat 0x10 or 0x23) and only CHECK after rf_reset_segs or a
# TRY recovery (the CHECK macros need a flat DS).
        .include "rf.inc"
        .include "paging.inc"

        .set BUF, rf_scratch            # 16 KiB, page aligned
        .set S_A, 0x30                  # DPL0 RW data, base BUF, limit 0xfff (main selector)
        .set S_B, 0x38                  # DPL0 RW data, base BUF+0x200
        .set S_U, 0x40                  # DPL3 RW data, base BUF+0x300 (used as 0x43)
        .set S_E, 0x48                  # rewritten with ever new bases (slot eviction)
        .set S_LDT, 0x50                # LDT descriptor
        .set S_F, 0x58                  # DPL0 RW data, base BUF+0x400
        .set S_G, 0x60                  # DPL0 RW data, base BUF+0x500
        .set S_V, 0x68                  # DPL3 RW data, base BUF+0x600 (used as 0x6b)
        .set L_D, 0x0c                  # LDT index 1, RPL0: DPL0 RW data

        # dwords at the bases (read at offset 0 unless said otherwise)
        .set V_A0, 0xa0a0a0a0           # BUF+0x000
        .set V_AFC, 0xa0fc00fc          # BUF+0x0fc (last dword under limit 0xff)
        .set V_A1, 0xa1a1a1a1           # BUF+0x100
        .set V_B, 0xb0b0b0b0            # BUF+0x200
        .set V_U, 0xc3c3c3c3            # BUF+0x300
        .set V_F, 0xf0f0f0f0            # BUF+0x400
        .set V_G, 0x60606060            # BUF+0x500
        .set V_V, 0x6b6b6b6b            # BUF+0x600
        .set V_E0, 0x5e000000           # BUF+0x1000+4k holds V_E0+k (k < 256)

        .set GDT2, BUF+0x2000           # copy of rf_gdt, S_A base BUF+0x100
        .set BIG, BUF+0x2400            # 64-slot GDT (limit 0x1ff) for aliasing
        .set LDT2, BUF+0x2800           # second LDT: L_D base BUF+0x200

# One MOV site per register (selector in AX).  A fault here has EIP = the
# label.
ld_ds:  movw %ax, %ds
        ret
ld_es:  movw %ax, %es
        ret
ld_fs:  movw %ax, %fs
        ret
ld_gs:  movw %ax, %gs
        ret

# WARM seg, sel[, n]: load sel into seg n times through ld_<seg> and an
# inline MOV; leaves AX = sel.
        .macro WARM seg, sel, n=10
        pushl %ecx
        movl $\n, %ecx
        movw $\sel, %ax
9:      call ld_\seg
        movw %ax, %\seg
        decl %ecx
        jnz 9b
        popl %ecx
        .endm

# EXPECT seg, off, val: EDI += (dword at seg:off != val).  Uses EDX.
        .macro EXPECT seg, off, val
        cmpl $\val, %\seg:\off
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        .endm

# Store a result (any DS): R n, op
        .macro R n, op
        movl \op, %ss:res+4*\n
        .endm

# TDESC table, sel, base, limit, access, flags: like GDT_DESC for any table
        .macro TDESC table, sel, base, limit, access, flags
        pushl \flags
        pushl \access
        pushl \limit
        pushl \base
        pushl \sel
        pushl \table
        call rf_set_desc
        .endm

# S_A back to: DPL0 RW data, base BUF, limit 0xfff, accessed
set_a:
        GDT_DESC $S_A, $BUF, $0xfff, $0x93, $0x4
        ret

setup:
        call set_a
        GDT_DESC $S_B, $(BUF+0x200), $0xfff, $0x93, $0x4
        GDT_DESC $S_U, $(BUF+0x300), $0xfff, $0xf3, $0x4
        GDT_DESC $S_F, $(BUF+0x400), $0xfff, $0x93, $0x4
        GDT_DESC $S_G, $(BUF+0x500), $0xfff, $0x93, $0x4
        GDT_DESC $S_V, $(BUF+0x600), $0xfff, $0xf3, $0x4
        movl $V_A0, BUF
        movl $V_AFC, BUF+0xfc
        movl $V_A1, BUF+0x100
        movl $V_B, BUF+0x200
        movl $V_U, BUF+0x300
        movl $V_F, BUF+0x400
        movl $V_G, BUF+0x500
        movl $V_V, BUF+0x600
        xorl %ecx, %ecx
1:      leal V_E0(%ecx), %eax
        movl %eax, BUF+0x1000(,%ecx,4)
        incl %ecx
        cmpl $256, %ecx
        jb 1b
        ret

# GDT2 = rf_gdt with S_A: base BUF+0x100, accessed bit clear
mk_gdt2:
        pushal
        movl $rf_gdt, %esi
        movl $GDT2, %edi
        movl $(RF_GDT_SLOTS*2), %ecx
        rep movsl
        TDESC $GDT2, $S_A, $(BUF+0x100), $0xfff, $0x92, $0x4
        popal
        ret

# BIG = rf_gdt in slots 0..15, zeros, and slots whose selectors share the
# low byte with ones below 0x80 (0x130 ~ 0x30, 0x1b0 ~ 0xb0)
mk_big:
        pushal
        movl $BIG, %edi
        movl $128, %ecx
        xorl %eax, %eax
        rep stosl
        movl $rf_gdt, %esi
        movl $BIG, %edi
        movl $(RF_GDT_SLOTS*2), %ecx
        rep movsl
        TDESC $BIG, $0x130, $(BUF+0x100), $0xfff, $0x93, $0x4
        TDESC $BIG, $0xb0, $(BUF+0x200), $0xfff, $0x93, $0x4
        TDESC $BIG, $0x1b0, $(BUF+0x300), $0xfff, $0x93, $0x4
        popal
        ret

# ========================================================================
# 1. Warm the cache: S_A into each register 10 times, read base BUF.
        .macro C1 seg
        TRY 1f
        WARM \seg, S_A
        movl %\seg:0, %ebx
        movl $0xffffffff, %ecx
        movl %\seg, %ecx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: 10 loads of 0x30"
        CHECK_EQ %ebx, $V_A0, "\seg: warm 0x30 reads base BUF"
        CHECK_EQ %ecx, $S_A, "\seg: mov from \seg reads 0x30"
        .endm

# ========================================================================
# 2. Base rewritten in the GDT: the loaded register keeps the old base (also
# across an exit to the monitor); a reload of the warm selector -- also of
# the value read from the register itself -- must use the new base.  Guards
# against a hit that ignores the descriptor bytes, and against a register
# whose host segment follows the GDT without a load.
        .macro C2 seg
        call set_a
        TRY 1f
        WARM \seg, S_A
        movl %\seg:0, %ebx              # V_A0
        addb $1, %ss:rf_gdt+S_A+3       # base BUF+0x100 (BUF is page aligned)
        movl %\seg:0, %ecx              # cached: still V_A0
        outb %al, $0x80                 # an exit to the monitor and back
        movl %\seg:0, %edx              # still V_A0
        call ld_\seg                    # reload at the warm site
        movl %\seg:0, %esi              # V_A1
        subb $1, %ss:rf_gdt+S_A+3       # base BUF again
        movl %\seg, %eax                # reload what the register holds
        movw %ax, %\seg
        movl %\seg:0, %edi              # V_A0
        ENDTRY
1:      call rf_reset_segs
        call set_a
        CHECK_NOFAULT "\seg: base change sequence"
        CHECK_EQ %ebx, $V_A0, "\seg: warm 0x30 reads base BUF"
        CHECK_EQ %ecx, $V_A0, "\seg: GDT base changed without reload: old base (descriptor cache)"
        CHECK_EQ %edx, $V_A0, "\seg: ... still the old base after an exit to the monitor"
        CHECK_EQ %esi, $V_A1, "\seg: reload of the warm selector uses the new base"
        CHECK_EQ %edi, $V_A0, "\seg: base restored: reload of its own selector uses it"
        .endm

# ========================================================================
# 3. Accessed bit cleared in the GDT: the next load of the warm selector
# must set it again (a hit would skip the write).
        .macro C3 seg
        call set_a
        TRY 1f
        WARM \seg, S_A
        andb $0xfe, %ss:rf_gdt+S_A+5
        movzbl %ss:rf_gdt+S_A+5, %ebx   # 0x92
        call ld_\seg
        movzbl %ss:rf_gdt+S_A+5, %ecx   # 0x93
        movl %\seg:0, %edx
        andb $0xfe, %ss:rf_gdt+S_A+5
        movw %ax, %\seg                 # another site, also warm
        movzbl %ss:rf_gdt+S_A+5, %esi   # 0x93
        WARM \seg, S_A
        andb $0xfe, %ss:rf_gdt+S_A+5
        pushl $S_A
        popl %\seg                      # POP sets it too
        movzbl %ss:rf_gdt+S_A+5, %edi   # 0x93
        ENDTRY
1:      call rf_reset_segs
        call set_a
        CHECK_NOFAULT "\seg: loads with A=0"
        CHECK_EQ %ebx, $0x92, "\seg: accessed bit cleared in the GDT"
        CHECK_EQ %ecx, $0x93, "\seg: reload of the warm selector sets the accessed bit"
        CHECK_EQ %edx, $V_A0, "\seg: ... and loads base BUF"
        CHECK_EQ %esi, $0x93, "\seg: second MOV site sets the accessed bit"
        CHECK_EQ %edi, $0x93, "\seg: pop of the warm selector sets the accessed bit"
        .endm

# ========================================================================
# 4. Entry marked not present: #NP(0x30) at the MOV (or POP), the register
# and the GPRs/ESP unchanged; present again: loads work.
        .macro C4 seg
        call set_a
        TRY 1f
        WARM \seg, S_A
        movw $S_B, %ax
        movw %ax, %\seg                 # holds S_B when the fault comes
        andb $0x7f, %ss:rf_gdt+S_A+5
        movl $(0x0a0a0000+S_A), %eax
        movl $0x0b0b0b0b, %ebx
        movl $0x0c0c0c0c, %ecx
        movl $0x0d0d0d0d, %edx
        movl %esp, %esi
        call ld_\seg                    # #NP
        ENDTRY
1:      orb $0x80, %ss:rf_gdt+S_A+5
        call rf_reset_segs
        CHECK_FAULT $V_NP, $S_A, $ld_\seg, "\seg: warm 0x30 marked not present -> #NP(0x30)"
        CHECK_EQ rf_x_\seg, $S_B, "\seg: register unchanged by the faulting load"
        CHECK_EQ %eax, $(0x0a0a0000+S_A), "\seg: EAX intact at the #NP"
        CHECK_EQ %ebx, $0x0b0b0b0b, "\seg: EBX intact at the #NP"
        CHECK_EQ %ecx, $0x0c0c0c0c, "\seg: ECX intact at the #NP"
        CHECK_EQ %edx, $0x0d0d0d0d, "\seg: EDX intact at the #NP"
        movl rf_x_hesp, %eax
        addl $16, %eax                  # frame EIP slot + 12 = ESP in ld_<seg>
        CHECK_EQ %eax, %esi, "\seg: ESP intact at the #NP"
        # POP of the warm selector, not present: #NP, ESP unchanged
        TRY 1f
        pushl %ecx
        movl $10, %ecx
9:      pushl $S_A
        popl %\seg
        decl %ecx
        jnz 9b
        popl %ecx
        andb $0x7f, %ss:rf_gdt+S_A+5
        pushl $S_A
        movl %esp, %esi
2:      popl %\seg
        ENDTRY
1:      orb $0x80, %ss:rf_gdt+S_A+5
        call rf_reset_segs
        CHECK_FAULT $V_NP, $S_A, $2b, "\seg: pop of warm 0x30 marked not present -> #NP(0x30)"
        movl rf_x_hesp, %eax
        addl $12, %eax
        CHECK_EQ %eax, %esi, "\seg: ESP unchanged by the faulting pop"
        # present again
        TRY 1f
        movw $S_A, %ax
        call ld_\seg
        movl %\seg:0, %ebx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: present again: load works"
        CHECK_EQ %ebx, $V_A0, "\seg: present again: base BUF"
        .endm

# ========================================================================
# 5. Privilege.  At CPL0 RPL matters: 0x43 (DPL3) warm, DPL rewritten to 0
# -> #GP(0x40); 0x30 warm, 0x33 (RPL3 > DPL0) -> #GP(0x30).
        .macro C5 seg
        TRY 1f
        WARM \seg, S_U|3
        movl %\seg:0, %ebx
        andb $0x9f, %ss:rf_gdt+S_U+5    # DPL 3 -> 0
        call ld_\seg
        ENDTRY
1:      movb $0xf3, %ss:rf_gdt+S_U+5
        call rf_reset_segs
        CHECK_EQ %ebx, $V_U, "\seg: warm 0x43 (DPL3) at CPL0 reads its base"
        CHECK_FAULT $V_GP, $S_U, $ld_\seg, "\seg: 0x43 after DPL 3->0 -> #GP(0x40)"
        TRY 1f
        WARM \seg, S_A
        movw $S_A|3, %ax
        call ld_\seg
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $S_A, $ld_\seg, "\seg: warm 0x30 then 0x33 (RPL3 > DPL0) -> #GP(0x30)"
        .endm

# ========================================================================
# 6. Type changes of the warm S_A: each must be re-validated.
# TYPEF seg, access, desc: rewritten to `access` -> #GP(0x30) at the MOV
        .macro TYPEF seg, acc, desc
        TRY 1f
        WARM \seg, S_A
        movb $\acc, %ss:rf_gdt+S_A+5
        call ld_\seg
        ENDTRY
1:      movb $0x93, %ss:rf_gdt+S_A+5
        call rf_reset_segs
        CHECK_FAULT $V_GP, $S_A, $ld_\seg, "\seg: warm 0x30 rewritten as \desc -> #GP(0x30)"
        .endm

# TYPERO seg, access, desc: rewritten to a loadable but not writable type:
# the load works (base BUF, accessed bit set); a write -> #GP(0); back to
# RW data the write works again (a stale read-only host segment would fault).
        .macro TYPERO seg, acc, desc
        TRY 1f
        WARM \seg, S_A
        movb $\acc, %ss:rf_gdt+S_A+5
        call ld_\seg
        movl %\seg:0, %ebx
        movzbl %ss:rf_gdt+S_A+5, %ecx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: warm 0x30 rewritten as \desc: load works"
        CHECK_EQ %ebx, $V_A0, "\seg: \desc: reads base BUF"
        CHECK_EQ %ecx, $(\acc|1), "\seg: \desc: accessed bit set"
        TRY 1f
        WARM \seg, S_A
2:      movl %ebx, %\seg:0x80
        ENDTRY
1:      movb $0x93, %ss:rf_gdt+S_A+5
        call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "\seg: write through \desc -> #GP(0)"
        movl $0, BUF+0x84
        TRY 1f
        movw $S_A, %ax
        call ld_\seg
        movl $0x77777777, %\seg:0x84
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: back to RW data: write works"
        CHECK_EQ BUF+0x84, $0x77777777, "\seg: back to RW data: write lands at BUF+0x84"
        .endm

        .macro C6 seg
        TYPEF \seg, 0x98, "execute-only code"
        TYPEF \seg, 0x89, "a TSS (S=0)"
        TYPEF \seg, 0x82, "an LDT descriptor (S=0)"
        TYPERO \seg, 0x9a, "readable code"
        TYPERO \seg, 0x90, "read-only data"
        # expand-down (B=1, limit 0xfff): valid 0x1000..0xffffffff
        TRY 1f
        WARM \seg, S_A
        movb $0x97, %ss:rf_gdt+S_A+5
        call ld_\seg
        movl %\seg:0x1000, %ebx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: warm 0x30 rewritten as expand-down: load works"
        CHECK_EQ %ebx, $V_E0, "\seg: expand-down: offset 0x1000 reads BUF+0x1000"
        TRY 1f
        movw $S_A, %ax
        call ld_\seg
2:      movl %\seg:0, %ebx
        ENDTRY
1:      movb $0x93, %ss:rf_gdt+S_A+5
        call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "\seg: expand-down: offset 0 is below the limit -> #GP(0)"
        .endm

# ========================================================================
# 7. Limit 0xfff -> 0xff (byte granular): offset 0xfc works, 0x100 ->
# #GP(0); back to 0xfff: 0x100 works again (a stale small limit would
# fault).
        .macro C7 seg
        call set_a
        TRY 1f
        WARM \seg, S_A
        movl %\seg:0x100, %ebx          # V_A1 (limit 0xfff)
        movw $0xff, %ss:rf_gdt+S_A      # limit 0xff
        call ld_\seg
        movl %\seg:0xfc, %ecx           # V_AFC
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: warm 0x30 with limit 0xff: load works"
        CHECK_EQ %ebx, $V_A1, "\seg: limit 0xfff: offset 0x100 reads"
        CHECK_EQ %ecx, $V_AFC, "\seg: limit 0xff: offset 0xfc reads"
        TRY 1f
        WARM \seg, S_A
2:      movl %\seg:0x100, %ebx
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "\seg: limit 0xff: offset 0x100 -> #GP(0)"
        movw $0xfff, rf_gdt+S_A
        TRY 1f
        movw $S_A, %ax
        call ld_\seg
        movl %\seg:0x100, %ebx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: limit 0xfff again: offset 0x100 works"
        CHECK_EQ %ebx, $V_A1, "\seg: limit 0xfff again: offset 0x100 reads"
        .endm

# ========================================================================
# 8. LGDT: a copy of the GDT where S_A has base BUF+0x100 (A=0); the warm
# selector must be looked up in the new table, and again in the old one
# after LGDT back.  GDT limit lowered below the selector: #GP(0x30).
        .macro C8 seg
        call set_a
        call mk_gdt2
        TRY 1f
        WARM \seg, S_A
        movl %\seg:0, %ebx              # V_A0
        lgdt %ss:gdt2r
        call ld_\seg
        movl %\seg:0, %ecx              # V_A1
        movzbl %ss:GDT2+S_A+5, %edx     # 0x93: A set in GDT2
        WARM \seg, S_A                  # warm with GDT2
        lgdt %ss:rf_gdtr
        call ld_\seg
        movl %\seg:0, %esi              # V_A0
        ENDTRY
1:      lgdt %ss:rf_gdtr
        call rf_reset_segs
        CHECK_NOFAULT "\seg: LGDT sequence"
        CHECK_EQ %ebx, $V_A0, "\seg: warm 0x30 with rf_gdt: base BUF"
        CHECK_EQ %ecx, $V_A1, "\seg: after LGDT of a copy: the copy's base"
        CHECK_EQ %edx, $0x93, "\seg: the load set the accessed bit in the copy"
        CHECK_EQ %esi, $V_A0, "\seg: after LGDT back: base BUF again"
        TRY 1f
        WARM \seg, S_A
        lgdt %ss:gdt_short              # limit 0x2f: 0x30 beyond it
        call ld_\seg
        ENDTRY
1:      lgdt %ss:rf_gdtr
        call rf_reset_segs
        CHECK_FAULT $V_GP, $S_A, $ld_\seg, "\seg: warm 0x30 with GDT limit lowered to 0x2f -> #GP(0x30)"
        TRY 1f
        movw $S_A, %ax
        call ld_\seg
        movl %\seg:0, %ebx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: GDT limit restored: load works"
        CHECK_EQ %ebx, $V_A0, "\seg: GDT limit restored: base BUF"
        .endm

# ========================================================================
# 10. POP and memory sources, per register.
        .macro C10 seg
        TRY 1f
        movl %esp, %ebp
        pushl %ecx
        movl $10, %ecx
9:      pushl $S_A
        popl %\seg
        decl %ecx
        jnz 9b
        popl %ecx
        movl %\seg:0, %ebx              # V_A0
        pushl $S_B
        popl %\seg
        movl %\seg:0, %ecx              # V_B
        movl %esp, %edx
        subl %ebp, %edx                 # 0
        movl %\seg, %esi                # S_B
        # MOV from a stack operand above ESP
        pushl $S_F
        pushl $0
        movw 4(%esp), %\seg
        addl $8, %esp
        movl %\seg:0, %edi              # V_F
        R 0, %edi
        movl %\seg, %edi
        R 1, %edi
        # MOV from (%eax): warm with S_A, then the memory changes to S_G
        movl $selmem, %eax
        movl $S_A, %ss:selmem
        pushl %ecx
        movl $10, %ecx
9:      movw %ss:(%eax), %\seg
        decl %ecx
        jnz 9b
        popl %ecx
        movl %\seg:0, %edi
        R 2, %edi                       # V_A0
        movl $S_G, %ss:selmem
        movw %ss:(%eax), %\seg
        movl %\seg:0, %edi
        R 3, %edi                       # V_G
        movl %\seg, %edi
        R 4, %edi                       # S_G
        movl %\seg, %edi
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: pops and memory sources"
        CHECK_EQ %ebx, $V_A0, "\seg: pop of warm 0x30: base BUF"
        CHECK_EQ %ecx, $V_B, "\seg: pop of 0x38: base BUF+0x200"
        CHECK_EQ %edx, $0, "\seg: ESP back after push/pop pairs"
        CHECK_EQ %esi, $S_B, "\seg: reads back 0x38 after pop"
        CHECK_EQ res, $V_F, "\seg: mov 4(%esp): base BUF+0x400"
        CHECK_EQ res+4, $S_F, "\seg: mov 4(%esp): reads back 0x58"
        CHECK_EQ res+8, $V_A0, "\seg: mov (%eax) warm 0x30: base BUF"
        CHECK_EQ res+12, $V_G, "\seg: mov (%eax) after the memory changed to 0x60: base BUF+0x500"
        CHECK_EQ res+16, $S_G, "\seg: mov (%eax): reads back 0x60"
        .endm

# ========================================================================
# 15. Source operands below ESP must be read as the program wrote them
# (ringfold saves registers below ESP: see section 15 in rf_main).
        .macro BELOW seg, off, reg
        TRY 1f
        xorl %edi, %edi
        pushl %ebp
        movl $10, %ebp
9:      movl $RF_KDS, \reg
        movw $S_B, \off(%esp)
        movw \off(%esp), %\seg
        movl %\seg, %edx
        cmpl $S_B, %edx
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        EXPECT \seg, 0, V_B
        decl %ebp
        jnz 9b
        popl %ebp
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\seg: mov \off(%esp) -> \seg (10 times)"
        CHECK_EQ %edi, $0, "\seg: mov \off(%esp) -> \seg loads the selector stored there (\reg = 0x10)"
        .endm

# ========================================================================
rf_main:
        NOTE "segcache: segment loads with a warm cache after descriptor/GDTR/LDTR changes"
        call setup

        NOTE "1: warm DS/ES/FS/GS with 0x30"
        .irp s, ds, es, fs, gs
        C1 \s
        .endr
        movzbl rf_gdt+S_A+5, %eax
        CHECK_EQ %eax, $0x93, "access byte of 0x30 is 0x93 after the loads"

        NOTE "2: base rewritten in the GDT"
        .irp s, ds, es, fs, gs
        C2 \s
        .endr

        NOTE "3: accessed bit"
        .irp s, ds, es, fs, gs
        C3 \s
        .endr

        NOTE "4: not present"
        .irp s, ds, es, fs, gs
        C4 \s
        .endr

        NOTE "5: privilege (CPL0: RPL and DPL)"
        .irp s, ds, es, fs, gs
        C5 \s
        .endr
        NOTE "5: CPL3: warm 0x43 then DPL 3->0 -> #GP(0x40)"
        .irp s, ds, es, fs, gs
        TRY 1f
        USER_BEGIN
        movl $10, %ecx
        movw $S_U|3, %ax
9:      call ld_\s
        movw %ax, %\s
        decl %ecx
        jnz 9b
        movl %\s:0, %ebx
        andb $0x9f, %ss:rf_gdt+S_U+5    # DPL 3 -> 0 (flat SS at CPL3)
        call ld_\s
        USER_END
        ENDTRY
1:      movb $0xf3, %ss:rf_gdt+S_U+5
        call rf_reset_segs
        CHECK_EQ %ebx, $V_U, "cpl3: \s: warm 0x43 reads base BUF+0x300"
        CHECK_FAULT $V_GP, $S_U, $ld_\s, "cpl3: \s: 0x43 after DPL 3->0 -> #GP(0x40)"
        .endr
        # CPL0 entries are not used at CPL3: 0x30 warm at CPL0, 0x30/0x33 at CPL3
        TRY 1f
        WARM ds, S_A
        USER_BEGIN
        movw $S_A, %ax
        call ld_es
        USER_END
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $S_A, $ld_es, "cpl3: 0x30 (warm at CPL0) -> #GP(0x30)"
        TRY 1f
        WARM es, S_A
        USER_BEGIN
        movw $S_A|3, %ax
        call ld_es
        USER_END
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $S_A, $ld_es, "cpl3: 0x33 (0x30 warm at CPL0) -> #GP(0x30)"

        NOTE "6: type changes"
        .irp s, ds, es, fs, gs
        C6 \s
        .endr

        NOTE "7: limit changes"
        .irp s, ds, es, fs, gs
        C7 \s
        .endr

        NOTE "8: LGDT and the GDT limit"
        .irp s, ds, es, fs, gs
        C8 \s
        .endr

# ------------------------------------------------------------------------
# 9. Null selectors 0..3 at CPL0: loadable into DS/ES/FS/GS, read back with
# their RPL (MOV r32, PUSH, MOV r16 keeps the upper half, MOV m16), any
# data access through them -> #GP(0).  The table's entries for them compare
# against zeros of their own, so the index-0 entries must not accept other
# selectors with the same low byte (0x100, 0x103) or TI=1 index 0 (4).
        NOTE "9: null selectors"
        TRY 1f
        xorl %edi, %edi
        movl $10, %ecx
9:      xorl %eax, %eax
        movw %ax, %es
        movl $0xffffffff, %ebx
        movl %es, %ebx
        cmpl $0, %ebx
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        movw $3, %ax
        movw %ax, %gs
        movl $0xffffffff, %ebx
        movl %gs, %ebx
        cmpl $3, %ebx
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        pushl %gs
        popl %ebx
        cmpl $3, %ebx
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        pushl $1                        # also RPL 1 and 2 through POP
        popl %fs
        movl %fs, %ebx
        cmpl $1, %ebx
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        pushl $2
        popl %fs
        movl %fs, %ebx
        cmpl $2, %ebx
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        decl %ecx
        jnz 9b
        movl $0xffffffff, %ebx
        movl %es, %ebx
        movl $0xffffffff, %ecx
        movl %gs, %ecx
        pushl %gs
        popl %edx
        movl $0xffffffff, %esi
        movw %gs, %si                   # 16-bit: upper half kept
        movw $0xffff, %ss:selmem
        movw %gs, %ss:selmem            # memory destination
        movzwl %ss:selmem, %eax
        R 0, %eax
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "null selectors 0/1/2/3 load (10 times)"
        CHECK_EQ %edi, $0, "every read-back in the loop matched"
        CHECK_EQ %ebx, $0, "mov %es, r32 reads 0"
        CHECK_EQ %ecx, $3, "mov %gs, r32 reads 3"
        CHECK_EQ %edx, $3, "pushl %gs pushes 3"
        CHECK_EQ %esi, $0xffff0003, "movw %gs, r16 reads 3 and keeps the upper half"
        CHECK_EQ res, $3, "movw %gs, m16 stores 3"
        TRY 1f
        xorl %eax, %eax
        WARM es, 0
        movl $(BUF+0x800), %ebx
2:      movl %es:(%ebx), %eax
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "read through warm null ES -> #GP(0)"
        TRY 1f
        WARM gs, 3
        movl $(BUF+0x800), %ebx
2:      movl %eax, %gs:(%ebx)
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "write through warm null GS (0x0003) -> #GP(0)"
        # the index-0 entry of the table must not stand for other selectors
        TRY 1f
        WARM es, 0
        movw $0x100, %ax
        call ld_es
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $0x100, $ld_es, "warm null 0 then 0x100 (beyond the GDT limit) -> #GP(0x100)"
        TRY 1f
        WARM es, 0
        movw $4, %ax
        call ld_es
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $4, $ld_es, "warm null 0 then 4 (LDT index 0 with a null LDTR) -> #GP(0x4)"
        TRY 1f
        WARM gs, 3
        movw $0x103, %ax
        call ld_gs
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $0x100, $ld_gs, "warm null 3 then 0x103 -> #GP(0x100)"
        # a real selector after a null one in the same register, and back
        TRY 1f
        WARM ds, 0
        WARM ds, S_A
        movl %ds:0, %ebx
        WARM ds, 0
        movl %ds, %ecx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "DS: null, 0x30, null"
        CHECK_EQ %ebx, $V_A0, "DS: 0x30 after null: base BUF"
        CHECK_EQ %ecx, $0, "DS: null again reads 0"

# ------------------------------------------------------------------------
# 10. POP DS/ES/FS/GS and MOV from memory (stack operand, (%eax), SIB with
# %ss: override): the selector is read from the operand each time (a memory
# change must be seen), POP moves ESP by 4, a faulting POP leaves ESP.  Also
# the descriptor cache as seen by the exception stubs (they push the guest
# selectors, and their POPs reload from the GDT), and GPRs intact when the
# source operand itself faults.
        NOTE "10: POP and memory sources"
        .irp s, ds, es, fs, gs
        C10 \s
        .endr
        # all four POPs in a row, warm, then a different selector
        TRY 1f
        movl %esp, %ebp
        movl $10, %ecx
9:      pushl $S_A
        pushl $S_A
        pushl $S_A
        pushl $S_A
        popl %ds
        popl %es
        popl %fs
        popl %gs
        decl %ecx
        jnz 9b
        pushl $S_F
        pushl $S_G
        pushl $S_B
        pushl $S_A
        popl %ds
        popl %es
        popl %fs
        popl %gs
        movl %esp, %edi
        subl %ebp, %edi
        xorl %esi, %esi
        movl %ds:0, %eax
        cmpl $V_A0, %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %esi
        movl %es:0, %eax
        cmpl $V_B, %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %esi
        movl %fs:0, %eax
        cmpl $V_G, %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %esi
        movl %gs:0, %eax
        cmpl $V_F, %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %esi
        movl %ds, %eax
        shll $8, %eax
        movl %es, %ebx
        orl %ebx, %eax
        shll $8, %eax
        movl %fs, %ebx
        orl %ebx, %eax
        shll $8, %eax
        movl %gs, %ebx
        orl %ebx, %eax
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "pop ds/es/fs/gs (10 times 0x30, then 0x30/0x38/0x60/0x58)"
        CHECK_EQ %edi, $0, "ESP back after 4 pushes and 4 pops"
        CHECK_EQ %esi, $0, "each register reads through its own base"
        CHECK_EQ %eax, $((S_A<<24)|(S_B<<16)|(S_G<<8)|S_F), "selectors read back 0x30/0x38/0x60/0x58"
        # a POP in the exception stub reloads from the GDT: base changed
        # behind a loaded register, INT3 returns with the new base
        call set_a
        VEC_RESUME V_BP
        TRY 1f
        WARM ds, S_A
        WARM es, S_A
        WARM fs, S_A
        WARM gs, S_A
        addb $1, %ss:rf_gdt+S_A+3       # base BUF+0x100
        movl %fs:0, %ebx                # V_A0
        int3                            # stub: push ds/es/fs/gs ... pop, iret
        xorl %edi, %edi
        EXPECT ds, 0, V_A1
        EXPECT es, 0, V_A1
        EXPECT fs, 0, V_A1
        EXPECT gs, 0, V_A1
        movl %ss:rf_x_vec, %esi
        subb $1, %ss:rf_gdt+S_A+3
        ENDTRY
1:      call rf_reset_segs
        VEC_DEFAULT V_BP
        call set_a
        CHECK_EQ %esi, $V_BP, "int3 (resume mode) taken"
        CHECK_EQ %ebx, $V_A0, "before int3: cached base BUF"
        CHECK_EQ %edi, $0, "after the stub's pop ds/es/fs/gs: new base BUF+0x100 in all four"
        # segment registers seen by an exception after inline loads
        TRY 1f
        WARM ds, S_F
        WARM es, S_B
        WARM fs, S_A
        WARM gs, 3
2:      ud2
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_UD, $0, $2b, "ud2 after warm loads"
        CHECK_EQ rf_x_ds, $S_F, "the #UD stub pushes DS 0x58"
        CHECK_EQ rf_x_es, $S_B, "the #UD stub pushes ES 0x38"
        CHECK_EQ rf_x_fs, $S_A, "the #UD stub pushes FS 0x30"
        CHECK_EQ rf_x_gs, $3, "the #UD stub pushes GS 0x0003"
        # a MOV from memory that faults (null ES) leaves the GPRs alone
        TRY 1f
        WARM gs, S_A
        movl $0, %eax
        movw %ax, %es
        movl $(0x0a0a0000+S_B), %eax
        movl $0x0b0b0b0b, %ebx
        movl $0x0c0c0c0c, %ecx
        movl $0x0d0d0d0d, %edx
        movl $selmem, %esi
        movl $S_B, %ss:selmem
2:      movw %es:(%esi), %gs
        movl %gs, %edi
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "mov %es:(%esi), %gs with a null ES -> #GP(0)"
        CHECK_EQ %eax, $(0x0a0a0000+S_B), "EAX intact"
        CHECK_EQ %ebx, $0x0b0b0b0b, "EBX intact"
        CHECK_EQ %ecx, $0x0c0c0c0c, "ECX intact"
        CHECK_EQ %edx, $0x0d0d0d0d, "EDX intact"

# ------------------------------------------------------------------------
# 11. The table is indexed by the selector's low byte: 0x30/0x130 and
# 0xb0/0x1b0 share an index and must still load their own descriptors (GDT
# with 64 slots); with the GDT limit back at 0x7f, 0x130 must fault even
# right after it (or 0x30) was warm.
        NOTE "11: selectors with the same low byte must not alias"
        call mk_big
        lgdt bigr
        TRY 1f
        xorl %edi, %edi
        movl $100, %ecx
9:
        .irp s, ds, es, fs, gs
        movw $0x30, %ax
        movw %ax, %\s
        EXPECT \s, 0, V_A0
        movw $0x130, %ax
        movw %ax, %\s
        EXPECT \s, 0, V_A1
        movw $0xb0, %ax
        movw %ax, %\s
        EXPECT \s, 0, V_B
        movw $0x1b0, %ax
        movw %ax, %\s
        EXPECT \s, 0, V_U
        .endr
        decl %ecx
        jnz 9b
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "GDT limit 0x1ff: 0x30/0x130/0xb0/0x1b0 alternately (100 times)"
        CHECK_EQ %edi, $0, "each reads its own base"
        # 0x130 warm with the big GDT, then LGDT rf_gdt (limit 0x7f)
        TRY 1f
        WARM fs, 0x130
        movl %fs:0, %ebx
        lgdt %ss:rf_gdtr
        call ld_fs
        ENDTRY
1:      lgdt %ss:rf_gdtr
        call rf_reset_segs
        CHECK_EQ %ebx, $V_A1, "warm 0x130 (GDT limit 0x1ff) reads BUF+0x100"
        CHECK_FAULT $V_GP, $0x130, $ld_fs, "after LGDT with limit 0x7f: 0x130 -> #GP(0x130)"
        TRY 1f
        WARM ds, S_A
        movw $0x130, %ax
        call ld_ds
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_GP, $0x130, $ld_ds, "GDT limit 0x7f: warm 0x30 then 0x130 -> #GP(0x130)"

# ------------------------------------------------------------------------
# 12. Alternating warm selectors in one register (1000 times), then four
# selectors rotated through DS/ES/FS/GS 100000 times from a table (MOV with a
# SIB memory operand and PUSH mem / POP): each load must give its own base.
        NOTE "12: interleaved loads"
        TRY 1f
        xorl %edi, %edi
        movl $1000, %ecx
9:      movw $S_A, %ax
        movw %ax, %ds
        EXPECT ds, 0, V_A0
        movw $S_B, %ax
        movw %ax, %ds
        EXPECT ds, 0, V_B
        decl %ecx
        jnz 9b
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "DS = 0x30/0x38 alternately 1000 times"
        CHECK_EQ %edi, $0, "DS: each load reads its own base"
        # four selectors rotated through four registers, from a table
        TRY 1f
        xorl %edi, %edi
        movl $100000, %ecx
9:      movl %ecx, %ebx
        andl $3, %ebx
        movw %ss:rot_sel(,%ebx,4), %ds
        movl %ds:0, %eax
        cmpl %ss:rot_val(,%ebx,4), %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        incl %ebx
        andl $3, %ebx
        movw %ss:rot_sel(,%ebx,4), %es
        movl %es:0, %eax
        cmpl %ss:rot_val(,%ebx,4), %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        incl %ebx
        andl $3, %ebx
        movw %ss:rot_sel(,%ebx,4), %fs
        movl %fs:0, %eax
        cmpl %ss:rot_val(,%ebx,4), %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        incl %ebx
        andl $3, %ebx
        pushl %ss:rot_sel(,%ebx,4)
        popl %gs
        movl %gs:0, %eax
        cmpl %ss:rot_val(,%ebx,4), %eax
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        decl %ecx
        jnz 9b
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "0x30/0x38/0x58/0x60 rotated through DS/ES/FS/GS 100000 times"
        CHECK_EQ %edi, $0, "rotation: each load reads its own base"

# ------------------------------------------------------------------------
# 13. LDT selector 0x0c: a change of its LDT entry; LLDT of the SAME
# selector after its GDT descriptor was pointed at another LDT (LDTR base
# changes, selector does not); LLDT of the same selector with limit 7 (0x0c
# now beyond it); LLDT 0.  The table must follow LDTR, not just its selector.
        NOTE "13: LDT selectors, LLDT"
        GDT_DESC $S_LDT, $rf_ldt, $(RF_LDT_SLOTS*8-1), $0x82, $0
        LDT_DESC $L_D, $BUF, $0xfff, $0x93, $0x4
        TDESC $LDT2, $L_D, $(BUF+0x200), $0xfff, $0x93, $0x4
        movw $S_LDT, %ax
        lldt %ax
        .irp s, ds, es, fs, gs
        TRY 1f
        WARM \s, L_D
        movl %\s:0, %ebx                # V_A0
        addb $1, %ss:rf_ldt+(L_D&~7)+3       # LDT entry base BUF+0x100
        call ld_\s
        movl %\s:0, %ecx                # V_A1
        subb $1, %ss:rf_ldt+(L_D&~7)+3
        WARM \s, L_D
        # same LDT selector, its descriptor now names LDT2
        movl $LDT2, %edx
        movw %dx, %ss:rf_gdt+S_LDT+2
        shrl $16, %edx
        movb %dl, %ss:rf_gdt+S_LDT+4
        movb %dh, %ss:rf_gdt+S_LDT+7
        movw $S_LDT, %dx
        lldt %dx
        call ld_\s
        movl %\s:0, %edx                # V_B
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "\s: LDT sequence"
        CHECK_EQ %ebx, $V_A0, "\s: warm 0x0c (LDT) reads base BUF"
        CHECK_EQ %ecx, $V_A1, "\s: LDT entry base changed: reload reads BUF+0x100"
        CHECK_EQ %edx, $V_B, "\s: LLDT of the same selector naming another LDT: reload reads BUF+0x200"
        GDT_DESC $S_LDT, $rf_ldt, $7, $0x82, $0
        TRY 1f
        WARM \s, L_D                    # still LDT2 (LDTR cached)
        movl %\s:0, %ebx
        movw $S_LDT, %ax
        lldt %ax                        # rf_ldt, limit 7
        movw $L_D, %ax
        call ld_\s
        ENDTRY
1:      call rf_reset_segs
        CHECK_EQ %ebx, $V_B, "\s: LDTR keeps LDT2 until LLDT"
        CHECK_FAULT $V_GP, $L_D, $ld_\s, "\s: LLDT of the same selector with limit 7: 0x0c -> #GP(0xc)"
        GDT_DESC $S_LDT, $rf_ldt, $(RF_LDT_SLOTS*8-1), $0x82, $0
        movw $S_LDT, %ax
        lldt %ax
        TRY 1f
        WARM \s, L_D
        movl %\s:0, %ebx
        xorl %eax, %eax
        lldt %ax
        movw $L_D, %ax
        call ld_\s
        ENDTRY
1:      call rf_reset_segs
        movw $S_LDT, %ax
        lldt %ax
        CHECK_EQ %ebx, $V_A0, "\s: rf_ldt again: base BUF"
        CHECK_FAULT $V_GP, $L_D, $ld_\s, "\s: warm 0x0c then LLDT 0 -> #GP(0xc)"
        .endr
        xorl %eax, %eax
        lldt %ax

# ------------------------------------------------------------------------
# 14. 200 different descriptors loaded through ES (the same selector with
# ever new bases) while FS/GS hold others: host shadow slots get reused, so
# table entries naming a reused slot (0x30/0x38, warm before and no longer
# loaded) must not survive, and FS/GS must keep their bases.
        NOTE "14: many descriptors (host shadow slots reused)"
        call set_a
        TRY 1f
        WARM ds, S_A                    # then not in use while the others cycle
        WARM es, S_B
        movw $RF_KDS, %ax
        movw %ax, %ds
        movw %ax, %es
        WARM fs, S_F
        WARM gs, S_G
        xorl %edi, %edi
        xorl %esi, %esi
9:      leal BUF+0x1000(,%esi,4), %ebx
        GDT_DESC $S_E, %ebx, $0xfff, $0x93, $0x4
        movw $S_E, %ax
        movw %ax, %es
        leal V_E0(%esi), %eax
        cmpl %eax, %es:0
        setne %dl
        movzbl %dl, %edx
        addl %edx, %edi
        EXPECT fs, 0, V_F
        EXPECT gs, 0, V_G
        incl %esi
        cmpl $200, %esi
        jb 9b
        movl %edi, %ss:res
        xorl %edi, %edi
        movw $S_A, %ax
        movw %ax, %ds
        EXPECT ds, 0, V_A0
        movw $S_B, %ax
        movw %ax, %es
        EXPECT es, 0, V_B
        WARM fs, S_F
        EXPECT fs, 0, V_F
        WARM gs, S_G
        EXPECT gs, 0, V_G
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "200 different descriptors through ES while FS/GS hold 0x58/0x60"
        CHECK_EQ res, $0, "every new descriptor gives its base; FS and GS keep theirs"
        CHECK_EQ %edi, $0, "0x30/0x38/0x58/0x60 loaded again afterwards read their bases"

# ------------------------------------------------------------------------
# 15. A source operand below ESP (-4..-20(%esp)) must be read as stored (see
# BELOW): ringfold's inline loads save registers in the dead area below ESP
# (i386 has no red zone: an interrupt may write there at any time), so the
# source has to be read before that.  The dwords below ESP themselves are
# not checked: ringfold documents overwriting up to 20 bytes there, as its
# inline RET/indirect-branch lookups do.
        NOTE "15: source operands below ESP"
        TRY 1f
        WARM fs, S_F
        movl $10, %ecx
9:      pushl %fs
        popl %eax
        decl %ecx
        jnz 9b
        pushl %fs
        popl %ebx
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "pushl %fs of a warm selector"
        CHECK_EQ %ebx, $S_F, "pushl %fs pushes 0x58"
        BELOW ds, -4, %eax
        BELOW es, -8, %ecx
        BELOW fs, -12, %edx
        BELOW gs, -16, %ebx
        BELOW ds, -20, %esi

# ------------------------------------------------------------------------
# CPL3: loads there are not inlined.  0x43 warm at CPL0, its base changed,
# then 1000 loads of 0x43/0x6b into DS/ES/FS/GS at CPL3, then CPL0 again:
# both privilege levels must see the current descriptor.
        NOTE "CPL3: loads there take the interpreter and must agree with CPL0"
        call set_a
        TRY 1f
        WARM es, S_U|3                  # inline at CPL0
        movl %es:0, %ebx                # V_U
        addb $1, %ss:rf_gdt+S_U+3       # 0x43: base BUF+0x400
        xorl %edi, %edi
        USER_BEGIN
        movl $1000, %ecx
9:      movw $S_U|3, %ax
        movw %ax, %ds
        EXPECT ds, 0, V_F
        movw $S_V|3, %ax
        movw %ax, %es
        EXPECT es, 0, V_V
        call ld_fs
        EXPECT fs, 0, V_V
        pushl $S_U|3
        popl %gs
        EXPECT gs, 0, V_F
        decl %ecx
        jnz 9b
        movl %ds, %ecx
        shll $16, %ecx
        movl %es, %eax
        orl %eax, %ecx
        movl %ecx, %ss:res
        USER_END
        movw $S_U|3, %ax
        call ld_es                      # CPL0 again, after the CPL3 loads
        movl %es:0, %ecx                # V_F
        subb $1, %ss:rf_gdt+S_U+3
        call ld_es
        movl %es:0, %edx                # V_U
        ENDTRY
1:      call rf_reset_segs
        movb $0xf3, rf_gdt+S_U+5
        GDT_DESC $S_U, $(BUF+0x300), $0xfff, $0xf3, $0x4
        CHECK_NOFAULT "cpl0/cpl3 sequence"
        CHECK_EQ %ebx, $V_U, "cpl0: warm 0x43 reads BUF+0x300"
        CHECK_EQ %edi, $0, "cpl3: 0x43 (new base BUF+0x400) / 0x6b alternately 1000 times read their bases"
        CHECK_EQ res, $(((S_U|3)<<16)|(S_V|3)), "cpl3: DS/ES read back 0x43/0x6b"
        CHECK_EQ %ecx, $V_F, "cpl0 after cpl3: 0x43 reads the new base BUF+0x400"
        CHECK_EQ %edx, $V_U, "cpl0: base restored: 0x43 reads BUF+0x300"

# ========================================================================
# 16. Paging: the table entry names the descriptor by its LINEAR address.
# The PTE of the page holding the GDT is pointed at a copy in which S_A has
# base BUF+0x100 and A=0 (INVLPG): the warm selector must now load the copy's
# descriptor and set the accessed bit there; PTE back (INVLPG): base BUF.
# DS stays flat (the PG_* helpers use it); the copy is made inside the TRY so
# that the framework's variables in that page (rf_recover_eip) are current.
        NOTE "16: paging: the page holding the GDT remapped to a copy"
        call pg_setup
        call pg_enter32
        call set_a
        TRY 1f
        WARM es, S_A
        WARM fs, S_A
        WARM gs, S_A
        xorl %edi, %edi
        EXPECT es, 0, V_A0
        EXPECT fs, 0, V_A0
        EXPECT gs, 0, V_A0
        movl %edi, %ss:res
        xorl %ecx, %ecx
9:      movl rf_gdt(,%ecx,4), %eax      # copy the page (ES is not flat)
        movl %eax, PG_FRAMES(,%ecx,4)
        incl %ecx
        cmpl $1024, %ecx
        jb 9b
        TDESC $PG_FRAMES, $S_A, $(BUF+0x100), $0xfff, $0x92, $0x4
        PG_SETPTE $rf_gdt, $(PG_FRAMES|PG_P|PG_RW)
        PG_INVLPG $rf_gdt
        xorl %edi, %edi
        movw $S_A, %ax
        call ld_es
        EXPECT es, 0, V_A1
        call ld_fs
        EXPECT fs, 0, V_A1
        movw %ax, %gs
        EXPECT gs, 0, V_A1
        movl %edi, %ss:res+4
        movzbl PG_FRAMES+S_A+5, %eax
        movl %eax, %ss:res+8
        PG_SETPTE $rf_gdt, $(rf_gdt+PG_P+PG_RW)
        PG_INVLPG $rf_gdt
        xorl %edi, %edi
        movw $S_A, %ax
        call ld_es
        EXPECT es, 0, V_A0
        call ld_fs
        EXPECT fs, 0, V_A0
        movw %ax, %gs
        EXPECT gs, 0, V_A0
        movl %edi, %ss:res+12
        ENDTRY
1:      call rf_reset_segs
        PG_SETPTE $rf_gdt, $(rf_gdt+PG_P+PG_RW)
        PG_INVLPG $rf_gdt
        call pg_leave
        CHECK_NOFAULT "paging: remap sequence"
        CHECK_EQ res, $0, "paging: warm 0x30 in ES/FS/GS reads base BUF"
        CHECK_EQ res+4, $0, "paging: GDT page remapped to a copy: 0x30 loads the copy's base BUF+0x100"
        CHECK_EQ res+8, $0x93, "paging: ... and sets the accessed bit in the copy"
        CHECK_EQ res+12, $0, "paging: GDT page mapped back: 0x30 loads base BUF again"

        # the kernel's segments are intact
        movl %ss, %eax
        movl %ds, %ebx
        CHECK_EQ %eax, $RF_KDS, "SS is 0x10 at the end"
        CHECK_EQ %ebx, $RF_KDS, "DS is 0x10 at the end"
        ret

        .data
        .balign 4
res:    .fill 16, 4, 0
selmem: .long 0
rot_sel: .long S_A, S_B, S_F, S_G
rot_val: .long V_A0, V_B, V_F, V_G
        .balign 4
        .word 0
gdt2r:  .word RF_GDT_SLOTS*8-1
        .long GDT2
        .word 0
bigr:   .word 64*8-1
        .long BIG
        .word 0
gdt_short: .word 0x2f
        .long rf_gdt
        .text
