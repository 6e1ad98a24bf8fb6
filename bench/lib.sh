# bench/lib.sh: sourced by the bench scripts after `set -euo pipefail`, with the
# script's arguments: parses --smoke and --help (which prints the script's header
# comment), and defines HERE, REPO, BENCH_DIR (absolute, created), log, die and
# bench_bty, which sets BTY (building bty unless BTY names a binary).

NAME=$(basename "$0")
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	printf '%s: %s\n' "$NAME" "$*" >&2
	exit 1
}

SMOKE=0
for a in "$@"; do
	case $a in
	--smoke) SMOKE=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "$NAME: unknown argument $a (try --help)" >&2
		exit 2
		;;
	esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BENCH_DIR=${BENCH_DIR:-$HERE/out}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

bench_bty() {
	if [[ -z ${BTY:-} ]]; then
		command -v go >/dev/null 2>&1 || die "go not found: install Go or point BTY at a bty binary"
		log "building bty"
		(cd "$REPO" && go build -o "$BENCH_DIR/bty" .)
		BTY=$BENCH_DIR/bty
	fi
	[[ -x $BTY ]] || die "BTY=$BTY is not executable"
}

# The benchmark's disk image, shared by flash.sh and delta.sh, cached in
# imgdir DISK_MIB DATA_MIB under BENCH_DIR (RECIPE changes when the recipe
# below does).
RECIPE=r1
imgdir() { # imgdir DISK_MIB DATA_MIB: the cache directory of that image
	echo "$BENCH_DIR/disk-$1M-data-$2M-$RECIPE"
}

# stage_files DIR MIB: copy about MIB MiB of real files (a mix of Go sources,
# /usr/share and /usr/lib: text, binaries, shared objects, compressed data) into DIR.
# The budget is split evenly over the roots that exist; within a root, files are
# taken in a shuffled order with a fixed seed (a sample of the whole tree, stable on
# one machine) until the budget is full.
stage_files() {
	local dir=$1 left=$(($2 * 1024 * 1024)) roots=() r n list
	for r in /usr/local/go /usr/lib/go /usr/share /usr/lib; do
		[[ -d $r ]] && roots+=("$r")
	done
	# /usr/lib/go is usually a link into /usr/lib; skip it when /usr/local/go exists
	if [[ -d /usr/local/go && -d /usr/lib/go ]]; then
		roots=("${roots[@]/\/usr\/lib\/go/}")
	fi
	list=$(mktemp)
	n=0
	for r in "${roots[@]}"; do [[ -n $r ]] && n=$((n + 1)); done
	for r in "${roots[@]}"; do
		[[ -n $r ]] || continue
		local budget=$((left / n))
		# regular, readable files below 64 MiB, on the root file system only
		find "$r" -xdev -type f -readable -size -64M -printf '%s\t%p\n' 2>/dev/null |
			LC_ALL=C sort -t $'\t' -k2 | shuf --random-source=<(yes) |
			awk -F'\t' -v b="$budget" 't + $1 <= b { t += $1; print $2 }' >"$list.part"
		local got
		got=$(tr '\n' '\0' <"$list.part" | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
		cat "$list.part" >>"$list"
		left=$((left - got))
		n=$((n - 1))
	done
	tar --no-recursion -cf - -T "$list" 2>/dev/null | tar -xf - -C "$dir"
	rm -f "$list" "$list.part"
}

# build_raw DISK_MIB DATA_MIB: build the image of that size once, into its imgdir.
build_raw() {
	local dir raw size=$(($1 * 1024 * 1024))
	dir=$(imgdir "$1" "$2")
	raw=$dir/disk.img
	[[ -e $raw.done ]] && return
	log "building $raw (${1} MiB disk, ${2} MiB of files)"
	mkdir -p "$dir"
	local stage=$dir/stage fs=$dir/fs.img tmp=$raw.tmp
	rm -rf "$stage" "$fs" "$tmp"
	mkdir -p "$stage"
	stage_files "$stage" "$2"
	log "  staged $(du -sh "$stage" | cut -f1) in $(find "$stage" -type f | wc -l) files"

	# GPT with one Linux partition from 1 MiB to the end (sgdisk reserves the
	# backup GPT's 33 sectors at the end).
	truncate -s "$size" "$tmp"
	sgdisk -n 1:2048:0 -t 1:8300 -c 1:rootfs "$tmp" >/dev/null 2>&1 || die "sgdisk failed on $tmp"
	local first last
	first=$(sgdisk -i 1 "$tmp" | awk '/^First sector/ {print $3}')
	last=$(sgdisk -i 1 "$tmp" | awk '/^Last sector/ {print $3}')
	# ext4 as its own file, populated without mounting (mkfs.ext4 -d), sized to
	# the partition rounded down to 1 MiB
	local fsbytes=$((((last - first + 1) * 512) / 1048576 * 1048576))
	truncate -s "$fsbytes" "$fs"
	mkfs.ext4 -q -F -L rootfs -d "$stage" "$fs"
	rm -rf "$stage"
	# copy only what mkfs wrote: the rest of the disk stays a hole (never written)
	dd if="$fs" of="$tmp" bs=1M seek=$((first * 512 / 1048576)) conv=notrunc,sparse status=none
	rm -f "$fs"
	mv "$tmp" "$raw"
	touch "$raw.done"
	log "  $raw: $(du -h "$raw" | cut -f1) allocated of $(du -h --apparent-size "$raw" | cut -f1)"
}

median() { # median of the arguments
	printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'
}
