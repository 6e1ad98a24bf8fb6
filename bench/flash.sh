#!/usr/bin/env bash
# bench/flash.sh: benchmark bty's flash engine against the reference tools.
#
#   bench/flash.sh            full run: 2 GiB GPT+ext4 image, BENCH_RUNS (3) runs per pair
#   bench/flash.sh --smoke    CI: 64 MiB image, one run per command, every result checked
#
# Builds (and caches) a disk image and its xz, zstd, gzip, bzip2 and qcow2 forms plus a
# bmap, attaches ONE loop device over a scratch file of exactly the image's size, and
# times bty against dd, the decompressor|dd pipelines, qemu-img convert and bmaptool
# copy on that loop device. The fast-target rows (fast-*) do the same with a second,
# 1 GiB image on a loop device over a tmpfs file, sources on tmpfs too, where writing
# costs next to nothing and hashing and decoding show. Prints a markdown table (also
# written to $BENCH_DIR/results.md). Needs root (losetup, drop_caches). See
# bench/README.md.
#
# Environment:
#   BENCH_DIR        work dir, images are cached here       (default: bench/out)
#   BENCH_RUNS       timed runs per command, median taken   (default: 3; smoke: 1)
#   BTY              bty binary                             (default: go build -o $BENCH_DIR/bty .)
#   BTY_BASE         a second bty binary (e.g. an older commit), timed in the same runs
#                    as BTY and the reference: its own columns show before and after
#   BENCH_DISK_MIB   image size in MiB                      (default: 2048; smoke: 64)
#   BENCH_DATA_MIB   real files copied into the ext4        (default: 700;  smoke: 20)
#   BENCH_LOOP_DIO   1: loop device with --direct-io=on     (default: 1)
#   BENCH_TMPFS      tmpfs dir for the decoder-only rows and the fast target (default: /dev/shm)
#   BENCH_FAST_MIB   fast-target image size in MiB          (default: 1024; smoke: 64)
#   BENCH_FAST_DATA_MIB  real files in it                   (default: 300;  smoke: 20)
#   BENCH_ONLY       space-separated subset of: raw bmap xz xz1 zstd gzip bzip2 qcow2 xzdec xz1dec
#                    fast-raw fast-sum fast-zstd fast-gzip
#   BENCH_NICE       e.g. -10: run timed commands at this nice level (shared machines)
#   BENCH_SETTLE     seconds to pause before each timed run  (default: 5; smoke: 0)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ((SMOKE)); then
	RUNS=${BENCH_RUNS:-1}
	SETTLE=${BENCH_SETTLE:-0}
	DISK_MIB=${BENCH_DISK_MIB:-64}
	DATA_MIB=${BENCH_DATA_MIB:-20}
	FAST_MIB=${BENCH_FAST_MIB:-64}
	FAST_DATA_MIB=${BENCH_FAST_DATA_MIB:-20}
else
	RUNS=${BENCH_RUNS:-3}
	SETTLE=${BENCH_SETTLE:-5}
	DISK_MIB=${BENCH_DISK_MIB:-2048}
	DATA_MIB=${BENCH_DATA_MIB:-700}
	FAST_MIB=${BENCH_FAST_MIB:-1024}
	FAST_DATA_MIB=${BENCH_FAST_DATA_MIB:-300}
fi
LOOP_DIO=${BENCH_LOOP_DIO:-1}
# On a shared machine, BENCH_NICE=-10 runs every timed command (bty and references
# alike) at a higher CPU and I/O priority than the background load.
PRIO=()
[[ -n ${BENCH_NICE:-} ]] && PRIO=(nice -n "$BENCH_NICE" ionice -c2 -n0)
TMPFS=${BENCH_TMPFS:-/dev/shm}
ONLY=${BENCH_ONLY:-raw bmap xz xz1 zstd gzip bzip2 qcow2 xzdec xz1dec fast-raw fast-sum fast-zstd fast-gzip}


# ---------------------------------------------------------------- preflight

[[ $(id -u) == 0 ]] || die "needs root (losetup, blkdiscard, /proc/sys/vm/drop_caches)"

missing=()
need() { # need TOOL PACKAGE
	command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package: $2)")
}
need losetup mount
need blkdiscard util-linux
need truncate coreutils
need dd coreutils
need cmp diffutils
need tar tar
need xz xz-utils
need zstd zstd
need gzip gzip
need bzip2 bzip2
need qemu-img qemu-utils
need bmaptool bmap-tools
need sgdisk gdisk
need mkfs.ext4 e2fsprogs
need lscpu util-linux
need sha256sum coreutils
[[ -x /usr/bin/time ]] || missing+=("/usr/bin/time (Debian package: time)")
if ((${#missing[@]})); then
	printf 'flash.sh: missing tools:\n' >&2
	printf '  %s\n' "${missing[@]}" >&2
	die "install them first, e.g. apt-get install -y qemu-utils bmap-tools xz-utils zstd gzip bzip2 gdisk e2fsprogs time"
fi
# pigz builds the .gz faster; plain gzip gives the same format.
GZ_BUILD=gzip
command -v pigz >/dev/null 2>&1 && GZ_BUILD=pigz

# ---------------------------------------------------------------- bty binary

bench_bty

# ---------------------------------------------------------------- image

# The images are cached by imgdir (bench/lib.sh).
IMGDIR=$(imgdir "$DISK_MIB" "$DATA_MIB")
RAW=$IMGDIR/disk.img
SIZE=$((DISK_MIB * 1024 * 1024))
# The fast-target rows' image: the same recipe, its own size.
FIMGDIR=$(imgdir "$FAST_MIB" "$FAST_DATA_MIB")
FRAW=$FIMGDIR/disk.img
FSIZE=$((FAST_MIB * 1024 * 1024))

# build_raw (bench/lib.sh) builds $RAW and $FRAW.

# build_form IN OUT CMD...: run CMD (reading IN, writing stdout) into OUT, once.
build_form() {
	local in=$1 out=$2
	shift 2
	[[ -e $out.done ]] && return
	log "building $(basename "$out")"
	"$@" <"$in" >"$out.tmp"
	mv "$out.tmp" "$out"
	touch "$out.done"
}

# Default levels throughout. xz -T0 only speeds up building; it also splits the
# stream into blocks (xz 5.4 single-threaded would write one block; 5.6+ defaults
# to -T0 anyway). zstd -3 is its default level; pigz -6 writes ordinary gzip.
# Only the forms the selected rows read are built.
wants() { # wants ROW...: is any of the rows selected?
	local r
	for r; do [[ " $ONLY " == *" $r "* ]] && return 0; done
	return 1
}
DISK_ROWS=0
wants raw bmap xz xz1 zstd gzip bzip2 qcow2 xzdec xz1dec && DISK_ROWS=1
((DISK_ROWS)) && build_raw "$DISK_MIB" "$DATA_MIB"
wants xz xzdec && build_form "$RAW" "$RAW.xz" xz -T0 -c
# The same image as one block (xz -T1, as xz 5.4 writes by default): one core decodes it.
wants xz1 xz1dec && build_form "$RAW" "$RAW.T1.xz" xz -T1 -c
wants zstd && build_form "$RAW" "$RAW.zst" zstd -q -T0 -c
wants gzip && build_form "$RAW" "$RAW.gz" "$GZ_BUILD" -c
wants bzip2 && build_form "$RAW" "$RAW.bz2" bzip2 -c
wants fast-raw fast-sum fast-zstd fast-gzip && build_raw "$FAST_MIB" "$FAST_DATA_MIB"
wants fast-zstd && build_form "$FRAW" "$FRAW.zst" zstd -q -T0 -c
wants fast-gzip && build_form "$FRAW" "$FRAW.gz" "$GZ_BUILD" -c
if wants qcow2 && [[ ! -e $IMGDIR/disk.qcow2.done ]]; then
	log "building disk.qcow2"
	qemu-img convert -f raw -O qcow2 "$RAW" "$IMGDIR/disk.qcow2"
	touch "$IMGDIR/disk.qcow2.done"
fi
if wants bmap && [[ ! -e $IMGDIR/disk.bmap.done ]]; then
	log "building disk.bmap"
	bmaptool -q create -o "$IMGDIR/disk.bmap" "$RAW"
	touch "$IMGDIR/disk.bmap.done"
fi

# ---------------------------------------------------------------- target

# The loop device's backing file is exactly the image's size: on a larger target
# bty moves the backup GPT to the real end (and so rewrites the primary header),
# and the byte comparison with the image would rightly differ.
BACKING=$BENCH_DIR/target.img
LOOP=
DECOUT=
FASTDIR=
FLOOP=
cleanup() {
	[[ -n $LOOP ]] && losetup -d "$LOOP" 2>/dev/null || true
	[[ -n $FLOOP ]] && losetup -d "$FLOOP" 2>/dev/null || true
	[[ -n $DECOUT ]] && rm -f "$DECOUT" || true
	[[ -n $FASTDIR ]] && rm -rf "$FASTDIR" || true
	rm -f "$BACKING"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -f "$BACKING"
truncate -s "$SIZE" "$BACKING"
dio=()
((LOOP_DIO)) && dio=(--direct-io=on)
LOOP=$(losetup --find --show "${dio[@]}" "$BACKING")
[[ $LOOP == /dev/loop* ]] || die "losetup returned '$LOOP'"
log "target: $LOOP over $BACKING ($(losetup -n -O DIO,LOG-SEC "$LOOP" | awk '{print "dio=" $1 ", sector=" $2}'))"

# Decoder-only row: a regular file on tmpfs, where writing costs next to nothing.
if [[ $(stat -f -c %T "$TMPFS" 2>/dev/null) != tmpfs ]]; then
	log "warning: BENCH_TMPFS=$TMPFS is not tmpfs; the decoder-only row will include disk writes"
fi
DECOUT=$TMPFS/bty-bench-decode.$$.img

# The fast target: the image, its forms and the target all on tmpfs, so that
# neither reading nor writing costs much and what bty does beside them shows
# (hashing, copies, decoding), as on an NVMe disk. The sidecar row reads the
# same file through a hard link in sum/, beside its .sha256.
if wants fast-raw fast-sum fast-zstd fast-gzip; then
	[[ $(stat -f -c %T "$TMPFS" 2>/dev/null) == tmpfs ]] || die "BENCH_TMPFS=$TMPFS is not tmpfs: the fast-target rows need one (or leave fast-* out of BENCH_ONLY)"
	# the image's data and forms, and a target written in full (dd writes the zeros)
	need=$(($({ du -cm "$FRAW" "$FRAW".zst "$FRAW".gz 2>/dev/null || true; } | tail -1 | cut -f1) + FAST_MIB)) # a form not selected is missing: du still totals the rest
	avail=$(awk '/^MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
	((avail > 2 * need)) || die "the fast-target rows need about $need MiB of tmpfs and only $avail MiB of memory is available: set BENCH_FAST_MIB (and BENCH_FAST_DATA_MIB) smaller"
	FASTDIR=$(mktemp -d "$TMPFS/bty-bench-fast.XXXXXX")
	cp --sparse=always "$FRAW" "$FASTDIR/disk.img"
	for f in zst gz; do
		[[ -e $FRAW.$f ]] && cp "$FRAW.$f" "$FASTDIR/disk.img.$f"
	done
	mkdir "$FASTDIR/sum"
	ln "$FASTDIR/disk.img" "$FASTDIR/sum/disk.img"
	(cd "$FASTDIR" && sha256sum disk.img >sum/disk.img.sha256)
	truncate -s "$FSIZE" "$FASTDIR/target.img"
	FLOOP=$(losetup --find --show "${dio[@]}" "$FASTDIR/target.img")
	[[ $FLOOP == /dev/loop* ]] || die "losetup returned '$FLOOP'"
	log "fast target: $FLOOP over $FASTDIR/target.img on tmpfs ($(losetup -n -O DIO,LOG-SEC "$FLOOP" | awk '{print "dio=" $1 ", sector=" $2}'))"
fi

# Each row works on one of the two targets and its image: T_LOOP, T_RAW and
# T_SIZE are the row's (use_target sets them).
use_target() { # use_target ROWNAME
	if [[ $1 == fast-* ]]; then
		T_LOOP=$FLOOP T_RAW=$FRAW T_SIZE=$FSIZE
	else
		T_LOOP=$LOOP T_RAW=$RAW T_SIZE=$SIZE
	fi
}

# reset: every run starts from the same state: the whole target discarded (the
# loop device punches the backing file back to a hole, reads give zeros), dirty
# pages written, page cache dropped so every tool reads its source cold. On the
# fast target only the discard: its sources live in memory anyway.
reset_target() {
	blkdiscard -f "$T_LOOP" 2>/dev/null || die "blkdiscard $T_LOOP failed"
	[[ $T_LOOP == "$FLOOP" ]] && return
	# bty writes to an existing regular file only (a missing path is "disk not found")
	rm -f "$DECOUT"
	: >"$DECOUT"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	# A virtual disk's host goes on with the last run's writes and discards for
	# a few seconds; without a pause a command's time depends on which one ran
	# before it (the same bty binary: 4.2 s right after bmaptool, 3.4 s right
	# after itself).
	sleep "$SETTLE"
}

# dirty_target: fill the target with 0xff so a skipped zero range shows up in cmp.
dirty_target() {
	tr '\0' '\377' </dev/zero | dd of="$T_LOOP" bs=4M iflag=fullblock oflag=direct count=$((T_SIZE / 4194304)) status=none 2>/dev/null || true
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# check WHAT DEST: the first T_SIZE bytes of DEST must equal the row's raw image.
check() {
	if ! cmp -n "$T_SIZE" "$T_RAW" "$2" >/dev/null 2>&1; then
		cmp -n "$T_SIZE" "$T_RAW" "$2" 2>&1 | head -1 >&2 || true
		die "FAIL: $1 left $2 different from $T_RAW"
	fi
	# a file target must also have the image's length
	if [[ -f $2 ]] && (($(stat -c %s "$2") != T_SIZE)); then
		die "FAIL: $1 left $2 with length $(stat -c %s "$2"), want $T_SIZE"
	fi
}

# timed OUTVAR CMD...: run CMD under /usr/bin/time; OUTVAR gets "seconds rss_kib".
timed() {
	local -n _res=$1
	shift
	local tf rc=0
	tf=$(mktemp)
	/usr/bin/time -f '%e %M' -o "$tf" "${PRIO[@]}" "$@" >"$tf.out" 2>"$tf.err" || rc=$?
	if ((rc != 0)); then
		tail -5 "$tf.out" "$tf.err" >&2
		rm -f "$tf" "$tf.out" "$tf.err"
		die "FAIL (exit $rc): $*"
	fi
	_res=$(tail -1 "$tf")
	rm -f "$tf" "$tf.out" "$tf.err"
}

peak() { # the largest of the arguments
	printf '%s\n' "$@" | sort -n | tail -1
}

DD="of=$LOOP bs=4M oflag=direct conv=fsync"
DDP="dd of=$LOOP bs=4M iflag=fullblock oflag=direct conv=fsync"
# rows: name | source for bty | bty target | reference (shell) | shown reference | target ratio
ROWS=(
	"raw|$RAW|$LOOP|dd if=$RAW $DD status=none|dd bs=4M oflag=direct conv=fsync|0.5"
	"bmap|$RAW|$LOOP|bmaptool -q copy --bmap $IMGDIR/disk.bmap $RAW $LOOP|bmaptool copy --bmap (raw)|1.0"
	"xz|$RAW.xz|$LOOP|xz -dc $RAW.xz \| $DDP status=none|xz -dc \| dd|1.0"
	"xz1|$RAW.T1.xz|$LOOP|xz -dc $RAW.T1.xz \| $DDP status=none|xz -dc \| dd (one block, xz -T1)|1.3"
	"zstd|$RAW.zst|$LOOP|zstd -dc $RAW.zst \| $DDP status=none|zstd -dc \| dd|1.0"
	"gzip|$RAW.gz|$LOOP|gzip -dc $RAW.gz \| $DDP status=none|gzip -dc \| dd|0.5"
	"bzip2|$RAW.bz2|$LOOP|bzip2 -dc $RAW.bz2 \| $DDP status=none|bzip2 -dc \| dd|1.0"
	"qcow2|$IMGDIR/disk.qcow2|$LOOP|qemu-img convert -f qcow2 -O raw -t none $IMGDIR/disk.qcow2 $LOOP|qemu-img convert -O raw -t none|1.0"
	"xzdec|$RAW.xz|$DECOUT|xz -dc $RAW.xz > $DECOUT|xz -dc > tmpfs file (decoder only)|info"
	"xz1dec|$RAW.T1.xz|$DECOUT|xz -dc $RAW.T1.xz > $DECOUT|xz -dc > tmpfs file (one block, decoder only)|1.25"
	"fast-raw|$FASTDIR/disk.img|$FLOOP|dd if=$FASTDIR/disk.img of=$FLOOP bs=4M oflag=direct conv=fsync status=none|dd bs=4M oflag=direct conv=fsync|0.5"
	"fast-sum|$FASTDIR/sum/disk.img|$FLOOP|sha256sum $FASTDIR/disk.img|sha256sum (hashing alone)|1.1"
	"fast-zstd|$FASTDIR/disk.img.zst|$FLOOP|zstd -dc $FASTDIR/disk.img.zst \| dd of=$FLOOP bs=4M iflag=fullblock oflag=direct conv=fsync status=none|zstd -dc \| dd|1.0"
	"fast-gzip|$FASTDIR/disk.img.gz|$FLOOP|gzip -dc $FASTDIR/disk.img.gz \| dd of=$FLOOP bs=4M iflag=fullblock oflag=direct conv=fsync status=none|gzip -dc \| dd|0.5"
)
# The pipes in the reference strings are escaped (\|) only to survive the | split.
split_row() { # split_row ROW: sets name src dst ref shown goal
	local r=${1//\\|/$'\x01'}
	IFS='|' read -r name src dst ref shown goal <<<"$r"
	ref=${ref//$'\x01'/|}
	shown=${shown//$'\x01'/|}
}

bty_cmd() { # bty_cmd SRC DST [BINARY]
	printf '%q --image %q --disk %q --yes --json' "${3:-$BTY}" "$1" "$2"
}
if [[ -n ${BTY_BASE:-} ]]; then
	[[ -x $BTY_BASE ]] || die "BTY_BASE=$BTY_BASE is not executable"
fi

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A REF_T BTY_T BTY_M PAIRS BASE_T BASE_M
for row in "${ROWS[@]}"; do
	split_row "$row"
	[[ " $ONLY " == *" $name "* ]] || continue
	use_target "$name"
	[[ $name == fast-* && -z ${LOADF:-} ]] && LOADF=$(cut -d' ' -f1-3 /proc/loadavg)
	# untimed correctness run of bty on a dirty target: every zero range must be
	# zeroed, not skipped (raw only in a full run; every format in smoke mode)
	if [[ $dst == "$T_LOOP" && $name != bmap ]] && { ((SMOKE)) || [[ $name == raw || $name == fast-raw ]]; }; then
		log "$name: bty on a 0xff-filled target (correctness)"
		dirty_target
		timed junk bash -c "$(bty_cmd "$src" "$dst")"
		check "bty ($name, dirty target)" "$dst"
	fi
	refs=() btys=() rss=() pairs=() bases=() brss=()
	for ((i = 1; i <= RUNS; i++)); do
		# rotate who goes first
		order=(ref bty)
		((i % 2 == 0)) && order=(bty ref)
		if [[ -n ${BTY_BASE:-} ]]; then
			order=(ref bty base ref bty)
			order=("${order[@]:i%3:3}")
		fi
		for who in "${order[@]}"; do
			reset_target
			if [[ $who == ref ]]; then
				timed res bash -o pipefail -c "$ref"
				refs+=("${res% *}")
				# bmaptool leaves unmapped ranges alone; the discarded target reads zero
				# (sha256sum writes nothing)
				[[ $name == fast-sum ]] || check "reference ($name)" "$dst"
			elif [[ $who == bty ]]; then
				timed res bash -c "$(bty_cmd "$src" "$dst")"
				btys+=("${res% *}")
				rss+=("${res#* }")
				check "bty ($name)" "$dst"
			else
				timed res bash -c "$(bty_cmd "$src" "$dst" "$BTY_BASE")"
				bases+=("${res% *}")
				brss+=("${res#* }")
				check "bty base ($name)" "$dst"
			fi
			log "$name run $i $who: ${res% *} s"
		done
		pairs+=("$(awk -v b="${btys[-1]}" -v r="${refs[-1]}" 'BEGIN { if (r > 0) printf "%.2f", b / r; else print 0 }')")
	done
	# the spread of bty/ref within each run's pair: how much the machine moved
	PAIRS[$name]=$(printf '%s\n' "${pairs[@]}" | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { print (a == b ? a : a "–" b) }')
	REF_T[$name]=$(median "${refs[@]}")
	BTY_T[$name]=$(median "${btys[@]}")
	BTY_M[$name]=$(peak "${rss[@]}")
	if [[ -n ${BTY_BASE:-} ]]; then
		BASE_T[$name]=$(median "${bases[@]}")
		BASE_M[$name]=$(peak "${brss[@]}")
	fi
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
rm -f "$DECOUT"

# ---------------------------------------------------------------- report

cpu=$(lscpu | awk -F: '/^Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
fsdev=$(df --output=source,fstype "$BENCH_DIR" | tail -1 | tr -s ' ')
btyver=$("$BTY" --version 2>/dev/null | head -1 || true)
out=$BENCH_DIR/results.md
{
	echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $mem RAM, Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start: $LOAD0"
	if ((DISK_ROWS)); then
		echo "Image: ${DISK_MIB} MiB GPT disk, ext4 with ${DATA_MIB} MiB of files ($(du -m "$RAW" | cut -f1) MiB allocated);" \
			"target: $LOOP over a file on $fsdev (loop dio=$LOOP_DIO); median of $RUNS run(s), cold cache and a ${SETTLE} s pause before each run${BENCH_NICE:+, timed commands at nice $BENCH_NICE}."
	fi
	if [[ -n ${LOADF:-} ]]; then
		echo "Fast target (fast-*): ${FAST_MIB} MiB GPT disk, ext4 with ${FAST_DATA_MIB} MiB of files ($(du -m "$FRAW" | cut -f1) MiB allocated), sources and a loop device (dio=$LOOP_DIO) over a file all on tmpfs; median of $RUNS run(s), no pause; load average at the first fast row: $LOADF, at the end: $LOAD1."
	fi
	echo "bty: ${btyver:-$BTY}; $(xz --version | head -1), zstd $(zstd -V | grep -o 'v[0-9.]*'), gzip $(gzip --version | head -1 | awk '{print $2}'), bzip2 $(bzip2 --help 2>&1 | head -1 | grep -o "[0-9][0-9.]*[0-9]" | head -1), $(qemu-img --version | head -1), $(bmaptool --version 2>&1)"
	echo
	echo "| format | reference command | ref s | bty s | bty/ref | per run | target | bty peak RSS MiB | meets |"
	echo "|---|---|---:|---:|---:|---:|---|---:|---|"
	for row in "${ROWS[@]}"; do
		split_row "$row"
		[[ -n ${BTY_T[$name]:-} ]] || continue
		r=${REF_T[$name]} b=${BTY_T[$name]} m=$((BTY_M[$name] / 1024))
		ratio=$(awk -v b="$b" -v r="$r" 'BEGIN { if (r > 0) printf "%.2f", b / r; else print "n/a" }')
		label=$name
		[[ $name == bmap ]] && label=raw
		[[ $name == xzdec ]] && label="xz (decoder only)"
		[[ $name == xz1 ]] && label="xz, one block"
		[[ $name == xz1dec ]] && label="xz, one block (decoder only)"
		[[ $name == fast-raw ]] && label="raw, fast target"
		[[ $name == fast-sum ]] && label="raw + sidecar, fast target"
		[[ $name == fast-zstd ]] && label="zstd, fast target"
		[[ $name == fast-gzip ]] && label="gzip, fast target"
		case $goal in
		info) tgt="(beside xz)" ;;
		1.0~) tgt="≈ 1.0 (decoder-bound)" ;;
		*) tgt="≤ $goal" ;;
		esac
		ok=yes
		if [[ $goal != info && $goal != "1.0~" ]]; then
			awk -v x="$ratio" -v g="$goal" 'BEGIN { exit !(x <= g) }' || ok="no"
		elif [[ $goal == "1.0~" ]]; then
			ok="—"
		else
			ok="—"
		fi
		((m <= 100)) || ok="$ok (RSS > 100)"
		# a | inside a table cell must be escaped, code span or not
		echo "| $label | \`${shown//|/\\|}\` | $r | $b | $ratio | ${PAIRS[$name]} | $tgt | $m | $ok |"
	done
	if [[ -n ${BTY_BASE:-} ]]; then
		echo
		echo "Before and after, in the same runs: base is $("$BTY_BASE" --version 2>/dev/null | head -1 || echo "$BTY_BASE")."
		echo
		echo "| row | ref s | base s | base/ref | bty s | bty/ref | base peak RSS MiB | bty peak RSS MiB |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|"
		for row in "${ROWS[@]}"; do
			split_row "$row"
			[[ -n ${BASE_T[$name]:-} ]] || continue
			r=${REF_T[$name]}
			awk -v n="$name" -v r="$r" -v a="${BASE_T[$name]}" -v b="${BTY_T[$name]}" -v am="${BASE_M[$name]}" -v bm="${BTY_M[$name]}" \
				'BEGIN { printf "| %s | %s | %s | %.2f | %s | %.2f | %d | %d |\n", n, r, a, (r > 0 ? a / r : 0), b, (r > 0 ? b / r : 0), am / 1024, bm / 1024 }'
		done
	fi
} | tee "$out"
log "written to $out"
((SMOKE)) && log "smoke run passed: every result byte-identical to the image"
exit 0
