#!/usr/bin/env bash
# bench/delta.sh: benchmark delta reflash (bty --delta) against a full flash.
#
#   bench/delta.sh            full run: flash.sh's 2 GiB GPT+ext4 image (v1) and a v2
#                             with about 2% of it changed inside the ext4
#   bench/delta.sh --smoke    CI: flash.sh's 64 MiB image, every result checked
#
# v2 is v1 with files added and files rewritten in place inside its ext4
# (mounted through a loop device at the partition's offset). Both are served by
# a `bty serve` on loopback, which indexes them. On ONE loop device (direct I/O)
# of the image's size, in the same run: a full flash of v2 over HTTP, a read of
# the whole disk by dd (the floor of any delta, which must read it), then with
# v1 on the target a delta of v2 over HTTP (block index), the same again (the
# target holds v2), a full flash and a delta onto random bytes; then the same
# with a local --delta from the file. Each row gives the time, the bytes fetched as the
# client counts them (its --json result: blocks for a delta, the image's
# bytes for a full flash), the bytes bty serve counted as served (images,
# blocks and indexes: bty_served_bytes_total on its /metrics, read before and
# after the row), the bytes the loop device counted as written
# (/sys/block/loopN/stat), and checks the target against v2. Prints a markdown
# table (also $BENCH_DIR/delta-results.md). Needs root.
#
# Environment:
#   BENCH_DIR        work dir, images are cached here       (default: bench/out)
#   BTY              bty binary                             (default: go build -o $BENCH_DIR/bty .)
#   BENCH_DISK_MIB   image size in MiB                      (default: 2048; smoke: 64)
#   BENCH_DATA_MIB   real files copied into the ext4        (default: 700;  smoke: 20)
#   BENCH_CHANGE_PCT part of the image v2 changes, percent  (default: 2)
#   BENCH_RUNS       timed runs per row, median reported    (default: 3; smoke: 1)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ((SMOKE)); then
	DISK_MIB=${BENCH_DISK_MIB:-64}
	DATA_MIB=${BENCH_DATA_MIB:-20}
else
	DISK_MIB=${BENCH_DISK_MIB:-2048}
	DATA_MIB=${BENCH_DATA_MIB:-700}
fi
CHANGE_PCT=${BENCH_CHANGE_PCT:-2}
RUNS=${BENCH_RUNS:-$((SMOKE ? 1 : 3))}

[[ $(id -u) == 0 ]] || die "needs root (losetup, mount, /proc/sys/vm/drop_caches)"
for t in losetup mount sgdisk mkfs.ext4 cmp curl python3; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing (apt-get install -y util-linux gdisk e2fsprogs diffutils curl python3)"
done
grep -qw ext4 /proc/filesystems || modprobe ext4 2>/dev/null || die "this kernel cannot mount ext4 (v2 is made by mounting v1's file system)"

bench_bty

# The same image as flash.sh, from the same cache.
IMGDIR=$(imgdir "$DISK_MIB" "$DATA_MIB")
RAW=$IMGDIR/disk.img
SIZE=$((DISK_MIB * 1024 * 1024))
build_raw "$DISK_MIB" "$DATA_MIB"

LOOPS=()
MNT=""
SERVE=""
cleanup() {
	[[ -n $MNT ]] && umount "$MNT" 2>/dev/null || true
	[[ -n $SERVE ]] && kill "$SERVE" 2>/dev/null || true
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$BENCH_DIR/delta-work"
}
trap cleanup EXIT
WORK=$BENCH_DIR/delta-work
rm -rf "$WORK"
mkdir -p "$WORK/images" "$WORK/mnt"

# v2: about CHANGE_PCT% of the image changed, half as new files, half as files
# rewritten in place (the ext4 keeps their blocks).
V2=$IMGDIR/v2-${CHANGE_PCT}pct.img
if [[ ! -e $V2.done ]]; then
	log "building $V2"
	cp --sparse=always "$RAW" "$V2.tmp"
	part=$(losetup --find --show --offset $((1 << 20)) "$V2.tmp")
	LOOPS+=("$part")
	MNT=$WORK/mnt
	mount "$part" "$MNT"
	budget=$((SIZE / 100 * CHANGE_PCT / 2))
	mkdir -p "$MNT/new"
	head -c "$budget" /dev/urandom | split -b 1M - "$MNT/new/f"
	left=$budget
	while IFS= read -r -d '' f && ((left > 0)); do
		n=$(stat -c %s "$f")
		((n > 0)) || continue
		head -c "$n" /dev/urandom | dd of="$f" conv=notrunc status=none
		left=$((left - n))
	done < <(find "$MNT" -path "$MNT/new" -prune -o -type f -size +16k -print0 | sort -z)
	umount "$MNT"
	MNT=""
	losetup -d "$part"
	LOOPS=()
	mv "$V2.tmp" "$V2"
	touch "$V2.done"
fi
ln -f "$RAW" "$WORK/images/v1.img"
ln -f "$V2" "$WORK/images/v2.img"
CHANGED=$(python3 - "$RAW" "$V2" <<'EOF'
import sys
a, b = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb')
n = 0
while True:
    x, y = a.read(1 << 20), b.read(1 << 20)
    if not x and not y:
        break
    for i in range(0, max(len(x), len(y)), 4096):
        if x[i:i + 4096] != y[i:i + 4096]:
            n += 4096
print(n)
EOF
)
log "v2 differs from v1 in $CHANGED bytes (4 KiB blocks)"

# bty serve on loopback, until its catalog names both images' block indexes.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
"$BTY" serve --images "$WORK/images" --listen "127.0.0.1:$port" --blocks "$WORK/blocks" 2>"$WORK/serve.log" &
SERVE=$!
for ((i = 0; i < 1200; i++)); do
	[[ $(curl -fs "$URL/catalog.toml" | grep -c '^block_index = ') == 2 ]] && break
	sleep 0.5
done
[[ $(curl -fs "$URL/catalog.toml" | grep -c '^block_index = ') == 2 ]] || die "bty serve did not index both images (see $WORK/serve.log)"

# The target: a loop device of the image's size, direct I/O.
truncate -s "$SIZE" "$WORK/target"
TARGET=$(losetup --find --show --direct-io=on "$WORK/target")
LOOPS+=("$TARGET")
written() { echo $(($(awk '{print $7}' "/sys/block/$(basename "$TARGET")/stat") * 512)); }
# served: the bytes bty serve has served (images, blocks, indexes) since it started.
served() { curl -fs "$URL/metrics" | awk '/^bty_served_bytes_total\{/ { n += $2 } END { printf "%.0f\n", n }'; }
mib() { python3 -c "print(f'{$1 / 1048576:.1f}')"; }
cold() { sync && echo 3 >/proc/sys/vm/drop_caches; } # a cold page cache
since() { python3 -c "print(round($(date +%s.%N) - $1, 2))"; } # seconds since T0, 2 decimals

put_v1() { "$BTY" --image "$RAW" --disk "$TARGET" --yes >/dev/null; }
put_random() { dd if=/dev/urandom of="$TARGET" bs=1M count="$DISK_MIB" oflag=direct status=none; }

ROWS=()
SV_LOCAL=0 # what the server served during the local runs
# run NAME SETUP ARGS...: RUNS timed flashes of v2, each after SETUP (a
# command that puts the target in the row's state); records the median
# seconds and, of the last run, fetched (the client's count), served (the
# server's) and written (the device's).
run() {
	local name=$1 setup=$2 before sbefore t0 out times=() k
	shift 2
	for ((k = 0; k < RUNS; k++)); do
		$setup
		cold
		before=$(written)
		sbefore=$(served)
		t0=$(date +%s.%N)
		out=$("$BTY" --disk "$TARGET" --yes --json "$@" | tail -1)
		times+=("$(since "$t0")")
		W=$(($(written) - before))
		SV=$(($(served) - sbefore))
		[[ " $* " == *" --catalog "* ]] || SV_LOCAL=$((SV_LOCAL + SV))
		cmp -s -n "$SIZE" "$TARGET" "$V2" || die "$name: the target differs from v2"
	done
	S=$(median "${times[@]}")
	# The client's count: a delta's blocks, the image a full flash over
	# HTTP read, nothing from the file.
	local key=none
	if [[ " $* " == *" --delta "* ]]; then key=bytes_fetched; elif [[ " $* " == *" --catalog "* ]]; then key=source_bytes; fi
	F=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], 0))" "$out" "$key")
	ROWS+=("| $name | $S | ${times[*]} | $(mib "$F") | $(mib "$SV") | $(mib "$W") |")
	log "$name: ${S}s (${times[*]}), fetched $F (client), served $SV (server), device wrote $W"
}
keep() { :; } # the target holds v2 from the row before

HTTP=(--catalog "$URL/catalog.toml" --image v2.img)
run "full flash of v2 over HTTP" put_v1 "${HTTP[@]}"
T_FULL=$S F_FULL=$F SV_FULL=$SV
# The floor of any delta: reading the whole disk once, as dd does it.
cold
t0=$(date +%s.%N)
dd if="$TARGET" of=/dev/null bs=4M iflag=direct status=none
T_READ=$(since "$t0")
ROWS+=("| reading the disk alone (dd bs=4M iflag=direct) | $T_READ | $T_READ | - | - | - |")
log "reading the disk alone: ${T_READ}s"
run "delta over HTTP, v1 on the target" put_v1 "${HTTP[@]}" --delta
T_DELTA=$S F_DELTA=$F SV_DELTA=$SV W_DELTA=$W
run "delta over HTTP, v2 on the target" keep "${HTTP[@]}" --delta
W_SAME=$W
run "full flash of v2 over HTTP, random target" put_random "${HTTP[@]}"
T_FULLR=$S
run "delta over HTTP, random target" put_random "${HTTP[@]}" --delta
T_RAND=$S
run "full flash of v2 from the file" put_v1 --image "$V2"
T_LFULL=$S
run "local --delta, v1 on the target" put_v1 --image "$V2" --delta
T_LDELTA=$S W_LDELTA=$W
run "local --delta, v2 on the target" keep --image "$V2" --delta
W_LSAME=$W
run "full flash of v2 from the file, random target" put_random --image "$V2"
T_LFULLR=$S
run "local --delta, random target" put_random --image "$V2" --delta
T_LRAND=$S

{
	echo "Delta reflash, ${DISK_MIB} MiB GPT+ext4 image, v2 changes $((CHANGED >> 20)) MiB ($CHANGE_PCT%); loop target with direct I/O; median of $RUNS run(s), each from the row's starting state"
	echo
	echo "| run | seconds (median) | runs | MiB fetched (client) | MiB served (server) | MiB written (device) |"
	echo "|---|---:|---|---:|---:|---:|"
	printf '%s\n' "${ROWS[@]}"
} | tee "$BENCH_DIR/delta-results.md"

fail=0
check() { # check WHAT OK
	if (($2)); then log "ok: $1"; else log "NOT MET: $1" && fail=1; fi
}
check "same image writes nothing (HTTP $W_SAME, local $W_LSAME bytes)" "W_SAME == 0 && W_LSAME == 0"
# The index of 64 KiB blocks (docs/delta.md): a header, a digest per block, a checksum.
INDEX=$((72 + 32 * ((SIZE + 65535) / 65536) + 32))
check "the server served the image a full flash read ($SV_FULL served, $F_FULL read)" "SV_FULL == F_FULL && F_FULL > 0"
check "the server served a delta's blocks and its index ($SV_DELTA served, $F_DELTA fetched + $INDEX)" "SV_DELTA == F_DELTA + INDEX"
check "local runs fetch nothing from the server ($SV_LOCAL bytes served)" "SV_LOCAL == 0"
if ((!SMOKE)); then
	ratio() { python3 -c "print(1 if $1 <= $2 * $3 else 0)"; }
	check "delta over HTTP fetches <= 1.5x the change ($F_DELTA of $CHANGED)" "F_DELTA * 2 <= CHANGED * 3"
	check "delta over HTTP: the server serves <= 1.5x the change ($SV_DELTA of $CHANGED)" "SV_DELTA * 2 <= CHANGED * 3"
	check "delta over HTTP writes <= 1.5x the change ($W_DELTA of $CHANGED)" "W_DELTA * 2 <= CHANGED * 3"
	check "local delta writes <= 1.5x the change ($W_LDELTA of $CHANGED)" "W_LDELTA * 2 <= CHANGED * 3"
	check "delta over HTTP <= 0.3x a full flash ($T_DELTA s vs $T_FULL s; reading the disk alone: $T_READ s)" "$(ratio "$T_DELTA" 0.3 "$T_FULL")"
	check "local delta <= 0.3x a full flash ($T_LDELTA s vs $T_LFULL s)" "$(ratio "$T_LDELTA" 0.3 "$T_LFULL")"
	# A random disk against a full flash onto the same random disk: on a
	# loop device over a file, zeroing what was random frees the file's
	# blocks, and writing there allocates them again, which a flash over
	# the image's older version (mostly holes already) does not pay.
	check "delta onto random <= 1.2x a full flash onto random (HTTP $T_RAND s vs $T_FULLR s; over v1: $T_FULL s)" "$(ratio "$T_RAND" 1.2 "$T_FULLR")"
	check "local delta onto random <= 1.2x a full flash onto random ($T_LRAND s vs $T_LFULLR s; over v1: $T_LFULL s)" "$(ratio "$T_LRAND" 1.2 "$T_LFULLR")"
fi
exit $fail
