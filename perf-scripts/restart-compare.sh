#!/usr/bin/env bash
# Restart time with KEYS keys of 100-byte values: tandem-server from its snapshot (BGSAVE/SAVE) plus a WAL
# tail of TAIL SETs, against redis-server loading an RDB of the same keys; also each server's snapshot
# size and the time SAVE takes. ROUNDS restarts each (kill -9, start, until its log says the data is
# loaded), medians printed with the ratio.
# Needs: redis-server, redis-cli, redis-benchmark; a release build. Writes: stdout only (data under a
# temporary directory in target/perf, removed at the end).
# Usage: perf-scripts/restart-compare.sh [KEYS=10000000] [ROUNDS=3] [SHARDS=2] [TAIL=100000]
set -euo pipefail
KEYS=${1:-10000000}
ROUNDS=${2:-3}
SHARDS=${3:-2}
TAIL=${4:-100000}
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
tmp=$(mktemp -d -p target/perf)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
pick_ports
mkdir -p "$tmp/t" "$tmp/r"
topts=(--port $TPORT --shards "$SHARDS" --dir "$(realpath "$tmp/t")" --appendonly yes --appendfsync everysec --enable-debug-command yes)
ropts=(--port $RPORT --dir "$(realpath "$tmp/r")" --save "" --appendonly no --enable-debug-command yes)

"$TANDEM" "${topts[@]}" > "$tmp/t.log" 2>&1 & pid=$!
wait_ping $TPORT
redis-cli -p $TPORT debug populate "$KEYS" key 100 >/dev/null
t0=$(now); redis-cli -p $TPORT save >/dev/null; t1=$(now)
tsave=$(echo "$t1 - $t0" | bc -l)
tsize=$(cat "$tmp"/t/dump.rdb.s* | wc -c)
redis-benchmark -p $TPORT -t set -n "$TAIL" -r "$KEYS" -d 100 -c 50 -P 16 >/dev/null 2>&1
tkeys=$(redis-cli -p $TPORT dbsize)
: > "$tmp/tt"
for _ in $(seq "$ROUNDS"); do
  kill -9 $pid; wait $pid 2>/dev/null || true
  "$TANDEM" "${topts[@]}" > "$tmp/t.log" 2>&1 & pid=$!
  until grep -q "DB loaded from append only file" "$tmp/t.log"; do sleep 0.05; done
  grep -o "DB loaded from append only file: [0-9.]*" "$tmp/t.log" | awk '{print $NF}' >> "$tmp/tt"
  wait_ping $TPORT
  [ "$(redis-cli -p $TPORT dbsize)" = "$tkeys" ] || { echo "tandem restarted with a different key count" >&2; exit 1; }
done
kill -9 $pid; wait $pid 2>/dev/null || true; pid=

redis-server "${ropts[@]}" > "$tmp/r.log" 2>&1 & pid=$!
wait_ping $RPORT
redis-cli -p $RPORT debug populate "$KEYS" key 100 >/dev/null
t0=$(now); redis-cli -p $RPORT save >/dev/null; t1=$(now)
rsave=$(echo "$t1 - $t0" | bc -l)
rsize=$(wc -c < "$tmp/r/dump.rdb")
: > "$tmp/rt"
for _ in $(seq "$ROUNDS"); do
  kill -9 $pid; wait $pid 2>/dev/null || true
  redis-server "${ropts[@]}" > "$tmp/r.log" 2>&1 & pid=$!
  until grep -q "DB loaded from disk" "$tmp/r.log"; do sleep 0.05; done
  grep -o "DB loaded from disk: [0-9.]*" "$tmp/r.log" | awk '{print $NF}' >> "$tmp/rt"
done
kill -9 $pid; wait $pid 2>/dev/null || true; pid=
t=$(median < "$tmp/tt"); r=$(median < "$tmp/rt")
printf "restart, %s keys of 100 B: redis-server RDB load %.2fs, tandem(--shards %s) snapshot + %s-SET WAL tail %.2fs, ratio %.2fx\n" \
  "$KEYS" "$r" "$SHARDS" "$TAIL" "$t" "$(echo "$t / $r" | bc -l)"
printf "snapshot: redis-server SAVE %.2fs, %d bytes; tandem SAVE %.2fs, %d bytes (%.1f B/key)\n" \
  "$rsave" "$rsize" "$tsave" "$tsize" "$(echo "$tsize / $KEYS" | bc -l)"
