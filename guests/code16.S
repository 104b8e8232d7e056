# code16.S -- a far jump to a 16-bit code segment (D=0). ringfold does not
# translate 16-bit code yet and must refuse it with a clear error and exit
# status 84 instead of running it wrongly (issue #2 item 3). Under QEMU the
# 16-bit code runs and reports through the exit port with value 0.
        .include "rf.inc"

rf_main:
        NOTE "code16: far jump to a 16-bit code segment"
        # 0x30: 16-bit code segment (D=0), base 0, 4 GiB limit (G=1), DPL0
        GDT_DESC $0x30, $0, $0xFFFFF, $0x9A, $0x8
        ljmp $0x30, $code16_entry
        FAIL "not reached"
        jmp rf_done

        .code16
code16_entry:
        movw $0xF4, %dx
        xorl %eax, %eax
        outl %eax, %dx
1:      jmp 1b
        .code32
