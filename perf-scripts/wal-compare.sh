#!/usr/bin/env bash
# SET throughput with persistence: redis-server and tandem-server each with `appendonly yes` at
# appendfsync always, everysec and no, and without persistence; alternately, ROUNDS times per pipeline
# depth (1 and 16), 50 clients, 100-byte values. Prints medians, Tandem/Redis in the same mode, each
# mode against the same server without persistence (the log's cost), and Tandem's WAL bytes per SET.
# Needs: redis-server, redis-benchmark (apt-get install redis-server redis-tools); a release build.
# Writes: stdout only (server data under a temporary directory on the same disk as target/).
# Usage: perf-scripts/wal-compare.sh [ROUNDS=5] [SHARDS=2]
set -euo pipefail
ROUNDS=${1:-5}
SHARDS=${2:-2}
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
tmp=$(mktemp -d -p target/perf)
pids=()
trap 'kill ${pids[@]} 2>/dev/null; rm -rf "$tmp"' EXIT
bench() { # port pipeline -> SET ops/s
  local n=$(( $2 == 1 ? 100000 : 1000000 ))
  redis-benchmark -p "$1" -t set -n "$n" -r 1000000 -c 50 -P "$2" -d 100 2>/dev/null |
    awk '/throughput summary/ {print $3}'
}
declare -A R
for mode in always everysec no none; do
  pick_ports
  mkdir -p "$tmp/r-$mode" "$tmp/t-$mode"
  if [ $mode = none ]; then
    ropts=(--appendonly no); topts=()
  else
    ropts=(--appendonly yes --appendfsync $mode); topts=(--appendonly yes --appendfsync $mode)
  fi
  redis-server --port $RPORT --save "" --dir "$tmp/r-$mode" "${ropts[@]}" > "$tmp/r-$mode.log" 2>&1 &
  pids+=($!)
  "$TANDEM" --port $TPORT --shards "$SHARDS" --dir "$tmp/t-$mode" "${topts[@]}" > "$tmp/t-$mode.log" 2>&1 &
  pids+=($!)
  wait_ping $RPORT
  wait_ping $TPORT
  for P in 1 16; do
    : > "$tmp/r"; : > "$tmp/t"
    for _ in $(seq "$ROUNDS"); do
      bench $RPORT $P >> "$tmp/r"
      bench $TPORT $P >> "$tmp/t"
    done
    R[r-$mode-$P]=$(median < "$tmp/r")
    R[t-$mode-$P]=$(median < "$tmp/t")
  done
  if [ $mode != none ]; then
    sets=$(redis-cli -p $TPORT info commandstats | tr -d '\r' | awk -F'[=,]' '/cmdstat_set:/ {print $2}')
    bytes=$(redis-cli -p $TPORT info persistence | tr -d '\r' | awk -F: '/tandem_wal_bytes/ {print $2}')
    R[bytes-$mode]=$(echo "$bytes / $sets" | bc -l)
  fi
  redis-cli -p $RPORT shutdown nosave >/dev/null 2>&1 || true
  redis-cli -p $TPORT shutdown >/dev/null 2>&1 || true
  sleep 0.5
done
for mode in always everysec no none; do
  for P in 1 16; do
    r=${R[r-$mode-$P]}; t=${R[t-$mode-$P]}
    printf "%-8s P=%-2s redis-server %9.0f  tandem(--shards %s) %9.0f  tandem/redis %.2fx" "$mode" "$P" "$r" "$SHARDS" "$t" "$(echo "$t / $r" | bc -l)"
    if [ $mode != none ]; then
      printf "  cost vs none: redis %.2fx tandem %.2fx" "$(echo "$r / ${R[r-none-$P]}" | bc -l)" "$(echo "$t / ${R[t-none-$P]}" | bc -l)"
    fi
    echo
  done
  [ $mode != none ] && printf "%-8s tandem WAL bytes per SET of 100 B: %.1f\n" "$mode" "${R[bytes-$mode]}"
done
