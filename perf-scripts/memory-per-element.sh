#!/usr/bin/env bash
# Memory per element of one big hash, set, sorted set and list (COUNT elements each), for redis-server
# and tandem-server in one run: used_memory growth over the empty server, divided by COUNT. Elements are
# `e:<i>` (a hash's values `v:<i>`, a sorted set's scores i), loaded through redis-cli --pipe.
# Needs: redis-server, redis-cli, python3, a release build of tandem-server. Writes: stdout only.
# Usage: perf-scripts/memory-per-element.sh [COUNT=10000000] [SHARDS=2]
set -euo pipefail
COUNT=${1:-10000000}
SHARDS=${2:-2}
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
field() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
gen() { # type -> RESP commands on stdout, 1000 elements per command
  python3 - "$1" "$COUNT" <<'PY'
import sys
kind, n = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
def cmd(args):
    b = [b"*%d\r\n" % len(args)]
    for a in args:
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(b))
for start in range(0, n, 1000):
    args = {"hash": [b"HSET", b"big"], "set": [b"SADD", b"big"], "zset": [b"ZADD", b"big"], "list": [b"RPUSH", b"big"]}[kind]
    for i in range(start, min(n, start + 1000)):
        e = b"e:%d" % i
        if kind == "hash":
            args += [e, b"v:%d" % i]
        elif kind == "zset":
            args += [b"%d" % i, e]
        else:
            args.append(e)
    cmd(args)
PY
}
measure() { # name port type
  redis-cli -p "$2" flushall > /dev/null
  local u0 u1 prev=0
  # A big collection is freed in the background: wait until used_memory settles.
  for _ in $(seq 50); do
    u0=$(field "$2" used_memory)
    [ "$u0" = "$prev" ] && break
    prev=$u0
    sleep 0.2
  done
  gen "$3" | redis-cli -p "$2" --pipe > /dev/null
  u1=$(field "$2" used_memory)
  printf "%-6s %-28s %7.1f B/element   (%s)\n" "$3" "$1" "$(echo "($u1 - $u0) / $COUNT" | bc -l)" \
    "$(redis-cli -p "$2" object encoding big)"
}
pick_ports
wd=$(mktemp -d)
redis-server --port $RPORT --dir "$wd" --save "" --appendonly no > /dev/null 2>&1 &
RPID=$!
"$TANDEM" --port $TPORT --dir "$wd" --shards "$SHARDS" > /dev/null 2>&1 &
TPID=$!
trap 'kill $RPID $TPID 2>/dev/null; rm -rf "$wd"' EXIT
wait_ping $RPORT
wait_ping $TPORT
for t in hash set zset list; do
  measure "redis-server" $RPORT $t
  measure "tandem-server --shards $SHARDS" $TPORT $t
done
