#!/bin/sh
# Build every guests/*.S into OUTDIR/NAME.elf (Multiboot v1 ELF kernels).
# usage: guests/build.sh OUTDIR
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
AS=${AS:-as}
LD=${LD:-ld}
status=0
for src in "$here"/*.S; do
    name=$(basename "$src" .S)
    if "$AS" --32 -I "$here/include" -o "$out/$name.o" "$src" &&
       "$LD" -m elf_i386 -T "$here/link.ld" -nostdlib -o "$out/$name.elf" "$out/$name.o"; then
        echo "built $out/$name.elf"
    else
        echo "FAILED to build $name" >&2
        status=1
    fi
done
exit $status
