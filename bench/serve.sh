#!/usr/bin/env bash
# serve.sh — kb serve under load: wrk POSTs /v1/search (1-4 word SciFact queries, k = 10,
# bearer token) at CONNECTIONS connections for SECONDS against a 100k-chunk KB, per search mode
# and per --threads value; prints requests/s, latency p50/p90/p99, non-2xx replies and socket
# errors, and the server's RSS, open fds and threads warm before the run, right after it and
# 5 s later. The KB (SciFact x 11 = 100,529 chunks, bench_fast384 vectors, built once by
# search_bench as in docs/BENCHMARKS.md "Search latency") is cached under build/bench-serve/.
# Usage: bench/serve.sh [SECONDS=60] [CONNECTIONS=64] [RUNS=1]   (from the repository root;
# needs wrk and ../shared/data). Env: KB_BENCH_MODES (default "bm25 vector hybrid"),
# KB_BENCH_THREADS (default "default 2"; "default" = no --threads flag; a value that resolves to
# the same handle count as an earlier one is skipped), KB_BENCH_WRK_TIMEOUT (default 35s, over
# the server's 30 s busy timeout so a stuck request shows as the server's 503, not wrk's).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
conns=${2:-64}
runs=${3:-1}
modes=${KB_BENCH_MODES:-bm25 vector hybrid}
thread_list=${KB_BENCH_THREADS:-default 2}
wrk_timeout=${KB_BENCH_WRK_TIMEOUT:-35s}
data=../shared/data
build=$PWD/build/sbench
out=$PWD/build/bench-serve
kbdir=$out/kb100k
py=/usr/bin/python3
command -v wrk >/dev/null || { echo "serve.sh: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -d "$data/retrieval/scifact" ] || { echo "serve.sh: $data/retrieval/scifact is missing" >&2; exit 1; }

mkdir -p "$out/models" "$out/logs"
export HOME=$out/home XDG_CACHE_HOME=$out/cache XDG_DATA_HOME=$out/data XDG_CONFIG_HOME=$out/config
mkdir -p "$HOME"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target kb_cli -j2 >/dev/null

# The KB: built once (search_bench also prints its in-process latencies, kept for comparison).
if [ ! -f "$kbdir.done" ]; then
    [ -f "$out/models/bench_fast384/model.safetensors" ] || $py scripts/gen_models.py \
        --vocab "$data/tokenizer/bert-base-uncased/vocab.txt" --only bench_fast384 -- \
        "$out/models" >/dev/null 2>&1
    gunzip -c "$data/retrieval/scifact/corpus.jsonl.gz" >"$out/corpus.jsonl"
    rm -rf "$kbdir"
    cmake --build "$build" --target search_bench -j2 >/dev/null
    echo "# building the 100k-chunk KB in $kbdir (once; minutes)" >&2
    "$build/search_bench" "$kbdir" "$out/models/bench_fast384" "$out/corpus.jsonl" \
        "$data/retrieval/scifact/queries.jsonl" 11 >"$out/search_bench.jsonl"
    touch "$kbdir.done"
fi
# A KB cached by an older kb has an older schema, which read-only opens refuse; rebuilding the
# flat index opens it for writing once, which migrates it and keeps every vector.
"$build/kb" --kb "$kbdir" -q status >/dev/null 2>&1 ||
    "$build/kb" --kb "$kbdir" -q reindex --index flat >/dev/null
$py bench/serve_queries.py "$data/retrieval/scifact/queries.jsonl" 1000 >"$out/queries.txt"
token=$("$build/kb" --kb "$kbdir" serve --print-token read)

pid=
url=
start_server() {  # start_server THREADS -> sets pid, url
    local args=()
    [ "$1" = default ] || args=(--threads "$1")
    : >"$out/serve.stdout"
    "$build/kb" --kb "$kbdir" serve --port 0 "${args[@]}" >"$out/serve.stdout" \
        2>>"$out/logs/serve.stderr" &
    pid=$!
    url=
    for _ in $(seq 300); do
        url=$(sed -n 's/^listening on //p' "$out/serve.stdout")
        [ -n "$url" ] && return 0
        kill -0 "$pid" 2>/dev/null || { echo "serve.sh: kb serve exited at start" >&2; exit 1; }
        sleep 0.1
    done
    echo "serve.sh: kb serve did not print its URL" >&2
    exit 1
}
stop_server() {  # SIGTERM; sets rc to the exit status (0 = clean shutdown)
    kill -TERM "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" || rc=$?
}
sockets() {  # sockets the server holds: the listening one(s) plus open connections
    find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l
}
drain() {  # waits (up to 60 s) until the server holds no more than IDLE_SOCKETS sockets
    for _ in $(seq 600); do
        [ "$(sockets)" -le "$1" ] && return 0
        sleep 0.1
    done
    echo "serve.sh: connections still open 60 s after the warm-up" >&2
}
probe() {  # "RSS_kB fds threads" of the server, or "dead"
    if [ -d "/proc/$pid" ]; then
        echo "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status") $(ls "/proc/$pid/fd" | wc -l)" \
             "$(awk '/^Threads/ {print $2}' "/proc/$pid/status")"
    else
        echo dead
    fi
}
handles() {
    curl -sf -H "Authorization: Bearer $token" "${url}v1/status" |
        $py -c 'import json,sys; print(json.load(sys.stdin)["handles"])'
}
check_search() {  # one request in MODE: 200, results, the mode echoed back
    curl -s -o "$out/check.json" -w '%{http_code}' -H "Authorization: Bearer $token" \
        -d "{\"query\":\"blood pressure\",\"k\":10,\"mode\":\"$1\"}" "${url}v1/search" |
        $py -c 'import json,sys
code = sys.stdin.read(); d = json.load(open(sys.argv[1]))
ok = code == "200" and len(d.get("results", [])) == 10 and d.get("mode") == sys.argv[2]
sys.exit(0 if ok else "serve.sh: /v1/search %s answered %s: %s" % (sys.argv[2], code, str(d)[:300]))' \
        "$out/check.json" "$1"
}

results=$out/results.jsonl
: >"$results"
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# wrk -t$(( conns < 2 ? conns : 2 )) -c$conns -d${secs}s --latency --timeout $wrk_timeout, $runs run(s); KB: $(du -sh "$kbdir" | cut -f1)"
for run in $(seq "$runs"); do
    seen=" "
    for threads in $thread_list; do
        for mode in $modes; do
            start_server "$threads"
            n=$(handles)
            if [[ "$seen" == *" $n:$mode "* ]]; then
                echo "# --threads $threads: $n handles, same as an earlier run; skipped"
                stop_server
                continue
            fi
            seen="$seen$n:$mode "
            sleep 0.5
            start=$(probe)
            idle_sockets=$(sockets)
            check_search "$mode"
            # warm-up: every handle opened and its index loaded before "warm" is measured
            KB_MODE=$mode KB_TOKEN=$token KB_QUERIES=$out/queries.txt wrk -t2 -c"$conns" -d5s \
                --timeout "$wrk_timeout" -s bench/serve.lua "$url" >/dev/null
            # a client that left is still counted until its request finishes; the run must not
            # start while the warm-up's connections are open (they would push it over
            # --max-connections and get 429s)
            drain "$idle_sockets"
            warm=$(probe)
            log=$out/logs/run$run-t$n-$mode.txt
            KB_MODE=$mode KB_TOKEN=$token KB_QUERIES=$out/queries.txt wrk -t2 -c"$conns" \
                -d"${secs}s" --latency --timeout "$wrk_timeout" -s bench/serve.lua "$url" >"$log"
            after=$(probe)
            sleep 5
            after5=$(probe)
            stop_server
            echo "$run $threads $n $mode $rc" "$start" "$warm" "$after" "$after5" |
                $py -c 'import json,sys
f = sys.stdin.read().split(); r = json.loads(open(sys.argv[1]).read().split("RESULT ", 1)[1])
def probe(i): return None if f[i] == "dead" else dict(zip(("rss_kb", "fds", "threads"), map(int, f[i:i + 3])))
r.update(run=int(f[0]), threads_flag=f[1], handles=int(f[2]), mode=f[3], exit=int(f[4]),
         start=probe(5), warm=probe(8), after=probe(11), after5=probe(14))
print(json.dumps(r))' "$log" >>"$results"
            tail -n1 "$results" | $py -c 'import json,sys
r = json.load(sys.stdin); e = sum(r["errors"][k] for k in ("connect", "read", "write", "timeout"))
non2xx = sum(n for c, n in r["statuses"].items() if not c.startswith("2"))
print("run %d handles %d %-6s %7.1f req/s  p50 %6.1f  p90 %6.1f  p99 %7.1f ms  non-2xx %d  socket errors %d  statuses %s  exit %d"
      % (r["run"], r["handles"], r["mode"], r["rps"], r["p50_ms"], r["p90_ms"], r["p99_ms"], non2xx, e, r["statuses"], r["exit"]))'
        done
    done
done

$py - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def fmt_probe(p, key, scale=1):
    return "dead" if p is None else "%g" % round(p[key] / scale)
print("\n| handles | mode | runs | req/s | p50 ms | p90 ms | p99 ms | non-2xx | socket errors |"
      " RSS MB start / warm / after / +5 s | fds start / warm / after / +5 s | threads start / warm / after / +5 s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
keys = []
for r in rows:
    if (r["handles"], r["mode"]) not in keys:
        keys.append((r["handles"], r["mode"]))
for h, m in keys:
    rs = [r for r in rows if r["handles"] == h and r["mode"] == m]
    med = lambda k: statistics.median(r[k] for r in rs)
    non2xx = sum(n for r in rs for c, n in r["statuses"].items() if not c.startswith("2"))
    errs = sum(r["errors"][k] for r in rs for k in ("connect", "read", "write", "timeout"))
    last = rs[-1]  # memory and fds of the last run (every run is in results.jsonl)
    probes = [last[k] for k in ("start", "warm", "after", "after5")]
    print("| %d | %s | %d | %.0f | %.1f | %.1f | %.1f | %d | %d | %s | %s | %s |" % (
        h, m, len(rs), med("rps"), med("p50_ms"), med("p90_ms"), med("p99_ms"), non2xx, errs,
        " / ".join(fmt_probe(p, "rss_kb", 1024) for p in probes),
        " / ".join(fmt_probe(p, "fds") for p in probes),
        " / ".join(fmt_probe(p, "threads") for p in probes)))
bad = [r for r in rows if r["exit"] != 0]
print("\nmedians over runs; every run in %s, wrk's own output in build/bench-serve/logs/" % sys.argv[1])
if bad:
    print("server did not exit cleanly in %d run(s): exit %s" % (len(bad), [r["exit"] for r in bad]))
PY
