#!/usr/bin/env bash
# concurrency_test.sh — one writer at a time and readers never in its way: processes querying in a
# loop while ingest runs over changing files see no error, no 'database is locked' and no result
# mixing generations (canary documents name their version); two ingests started together: exactly
# one proceeds, the other exits 75 naming its pid; a lock left by a killed writer is taken over;
# --wait[=SECONDS] waits for the writer.
# Usage: concurrency_test.sh PATH_TO_KB MODELS_DIR CASE [N]
#   readers_during_writers [SECONDS]   default 20; env KB_READERS readers (default 3)
#   two_ingests_race [ROUNDS]          default 100
#   stale_lock_is_taken_over
#   wait_for_the_writer
# MODELS_DIR holds scripts/gen_models.py's variants (the encoder_models fixture). Exits 0 when
# every assertion holds, 1 otherwise, 77 (skip) when a model or numpy is missing.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$(realpath "$1") MODELS=$(realpath "$2") CASE=$3 ARG=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
GEN="$PY $HERE/data/vectors/gen_docs.py"
T=$(mktemp -d)
BG=()   # background processes this script started (killed by id on exit)
cleanup() {
    local p
    for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

# Never let a model downloaded on this machine (or the user's settings) change an outcome.
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
export HF_HOME=$T/hf
unset KB_DIR KB_MODEL HF_HUB_CACHE SENTENCE_TRANSFORMERS_HOME
mkdir -p "$HOME"
cd "$T"
$PY -c 'import numpy' 2>/dev/null || skip "/usr/bin/python3 lacks numpy"
A=
use_model() {  # use_model NAME: sets A to the model's folder, or skips
    [ -f "$MODELS/$1/model.safetensors" ] || skip "model $MODELS/$1 is missing (run the encoder_models fixture)"
    A=$MODELS/$1
}
now() { date +%s.%N; }
since() { $PY -c "print('%.2f' % ($(now) - $1))"; }
jget() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# lock_holder DIR: the pid holding the flock on DIR/kb.lock, from /proc/locks (looking does not
# take the lock, unlike a `flock -n` probe, which could make a starting kb see it held).
lock_holder() {
    local ino
    ino=$(stat -c %i "$1/kb.lock" 2>/dev/null) || return 1
    awk -v ino="$ino" '$2 == "FLOCK" && $4 == "WRITE" { n = split($6, f, ":"); if (f[n] == ino) { print $5; found = 1; exit } }
                       END { exit !found }' /proc/locks
}
# wait_locked DIR PID: waits (up to 60 s) until PID holds DIR's lock; 0 when it does.
wait_locked() {
    local i
    for i in $(seq 1200); do
        [ "$(lock_holder "$1")" = "$2" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# probe_lock DIR: 99 when another process holds the lock (flock -n fails), 0 when it was free.
probe_lock() { flock -n -E 99 "$1/kb.lock" true; echo $?; }

# ---- readers during writers ----------------------------------------------------------------
# rw.py: the folder (ordinary files plus canaries whose text names their version), the writer
# (rewrite canaries to the next version, edit/add/delete ordinary files, ingest; repeat), the
# readers (search in every mode and status in a loop, checking each result list) and the report.
cat > rw.py <<'EOF'
import json, os, random, re, subprocess, sys, time

WORD = "qqcanaryzz"   # in the canaries only: a BM25 query for it returns exactly the canaries
FOLDERS = ["a", "f", "m", "s", "z"]   # canaries spread over the walk, ordinary files between
CANARIES = ["%s/canary%d.md" % (f, i + 1) for i, f in enumerate(FOLDERS)]
VERSION = re.compile(r"canary version (\d+)")
MODES = ["bm25", "vector", "hybrid"]


def words(vocab):
    with open(vocab, encoding="utf-8") as f:
        return [w for w in (l.rstrip("\n") for l in f)
                if len(w) >= 4 and w.isascii() and w.isalpha() and w.islower()]


def para(rng, ws, n):
    return " ".join(rng.choice(ws) for _ in range(n))


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def ordinary(rng, ws):
    return "# %s\n\n" % para(rng, ws, 3) + "\n".join(
        "## %s\n\n%s\n" % (para(rng, ws, 2), para(rng, ws, 60)) for _ in range(rng.randint(1, 3)))


def write_canaries(src, v, rng, ws):
    for i, rel in enumerate(CANARIES):
        write(os.path.join(src, rel), "# Canary %d version %d\n\n%s canary version %d. %s\n"
              % (i + 1, v, WORD, v, para(rng, ws, 25)))


def ordinary_files(src):
    return sorted(os.path.join(src, f, n) for f in FOLDERS for n in os.listdir(os.path.join(src, f))
                  if not n.startswith("canary"))


def setup(vocab, src, n_files):
    rng, ws = random.Random(1), words(vocab)
    for f in FOLDERS:
        os.makedirs(os.path.join(src, f), exist_ok=True)
    for k in range(int(n_files)):
        write(os.path.join(src, FOLDERS[k % 5], "doc%04d.md" % k), ordinary(rng, ws))
    write_canaries(src, 0, rng, ws)


def mutate(src, v, rng, ws):
    files = ordinary_files(src)
    for path in rng.sample(files, min(len(files), 12)):
        write(path, ordinary(rng, ws))
    os.remove(rng.choice(files))
    write(os.path.join(src, rng.choice(FOLDERS), "new%05d.md" % v), ordinary(rng, ws))


def writer(kb, kbdir, src, vocab, seconds, min_runs):
    rng, ws = random.Random(2), words(vocab)
    deadline, runs, v = time.monotonic() + float(seconds), [], 0
    while time.monotonic() < deadline or len(runs) < int(min_runs):
        v += 1
        write_canaries(src, v, rng, ws)
        mutate(src, v, rng, ws)
        t0 = time.monotonic()
        p = subprocess.run([kb, "--kb", kbdir, "--json", "ingest", src], capture_output=True, text=True)
        run = dict(version=v, rc=p.returncode, seconds=time.monotonic() - t0, stderr=p.stderr.strip())
        try:
            run["embedded"] = json.loads(p.stdout)["embedded"]
        except (ValueError, KeyError):
            run["embedded"] = None
        runs.append(run)
    json.dump(dict(runs=runs, final_version=v), sys.stdout)


def check_results(doc, mode, st):
    """Canary versions in one result list; counts mixed, incomplete and stale lists into st."""
    seen = {}
    for r in doc["results"]:
        name = os.path.basename(r["path"])
        if not name.startswith("canary"):
            continue
        m = VERSION.search(r["text"])
        if not m:
            st["errors"].append("%s: a canary passage without its version: %r" % (mode, r["text"][:80]))
            continue
        seen.setdefault(name, set()).add(int(m.group(1)))
    versions = set().union(*seen.values()) if seen else set()
    if len(seen) >= 2:
        st["checked"][mode] += 1
    if len(versions) > 1:
        st["mixed"] += 1
        if len(st["mixed_examples"]) < 5:
            st["mixed_examples"].append("%s: %s" % (mode, sorted((k, sorted(v)) for k, v in seen.items())))
    if mode == "bm25" and len(seen) != len(CANARIES):
        st["incomplete"] += 1
        if len(st["incomplete_examples"]) < 5:
            st["incomplete_examples"].append("bm25 returned canaries %s" % sorted(seen))
    if versions:
        if min(versions) < st["highest"]:
            st["backwards"] += 1
            if len(st["backwards_examples"]) < 5:
                st["backwards_examples"].append("%s: version %d after %d" % (mode, min(versions), st["highest"]))
        st["highest"] = max(st["highest"], max(versions))


def one_query(kb, kbdir, op, st):
    if op == 3:
        cmd, mode = [kb, "--kb", kbdir, "--json", "status"], "status"
    else:
        mode = MODES[op]
        cmd = [kb, "--kb", kbdir, "--json", "search", "--mode", mode, "-k", "20", WORD + " canary version"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    st["latency"].setdefault(mode, []).append((time.monotonic() - t0) * 1e3)
    st["runs"][mode] = st["runs"].get(mode, 0) + 1
    low = p.stderr.lower()
    if "locked" in low or "busy" in low:
        st["locked"] += 1
    if p.returncode != 0:
        st["n_errors"] += 1
        if len(st["errors"]) < 5:
            st["errors"].append("%s exited %d: %s" % (mode, p.returncode, p.stderr.strip()[:200]))
        return
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        st["n_errors"] += 1
        st["errors"].append("%s: not one JSON document on stdout: %r" % (mode, p.stdout[:100]))
        return
    if mode != "status":
        check_results(doc, mode, st)


def reader(kb, kbdir, idx, stopfile):
    st = dict(runs={}, latency={}, n_errors=0, errors=[], locked=0, mixed=0, mixed_examples=[],
              incomplete=0, incomplete_examples=[], backwards=0, backwards_examples=[], highest=-1,
              checked={m: 0 for m in MODES})
    i = int(idx)
    while not os.path.exists(stopfile):
        one_query(kb, kbdir, i % 4, st)
        i += 1
    json.dump(st, sys.stdout)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def report(seconds, writer_json, *reader_jsons):
    w = json.load(open(writer_json))
    rs = [json.load(open(f)) for f in reader_jsons]
    runs = w["runs"]
    failed = [r for r in runs if r["rc"] != 0]
    locked = sum(r["locked"] for r in rs) + sum("locked" in r["stderr"].lower() or "busy" in r["stderr"].lower() for r in runs)
    total = lambda key: sum(r[key] for r in rs)
    runs_by = {m: sum(r["runs"].get(m, 0) for r in rs) for m in MODES + ["status"]}
    lat = {m: [x for r in rs for x in r["latency"].get(m, [])] for m in MODES + ["status"]}
    every = [x for m in MODES for x in lat[m]]
    checked = {m: sum(r["checked"][m] for r in rs) for m in MODES}
    print("readers: %d over %.0f s; ingests: %d (failed %d, median %.2f s, median %s chunks embedded a run); "
          "final canary version %d" % (len(rs), float(seconds), len(runs), len(failed),
          pct([r["seconds"] for r in runs], 0.5), pct([r["embedded"] or 0 for r in runs], 0.5), w["final_version"]))
    print("queries: %d (%s), kb status: %d; result lists with 2+ canaries checked: %s" % (
          len(every), ", ".join("%s %d" % (m, runs_by[m]) for m in MODES), runs_by["status"],
          ", ".join("%s %d" % (m, checked[m]) for m in MODES)))
    print("errors: %d; 'locked'/'busy' surfaced: %d; mixed generations: %d; bm25 lists missing a canary: %d; "
          "versions going back: %d" % (total("n_errors") + len(failed), locked, total("mixed"),
          total("incomplete"), total("backwards")))
    print("query latency ms p50/p95: " + ", ".join("%s %.1f/%.1f" % (m, pct(lat[m], .5), pct(lat[m], .95))
          for m in MODES + ["status"]) + ", all searches %.1f/%.1f" % (pct(every, .5), pct(every, .95)))
    for r in failed[:5]:
        print("FAIL: ingest of version %d exited %d: %s" % (r["version"], r["rc"], r["stderr"][:200]))
    for key in ("errors", "mixed_examples", "incomplete_examples", "backwards_examples"):
        for line in [x for r in rs for x in r[key]][:5]:
            print("FAIL: %s: %s" % (key.replace("_examples", ""), line))
    bad = failed or locked or total("n_errors") or total("mixed") or total("incomplete") or total("backwards")
    if len(runs) < 2 or checked["bm25"] == 0:
        print("FAIL: too little happened to judge (%d ingests, %d bm25 lists checked)" % (len(runs), checked["bm25"]))
        bad = True
    return 1 if bad else 0


def final(kb, kbdir):
    p = subprocess.run([kb, "--kb", kbdir, "--json", "search", "--mode", "bm25", "-k", "20", WORD],
                       capture_output=True, text=True)
    got = sorted((os.path.basename(r["path"]), VERSION.search(r["text"]).group(1))
                 for r in json.loads(p.stdout)["results"])
    print(" ".join("%s=%s" % g for g in got))


if __name__ == "__main__":
    sys.exit(globals()[sys.argv[1]](*sys.argv[2:]) or 0)
EOF

case_readers_during_writers() {
    local secs=${ARG:-20} n_readers=${KB_READERS:-3} i w want
    use_model tiny_f16_mean
    $PY rw.py setup "$A/vocab.txt" src 150
    $KB --kb kb ingest --model "$A" src >/dev/null 2>err; ok $? 0 "the first ingest exits 0 ($(head -1 err))"
    $PY rw.py writer "$KB" kb src "$A/vocab.txt" "$secs" 3 > writer.json & w=$!; BG+=($w)
    for i in $(seq "$n_readers"); do
        $PY rw.py reader "$KB" kb "$i" stop > "reader$i.json" & BG+=($!)
    done
    wait "$w"; ok $? 0 "the writer loop ran to its end"
    touch stop
    for i in $(seq "$n_readers"); do wait "${BG[$i]}"; ok $? 0 "reader $i ran to its end"; done
    BG=()
    $PY rw.py report "$secs" writer.json reader*.json; ok $? 0 "readers saw no error, no lock and no mixed generation"
    $KB --kb kb check >/dev/null 2>err; ok $? 0 "kb check passes after the runs ($(head -1 err))"
    want=$(jget 'd["final_version"]' < writer.json)
    ok "$($PY rw.py final "$KB" kb)" "$(for i in 1 2 3 4 5; do printf 'canary%d.md=%s ' $i "$want"; done | sed 's/ $//')" \
       "the final KB holds every canary at the last version"
}

# ---- two ingests started together ------------------------------------------------------------
# Both wait on a read from one FIFO (held open read-write here, so opening it never blocks) and
# are released by one write; each is `exec`ed, so its pid is the one `$!` gave.
start_gated() {  # start_gated N: an ingest waiting on the gate, output in out.N/err.N
    ( read -r _ < gate; exec "$KB" --kb kb --json ingest src > "out.$1" 2> "err.$1" ) &
}
both_waiting() {  # both_waiting PID PID: 0 once both block reading the gate (2 s at most)
    local i
    for i in $(seq 40); do
        grep -q pipe "/proc/$1/wchan" 2>/dev/null && grep -q pipe "/proc/$2/wchan" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
proceeded() { [ "$1" = 0 ] || [ "$1" = 1 ]; }
work_of() { jget 'd["added"] + d["updated"] + d["removed"]' < "out.$1" 2>/dev/null || echo 0; }

case_two_ingests_race() {
    local rounds=${ARG:-100} r p1 p2 rc1 rc2 win pwin lose one=0 sequential=0 concurrent=0 wrong=0 other=0 unready=0
    use_model tiny_f16_mean
    mkdir src
    $GEN "$A/vocab.txt" src 300 7 --sections 2 --words 30
    $KB --kb kb ingest --model "$A" src >/dev/null 2>err; ok $? 0 "the first ingest exits 0 ($(head -1 err))"
    mkfifo gate
    local t0; t0=$(now)
    for r in $(seq "$rounds"); do
        printf '\nround %d: %s\n' "$r" "$RANDOM" >> "src/doc$(printf %04d $((r % 300))).md"
        exec 3<>gate
        start_gated 1; p1=$!
        start_gated 2; p2=$!
        both_waiting "$p1" "$p2" || unready=$((unready + 1))
        printf 'go\ngo\n' >&3
        wait "$p1"; rc1=$?
        wait "$p2"; rc2=$?
        exec 3>&-
        win=0
        [ "$rc2" = 75 ] && proceeded "$rc1" && win=1 pwin=$p1 lose=2
        [ "$rc1" = 75 ] && proceeded "$rc2" && win=2 pwin=$p2 lose=1
        if [ "$win" != 0 ]; then
            if grep -qE "locked by pid $pwin([^0-9]|$)" "err.$lose"; then
                one=$((one + 1))
            else
                wrong=$((wrong + 1))
                echo "FAIL: round $r: the loser does not name the winner's pid $pwin: $(head -1 "err.$lose")"
            fi
        elif proceeded "$rc1" && proceeded "$rc2"; then
            if [ "$(work_of 1)" -gt 0 ] && [ "$(work_of 2)" -gt 0 ]; then
                concurrent=$((concurrent + 1))
                echo "FAIL: round $r: both ingests proceeded and both changed the KB"
            else
                sequential=$((sequential + 1))
            fi
        else
            other=$((other + 1))
            echo "FAIL: round $r: exit codes $rc1 and $rc2: $(head -1 err.1) | $(head -1 err.2)"
        fi
    done
    echo "rounds: $rounds in $(since "$t0") s; one proceeded, the other exited 75 naming it: $one;" \
         "the first finished before the second tried: $sequential; both worked at once: $concurrent;" \
         "wrong pid named: $wrong; other outcomes: $other; rounds released before both waited: $unready"
    ok "$concurrent $wrong $other" "0 0 0" "each round exactly one ingest proceeds and the other names it"
    ok "$((one + sequential))" "$rounds" "every round is accounted for"
    [ "$sequential" -gt $((rounds / 2)) ] && echo "note: most rounds were sequential; the race was rarely exercised"
    $KB --kb kb check >/dev/null 2>err; ok $? 0 "kb check passes after the races ($(head -1 err))"
    $KB --kb kb --json ingest src > out 2>err; ok "$(jget 'd["added"] + d["updated"] + d["removed"]' < out)" 0 \
        "every round's change was ingested by one of the two"
}

# ---- a stale lock ------------------------------------------------------------------------------
case_stale_lock_is_taken_over() {
    local p rc t0
    use_model minilm_f32_mean
    mkdir src
    $GEN "$A/vocab.txt" src 80 3 --sections 3 --words 40
    $KB --kb kb ingest --model "$A" src >/dev/null 2>err1 & p=$!; BG+=($p)
    wait_locked kb "$p"; ok $? 0 "the ingest takes the lock on kb/kb.lock (/proc/locks)"
    sleep 0.3   # let it get into its work
    ok "$(probe_lock kb)" 99 "flock -n kb/kb.lock fails while the ingest runs"
    ok "$(tr -d '\n' < kb/kb.lock)" "$p" "kb.lock names the writer's pid"
    kill -9 "$p"; wait "$p" 2>/dev/null; rc=$?; BG=()
    ok "$rc" 137 "the ingest was killed while holding the lock"
    ok "$(tr -d '\n' < kb/kb.lock)" "$p" "kb.lock still names the dead writer"
    t0=$(now)
    # The same command again (a KB killed in its first run may not have recorded its model yet).
    $KB --kb kb --json ingest --model "$A" src > out 2>err; rc=$?
    echo "the next ingest exited $rc after $(since "$t0") s"
    case $rc in 0|1) ok ok ok "";; *) ok "$rc" "0 or 1" "the next ingest proceeds ($(head -1 err))";; esac
    ok "$(grep -ci 'locked' err)" 0 "the next ingest does not report a lock"
    ok "$(jget 'd["added"] + d["updated"] + d["unchanged"]' < out 2>/dev/null)" 80 "the next ingest brings in every file"
    ok "$($KB --kb kb --json status | jget 'd.get("vectors") == d.get("chunks") > 0')" True \
       "every chunk has its vector after the next ingest"
    $KB --kb kb check >/dev/null 2>err; ok $? 0 "kb check passes ($(head -1 err))"
    # A pid in the file whose process is gone (and no flock held): informational only.
    echo 999999999 > kb/kb.lock
    echo "appended" >> src/doc0001.md
    $KB --kb kb ingest src >/dev/null 2>err; ok $? 0 "a lock file naming a dead pid, unlocked, does not stop ingest ($(head -1 err))"
}

# ---- --wait ----------------------------------------------------------------------------------
case_wait_for_the_writer() {
    local p1 rc1 rc t0 dt h
    use_model minilm_f32_mean
    mkdir src
    $GEN "$A/vocab.txt" src 80 5 --sections 3 --words 40
    # 1. --wait while a real ingest runs: waits, then finds everything ingested by the first.
    $KB --kb kb --json ingest --model "$A" src > out1 2>err1 & p1=$!; BG+=($p1)
    wait_locked kb "$p1"; ok $? 0 "the first ingest takes the lock"
    t0=$(now)
    $KB --kb kb --json ingest --wait src > out2 2>err2; rc=$?
    echo "--wait returned $rc after $(since "$t0") s"
    wait "$p1"; rc1=$?; BG=()
    ok "$rc1" 0 "the first ingest exits 0 ($(head -1 err1))"
    ok "$rc" 0 "the second, with --wait, exits 0 ($(head -1 err2))"
    ok "$(jget '(d["added"], d["unchanged"])' < out2 2>/dev/null)" "(0, 80)" \
       "the second ran after the first had committed (it found every file unchanged)"
    # 2. --wait=1 against a lock held for 5 s: 75 after about a second.
    flock -o kb/kb.lock sleep 5 & h=$!; BG+=($h)
    wait_locked kb "$h"; ok $? 0 "flock(1) takes the lock"
    t0=$(now)
    $KB --kb kb ingest src 2>err3; rc=$?
    echo "without --wait: $rc after $(since "$t0") s"
    ok "$rc" 75 "without --wait, a locked KB exits 75 at once"
    ok "$(grep -c 'locked by pid' err3)" 1 "one line says 'locked by pid N'"
    t0=$(now)
    $KB --kb kb ingest --wait=1 src 2>err4; rc=$?; dt=$(since "$t0")
    echo "--wait=1 against a 5 s lock returned $rc after $dt s"
    ok "$rc" 75 "--wait=1 gives up with 75 ($(head -1 err4))"
    ok "$($PY -c "print(0.9 <= $dt < 4.5)")" True "--wait=1 gives up after about a second (took $dt s)"
    ok "$(grep -c 'locked by pid' err4)" 1 "--wait=1 says 'locked by pid N'"
    wait "$h"; BG=()
    # 3. --wait=60 against a lock held for 2 s: proceeds once it is released.
    flock -o kb/kb.lock sleep 2 & h=$!; BG+=($h)
    wait_locked kb "$h"; ok $? 0 "flock(1) takes the lock again"
    echo "more" >> src/doc0002.md
    t0=$(now)
    $KB --kb kb --json ingest --wait=60 src > out5 2>err5; rc=$?; dt=$(since "$t0")
    echo "--wait=60 against a 2 s lock returned $rc after $dt s"
    ok "$rc" 0 "--wait=60 proceeds once the lock is released ($(head -1 err5))"
    ok "$($PY -c "print(0.5 <= $dt < 50)")" True "--wait=60 waited for the holder (took $dt s)"
    ok "$(jget 'd["updated"]' < out5 2>/dev/null)" 1 "the waiting ingest then did its work"
    wait "$h"; BG=()
}

declare -F "case_$CASE" >/dev/null || { echo "unknown case: $CASE"; exit 2; }
"case_$CASE"
echo "$CASE: $pass passed, $fail failed"
[ "$fail" = 0 ]
