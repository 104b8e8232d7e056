# flags.S -- EFLAGS virtualization: PUSHF/POPF (32- and 16-bit), CLI/STI,
# IF/IOPL sensitivity at CPL0 and CPL3.
#
# SDM references: Vol. 2B "POPF/POPFD" (operation: which flags change per
# CPL/IOPL/operand size), "PUSHF/PUSHFD", Vol. 2A "CLI", Vol. 2B "STI"
# (#GP(0) if CPL > IOPL, no PVI/VME here), Vol. 3A 2.3 "System flags and
# fields in the EFLAGS register".
#
# Key rules checked:
#  * CPL0: POPF may change IF and IOPL; VM/VIF/VIP unaffected, RF cleared.
#  * CPL3, IOPL<3: POPF silently leaves IF and IOPL unchanged (no fault);
#    CLI/STI raise #GP(0).
#  * CPL3, IOPL=3: POPF may change IF but never IOPL; CLI/STI work.
#  * 16-bit POPF changes only EFLAGS[15:0] (same IF/IOPL rules).
#  * Arithmetic/status flags, DF, AC, ID, NT round-trip at every CPL.
        .include "rf.inc"

        .set ARITH, FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF
        .set RT_MASK, ARITH | FL_DF | FL_AC | FL_ID
        .set LOW_RT, ARITH | FL_DF

rf_main:
        NOTE "flags: PUSHF/POPF/CLI/STI at CPL0 and CPL3"

# ---------------------------------------------------------------- CPL0
        pushfl
        popl %eax
        CHECK_EQ %eax, $0x2, "cpl0: initial EFLAGS is 0x2 (IF=0 IOPL=0)"

        pushl $(0x2 | FL_IF)
        popfl
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IF, $FL_IF, "cpl0: popf sets IF"
        pushl $0x2
        popfl
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IF, $0, "cpl0: popf clears IF"

        pushl $0x3002
        popfl
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IOPL, $0x3000, "cpl0: popf sets IOPL=3"
        pushl $0x1002
        popfl
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IOPL, $0x1000, "cpl0: popf sets IOPL=1"
        pushl $0x2002
        popfl
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IOPL, $0x2000, "cpl0: popf sets IOPL=2"
        pushl $0x2
        popfl
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IOPL, $0, "cpl0: popf clears IOPL"

        sti
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IF, $FL_IF, "cpl0: sti sets IF"
        cli
        pushfl
        popl %eax
        CHECK_MASK %eax, $FL_IF, $0, "cpl0: cli clears IF"

        pushl $(0x2 | RT_MASK)
        popfl
        pushfl
        popl %eax
        pushl $0x2
        popfl
        CHECK_MASK %eax, $RT_MASK, $RT_MASK, "cpl0: CF PF AF ZF SF OF DF AC ID set via popf"
        pushfl
        popl %eax
        CHECK_MASK %eax, $RT_MASK, $0, "cpl0: CF PF AF ZF SF OF DF AC ID cleared via popf"

        pushl $(0x2 | FL_NT)
        popfl
        pushfl
        popl %eax
        pushl $0x2
        popfl
        CHECK_MASK %eax, $FL_NT, $FL_NT, "cpl0: popf sets NT"

        # VM, VIF (bit 19), VIP (bit 20) unaffected by POPF; RF cleared;
        # reserved bits 3, 5, 15 read as 0 and bit 1 as 1.
        pushl $(0x2 | FL_VM | 0x180000 | FL_RF | 0x8028)
        popfl
        pushfl
        popl %eax
        pushl $0x2
        popfl
        CHECK_MASK %eax, $(FL_VM|0x180000|FL_RF|0x802a), $0x2, "cpl0: popf leaves VM VIF VIP clear, clears RF, fixed bits"

        # 16-bit forms
        movl %esp, %ebx
        pushfw
        movl %esp, %ecx
        popw %dx
        subl %ecx, %ebx
        CHECK_EQ %ebx, $2, "cpl0: pushfw pushes 2 bytes"
        movzwl %dx, %edx
        CHECK_EQ %edx, $0x2, "cpl0: pushfw value"
        pushl $(0x2 | FL_AC)
        popfl
        pushw $(0x3002 | FL_IF | LOW_RT)
        popfw
        pushfl
        popl %eax
        pushl $0x2
        popfl
        CHECK_MASK %eax, $(FL_IOPL|FL_IF|LOW_RT), $(0x3000|FL_IF|LOW_RT), "cpl0: popfw sets IOPL IF and low flags"
        CHECK_MASK %eax, $FL_AC, $FL_AC, "cpl0: popfw leaves EFLAGS[31:16] (AC) alone"

# ---------------------------------------------------------------- CPL3, IOPL=0
        NOTE "CPL3 with IOPL=0"
        xorl %ebx, %ebx
        xorl %ecx, %ecx
        xorl %edx, %edx
        USER_BEGIN $0x202
        pushfl
        popl %edx                       # initial user flags
        pushl $0x2                      # try to clear IF
        popfl
        pushfl
        popl %ebx
        pushl $(0x3202)                 # try to raise IOPL
        popfl
        pushfl
        popl %ecx
        USER_END
        CHECK_MASK %edx, $(FL_IF|FL_IOPL), $FL_IF, "cpl3 iopl0: pushf shows IF=1 IOPL=0"
        CHECK_MASK %ebx, $FL_IF, $FL_IF, "cpl3 iopl0: popf cannot clear IF (no fault)"
        CHECK_MASK %ecx, $FL_IOPL, $0, "cpl3 iopl0: popf cannot raise IOPL"

        USER_BEGIN $0x002
        pushl $(0x202)                  # try to set IF
        popfl
        pushfl
        popl %ebx
        USER_END
        CHECK_MASK %ebx, $FL_IF, $0, "cpl3 iopl0: popf cannot set IF"

        USER_BEGIN $0x202
        pushl $(0x202 | RT_MASK)
        popfl
        pushfl
        popl %ebx
        pushl $0x202
        popfl
        pushfl
        popl %ecx
        USER_END
        CHECK_MASK %ebx, $RT_MASK, $RT_MASK, "cpl3 iopl0: CF PF AF ZF SF OF DF AC ID set via popf"
        CHECK_MASK %ecx, $RT_MASK, $0, "cpl3 iopl0: arithmetic flags cleared via popf"

        USER_BEGIN $0x202
        pushl $(0x202 | FL_NT)
        popfl
        pushfl
        popl %ebx
        pushl $0x202
        popfl
        USER_END
        CHECK_MASK %ebx, $FL_NT, $FL_NT, "cpl3: popf sets NT"

        # 16-bit POPF at CPL3 IOPL0
        USER_BEGIN $0x202
        pushw $(0x3002 | LOW_RT)        # IF=0, IOPL=3 requested
        popfw
        pushfl
        popl %ebx
        pushfw
        popw %cx
        pushl $0x202
        popfl
        USER_END
        CHECK_MASK %ebx, $(FL_IF|FL_IOPL|LOW_RT), $(FL_IF|LOW_RT), "cpl3 iopl0: popfw changes low flags only, not IF/IOPL"
        movzwl %cx, %ecx
        movl %ebx, %eax
        andl $0xffff, %eax
        CHECK_EQ %ecx, %eax, "cpl3: pushfw equals low half of pushfd"

        TRY 1f
        USER_BEGIN $0x202
2:      cli
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0: cli -> #GP(0) at the cli"
        CHECK_MASK rf_x_eflags, $(FL_IF|FL_IOPL), $FL_IF, "cpl3 iopl0: #GP frame EFLAGS has IF=1 IOPL=0"
        CHECK_EQ rf_x_cs, $RF_UCS, "cpl3 iopl0: #GP frame CS is 0x1b"

        TRY 1f
        USER_BEGIN $0x002
2:      sti
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl0: sti -> #GP(0) at the sti"
        CHECK_MASK rf_x_eflags, $(FL_IF|FL_IOPL), $0, "cpl3 iopl0: #GP frame EFLAGS has IF=0"

        # IOPL=1 still < CPL: same rules
        TRY 1f
        USER_BEGIN $0x1202
        pushl $0x0002
        popfl
        pushfl
        popl %ebx
2:      cli
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3 iopl1: cli -> #GP(0)"
        CHECK_MASK %ebx, $(FL_IF|FL_IOPL), $(FL_IF|0x1000), "cpl3 iopl1: popf cannot change IF or IOPL"

# ---------------------------------------------------------------- CPL3, IOPL=3
        NOTE "CPL3 with IOPL=3"
        USER_BEGIN $0x3202
        pushfl
        popl %edx
        pushl $0x0002                   # clear IF, try IOPL=0
        popfl
        pushfl
        popl %ebx
        pushl $0x3202                   # set IF again
        popfl
        pushfl
        popl %ecx
        USER_END
        CHECK_MASK %edx, $(FL_IF|FL_IOPL), $(FL_IF|0x3000), "cpl3 iopl3: pushf shows IF=1 IOPL=3"
        CHECK_MASK %ebx, $FL_IF, $0, "cpl3 iopl3: popf clears IF"
        CHECK_MASK %ebx, $FL_IOPL, $0x3000, "cpl3 iopl3: popf cannot lower IOPL"
        CHECK_MASK %ecx, $FL_IF, $FL_IF, "cpl3 iopl3: popf sets IF"

        TRY 1f
        USER_BEGIN $0x3202
        cli
        pushfl
        popl %ebx
        sti
        pushfl
        popl %ecx
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3 iopl3: cli/sti do not fault"
        CHECK_MASK %ebx, $FL_IF, $0, "cpl3 iopl3: cli clears IF"
        CHECK_MASK %ecx, $FL_IF, $FL_IF, "cpl3 iopl3: sti sets IF"

        USER_BEGIN $0x3202
        pushw $(0x0002 | LOW_RT)        # IF=0, IOPL=0 requested
        popfw
        pushfl
        popl %ebx
        pushl $0x3202
        popfl
        USER_END
        CHECK_MASK %ebx, $(FL_IF|FL_IOPL|LOW_RT), $(0x3000|LOW_RT), "cpl3 iopl3: popfw clears IF, keeps IOPL"

        USER_BEGIN $0x3202
        pushl $(0x3202 | RT_MASK)
        popfl
        pushfl
        popl %ebx
        pushl $0x3202
        popfl
        USER_END
        CHECK_MASK %ebx, $RT_MASK, $RT_MASK, "cpl3 iopl3: CF PF AF ZF SF OF DF AC ID set via popf"

        # Flags produced by arithmetic reach PUSHF unchanged at CPL3.
        USER_BEGIN $0x202
        movl $0x7fffffff, %eax
        addl $1, %eax                   # OF=1 SF=1 ZF=0 CF=0
        pushfl
        popl %ebx
        movl $0, %eax
        subl $1, %eax                   # CF=1 SF=1
        pushfl
        popl %ecx
        xorl %eax, %eax                 # ZF=1 PF=1
        pushfl
        popl %edx
        USER_END
        CHECK_MASK %ebx, $(FL_OF|FL_SF|FL_ZF|FL_CF), $(FL_OF|FL_SF), "cpl3: add overflow sets OF SF"
        CHECK_MASK %ecx, $(FL_OF|FL_SF|FL_ZF|FL_CF), $(FL_SF|FL_CF), "cpl3: sub borrow sets CF SF"
        CHECK_MASK %edx, $(FL_OF|FL_SF|FL_ZF|FL_CF|FL_PF), $(FL_ZF|FL_PF), "cpl3: xor sets ZF PF"

        # Back at CPL0: kernel state is intact after all that.
        pushfl
        popl %eax
        CHECK_MASK %eax, $(FL_IF|FL_IOPL), $0, "cpl0: IF/IOPL intact after CPL3 tests"
        ret
