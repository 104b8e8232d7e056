# smc.S -- self-modifying code: translations must follow writes to code bytes
# (SDM Vol. 3A 8.1.3 "Handling Self- and Cross-Modifying Code": a write to a
# code byte that is then executed must take effect; on P6 and later this holds
# even for code already prefetched in the same instruction stream).
#
# Checked at CPL0 and CPL3 (paging is off, so the flat user data segment can
# write the code):
#  * a routine already executed, then patched (immediate changed), returns the
#    new value;
#  * a routine patched to a different instruction of another length;
#  * an instruction in the very block that does the store (same cache line);
#  * a loop that writes data next to its own code keeps running correctly.
        .include "rf.inc"

        .macro SMC_BODY cpl
        AT_CPL \cpl
        # Restore the pristine routines (a previous pass patched them).
        movb $0x01, smc_imm
        movl $0x90909090, smc_len
        call smc_fn
        movl %eax, %ebx
        movb $0x02, smc_imm            # patch the immediate of mov $imm, %eax
        call smc_fn
        movl %eax, %ecx
        # Replace "nop;nop;nop;nop" with "inc %eax; inc %eax; inc %eax; nop".
        call smc_len_fn
        movl %eax, %esi
        movl $0x90404040, smc_len
        call smc_len_fn
        movl %eax, %edi
        END_CPL \cpl
        CHECK_EQ %ebx, $1, "cpl\cpl: routine before patching returns 1"
        CHECK_EQ %ecx, $2, "cpl\cpl: patched immediate takes effect"
        CHECK_EQ %esi, $10, "cpl\cpl: length routine before patching"
        CHECK_EQ %edi, $13, "cpl\cpl: patched to other instructions"

        AT_CPL \cpl
        movl $0, %eax
        movb $0x05, 1f+1               # patch the next instruction's immediate
1:      movb $0x07, %al
        movl %eax, %edx
        END_CPL \cpl
        CHECK_EQ %edx, $5, "cpl\cpl: store into the executing block takes effect"

        AT_CPL \cpl
        movl $1000, %ecx
        xorl %eax, %eax
2:      addl %ecx, smc_counter_near     # data on the code page
        addl %ecx, %eax
        loop 2b
        movl %eax, %edx
        END_CPL \cpl
        CHECK_EQ %edx, $500500, "cpl\cpl: loop writing next to its own code"
        .endm

rf_main:
        NOTE "smc: writes to translated code take effect"
        SMC_BODY 0
        SMC_BODY 3
        jmp rf_done


        .p2align 4
smc_fn:
        .byte 0xb8                     # mov $imm32, %eax
smc_imm:
        .long 0x00000001
        ret

        .p2align 4
smc_len_fn:
        movl $10, %eax
smc_len:
        nop
        nop
        nop
        nop
        ret

        .p2align 4
smc_counter_near:
        .long 0
