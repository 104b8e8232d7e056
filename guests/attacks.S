# attacks.S -- a guest must never reach the host.  Every attempt below is
# an architecturally well-defined guest event (fault or guest handler), and
# the guest keeps running afterwards.
#
# The selectors 0x23, 0x2b, 0x33 (and 0x7b) are what a Linux x86-64 host
# uses for its own user segments (__USER32_CS, __USER_DS, __USER_CS); a
# monitor that runs guest code natively must not let a guest far JMP/CALL/
# RET/IRET or segment load reach the host's descriptors.  Likewise INT 0x80,
# SYSCALL and SYSENTER must be handled in the guest, never as host system
# calls, and linear addresses near 4 GiB (and segment-base + offset wrap
# around) must stay inside the guest's 32-bit linear space.
#
# Two configurations are used for the selector attacks:
#   mode 1: GDT limit lowered to 0x1f (only null, 0x08, 0x10, 0x18 valid):
#           0x23/0x2b/0x33/0x7b are beyond the limit -> #GP(sel & ~3).
#   mode 2: full GDT, slots 0x20 (data), 0x28 (TSS), 0x30 (code) marked
#           not present -> #NP / #GP / #SS per the SDM's check order.
# Ring 3 runs with CS=0x1b and SS=DS=0x0f, a flat DPL3 data segment in the
# LDT, so it does not depend on GDT slots 4..6.
#
# SDM references: Vol. 3A 3.4.2/3.5.1 (selector and descriptor-table limit
# checks), 5.8 (far transfers), 6.12.1.1 (IDT gate target CS checks, EXT
# bit), Vol. 2 "CALL", "JMP", "RET", "IRET", "MOV", "POP", "LDS/.../LSS",
# "INT n", "SYSCALL", "SYSENTER"; 3.4.4-3.4.5 and 5.3 (linear address
# formation wraps modulo 2^32 in 32-bit mode).
        .include "rf.inc"

        .set BUF, rf_scratch
        .set L_DATA, 0x0f               # LDT index 1: flat DPL3 data
        .set S_LDT, 0x78                # LDT descriptor
        .set S_GATE, 0x38               # mode 2: call gate DPL3 -> 0x33
        .set S_HIGH, 0x40               # DPL3 data base 0xff000000, limit 0xfffff
        .set S_B1000, 0x48              # DPL3 data base 0x1000, limit 4 GiB
        .set S_B200K, 0x50              # DPL3 data base 0x200000, limit 4 GiB
        .set V_SYSG, 0x80

# ATK cpl, pre, insn, vec, err, desc: `insn` (after `pre`) must fault
        .macro ATK cpl, pre, insn, vec, err, desc
        TRY 1f
        AT_CPL \cpl
        \pre
2:      \insn
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $\vec, $\err, $2b, "cpl\cpl: \desc"
        .endm

# Mode-1 attacks (GDT limit 0x1f): everything is #GP(sel & ~3)
        .macro MODE1 cpl
        ATK \cpl, "", "ljmp $0x33, $rf_done", V_GP, 0x30, "ljmp 0x33 beyond GDT limit -> #GP(0x30)"
        ATK \cpl, "", "ljmp $0x23, $rf_done", V_GP, 0x20, "ljmp 0x23 beyond GDT limit -> #GP(0x20)"
        ATK \cpl, "", "lcall $0x23, $rf_done", V_GP, 0x20, "lcall 0x23 beyond GDT limit -> #GP(0x20)"
        ATK \cpl, "", "lcall $0x33, $rf_done", V_GP, 0x30, "lcall 0x33 beyond GDT limit -> #GP(0x30)"
        ATK \cpl, "", "ljmpw $0x33, $0x1000", V_GP, 0x30, "16-bit ljmp 0x0033 -> #GP(0x30)"
        ATK \cpl, "", "lcallw $0x2b, $0x1000", V_GP, 0x28, "16-bit lcall 0x002b -> #GP(0x28)"
        ATK \cpl, "movl $rf_done, fptr; movw $0x33, fptr+4", "ljmp *fptr", V_GP, 0x30, "ljmp *m16:32 to 0x33 -> #GP(0x30)"
        ATK \cpl, "movl $rf_done, fptr; movw $0x23, fptr+4", "lcall *fptr", V_GP, 0x20, "lcall *m16:32 to 0x23 -> #GP(0x20)"
        ATK \cpl, "pushl $0x2b; pushl %esp; pushl $0x33; pushl $rf_done", "lret", V_GP, 0x30, "lret to 0x33 -> #GP(0x30)"
        ATK \cpl, "pushl $0x2b; pushl %esp; pushl $0x202; pushl $0x33; pushl $rf_done", "iret", V_GP, 0x30, "iret to 0x33 -> #GP(0x30)"
        ATK \cpl, "movw $0x2b, %ax", "movw %ax, %ds", V_GP, 0x28, "mov 0x2b to DS -> #GP(0x28)"
        ATK \cpl, "movw $0x23, %ax", "movw %ax, %es", V_GP, 0x20, "mov 0x23 to ES -> #GP(0x20)"
        ATK \cpl, "movw $0x33, %ax", "movw %ax, %ss", V_GP, 0x30, "mov 0x33 to SS -> #GP(0x30)"
        ATK \cpl, "movw $0x2b, %ax", "movw %ax, %ss", V_GP, 0x28, "mov 0x2b to SS -> #GP(0x28)"
        ATK \cpl, "pushl $0x7b", "popl %es", V_GP, 0x78, "push 0x7b / pop ES -> #GP(0x78)"
        ATK \cpl, "pushl $0x2b", "popl %ss", V_GP, 0x28, "push 0x2b / pop SS -> #GP(0x28)"
        ATK \cpl, "movl $0, fptr; movw $0x2b, fptr+4", "lfs fptr, %eax", V_GP, 0x28, "lfs with 0x2b -> #GP(0x28)"
        ATK \cpl, "movl $0, fptr; movw $0x33, fptr+4", "lgs fptr, %eax", V_GP, 0x30, "lgs with 0x33 -> #GP(0x30)"
        ATK \cpl, "movl $0, fptr; movw $0x23, fptr+4", "lss fptr, %eax", V_GP, 0x20, "lss with 0x23 -> #GP(0x20)"
        .endm

# HIGHWRITE cpl, high, alias: write ~(*alias) to linear `high` (flat DS),
# read it back (value not asserted), and check *alias is unchanged.
        .macro HIGHWRITE cpl, high, alias
        movl \alias, %esi
        movl %esi, %edi
        notl %edi
        TRY 1f
        AT_CPL \cpl
        movl %edi, \high
        movl \high, %eax
        movb %al, \high+5
        movw \high+6, %ax
        END_CPL \cpl
        ENDTRY
1:      CHECK_NOFAULT "cpl\cpl: write/read at linear \high keeps running"
        CHECK_EQ \alias, %esi, "cpl\cpl: write at \high leaves guest RAM at \alias"
        .endm

# SEGWRITE cpl, sel, offset, alias: same through a segment register
        .macro SEGWRITE cpl, sel, off, alias
        movl \alias, %esi
        movl %esi, %edi
        notl %edi
        TRY 1f
        AT_CPL \cpl
        movw $\sel, %ax
        movw %ax, %es
        movl %edi, %es:\off
        movl %es:\off, %eax
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: write/read at \sel:\off keeps running"
        CHECK_EQ \alias, %esi, "cpl\cpl: write at \sel:\off leaves guest RAM at \alias"
        .endm

rf_main:
        NOTE "attacks: host selectors, INT 0x80, SYSCALL/SYSENTER, top of memory, wrap-around"
        # LDT with a flat DPL3 data segment for ring 3
        LDT_DESC $L_DATA, $0, $0xfffff, $0xf3, $0xc
        GDT_DESC $S_LDT, $rf_ldt, $(RF_LDT_SLOTS*8-1), $0x82, $0x0
        movl $S_LDT, %eax
        lldt %ax
        movl $L_DATA, rf_user_ss
        movl $L_DATA, rf_user_ds
        TRY 1f
        USER_BEGIN
        movl %ss, %ebx
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3 runs with SS=DS=0x0f from the LDT"
        CHECK_EQ %ebx, $L_DATA, "cpl3: SS reads 0x0f"

        # ------------------------------------------------------------ mode 1
        NOTE "mode 1: GDT limit 0x1f"
        SET_GDT_LIMIT $0x1f
        sgdt gdtr_save
        movzwl gdtr_save, %eax
        CHECK_EQ %eax, $0x1f, "GDT limit is now 0x1f"
        MODE1 0
        MODE1 3
        # an IDT gate whose target CS is 0x33: #GP(0x30) for INT n,
        # #GP(0x30 | EXT) when delivering a hardware exception (#UD)
        IDT_GATE $0x81, $0xee, $rf_done, $0x33
        ATK 3, "", "int $0x81", V_GP, 0x30, "int via a DPL3 gate with CS 0x33 -> #GP(0x30)"
        ATK 0, "", "int $0x81", V_GP, 0x30, "int via a gate with CS 0x33 -> #GP(0x30)"
        IDT_GATE $V_UD, $0x8e, $rf_done, $0x33
        # SDM 6.13: EXT=1 for a fault during delivery of an earlier exception;
        # QEMU 7.2 leaves EXT clear (tolerated unless "strict").
        TRY 1f
        USER_BEGIN
2:      ud2
        USER_END
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_ALT $V_GP, $0x31, $0x30, $2b, "cpl3: #UD via a gate with CS 0x33 -> #GP(0x31) (EXT=1)"
        IDT_GATE $V_UD, $0x8e
        IDT_GATE $0x81, $0x0e
        RESTORE_GDT

        # ------------------------------------------------------------ mode 2
        NOTE "mode 2: GDT slots 0x20, 0x28, 0x30 not present"
        GDT_DESC $0x20, $0, $0xfffff, $0x73, $0xc      # DPL3 data, P=0
        andb $0x7f, rf_gdt+0x28+5                       # TSS, P=0
        GDT_DESC $0x30, $0, $0xfffff, $0x7b, $0xc      # DPL3 code, P=0
        GDT_GATE $S_GATE, $0x33, $rf_done, $0xec, $0   # DPL3 call gate -> 0x33
        .irp cpl, 0, 3
        ATK \cpl, "", "lcall $0x23, $rf_done", V_GP, 0x20, "lcall 0x23 (data, P=0) -> #GP(0x20) (type before P)"
        ATK \cpl, "movw $0x23, %ax", "movw %ax, %ds", V_NP, 0x20, "mov 0x23 (P=0) to DS -> #NP(0x20)"
        ATK \cpl, "movw $0x2b, %ax", "movw %ax, %ds", V_GP, 0x28, "mov 0x2b (TSS) to DS -> #GP(0x28)"
        ATK \cpl, "movw $0x33, %ax", "movw %ax, %ss", V_GP, 0x30, "mov 0x33 (code) to SS -> #GP(0x30)"
        ATK \cpl, "pushl $0x7b", "popl %es", V_GP, 0x78, "push 0x7b (LDT descriptor) / pop ES -> #GP(0x78)"
        ATK \cpl, "movl $0, fptr; movw $0x2b, fptr+4", "lfs fptr, %eax", V_GP, 0x28, "lfs with 0x2b -> #GP(0x28)"
        ATK \cpl, "pushl $0x2b; pushl %esp; pushl $0x33; pushl $rf_done", "lret", V_NP, 0x30, "lret to 0x33 (P=0) -> #NP(0x30)"
        ATK \cpl, "pushl $0x2b; pushl %esp; pushl $0x202; pushl $0x33; pushl $rf_done", "iret", V_NP, 0x30, "iret to 0x33 (P=0) -> #NP(0x30)"
        .endr
        ATK 3, "", "ljmp $0x33, $rf_done", V_NP, 0x30, "ljmp 0x33 (P=0) -> #NP(0x30)"
        ATK 3, "", "ljmpw $0x33, $0x1000", V_NP, 0x30, "16-bit ljmp 0x0033 (P=0) -> #NP(0x30)"
        ATK 3, "", "lcall $0x33, $rf_done", V_NP, 0x30, "lcall 0x33 (P=0) -> #NP(0x30)"
        ATK 3, "movw $0x23, %ax", "movw %ax, %ss", V_SS, 0x20, "mov 0x23 (P=0) to SS -> #SS(0x20)"
        ATK 3, "", "lcall $S_GATE|3, $0", V_NP, 0x30, "lcall through a gate to 0x33 (P=0) -> #NP(0x30)"
        ATK 0, "", "ljmp $0x33, $rf_done", V_GP, 0x30, "ljmp 0x33 (RPL3 > CPL0) -> #GP(0x30)"
        ATK 0, "", "ljmp $0x30, $rf_done", V_GP, 0x30, "ljmp 0x30 (DPL3 != CPL0) -> #GP(0x30)"
        # restore
        GDT_DESC $0x20, $0, $0xfffff, $0xf3, $0xc
        orb $0x80, rf_gdt+0x28+5
        GDT_DESC $0x30, $0, $0, $0, $0
        GDT_DESC $S_GATE, $0, $0, $0, $0

        # ------------------------------------------------------------ INT 0x80
        NOTE "INT 0x80 / SYSCALL / SYSENTER stay in the guest"
        TRY 1f
        USER_BEGIN
        movl $4, %eax                   # Linux i386 write(1, msg, len)
        movl $1, %ebx
        movl $hostmsg, %ecx
        movl $hostmsg_len, %edx
2:      int $V_SYSG
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $(V_SYSG*8+2), $2b, "cpl3: int 0x80 with a DPL0 gate -> #GP(0x402)"
        CHECK_EQ rf_x_eax, $4, "cpl3: EAX still 4 at the #GP"
        IDT_GATE $V_SYSG, $0xee
        VEC_RESUME V_SYSG
        .irp nr, 4, 1
        TRY 1f
        USER_BEGIN
        movl $\nr, %eax                 # 4 = write(1, msg, len), 1 = exit(42)
        movl $1, %ebx
        .ifc \nr, 1
        movl $42, %ebx
        .endif
        movl $hostmsg, %ecx
        movl $hostmsg_len, %edx
        int $V_SYSG
3:      movl %eax, %esi
        USER_END
        ENDTRY
1:      CHECK_EQ rf_x_vec, $V_SYSG, "cpl3: int 0x80 (eax=\nr) reached the guest handler"
        CHECK_EQ rf_x_eip, $3b, "cpl3: int 0x80 (eax=\nr) frame EIP"
        CHECK_EQ rf_x_eax, $\nr, "cpl3: guest handler saw EAX=\nr"
        CHECK_EQ %esi, $\nr, "cpl3: EAX=\nr after int 0x80 (no host syscall ran)"
        .endr
        movl $4, %eax
        movl $1, %ebx
        movl $hostmsg, %ecx
        movl $hostmsg_len, %edx
        int $V_SYSG
        CHECK_EQ rf_x_eax, $4, "cpl0: int 0x80 reached the guest handler with EAX=4"
        CHECK_EQ %eax, $4, "cpl0: EAX=4 after int 0x80"
        VEC_DEFAULT V_SYSG

        .irp cpl, 0, 3
        ATK \cpl, "movl $60, %eax; movl $42, %edi; movl $1, %ebx", "syscall", V_UD, 0, "syscall (EAX=60 exit) -> #UD"
        .endr
        movl $1, %eax
        cpuid
        testl $(1<<11), %edx
        jz 5f
        movl $0x174, %ecx
        xorl %eax, %eax
        xorl %edx, %edx
        wrmsr
        .irp cpl, 0, 3
        ATK \cpl, "movl $1, %eax; movl $42, %ebx", "sysenter", V_GP, 0, "sysenter with SYSENTER_CS=0 -> #GP(0)"
        .endr
        jmp 6f
5:      SKIP "cpl0: sysenter with SYSENTER_CS=0 (no SEP)"
        SKIP "cpl3: sysenter with SYSENTER_CS=0 (no SEP)"
6:
        # ------------------------------------------------------------ memory
        NOTE "top of the linear address space and wrap-around"
        movl $0x5a5a1234, BUF+0x100     # canaries in guest RAM
        movl $0x0ff1ce00, BUF+0x200
        .irp cpl, 0, 3
        # flat writes near 4 GiB; guest RAM aliases must not change
        HIGHWRITE \cpl, 0xff000000+BUF+0x100, BUF+0x100
        HIGHWRITE \cpl, 0xff000000+BUF+0x100, 0x07000000+BUF+0x100
        HIGHWRITE \cpl, 0xfffff010, 0x00fff010
        HIGHWRITE \cpl, 0xfffff010, 0x07fff010
        HIGHWRITE \cpl, 0xfffffff0, 0x07fffff0
        HIGHWRITE \cpl, 0xfffffff0, 0x00fffff0
        .endr
        CHECK_EQ BUF+0x100, $0x5a5a1234, "guest RAM canary 1 intact after the high writes"
        CHECK_EQ BUF+0x200, $0x0ff1ce00, "guest RAM canary 2 intact after the high writes"

        # DS base 0xff000000, limit 0xfffff (byte granular)
        GDT_DESC $S_HIGH, $0xff000000, $0xfffff, $0xf3, $0x4
        .irp cpl, 0, 3
        SEGWRITE \cpl, S_HIGH|3, 0x7000, 0x00007000
        SEGWRITE \cpl, S_HIGH|3, 0x7000, 0x07007000
        TRY 1f
        AT_CPL \cpl
        movw $S_HIGH|3, %ax
        movw %ax, %ds
2:      movl 0x100000, %eax
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl\cpl: base 0xff000000 segment: offset 0x100000 beyond limit -> #GP(0)"
        .endr

        # DS base 0x1000, limit 4 GiB: offset 0xfefff000 = linear 0xff000000,
        # offset 0xfffff800 wraps to linear 0x800
        GDT_DESC $S_B1000, $0x1000, $0xfffff, $0xf3, $0xc
        GDT_DESC $S_B200K, $0x200000, $0xfffff, $0xf3, $0xc
        .irp cpl, 0, 3
        SEGWRITE \cpl, S_B1000|3, 0xfefff000, 0x07000000
        TRY 1f
        AT_CPL \cpl
        movw $S_B1000|3, %ax
        movw %ax, %fs
        movl %fs:0xfffff800, %ebx       # linear 0x800 (read only)
        movl %fs:0xfffff800, %eax
        movl %eax, %fs:0xfffff800       # write the same value back
        movl 0x800, %ecx                # flat read of linear 0x800
        movw $S_B200K|3, %ax
        movw %ax, %gs
        movl $(BUF+0x300-0x200000), %edi
        movl $0xc0dedbad, %gs:(%edi)    # wraps to linear BUF+0x300
        movl %gs:(%edi), %edx
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_NOFAULT "cpl\cpl: wrap-around accesses"
        CHECK_EQ %ebx, %ecx, "cpl\cpl: base 0x1000 + offset 0xfffff800 reads linear 0x800"
        CHECK_EQ BUF+0x300, $0xc0dedbad, "cpl\cpl: base 0x200000 + offset wraps onto guest RAM (write)"
        CHECK_EQ %edx, $0xc0dedbad, "cpl\cpl: base 0x200000 + offset wraps onto guest RAM (read)"
        movl $0, BUF+0x300
        .endr

        CHECK_EQ BUF+0x100, $0x5a5a1234, "guest RAM canary 1 intact at the end"
        CHECK_EQ BUF+0x200, $0x0ff1ce00, "guest RAM canary 2 intact at the end"
        ret

        .data
        .balign 4
fptr:   .long 0
        .word 0, 0
gdtr_save: .fill 8, 1, 0
        .section .rodata
hostmsg: .ascii "HOST WRITE: ringfold leaked int 0x80 to the host\n"
        .set hostmsg_len, . - hostmsg
        .text
