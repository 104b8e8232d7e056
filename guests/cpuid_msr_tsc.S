# cpuid_msr_tsc.S -- CPUID, RDMSR/WRMSR, RDTSC/RDTSCP, RDPMC, RDPID at CPL0
# and CPL3.  Only model-independent properties are checked; anything
# optional is gated on its CPUID feature flag (else an "ok ... # SKIP").
#
# SDM references: Vol. 2A "CPUID" (leaf 0 vendor/max leaf, leaf 1
# signature and feature flags, leaf 7, leaf 80000001H), Vol. 2B "RDMSR",
# "WRMSR" (#GP(0) if CPL != 0), "RDTSC" (#GP(0) if CR4.TSD=1 and CPL>0),
# "RDTSCP", "RDPMC" (#GP(0) if CPL>0 and CR4.PCE=0), "RDPID"; Vol. 3A
# 2.5 (CR4.TSD, CR4.PCE), Vol. 4 (IA32_SYSENTER_CS/ESP/EIP 174H-176H,
# IA32_TIME_STAMP_COUNTER 10H, IA32_TSC_AUX C0000103H).
        .include "rf.inc"

        .set MSR_TSC, 0x10
        .set MSR_SYSENTER_CS, 0x174
        .set MSR_SYSENTER_ESP, 0x175
        .set MSR_SYSENTER_EIP, 0x176
        .set MSR_TSC_AUX, 0xc0000103

# CF=0 iff EDX:EAX >= ECX:EBX (unsigned 64-bit); clobbers nothing else
ge64:
        pushl %eax
        pushl %edx
        subl %ebx, %eax
        sbbl %ecx, %edx
        popl %edx
        popl %eax
        ret

# EBX:ECX:EDX vendor -> EAX = number of printable ASCII bytes (0x20..0x7e)
count_printable:
        pushl %esi
        pushl %edi
        movl %ebx, vend
        movl %edx, vend+4
        movl %ecx, vend+8
        xorl %eax, %eax
        xorl %esi, %esi
1:      movzbl vend(%esi), %edi
        cmpl $0x20, %edi
        jb 2f
        cmpl $0x7e, %edi
        ja 2f
        incl %eax
2:      incl %esi
        cmpl $12, %esi
        jb 1b
        popl %edi
        popl %esi
        ret

rf_main:
        NOTE "cpuid_msr_tsc: CPUID, MSRs, TSC, PMC"

        # ---------------------------------------------------------- CPUID
        xorl %eax, %eax
        xorl %ecx, %ecx
        cpuid
        movl %eax, max_leaf
        call count_printable
        movl %eax, %esi
        PUTS "# vendor: "
        pushl $vend
        call rf_puts_arg
        PUTS ", max basic leaf "
        PUTHEX max_leaf
        call rf_nl
        movl max_leaf, %eax
        cmpl $1, %eax
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl0: cpuid leaf 0: max basic leaf >= 1"
        CHECK_EQ %esi, $12, "cpl0: cpuid leaf 0: vendor is 12 printable characters"
        movl vend, %eax
        movl %eax, vend0
        movl vend+4, %eax
        movl %eax, vend0+4
        movl vend+8, %eax
        movl %eax, vend0+8

        movl $1, %eax
        xorl %ecx, %ecx
        cpuid
        movl %eax, leaf1_eax
        movl %edx, leaf1_edx
        movl %ecx, leaf1_ecx
        andl $0xf00, %eax
        CHECK_TRUE %eax, "cpl0: cpuid leaf 1: family (EAX[11:8]) is not 0"
        PUTS "# leaf 1: eax="
        PUTHEX leaf1_eax
        PUTS " ecx="
        PUTHEX leaf1_ecx
        PUTS " edx="
        PUTHEX leaf1_edx
        call rf_nl

        # the same at CPL3
        USER_BEGIN
        xorl %eax, %eax
        xorl %ecx, %ecx
        cpuid
        movl %eax, %edi
        movl %ebx, vend
        movl %edx, vend+4
        movl %ecx, vend+8
        movl $1, %eax
        cpuid
        movl %eax, %esi
        movl %edx, %ebp
        USER_END
        CHECK_EQ %edi, max_leaf, "cpl3: cpuid leaf 0 max leaf as at CPL0"
        CHECK_EQ vend, vend0, "cpl3: cpuid vendor dword 0 as at CPL0"
        CHECK_EQ vend+4, vend0+4, "cpl3: cpuid vendor dword 1 as at CPL0"
        CHECK_EQ vend+8, vend0+8, "cpl3: cpuid vendor dword 2 as at CPL0"
        CHECK_EQ %esi, leaf1_eax, "cpl3: cpuid leaf 1 EAX as at CPL0"
        CHECK_EQ %ebp, leaf1_edx, "cpl3: cpuid leaf 1 EDX as at CPL0"

        # extended leaves
        movl $0x80000000, %eax
        cpuid
        movl %eax, max_ext
        xorl %eax, %eax
        cmpl $0x80000001, max_ext
        jb 1f
        cmpl $0x8000ffff, max_ext
        ja 1f
        movl $0x80000001, %eax
        xorl %ecx, %ecx
        cpuid
        movl %edx, %eax
1:      movl %eax, ext1_edx
        xorl %eax, %eax
        cmpl $7, max_leaf
        jb 1f
        movl $7, %eax
        xorl %ecx, %ecx
        cpuid
        movl %ecx, %eax
1:      movl %eax, leaf7_ecx

        # ---------------------------------------------------------- MSRs
        NOTE "MSRs"
        testl $(1<<5), leaf1_edx        # MSR
        jz 8f
        testl $(1<<11), leaf1_edx       # SEP
        jz 7f
        movl $MSR_SYSENTER_CS, %ecx
        movl $0x08, %eax
        xorl %edx, %edx
        wrmsr
        movl $MSR_SYSENTER_ESP, %ecx
        movl $0x12345678, %eax
        wrmsr
        movl $MSR_SYSENTER_EIP, %ecx
        movl $0x87654321, %eax
        wrmsr
        .irp m, MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP
        movl $\m, %ecx
        movl $0xffffffff, %edx
        rdmsr
        movl %eax, %ebx
        movl %edx, %esi
        .ifc \m, MSR_SYSENTER_CS
        CHECK_EQ %ebx, $0x08, "cpl0: IA32_SYSENTER_CS round-trips"
        .endif
        .ifc \m, MSR_SYSENTER_ESP
        CHECK_EQ %ebx, $0x12345678, "cpl0: IA32_SYSENTER_ESP round-trips"
        .endif
        .ifc \m, MSR_SYSENTER_EIP
        CHECK_EQ %ebx, $0x87654321, "cpl0: IA32_SYSENTER_EIP round-trips"
        .endif
        CHECK_EQ %esi, $0, "cpl0: rdmsr \m high half (EDX) = 0 as written"
        .endr
        .irp m, MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP
        movl $\m, %ecx
        xorl %eax, %eax
        xorl %edx, %edx
        wrmsr
        .endr
        jmp 6f
7:      .rept 6
        SKIP "cpl0: SYSENTER MSRs round-trip (no CPUID.1:EDX.SEP)"
        .endr
6:      # (Not checked: RDMSR of IA32_TIME_STAMP_COUNTER (10H) against RDTSC;
        # QEMU 7.2 TCG returns 0 for that MSR.)
8:      .irp insn, rdmsr, wrmsr
        TRY 1f
        USER_BEGIN
        movl $MSR_SYSENTER_CS, %ecx
        xorl %eax, %eax
        xorl %edx, %edx
2:      \insn
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: \insn -> #GP(0)"
        .endr
        TRY 1f
        USER_BEGIN
        movl $MSR_TSC, %ecx
2:      rdmsr
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: rdmsr IA32_TIME_STAMP_COUNTER -> #GP(0)"

        # ---------------------------------------------------------- TSC
        NOTE "time stamp counter"
        testl $(1<<4), leaf1_edx
        jnz 1f
        .rept 12
        SKIP "rdtsc tests (no CPUID.1:EDX.TSC)"
        .endr
        jmp 9f
1:      rdtsc
        movl %eax, %ebx
        movl %edx, %ecx
        rdtsc
        call ge64
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl0: rdtsc is monotonic"
        TRY 1f
        USER_BEGIN
        rdtsc
        movl %eax, %ebx
        movl %edx, %ecx
        rdtsc
        movl %eax, %esi
        movl %edx, %edi
        rdtsc
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: rdtsc with CR4.TSD=0"
        movl %eax, t2                   # third
        movl %edx, t2+4
        movl %esi, %eax                 # second >= first
        movl %edi, %edx
        call ge64
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl3: rdtsc is monotonic (2nd >= 1st)"
        movl %esi, %ebx                 # third >= second
        movl %edi, %ecx
        movl t2, %eax
        movl t2+4, %edx
        call ge64
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl3: rdtsc is monotonic (3rd >= 2nd)"
        movl t2, %ebx                   # CPL0 afterwards >= third
        movl t2+4, %ecx
        rdtsc
        call ge64
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl0: rdtsc after CPL3 >= the CPL3 values"

        movl %cr4, %esi
        movl %esi, %eax
        orl $4, %eax                    # TSD
        movl %eax, %cr4
        TRY 1f
        USER_BEGIN
2:      rdtsc
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: rdtsc with CR4.TSD=1 -> #GP(0)"
        TRY 1f
        rdtsc
        ENDTRY
1:      CHECK_NOFAULT "cpl0: rdtsc with CR4.TSD=1 works"
        testl $(1<<27), ext1_edx
        jz 3f
        TRY 1f
        USER_BEGIN
2:      rdtscp
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: rdtscp with CR4.TSD=1 -> #GP(0)"
        jmp 4f
3:      SKIP "cpl3: rdtscp with CR4.TSD=1 -> #GP(0) (no RDTSCP)"
4:      movl %esi, %cr4

        # RDTSCP
        testl $(1<<27), ext1_edx
        jz 3f
        movl $MSR_TSC_AUX, %ecx
        movl $0x5a5, %eax
        xorl %edx, %edx
        wrmsr
        rdtscp
        movl %eax, t0
        movl %edx, t0+4
        movl %ecx, %esi
        rdtscp
        movl t0, %ebx
        movl t0+4, %ecx
        call ge64
        setae %al
        movzbl %al, %eax
        CHECK_TRUE %eax, "cpl0: rdtscp is monotonic"
        CHECK_EQ %esi, $0x5a5, "cpl0: rdtscp ECX = IA32_TSC_AUX"
        TRY 1f
        USER_BEGIN
        rdtscp
        movl %ecx, %esi
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: rdtscp with CR4.TSD=0"
        CHECK_EQ %esi, $0x5a5, "cpl3: rdtscp ECX = IA32_TSC_AUX"
        jmp 9f
3:      SKIP "cpl0: rdtscp is monotonic (no CPUID.80000001H:EDX[27])"
        SKIP "cpl0: rdtscp ECX = IA32_TSC_AUX (no RDTSCP)"
        SKIP "cpl3: rdtscp with CR4.TSD=0 (no RDTSCP)"
        SKIP "cpl3: rdtscp ECX = IA32_TSC_AUX (no RDTSCP)"
9:
        # ---------------------------------------------------------- RDPMC
        NOTE "RDPMC / RDPID"
        movl %cr4, %eax
        andl $~0x100, %eax              # PCE=0
        movl %eax, %cr4
        TRY 1f
        USER_BEGIN
        xorl %ecx, %ecx
2:      rdpmc
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: rdpmc with CR4.PCE=0 -> #GP(0)"

        testl $(1<<22), leaf7_ecx
        jz 3f
        movl $MSR_TSC_AUX, %ecx
        movl $0x77, %eax
        xorl %edx, %edx
        wrmsr
        xorl %eax, %eax
        rdpid %eax
        CHECK_EQ %eax, $0x77, "cpl0: rdpid = IA32_TSC_AUX"
        TRY 1f
        USER_BEGIN
        xorl %eax, %eax
        rdpid %eax
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: rdpid works"
        CHECK_EQ %eax, $0x77, "cpl3: rdpid = IA32_TSC_AUX"
        jmp 4f
3:      SKIP "cpl0: rdpid = IA32_TSC_AUX (no CPUID.7.0:ECX[22])"
        SKIP "cpl3: rdpid works (no RDPID)"
        SKIP "cpl3: rdpid = IA32_TSC_AUX (no RDPID)"
4:      ret

        .data
        .balign 4
vend:   .fill 16, 1, 0
vend0:  .fill 16, 1, 0
max_leaf: .long 0
max_ext: .long 0
leaf1_eax: .long 0
leaf1_ecx: .long 0
leaf1_edx: .long 0
ext1_edx: .long 0
leaf7_ecx: .long 0
t0:     .long 0, 0
t1:     .long 0, 0
t2:     .long 0, 0
        .text
