# farxfer.S -- far control transfers: far JMP/CALL/RET to other code
# segments, conforming code, call gates (same privilege and CPL3 -> CPL0
# with parameter copy), far RET to an outer level, and their faults.
#
# SDM references: Vol. 3A 5.8 "Privilege level checking when transferring
# program control between code segments" (5.8.1 direct calls/jumps,
# 5.8.2-5.8.4 call gates, 5.8.5 stack switching incl. parameter copy and
# the inner-stack frame, 5.8.6 returning from a called procedure);
# Vol. 2A "CALL", "JMP", Vol. 2B "RET" (far forms, #GP/#NP conditions).
        .include "rf.inc"

        .set S_K2, 0x30                 # alias of the ring-0 code segment
        .set S_U2, 0x38                 # alias of the ring-3 code segment
        .set G_UP, 0x40                 # call gate DPL3 -> 0x08:gate_target, 2 params
        .set G_K, 0x48                  # call gate DPL0 -> 0x08:gate_same
        .set S_NP, 0x50                 # not-present code, DPL0
        .set S_NP3, 0x58                # not-present code, DPL3
        .set S_CONF, 0x60               # DPL0 conforming code (flat)
        .set S_LIM, 0x68                # DPL0 code, limit 0xffff
        .set G_NP, 0x70                 # not-present call gate, DPL3

setup:
        GDT_DESC $S_K2, $0, $0xfffff, $0x9b, $0xc
        GDT_DESC $S_U2, $0, $0xfffff, $0xfb, $0xc
        GDT_GATE $G_UP, $RF_KCS, $gate_target, $0xec, $2
        GDT_GATE $G_K, $RF_KCS, $gate_same, $0x8c, $0
        GDT_DESC $S_NP, $0, $0xfffff, $0x1b, $0xc
        GDT_DESC $S_NP3, $0, $0xfffff, $0x7b, $0xc
        GDT_DESC $S_CONF, $0, $0xfffff, $0x9f, $0xc
        GDT_DESC $S_LIM, $0, $0xffff, $0x9b, $0x4
        GDT_GATE $G_NP, $RF_KCS, $gate_target, $0x6c, $2
        ret

# Entered from CPL3 through G_UP (2 parameters), runs at CPL0.
gate_target:
        movl %esp, g_esp
        movl (%esp), %eax
        movl %eax, g_eip
        movzwl 4(%esp), %eax
        movl %eax, g_cs
        movl 8(%esp), %eax
        movl %eax, g_p0
        movl 12(%esp), %eax
        movl %eax, g_p1
        movl 16(%esp), %eax
        movl %eax, g_oesp
        movzwl 20(%esp), %eax
        movl %eax, g_oss
        movl %ss, %eax
        movl %eax, g_ss
        movl %cs, %eax
        movl %eax, g_hcs
        movw $RF_KDS, %ax               # DPL0 data: must be nulled by the return
        movw %ax, %fs
        lret $8

# Entered at CPL0 through G_K (same privilege).
gate_same:
        movl %esp, g_esp
        movl (%esp), %eax
        movl %eax, g_eip
        movzwl 4(%esp), %eax
        movl %eax, g_cs
        movl %cs, %eax
        movl %eax, g_hcs
        lret

# far-callable helper: reports CS in EAX
far_func:
        movl %cs, %eax
        lret

far_func8:
        movl %cs, %eax
        lret $8

rf_main:
        NOTE "farxfer: far JMP/CALL/RET, conforming code, call gates"
        call setup

# ---------------------------------------------------------------- CPL0
        ljmp $S_K2, $1f
1:      movl %cs, %ebx
        ljmp $RF_KCS, $1f
1:      movl %cs, %ecx
        CHECK_EQ %ebx, $S_K2, "cpl0: ljmp to the alias code segment: CS reads 0x30"
        CHECK_EQ %ecx, $RF_KCS, "cpl0: ljmp back: CS reads 0x08"

        movl %esp, %ebp
        lcall $S_K2, $far_func
1:      movl %esp, %ebx
        CHECK_EQ %eax, $S_K2, "cpl0: lcall 0x30: callee sees CS=0x30"
        movl %cs, %eax
        CHECK_EQ %eax, $RF_KCS, "cpl0: lret returns to CS=0x08"
        CHECK_EQ %ebx, %ebp, "cpl0: lcall/lret balance the stack"

        # the frame pushed by a far call: EIP then CS (low 16 bits)
        lcall $S_K2, $1f
2:      jmp 3f
1:      movl (%esp), %ebx
        movzwl 4(%esp), %ecx
        lret
3:      CHECK_EQ %ebx, $2b, "cpl0: far call pushes the return EIP"
        CHECK_EQ %ecx, $RF_KCS, "cpl0: far call pushes the caller CS"

        movl %esp, %ebp
        pushl $1
        pushl $2
        lcall $S_K2, $far_func8
        movl %esp, %ebx
        CHECK_EQ %ebx, %ebp, "cpl0: lret $8 pops 8 bytes of parameters"

        movl $far_func, fptr
        movw $S_K2, fptr+4
        lcall *fptr
        CHECK_EQ %eax, $S_K2, "cpl0: indirect lcall m16:32"
        movl $1f, fptr
        ljmp *fptr
        ud2
1:      movl %cs, %eax
        ljmp $RF_KCS, $2f
2:      CHECK_EQ %eax, $S_K2, "cpl0: indirect ljmp m16:32"

        # call gate at the same privilege level: no stack switch
        movl %esp, %ebp
        lcall $G_K, $0x12345678         # offset is ignored
1:      movl %ebp, %eax
        subl $8, %eax
        CHECK_EQ g_esp, %eax, "cpl0: call gate, same privilege: only CS:EIP pushed on the same stack"
        CHECK_EQ g_eip, $1b, "cpl0: call gate frame EIP"
        CHECK_EQ g_cs, $RF_KCS, "cpl0: call gate frame CS"
        CHECK_EQ g_hcs, $RF_KCS, "cpl0: call gate target CS = gate selector field"

        # conforming code segment of the same DPL
        lcall $S_CONF, $far_func
        CHECK_EQ %eax, $S_CONF, "cpl0: lcall to DPL0 conforming code: CS=0x60"

        # faults
        TRY 1f
2:      ljmp $RF_UCS, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x18, $2b, "cpl0: ljmp to non-conforming DPL3 code -> #GP(0x18)"
        TRY 1f
2:      lcall $0x18, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x18, $2b, "cpl0: lcall to non-conforming DPL3 code -> #GP(0x18)"
        TRY 1f
2:      ljmp $S_K2|3, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_GP, $S_K2, $2b, "cpl0: ljmp to DPL0 code with RPL3 -> #GP(0x30)"
        TRY 1f
2:      lcall $S_NP, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_NP, $S_NP, $2b, "cpl0: lcall to not-present code -> #NP(0x50)"
        TRY 1f
2:      ljmp $S_NP, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_NP, $S_NP, $2b, "cpl0: ljmp to not-present code -> #NP(0x50)"
        TRY 1f
2:      ljmp $0x10, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x10, $2b, "cpl0: ljmp to a data segment -> #GP(0x10)"
        TRY 1f
2:      ljmp $0, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl0: ljmp to the null selector -> #GP(0)"
        TRY 1f
2:      ljmp $0x80, $rf_done
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x80, $2b, "cpl0: ljmp beyond the GDT limit -> #GP(0x80)"
        TRY 1f
2:      ljmp $S_LIM, $far_func
        ENDTRY
1:      CHECK_FAULT $V_GP, $0, $2b, "cpl0: ljmp to an offset beyond the CS limit -> #GP(0)"
        TRY 1f
2:      lcall $S_LIM, $far_func
        ENDTRY
        # SDM (CALL, far, non-conforming): "IF tempEIP not within code segment
        # limit THEN #GP(0)".  QEMU 7.2 raises #GP(selector) instead.
1:      CHECK_FAULT_ALT $V_GP, $0, $S_LIM, $2b, "cpl0: lcall to an offset beyond the CS limit -> #GP(0)"
        # far RET from CPL0 to CPL3 (outer level): pops EIP, CS, ESP, SS
        pushl $RF_UDS
        pushl $rf_ustack_top-0x80
        pushl $RF_UCS
        pushl $3f
        leal 16(%esp), %eax
        movl %eax, rf_k_esp             # where USER_END returns to
        pushfl
        popl rf_k_eflags
        lret
3:      movl %esp, %ebx
        movl %ss, %ecx
        movl %cs, %edx
        USER_END
        CHECK_EQ %ebx, $rf_ustack_top-0x80, "cpl0: lret to CPL3 loads ESP from the stack"
        CHECK_EQ %ecx, $RF_UDS, "cpl0: lret to CPL3 loads SS 0x23"
        CHECK_EQ %edx, $RF_UCS, "cpl0: lret to CPL3 runs with CS 0x1b"

# ---------------------------------------------------------------- CPL3
        NOTE "CPL3"
        TRY 1f
        USER_BEGIN
        ljmp $S_U2|3, $3f
3:      movl %cs, %ebx
        ljmp $RF_UCS, $3f
3:      movl %cs, %ecx
        movl %esp, %ebp
        pushl $5
        pushl $6
        lcall $S_U2|3, $far_func8
        movl %esp, %edx
        subl %ebp, %edx
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: far jmp/call/ret between DPL3 code segments"
        CHECK_EQ %ebx, $S_U2|3, "cpl3: ljmp 0x3b: CS reads 0x3b"
        CHECK_EQ %ecx, $RF_UCS, "cpl3: ljmp back: CS reads 0x1b"
        CHECK_EQ %eax, $S_U2|3, "cpl3: lcall: callee sees CS=0x3b"
        CHECK_EQ %edx, $0, "cpl3: lcall/lret $8 balance the stack"

        TRY 1f
        USER_BEGIN
        lcall $S_CONF, $far_func
        movl %cs, %ebx
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: lcall to DPL0 conforming code is allowed"
        CHECK_EQ %eax, $S_CONF|3, "cpl3: conforming code runs with CS.RPL = CPL = 3 (0x63)"
        CHECK_EQ %ebx, $RF_UCS, "cpl3: lret back from conforming code"

        # call gate CPL3 -> CPL0 with two parameters
        movl $0, g_p0
        TRY 1f
        USER_BEGIN
        movw $RF_UDS, %ax
        movw %ax, %fs
        movl %esp, %ebp
        pushl $0x11111111
        pushl $0x22222222
        lcall $G_UP|3, $0
3:      movl %esp, %ebx
        movl %ss, %ecx
        movl %cs, %edx
        movl %fs, %esi
        movl %ebp, %edi
        USER_END
        ENDTRY
1:      CHECK_NOFAULT "cpl3: lcall through a DPL3 call gate to CPL0"
        CHECK_EQ g_hcs, $RF_KCS, "gate: target runs with CS=0x08"
        CHECK_EQ g_ss, $RF_KDS, "gate: inner SS = TSS SS0 = 0x10"
        CHECK_EQ g_esp, $rf_istack_top-24, "gate: inner ESP = TSS ESP0 - 24 (SS,ESP,2 params,CS,EIP)"
        CHECK_EQ g_eip, $3b, "gate: frame EIP = return address"
        CHECK_EQ g_cs, $RF_UCS, "gate: frame CS = 0x1b"
        CHECK_EQ g_p0, $0x22222222, "gate: parameter 0 (last pushed) copied"
        CHECK_EQ g_p1, $0x11111111, "gate: parameter 1 copied"
        movl %edi, %eax
        subl $8, %eax
        CHECK_EQ g_oesp, %eax, "gate: frame holds the caller ESP (after the pushes)"
        CHECK_EQ g_oss, $RF_UDS, "gate: frame holds the caller SS 0x23"
        CHECK_EQ %ebx, %edi, "lret $8 to CPL3: ESP restored and parameters popped"
        CHECK_EQ %ecx, $RF_UDS, "lret to CPL3: SS = 0x23"
        CHECK_EQ %edx, $RF_UCS, "lret to CPL3: CS = 0x1b"
        CHECK_EQ %esi, $0, "lret to CPL3: FS loaded with DPL0 data is nulled"

        # faults at CPL3
        TRY 1f
        USER_BEGIN
2:      ljmp $RF_KCS, $rf_done
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $RF_KCS, $2b, "cpl3: ljmp to non-conforming DPL0 code -> #GP(0x08)"
        TRY 1f
        USER_BEGIN
2:      lcall $RF_KCS, $rf_done
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $RF_KCS, $2b, "cpl3: lcall to non-conforming DPL0 code -> #GP(0x08)"
        TRY 1f
        USER_BEGIN
2:      ljmp $G_K|3, $0
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $G_K, $2b, "cpl3: ljmp through a DPL0 call gate -> #GP(0x48)"
        TRY 1f
        USER_BEGIN
2:      lcall $G_K|3, $0
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $G_K, $2b, "cpl3: lcall through a DPL0 call gate -> #GP(0x48)"
        TRY 1f
        USER_BEGIN
2:      ljmp $G_UP|3, $0
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $RF_KCS, $2b, "cpl3: ljmp through a gate to more privileged code -> #GP(0x08)"
        TRY 1f
        USER_BEGIN
2:      lcall $G_NP|3, $0
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_NP, $G_NP, $2b, "cpl3: lcall through a not-present call gate -> #NP(0x70)"
        TRY 1f
        USER_BEGIN
2:      lcall $S_NP3|3, $rf_done
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_NP, $S_NP3, $2b, "cpl3: lcall to not-present DPL3 code -> #NP(0x58)"
        TRY 1f
        USER_BEGIN
        pushl $RF_KCS
        pushl $rf_done
2:      lret
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $RF_KCS, $2b, "cpl3: lret to CPL0 code (inner level) -> #GP(0x08)"
        TRY 1f
        USER_BEGIN
        pushl $RF_UDS
        pushl $rf_done
2:      lret
        USER_END
        ENDTRY
1:      CHECK_FAULT $V_GP, $0x20, $2b, "cpl3: lret to a data selector -> #GP(0x20)"
        ret

        .data
        .balign 4
fptr:   .long 0
        .word 0, 0
g_esp:  .long 0
g_eip:  .long 0
g_cs:   .long 0
g_p0:   .long 0
g_p1:   .long 0
g_oesp: .long 0
g_oss:  .long 0
g_ss:   .long 0
g_hcs:  .long 0
        .text
