#!/usr/bin/env bash
# Flame graphs with perf and inferno (a flame graph tool from the Rust registry).
# Needs: perf (apt-get install linux-perf), inferno (installed here with `cargo install inferno` if missing).
# Writes: an SVG flame graph.
# Usage:
#   perf-scripts/flamegraph.sh pid PID [SECONDS=10] [OUT=target/perf/flame.svg]       one running process
#   perf-scripts/flamegraph.sh resync [KEYS=10000000] [OUT=target/perf/flame-resync.svg]
#       a new-replica full sync of KEYS keys (tandem-bench resync), both sides recorded system-wide; each
#       process is its own tower (stacks are prefixed with process name and pid).
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install inferno --locked
DATA=$(mktemp /tmp/tandem-perf.XXXXXX)
trap 'rm -f "$DATA"' EXIT
case "${1:-}" in
  pid)
    PID=$2; SECS=${3:-10}; OUT=${4:-target/perf/flame.svg}
    perf record -F 999 -g -o "$DATA" -p "$PID" -- sleep "$SECS"
    perf script -i "$DATA" | inferno-collapse-perf | inferno-flamegraph --title "pid $PID, ${SECS}s" > "$OUT"
    ;;
  resync)
    ensure_release tandem-server tandem-bench
    KEYS=${2:-10000000}; OUT=${3:-target/perf/flame-resync.svg}
    # Populating takes a few seconds and is not what is measured: start recording once the replica exists.
    target/release/tandem-bench resync new-replica --keys "$KEYS" --out-dir target/perf/flame-resync &
    BENCH=$!
    for _ in $(seq 600); do
      [ "$(pgrep -f 'tandem-server.*/replica' | head -1)" ] && break
      sleep 0.1
    done
    perf record -F 999 -g -a -o "$DATA" -- sleep "${SYNC_SECONDS:-6}"
    wait $BENCH
    perf script -i "$DATA" | inferno-collapse-perf --pid | grep -E '^(shard|tandem)' \
      | inferno-flamegraph --title "full sync of $KEYS keys: primary and replica" > "$OUT"
    ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
echo "wrote $OUT"
