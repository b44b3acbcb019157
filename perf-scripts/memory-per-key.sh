#!/usr/bin/env bash
# Memory per key after `DEBUG POPULATE COUNT key SIZE`, for redis-server and tandem-server in one run:
# used_memory and RSS growth over the empty server, divided by COUNT.
# Needs: redis-server, redis-cli, a release build of tandem-server. Writes: stdout only.
# Usage: perf-scripts/memory-per-key.sh [COUNT=10000000] [SIZE=100] [SHARDS=2]
set -euo pipefail
COUNT=${1:-10000000}
SIZE=${2:-100}
SHARDS=${3:-2}
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
field() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
measure() { # name port
  local u0 r0 u1 r1
  u0=$(field "$2" used_memory); r0=$(field "$2" used_memory_rss)
  local t0=$(date +%s.%N)
  redis-cli -p "$2" debug populate "$COUNT" key "$SIZE" > /dev/null
  local t1=$(date +%s.%N)
  u1=$(field "$2" used_memory); r1=$(field "$2" used_memory_rss)
  printf "%-28s used_memory %6.1f B/key   RSS %6.1f B/key   populate %5.1f s\n" "$1" \
    "$(echo "($u1 - $u0) / $COUNT" | bc -l)" "$(echo "($r1 - $r0) / $COUNT" | bc -l)" "$(echo "$t1 - $t0" | bc -l)"
}
pick_ports
wd=$(mktemp -d)
redis-server --port $RPORT --dir "$wd" --save "" --appendonly no --enable-debug-command yes > /dev/null 2>&1 &
RPID=$!
"$TANDEM" --port $TPORT --dir "$wd" --shards "$SHARDS" --enable-debug-command yes > /dev/null 2>&1 &
TPID=$!
trap 'kill $RPID $TPID 2>/dev/null; rm -rf "$wd"' EXIT
wait_ping $RPORT
wait_ping $TPORT
echo "DEBUG POPULATE $COUNT key $SIZE"
measure "redis-server $(redis-server --version | awk '{print $3}')" $RPORT
kill $RPID
measure "tandem (--shards $SHARDS)" $TPORT
