#!/usr/bin/env bash
# Full-sync and partial-resync figures of issue 3, Tandem against redis-server in the same run.
# Needs: a release build (built if missing), redis-server (apt-get install redis-server).
# Writes: one directory per configuration under ${OUT:-target/perf/resync-results}/ (JSON report + SVG charts per round),
# and prints each configuration's table of medians and the ratio redis/tandem.
# Usage: perf-scripts/resync-compare.sh [KEYS=10000000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server tandem-bench
KEYS=${1:-10000000}
ROUNDS=${2:-3}
OUT=${OUT:-target/perf/resync-results}
REDIS=${REDIS:-$(command -v redis-server)}
B=target/release/tandem-bench
run() { # name, then tandem-bench resync arguments
  local name=$1; shift
  echo "== $name"
  $B resync "$@" --server-bin "$TANDEM" --compare "$REDIS" --rounds "$ROUNDS" --out-dir "$OUT/$name" 2>&1 | grep -v '^round'
}
run populate-idle new-replica --keys "$KEYS"
run populate-10k-writes new-replica --keys "$KEYS" --load-rate 10000
run random-idle new-replica --keys $((KEYS / 2)) --random-values
run partial-10k-writes partial --keys $((KEYS / 10)) --load-rate 10000
