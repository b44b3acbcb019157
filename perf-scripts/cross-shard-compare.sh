#!/usr/bin/env bash
# Commands whose keys span shards, against redis-server (where every command is local), alternately,
# ROUNDS times; medians and ratios. With --shards 2, ten random keys fall on both shards; a and b (sets)
# live on different shards. Each of these is a multi-shard transaction in Tandem (docs/architecture.md,
# "Fewer, shorter transactions").
# Needs: redis-server and redis-benchmark (apt-get install redis-server redis-tools), a release build of
# tandem-server. Writes: nothing but stdout (and server logs under $TMPDIR).
# Usage: perf-scripts/cross-shard-compare.sh [ROUNDS=5] [REQUESTS=200000]
set -euo pipefail
ROUNDS=${1:-5}
N=${2:-200000}
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
start_pair 2
for p in $RPORT $TPORT; do
  redis-cli -p $p sadd a 1 2 3 4 5 > /dev/null
  redis-cli -p $p sadd b 4 5 6 7 > /dev/null
done
K10=$(for _ in $(seq 10); do printf "key:__rand_int__ "; done)
# name|redis-benchmark arguments
CASES=(
  "MSET_10_keys|-t mset -r 100000"
  "MGET_10_keys|-r 100000 MGET $K10"
  "SUNION_a_b|SUNION a b"
  "SINTERSTORE_{a}d_a_b|SINTERSTORE {a}d a b"
)
run() { # port pipeline args... -> ops/s
  local port=$1 p=$2; shift 2
  redis-benchmark -p "$port" -n "$N" -c 50 -P "$p" "$@" 2>/dev/null | tr '\r' '\n' |
    awk '/throughput summary/ { print $3 }' | tail -1
}
for P in 1 16; do
  for c in "${CASES[@]}"; do
    name=${c%%|*}; args=${c#*|}
    : > "$tmp/r"; : > "$tmp/t"
    # Odd rounds run redis-server first, even rounds Tandem, so neither always follows the other.
    for i in $(seq "$ROUNDS"); do
      # shellcheck disable=SC2086
      if [ $((i % 2)) = 1 ]; then
        run $RPORT $P $args >> "$tmp/r"; run $TPORT $P $args >> "$tmp/t"
      else
        run $TPORT $P $args >> "$tmp/t"; run $RPORT $P $args >> "$tmp/r"
      fi
    done
    r=$(median < "$tmp/r"); t=$(median < "$tmp/t")
    printf "P=%-2s %-24s redis-server %10.0f  tandem(--shards 2) %10.0f  ratio %.2fx\n" "$P" "$name" "$r" "$t" \
      "$(echo "$t / $r" | bc -l)"
  done
done
