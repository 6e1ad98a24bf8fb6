#!/usr/bin/env bash
# bench/serve.sh: bty serve's throughput on loopback against a reference static server.
#
#   bench/serve.sh            full run: 1 GiB image, 1, 8 and 32 concurrent full downloads
#   bench/serve.sh --smoke    CI: 32 MiB image, one run each, every download checked
#
# Serves one image directory twice, with `bty serve` and with `python3 -m http.server`,
# and times N concurrent full downloads (curl to /dev/null) of the same image from
# each, from a warm page cache. Prints a markdown table of aggregate MB/s and the ratio
# bty/reference (also written to $BENCH_DIR/serve-results.md). Needs curl and python3,
# not root.
#
# Environment:
#   BENCH_DIR        work dir, the image is cached here      (default: bench/out)
#   BENCH_RUNS       timed runs per cell, median taken       (default: 3; smoke: 1)
#   BTY              bty binary                              (default: go build -o $BENCH_DIR/bty .)
#   BENCH_SERVE_MIB  image size in MiB                       (default: 1024; smoke: 32)
#   BENCH_CLIENTS    concurrency levels                      (default: "1 8 32")
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ((SMOKE)); then
	RUNS=${BENCH_RUNS:-1}
	MIB=${BENCH_SERVE_MIB:-32}
else
	RUNS=${BENCH_RUNS:-3}
	MIB=${BENCH_SERVE_MIB:-1024}
fi
CLIENTS=${BENCH_CLIENTS:-1 8 32}

for tool in curl python3 sha256sum; do
	command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install curl python3 coreutils)"
done

bench_bty

IMGDIR=$BENCH_DIR/serve-${MIB}M
IMG=$IMGDIR/disk.img
SIZE=$((MIB << 20))
if [[ ! -f $IMG || $(stat -c %s "$IMG") != "$SIZE" ]]; then
	log "making a ${MIB} MiB image of random bytes"
	mkdir -p "$IMGDIR"
	head -c "$SIZE" /dev/urandom >"$IMG.tmp"
	mv "$IMG.tmp" "$IMG"
fi
WANT=$(sha256sum "$IMG" | cut -d' ' -f1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { # url
	for _ in $(seq 200); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.05
	done
	die "nothing answers at $1"
}

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

BTY_PORT=$(free_port)
"$BTY" serve --images "$IMGDIR" --listen "127.0.0.1:$BTY_PORT" 2>"$BENCH_DIR/serve-bty.log" &
PIDS+=($!)
PY_PORT=$(free_port)
python3 -m http.server "$PY_PORT" --bind 127.0.0.1 --directory "$IMGDIR" >/dev/null 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$BTY_PORT/healthz"
wait_up "http://127.0.0.1:$PY_PORT/"
# /catalog.toml waits for the digest, so hashing is over before timing starts.
curl -fs "http://127.0.0.1:$BTY_PORT/catalog.toml" | grep -q "$WANT" || die "bty serve's catalog lacks the image's sha256"
cat "$IMG" >/dev/null # warm page cache: both servers read from memory

# run URL N: N concurrent full downloads; prints aggregate MB/s. Every download
# must deliver the whole image; in smoke mode one is also hashed.
run() {
	local url=$1 n=$2 tmp start end i failed=0 body
	local -a curls=()
	tmp=$(mktemp -d)
	start=$(date +%s%N)
	for ((i = 0; i < n; i++)); do
		body=/dev/null
		((SMOKE && i == 0)) && body=$tmp/body
		curl -fsS -o "$body" -w '%{size_download}\n' "$url" >"$tmp/$i" &
		curls+=($!)
	done
	for p in "${curls[@]}"; do wait "$p" || failed=1; done
	end=$(date +%s%N)
	((failed == 0)) || die "a download from $url failed"
	for ((i = 0; i < n; i++)); do
		[[ $(cat "$tmp/$i") == "$SIZE" ]] || die "download $i from $url delivered $(cat "$tmp/$i") bytes, want $SIZE"
	done
	if ((SMOKE)); then
		[[ $(sha256sum "$tmp/body" | cut -d' ' -f1) == "$WANT" ]] || die "download from $url has the wrong sha256"
	fi
	rm -rf "$tmp"
	awk -v n="$n" -v s="$SIZE" -v ns="$((end - start))" 'BEGIN { printf "%.0f\n", n * s / (ns / 1e9) / 1e6 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

OUT=$BENCH_DIR/serve-results.md
{
	echo "bty serve vs python3 -m http.server: concurrent full downloads of a ${MIB} MiB image on loopback, median of $RUNS"
	echo
	echo "| clients | bty serve MB/s | http.server MB/s | ratio bty/reference |"
	echo "|---:|---:|---:|---:|"
} >"$OUT"
for n in $CLIENTS; do
	log "$n concurrent downloads"
	b=$(for ((r = 0; r < RUNS; r++)); do run "http://127.0.0.1:$BTY_PORT/images/disk.img" "$n"; done | median)
	p=$(for ((r = 0; r < RUNS; r++)); do run "http://127.0.0.1:$PY_PORT/disk.img" "$n"; done | median)
	awk -v n="$n" -v b="$b" -v p="$p" 'BEGIN { printf "| %d | %d | %d | %.2f |\n", n, b, p, b / p }' >>"$OUT"
done
lines=$(wc -l <"$BENCH_DIR/serve-bty.log")
log "bty serve logged $lines request lines"
cat "$OUT"
