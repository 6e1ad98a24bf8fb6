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
