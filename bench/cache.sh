#!/usr/bin/env bash
# bench/cache.sh: the image cache's fan-out: machines download one image at once
# through a cold `bty serve --cache` from a rate-limited origin.
#
#   bench/cache.sh            full run: 32 machines, a 1 GiB image, an origin at 64 MiB/s
#   bench/cache.sh --smoke    64 MiB, same origin rate
#
# bench/cachefan serves the image on loopback at BENCH_RATE MiB/s (counting
# requests and bytes), times one download from it, then starts bty serve
# --cache cold and times BENCH_MACHINES downloads of the image through it at
# once (every 8th from the middle on, as a resumed download asks), each compared
# byte for byte, then the same again from the complete cache (what serving the
# machines costs this host). Prints the origin's requests and bytes (the goal:
# the image once), the times and the ratio fan-out / one download (the goal:
# within 1.2x), and bty serve's peak RSS; also written to
# $BENCH_DIR/cache-results.md. Fails when a download differs or the origin
# served the image more than once.
#
# Environment:
#   BENCH_DIR       work dir                      (default: bench/out)
#   BTY             bty binary                    (default: go build -o $BENCH_DIR/bty .)
#   BENCH_MIB       the image's size in MiB       (default: 1024; smoke: 64)
#   BENCH_RATE      the origin's rate in MiB/s    (default: 64)
#   BENCH_MACHINES  simulated machines            (default: 32)
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if ((SMOKE)); then
	MIB=${BENCH_MIB:-64}
else
	MIB=${BENCH_MIB:-1024}
fi
RATE=${BENCH_RATE:-64}
MACHINES=${BENCH_MACHINES:-32}

bench_bty
log "building bench/cachefan"
(cd "$REPO" && go build -o "$BENCH_DIR/cachefan" ./bench/cachefan)
WORK=$BENCH_DIR/cache
mkdir -p "$WORK"
log "$MACHINES machines, $MIB MiB, origin at $RATE MiB/s"
"$BENCH_DIR/cachefan" -bty "$BTY" -dir "$WORK" -mib "$MIB" -rate "$RATE" -machines "$MACHINES" | tee "$BENCH_DIR/cache-results.md"
rm -rf "$WORK/cache"
