#!/usr/bin/env bash
# The standard matrix against redis-server from Debian, in one run, as one table (medians):
#   load (tandem-bench load, 50 clients, 1:10 SET:GET, 100-byte values) at pipeline 1 and 16;
#   new-replica and rejoin-old-primary with 1M and 10M keys.
# Needs: a release build (built if missing), redis-server (apt-get install redis-server), python3.
# Writes: ${OUT:-target/perf/compare-results}/ (every JSON report and chart, and table.md).
# Usage: perf-scripts/compare.sh [ROUNDS=3]   (KEYS="1000000 10000000" and LOAD_SECONDS=10 in the
#        environment change the data set sizes and the load duration, e.g. for a quick smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server tandem-bench
ROUNDS=${1:-3}
KEYS=${KEYS:-1000000 10000000}
LOAD_SECONDS=${LOAD_SECONDS:-10}
OUT=${OUT:-target/perf/compare-results}
REDIS=${REDIS:-$(command -v redis-server)}
B=target/release/tandem-bench
mkdir -p "$OUT"
TABLE="$OUT/table.md"
echo "| measurement | Tandem | redis-server | ratio |" > "$TABLE"
echo "|---|---|---|---|" >> "$TABLE"
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
for P in 1 16; do
  declare -a T=() R=()
  for round in $(seq "$ROUNDS"); do
    pick_ports
    $REDIS --port "$RPORT" --save "" --appendonly no >/dev/null 2>&1 & RP=$!
    $TANDEM --port "$TPORT" --save "" >/dev/null 2>&1 & TP=$!
    wait_ping "$RPORT"; wait_ping "$TPORT"
    for who in redis tandem; do
      port=$RPORT; [ $who = tandem ] && port=$TPORT
      $B load --port "$port" --threads 1 --clients 50 --pipeline "$P" --ratio 1:10 --data-size 100 \
        --key-maximum 1000000 --test-time "$LOAD_SECONDS" --quiet --json-out "$OUT/load-p$P-$who-$round.json" >/dev/null
      ops=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total']['ops_per_sec'])" "$OUT/load-p$P-$who-$round.json")
      if [ $who = tandem ]; then T+=("$ops"); else R+=("$ops"); fi
    done
    kill $RP $TP; wait $RP $TP 2>/dev/null || true
  done
  t=$(median "${T[@]}"); r=$(median "${R[@]}")
  python3 -c "print(f'| load ops/s, pipeline $P | {$t:,.0f} | {$r:,.0f} | {$t/$r:.2f}x |')" >> "$TABLE"
done
for keys in $KEYS; do
  for sc in new-replica rejoin-old-primary; do
    dir="$OUT/$sc-$keys"
    $B resync $sc --keys "$keys" --server-bin "$TANDEM" --compare "$REDIS" --rounds "$ROUNDS" --out-dir "$dir" >/dev/null 2>&1
    json="$dir/$(echo $sc | tr -d -).json"
    python3 - "$json" "$sc" "$keys" >> "$TABLE" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
t, r = j["summaries"]
print(f"| {sys.argv[2]} {int(sys.argv[3]):,} keys: caught up (s) | {t['caught_up_s']:.2f} | {r['caught_up_s']:.2f} | {r['caught_up_s']/t['caught_up_s']:.2f}x faster |")
PY
  done
done
cat "$TABLE"
