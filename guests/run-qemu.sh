#!/bin/sh
# Run every OUTDIR/*.elf under qemu-system-i386 (the reference platform) and
# print each guest's output and verdict.
# usage: guests/run-qemu.sh OUTDIR [NAME...]
# Environment: QEMU (default qemu-system-i386), QEMU_EXTRA (extra arguments,
# e.g. "-cpu pentium3" or "-append strict"), TIMEOUT (seconds, default 20),
# QUIET=1 (only print the verdict lines).
#
# Verdict: a guest passes when it exits through isa-debug-exit with value 0
# (QEMU exit status 1) and its last line is "DONE pass=P fail=0".  The guest
# named "triple" instead must print "about to triple fault" and make QEMU
# (with -no-reboot) exit with status 0 because of the triple fault.
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [NAME...]" >&2
    exit 2
fi
out=$1
shift
QEMU=${QEMU:-qemu-system-i386}
TIMEOUT=${TIMEOUT:-20}
QEMU_EXTRA=${QEMU_EXTRA:-}
if [ $# -gt 0 ]; then
    names="$*"
else
    names=$(cd "$out" && ls *.elf | sed 's/\.elf$//')
fi
total=0
bad=0
for name in $names; do
    elf="$out/$name.elf"
    log="$out/$name.log"
    total=$((total + 1))
    # shellcheck disable=SC2086
    timeout "$TIMEOUT" "$QEMU" -kernel "$elf" -display none -serial none \
        -monitor none -no-reboot -debugcon stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 -m 128 $QEMU_EXTRA \
        </dev/null >"$log" 2>"$out/$name.stderr"
    rc=$?
    if [ "${QUIET:-0}" != 1 ]; then
        echo "=== $name"
        cat "$log"
        [ -s "$out/$name.stderr" ] && sed 's/^/stderr: /' "$out/$name.stderr"
    fi
    if [ "$name" = triple ]; then
        if [ $rc -eq 0 ] && grep -q "about to triple fault" "$log"; then
            verdict=PASS
        else
            verdict=FAIL
        fi
    else
        last=$(grep '^DONE ' "$log" | tail -n 1)
        case "$last" in
            "DONE pass="*" fail=0") ok=1 ;;
            *) ok=0 ;;
        esac
        if [ $rc -eq 1 ] && [ $ok -eq 1 ]; then
            verdict=PASS
        else
            verdict=FAIL
        fi
    fi
    [ $verdict = FAIL ] && bad=$((bad + 1))
    echo "$verdict $name (qemu exit status $rc) ${last:-}"
    last=
done
echo "$((total - bad)) passed, $bad failed"
[ $bad -eq 0 ]
