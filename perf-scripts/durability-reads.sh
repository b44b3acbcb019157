#!/usr/bin/env bash
# What durability mode costs a read of a key with nothing pending: GET throughput on a primary with two
# eligible replicas, durability on and off alternating on the same servers, medians of ROUNDS rounds.
# Usage: perf-scripts/durability-reads.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source perf-scripts/lib.sh
ensure_release tandem-server tandem-bench
ROUNDS=${1:-3}; SECS=${2:-10}
OUT=target/perf/durability-reads; rm -rf "$OUT"; mkdir -p "$OUT"/{p,r1,r2}
P=$((20000 + RANDOM % 10000)); R1=$((P + 1)); R2=$((P + 2))
"$TANDEM" --port $P --dir "$OUT/p" --shards 2 >"$OUT/p.log" 2>&1 & PIDS=$!
"$TANDEM" --port $R1 --dir "$OUT/r1" --shards 2 --durability yes >"$OUT/r1.log" 2>&1 & PIDS="$PIDS $!"
"$TANDEM" --port $R2 --dir "$OUT/r2" --shards 2 --durability yes >"$OUT/r2.log" 2>&1 & PIDS="$PIDS $!"
trap 'kill $PIDS 2>/dev/null' EXIT
for p in $P $R1 $R2; do wait_ping $p; done
redis-cli -p $P debug populate 100000 memtier- 32 >/dev/null
redis-cli -p $R1 replicaof 127.0.0.1 $P >/dev/null; redis-cli -p $R2 replicaof 127.0.0.1 $P >/dev/null
run() { # $1 = yes|no
  redis-cli -p $P config set durability "$1" >/dev/null
  if [ "$1" = yes ]; then
    for _ in $(seq 300); do
      [ "$(redis-cli -p $P info replication | tr -d '\r' | sed -n 's/^durability_eligible_replicas://p')" = 2 ] && break; sleep 0.1
    done
  fi
  target/release/tandem-bench load -p $P --threads 2 --clients 25 --pipeline 16 --ratio 0:1 \
    --key-maximum 99999 --key-prefix memtier-: --test-time "$SECS" --quiet --json-out "$OUT/$1.json" >/dev/null
  python3 -c "import json,sys; d=json.load(open('$OUT/$1.json')); t=d.get('total',d); print(t.get('ops_per_sec') or t.get('ops_sec'))"
}
on=(); off=()
for i in $(seq "$ROUNDS"); do
  off+=("$(run no)"); on+=("$(run yes)")
  echo "round $i: GET ops/s durability off ${off[-1]}, on ${on[-1]}"; redis-cli -p $P info replication | grep -E "tandem_durability_(grants|revokes)|eligible_rep" | tr -d "\r" | tr "\n" " "; echo
done
python3 - "${off[@]}" -- "${on[@]}" <<'PY'
import sys, statistics
a = sys.argv[1:]; i = a.index('--'); off = list(map(float, a[:i])); on = list(map(float, a[i+1:]))
mo, mn = statistics.median(off), statistics.median(on)
print(f"median GET ops/s (P=16, 50 connections): off {mo:.0f}, on {mn:.0f}: on/off {mn/mo:.3f}x")
PY
