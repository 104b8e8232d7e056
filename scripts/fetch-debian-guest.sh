#!/usr/bin/env bash
# Guest recipe: fetch Debian's i386 kernels and busybox BY PACKAGE NAME and build the
# files ringfold boots (a Linux bzImage plus an initramfs that reaches a busybox shell).
#
# usage: scripts/fetch-debian-guest.sh [CACHE_DIR]     (default: <repo>/cache/guest)
#
# Outputs in CACHE_DIR:
#   vmlinuz-686, vmlinuz-686-pae   bzImages from /boot of linux-image-<abi>-686{,-pae}
#   config-686, config-686-pae     the kernels' build configs          (extras, for reference)
#   initramfs.cpio.gz              gzip'd newc cpio: /bin/busybox (busybox-static:i386),
#                                  /bin/sh, /dev/console, /dev/null, /init, /workloads/*.sh
#   manifest.txt                   resolved package versions and sha256 of every output
#   debs/                          the downloaded .deb files (kept so rebuilds need no network)
#
# The guest's /init mounts proc/sys/devtmpfs, installs the busybox applet links, prints
# "ringfold guest: busybox shell", then either runs /workloads/NAME.sh (kernel command line
# rf.workload=NAME: boot, all, w1, w2, w3, w4) and powers off with `poweroff -f`, or starts
# an interactive shell on the console.
#
# Idempotent: when manifest.txt exists, was written by this same recipe and every output's
# sha256 matches it, nothing is done.  FORCE=1 rebuilds (reusing downloaded .debs whose
# version still matches).  Nothing is installed into the system: the .debs are fetched with
# `apt-get download` and unpacked with dpkg-deb into the cache; the cpio is written by a
# small Python newc writer (device nodes without root, no cpio tool needed).  The only
# system change ever made is, when Debian's i386 package lists are missing,
# `dpkg --add-architecture i386 && apt-get update` (as root, or through `sudo -n`).
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)

case "${1:-}" in
    -h|--help)
        sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d; s/^# \{0,1\}//'
        exit 0 ;;
esac
if [ $# -gt 1 ]; then
    echo "usage: $0 [CACHE_DIR]" >&2
    exit 2
fi
CACHE_DIR=${1:-$REPO_ROOT/cache/guest}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
MANIFEST=$CACHE_DIR/manifest.txt
OUTPUTS=(vmlinuz-686 vmlinuz-686-pae initramfs.cpio.gz)
RECIPE_SHA=$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)

STEP=0
NSTEPS=8
step() { STEP=$((STEP + 1)); echo "==> [$STEP/$NSTEPS] $*"; }
die() { echo "fetch-debian-guest: error: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg dpkg-deb tar sha256sum python3; do
    command -v "$tool" >/dev/null || die "'$tool' is required (this recipe targets a Debian/Ubuntu host)"
done

# ---------------------------------------------------------------- idempotence check
outputs_complete() {
    [ -f "$MANIFEST" ] || return 1
    grep -qx "recipe-sha256: $RECIPE_SHA" "$MANIFEST" || return 1
    local f
    for f in "${OUTPUTS[@]}"; do
        [ -s "$CACHE_DIR/$f" ] || return 1
        grep -Eq "^[0-9a-f]{64}  $f\$" "$MANIFEST" || return 1
    done
    (cd "$CACHE_DIR" && grep -E '^[0-9a-f]{64}  ' "$MANIFEST" | sha256sum --quiet -c -) >/dev/null 2>&1
}

if [ "${FORCE:-0}" != 1 ] && outputs_complete; then
    echo "fetch-debian-guest: outputs in $CACHE_DIR are complete and verified; nothing to do."
    sed -n 's/^package: /  /p' "$MANIFEST"
    echo "  (FORCE=1 $0${1:+ $1} rebuilds)"
    exit 0
fi

WORK=$(mktemp -d "$CACHE_DIR/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG=$WORK/apt.log
run_logged() {  # run a command, keeping its chatter in $LOG; show it on failure
    if ! "$@" >>"$LOG" 2>&1; then
        echo "--- output of: $* ---" >&2
        tail -n 30 "$LOG" >&2
        return 1
    fi
}

# ---------------------------------------------------------------- 1. i386 package lists
PKGS_NEEDED=(linux-image-686:i386 linux-image-686-pae:i386 busybox-static:i386)
lists_ok() {
    local p
    for p in "${PKGS_NEEDED[@]}"; do
        # (no grep -q here: with pipefail, its early exit would fail apt-cache with SIGPIPE)
        apt-cache show --no-all-versions "$p" 2>/dev/null | grep '^Version: ' >/dev/null || return 1
    done
}
as_root() {  # run a command as root: directly, or via non-interactive sudo
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 77
    fi
}
update_lists() {
    local rc=0 ulog=$WORK/update.log
    : >"$ulog"
    {
        as_root dpkg --add-architecture i386 && as_root apt-get update
    } >"$ulog" 2>&1 || rc=$?
    cat "$ulog" >>"$LOG"
    if [ "$rc" = 77 ]; then
        die "Debian's i386 package lists are missing or stale and this script is not root (and 'sudo -n' is not available).
Run this once, then re-run the script:
    sudo sh -c 'dpkg --add-architecture i386 && apt-get update'"
    elif [ "$rc" != 0 ]; then
        if lists_ok; then
            # apt-get update exits non-zero when any one index fails (e.g. "File has
            # unexpected size ... Mirror sync in progress?" on one suite); what we need
            # is there, so go on, but say so: versions may lag that suite.
            echo "    warning: apt-get update reported errors; continuing with the lists it got:" >&2
            grep -E '^(E|W): ' "$ulog" | sed 's/^/      /' >&2 || true
        else
            tail -n 30 "$ulog" >&2
            die "'dpkg --add-architecture i386 && apt-get update' failed (output above)"
        fi
    fi
}

step "checking Debian i386 package lists"
UPDATED=0
if lists_ok; then
    echo "    i386 lists present"
else
    echo "    i386 lists missing: need 'dpkg --add-architecture i386 && apt-get update'"
    update_lists
    UPDATED=1
    lists_ok || die "after apt-get update, apt still knows none of: ${PKGS_NEEDED[*]} (is this a Debian host with 'main' enabled?)"
fi

# ---------------------------------------------------------------- 2. resolve packages
field() {  # field PKG:ARCH FIELD -> value of FIELD for the candidate version
    apt-cache show --no-all-versions "$1" 2>/dev/null | sed -n "s/^$2: //p" | sed -n 1p
}
resolve_kernel() {  # resolve_kernel META -> concrete linux-image-<abi>-<flavour> package name
    local meta=$1 dep
    dep=$(field "$meta:i386" Depends | sed 's/[,|]/\n/g' | sed 's/^ *//; s/[ :].*//' \
          | awk '/^linux-image-[0-9]/ && !n { print; n = 1 }')
    [ -n "$dep" ] || die "cannot find the linux-image-<version> dependency of $meta:i386"
    echo "$dep"
}

step "resolving package names"
K686=$(resolve_kernel linux-image-686)
KPAE=$(resolve_kernel linux-image-686-pae)
declare -A VER
for p in linux-image-686 linux-image-686-pae "$K686" "$KPAE" busybox-static; do
    VER[$p]=$(field "$p:i386" Version)
    [ -n "${VER[$p]}" ] || die "no candidate version of $p:i386"
done
echo "    linux-image-686     -> $K686 ${VER[$K686]}"
echo "    linux-image-686-pae -> $KPAE ${VER[$KPAE]}"
echo "    busybox-static         ${VER[busybox-static]}"

# ---------------------------------------------------------------- 3. download .debs
DEBS=$CACHE_DIR/debs
mkdir -p "$DEBS"
declare -A DEB
deb_matches() {  # deb_matches FILE PKG VERSION
    [ -f "$1" ] && [ "$(dpkg-deb -f "$1" Package Version Architecture 2>/dev/null | tr '\n' ' ')" \
                      = "Package: $2 Version: $3 Architecture: i386 " ]
}
download() {  # download PKG VERSION -> sets DEB[PKG]
    local pkg=$1 ver=$2 f dl
    f=$DEBS/${pkg}_${ver//:/%3a}_i386.deb
    if deb_matches "$f" "$pkg" "$ver"; then
        echo "    $pkg $ver: already downloaded"
    else
        dl=$WORK/dl
        rm -rf "$dl"
        mkdir -p "$dl"
        chmod 755 "$WORK" "$dl"
        local opts=()
        [ "$(id -u)" = 0 ] && opts=(-o APT::Sandbox::User=root)
        if ! (cd "$dl" && apt-get "${opts[@]}" download "$pkg:i386=$ver") >>"$LOG" 2>&1; then
            # Stale lists (the archive dropped that version): refresh once and retry.
            if [ "$UPDATED" = 0 ]; then
                echo "    download of $pkg failed; refreshing package lists and retrying"
                update_lists
                UPDATED=1
                return 99
            fi
            tail -n 30 "$LOG" >&2
            die "apt-get download $pkg:i386=$ver failed"
        fi
        mv "$dl"/*.deb "$f"
        deb_matches "$f" "$pkg" "$ver" || die "downloaded file $f is not $pkg $ver i386"
        echo "    $pkg $ver: $(du -h "$f" | cut -f1)"
    fi
    DEB[$pkg]=$f
}

step "downloading .debs with apt-get download into $DEBS"
for attempt in 1 2; do
    rc=0
    for p in "$K686" "$KPAE" busybox-static; do
        download "$p" "${VER[$p]}" || { rc=$?; break; }
    done
    [ "$rc" = 99 ] && [ "$attempt" = 1 ] || break
    # Lists were refreshed: resolve again (the kernel ABI may have moved on).
    K686=$(resolve_kernel linux-image-686)
    KPAE=$(resolve_kernel linux-image-686-pae)
    for p in linux-image-686 linux-image-686-pae "$K686" "$KPAE" busybox-static; do
        VER[$p]=$(field "$p:i386" Version)
    done
done
[ "$rc" = 0 ] || die "downloads failed"

# ---------------------------------------------------------------- 4. kernels
extract_boot() {  # extract_boot DEB DIR : unpack the .deb's /boot (one pass over the data)
    mkdir -p "$2"
    dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" ./boot
}
check_bzimage() {  # prints the boot protocol version, fails unless FILE is a bzImage
    python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read(0x300)
if len(d) < 0x208 or d[0x202:0x206] != b'HdrS' or d[0x1fe:0x200] != b'\x55\xaa':
    sys.exit("not a Linux bzImage: " + sys.argv[1])
ver = struct.unpack_from('<H', d, 0x206)[0]
loadflags = d[0x211]
print("boot protocol %d.%02d%s" % (ver >> 8, ver & 0xff, ", bzImage (loaded high)" if loadflags & 1 else ""))
PY
}

step "extracting kernels"
declare -A KREL
for flav in 686 686-pae; do
    if [ "$flav" = 686 ]; then pkg=$K686; else pkg=$KPAE; fi
    rel=${pkg#linux-image-}
    KREL[$flav]=$rel
    extract_boot "${DEB[$pkg]}" "$WORK/k-$flav"
    for f in vmlinuz config; do
        [ -f "$WORK/k-$flav/boot/$f-$rel" ] || die "$(basename "${DEB[$pkg]}") has no /boot/$f-$rel"
        cp "$WORK/k-$flav/boot/$f-$rel" "$CACHE_DIR/$f-$flav.tmp"
        mv "$CACHE_DIR/$f-$flav.tmp" "$CACHE_DIR/$f-$flav"
    done
    echo "    vmlinuz-$flav: $rel, $(du -h "$CACHE_DIR/vmlinuz-$flav" | cut -f1), $(check_bzimage "$CACHE_DIR/vmlinuz-$flav")"
done

# ---------------------------------------------------------------- 5. initramfs tree
ROOT=$WORK/root
step "assembling the initramfs tree"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,workloads}
chmod 1777 "$ROOT/tmp"
chmod 700 "$ROOT/root"
dpkg-deb -x "${DEB[busybox-static]}" "$WORK/busybox-deb"
[ -x "$WORK/busybox-deb/bin/busybox" ] || die "busybox-static .deb has no /bin/busybox"
install -m 0755 "$WORK/busybox-deb/bin/busybox" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
echo "root:x:0:0:root:/root:/bin/sh" >"$ROOT/etc/passwd"
echo "root:x:0:" >"$ROOT/etc/group"

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# ringfold guest init (PID 1), generated by scripts/fetch-debian-guest.sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=${TERM:-vt100}
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || echo "init: devtmpfs mount failed; keeping the initramfs /dev"
echo "ringfold guest: busybox shell ($(uname -r) $(uname -m))"

workload=
for arg in $(cat /proc/cmdline); do
    case "$arg" in rf.workload=*) workload=${arg#rf.workload=} ;; esac
done

if [ -n "$workload" ]; then
    if [ -x "/workloads/$workload.sh" ]; then
        "/workloads/$workload.sh"
        echo "ringfold guest: workload $workload exited with status $?"
    else
        echo "ringfold guest: no such workload: $workload (have: $(cd /workloads && ls *.sh | sed 's/\.sh$//' | tr '\n' ' '))"
        echo "WORKLOAD $workload MISSING"
    fi
    sync
    poweroff -f
    sleep 5
    exit 1
fi

echo "ringfold guest: no rf.workload= on the command line; starting a shell (exit to power off)"
setsid cttyhack sh || sh
echo "ringfold guest: shell exited, powering off"
poweroff -f
EOF

cat >"$ROOT/workloads/all.sh" <<'EOF'
#!/bin/sh
# ringfold guest workloads, generated by scripts/fetch-debian-guest.sh
# usage: /workloads/all.sh [w1|w2|w3|w4|boot]...   (no argument: w1 w2 w3 w4)
# Markers on the console:  WORKLOAD <name> START  /  WORKLOAD <name> DONE elapsed_ms=<ms>
#   w1  sha256sum of 64 MiB read from /dev/zero
#   w2  1000 fork+exec of /bin/true
#   w3  200000 1-byte read+write syscall pairs (dd bs=1 count=200000)
#   w4  200000-iteration shell arithmetic loop

# Time source: date +%s%N when busybox's date supports %N, else /proc/uptime (10 ms).
case "$(date +%s%N 2>/dev/null)" in
    *[!0-9]*|"") now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }; CLOCK=uptime ;;
    *)           now_ms() { echo $(( $(date +%s%N) / 1000000 )); }; CLOCK=date-ns ;;
esac

w1() { dd if=/dev/zero bs=1048576 count=64 2>/dev/null | sha256sum; }
w2() { i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i + 1)); done; }
w3() { dd if=/dev/zero of=/dev/null bs=1 count=200000; }
w4() { i=0; while [ $i -lt 200000 ]; do i=$((i + 1)); done; echo "i=$i"; }
boot() { :; }

run() {
    name=$1
    case "$name" in w1|w2|w3|w4|boot) ;; *) echo "WORKLOAD $name UNKNOWN"; return 1 ;; esac
    echo "WORKLOAD $name START"
    t0=$(now_ms)
    "$name"
    t1=$(now_ms)
    echo "WORKLOAD $name DONE elapsed_ms=$((t1 - t0)) clock=$CLOCK"
}

[ $# -gt 0 ] || set -- w1 w2 w3 w4
status=0
for w in "$@"; do run "$w" || status=1; done
[ "$*" = "w1 w2 w3 w4" ] && echo "WORKLOAD all DONE"
exit $status
EOF
for w in w1 w2 w3 w4; do
    printf '#!/bin/sh\nexec /workloads/all.sh %s\n' "$w" >"$ROOT/workloads/$w.sh"
done
cat >"$ROOT/workloads/boot.sh" <<'EOF'
#!/bin/sh
# Boot test: reaching this line means the kernel booted and ran /init; init powers off next.
echo "WORKLOAD boot DONE"
EOF
chmod 0755 "$ROOT/init" "$ROOT"/workloads/*.sh

# ---------------------------------------------------------------- 6. initramfs archive
step "writing initramfs.cpio.gz (Python newc writer; device nodes need no root)"
python3 - "$ROOT" "$CACHE_DIR/initramfs.cpio.gz.tmp" <<'PY'
import gzip, os, stat, sys

root, out = sys.argv[1], sys.argv[2]
# Extra entries that need no privileges in the archive: (path, mode, major, minor).
NODES = [("dev/console", stat.S_IFCHR | 0o600, 5, 1),
         ("dev/null",    stat.S_IFCHR | 0o666, 1, 3)]

entries = []  # (name, mode, data, rdevmajor, rdevminor)
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    rel = os.path.relpath(dirpath, root)
    for name in sorted(dirnames + filenames):
        p = os.path.join(dirpath, name)
        arc = os.path.normpath(os.path.join(rel, name))
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            entries.append((arc, stat.S_IFLNK | 0o777, os.readlink(p).encode(), 0, 0))
        elif stat.S_ISDIR(st.st_mode):
            entries.append((arc, stat.S_IFDIR | stat.S_IMODE(st.st_mode), b"", 0, 0))
        elif stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                entries.append((arc, stat.S_IFREG | stat.S_IMODE(st.st_mode), f.read(), 0, 0))
        else:
            sys.exit("unsupported file type: " + p)
entries += [(n, m, b"", ma, mi) for n, m, ma, mi in NODES]
entries.sort(key=lambda e: e[0])

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
buf = bytearray()
def pad4():
    buf.extend(b"\0" * (-len(buf) % 4))
def put(ino, name, mode, data, rmaj, rmin, nlink):
    nm = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, MTIME, len(data), 0, 0, rmaj, rmin, len(nm), 0)
    buf.extend(b"070701" + b"".join(b"%08X" % v for v in fields))
    buf.extend(nm); pad4()
    buf.extend(data); pad4()
for ino, (name, mode, data, rmaj, rmin) in enumerate(entries, start=1):
    put(ino, name, mode, data, rmaj, rmin, 2 if stat.S_ISDIR(mode) else 1)
put(0, "TRAILER!!!", 0, b"", 0, 0, 1)
buf.extend(b"\0" * (-len(buf) % 512))
with open(out, "wb") as f:
    with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
        gz.write(bytes(buf))
print("    %d entries, %d bytes uncompressed, %d bytes gzip'd" % (len(entries), len(buf), os.path.getsize(out)))
PY
mv "$CACHE_DIR/initramfs.cpio.gz.tmp" "$CACHE_DIR/initramfs.cpio.gz"

# ---------------------------------------------------------------- 7. verify the archive
step "verifying initramfs.cpio.gz (reading it back)"
python3 - "$CACHE_DIR/initramfs.cpio.gz" <<'PY'
import gzip, stat, sys
d = gzip.open(sys.argv[1]).read()
pos, ents = 0, {}
while True:
    if d[pos:pos + 6] != b"070701":
        sys.exit("bad newc magic at offset %d" % pos)
    f = [int(d[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
    mode, size, rmaj, rmin, nsz = f[1], f[6], f[9], f[10], f[11]
    name = d[pos + 110: pos + 110 + nsz - 1].decode()
    pos = (pos + 110 + nsz + 3) & ~3
    data = d[pos:pos + size]
    pos = (pos + size + 3) & ~3
    if name == "TRAILER!!!":
        break
    ents[name] = (mode, data, rmaj, rmin)
def need(name, ok, what):
    if name not in ents or not ok(*ents[name]):
        sys.exit("initramfs check failed: %s should be %s" % (name, what))
need("init", lambda m, d, a, b: stat.S_ISREG(m) and m & 0o111 and d.startswith(b"#!/bin/sh"), "an executable script")
need("bin/busybox", lambda m, d, a, b: stat.S_ISREG(m) and m & 0o111 and d[:4] == b"\x7fELF" and d[4] == 1, "an ELF32 executable")
need("bin/sh", lambda m, d, a, b: stat.S_ISLNK(m) and d == b"busybox", "a symlink to busybox")
need("dev/console", lambda m, d, a, b: stat.S_ISCHR(m) and (a, b) == (5, 1), "char device 5:1")
need("dev/null", lambda m, d, a, b: stat.S_ISCHR(m) and (a, b) == (1, 3), "char device 1:3")
for w in ("all", "boot", "w1", "w2", "w3", "w4"):
    need("workloads/%s.sh" % w, lambda m, d, a, b: stat.S_ISREG(m) and m & 0o111, "an executable script")
print("    ok: %d entries: %s" % (len(ents), " ".join(sorted(ents))))
PY

# ---------------------------------------------------------------- 8. manifest
step "writing manifest.txt"
sha() { sha256sum "$1" | cut -d' ' -f1; }
{
    echo "# ringfold guest files, made by scripts/fetch-debian-guest.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "recipe-sha256: $RECIPE_SHA"
    echo "package: linux-image-686 ${VER[linux-image-686]} -> $K686 ${VER[$K686]} i386"
    echo "package: linux-image-686-pae ${VER[linux-image-686-pae]} -> $KPAE ${VER[$KPAE]} i386"
    echo "package: busybox-static ${VER[busybox-static]} i386"
    echo "kernel-release-686: ${KREL[686]}"
    echo "kernel-release-686-pae: ${KREL[686-pae]}"
    for p in "$K686" "$KPAE" busybox-static; do
        echo "deb-sha256: $(sha "${DEB[$p]}") debs/$(basename "${DEB[$p]}")"
    done
    echo "# sha256 of the outputs (sha256sum -c format):"
    for f in "${OUTPUTS[@]}" config-686 config-686-pae; do
        echo "$(sha "$CACHE_DIR/$f")  $f"
    done
} >"$MANIFEST.tmp"
mv "$MANIFEST.tmp" "$MANIFEST"

echo
echo "fetch-debian-guest: done; outputs in $CACHE_DIR"
sed -n 's/^package: /  package /p' "$MANIFEST"
grep -E '^[0-9a-f]{64}  ' "$MANIFEST" | sed 's/^/  /'
