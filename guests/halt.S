# halt.S -- HLT at CPL0 with IF=0 and no interrupt source: the machine can never
# wake up. ringfold stops with a message and exit status 82 rather than spin
# (QEMU just sits halted; run-qemu.sh's timeout ends it).
        .include "rf.inc"

rf_main:
        NOTE "halt: cli; hlt"
        cli
        hlt
        FAIL "woke up from hlt with IF=0"
        jmp rf_done
