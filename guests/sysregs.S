# sysregs.S -- system registers and system instructions.
#
# SDM references: Vol. 3A 2.4 "Memory-management registers" (GDTR, IDTR,
# LDTR, TR), 2.5 "Control registers", 2.8 "System instruction summary",
# 5.9 "Privileged instructions", 5.10.1-5.10.3 "Pointer validation"
# (LAR/LSL/VERR/VERW), ch. 17 "Debug registers" (DR6/DR7 layout, DR4/DR5
# aliasing and CR4.DE); Vol. 2A/2B entries for SGDT, SIDT, SLDT, STR, SMSW,
# LGDT/LIDT, LLDT, LTR, LMSW, CLTS, MOV CRn, MOV DRn, INVD, WBINVD, INVLPG,
# HLT, LAR, LSL, VERR/VERW.
#
# UMIP is off, so the store instructions (SGDT/SIDT/SLDT/STR/SMSW) work at
# CPL3 and must return the GUEST's values; everything that loads system
# state is privileged (#GP(0) at CPL3).
        .include "rf.inc"

        .set BUF, rf_scratch
        .set S_LDT, 0x30                # LDT descriptor -> ldt_tab
        .set S_GATE, 0x38               # call gate, DPL3
        .set S_SMALL, 0x40              # DPL0 data, limit 0xfff (byte)
        .set S_BIG, 0x48                # DPL3 data, raw limit 0x7ff, G=1
        .set S_CONF, 0x50               # DPL0 conforming readable code
        .set S_XO, 0x58                 # DPL3 execute-only code
        .set S_IGATE, 0x60              # interrupt-gate type in the GDT (invalid for LAR)
        .set S_NP, 0x68                 # not-present DPL3 data
        .set L_DATA, 0x0c               # LDT index 1: DPL3 data base BUF

setup:
        GDT_DESC $S_LDT, $rf_ldt, $(RF_LDT_SLOTS*8-1), $0x82, $0x0
        GDT_GATE $S_GATE, $RF_KCS, $0x1234, $0xec, $0
        GDT_DESC $S_SMALL, $BUF, $0xfff, $0x93, $0x4
        GDT_DESC $S_BIG, $0, $0x7ff, $0xf3, $0xc
        GDT_DESC $S_CONF, $0, $0xfffff, $0x9f, $0xc
        GDT_DESC $S_XO, $0, $0xfffff, $0xf9, $0xc
        GDT_GATE $S_IGATE, $RF_KCS, $0x1234, $0xee, $0
        GDT_DESC $S_NP, $0, $0xfffff, $0x73, $0xc
        LDT_DESC $L_DATA, $BUF, $0xfff, $0xf3, $0x4
        movl $0x600df00d, BUF+0x10
        movl $1, %eax
        cpuid
        movl %edx, cpuid1_edx
        ret

# ------------------------------------------------------------------------
        .macro STORES cpl
        movl $0, dt_gdt
        movw $0, dt_gdt+4
        movl $0, dt_idt
        movw $0, dt_idt+4
        movl %cr0, %eax
        movl %eax, cr0_val
        AT_CPL \cpl
        sgdt dt_gdt
        sidt dt_idt
        movl $0xffffffff, %eax
        sldt %eax
        movl $0xffffffff, %ebx
        str %ebx
        movl $0xffffffff, %ecx
        smsw %ecx
        movw $0xffff, %dx
        smsw %dx
        movw $0xffff, smsw_mem
        smsw smsw_mem
        END_CPL \cpl
        movzwl dt_gdt, %esi
        CHECK_EQ %esi, $(RF_GDT_SLOTS*8-1), "cpl\cpl: sgdt stores the guest GDT limit"
        CHECK_EQ dt_gdt+2, $rf_gdt, "cpl\cpl: sgdt stores the guest GDT base"
        movzwl dt_idt, %esi
        CHECK_EQ %esi, $0x7ff, "cpl\cpl: sidt stores the guest IDT limit"
        CHECK_EQ dt_idt+2, $rf_idt, "cpl\cpl: sidt stores the guest IDT base"
        CHECK_EQ %eax, $0, "cpl\cpl: sldt r32 = 0 (null LDTR, upper bits cleared)"
        CHECK_EQ %ebx, $RF_TSS_SEL, "cpl\cpl: str r32 = 0x28"
        movl cr0_val, %esi
        andl $0xffff, %esi
        CHECK_MASK %ecx, $0xffff, %esi, "cpl\cpl: smsw r32 low half = CR0[15:0]"
        movzwl %dx, %edx
        CHECK_EQ %edx, %esi, "cpl\cpl: smsw r16 = CR0[15:0]"
        movzwl smsw_mem, %edx
        CHECK_EQ %edx, %esi, "cpl\cpl: smsw m16 = CR0[15:0]"
        .endm

        .macro PRIV_GP insn, desc
        TRY 1f
        USER_BEGIN
        movl $RF_TSS_SEL, %eax
        movl $rf_gdtr, %ebx
2:      \insn
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl3: \desc -> #GP(0)"
        .endm

# LAR/LSL: ZF and value (value RF_NONE = destination must stay unchanged)
        .macro LARLSL cpl, insn, sel, zf, val, desc
        AT_CPL \cpl
        movl $0xdeadbeef, %eax
        movl $\sel, %ecx
        \insn %cx, %eax
        setz %bl
        END_CPL \cpl
        movzbl %bl, %ebx
        CHECK_EQ %ebx, $\zf, "cpl\cpl: \insn \sel sets ZF=\zf (\desc)"
        .if \zf
        .ifc \insn, lar
        # bits 19:16 of the LAR result are undefined (SDM: mask 00FxFF00H)
        CHECK_MASK %eax, $0xfff0ffff, $\val, "cpl\cpl: \insn \sel value"
        .else
        CHECK_EQ %eax, $\val, "cpl\cpl: \insn \sel value"
        .endif
        .else
        CHECK_EQ %eax, $0xdeadbeef, "cpl\cpl: \insn \sel leaves the destination"
        .endif
        .endm

        .macro VERX cpl, insn, sel, zf, desc
        AT_CPL \cpl
        movl $\sel, %ecx
        \insn %cx
        setz %bl
        END_CPL \cpl
        movzbl %bl, %ebx
        CHECK_EQ %ebx, $\zf, "cpl\cpl: \insn \sel sets ZF=\zf (\desc)"
        .endm

# CR4BIT crbit, cpuidbit, name: round-trip a CR4 bit if CPUID.1:EDX says so
        .macro CR4BIT crbit, idbit, name
        testl $(1<<\idbit), cpuid1_edx
        jz 3f
        movl %esi, %eax
        orl $(1<<\crbit), %eax
        movl %eax, %cr4
        movl %cr4, %ebx
        movl %esi, %eax
        andl $~(1<<\crbit), %eax
        movl %eax, %cr4
        movl %cr4, %ecx
        movl %esi, %cr4
        CHECK_MASK %ebx, $(1<<\crbit), $(1<<\crbit), "cpl0: CR4.\name set"
        CHECK_MASK %ecx, $(1<<\crbit), $0, "cpl0: CR4.\name cleared"
        jmp 4f
3:      SKIP "cpl0: CR4.\name set (not supported)"
        SKIP "cpl0: CR4.\name cleared (not supported)"
4:
        .endm

rf_main:
        NOTE "sysregs: descriptor-table registers, CRs, DRs, privileged instructions, LAR/LSL/VERR/VERW"
        call setup

        NOTE "store instructions return guest values"
        STORES 0
        STORES 3

        NOTE "loads at CPL0"
        movw $0x3ff, dt_tmp
        movl $rf_idt, dt_tmp+2
        lidt dt_tmp
        sidt dt_idt
        lidt rf_idtr
        movzwl dt_idt, %eax
        CHECK_EQ %eax, $0x3ff, "cpl0: lidt loads the limit (read back by sidt)"
        movw $0x3f, dt_tmp
        movl $rf_gdt, dt_tmp+2
        lgdt dt_tmp
        sgdt dt_gdt
        lgdt rf_gdtr
        movzwl dt_gdt, %eax
        CHECK_EQ %eax, $0x3f, "cpl0: lgdt loads the limit (read back by sgdt)"

        movl $S_LDT, %eax
        lldt %ax
        sldt %ebx
        CHECK_EQ %ebx, $S_LDT, "cpl0: lldt 0x30, sldt reads 0x30"
        movw $L_DATA|3, %ax
        movw %ax, %fs
        movl %fs:0x10, %ecx
        movl %fs, %edx
        movw $RF_KDS, %ax
        movw %ax, %fs
        CHECK_EQ %ecx, $0x600df00d, "cpl0: data segment from the LDT (sel 0x0f) reads through its base"
        CHECK_EQ %edx, $L_DATA|3, "cpl0: FS reads back the LDT selector 0x0f"
        TRY 1f
        USER_BEGIN
        movw $L_DATA|3, %ax
        movw %ax, %gs
        movl %gs:0x10, %ecx
        sldt %ebx
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: loading an LDT selector"
        CHECK_EQ %ecx, $0x600df00d, "cpl3: data segment from the LDT reads through its base"
        CHECK_EQ %ebx, $S_LDT, "cpl3: sldt reads 0x30"
        TRY 1f
        movw $0x84|3, %ax
2:      movw %ax, %fs
        ENDTRY
1:      call resetfs
        CHECK_FAULT $V_GP, $0x84, $2b, "cpl0: selector beyond the LDT limit -> #GP(0x84)"
        TRY 1f
        movl $0x10, %eax
2:      lldt %ax
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x10, $2b, "cpl0: lldt of a data descriptor -> #GP(0x10)"
        xorl %eax, %eax
        lldt %ax
        sldt %ebx
        CHECK_EQ %ebx, $0, "cpl0: lldt 0 makes LDTR null"

        movzbl rf_gdt+RF_TSS_SEL+5, %eax
        CHECK_EQ %eax, $0x8b, "cpl0: ltr marked the TSS descriptor busy"
        TRY 1f
        movl $RF_TSS_SEL, %eax
2:      ltr %ax
        ENDTRY
1:      CHECK_FAULT $V_GP, $RF_TSS_SEL, $2b, "cpl0: ltr of a busy TSS -> #GP(0x28)"
        TRY 1f
        movl $0x10, %eax
2:      ltr %ax
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x10, $2b, "cpl0: ltr of a data descriptor -> #GP(0x10)"
        TRY 1f
        xorl %eax, %eax
2:      ltr %ax
        ENDTRY
        # SDM LTR: "IF SRC is a NULL selector THEN #GP(0)".  QEMU 7.2 loads
        # a null TR instead (TR is reloaded right below either way).
1:      CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl0: ltr of the null selector -> #GP(0)"
        CLEAR_TSS_BUSY
        TRY 1f
        movl $RF_TSS_SEL, %eax
        ltr %ax
        str %ebx
        ENDTRY
1:      CHECK_NOFAULT "cpl0: ltr of an available TSS"
        CHECK_EQ %ebx, $RF_TSS_SEL, "cpl0: str after ltr"
        movzbl rf_gdt+RF_TSS_SEL+5, %eax
        CHECK_EQ %eax, $0x8b, "cpl0: ltr set the busy bit again"

        # LMSW / CLTS / CR0.TS
        movl %cr0, %esi
        lmsw %si
        movl %esi, %eax
        orl $8, %eax
        lmsw %ax
        movl %cr0, %ebx
        clts
        movl %cr0, %ecx
        movl %esi, %eax
        andl $~1, %eax
        lmsw %ax                        # cannot clear PE
        movl %cr0, %edx
        movl %esi, %cr0
        CHECK_MASK %ebx, $8, $8, "cpl0: lmsw sets CR0.TS"
        CHECK_MASK %ecx, $8, $0, "cpl0: clts clears CR0.TS"
        CHECK_MASK %edx, $1, $1, "cpl0: lmsw cannot clear CR0.PE"
        movl %esi, %eax
        orl $8, %eax
        movl %eax, %cr0
        movl %cr0, %ebx
        clts
        movl %cr0, %ecx
        CHECK_MASK %ebx, $8, $8, "cpl0: mov to CR0 sets TS"
        CHECK_EQ %ecx, %esi, "cpl0: clts restores CR0"
        movl %esi, %eax
        xorl $0x40000, %eax             # AM
        movl %eax, %cr0
        movl %cr0, %ebx
        movl %esi, %cr0
        movl %esi, %eax
        xorl $0x40000, %eax
        CHECK_EQ %ebx, %eax, "cpl0: CR0.AM round-trips"
        movl %esi, %eax
        orl $0x20000000, %eax           # NW=1 with CD=0 is invalid
        andl $~0x40000000, %eax
        TRY 1f
2:      movl %eax, %cr0
        ENDTRY
1:      movl %esi, %cr0
        CHECK_FAULT_TOL $V_GP, $0, $2b, "cpl0: mov to CR0 with NW=1 CD=0 -> #GP(0)"

        # CR2, CR3
        .irp v, 0x12345000, 0xfffff000, 0x00001000, 0
        movl $\v, %eax
        movl %eax, %cr2
        movl %cr2, %ebx
        CHECK_EQ %ebx, $\v, "cpl0: CR2 round-trips \v"
        .endr
        movl %cr3, %esi
        .irp v, 0x00123000, 0x0fedc000, 0x00001000
        movl $\v, %eax
        movl %eax, %cr3
        movl %cr3, %ebx
        CHECK_EQ %ebx, $\v, "cpl0: CR3 round-trips \v (paging off)"
        .endr
        movl %esi, %cr3

        # CR4: only bits whose CPUID feature flag is set
        movl %cr4, %esi
        .irp pair, "3,2,DE", "2,4,TSD", "4,3,PSE", "7,13,PGE", "6,7,MCE", "9,24,OSFXSR"
        CR4BIT \pair
        .endr
        movl %cr4, %eax
        CHECK_EQ %eax, %esi, "cpl0: CR4 restored"
        # QEMU 7.2 TCG does not raise #GP here: it takes a bogus SVM #VMEXIT
        # and spins forever.  So this SDM check only runs with "strict".
        cmpl $0, rf_strict
        jne 5f
        SKIP "cpl0: setting reserved CR4 bit 15 -> #GP(0) (hangs QEMU 7.2; runs with 'strict')"
        jmp 6f
5:      movl %esi, %eax
        orl $0x8000, %eax               # bit 15 is reserved
        TRY 1f
2:      movl %eax, %cr4
        ENDTRY
1:      movl %esi, %cr4
        CHECK_FAULT $V_GP, $0, $2b, "cpl0: setting reserved CR4 bit 15 -> #GP(0)"
6:
        TRY 1f
2:      .byte 0x0f, 0x20, 0xc8          # mov %cr1, %eax
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl0: mov from CR1 -> #UD"
        TRY 1f
2:      .byte 0x0f, 0x22, 0xe8          # mov %eax, %cr5
        ENDTRY
1:      CHECK_FAULT $V_UD, $0, $2b, "cpl0: mov to CR5 -> #UD"

        # debug registers
        .irp r, 0, 1, 2, 3
        movl $(0x11110000+\r*0x1001), %eax
        movl %eax, %db\r
        movl $0, %ebx
        movl %db\r, %ebx
        CHECK_EQ %ebx, $(0x11110000+\r*0x1001), "cpl0: DR\r round-trips"
        xorl %eax, %eax
        movl %eax, %db\r
        .endr
        movl %db6, %esi
        movl $0x0000000f, %eax
        movl %eax, %db6
        movl %db6, %ebx
        xorl %eax, %eax
        movl %eax, %db6
        movl %db6, %ecx
        movl %esi, %db6
        CHECK_MASK %ebx, $0xf, $0xf, "cpl0: DR6 B0-B3 can be set"
        CHECK_MASK %ecx, $0xf, $0, "cpl0: DR6 B0-B3 can be cleared"
        CHECK_MASK %ecx, $0x7f0, $0x7f0, "cpl0: DR6 bits 4-10 read as 1"
        movl %db7, %esi
        movl $0x00550400, %eax          # RW/LEN fields only, no enables
        movl %eax, %db7
        movl %db7, %ebx
        movl %esi, %db7
        CHECK_EQ %ebx, $0x00550400, "cpl0: DR7 round-trips (no breakpoints enabled)"
        CHECK_MASK %esi, $0x400, $0x400, "cpl0: DR7 bit 10 reads as 1"
        testl $4, cpuid1_edx            # DE
        jz 3f
        movl %cr4, %esi
        movl %esi, %eax
        orl $8, %eax
        movl %eax, %cr4
        TRY 1f
2:      movl %db4, %eax
        ENDTRY
1:      movl %esi, %cr4
        CHECK_FAULT $V_UD, $0, $2b, "cpl0: mov from DR4 with CR4.DE=1 -> #UD"
        jmp 4f
3:      SKIP "cpl0: mov from DR4 with CR4.DE=1 -> #UD (no CPUID.DE)"
4:      TRY 1f
        movl %db6, %ebx
        movl %db4, %eax
        movl %db7, %edx
        movl %db5, %ecx
        ENDTRY
1:      CHECK_NOFAULT "cpl0: DR4/DR5 alias DR6/DR7 with CR4.DE=0"
        CHECK_EQ %eax, %ebx, "cpl0: DR4 reads DR6"
        CHECK_EQ %ecx, %edx, "cpl0: DR5 reads DR7"

        # cache/TLB maintenance
        TRY 1f
        wbinvd
        invd
        invlpg BUF
        invlpg 0xfffff000
        ENDTRY
1:      CHECK_NOFAULT "cpl0: wbinvd, invd, invlpg"

        NOTE "privileged instructions at CPL3"
        PRIV_GP "lgdt (%ebx)", "lgdt"
        PRIV_GP "lidt (%ebx)", "lidt"
        PRIV_GP "lldt %ax", "lldt"
        PRIV_GP "ltr %ax", "ltr"
        PRIV_GP "lmsw %ax", "lmsw"
        PRIV_GP "clts", "clts"
        PRIV_GP "movl %cr0, %eax", "mov from CR0"
        PRIV_GP "movl %eax, %cr0", "mov to CR0"
        PRIV_GP "movl %cr2, %eax", "mov from CR2"
        PRIV_GP "movl %eax, %cr2", "mov to CR2"
        PRIV_GP "movl %cr3, %eax", "mov from CR3"
        PRIV_GP "movl %eax, %cr3", "mov to CR3"
        PRIV_GP "movl %cr4, %eax", "mov from CR4"
        PRIV_GP "movl %eax, %cr4", "mov to CR4"
        PRIV_GP "movl %db0, %eax", "mov from DR0"
        PRIV_GP "movl %eax, %db3", "mov to DR3"
        PRIV_GP "movl %db6, %eax", "mov from DR6"
        PRIV_GP "movl %eax, %db7", "mov to DR7"
        PRIV_GP "invd", "invd"
        PRIV_GP "wbinvd", "wbinvd"
        PRIV_GP "invlpg (%ebx)", "invlpg"
        PRIV_GP "hlt", "hlt"

        NOTE "LAR/LSL/VERR/VERW"
        LARLSL 0, lar, 0x08, 1, 0x00c09b00, "ring-0 code"
        LARLSL 0, lsl, 0x08, 1, 0xffffffff, "flat, G=1"
        LARLSL 0, lar, 0x10, 1, 0x00c09300, "ring-0 data"
        LARLSL 0, lar, 0x13, 0, 0, "RPL3 > DPL0"
        LARLSL 0, lar, 0x28, 1, 0x00008b00, "busy TSS"
        LARLSL 0, lsl, 0x28, 1, RF_TSS_LIMIT, "TSS limit"
        LARLSL 0, lar, 0x30, 1, 0x00008200, "LDT"
        LARLSL 0, lar, 0x38, 1, 0x0000ec00, "call gate"
        LARLSL 0, lsl, 0x38, 0, 0, "call gate has no limit"
        LARLSL 0, lar, 0x60, 0, 0, "interrupt-gate type"
        LARLSL 0, lsl, 0x40, 1, 0xfff, "byte-granular limit"
        LARLSL 0, lsl, 0x48, 1, 0x7fffff, "4 KiB-granular limit"
        LARLSL 0, lar, 0x68, 1, 0x00c07300, "not-present data (LAR does not check P)"
        LARLSL 0, lar, 0x00, 0, 0, "null"
        LARLSL 0, lsl, 0x80, 0, 0, "beyond the GDT limit"
        LARLSL 3, lar, 0x1b, 1, 0x00c0fb00, "ring-3 code"
        LARLSL 3, lar, 0x23, 1, 0x00c0f300, "ring-3 data"
        LARLSL 3, lsl, 0x23, 1, 0xffffffff, "ring-3 data"
        LARLSL 3, lar, 0x08, 0, 0, "DPL0 code not visible at CPL3"
        LARLSL 3, lsl, 0x13, 0, 0, "DPL0 data not visible at CPL3"
        LARLSL 3, lar, 0x2b, 0, 0, "DPL0 TSS not visible at CPL3"
        LARLSL 3, lar, 0x3b, 1, 0x0000ec00, "DPL3 call gate"
        LARLSL 3, lar, 0x53, 1, 0x00c09f00, "conforming code skips the DPL check"
        LARLSL 3, lsl, 0x80, 0, 0, "beyond the GDT limit"
        VERX 0, verr, 0x10, 1, "ring-0 data"
        VERX 0, verw, 0x10, 1, "ring-0 data"
        VERX 0, verr, 0x08, 1, "readable code"
        VERX 0, verw, 0x08, 0, "code is never writable"
        VERX 0, verr, 0x58, 0, "execute-only code"
        VERX 0, verr, 0x28, 0, "TSS"
        VERX 0, verr, 0x00, 0, "null"
        VERX 0, verr, 0x13, 0, "RPL3 > DPL0"
        VERX 3, verr, 0x23, 1, "ring-3 data"
        VERX 3, verw, 0x23, 1, "ring-3 data"
        VERX 3, verr, 0x13, 0, "DPL0 data"
        VERX 3, verw, 0x10, 0, "DPL0 data"
        VERX 3, verr, 0x1b, 1, "readable ring-3 code"
        VERX 3, verw, 0x1b, 0, "code"
        VERX 3, verr, 0x53, 1, "readable conforming code"
        VERX 3, verr, 0x80, 0, "beyond the GDT limit"
        ret

resetfs:
        pushl %eax
        movw $RF_KDS, %ax
        movw %ax, %fs
        popl %eax
        ret

        .data
        .balign 4
cpuid1_edx: .long 0
cr0_val: .long 0
smsw_mem: .long 0
dt_gdt: .fill 8, 1, 0
dt_idt: .fill 8, 1, 0
dt_tmp: .fill 8, 1, 0
        .text
