#!/usr/bin/env bash
# diskfull_test.sh — disk full during ingest: the KB on a small tmpfs (and TMPDIR on another) with
# a filler file leaving less room than the ingest needs, at several levels; each failing ingest
# must exit 74 with one line naming what failed, leave no stray files, and leave the previous KB
# answering exactly as before (and `kb check` passing); once the filler is deleted the same ingest
# succeeds. Without root or tmpfs: the same with `ulimit -f` (kb then meets SIGXFSZ/EFBIG; what it
# does is printed). Skips (77) when neither is possible.
# Usage: diskfull_test.sh PATH_TO_KB MODELS_DIR   (env KB_DISKFULL_METHOD=tmpfs|ulimit forces one)
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$(realpath "$1") MODELS=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
GEN="$PY $HERE/data/vectors/gen_docs.py"
T=$(mktemp -d)
MOUNTS=()
cleanup() {
    local m
    cd /
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
    rm -rf "$T"
}
trap cleanup EXIT

export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
export HF_HOME=$T/hf
unset KB_DIR KB_MODEL HF_HUB_CACHE SENTENCE_TRANSFORMERS_HOME
mkdir -p "$HOME"
cd "$T"
$PY -c 'import numpy' 2>/dev/null || skip "/usr/bin/python3 lacks numpy"
A=$MODELS/tiny_f16_mean
[ -f "$A/model.safetensors" ] || skip "model $A is missing (run the encoder_models fixture)"
jget() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
# kb_bytes DIR: bytes the KB holds, the pending-embeddings cache left out.
kb_bytes() { echo $(( $(du -sb "$1" | cut -f1) - $(cat "$1"/pending-vectors.sqlite* 2>/dev/null | wc -c) )); }

method=${KB_DISKFULL_METHOD:-}
if [ -z "$method" ]; then
    mkdir probe
    if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1m tmpfs probe 2>/dev/null; then
        umount probe; method=tmpfs
    elif (ulimit -f 64) 2>/dev/null; then
        method=ulimit
    else
        skip "neither a tmpfs mount (needs root) nor 'ulimit -f' is possible here"
    fi
fi
echo "method: $method"

# The documents: a first ingest of 40 files, then 600 more that need far more room than is left.
mkdir -p src more
$GEN "$A/vocab.txt" src 40 1 --sections 3 --words 40
$GEN "$A/vocab.txt" more 600 2 --sections 3 --words 40 --prefix more
$GEN "$A/vocab.txt" --queries 6 3 > queries.txt

if [ "$method" = tmpfs ]; then
    mkdir kbfs tmpfs
    mount -t tmpfs -o size=24m tmpfs kbfs && MOUNTS+=("$T/kbfs") || skip "cannot mount a tmpfs"
    mount -t tmpfs -o size=4m tmpfs tmpfs && MOUNTS+=("$T/tmpfs") || skip "cannot mount a second tmpfs"
    K=$T/kbfs/kb
else
    mkdir tmpfs
    K=$T/kb
fi
export TMPDIR=$T/tmpfs
$KB --kb "$K" ingest --model "$A" src >/dev/null 2>err; ok $? 0 "the first ingest exits 0 ($(head -1 err))"
# How much the second ingest adds, measured on a copy in roomy space.
cp -a "$K" "$T/roomy"
cp -a more src/more
$KB --kb "$T/roomy" ingest src >/dev/null 2>err; ok $? 0 "the big ingest succeeds with room ($(head -1 err))"
before=$(kb_bytes "$K")
growth=$(( $(du -sb "$T/roomy" | cut -f1) - before ))
rm -rf "$T/roomy"
echo "KB before: $before bytes; the big ingest adds $growth bytes"

# answers: bm25 and vector results (path, chunk, score) for every query: must not change.
answers() {
    local q mode
    while read -r q; do
        for mode in bm25 vector hybrid; do
            $KB --kb "$K" --json search --mode $mode -k 5 "$q" 2>/dev/null |
                jget "' '.join('%s:%d:%.6f' % (r['path'].rsplit('/', 1)[-1], r['chunk_id'], r['score']) for r in d['results'])"
        done
    done < queries.txt
}
answers > answers.before
ok "$(wc -l < answers.before)" 18 "every baseline query answers"
docs_before=$($KB --kb "$K" --json status | jget 'd["documents"]')

# strays DIR: files in the KB beyond the documented ones (kb.sqlite[-wal|-shm], kb.lock and the
# recorded vectors.N.faiss; read with immutable=1 when the KB cannot be opened normally).
RECORDED='
import sqlite3, sys
def files(opt):
    c = sqlite3.connect("file:" + sys.argv[1] + "/kb.sqlite?" + opt, uri=True)
    return " ".join(r[0] for r in c.execute("SELECT file FROM vector_index"))
try:
    print(files("mode=ro"))
except sqlite3.Error:
    print(files("immutable=1"))
'
# After a failed run, index/pending.h's cache of its embeddings (pending-vectors.sqlite) may stay
# too (strays DIR cache); after a committed one it must be gone.
strays() {
    local rec cache=none
    rec=$($PY -c "$RECORDED" "$1" 2>/dev/null)
    [ "${2:-}" = cache ] && cache='pending-vectors\.sqlite(-wal|-shm)?'
    ls -A "$1" | grep -vxE "kb\.sqlite|kb\.sqlite-wal|kb\.sqlite-shm|kb\.lock|tokens|${rec:-none}|$cache" | tr '\n' ' '
}

# failing_ingest LABEL: runs the big ingest into a full disk and checks what it leaves.
failing_ingest() {
    local label=$1 rc line size
    if [ "${2:-}" = rerun ]; then
        rc=$FAILED_RC
    elif [ "$method" = tmpfs ]; then
        $KB --kb "$K" ingest src >out 2>err; rc=$?
    else
        # ulimit -f counts 1024-byte blocks; the WAL (or the database) meets it.
        (ulimit -f "$2"; exec "$KB" --kb "$K" ingest src) >out 2>err; rc=$?
    fi
    line=$(head -1 err)
    echo "$label: exit $rc: ${line:-<nothing on stderr>}"
    if [ "$rc" -gt 128 ]; then
        echo "note: $label: kb was killed by signal $((rc - 128))$([ $((rc - 128)) = 25 ] && echo ' (SIGXFSZ: kb does not ignore it)')"
        [ "$method" = ulimit ] || ok "$rc" 74 "$label: kb exits 74, not by a signal"
    else
        ok "$rc" 74 "$label: the ingest exits 74"
        ok "$(grep -c . err)" 1 "$label: one line on stderr"
        ok "$(grep -ciE 'no space left|disk is full|disk full|file too large' err)" 1 "$label: the line says the disk is full"
        ok "$(grep -cE '::|\.cpp:|\.c:[0-9]' err)" 0 "$label: the line names no internal function or source file"
    fi
    size=$(kb_bytes "$K")
    [ -e "$K/pending-vectors.sqlite" ] && echo "note: $label: pending-vectors.sqlite* left: $(cat "$K"/pending-vectors.sqlite* | wc -c) bytes"
    if [ "$rc" -gt 128 ] && [ "$method" = ulimit ]; then
        # Killed like kill -9: what it leaves is a crash's to clean up (the next run must).
        echo "note: $label: left $(strays "$K")in the KB, $before -> $size bytes"
    else
        ok "$(strays "$K" cache)" "" "$label: no stray files in the KB"
        ok "$([ "$size" -le $((before + 65536)) ] && echo yes)" yes "$label: the KB holds no more room than before ($before -> $size bytes)"
    fi
    ok "$(ls -A "$TMPDIR" | tr '\n' ' ')" "" "$label: nothing left in TMPDIR"
    answers > answers.after
    ok "$(cmp -s answers.before answers.after && echo same)" same "$label: every query answers exactly as before"
    ok "$($KB --kb "$K" --json status | jget 'd["documents"]')" "$docs_before" "$label: the KB still holds the previous documents"
    $KB --kb "$K" check >/dev/null 2>err; ok $? 0 "$label: kb check passes ($(head -1 err))"
}

free_bytes() { echo $(( $(stat -f -c '%a * %S' "$1") )); }
if [ "$method" = tmpfs ]; then
    # Levels of room left: none at all, almost none, then shares of what the ingest needs.
    for left in 0 16384 $((growth / 4)) $((growth / 2)) $((growth * 9 / 10)); do
        rm -f kbfs/filler
        fill=$(( $(free_bytes kbfs) - left ))
        [ "$fill" -gt 0 ] && head -c "$fill" /dev/zero > kbfs/filler 2>/dev/null
        failing_ingest "KB filesystem full, $(( $(free_bytes kbfs) / 1024 )) KiB left"
    done
else
    size=$(( $(stat -c %s "$K/kb.sqlite") / 1024 ))
    for extra in 16 $((growth / 4096)) $((growth / 2048)); do
        failing_ingest "ulimit -f $((size + extra)) KiB" $((size + extra))
    done
fi

# Space freed: the same ingest succeeds.
rm -f kbfs/filler
$KB --kb "$K" ingest src >/dev/null 2>err; ok $? 0 "once space is freed the same ingest succeeds ($(head -1 err))"
ok "$($KB --kb "$K" --json status | jget 'd["documents"]')" 640 "the KB then holds every document"
$KB --kb "$K" check >/dev/null 2>err; ok $? 0 "kb check passes after the space was freed ($(head -1 err))"
ok "$(strays "$K")" "" "no stray files in the KB after the successful ingest"

# The temp directory full while the KB has room: kb either never needs it or fails cleanly.
if [ "$method" = tmpfs ]; then
    mkdir src/late
    $GEN "$A/vocab.txt" src/late 100 4 --sections 3 --words 40 --prefix late
    answers > answers.before
    docs_before=$($KB --kb "$K" --json status | jget 'd["documents"]')
    before=$(kb_bytes "$K")
    head -c 8M /dev/zero > tmpfs/filler 2>/dev/null
    $KB --kb "$K" ingest src >out 2>err; rc=$?; FAILED_RC=$rc
    echo "TMPDIR full, KB filesystem roomy: exit $rc: $(head -1 err)"
    rm -f tmpfs/filler
    [ "$rc" != 0 ] && failing_ingest "TMPDIR full (already run)" rerun
    $KB --kb "$K" ingest src >/dev/null 2>err; ok $? 0 "with TMPDIR freed the ingest succeeds ($(head -1 err))"
    ok "$($KB --kb "$K" --json status | jget 'd["documents"]')" 740 "the KB then holds the late documents too"
fi
echo "diskfull ($method): $pass passed, $fail failed"
[ "$fail" = 0 ]
