# ints.S -- interrupt and exception delivery through the IDT, and IRET.
#
# SDM references: Vol. 3A ch. 6 "Interrupt and Exception Handling"
# (6.4.2 software-generated exceptions/INT n DPL check, 6.5 classes
# (fault/trap), 6.10 IDT, 6.11 IDT descriptors, 6.12.1 "Exception- or
# Interrupt-Handler Procedures" (stack switch, frame layout, IF cleared by
# interrupt gates only), 6.13 error code format, 6.15 exception reference);
# Vol. 2A "INT n/INTO/INT3/INT1", "BOUND", "DIV", "IDIV", "IRET/IRETD",
# Vol. 2B "UD".
#
# Checked at CPL0 and CPL3: INT n through interrupt vs trap gates, frame
# contents (EIP after INT n, CS, EFLAGS, ESP/SS on a privilege change and
# the stack switch to TSS SS0:ESP0), INT n / INT3 / INTO against the gate
# DPL (#GP(n*8+2)), exceptions ignoring the gate DPL, INTO with OF=0/1,
# BOUND, UD2, DIV/IDIV #DE, not-present gates (#NP(n*8+2)), INT n beyond
# the IDT limit (#GP(n*8+2)), IRET to the same and to an outer privilege
# level (ESP/SS restored, data segments with DPL < CPL nulled), IRET to an
# inner privilege level (#GP(sel)), INT 0x80 at CPL3 reaching the guest.
        .include "rf.inc"

        .set V_INTG, 0x40               # DPL0 interrupt gate
        .set V_TRAPG, 0x41              # DPL0 trap gate
        .set V_NOTP, 0x42               # not present
        .set V_INTG3, 0x43              # DPL3 interrupt gate
        .set V_TRAPG3, 0x44             # DPL3 trap gate
        .set V_SYS, 0x80                # DPL3 interrupt gate ("syscall")

rf_main:
        NOTE "ints: INT n, INT3, INTO, BOUND, UD2, #DE, #NP gates, IRET"
        IDT_GATE $V_INTG, $0x8e
        IDT_GATE $V_TRAPG, $0x8f
        IDT_GATE $V_INTG3, $0xee
        IDT_GATE $V_TRAPG3, $0xef
        IDT_GATE $V_SYS, $0xee
        VEC_RESUME V_INTG
        VEC_RESUME V_TRAPG
        VEC_RESUME V_INTG3
        VEC_RESUME V_TRAPG3
        VEC_RESUME V_SYS
        VEC_RESUME V_BP
        VEC_RESUME V_OF

# ---------------------------------------------------------------- CPL0
        sti
        movl %esp, %ebx
        movl $0x1234abcd, %eax
        int $V_INTG
1:      cli
        CHECK_EQ rf_x_vec, $V_INTG, "cpl0: int 0x40 delivered to vector 0x40"
        CHECK_EQ rf_x_eip, $1b, "cpl0: int gate frame EIP is after INT n"
        CHECK_EQ rf_x_cs, $RF_KCS, "cpl0: int gate frame CS is 0x08"
        CHECK_MASK rf_x_eflags, $FL_IF, $FL_IF, "cpl0: int gate frame EFLAGS has IF=1"
        CHECK_MASK rf_x_heflags, $FL_IF, $0, "cpl0: interrupt gate clears IF in the handler"
        subl $12, %ebx
        CHECK_EQ rf_x_hesp, %ebx, "cpl0: no stack switch, frame (EIP,CS,EFLAGS) below old ESP"
        CHECK_EQ rf_x_hss, $RF_KDS, "cpl0: handler SS unchanged"
        CHECK_EQ rf_x_esp, $RF_NONE, "cpl0: no ESP/SS pushed for same-privilege delivery"
        CHECK_EQ rf_x_eax, $0x1234abcd, "cpl0: handler sees EAX"

        sti
        int $V_TRAPG
        pushfl
        popl %eax
        cli
        CHECK_MASK rf_x_heflags, $FL_IF, $FL_IF, "cpl0: trap gate keeps IF=1 in the handler"
        CHECK_MASK %eax, $FL_IF, $FL_IF, "cpl0: IRET restored IF=1"

        # NT is cleared on delivery but saved in the frame and restored by IRET
        pushl $(0x2 | FL_NT | FL_CF)
        popfl
        int $V_TRAPG
        pushfl
        popl %eax
        pushl $0x2
        popfl
        CHECK_MASK rf_x_heflags, $FL_NT, $0, "cpl0: NT cleared in the handler"
        CHECK_MASK rf_x_eflags, $(FL_NT|FL_CF), $(FL_NT|FL_CF), "cpl0: frame EFLAGS has NT and CF"
        CHECK_MASK %eax, $(FL_NT|FL_CF), $(FL_NT|FL_CF), "cpl0: IRET restored NT and CF"

        int3
1:      CHECK_FAULT $V_BP, $0, $1b, "cpl0: int3 -> #BP, EIP after the 0xCC byte"
        int $3
1:      CHECK_FAULT $V_BP, $0, $1b, "cpl0: int $3 (CD 03) -> #BP, EIP after the instruction"

        movl $0, rf_x_count
        movl $RF_NONE, rf_x_vec
        xorl %eax, %eax                 # OF=0
        into
        CHECK_EQ rf_x_vec, $RF_NONE, "cpl0: into with OF=0 does nothing"
        movl $0x7fffffff, %eax
        addl $1, %eax                   # OF=1
        into
1:      CHECK_FAULT $V_OF, $0, $1b, "cpl0: into with OF=1 -> #OF, EIP after INTO"

        # BOUND
        TRY 1f
        movl $5, %eax
        bound %eax, bounds
        movl $10, %eax
        bound %eax, bounds
        movl $20, %eax
        bound %eax, bounds
        ENDTRY
1:      CHECK_NOFAULT "cpl0: bound within [5,20] does not fault"
        TRY 1f
        movl $21, %eax
2:      bound %eax, bounds
        ENDTRY
1:      CHECK_FAULT $V_BR, $0, $2b, "cpl0: bound above range -> #BR, EIP at BOUND"
        TRY 1f
        movl $-1, %eax
2:      bound %eax, bounds
        ENDTRY
1:      CHECK_FAULT $V_BR, $0, $2b, "cpl0: bound below range (signed) -> #BR"

        TRY 1f
2:      ud2
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl0: ud2 -> #UD, EIP at UD2"

        TRY 1f
        movl $7, %eax
        xorl %edx, %edx
        xorl %ecx, %ecx
2:      divl %ecx
        ENDTRY
1:      CHECK_FAULT $V_DE, $0, $2b, "cpl0: div by zero -> #DE, EIP at DIV"
        CHECK_EQ rf_x_eax, $7, "cpl0: #DE leaves EAX unchanged"
        TRY 1f
        movl $0x80000000, %eax
        movl $-1, %edx
        movl $-1, %ecx
2:      idivl %ecx
        ENDTRY
1:      CHECK_FAULT $V_DE, $0, $2b, "cpl0: idiv overflow -> #DE"

        TRY 1f
2:      int $V_NOTP
        ENDTRY
1:      CHECK_FAULT $V_NP, $(V_NOTP*8+2), $2b, "cpl0: int to a not-present gate -> #NP(n*8+2), EIP at INT"

        # INT n beyond the IDT limit
        movw $(V_INTG*8-1), idtr_small
        movl $rf_idt, idtr_small+2
        lidt idtr_small
        TRY 1f
2:      int $V_INTG
        ENDTRY
1:      lidt rf_idtr
        CHECK_FAULT $V_GP, $(V_INTG*8+2), $2b, "cpl0: int n beyond the IDT limit -> #GP(n*8+2)"

        # IRET to the same privilege level
        movl %esp, %ebx
        pushl $(0x2 | FL_CF | FL_ZF)
        pushl $RF_KCS
        pushl $3f
        iretl
        ud2
3:      pushfl
        popl %eax
        pushl $0x2
        popfl
        CHECK_MASK %eax, $(FL_CF|FL_ZF), $(FL_CF|FL_ZF), "cpl0: iret same privilege loads EFLAGS"
        movl %esp, %ecx
        CHECK_EQ %ecx, %ebx, "cpl0: iret same privilege pops 12 bytes"

# ---------------------------------------------------------------- IRET to CPL3
        # Hand-made IRET frame; DPL0 data in FS and a DPL0 code segment in ES
        # must be nulled, DPL3 GS kept.
        movw $RF_KDS, %ax
        movw %ax, %fs
        movw $RF_KCS, %ax
        movw %ax, %es
        movw $RF_UDS, %ax
        movw %ax, %gs
        movw %ax, %ds
        pushl $RF_UDS
        pushl $rf_ustack_top-0x40
        pushl $(0x202 | FL_CF)
        pushl $RF_UCS
        pushl $3f
        movl %esp, rf_k_esp             # where USER_END will return to
        addl $20, rf_k_esp
        pushfl
        popl rf_k_eflags
        iretl
3:      pushfl
        popl %edi
        movl %esp, %ebx
        movw %ss, %cx
        movw %cs, %dx
        movw %fs, %si
        movw %es, %bp
        movw %gs, %ax
        shll $16, %eax
        movw %ds, %ax
        int $V_URET
4:      movzwl %cx, %ecx
        movzwl %dx, %edx
        movzwl %si, %esi
        movzwl %bp, %ebp
        CHECK_EQ %ebx, $rf_ustack_top-0x40, "iret to cpl3: ESP loaded from the frame"
        CHECK_EQ %ecx, $RF_UDS, "iret to cpl3: SS = 0x23"
        CHECK_EQ %edx, $RF_UCS, "iret to cpl3: CS = 0x1b"
        CHECK_MASK %edi, $(FL_CF|FL_IF|FL_IOPL), $(FL_CF|FL_IF), "iret to cpl3: EFLAGS loaded (CF IF, IOPL0)"
        CHECK_EQ %esi, $0, "iret to cpl3: FS holding DPL0 data is nulled"
        CHECK_EQ %ebp, $0, "iret to cpl3: ES holding DPL0 code is nulled"
        CHECK_EQ %eax, $(RF_UDS*0x10001), "iret to cpl3: GS and DS holding DPL3 data kept"

        # IRET from CPL3 to CPL0 (inner level) -> #GP(return CS selector)
        TRY 1f
        USER_BEGIN
        pushfl
        pushl $RF_KCS
        pushl $rf_done
2:      iretl
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $RF_KCS, $2b, "cpl3: iret to a CPL0 CS -> #GP(0x08)"

# ---------------------------------------------------------------- CPL3
        NOTE "INT n from CPL3"
        TRY 1f
        USER_BEGIN
2:      int $V_INTG
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $(V_INTG*8+2), $2b, "cpl3: int to a DPL0 gate -> #GP(n*8+2), EIP at INT"
        CHECK_EQ rf_x_cs, $RF_UCS, "cpl3: #GP frame CS = 0x1b"
        CHECK_EQ rf_x_ss, $RF_UDS, "cpl3: #GP frame SS = 0x23"
        CHECK_EQ rf_x_hesp, $rf_istack_top-20, "cpl3: #GP frame (with error code) on TSS ESP0 stack"

        TRY 1f
        USER_BEGIN
2:      int $V_TRAPG
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $(V_TRAPG*8+2), $2b, "cpl3: int to a DPL0 trap gate -> #GP(n*8+2)"

        TRY 5f
        USER_BEGIN $0x202
        movl $0x5a5a1234, %eax
        pushfl
        popl %edi
        movl %esp, %esi
        int $V_INTG3
1:      pushfl
        popl %ebp
        movw %ds, %cx
        USER_END
        ENDTRY
5:      CHECK_EQ rf_x_vec, $V_INTG3, "cpl3: int to a DPL3 gate is delivered"
        CHECK_EQ rf_x_eip, $1b, "cpl3: frame EIP is after INT n"
        CHECK_EQ rf_x_cs, $RF_UCS, "cpl3: frame CS = 0x1b"
        CHECK_EQ rf_x_eflags, %edi, "cpl3: frame EFLAGS = user EFLAGS"
        CHECK_EQ rf_x_esp, %esi, "cpl3: frame ESP = user ESP at the INT"
        CHECK_EQ rf_x_ss, $RF_UDS, "cpl3: frame SS = 0x23"
        CHECK_EQ rf_x_hss, $RF_KDS, "cpl3: handler SS = TSS SS0 (0x10)"
        CHECK_EQ rf_x_hesp, $rf_istack_top-20, "cpl3: frame at TSS ESP0 - 20"
        CHECK_MASK rf_x_heflags, $FL_IF, $0, "cpl3: interrupt gate cleared IF in handler"
        CHECK_EQ rf_x_eax, $0x5a5a1234, "cpl3: handler sees user EAX"
        CHECK_EQ rf_x_ds, $RF_UDS, "cpl3: handler sees user DS"
        CHECK_EQ %ebp, %edi, "cpl3: IRET back restored user EFLAGS"
        movzwl %cx, %ecx
        CHECK_EQ %ecx, $RF_UDS, "cpl3: IRET back kept DS"

        TRY 5f
        USER_BEGIN $0x202
        int $V_TRAPG3
        USER_END
        ENDTRY
5:      CHECK_EQ rf_x_vec, $V_TRAPG3, "cpl3: int to a DPL3 trap gate is delivered"
        CHECK_MASK rf_x_heflags, $FL_IF, $FL_IF, "cpl3: trap gate kept IF=1 in handler"

        # INT3 and INTO check the gate DPL, exceptions do not.
        TRY 1f
        USER_BEGIN
2:      int3
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $(V_BP*8+2), $2b, "cpl3: int3 with a DPL0 gate -> #GP(0x1a)"
        TRY 1f
        USER_BEGIN
        movl $0x7fffffff, %eax
        addl $1, %eax
2:      into
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $(V_OF*8+2), $2b, "cpl3: into (OF=1) with a DPL0 gate -> #GP(0x22)"
        TRY 1f
        USER_BEGIN
        xorl %eax, %eax
        into
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: into with OF=0 and a DPL0 gate does nothing"

        IDT_GATE $V_BP, $0xee
        IDT_GATE $V_OF, $0xee
        TRY 5f
        USER_BEGIN
        int3
1:      USER_END
        ENDTRY
5:      CHECK_FAULT $V_BP, $0, $1b, "cpl3: int3 with a DPL3 gate -> #BP, EIP after"
        CHECK_EQ rf_x_ss, $RF_UDS, "cpl3: #BP frame SS = 0x23"
        TRY 5f
        USER_BEGIN
        movl $0x7fffffff, %eax
        addl $1, %eax
        into
1:      USER_END
        ENDTRY
5:      CHECK_FAULT $V_OF, $0, $1b, "cpl3: into with a DPL3 gate -> #OF, EIP after"
        IDT_GATE $V_BP, $0x8e
        IDT_GATE $V_OF, $0x8e

        TRY 1f
        USER_BEGIN
        movl $100, %eax
        movl %esp, %esi
2:      bound %eax, bounds
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_BR, $0, $2b, "cpl3: bound out of range -> #BR via DPL0 gate, EIP at BOUND"
        CHECK_EQ rf_x_cs, $RF_UCS, "cpl3: #BR frame CS = 0x1b"
        CHECK_EQ rf_x_esp, %esi, "cpl3: #BR frame ESP = user ESP"
        CHECK_EQ rf_x_hesp, $rf_istack_top-20, "cpl3: #BR frame at TSS ESP0 - 20"

        TRY 1f
        USER_BEGIN
2:      ud2
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl3: ud2 -> #UD, EIP at UD2"

        TRY 1f
        USER_BEGIN
        movl $1, %eax
        xorl %edx, %edx
        xorl %ecx, %ecx
2:      divl %ecx
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_DE, $0, $2b, "cpl3: div by zero -> #DE, EIP at DIV"

        TRY 1f
        USER_BEGIN
2:      int $V_NOTP
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $(V_NOTP*8+2), $2b, "cpl3: int to a not-present DPL0 gate -> #GP(n*8+2) (DPL checked first)"
        IDT_GATE $V_NOTP, $0x6e         # not present, DPL3
        TRY 1f
        USER_BEGIN
2:      int $V_NOTP
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_NP, $(V_NOTP*8+2), $2b, "cpl3: int to a not-present DPL3 gate -> #NP(n*8+2)"

        # INT 0x80 from CPL3: must reach the guest handler (no host syscall).
        # EAX=4 EBX=1 ECX=msg EDX=len is a Linux write(1, msg, len).
        TRY 5f
        USER_BEGIN
        movl $4, %eax
        movl $1, %ebx
        movl $hostmsg, %ecx
        movl $hostmsg_len, %edx
        int $V_SYS
1:      movl %eax, %edi
        USER_END
        ENDTRY
5:      CHECK_EQ rf_x_vec, $V_SYS, "cpl3: int 0x80 delivered to the guest IDT vector 0x80"
        CHECK_EQ rf_x_eip, $1b, "cpl3: int 0x80 frame EIP after INT"
        CHECK_EQ rf_x_eax, $4, "cpl3: int 0x80 handler saw EAX=4 unchanged"
        CHECK_EQ rf_x_ecx, $hostmsg, "cpl3: int 0x80 handler saw ECX"
        CHECK_EQ %edi, $4, "cpl3: EAX after int 0x80 is still 4 (no host write ran)"

        pushfl
        popl %eax
        CHECK_MASK %eax, $(FL_IF|FL_IOPL), $0, "cpl0: IF=0 IOPL=0 at the end"
        ret

        .data
        .balign 4
bounds: .long 5, 20
idtr_small:
        .word 0
        .long 0
        .section .rodata
hostmsg: .ascii "HOST WRITE: ringfold leaked int 0x80 to the host\n"
        .set hostmsg_len, . - hostmsg
        .text
