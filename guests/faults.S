# faults.S -- exception delivery paths: double faults, the EXT bit,
# faults raised while switching stacks (#TS), and IRET's checks.
#
# SDM references: Vol. 3A 6.13 "Error code" (EXT, IDT, TI bits; EXT=0 for
# INT n/INT3/INTO, 1 for a fault during delivery of an earlier exception),
# 6.15 "Interrupt 8 - Double Fault Exception (#DF)" (Table 6-4/6-5:
# benign/contributory classes; error code 0; saved CS:EIP undefined),
# "Interrupt 10 - #TS", 6.12.1 (stack switch from the TSS, handler in a
# conforming code segment runs at the current privilege level), Vol. 2A
# "INT n" (#TS(SS selector + EXT) if the new SS RPL != new CPL), "IRET"
# (#GP/#NP/#SS conditions of the protected-mode return).
#
# The #DF handler is the framework's 32-bit interrupt gate (no task gate).
# QEMU 7.2 never sets EXT; those error codes use CHECK_FAULT_ALT.
        .include "rf.inc"

        .set S_CONF, 0x38               # DPL0 conforming code (flat)
        .set S_NPCODE, 0x40             # DPL3 code, not present
        .set S_NPDATA, 0x48             # DPL3 data, not present
        .set V_G3, 0x40                 # DPL3 interrupt gate -> CPL0 stub
        .set L_NP, 0x0c                 # LDT index 1: not-present data

# #TS handler: reached through a gate whose target is a conforming code
# segment, so it runs at CPL3 on the user stack (no stack switch).  It
# records the frame, repairs TSS.SS0 and goes back to CPL0 via USER_END.
ts_handler:
        popl ts_err
        popl ts_eip
        popl ts_cs
        popl ts_eflags
        movl %cs, %eax
        movl %eax, ts_hcs
        movl %esp, ts_hesp
        movl $RF_KDS, rf_tss+8          # SS0 = 0x10 again
        USER_END                        # continues below at CPL0
        jmp ts_back

# IRETF cpl, ss, cs, vec, err, desc: IRET with frame (ss, esp, 0x202, cs,
# rf_done) must fault
        .macro IRETF cpl, ss, cs, vec, err, desc
        TRY 1f
        AT_CPL \cpl
        pushl \ss
        pushl $rf_ustack_top-0x100
        pushl $0x202
        pushl \cs
        pushl $rf_done
2:      iretl
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $\vec, $\err, $2b, "cpl\cpl: \desc"
        .endm

rf_main:
        NOTE "faults: #DF, EXT bit, #TS on a bad TSS.SS0, IRET checks"
        GDT_DESC $S_CONF, $0, $0xfffff, $0x9f, $0xc
        GDT_DESC $S_NPCODE, $0, $0xfffff, $0x7b, $0xc
        GDT_DESC $S_NPDATA, $0, $0xfffff, $0x73, $0xc
        IDT_GATE $V_G3, $0xee

        # ---------------------------------------------------- double faults
        NOTE "contributory + contributory -> #DF(0)"
        IDT_GATE $V_GP, $0x0e           # #GP gate not present
        .irp cpl, 0, 3
        TRY 1f
        AT_CPL \cpl
        movw $0x80, %ax
        movw %ax, %ds                   # #GP(0x80) -> #NP on gate 13 -> #DF
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_DF, $0, $RF_ANY, "cpl\cpl: #GP with a not-present #GP gate -> #DF(0)"
        CHECK_EQ rf_x_count, $1, "cpl\cpl: exactly one exception reached a handler"
        CHECK_EQ rf_x_hss, $RF_KDS, "cpl\cpl: #DF handler runs on SS 0x10"
        .endr
        IDT_GATE $V_GP, $0x8e

        IDT_GATE $V_DE, $0x0e
        .irp cpl, 0, 3
        TRY 1f
        AT_CPL \cpl
        xorl %edx, %edx
        movl $1, %eax
        xorl %ecx, %ecx
        divl %ecx                       # #DE -> #NP on gate 0 -> #DF
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT $V_DF, $0, $RF_ANY, "cpl\cpl: #DE with a not-present #DE gate -> #DF(0)"
        .endr
        IDT_GATE $V_DE, $0x8e

        IDT_GATE $V_NP, $0x0e
        TRY 1f
        int $0x42                       # #NP(0x212) -> #NP on gate 11 -> #DF
        ENDTRY
1:      CHECK_FAULT $V_DF, $0, $RF_ANY, "cpl0: #NP with a not-present #NP gate -> #DF(0)"
        TRY 1f
        movw $S_NPDATA, %ax
        movw %ax, %es                   # #NP(0x48) -> #NP on gate 11 -> #DF
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_DF, $0, $RF_ANY, "cpl0: segment #NP with a not-present #NP gate -> #DF(0)"
        IDT_GATE $V_NP, $0x8e

        # ---------------------------------------------------- benign first
        NOTE "benign + contributory: no #DF; EXT bit"
        IDT_GATE $V_UD, $0x0e
        .irp cpl, 0, 3
        TRY 1f
        AT_CPL \cpl
2:      ud2
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT_ALT $V_NP, $(V_UD*8+3), $(V_UD*8+2), $2b, "cpl\cpl: ud2 with a not-present #UD gate -> #NP(0x33) (EXT=1)"
        .endr
        IDT_GATE $V_UD, $0x8e

        IDT_GATE $V_BR, $0x0e
        TRY 1f
        movl $100, %eax
2:      bound %eax, bounds
        ENDTRY
1:      CHECK_FAULT_ALT $V_NP, $(V_BR*8+3), $(V_BR*8+2), $2b, "cpl0: bound with a not-present #BR gate -> #NP(0x2b) (EXT=1)"
        IDT_GATE $V_BR, $0x8e

        IDT_GATE $V_BP, $0x6e           # DPL3, not present
        IDT_GATE $V_OF, $0x6e
        .irp cpl, 0, 3
        TRY 1f
        AT_CPL \cpl
2:      int3
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT $V_NP, $(V_BP*8+2), $2b, "cpl\cpl: int3 with a not-present gate -> #NP(0x1a) (EXT=0)"
        TRY 1f
        AT_CPL \cpl
        movl $0x7fffffff, %eax
        addl $1, %eax
2:      into
        END_CPL \cpl
        ENDTRY
1:      CHECK_FAULT $V_NP, $(V_OF*8+2), $2b, "cpl\cpl: into with a not-present gate -> #NP(0x22) (EXT=0)"
        .endr
        IDT_GATE $V_BP, $0x8e
        IDT_GATE $V_OF, $0x8e

        # TI bit in a selector error code
        LDT_DESC $L_NP, $0, $0xfffff, $0x73, $0xc
        GDT_DESC $0x50, $rf_ldt, $(RF_LDT_SLOTS*8-1), $0x82, $0
        movl $0x50, %eax
        lldt %ax
        .irp cpl, 0, 3
        TRY 1f
        AT_CPL \cpl
        movw $L_NP|3, %ax
2:      movw %ax, %fs
        END_CPL \cpl
        ENDTRY
1:      call rf_reset_segs
        CHECK_FAULT $V_NP, $(L_NP|4), $2b, "cpl\cpl: not-present LDT selector -> #NP(0x0c) with TI=1"
        .endr
        xorl %eax, %eax
        lldt %ax

        # ---------------------------------------------------- #TS
        NOTE "#TS: TSS.SS0 RPL does not match the new CPL"
        IDT_GATE $V_TS, $0x8e, $ts_handler, $S_CONF
        movl $(RF_KDS|3), rf_tss+8      # SS0 = 0x13
        USER_BEGIN $0x202
        movl %esp, %ebx
2:      int $V_G3                       # stack switch -> #TS(0x10)
        USER_END                        # (not reached)
        jmp ts_back
ts_back:
        movl rf_tss+8, %eax
        movl $RF_KDS, rf_tss+8
        IDT_GATE $V_TS, $0x8e
        CHECK_EQ ts_err, $RF_KDS, "cpl3: INT n with TSS.SS0=0x13 -> #TS(0x10)"
        CHECK_EQ ts_eip, $2b, "cpl3: #TS frame EIP at the INT"
        movzwl ts_cs, %ecx
        CHECK_EQ %ecx, $RF_UCS, "cpl3: #TS frame CS = 0x1b"
        CHECK_EQ ts_hcs, $S_CONF|3, "#TS handler in conforming code runs with CS 0x3b (CPL3)"
        CHECK_EQ ts_hesp, %ebx, "#TS frame (16 bytes, no stack switch) was on the user stack"
        CHECK_EQ %eax, $RF_KDS, "#TS handler repaired TSS.SS0"

        # ---------------------------------------------------- IRET checks
        NOTE "IRET checks"
        # checks on the return CS (both CPLs)
        .irp cpl, 0, 3
        IRETF \cpl, $RF_UDS, $(RF_UCS&~3), V_GP, 0x18, "iret to CS 0x18 (RPL0 != DPL3) -> #GP(0x18)"
        IRETF \cpl, $RF_UDS, $0, V_GP, 0, "iret to a null CS -> #GP(0)"
        IRETF \cpl, $RF_UDS, $0x23, V_GP, 0x20, "iret to a data selector as CS -> #GP(0x20)"
        IRETF \cpl, $RF_UDS, $(S_NPCODE|3), V_NP, S_NPCODE, "iret to a not-present CS -> #NP(0x40)"
        .endr
        IRETF 3, $RF_KDS, $RF_KCS, V_GP, RF_KCS, "iret to CS 0x08 (RPL0 < CPL3) -> #GP(0x08)"
        # checks on the return SS (only a return to an outer level pops SS)
        IRETF 0, $0x20, $RF_UCS, V_GP, 0x20, "iret to CPL3 with SS RPL0 -> #GP(0x20)"
        IRETF 0, $(RF_KDS|3), $RF_UCS, V_GP, RF_KDS, "iret to CPL3 with a DPL0 SS -> #GP(0x10)"
        IRETF 0, $0x1b, $RF_UCS, V_GP, 0x18, "iret to CPL3 with a code SS -> #GP(0x18)"
        # SDM IRET: "IF stack segment not present THEN #SS(SS selector)";
        # QEMU 7.2 raises #NP(SS selector) (tolerated unless "strict").
        TRY 1f
        pushl $(S_NPDATA|3)
        pushl $rf_ustack_top-0x100
        pushl $0x202
        pushl $RF_UCS
        pushl $rf_done
2:      iretl
        ENDTRY
1:      CHECK_FAULT_ALTV $V_SS, $S_NPDATA, $V_NP, $S_NPDATA, $2b, "cpl0: iret to CPL3 with a not-present SS -> #SS(0x48)"
        IRETF 0, $0, $RF_UCS, V_GP, 0, "iret to CPL3 with a null SS -> #GP(0)"
        ret

        .data
        .balign 4
bounds: .long 5, 20
ts_err: .long 0
ts_eip: .long 0
ts_cs:  .long 0
ts_eflags: .long 0
ts_hcs: .long 0
ts_hesp: .long 0
        .text
