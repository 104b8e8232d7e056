# triple.S -- shutdown on a triple fault.
#
# Prints "about to triple fault", loads an IDT with limit 0 and executes
# INT3: vector 3 lies beyond the IDT limit -> #GP(0x1a); vector 13 is beyond
# the limit as well -> a second contributory fault -> #DF; vector 8 is beyond
# the limit too -> triple fault -> the processor enters shutdown.
#
# SDM references: Vol. 3A 6.10 "Interrupt Descriptor Table" (vectors beyond
# the IDT limit -> #GP), 6.15 "Interrupt 8 - Double Fault Exception" (a fault
# while delivering #DF causes shutdown), 2.x "triple fault" / shutdown.
#
# Expected outcome (this guest never prints a DONE line):
#  * QEMU with -no-reboot: the triple fault requests a reset, which
#    -no-reboot turns into a clean exit of QEMU with status 0.
#  * ringfold: a guest triple fault must stop the VM cleanly with a message
#    naming the triple fault on stderr and a dedicated exit status; it must
#    never crash the monitor.  The harness checks the exit status and the
#    message, not this guest.
# If execution ever continues past the INT3, a failing check and the DONE
# line are printed, and the guest exits through isa-debug-exit with 1.
        .include "rf.inc"

rf_main:
        PUTS "about to triple fault\n"
        movw $0, idtr0
        movl $rf_idt, idtr0+2
        lidt idtr0
        int3
        lidt rf_idtr
        FAIL "execution continued after a triple fault"
        ret

        .data
        .balign 4
idtr0:  .word 0
        .long 0
        .text
