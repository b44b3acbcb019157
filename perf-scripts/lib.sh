# Shared by the perf scripts: sourced, not run. Expects the caller to have cd'd to the repository root.
TANDEM=${TANDEM:-target/release/tandem-server}
# Every script's outputs go under target/perf/ (ignored by git), never into the repository.
mkdir -p target/perf

# Builds the release binaries unless every one named exists (e.g. `ensure_release tandem-server tandem-bench`).
ensure_release() {
  for b in "$@"; do
    [ -x "target/release/$b" ] || { cargo build --release --workspace; return; }
  done
}

# Picks two adjacent ports for a comparison server (RPORT) and Tandem (TPORT).
pick_ports() { RPORT=$((20000 + RANDOM % 10000)); TPORT=$((RPORT + 1)); }

# Waits until the server on port $1 answers PING; fails loudly after 10 s instead of measuring nothing.
wait_ping() {
  for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server on port $1 did not answer PING within 10 s" >&2
  return 1
}

# Starts redis-server ($REDIS, default redis-server) on RPORT and tandem-server --shards $1 on TPORT, both
# without persistence, each with its working directory, logs in $tmp (a fresh temporary directory), and
# waits for both; on exit both are stopped and $tmp removed. A working directory of its own keeps Tandem
# from loading snapshots left in the current directory.
# SELF_CHECK=1 (environment) starts a second redis-server in Tandem's place: comparing a server with itself
# measures what this machine can resolve (docs/performance.md "Resolution").
start_pair() {
  tmp=$(mktemp -d)
  pick_ports
  mkdir "$tmp/redis-dir" "$tmp/tandem-dir"
  ${REDIS:-redis-server} --port $RPORT --dir "$tmp/redis-dir" --save "" --appendonly no --daemonize no > "$tmp/redis.log" 2>&1 &
  RPID=$!
  if [ -n "${SELF_CHECK:-}" ]; then
    ${REDIS:-redis-server} --port $TPORT --dir "$tmp/tandem-dir" --save "" --appendonly no > "$tmp/tandem.log" 2>&1 &
  else
    "$TANDEM" --port $TPORT --dir "$tmp/tandem-dir" --shards "$1" > "$tmp/tandem.log" 2>&1 &
  fi
  TPID=$!
  trap 'kill $RPID $TPID 2>/dev/null; rm -rf "$tmp"' EXIT
  wait_ping $RPORT
  wait_ping $TPORT
}

# The median of the numbers on standard input, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
