# scratch.S -- control transfers at the edge of the stack segment.
#
# ringfold translates RET and indirect JMP/CALL into inline lookups that use a
# few bytes below the guest ESP as scratch. Those bytes may lie outside the
# stack segment where the guest's own instruction is perfectly legal; the
# monitor must then undo its scratch and interpret the instruction, so the
# guest sees exactly the architectural result (SDM Vol. 2 RET/JMP/CALL: only
# the bytes the instruction itself reads/writes are checked against SS).
# A 16-byte expand-up stack segment (limit 0xF) is used at CPL0 and CPL3:
#  * RET with ESP=4 (reads [4,8)): legal, lands at the target, ESP=8;
#  * JMP *%eax with ESP=0: legal (no stack access at all);
#  * CALL *%eax with ESP=8: pushes at [4,8): legal, return address stored;
#  * RET with ESP=0xE (reads past the limit): the guest's own #SS(0) at the
#    RET (CPL3 only; QEMU TCG does not check SS limits, tolerated unless
#    "strict").
        .include "rf.inc"

        .set SS0_SEL, 0x30
        .set SS3_SEL, 0x3b

        .macro EDGE cpl, sssel
        # RET at ESP=4
        movl $1f, scr_stack+4
        AT_CPL \cpl
        movl %esp, %ebp
        movw $\sssel, %ax
        movw %ax, %ss
        movl $4, %esp
        ret
        ud2
1:      movl %esp, %ebx
        movw $(\sssel & ~3) | \cpl, %ax
        FLAT_SS \cpl
        movl %ebp, %esp
        END_CPL \cpl
        CHECK_EQ %ebx, $8, "cpl\cpl: ret at ESP=4 of a 16-byte SS lands with ESP=8"

        # JMP *%eax at ESP=0
        AT_CPL \cpl
        movl %esp, %ebp
        movw $\sssel, %ax
        movw %ax, %ss
        xorl %esp, %esp
        movl $2f, %eax
        jmp *%eax
        ud2
2:      movl %esp, %ebx
        FLAT_SS \cpl
        movl %ebp, %esp
        END_CPL \cpl
        CHECK_EQ %ebx, $0, "cpl\cpl: jmp *%eax at ESP=0 of a 16-byte SS"

        # CALL *%eax at ESP=8
        AT_CPL \cpl
        movl %esp, %ebp
        movw $\sssel, %ax
        movw %ax, %ss
        movl $8, %esp
        movl $3f, %eax
        call *%eax
4:      ud2
3:      movl %esp, %ebx
        FLAT_SS \cpl
        movl %ebp, %esp
        END_CPL \cpl
        CHECK_EQ %ebx, $4, "cpl\cpl: call *%eax at ESP=8 pushes within the 16-byte SS"
        CHECK_EQ scr_stack+4, $4b, "cpl\cpl: the return address is the next instruction"

        # RET at ESP=0xE: the guest's own #SS(0). Only at CPL3: at CPL0 the #SS
        # frame would be pushed on the same 16-byte stack (a double, then triple fault).
        .if \cpl == 3
        movl $7f, scr_stack+0xE        # where a RET without the limit check lands
        TRY 5f
        AT_CPL \cpl
        movl %esp, %ebp
        movw $\sssel, %ax
        movw %ax, %ss
        movl $0xE, %esp
6:      ret
7:      movw $RF_UDS, %ax
        movw %ax, %ss
        movl %ebp, %esp
        END_CPL \cpl
        ENDTRY
5:      CHECK_FAULT_TOL $V_SS, $0, $6b, "cpl3: ret reading past the SS limit -> #SS(0) at the ret"
        .endif
        .endm

rf_main:
        NOTE "scratch: RET/JMP/CALL at the edge of a 16-byte stack segment"
        # 16-byte expand-up 32-bit stack segments over scr_stack, DPL0 and DPL3.
        GDT_DESC $SS0_SEL, $scr_stack, $0xF, $0x92, $0x4
        GDT_DESC $(SS3_SEL & ~3), $scr_stack, $0xF, $0xF2, $0x4
        EDGE 0, SS0_SEL
        EDGE 3, SS3_SEL
        jmp rf_done

        .data
        .p2align 4
scr_stack:
        .long 0, 0, 0, 0, 0, 0, 0, 0
