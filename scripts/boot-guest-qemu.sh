#!/usr/bin/env bash
# Boot the Debian guest made by scripts/fetch-debian-guest.sh under QEMU (TCG), the
# reference platform, independently of ringfold.
#
# usage: scripts/boot-guest-qemu.sh [-k 686|686-pae] [-w WORKLOAD] [-t SECONDS] [CACHE_DIR]
#   -k  kernel flavour (default 686)
#   -w  workload: boot (default), all, w1, w2, w3, w4, or "shell" (interactive, no timeout)
#   -t  timeout in seconds for a workload run (default 120)
# Environment: QEMU (default qemu-system-i386), QEMU_EXTRA (extra QEMU arguments),
# APPEND_EXTRA (extra kernel command-line words, e.g. "quiet").
#
# A workload run passes (exit 0) when the console shows the banner "ringfold guest: busybox
# shell" and "WORKLOAD <w> DONE" (for "all": every w1..w4 and "WORKLOAD all DONE") and QEMU
# exits by itself (the guest powers off) within the timeout.  The console log is kept in
# CACHE_DIR/qemu-<flavour>-<workload>.log.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
flav=686 workload=boot timeout=120
while getopts k:w:t:h opt; do
    case $opt in
        k) flav=$OPTARG ;;
        w) workload=$OPTARG ;;
        t) timeout=$OPTARG ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
cache=${1:-$REPO_ROOT/cache/guest}
QEMU=${QEMU:-qemu-system-i386}
kernel=$cache/vmlinuz-$flav initrd=$cache/initramfs.cpio.gz
for f in "$kernel" "$initrd"; do
    [ -f "$f" ] || { echo "missing $f: run scripts/fetch-debian-guest.sh first" >&2; exit 2; }
done
command -v "$QEMU" >/dev/null || { echo "$QEMU not found (apt-get install qemu-system-x86)" >&2; exit 2; }

# shellcheck disable=SC2086
if [ "$workload" = shell ]; then
    exec "$QEMU" -accel tcg -m 256 -kernel "$kernel" -initrd "$initrd" \
        -append "console=ttyS0 ${APPEND_EXTRA:-}" -nographic -no-reboot ${QEMU_EXTRA:-}
fi

log=$cache/qemu-$flav-$workload.log
echo "booting vmlinuz-$flav with rf.workload=$workload under $QEMU (TCG), timeout ${timeout}s; log: $log"
t0=$(date +%s%N)
rc=0
# shellcheck disable=SC2086
timeout "$timeout" "$QEMU" -accel tcg -m 256 -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 rf.workload=$workload ${APPEND_EXTRA:-}" \
    -nographic -no-reboot -monitor none ${QEMU_EXTRA:-} </dev/null >"$log" 2>&1 || rc=$?
t1=$(date +%s%N)
secs=$(( (t1 - t0) / 1000000 ))
secs="$((secs / 1000)).$(printf %03d $((secs % 1000)))"
tr -d '\r' <"$log" | grep -E '^(ringfold guest|WORKLOAD|[0-9a-f]{64} )' | sed 's/^/  | /' || true

want=("ringfold guest: busybox shell" "WORKLOAD $workload DONE")
[ "$workload" = all ] && want=("ringfold guest: busybox shell" "WORKLOAD w1 DONE" "WORKLOAD w2 DONE"
                               "WORKLOAD w3 DONE" "WORKLOAD w4 DONE" "WORKLOAD all DONE")
missing=()
for w in "${want[@]}"; do grep -qF "$w" "$log" || missing+=("$w"); done
if [ "$rc" = 124 ]; then
    echo "FAIL: QEMU still running after ${timeout}s (log tail below)"; tail -n 15 "$log"; exit 1
elif [ ${#missing[@]} -gt 0 ]; then
    echo "FAIL: QEMU exited with $rc after ${secs}s without: ${missing[*]} (log tail below)"; tail -n 15 "$log"; exit 1
fi
echo "PASS: vmlinuz-$flav rf.workload=$workload, QEMU exited with $rc after ${secs}s"
