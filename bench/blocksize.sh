#!/usr/bin/env bash
# bench/blocksize.sh: the measurement behind delta reflash's block size
# (docs/delta.md). It builds a GPT+ext4 disk image (version 1) and version 2,
# the same file system with about 2% of the image changed inside it: files
# added and files modified in place, through a loop mount, as a CI job or a
# new image version would. Then `go run ./bench/blocksize` reports, per block
# size, the index's size and what a client holding version 1 fetches.
#
#   sudo bench/blocksize.sh            2 GiB image, 700 MiB of files, ~40 MiB changed
#   sudo bench/blocksize.sh --smoke    64 MiB image
#
# Needs root (loop mount) and sgdisk (gdisk), mkfs.ext4 (e2fsprogs), go.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DISK_MIB=${BENCH_DISK_MIB:-2048}
DATA_MIB=${BENCH_DATA_MIB:-700}
ADD_MIB=${BENCH_ADD_MIB:-30}   # files added in version 2
MOD_MIB=${BENCH_MOD_MIB:-10}   # bytes rewritten inside existing files
if ((SMOKE)); then DISK_MIB=64 DATA_MIB=20 ADD_MIB=1 MOD_MIB=1; fi
[[ $EUID -eq 0 ]] || die "needs root (it loop-mounts version 2 to change it)"
for t in sgdisk mkfs.ext4 losetup go; do command -v $t >/dev/null || die "$t not found"; done

W=$BENCH_DIR/blocksize-$DISK_MIB
mkdir -p "$W"
V1=$W/v1.img V2=$W/v2.img
LOOP= MNT=
cleanup() {
	[[ -n $MNT ]] && { umount "$MNT" 2>/dev/null || true; rmdir "$MNT"; }
	[[ -n $LOOP ]] && losetup -d "$LOOP" 2>/dev/null || true
}
trap cleanup EXIT

# files BUDGET_MIB DIR...: regular files below 8 MiB under the DIRs, in a
# fixed pseudo-random order, up to the budget.
files() {
	local budget=$(($1 << 20))
	shift
	find "$@" -xdev -type f -readable -size -8M -printf '%s\t%p\n' 2>/dev/null |
		LC_ALL=C sort -t $'\t' -k2 | shuf --random-source=<(yes) |
		awk -F'\t' -v b=$budget 't + $1 <= b { t += $1; print $2 }'
}

if [[ ! -e $V1.done ]]; then
	log "building $V1 (${DISK_MIB} MiB, ${DATA_MIB} MiB of files)"
	rm -rf "$W/stage" && mkdir "$W/stage"
	files "$DATA_MIB" /usr/share /usr/local/go | tar --no-recursion -cf - -T - 2>/dev/null | tar -xf - -C "$W/stage"
	truncate -s 0 "$V1.tmp" && truncate -s "${DISK_MIB}M" "$V1.tmp"
	sgdisk -n 1:2048:0 -t 1:8300 "$V1.tmp" >/dev/null
	last=$(sgdisk -i 1 "$V1.tmp" | awk '/^Last sector/ {print $3}')
	fsbytes=$((((last - 2048 + 1) * 512) >> 20 << 20))
	truncate -s 0 "$W/fs.img" && truncate -s "$fsbytes" "$W/fs.img"
	mkfs.ext4 -q -F -d "$W/stage" "$W/fs.img"
	dd if="$W/fs.img" of="$V1.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
	rm -rf "$W/stage" "$W/fs.img"
	mv "$V1.tmp" "$V1" && touch "$V1.done"
fi

log "building $V2: ${ADD_MIB} MiB of files added, ${MOD_MIB} MiB rewritten in place"
cp --sparse=always "$V1" "$V2"
# The partition starts at 1 MiB (no partition nodes needed: a loop at that offset).
LOOP=$(losetup --show -f -o $((1 << 20)) "$V2")
MNT=$(mktemp -d)
mount "$LOOP" "$MNT"
mkdir -p "$MNT/added"
files "$ADD_MIB" /usr/lib | tar --no-recursion -cf - -T - 2>/dev/null | tar -xf - -C "$MNT/added"
# Rewrite 16 KiB in the middle of existing files of at least 64 KiB until
# MOD_MIB is done: scattered small edits, as package upgrades and logs make.
mapfile -d '' mod < <(find "$MNT" -path "$MNT/added" -prune -o -type f -size +64k -print0 | sort -z | head -z -n $((MOD_MIB << 6)))
log "  $(du -sm "$MNT/added" | cut -f1) MiB added, 16 KiB rewritten in each of ${#mod[@]} files"
for f in "${mod[@]}"; do
	dd if=/dev/urandom of="$f" bs=16K count=1 seek=$(($(stat -c %s "$f") / 2 >> 14)) conv=notrunc status=none
done
umount "$MNT" && rmdir "$MNT" && MNT=
losetup -d "$LOOP" && LOOP=

cd "$REPO" && go run ./bench/blocksize "$V1" "$V2"
