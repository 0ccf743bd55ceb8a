#!/usr/bin/env bash
# crash_test.sh — kill -9 during ingest (with embedding and FAISS publishing) at random moments,
# with files changing between runs; after every kill `kb check` must pass, and a final ingest
# must converge to the KB an uninterrupted run builds over the same folder.
# Each run is first timed uninterrupted on a copy of the KB, then run for real and killed after
# a random share of that time (so most kills land mid-run, at any stage).
# Usage: crash_test.sh [--creation] [--files N] PATH_TO_KB RUNS [MODEL_DIR] [SEED]
# --files N: a folder of about N files (default 308: 300 small, 8 large) generated from a seeded
# vocabulary; between runs a share of it proportional to N is edited, appended to, renamed,
# touched, deleted and added to (e.g. --files 3000 RUNS 200 for the soak, bench/crash_soak.sh).
# --creation: instead, RUNS kills spread evenly over a new KB's first (small) ingest, so some
# land while the database is being created; after each, ingest must complete and check pass.
# Without MODEL_DIR the KB is keyword-only (no vectors). Prints "damaged KBs: N" and
# "converged: yes|no"; exits 0 only when N is 0 and the final KB equals the reference.
set -u
CREATION=0 FILES=308
while :; do
    case "${1:-}" in
    --creation) CREATION=1; shift ;;
    --files) FILES=$2; shift 2 ;;
    *) break ;;
    esac
done
[ "$FILES" -ge 20 ] 2>/dev/null || { echo "usage: --files N needs N >= 20"; exit 2; }
KB=$(realpath "$1") RUNS=$2 MODEL=${3:-} SEED=${4:-$$}
[ -e "$MODEL" ] && MODEL=$(realpath "$MODEL")
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; fi
    rm -rf "$T"
}
trap cleanup EXIT
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
export HF_HOME=$T/hf
unset KB_DIR KB_MODEL HF_HUB_CACHE
mkdir -p "$HOME"
cd "$T"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: /usr/bin/python3 lacks numpy"; exit 77; }
if [ -n "$MODEL" ]; then
    [ -f "$MODEL/model.safetensors" ] || { echo "skip: model $MODEL is missing (run the encoder_models fixture)"; exit 77; }
    MODEL=$(realpath "$MODEL")
    MODEL_ARGS=(--model "$MODEL")
    VOCAB=$MODEL/vocab.txt
else
    echo "note: no model given: keyword-only KB, no vectors"
    MODEL_ARGS=(--model none)
    $PY -c 'import random; r=random.Random(1); print("\n".join("".join(r.choice("etaoinshrdlucmfwyp") for _ in range(r.randint(4,9))) for _ in range(3000)))' > vocab.txt
    VOCAB=$T/vocab.txt
fi
RANDOM=$SEED
echo "seed $SEED"
GEN="$PY $HERE/data/vectors/gen_docs.py"

# Small files in a few folders (FILES - 8 of them), and 8 larger ones.
mkdir -p src/a src/b/c
$GEN "$VOCAB" src/a $(((FILES - 8) / 2)) 1 --sections 1 --words 15
$GEN "$VOCAB" src/b $(((FILES - 7) / 2)) 2 --sections 2 --words 20 --prefix note
$GEN "$VOCAB" src/b/c 8 3 --sections 40 --words 60 --prefix big
n_new=0
# mutate: modify, append to, rename, touch, delete and add files: a random share of the
# folder, up to a few dozen files per thousand (of FILES, so the folder keeps about its size:
# as many files are deleted as added, on average).
scale=$((FILES / 300 > 1 ? FILES / 300 : 1))
mutate() {
    local files n i f
    mapfile -t files < <(find src -name '*.md' | sort)
    n=${#files[@]}
    for i in $(seq $((RANDOM % (12 * scale) + 1))); do
        f=${files[RANDOM % n]}
        [ -f "$f" ] && $GEN "$VOCAB" "$(dirname "$f")" 1 $RANDOM --sections $((RANDOM % 6 + 1)) --words 25 --prefix "m$RANDOM-" && rm -f "$f"
    done
    for i in $(seq $((RANDOM % (8 * scale)))); do
        f=${files[RANDOM % n]}
        [ -f "$f" ] && printf '\n## Appended %d\n\n%s\n' $RANDOM "$(head -c 300 "${files[RANDOM % n]}" 2>/dev/null | tr '#' ' ')" >> "$f"
    done
    n_new=$((n_new + 1))
    for i in $(seq $((RANDOM % (3 * scale)))); do   # renames: same content, new path
        f=${files[RANDOM % n]}
        [ -f "$f" ] && mv "$f" "$(dirname "${files[RANDOM % n]}")/moved$n_new-$i-$(basename "$f")"
    done
    for i in $(seq $((RANDOM % (3 * scale)))); do   # a new mtime, the same content
        f=${files[RANDOM % n]}
        [ -f "$f" ] && touch "$f"
    done
    for i in $(seq $((RANDOM % (10 * scale) + 1))); do rm -f "${files[RANDOM % n]}"; done
    $GEN "$VOCAB" src/a $((RANDOM % (10 * scale) + 1)) $RANDOM --sections 2 --words 20 --prefix "new$n_new-"
}

now() { date +%s.%N; }

if [ $CREATION = 1 ]; then
    mkdir -p small; cp src/a/doc000*.md small/
    bad=0 t0=$(now)
    "$KB" --kb probe ingest "${MODEL_ARGS[@]}" small >/dev/null 2>&1
    d_run=$($PY -c "print($(now) - $t0)")
    rm -rf probe
    for run in $(seq "$RUNS"); do
        rm -rf kb
        delay=$($PY -c "print('%.4f' % ($d_run * ($run - 1) / max(1, $RUNS - 1)))")
        "$KB" --kb kb ingest "${MODEL_ARGS[@]}" small >/dev/null 2>&1 &
        PID=$!
        sleep "$delay"; kill -9 "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
        [ -e kb ] || continue
        if ! $KB --kb kb ingest "${MODEL_ARGS[@]}" small >/dev/null 2>err || ! $KB --kb kb check >/dev/null 2>>err; then
            bad=$((bad + 1))
            echo "DAMAGED: killed ${delay}s into creating the KB ($(ls kb | tr '\n' ' ')): $(head -1 err)"
        fi
    done
    echo "KBs killed while being created that ingest could not continue: $bad of $RUNS"
    [ $bad = 0 ]
    exit
fi
t0=$(now)
$KB --kb probe ingest "${MODEL_ARGS[@]}" src >/dev/null 2>err || { echo "FAIL: an uninterrupted ingest failed: $(head -1 err)"; exit 1; }
echo "files: $(find src -name '*.md' | wc -l), $(du -sk src | cut -f1) KB; uninterrupted first ingest: $($PY -c "print('%.2f' % ($(now) - $t0))")s"
rm -rf probe

damaged=0 killed=0 finished=0 killed_ingest=0
for run in $(seq "$RUNS"); do
    [ "$run" -gt 1 ] && [ $((RANDOM % 2)) = 0 ] && mutate
    cmd=(ingest "${MODEL_ARGS[@]}" src)
    # Now and then the index is rebuilt instead (another way to publish a generation).
    if [ -n "$MODEL" ] && [ -f kb/kb.sqlite ] && [ $((RANDOM % 5)) = 0 ]; then
        cmd=(reindex --index "$( [ $((RANDOM % 2)) = 0 ] && echo hnsw || echo flat)")
    fi
    # How long this very run takes uninterrupted (timed on a copy), so the kill lands inside it.
    rm -rf probe
    [ -d kb ] && cp -a kb probe
    t0=$(now)
    "$KB" --kb probe "${cmd[@]}" >/dev/null 2>&1
    d_run=$($PY -c "print($(now) - $t0)")
    rm -rf probe
    delay=$($PY -c "import random; print('%.3f' % (random.Random($RANDOM * 32768 + $RANDOM).random() * $d_run))")
    "$KB" --kb kb "${cmd[@]}" >/dev/null 2>run.err &
    PID=$!
    sleep "$delay"
    kill -9 "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null; rc=$?
    PID=
    if [ "$rc" = 137 ]; then
        killed=$((killed + 1))
        [ "${cmd[0]}" = ingest ] && killed_ingest=$((killed_ingest + 1))
    else
        finished=$((finished + 1))
    fi
    if [ "$rc" != 137 ] && [ "$rc" != 0 ]; then
        echo "run $run: ${cmd[0]} exited $rc without being killed: $(head -1 run.err)"
    fi
    [ -f kb/kb.sqlite ] || continue   # killed before the KB existed: nothing to check
    if ! $KB --kb kb check >/dev/null 2>check.err; then
        damaged=$((damaged + 1))
        echo "DAMAGED after run $run (${cmd[*]:0:3}, killed after ${delay}s): $(head -1 check.err)"
        cp -r kb "damaged.$run"
    fi
done
echo "runs: $RUNS (killed mid-run: $killed, of them during ingest: $killed_ingest; finished before the kill: $finished)"
echo "damaged KBs: $damaged"

# Converge: finish, then compare with a KB built in one uninterrupted run.
$KB --kb kb ingest "${MODEL_ARGS[@]}" src >/dev/null 2>err; rc=$?
[ $rc = 0 ] || echo "FAIL: the final ingest exited $rc: $(head -1 err)"
$KB --kb kb check >/dev/null 2>err; crc=$?
[ $crc = 0 ] || echo "FAIL: check after the final ingest: $(head -1 err)"
$KB --kb ref ingest "${MODEL_ARGS[@]}" src >/dev/null 2>err || echo "FAIL: the reference ingest: $(head -1 err)"
$PY - kb ref <<'EOF'
import hashlib, json, os, sqlite3, sys
import numpy as np

def content(d):
    c = sqlite3.connect("file:" + d + "/kb.sqlite?mode=ro", uri=True)
    docs = set(c.execute("SELECT path, hash FROM documents"))
    chunks = set(c.execute(
        "SELECT d.path, c.ordinal, c.text, c.heading_path, c.byte_start, c.byte_end FROM chunks c "
        "JOIN documents d ON d.id = c.doc_id"))
    vecs = {}
    for path, seq, h, v in c.execute(
            "SELECT d.path, c.ordinal, v.input_hash, v.vector FROM vectors v "
            "JOIN chunks c ON c.id = v.chunk_id JOIN documents d ON d.id = c.doc_id"):
        vecs[(path, seq)] = (h, v)
    orphans = c.execute("SELECT count(*) FROM vectors v LEFT JOIN chunks c ON c.id = v.chunk_id "
                        "WHERE c.id IS NULL").fetchone()[0]
    rec = c.execute("SELECT file FROM vector_index").fetchall()
    return docs, chunks, vecs, orphans, rec

a, b = content(sys.argv[1]), content(sys.argv[2])
problems = []
for name, x, y in (("documents", a[0], b[0]), ("chunks", a[1], b[1])):
    if x != y:
        problems.append("%s differ: %d only in the crashed KB, %d only in the reference"
                        % (name, len(x - y), len(y - x)))
va, vb = a[2], b[2]
if set(va) != set(vb):
    problems.append("chunks with vectors differ: %d vs %d" % (len(va), len(vb)))
if {h for h, _ in va.values()} != {h for h, _ in vb.values()}:
    problems.append("the sets of input hashes differ")
bitwise = close = far = 0
for key in set(va) & set(vb):
    (ha, xa), (hb, xb) = va[key], vb[key]
    if ha != hb:
        far += 1
    elif xa == xb:
        bitwise += 1
    elif np.max(np.abs(np.frombuffer(xa, "<f4") - np.frombuffer(xb, "<f4"))) <= 1e-6:
        close += 1
    else:
        far += 1
if far:
    problems.append("%d chunks' vectors differ from the reference" % far)
if a[3]:
    problems.append("%d vectors without a chunk" % a[3])
# What a crashed run may leave (generation files, the side file of its embeddings) must be
# gone once a run has completed.
strays = sorted(f for f in os.listdir(sys.argv[1])
                if (f.startswith("vectors.") and f not in {r[0] for r in a[4]})
                or f.startswith("pending-vectors."))
print("final KB: %d documents, %d chunks, %d vectors (%d bitwise equal to the reference, "
      "%d within 1e-6); stray files: %s" % (len(a[0]), len(a[1]), len(va), bitwise, close,
      " ".join(strays) or "none"))
for p in problems:
    print("FAIL: " + p)
if strays:
    print("FAIL: files left by crashed runs are still there after a completed run")
sys.exit((1 if problems else 0) + (2 if strays else 0))
EOF
same=$?
strays=$((same & 2)) same=$((same & 1))
if [ -n "$MODEL" ]; then
    stale=$($KB --kb kb --json status | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get("index_stale"), d.get("index_vectors") == d.get("vectors") == d.get("chunks"))')
    [ "$stale" = "False True" ] || { echo "FAIL: the final index is stale or incomplete ($stale)"; same=1; }
fi
[ $rc = 0 ] && [ $crc = 0 ] && [ $same = 0 ] && echo "converged: yes" || echo "converged: no"
[ "$damaged" = 0 ] && [ $rc = 0 ] && [ $crc = 0 ] && [ $same = 0 ] && [ $strays = 0 ]
