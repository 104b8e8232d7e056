# sysenter.S -- SYSENTER/SYSEXIT fast system calls, and SYSCALL/SYSRET
# (which must be #UD here: EFER.SCE is never set).
#
# SDM references: Vol. 3A 5.8.7 "Performing fast calls to system
# procedures with the SYSENTER and SYSEXIT instructions"; Vol. 2B
# "SYSENTER" (#GP(0) if IA32_SYSENTER_CS[15:2] = 0; CS = SYSENTER_CS & FFFCH,
# SS = CS + 8, flat descriptors that are NOT read from the GDT, EFLAGS.IF/
# VM/RF cleared), "SYSEXIT" (#GP(0) if SYSENTER_CS[15:2] = 0 or CPL != 0;
# CS = (SYSENTER_CS + 16) | 3, SS = (SYSENTER_CS + 24) | 3, EIP = EDX,
# ESP = ECX, EFLAGS unchanged), "SYSCALL"/"SYSRET" (#UD if EFER.SCE = 0 or,
# on Intel, outside 64-bit mode).
#
# Everything about SYSENTER is gated on CPUID.1:EDX.SEP[bit 11]; without it
# the SYSENTER checks print "ok ... # SKIP" lines (same count).
        .include "rf.inc"

        .set MSR_CS, 0x174
        .set MSR_ESP, 0x175
        .set MSR_EIP, 0x176
        .set N_SEP_CHECKS, 29

        .macro WRMSR_ msr, val
        movl $\msr, %ecx
        movl \val, %eax
        xorl %edx, %edx
        wrmsr
        .endm

# SYSENTER lands here (CPL0).  Records state, then SYSEXITs to EDX=ESI,
# ECX=EDI as set up by the caller.
se_entry:
        movl %esp, se_esp
        pushfl
        popl se_eflags
        movw %cs, se_cs
        movw %ss, se_ss
        movl %eax, se_eax
        movw %ds, se_ds
        incl se_count
        movl %esi, %edx
        movl %edi, %ecx
        sysexit

rf_main:
        NOTE "sysenter: SYSENTER/SYSEXIT, SYSCALL/SYSRET"
        movl $1, %eax
        cpuid
        testl $(1<<11), %edx
        jnz 1f
        .rept N_SEP_CHECKS
        SKIP "SYSENTER/SYSEXIT (no CPUID.1:EDX.SEP)"
        .endr
        jmp no_sep
1:
        # ------------------------------------------------ SYSENTER_CS = 0
        WRMSR_ MSR_CS, $0
        WRMSR_ MSR_ESP, $se_stack_top
        WRMSR_ MSR_EIP, $se_entry
        TRY 1f
        USER_BEGIN
2:      sysenter
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: sysenter with SYSENTER_CS=0 -> #GP(0)"
        CHECK_EQ se_count, $0, "cpl3: the entry point was not reached"
        TRY 1f
2:      sysenter
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl0: sysenter with SYSENTER_CS=0 -> #GP(0)"
        # SYSENTER_CS = 3: index 0 -> #GP(0) for both instructions.  QEMU 7.2
        # only tests SYSENTER_CS == 0 and would really enter/exit with
        # CS=0/0x13, so these two SDM checks only run with "strict".
        cmpl $0, rf_strict
        jne 5f
        SKIP "cpl3: sysenter with SYSENTER_CS=3 (index 0) -> #GP(0) (QEMU 7.2 deviates; runs with 'strict')"
        SKIP "cpl0: sysexit with SYSENTER_CS=3 -> #GP(0) (QEMU 7.2 deviates; runs with 'strict')"
        jmp 6f
5:      WRMSR_ MSR_CS, $3
        TRY 1f
        USER_BEGIN
2:      sysenter
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: sysenter with SYSENTER_CS=3 (index 0) -> #GP(0)"
        TRY 1f
        movl $1f, %edx
        movl %esp, %ecx
2:      sysexit
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl0: sysexit with SYSENTER_CS=3 -> #GP(0)"
6:      movl $0, se_count

        # ------------------------------------------------ a real round trip
        WRMSR_ MSR_CS, $RF_KCS
        TRY 1f
        USER_BEGIN $0x202
        movl $0xabcdef01, %eax
        movl $3f, %esi
        leal -0x10(%esp), %edi
        movl %edi, %ebp
        sysenter
3:      pushfl
        popl %ebx
        movl %cs, %ecx
        movl %ss, %edx
        movl %esp, %esi
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: sysenter/sysexit round trip"
        CHECK_EQ se_count, $1, "sysenter reached SYSENTER_EIP once"
        CHECK_EQ se_cs, $RF_KCS, "sysenter: CS = SYSENTER_CS = 0x08"
        CHECK_EQ se_ss, $RF_KDS, "sysenter: SS = SYSENTER_CS + 8 = 0x10"
        CHECK_EQ se_esp, $se_stack_top, "sysenter: ESP = SYSENTER_ESP"
        CHECK_MASK se_eflags, $(FL_IF|FL_VM|FL_RF), $0, "sysenter: IF (and VM, RF) cleared"
        CHECK_EQ se_eax, $0xabcdef01, "sysenter: EAX preserved"
        CHECK_EQ se_ds, $RF_UDS, "sysenter: DS not changed"
        CHECK_EQ %ecx, $RF_UCS, "sysexit: CS = (SYSENTER_CS + 16) | 3 = 0x1b"
        CHECK_EQ %edx, $RF_UDS, "sysexit: SS = (SYSENTER_CS + 24) | 3 = 0x23"
        CHECK_EQ %esi, %ebp, "sysexit: ESP = ECX"
        CHECK_MASK %ebx, $FL_IF, $0, "sysexit leaves EFLAGS as is (IF stays 0)"

        # RPL bits of SYSENTER_CS are ignored
        WRMSR_ MSR_CS, $(RF_KCS|3)
        movl $0, se_count
        TRY 1f
        USER_BEGIN
        movl $3f, %esi
        movl %esp, %edi
        sysenter
3:      movl %cs, %ecx
        movl %ss, %edx
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: sysenter with SYSENTER_CS=0x0b"
        CHECK_EQ se_cs, $RF_KCS, "sysenter: CS = SYSENTER_CS & 0xfffc"
        CHECK_EQ se_ss, $RF_KDS, "sysenter: SS = (SYSENTER_CS & 0xfffc) + 8"
        CHECK_EQ %ecx, $RF_UCS, "sysexit with SYSENTER_CS=0x0b: CS = 0x1b"
        CHECK_EQ %edx, $RF_UDS, "sysexit with SYSENTER_CS=0x0b: SS = 0x23"

        # The selectors are not looked up in the GDT: use empty slots
        # 0x30..0x48 (all-zero descriptors).
        WRMSR_ MSR_CS, $0x30
        movl $0, se_count
        TRY 1f
        USER_BEGIN
        movl $3f, %esi
        movl %esp, %edi
        sysenter
3:      movl %cs, %ecx
        movl %ss, %edx
        movl (%esp), %eax               # stack still usable (flat SS)
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: sysenter/sysexit with empty GDT slots 0x30-0x48"
        CHECK_EQ se_count, $1, "sysenter with SYSENTER_CS=0x30 reached the entry"
        CHECK_EQ se_cs, $0x30, "sysenter: CS = 0x30 without a GDT lookup"
        CHECK_EQ se_ss, $0x38, "sysenter: SS = 0x38 without a GDT lookup"
        CHECK_EQ %ecx, $0x43, "sysexit: CS = 0x43 without a GDT lookup"
        CHECK_EQ %edx, $0x4b, "sysexit: SS = 0x4b without a GDT lookup"
        WRMSR_ MSR_CS, $RF_KCS

        # SYSEXIT at CPL3
        TRY 1f
        USER_BEGIN
        movl $3f, %edx
        movl %esp, %ecx
2:      sysexit
3:      USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: sysexit -> #GP(0)"
        WRMSR_ MSR_CS, $0

no_sep:
        # ------------------------------------------------ SYSCALL / SYSRET
        .irp cpl, 0, 3
        TRY 1f
        AT_CPL \cpl
2:      syscall
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl\cpl: syscall with EFER.SCE=0 -> #UD"
        TRY 1f
        AT_CPL \cpl
2:      sysret
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl\cpl: sysret with EFER.SCE=0 -> #UD"
        .endr
        ret

        .data
        .balign 4
se_esp: .long 0
se_eflags: .long 0
se_cs:  .long 0
se_ss:  .long 0
se_eax: .long 0
se_ds:  .long 0
se_count: .long 0
        .bss
        .balign 16
se_stack: .fill 4096, 1, 0
se_stack_top:
        .text
