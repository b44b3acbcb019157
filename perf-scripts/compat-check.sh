#!/usr/bin/env bash
# Drives a release tandem-server with real clients, unchanged: redis-cli, redis-benchmark and redis-py
# (RESP2 and RESP3). Needs: redis-tools (apt-get install redis-tools), python3 with pip (installs redis-py).
# Writes: stdout only. Exits non-zero on the first mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
python3 -c "import redis" 2>/dev/null || pip install -q redis
pick_ports
PORT=$TPORT
target/release/tandem-server --port $PORT --shards 2 > /dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
wait_ping $PORT
[ "$(redis-cli -p $PORT set greeting hello)" = OK ] && [ "$(redis-cli -p $PORT get greeting)" = hello ]
redis-cli -p $PORT --no-raw info server | grep -q "redis_version:7.2.4"
echo "redis-cli $(redis-cli --version | awk '{print $2}') OK"
redis-benchmark -p $PORT -t set,get,incr,mset -n 20000 -q | tr '\r' '\n' | grep -q "MSET (10 keys)"
echo "redis-benchmark OK"
python3 - $PORT <<'PY'
import sys, redis
port = int(sys.argv[1])
r = redis.Redis(port=port, decode_responses=True)
assert r.ping()
r.set("a", 1); assert r.incr("a") == 2
r.mset({"x": "1", "y": "2"}); assert r.mget("x", "y", "nope") == ["1", "2", None]
r.set("t", "v", ex=100); assert 99 <= r.ttl("t") <= 100
assert r.info()["redis_version"] == "7.2.4"
p = r.pipeline(transaction=False)
for i in range(100): p.set(f"py:{i}", i)
p.execute()
assert len(set(r.scan_iter("py:*"))) == 100
r3 = redis.Redis(port=port, protocol=3, decode_responses=True)
assert r3.get("py:5") == "5" and r3.config_get("maxmemory") == {"maxmemory": "0"}
print("redis-py", redis.__version__, "OK (RESP2 and RESP3)")
PY
