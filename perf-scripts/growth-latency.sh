#!/usr/bin/env bash
# SET latency while a server grows from 0 to KEYS keys (sequential new keys, 100-byte values), for
# tandem-server (--shards SHARDS, so each shard grows to KEYS/SHARDS) and redis-server in the same run.
# Prints, per server: overall p99 / p99.9 / max, and the worst per-second p99.9 (a table-resize stall would
# show as one bad second). Needs: redis-server, release builds of tandem-server and tandem-bench, python3.
# Writes: JSON reports under OUT_DIR (default: target/perf/growth-latency).
# Usage: perf-scripts/growth-latency.sh [KEYS=10000000] [SHARDS=1] [OUT_DIR]
set -euo pipefail
KEYS=${1:-10000000}
SHARDS=${2:-1}
OUT=${3:-target/perf/growth-latency}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server tandem-bench
CLIENTS=50
PER_CLIENT=$((KEYS / CLIENTS))
pick_ports
load() { # port json
  target/release/tandem-bench load --port "$1" --threads 1 --clients $CLIENTS --requests $PER_CLIENT \
    --ratio 1:0 --key-pattern S --key-minimum 0 --key-maximum $((KEYS - 1)) --data-size 100 \
    --quiet --json-out "$2" > /dev/null
}
summary() { python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
t = r["total"]
full = [s for s in r["per_second"] if s["ops"] > 0.5 * t["ops_per_sec"]]
worst = max(full, key=lambda s: s["p999_ms"])
print(f'{sys.argv[1]:<24} {t["ops_per_sec"]:>9.0f} SET/s  p99 {t["p99_ms"]:.2f} ms  p99.9 {t["p999_ms"]:.2f} ms  '
      f'max {t["max_ms"]:.2f} ms  worst second p99.9 {worst["p999_ms"]:.2f} ms (s{worst["second"]}, max {worst["max_ms"]:.2f})  errors {t["errors"]}')
PY
}
target/release/tandem-server --port $TPORT --shards "$SHARDS" > "$OUT/tandem.log" 2>&1 &
TPID=$!
trap 'kill $TPID 2>/dev/null || true' EXIT
wait_ping $TPORT
load $TPORT "$OUT/tandem.json"
echo "keys after run: tandem $(redis-cli -p $TPORT dbsize)"
kill $TPID; wait $TPID 2>/dev/null || true
redis-server --port $RPORT --save "" --appendonly no > "$OUT/redis.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null || true' EXIT
wait_ping $RPORT
load $RPORT "$OUT/redis.json"
echo "keys after run: redis $(redis-cli -p $RPORT dbsize)"
echo "SET while growing 0 -> $KEYS keys, 50 connections, pipeline 1 (reports in $OUT)"
summary "tandem (--shards $SHARDS)" "$OUT/tandem.json"
summary "redis-server" "$OUT/redis.json"
