# io.S -- port I/O virtualization: IN/OUT (byte/word/dword, imm8 and DX
# forms), INS/OUTS with and without REP, DF=1, segment override on OUTS,
# and the protected-mode I/O permission rules at CPL3 (IOPL and the TSS I/O
# permission bitmap).
#
# SDM references: Vol. 1 ch. 19 "Input/Output" (19.5 "Protected-mode I/O",
# 19.5.1 I/O privilege level, 19.5.2 I/O permission bit map), Vol. 2A
# "IN", "INS/INSB/INSW/INSD", Vol. 2B "OUT", "OUTS/OUTSB/OUTSW/OUTSD", "REP".
#
# Device facts relied upon (same on QEMU and ringfold): a byte read of port
# 0xE9 (debugcon) returns 0xE9; a byte written to 0xE9 is printed.  Word and
# dword accesses to 0xE9 are NOT assumed to print or return anything in
# particular (QEMU drops/zeroes them); only their architectural effects
# (no fault, untouched upper EAX bits, ESI/EDI/ECX updates) are checked.
# Everything this guest writes to 0xE9 lands inside "# ..." comment lines.
        .include "rf.inc"

        .set BUF, rf_scratch            # 4 KiB I/O buffer
        .set GUARD, 0x55

# count_eq: ESI = buffer, ECX = length, AL = byte -> EAX = number of equal bytes
count_eq:
        pushl %esi
        pushl %ecx
        pushl %edx
        xorl %edx, %edx
1:      testl %ecx, %ecx
        jz 2f
        cmpb %al, (%esi)
        jne 3f
        incl %edx
3:      incl %esi
        decl %ecx
        jmp 1b
2:      movl %edx, %eax
        popl %edx
        popl %ecx
        popl %esi
        ret

# fill the buffer (256 bytes) with GUARD
fill_guard:
        pushal
        movl $BUF, %edi
        movl $256, %ecx
        movb $GUARD, %al
        cld
        rep stosb
        popal
        ret

rf_main:
        NOTE "io: IN/OUT/INS/OUTS, IOPL and the TSS I/O bitmap"

# ---------------------------------------------------------------- CPL0
        movl $0x12345600, %eax
        inb $0xe9, %al
        CHECK_EQ %eax, $0x123456e9, "cpl0: inb imm8 0xe9 reads 0xe9, EAX[31:8] kept"
        movl $0xabcdef00, %eax
        movw $0xe9, %dx
        inb %dx, %al
        CHECK_EQ %eax, $0xabcdefe9, "cpl0: inb dx=0xe9 reads 0xe9"
        movl $0x12345678, %eax
        inw $0xe9, %ax
        CHECK_MASK %eax, $0xffff0000, $0x12340000, "cpl0: inw keeps EAX[31:16]"
        TRY 1f
        inl $0xe9, %eax
        movw $0xe9, %dx
        inl %dx, %eax
        ENDTRY
1:      CHECK_NOFAULT "cpl0: inl imm8 and dx forms do not fault"

        PUTS "# io: cpl0 out [a"
        movb $'b', %al
        outb %al, $0xe9
        movb $'c', %al
        movw $0xe9, %dx
        outb %al, %dx
        movw $0x2020, %ax               # word/dword writes: may or may not print
        outw %ax, $0xe9
        movl $0x20202020, %eax
        outl %eax, %dx
        # OUTSB without REP
        movl $str_d, %esi
        movl $0x77, %ecx
        outsb
        movl %esi, %ebx
        PUTS "]\n"
        CHECK_EQ %ebx, $str_d+1, "cpl0: outsb advances ESI by 1"
        CHECK_EQ %ecx, $0x77, "cpl0: outsb without rep leaves ECX"

        # REP OUTSB of a whole line
        movl $line1, %esi
        movl $line1_len, %ecx
        movw $0xe9, %dx
        rep outsb
        CHECK_EQ %ecx, $0, "cpl0: rep outsb ends with ECX=0"
        CHECK_EQ %esi, $line1+line1_len, "cpl0: rep outsb ESI advanced by count"

        # REP OUTSB with DF=1 prints a reversed string
        movl $line2_end - 1, %esi
        movl $line2_end - line2, %ecx
        std
        rep outsb
        cld
        CHECK_EQ %ecx, $0, "cpl0: rep outsb DF=1 ends with ECX=0"
        CHECK_EQ %esi, $line2-1, "cpl0: rep outsb DF=1 ESI decremented by count"

        # OUTSW/OUTSD and REP forms (word/dword: output not relied upon)
        PUTS "# io: outsw/outsd ["
        movl $spaces, %esi
        outsw
        movl %esi, %ebx
        outsl
        movl %esi, %ecx
        movl $spaces, %esi
        movl $3, %eax
        xchgl %eax, %ecx
        rep outsw
        movl %esi, %edi
        movl %ecx, %ebp
        PUTS "]\n"
        CHECK_EQ %ebx, $spaces+2, "cpl0: outsw advances ESI by 2"
        CHECK_EQ %eax, $spaces+6, "cpl0: outsd advances ESI by 4"
        CHECK_EQ %edi, $spaces+6, "cpl0: rep outsw x3 advances ESI by 6"
        CHECK_EQ %ebp, $0, "cpl0: rep outsw ECX=0"

        # OUTSB honours a segment override (FS base = string address)
        GDT_DESC $0x30, $str_e, $0xff, $0x93, $0x0
        movw $0x30, %ax
        movw %ax, %fs
        PUTS "# io: fs outsb ["
        xorl %esi, %esi
        movw $0xe9, %dx
        outsb %fs:(%esi), %dx
        PUTS "] (want e)\n"
        movw $RF_KDS, %ax
        movw %ax, %fs
        CHECK_EQ %esi, $1, "cpl0: fs: outsb reads through FS, ESI=1"

        # REP INSB fills a buffer with 0xe9
        call fill_guard
        movl $BUF, %edi
        movl $64, %ecx
        movw $0xe9, %dx
        rep insb
        CHECK_EQ %ecx, $0, "cpl0: rep insb ends with ECX=0"
        CHECK_EQ %edi, $BUF+64, "cpl0: rep insb EDI advanced by 64"
        movl $BUF, %esi
        movl $64, %ecx
        movb $0xe9, %al
        call count_eq
        CHECK_EQ %eax, $64, "cpl0: rep insb stored 64 bytes of 0xe9"
        movzbl BUF + 64, %eax
        CHECK_EQ %eax, $GUARD, "cpl0: rep insb did not overrun"

        # DF=1
        call fill_guard
        movl $BUF + 127, %edi
        movl $16, %ecx
        std
        rep insb
        cld
        CHECK_EQ %edi, $BUF+111, "cpl0: rep insb DF=1 EDI decremented by 16"
        movl $BUF + 112, %esi
        movl $16, %ecx
        movb $0xe9, %al
        call count_eq
        CHECK_EQ %eax, $16, "cpl0: rep insb DF=1 filled bytes downwards"
        movzbl BUF + 111, %eax
        movzbl BUF + 128, %ebx
        shll $8, %ebx
        orl %ebx, %eax
        CHECK_EQ %eax, $(GUARD*0x101), "cpl0: rep insb DF=1 guards intact"

        # single INSB/INSW/INSD
        call fill_guard
        movl $BUF, %edi
        insb
        movl %edi, %ebx
        insw
        movl %edi, %ecx
        insl
        CHECK_EQ %ebx, $BUF+1, "cpl0: insb advances EDI by 1"
        CHECK_EQ %ecx, $BUF+3, "cpl0: insw advances EDI by 2"
        CHECK_EQ %edi, $BUF+7, "cpl0: insd advances EDI by 4"
        movzbl BUF, %eax
        CHECK_EQ %eax, $0xe9, "cpl0: insb stored 0xe9"
        movzbl BUF + 7, %eax
        CHECK_EQ %eax, $GUARD, "cpl0: insd stored exactly 4 bytes"

        # REP with ECX=0 does nothing
        call fill_guard
        movl $BUF, %edi
        xorl %ecx, %ecx
        rep insb
        CHECK_EQ %edi, $BUF, "cpl0: rep insb with ECX=0 leaves EDI"
        movzbl BUF, %eax
        CHECK_EQ %eax, $GUARD, "cpl0: rep insb with ECX=0 stores nothing"

# ---------------------------------------------------------------- CPL3 IOPL0
        NOTE "CPL3, IOPL=0, bitmap denies everything"
        IOPERM_DENY_ALL
        .irp insn, "inb $0xe9, %al", "outb %al, $0xe9", "inw $0xe9, %ax", "inl %dx, %eax", "outl %eax, %dx", "insb", "outsb"
        TRY 1f
        USER_BEGIN $0x202
        movw $0xe9, %dx
        movl $BUF, %edi
        movl $str_d, %esi
2:      \insn
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0 denied: \insn -> #GP(0)"
        .endr

        call fill_guard
        TRY 1f
        USER_BEGIN $0x202
        movw $0xe9, %dx
        movl $BUF, %edi
        movl $8, %ecx
2:      rep insb
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0 denied: rep insb -> #GP(0)"
        CHECK_EQ rf_x_ecx, $8, "cpl3 iopl0 denied: rep insb faulted before any iteration (ECX)"
        CHECK_EQ rf_x_regs, $BUF, "cpl3 iopl0 denied: rep insb EDI unchanged"
        movzbl BUF, %eax
        CHECK_EQ %eax, $GUARD, "cpl3 iopl0 denied: rep insb stored nothing"

        NOTE "CPL3, IOPL=0, bitmap allows port 0xe9 only"
        IOPERM_ALLOW $0xe9
        TRY 1f
        USER_BEGIN $0x202
        movl $0x11223300, %eax
        inb $0xe9, %al
        movl %eax, %ebx
        movl $0x44556600, %eax
        movw $0xe9, %dx
        inb %dx, %al
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3 iopl0 allowed: inb 0xe9 does not fault"
        CHECK_EQ %ebx, $0x112233e9, "cpl3 iopl0 allowed: inb imm8 reads 0xe9"
        CHECK_EQ %eax, $0x445566e9, "cpl3 iopl0 allowed: inb dx reads 0xe9"

        PUTS "# io: cpl3 out ["
        TRY 1f
        USER_BEGIN $0x202
        movb $'f', %al
        outb %al, $0xe9
        movl $str_g, %esi
        movw $0xe9, %dx
        movl $3, %ecx
        rep outsb
        USER_END
        ENDTRY
1:      PUTS "] (want fghi)\n"
        CHECK_NOFAULT "cpl3 iopl0 allowed: outb and rep outsb to 0xe9"
        CHECK_EQ %esi, $str_g+3, "cpl3 iopl0 allowed: rep outsb ESI"

        call fill_guard
        TRY 1f
        USER_BEGIN $0x202
        movw $0xe9, %dx
        movl $BUF + 4, %edi
        movl $8, %ecx
        rep insb
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3 iopl0 allowed: rep insb"
        CHECK_EQ %edi, $BUF+12, "cpl3 iopl0 allowed: rep insb EDI"
        movl $BUF + 4, %esi
        movl $8, %ecx
        movb $0xe9, %al
        call count_eq
        CHECK_EQ %eax, $8, "cpl3 iopl0 allowed: rep insb stored 8 bytes of 0xe9"
        movzbl BUF + 3, %eax
        movzbl BUF + 12, %ebx
        shll $8, %ebx
        orl %ebx, %eax
        CHECK_EQ %eax, $(GUARD*0x101), "cpl3 iopl0 allowed: rep insb guards intact"

        # Multi-byte accesses need every covered port allowed.
        .irp insn, "inw $0xe9, %ax", "inl $0xe9, %eax", "inl $0xe8, %eax", "inw $0xe8, %ax", "outw %ax, $0xe9", "insw"
        TRY 1f
        USER_BEGIN $0x202
        movl $BUF, %edi
        movw $0xe9, %dx
2:      \insn
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0 only 0xe9 allowed: \insn -> #GP(0)"
        .endr

        # Ports 0xe8,0xe9,0xeb allowed, 0xea denied: dword at 0xe8 faults.
        IOPERM_ALLOW $0xe8
        IOPERM_ALLOW $0xeb
        TRY 1f
        USER_BEGIN $0x202
2:      inl $0xe8, %eax
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0 0xe8-0xeb allowed but 0xea: inl 0xe8 -> #GP(0)"
        IOPERM_DENY $0xe8
        IOPERM_DENY $0xeb

        # Bitmap byte boundary: 0xef allowed (byte 0x1d), 0xf0 denied (byte 0x1e).
        IOPERM_ALLOW $0xef
        TRY 1f
        USER_BEGIN $0x202
2:      inw $0xef, %ax
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0 0xef allowed, 0xf0 denied: inw 0xef -> #GP(0)"
        IOPERM_DENY $0xef

        # 0xe9..0xec allowed: word and dword accesses at 0xe9 pass.
        IOPERM_ALLOW $0xea
        IOPERM_ALLOW $0xeb
        IOPERM_ALLOW $0xec
        TRY 1f
        USER_BEGIN $0x202
        movl $0x12345678, %eax
        inw $0xe9, %ax
        movl %eax, %ebx
        inl $0xe9, %eax
        movw $0xe9, %dx
        movl $BUF, %edi
        insl
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3 iopl0 0xe9-0xec allowed: inw/inl/insd 0xe9"
        CHECK_MASK %ebx, $0xffff0000, $0x12340000, "cpl3: inw keeps EAX[31:16]"
        CHECK_EQ %edi, $BUF+4, "cpl3: insd advances EDI by 4"
        IOPERM_DENY $0xea
        IOPERM_DENY $0xeb
        IOPERM_DENY $0xec

        # I/O map base beyond the TSS limit: everything denied.
        movw $RF_TSS_LIMIT + 1, rf_tss + 102
        TRY 1f
        USER_BEGIN $0x202
2:      inb $0xe9, %al
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0: I/O map base beyond TSS limit -> #GP(0)"
        movw $RF_TSS_IOMAP, rf_tss + 102

        # IOPL=1 < CPL: the bitmap still decides.
        IOPERM_DENY_ALL
        TRY 1f
        USER_BEGIN $0x1202
2:      inb $0xe9, %al
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl1 denied: inb -> #GP(0)"

# ---------------------------------------------------------------- CPL3 IOPL3
        NOTE "CPL3, IOPL=3, bitmap denies everything"
        call fill_guard
        PUTS "# io: cpl3 iopl3 out ["
        TRY 1f
        USER_BEGIN $0x3202
        movl $0xcafe0000, %eax
        inb $0xe9, %al
        movl %eax, %ebx
        movb $'j', %al
        outb %al, $0xe9
        movl $str_k, %esi
        movw $0xe9, %dx
        movl $2, %ecx
        rep outsb
        movl $BUF, %edi
        movl $5, %ecx
        rep insb
        inw %dx, %ax
        inl %dx, %eax
        USER_END
        ENDTRY
1:      PUTS "] (want jkl)\n"
        CHECK_NOFAULT "cpl3 iopl3: in/out/ins/outs do not fault, bitmap ignored"
        CHECK_EQ %ebx, $0xcafe00e9, "cpl3 iopl3: inb reads 0xe9"
        CHECK_EQ %edi, $BUF+5, "cpl3 iopl3: rep insb EDI"
        movl $BUF, %esi
        movl $5, %ecx
        movb $0xe9, %al
        call count_eq
        CHECK_EQ %eax, $5, "cpl3 iopl3: rep insb stored 5 bytes of 0xe9"

        # back at CPL0 with the bitmap denying everything: still fine.
        movl $0, %eax
        inb $0xe9, %al
        CHECK_EQ %eax, $0xe9, "cpl0: bitmap does not apply at CPL0"
        ret

        .section .rodata
str_d:  .ascii "d"
str_e:  .ascii "e"
str_g:  .ascii "ghi"
str_k:  .ascii "kl"
spaces: .ascii "                "
line1:  .ascii "# io: rep outsb line printed\n"
        .set line1_len, . - line1
line2:  .ascii "\nsdrawkcab detnirp 1=FD htiw bstuo per :oi #"
line2_end:
        .text
