#!/usr/bin/env bash
# Runs redis-benchmark against redis-server and tandem-server alternately, ROUNDS times, and prints the
# median ops/s of each and their ratio, per pipeline depth and command.
# Needs: redis-server and redis-benchmark (apt-get install redis-server redis-tools), a release build of
# tandem-server (cargo build --release). Writes: nothing but stdout (and server logs under $TMPDIR).
# Usage: perf-scripts/redis-benchmark-compare.sh [ROUNDS=5] [SHARDS=2] [REQUESTS=1000000]
# TESTS (environment) picks redis-benchmark's tests, default set,get; e.g. for the data types:
# TESTS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100
# SELF_CHECK=1 (environment) compares redis-server with a second redis-server: the ratios it prints are
# this machine's noise, the resolution of every other ratio.
# PIPELINES (environment) picks the pipeline depths, default "1 16".
# BENCH_OPTS (environment) adds redis-benchmark options, e.g. BENCH_OPTS="--threads 2" for a client that
# uses both cores (docs/performance.md: with one client thread at P=1 the client is the bottleneck). In that
# mode redis-benchmark's elapsed times come in steps of 250 ms: give each run several seconds of requests.
set -euo pipefail
ROUNDS=${1:-5}
SHARDS=${2:-2}
N=${3:-1000000}
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
start_pair "$SHARDS"
TESTS=${TESTS:-set,get}
second="tandem(--shards $SHARDS)"
[ -z "${SELF_CHECK:-}" ] || second="redis-server(2nd)"
run() { # port pipeline -> "NAME=ops/s ..." (a test's name: its line's text before ':', spaces as '_')
  redis-benchmark -p "$1" -t "$TESTS" -n "$N" -r 1000000 -c 50 -P "$2" ${BENCH_OPTS:-} -q 2>/dev/null | tr '\r' '\n' |
    awk -F': ' '/requests per second/ { n = $1; gsub(/ /, "_", n); split($2, v, " "); printf "%s=%s ", n, v[1] }'
}
for P in ${PIPELINES:-1 16}; do
  : > "$tmp/r"; : > "$tmp/t"
  # Odd rounds run the comparison server first, even rounds second, so neither always follows the other.
  for i in $(seq "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
      run $RPORT $P >> "$tmp/r"; echo >> "$tmp/r"
      run $TPORT $P >> "$tmp/t"; echo >> "$tmp/t"
    else
      run $TPORT $P >> "$tmp/t"; echo >> "$tmp/t"
      run $RPORT $P >> "$tmp/r"; echo >> "$tmp/r"
    fi
  done
  for cmd in $(grep -o "[^ ]*=" "$tmp/r" | tr -d = | awk '!seen[$0]++'); do
    r=$(grep -o "$cmd=[0-9.]*" "$tmp/r" | cut -d= -f2 | median)
    t=$(grep -o "$cmd=[0-9.]*" "$tmp/t" | cut -d= -f2 | median)
    printf "P=%-2s %-40s redis-server %10.0f  %s %10.0f  ratio %.2fx\n" "$P" "$cmd" "$r" "$second" "$t" \
      "$(echo "$t / $r" | bc -l)"
  done
done
