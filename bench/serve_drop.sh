#!/usr/bin/env bash
# serve_drop.sh — a client that leaves mid-load must not make the next one see 429s: wrk at
# CONNECTIONS connections is interrupted after 5 s, then (0.5 s later) the server's sockets are
# counted and a new CONNECTIONS-connection wrk runs for 10 s; prints its statuses.
# Uses the 100k-chunk KB and the build of bench/serve.sh (run that once first).
# Usage: bench/serve_drop.sh [CONNECTIONS=64] [MODE=hybrid]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-64}
mode=${2:-hybrid}
out=$PWD/build/bench-serve
kbdir=$out/kb100k
kb=$PWD/build/sbench/kb
[ -f "$kbdir.done" ] && [ -x "$kb" ] || { echo "serve_drop.sh: run bench/serve.sh first" >&2; exit 1; }
export HOME=$out/home XDG_CACHE_HOME=$out/cache XDG_DATA_HOME=$out/data XDG_CONFIG_HOME=$out/config
token=$("$kb" --kb "$kbdir" serve --print-token read)
"$kb" --kb "$kbdir" serve --port 0 >"$out/drop.stdout" 2>"$out/logs/drop.stderr" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
url=
for _ in $(seq 300); do
    url=$(sed -n 's/^listening on //p' "$out/drop.stdout")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "serve_drop.sh: kb serve did not start" >&2; exit 1; }
export KB_MODE=$mode KB_TOKEN=$token KB_QUERIES=$out/queries.txt
timeout -s INT 5 wrk -t2 -c"$conns" -d60s --timeout 35s -s bench/serve.lua "$url" >/dev/null 2>&1 || true
sleep 0.5
echo "sockets the server holds 0.5 s after the client left: $(find /proc/$pid/fd -lname 'socket:*' | wc -l) (1 = only the listening one)"
wrk -t2 -c"$conns" -d10s --timeout 35s -s bench/serve.lua "$url" >"$out/logs/drop-wrk.txt" 2>&1
sed -n 's/^RESULT //p' "$out/logs/drop-wrk.txt"
