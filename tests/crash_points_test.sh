#!/usr/bin/env bash
# crash_points_test.sh — kb ingest killed at each named crash point (test builds, KB_TEST_HOOKS):
# the KB must pass `kb check`, answer every search mode, and answer exactly as before the run
# (the previous generation) when killed before the commit, or as the new folder when killed
# after it; a plain ingest must then converge to the KB an uninterrupted ingest builds, with
# the recorded FAISS file intact and no stray vectors.*.faiss* files beside it.
# Usage: crash_points_test.sh PATH_TO_KB MODEL_DIR [ROUNDS] [SEED]
# Each round builds a KB from folder version A, turns the folder into version B (edits,
# appends, additions, deletions, a rename), and runs `KB_CRASH_POINT=<point> kb ingest` for
# every point; ROUNDS (default 1) repeats that on other generated folders.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$(realpath "$1") MODEL=${2:-} ROUNDS=${3:-1} SEED=${4:-1}
[ -e "$MODEL" ] && MODEL=$(realpath "$MODEL")
POINTS=${CRASH_POINTS:-faiss-written before-rename after-rename before-commit after-commit}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
GEN="$PY $HERE/data/vectors/gen_docs.py"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
export HF_HOME=$T/hf
unset KB_DIR KB_MODEL HF_HUB_CACHE SENTENCE_TRANSFORMERS_HOME KB_CRASH_POINT
mkdir -p "$HOME"
cd "$T"
$PY -c 'import numpy' 2>/dev/null || { echo "skip: /usr/bin/python3 lacks numpy"; exit 77; }
[ -f "$MODEL/model.safetensors" ] || { echo "skip: model '$MODEL' is missing (run the encoder_models fixture)"; exit 77; }
VOCAB=$MODEL/vocab.txt
pass=0 fail=0 kills=0 damaged=0 answered=0 converged=0 strays=0

# search.py exact|content < kb search --json: one line per result. exact: as stored (ids and
# scores), for a KB that must be unchanged; content: what a user sees, for KBs built apart.
cat > search.py <<'EOF'
import json, sys
d = json.load(sys.stdin)
for r in d["results"]:
    if sys.argv[1] == "exact":
        print(r["chunk_id"], r["document_id"], r["path"], r["line_start"], r["line_end"],
              "%.9g" % r["score"])
    else:
        print(r["path"], r["line_start"], r["line_end"], r["heading_path"], "%.9g" % r["score"])
EOF
# same.py WANT GOT: the same answers, up to what a KB built apart may differ in: scores by 1e-5
# (relative; a resumed run reuses vectors that a fresh run computes in other batches), the order
# of results with equal scores, and which of the results tied at the last place make the top k
# (both follow chunk ids). Lines: "query ..." headers, results "... SCORE", a status line.
cat > same.py <<'EOF'
import sys

def blocks(path):
    out, cur = [], None
    for line in open(path).read().splitlines():
        key, _, score = line.rpartition(" ")
        try:
            cur.append((key, float(score)))
        except (ValueError, AttributeError):
            cur = []
            out.append((line, cur))
    return out

def near(x, y):
    return abs(x - y) <= 1e-5 * max(1.0, abs(x))

def same_block(a, b):
    if len(a) != len(b):
        return False
    if not a:
        return True
    last = min(s for _, s in a)
    a = sorted((r for r in a if not near(r[1], last)), key=lambda r: (-round(r[1], 4), r[0]))
    b = sorted((r for r in b if not near(r[1], last)), key=lambda r: (-round(r[1], 4), r[0]))
    return len(a) == len(b) and all(ka == kb and near(sa, sb) for (ka, sa), (kb, sb) in zip(a, b))

want, got = blocks(sys.argv[1]), blocks(sys.argv[2])
sys.exit(0 if len(want) == len(got) and all(
    hw == hg and same_block(rw, rg) for (hw, rw), (hg, rg) in zip(want, got)) else 1)
EOF
# status.py exact|content < kb status --json: the figures that must match.
cat > status.py <<'EOF'
import json, sys
d = json.load(sys.stdin)
keys = ["documents", "chunks", "text_bytes", "vectors", "index", "index_vectors", "index_stale"]
if sys.argv[1] == "exact":
    keys.append("index_generation")
print(" ".join("%s=%s" % (k, d.get(k)) for k in keys))
EOF

# snapshot KBDIR exact|content OUT: every query in every mode, and the status.
snapshot() {
    local q mode i=0
    : > "$3"; : > search.err
    while IFS= read -r q; do
        i=$((i + 1))
        for mode in bm25 vector hybrid; do
            echo "query $i $mode" >> "$3"
            $KB --kb "$1" --json search -k 10 --mode $mode "$q" 2>>search.err | $PY search.py "$2" >> "$3" \
                || echo "SEARCH FAILED: query $i mode $mode" >> "$3"
        done
    done < queries.txt
    $KB --kb "$1" --json status 2>>search.err | $PY status.py "$2" >> "$3" || echo "STATUS FAILED" >> "$3"
}

# Folder version A: a few folders of small files and a few larger ones.
make_a() {
    rm -rf src; mkdir -p src/a src/b/c
    $GEN "$VOCAB" src/a 40 $(($1 * 10 + 1)) --sections 2 --words 20
    $GEN "$VOCAB" src/b 40 $(($1 * 10 + 2)) --sections 1 --words 15 --prefix note
    $GEN "$VOCAB" src/b/c 4 $(($1 * 10 + 3)) --sections 12 --words 50 --prefix big
}
# Version B: an edit, an append, additions, deletions and a rename.
make_b() {
    mkdir -p gen src/new src/moved; rm -f gen/*
    $GEN "$VOCAB" gen 1 $(($1 * 10 + 4)) --sections 3 --words 30 --prefix edit
    mv gen/edit0000.md src/a/doc0003.md
    $GEN "$VOCAB" gen 1 $(($1 * 10 + 5)) --sections 1 --words 40 --prefix app
    tail -n +3 gen/app0000.md >> src/b/note0005.md
    $GEN "$VOCAB" src/new 6 $(($1 * 10 + 6)) --sections 2 --words 20 --prefix added
    rm src/a/doc0007.md src/b/note0008.md src/b/c/big0001.md
    mv src/a/doc0010.md src/moved/renamed0010.md
}
# Queries that tell A from B: titles of a deleted, an edited, an added and the renamed file,
# plus a few generated ones.
make_queries() {
    { sed -n 's/^# //p' src/a/doc0007.md src/a/doc0010.md src/b/c/big0001.md
      make_b "$1" >/dev/null
      sed -n 's/^# //p' src/a/doc0003.md src/new/added0002.md
      $GEN "$VOCAB" --queries 3 "$1"; } > queries.txt
}

# compare.py KBDIR REFDIR: the converged KB against the reference, and the FAISS generation
# file (exists, matches its recorded sha256 and count, not stale): exit status bit 1 when they
# differ; bit 2 when files a crashed run left (strays) are still there.
cat > compare.py <<'EOF'
import hashlib, os, sqlite3, sys
import numpy as np

def content(d):
    c = sqlite3.connect("file:" + d + "/kb.sqlite?mode=ro", uri=True)
    docs = sorted(c.execute("SELECT path, hash FROM documents"))
    chunks = sorted(c.execute(
        "SELECT d.path, c.text, c.heading_path, c.line_start, c.line_end FROM chunks c "
        "JOIN documents d ON d.id = c.doc_id"))
    vecs = sorted(c.execute(
        "SELECT c.text, d.path, c.line_start, v.input_hash, v.vector FROM vectors v "
        "JOIN chunks c ON c.id = v.chunk_id JOIN documents d ON d.id = c.doc_id"))
    rec = c.execute("SELECT file, sha256, n_vectors, vectors_rev FROM vector_index").fetchone()
    rev = c.execute("SELECT value FROM kb_meta WHERE key = 'vectors_rev'").fetchone()
    n_vec = c.execute("SELECT count(*) FROM vectors").fetchone()[0]
    return docs, chunks, vecs, rec, int(rev[0]) if rev else None, n_vec

kb, ref = sys.argv[1], sys.argv[2]
a, b = content(kb), content(ref)
problems = []
if a[0] != b[0]:
    problems.append("documents(path, hash) differ: %d only in the crashed KB, %d only in the reference"
                    % (len(set(a[0]) - set(b[0])), len(set(b[0]) - set(a[0]))))
if a[1] != b[1]:
    problems.append("chunks(path, text, heading path, lines) differ: %d only in the crashed KB, "
                    "%d only in the reference" % (len(set(a[1]) - set(b[1])), len(set(b[1]) - set(a[1]))))
if a[5] != b[5]:
    problems.append("vector count %d, the reference has %d" % (a[5], b[5]))
sha = [hashlib.sha256(b"".join(r[4] for r in x[2])).hexdigest() for x in (a, b)]
how = "bitwise equal"
if sha[0] != sha[1]:
    keys = [[r[:4] for r in x[2]] for x in (a, b)]
    if keys[0] != keys[1]:
        problems.append("the vectors belong to other chunks or inputs than the reference's")
    else:
        diff = max(float(np.max(np.abs(np.frombuffer(x[4], "<f4") - np.frombuffer(y[4], "<f4"))))
                   for x, y in zip(a[2], b[2]))
        if diff > 1e-6:
            problems.append("vectors differ from the reference by up to %g" % diff)
        how = "equal within %g" % diff
rec = a[3]
if rec is None:
    problems.append("no FAISS generation is recorded")
else:
    path = os.path.join(kb, rec[0])
    if not os.path.exists(path):
        problems.append("the recorded FAISS file %s is missing" % rec[0])
    elif hashlib.sha256(open(path, "rb").read()).hexdigest() != rec[1]:
        problems.append("%s does not match its recorded sha256" % rec[0])
    if rec[2] != a[5]:
        problems.append("%s holds %d vectors, the table %d" % (rec[0], rec[2], a[5]))
    if rec[3] != a[4]:
        problems.append("%s was built at vectors_rev %d, the KB is at %d (stale)" % (rec[0], rec[3], a[4]))
# Generation files other than the recorded one, and the side file of a run's embeddings
# (pending-vectors.sqlite*), which a committed run deletes: nothing a crash left may stay.
strays = sorted(f for f in os.listdir(kb)
                if (f.startswith("vectors.") and ".faiss" in f and (rec is None or f != rec[0]))
                or f.startswith("pending-vectors."))
print("converged KB: %d documents, %d chunks, %d vectors (%s); index %s; stray files: %s" %
      (len(a[0]), len(a[1]), a[5], how, rec and rec[0], " ".join(strays) or "none"))
for p in problems:
    print("FAIL: " + p)
sys.exit((1 if problems else 0) + (2 if strays else 0))
EOF

echo "seed $SEED, $ROUNDS round(s)"
for round in $(seq "$ROUNDS"); do
    s=$((SEED * 1000 + round))
    # The reference: version B ingested in one uninterrupted run; its answers.
    rm -rf ref; make_a $s; make_queries $s
    $KB --kb ref ingest --model "$MODEL" src >/dev/null 2>err || { echo "FAIL: the reference ingest: $(head -1 err)"; exit 1; }
    snapshot ref content want_b.txt
    for point in $POINTS; do
        rm -rf kb; make_a $s
        $KB --kb kb ingest --model "$MODEL" src >/dev/null 2>err; ok $? 0 "round $round $point: ingest of version A exits 0 ($(head -1 err))"
        snapshot kb exact want_a.txt
        if [ "$point" = faiss-written ]; then
            snapshot kb content a_content.txt
            $PY same.py a_content.txt want_b.txt; ok $? 1 "round $round: the queries tell version A from version B"
        fi
        make_b $s
        KB_CRASH_POINT=$point $KB --kb kb ingest --model "$MODEL" src >/dev/null 2>err &
        wait $! 2>/dev/null; rc=$?   # in the background, so bash prints no "Killed" line
        if [ $rc != 137 ]; then
            ok $rc 137 "round $round $point: kb ingest died by SIGKILL at the point (exit $rc: the point was not reached; a build without KB_TEST_HOOKS, or a run that changed no vectors?) $(head -1 err)"
            continue
        fi
        pass=$((pass+1)) kills=$((kills + 1))
        $KB --kb kb check >/dev/null 2>err; rc=$?
        [ $rc = 0 ] || damaged=$((damaged + 1))
        ok $rc 0 "round $round $point: kb check after the kill ($(head -1 err))"
        if [ $point = after-commit ]; then
            snapshot kb content got.txt; want=want_b.txt what="the new folder's (an uninterrupted run's)"
            same="$PY same.py"
        else
            snapshot kb exact got.txt; want=want_a.txt what="the previous generation's"
            same="cmp -s"   # the same database and FAISS file: the same ids and scores, bit for bit
        fi
        grep -q FAILED got.txt; ok $? 1 "round $round $point: every search mode and status work after the kill ($(grep -m1 FAILED got.txt) $(head -1 search.err 2>/dev/null))"
        $same "$want" got.txt; rc=$?
        if [ $rc = 0 ]; then
            answered=$((answered + 1))
        else
            echo "round $round $point: answers after the kill differ from $what:"
            diff "$want" got.txt | head -8
        fi
        ok $rc 0 "round $round $point: answers after the kill are exactly $what"
        $KB --kb kb ingest --model "$MODEL" src >/dev/null 2>err; ok $? 0 "round $round $point: the resuming ingest exits 0 ($(head -1 err))"
        $KB --kb kb check >/dev/null 2>err; ok $? 0 "round $round $point: kb check after resuming ($(head -1 err))"
        out=$($PY compare.py kb ref); rc=$?
        [ $rc = 0 ] || echo "round $round $point: $out"
        [ $((rc & 1)) = 0 ] && converged=$((converged + 1))
        [ $((rc & 2)) = 0 ] || strays=$((strays + 1))
        ok $((rc & 1)) 0 "round $round $point: resuming converges to the uninterrupted KB"
        ok $((rc & 2)) 0 "round $round $point: no file the crashed run left stays after resuming"
        snapshot kb content got.txt
        $PY same.py want_b.txt got.txt; rc=$?
        [ $rc = 0 ] || { echo "round $round $point: answers after resuming differ from the uninterrupted KB's:"; diff -U2 want_b.txt got.txt | head -16; }
        ok $rc 0 "round $round $point: after resuming, answers equal the uninterrupted KB's"
    done
done
echo "named crash points: $kills kills of $((ROUNDS * $(wc -w <<<"$POINTS"))), damaged KBs: $damaged, answering as required: $answered, converged: $converged, left stray files: $strays"
echo "crash points: $pass passed, $fail failed"
[ $fail = 0 ]
