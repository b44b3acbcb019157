#!/usr/bin/env bash
# Runs units of Valkey 8.0.1's Tcl test suite in external mode against a release tandem-server (a fresh
# server per unit, 2 shards, debug commands on) and prints, per unit, the tests passed, failed, and
# whether the unit stopped on an exception (a test the unit could not continue after). Tests tagged
# needs:repl are skipped (--tags -needs:repl, the suite's own switch for external servers): they read the
# propagated command stream through SYNC, which Tandem does not serve (its replicas use TFLOW).
# Needs: tclsh (apt-get install tcl), Valkey's tests at tag 8.0.1 in $VALKEY_TESTS (a directory holding
# tests/ and utils/, e.g. `git -C <valkey clone> archive 8.0.1 tests utils | tar x -C DIR`).
# Writes: each unit's log under target/perf/valkey-tcl/.
# Usage: VALKEY_TESTS=/path perf-scripts/valkey-tcl.sh [unit ...]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-scripts/lib.sh
ensure_release tandem-server
: "${VALKEY_TESTS:?set VALKEY_TESTS to a directory holding the tests and utils of Valkey 8.0.1}"
# Tests skipped by name, each needing a feature outside Tandem so far (docs/benchmarks.md says which):
SKIP=(
  "/stream events"     # streams (XADD, XGROUP) do not exist yet
  "Blocking commands ignores the timeout"  # idem (XREADGROUP in MULTI)
  "/for stream"        # idem (COPY of streams)
  "/evicted events"    # eviction policies other than noeviction do not exist yet
  "/after loadaof"     # CONFIG SET appendonly at run time and DEBUG LOADAOF (the WAL is set at start)
  "SRANDMEMBER with a dict containing long chain"  # Valkey's dict rehashing (DEBUG HTSTATS-KEY)
  # These read the propagated stream through SYNC (which Tandem does not serve) without the needs:repl tag:
  "SWAPDB wants to wake blocked client, but the key already expired"
  "MULTI + LPUSH + EXPIRE + DEBUG SLEEP on blocked client, key already expired"
  "Server should not propagate the read command on lazy expire"
  "/Lazy-expire should not be wrapped in MULTI/EXEC"
  "/inside script"     # scripts do not run yet (EVAL)
  "/from scripts"      # idem
  "/script timeout"    # idem (SCRIPT KILL of a running script)
)
SKIPARGS=()
for t in "${SKIP[@]}"; do SKIPARGS+=(--skiptest "$t"); done
UNITS=${*:-unit/type/string unit/type/incr unit/keyspace unit/expire unit/type/hash unit/type/list unit/type/set unit/type/zset unit/multi unit/pubsub unit/scan unit/sort unit/bitops unit/bitfield}
OUT=$PWD/target/perf/valkey-tcl
mkdir -p "$OUT"
TANDEM_ABS=$PWD/$TANDEM
printf "%-20s %6s %6s %7s %s\n" unit passed failed skipped "stopped early"
for u in $UNITS; do
  pick_ports
  # A working directory per unit: the units' SAVE and DEBUG RELOAD write snapshots there, not here.
  wd=$(mktemp -d)
  "$TANDEM_ABS" --port $TPORT --dir "$wd" --shards 2 --enable-debug-command yes > "$OUT/$(basename "$u").server.log" 2>&1 &
  PID=$!
  wait_ping $TPORT
  log="$OUT/$(basename "$u").log"
  (cd "$VALKEY_TESTS" && timeout 900 tclsh tests/test_helper.tcl --host 127.0.0.1 --port $TPORT --single "$u" \
     --timeout 60 --clients 1 --tags -needs:repl "${SKIPARGS[@]}" > "$log.raw" 2>&1) || true
  sed 's/\x1b\[[0-9;]*m//g' "$log.raw" > "$log" && rm -f "$log.raw"
  kill $PID 2>/dev/null || true
  wait $PID 2>/dev/null || true
  rm -rf "$wd"
  ok=$(grep -c '^\[ok\]' "$log" || true)
  err=$(grep -c '^\[err\]' "$log" || true)
  skip=$(grep -c '^\[skip\]' "$log" || true)
  exc=$(grep -qE '\[exception\]|\[TIMEOUT\]' "$log" && echo yes || echo no)
  printf "%-20s %6s %6s %7s %s\n" "$u" "$ok" "$err" "$skip" "$exc"
done
