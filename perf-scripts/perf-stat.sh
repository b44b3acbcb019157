#!/usr/bin/env bash
# Hardware counters of tandem-server under a fixed redis-benchmark load (IPC, cache misses, context
# switches, page faults), to explain a throughput figure rather than just state it. In a VM without a
# PMU (this project's machines) perf reports the hardware counters as <not supported>; the software
# ones (task-clock, context switches, migrations, page faults) still come.
# Needs: perf (apt-get install linux-perf), redis-benchmark (apt-get install redis-tools).
# Writes: perf stat's table on standard output.
# Usage: perf-scripts/perf-stat.sh [SHARDS=2] [PIPELINE=16] [REQUESTS=2000000]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
SHARDS=${1:-2}; P=${2:-16}; N=${3:-2000000}
pick_ports
$TANDEM --port "$TPORT" --shards "$SHARDS" --save "" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
wait_ping "$TPORT"
redis-benchmark -p "$TPORT" -t set,get -n "$N" -r 1000000 -c 50 -P "$P" -q >/dev/null &
LOAD=$!
perf stat -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions,branches,branch-misses,cache-references,cache-misses \
  -p "$PID" -- sleep "${SECONDS_TO_MEASURE:-5}"
wait $LOAD
