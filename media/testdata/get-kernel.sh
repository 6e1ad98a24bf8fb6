#!/bin/sh
# get-kernel.sh [DIR]: put Debian's current amd64 kernel, unpacked, into DIR
# (default $BTY_VM_KERNEL_DIR, else /var/cache/bty-test-kernel) for the VM
# tests (vm_test.go) and for trying `bty media` by hand:
#
#   DIR/boot/vmlinuz-VERSION   the kernel
#   DIR/lib/modules/VERSION/   its modules (no modules.dep: bty media reads
#                              each module's dependencies itself)
#
# The package is the one linux-image-amd64 depends on (the plain amd64 flavour:
# -cloud lacks USB and NVMe drivers). Nothing is done when DIR already holds
# it. Needs apt-get (run apt-get update first) and dpkg; no root needed.
set -eu
dir=${1:-${BTY_VM_KERNEL_DIR:-/var/cache/bty-test-kernel}}
pkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	echo "get-kernel.sh: apt knows no linux-image-amd64: run apt-get update" >&2
	exit 1
fi
if [ -f "$dir/.package" ] && [ "$(cat "$dir/.package")" = "$pkg" ]; then
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt-get download writes into the current directory as its sandbox user
# (_apt) when it may; else it warns and downloads as the caller.
chmod 755 "$tmp"
chown _apt "$tmp" 2>/dev/null || true
(cd "$tmp" && apt-get download -q "$pkg" >/dev/null)
rm -rf "$dir"
mkdir -p "$dir"
dpkg -x "$tmp"/*.deb "$dir"
echo "$pkg" >"$dir/.package"
echo "get-kernel.sh: $pkg in $dir" >&2
