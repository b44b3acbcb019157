#!/usr/bin/env bash
# Instructions per request for a fixed workload, counted by callgrind: repeatable on a noisy machine where
# timings are not (compare two commits by their Ir, not their ops/s).
# Needs: valgrind (installed here with apt-get if missing), redis-benchmark (redis-tools).
# Writes: target/perf/callgrind.out.tandem and the top functions by instructions on standard output.
# Usage: perf-scripts/callgrind.sh [REQUESTS=200000]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
ensure_release tandem-server
N=${1:-200000}
pick_ports
rm -f target/perf/callgrind.out.tandem
valgrind --tool=callgrind --callgrind-out-file=target/perf/callgrind.out.tandem --trace-children=no \
  $TANDEM --port "$TPORT" --shards 1 --save "" >/dev/null 2>&1 &
PID=$!
for _ in $(seq 600); do redis-cli -p "$TPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# Fixed keys (no -r): the same commands, the same table, every run.
redis-benchmark -p "$TPORT" -t set,get -n "$N" -c 10 -P 16 -d 100 -q >/dev/null
redis-cli -p "$TPORT" shutdown nosave >/dev/null 2>&1 || true
wait $PID || true
TOTAL=$(callgrind_annotate target/perf/callgrind.out.tandem 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "instructions: $TOTAL total, $((TOTAL / (2 * N))) per request (SET and GET, $N each)"
callgrind_annotate target/perf/callgrind.out.tandem 2>/dev/null | sed -n '/file:function/,+15p'
