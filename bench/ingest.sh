#!/usr/bin/env bash
# ingest.sh — end-to-end ingest throughput: the SciFact abstracts written as Markdown files
# (50 abstracts a file, ~8 MB), ingested into a fresh KB without a model (everything except
# embedding) and with the MiniLM-L6-shaped model (scripts/gen_models.py bench_minilm_l6); prints
# MB/s, tokens/s and the share of time spent embedding, medians of RUNS.
# Usage: bench/ingest.sh [RUNS]   (from the repository root; needs ../shared/data)
#        KB_BENCH_MODELS=none bench/ingest.sh 5   times only the models named (none, or a folder)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
data=../shared/data
out=$PWD/build/bench; models=$out/models; docs=$out/ingest-md
mkdir -p "$models"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" --target kb_cli -j"$(nproc)" >/dev/null
[ -f "$models/bench_minilm_l6/model.safetensors" ] || /usr/bin/python3 scripts/gen_models.py \
  --vocab "$data/tokenizer/bert-base-uncased/vocab.txt" --only bench_minilm_l6 -- "$models" >/dev/null
if [ ! -d "$docs" ]; then
  mkdir -p "$docs"
  /usr/bin/python3 - "$data/retrieval/scifact/corpus.jsonl.gz" "$docs" <<'PY'
import gzip, json, os, sys
docs = [json.loads(l) for l in gzip.open(sys.argv[1], "rt")]
for i in range(0, len(docs), 50):
    with open(os.path.join(sys.argv[2], "part%04d.md" % (i // 50)), "w") as f:
        f.write("# SciFact part %d\n\n" % (i // 50))
        for d in docs[i:i + 50]:
            f.write("## %s\n\n%s\n\n" % (d.get("title", "").strip() or d["_id"], d["text"].strip()))
PY
fi
mb=$(du -sb "$docs" | cut -f1)
export HOME=$out/home XDG_CACHE_HOME=$out/cache XDG_DATA_HOME=$out/data
run() {  # run MODEL -> seconds embedded
  rm -rf "$out/kb-ingest"
  "$out/kb" --kb "$out/kb-ingest" --json ingest --model "$1" "$docs" |
    /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["seconds"], d["embedded"], d["chunks"], d["embedded_tokens"])'
}
echo "# $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(( mb / 1000000 )) MB of Markdown in $(ls "$docs" | wc -l) files"
set -- none "$models/bench_minilm_l6"
[ -z "${KB_BENCH_MODELS:-}" ] || set -- $KB_BENCH_MODELS
for model in "$@"; do
  for i in $(seq "$runs"); do run "$model"; done | /usr/bin/python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin]
s = statistics.median(r[0] for r in rows)
print("model=%s median %.2f s  %.2f MB/s  %d chunks  %d embedded  %.0f tokens/s" % (sys.argv[1].split("/")[-1], s, int(sys.argv[2]) / 1e6 / s, rows[0][2], rows[0][1], rows[0][3] / s))' "$model" "$mb"
done
