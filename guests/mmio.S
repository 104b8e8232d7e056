# mmio.S -- memory-mapped device registers accessed with many instruction forms.
#
# ringfold never maps non-RAM guest-physical pages on the host: every access to
# them traps, the monitor decodes the instruction and performs its memory
# accesses on the device. This guest uses ringfold's MMIO test device at
# 0xFEBF0000 (register 0 = ID "RFTD", registers 1..1022 read/write, register
# 1023 = number of device accesses so far) and checks values, flags and the
# exact number of device accesses per instruction, at CPL0 and CPL3 (paging
# off, flat segments). Elsewhere (QEMU) the device is absent: the checks are
# skipped.
        .include "rf.inc"

        .set TD, 0xFEBF0000
        .set TD_ID, 0x44544652
        .set TD_COUNT, TD + 0xFFC

        # EBX = access count before; checks that `n` device accesses happened since.
        .macro COUNT_FROM_EBX n, desc
        movl TD_COUNT, %edx
        subl %ebx, %edx
        decl %edx                      # the read of the counter itself
        movl TD_COUNT, %ebx
        CHECK_EQ %edx, $\n, "\desc"
        .endm

        .macro MMIO_BODY cpl
        AT_CPL \cpl
        movl $0x11223344, TD+4          # mov m32, imm
        movl TD+4, %eax                 # mov r32, m32
        movzbl TD+5, %ecx               # movzx byte
        movswl TD+6, %edx               # movsx word
        movl %eax, %esi
        END_CPL \cpl
        CHECK_EQ %esi, $0x11223344, "cpl\cpl: mov store/load"
        CHECK_EQ %ecx, $0x33, "cpl\cpl: movzx byte"
        CHECK_EQ %edx, $0x1122, "cpl\cpl: movsx word"

        AT_CPL \cpl
        movl $5, TD+8
        addl $3, TD+8                   # 8
        orl $0x10, TD+8                 # 0x18
        andb $0xF8, TD+8                # 0x18
        xorw $0x0101, TD+8              # 0x0119
        incl TD+8                       # 0x011A
        decb TD+8                       # 0x0119
        negl TD+8                       # -0x119
        notl TD+8                       # 0x118
        movl TD+8, %edi
        cmpl $0x118, TD+8
        sete %al
        testl $0x100, TD+8
        setne %ah
        movzwl %ax, %esi
        END_CPL \cpl
        CHECK_EQ %edi, $0x118, "cpl\cpl: add/or/and/xor/inc/dec/neg/not on a device register"
        CHECK_EQ %esi, $0x0101, "cpl\cpl: cmp/test flags from a device register"

        AT_CPL \cpl
        movl TD_COUNT, %ebx
        subl $0x18, TD+8                # read + write
        movl TD_COUNT, %edx
        subl %ebx, %edx
        movl %edx, %esi
        movl $0, TD+12
        movl $0xAAAA5555, %eax
        xchgl %eax, TD+12               # swap with the register's 0
        movl TD+12, %edi
        movl %eax, %ebp
        END_CPL \cpl
        CHECK_EQ %esi, $3, "cpl\cpl: sub on a device register: 1 read, 1 write (+ the count read)"
        CHECK_EQ %edi, $0xAAAA5555, "cpl\cpl: xchg stored the register value"
        CHECK_EQ %ebp, $0, "cpl\cpl: xchg returned the old device value"

        AT_CPL \cpl
        movl $7, TD+16
        movl $7, %eax
        movl $9, %ecx
        cmpxchgl %ecx, TD+16            # equal: store 9, ZF=1
        setz %dl
        movl $1, %eax
        cmpxchgl %ecx, TD+16            # not equal: EAX = 9, ZF=0
        setz %dh
        movl %eax, %esi
        movl TD+16, %edi
        movzwl %dx, %edx
        END_CPL \cpl
        CHECK_EQ %edx, $0x0001, "cpl\cpl: cmpxchg ZF on equal / not equal"
        CHECK_EQ %esi, $9, "cpl\cpl: cmpxchg loaded the device value on mismatch"
        CHECK_EQ %edi, $9, "cpl\cpl: cmpxchg stored on match"

        AT_CPL \cpl
        cld
        movl $TD+0x100, %edi
        movl $0x5A5A5A5A, %eax
        movl $4, %ecx
        rep stosl                       # 4 device writes
        movl $TD+0x100, %esi
        movl $mmio_buf, %edi
        movl $4, %ecx
        rep movsl                       # device -> RAM
        movl $TD+0x104, %esi
        lodsl
        movl %eax, %ebp
        END_CPL \cpl
        CHECK_EQ mmio_buf, $0x5A5A5A5A, "cpl\cpl: rep stos to and rep movs from device registers (first)"
        CHECK_EQ mmio_buf+12, $0x5A5A5A5A, "cpl\cpl: rep movs (last)"
        CHECK_EQ %ebp, $0x5A5A5A5A, "cpl\cpl: lods from a device register"
        .endm

rf_main:
        NOTE "mmio: device registers with many instruction forms"
        cmpl $TD_ID, TD
        je 1f
        SKIP "no ringfold MMIO test device at 0xFEBF0000 (not running under ringfold)"
        jmp rf_done
1:      MMIO_BODY 0
        MMIO_BODY 3
        jmp rf_done

        .data
        .p2align 4
mmio_buf:
        .long 0, 0, 0, 0
