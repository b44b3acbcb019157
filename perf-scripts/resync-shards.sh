#!/usr/bin/env bash
# How Tandem's full sync time scales with the shard counts of primary and replica (1 and 2 on this
# 2-core machine). Needs: a release build (built if missing). Writes: ${OUT:-target/perf/resync-results}/shards-P-R/.
# Usage: perf-scripts/resync-shards.sh [KEYS=10000000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server tandem-bench
KEYS=${1:-10000000}
ROUNDS=${2:-3}
OUT=${OUT:-target/perf/resync-results}
for p in 1 2; do
  for r in 1 2; do
    echo "== primary $p shard(s), replica $r shard(s)"
    target/release/tandem-bench resync new-replica --server-bin "$TANDEM" --keys "$KEYS" --rounds "$ROUNDS" \
      --primary-shards $p --replica-shards $r --out-dir "$OUT/shards-$p-$r" 2>&1 | grep -v '^round' | grep -v '^server'
  done
done
