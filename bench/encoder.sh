#!/usr/bin/env bash
# encoder.sh — kb's encoder against the sgemm floor and against ONNX Runtime, same weights.
# Generates the MiniLM-L6- and bge-small-shaped random models (scripts/gen_models.py, real
# vocabulary), writes SciFact abstracts as texts (each truncated to 128 tokens by the models'
# kb_model.json), runs bench/encoder_bench.c RUNS times per model and prints the medians; then,
# when node is installed, bench/ort/run.sh on the same model folders.
# Usage: bench/encoder.sh [RUNS] [SECONDS]   (from the repository root; ../shared/data needed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; secs=${2:-10}
data=../shared/data
out=build/bench; models=$out/models
mkdir -p "$models"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" --target encoder_bench -j"$(nproc)" >/dev/null
for m in bench_minilm_l6 bench_bge_small; do
  [ -f "$models/$m/model.safetensors" ] || /usr/bin/python3 scripts/gen_models.py \
    --vocab "$data/tokenizer/bert-base-uncased/vocab.txt" --only "$m" -- "$models" >/dev/null
done
texts=$out/scifact_texts.txt
[ -f "$texts" ] || /usr/bin/python3 - "$data/retrieval/scifact/corpus.jsonl.gz" "$texts" <<'PY'
import gzip, json, sys
with gzip.open(sys.argv[1], "rt") as f, open(sys.argv[2], "w") as o:
    for line in f:
        d = json.loads(line)
        t = (d.get("title", "") + ". " + d["text"]).replace("\n", " ")
        if len(t.split()) > 150:
            o.write(t + "\n")
PY
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for m in bench_minilm_l6 bench_bge_small; do
  for i in $(seq "$runs"); do "$out/encoder_bench" "$models/$m" "$texts" 128 "$secs"; done |
    /usr/bin/python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
med = lambda k: statistics.median(r[k] for r in rows)
print(json.dumps({"runtime": "kb", "model": rows[0]["model"].split("/")[-1], "runs": len(rows),
    "blas": rows[0]["blas"], "floor_tokens_per_s": round(med("floor_tokens_per_s")),
    "tokens_per_s": round(med("tokens_per_s")), "fraction_of_floor": round(med("fraction_of_floor"), 3),
    "query_p50_ms": round(med("query_p50_ms"), 2), "query_p90_ms": round(med("query_p90_ms"), 2)}))'
done
if command -v node >/dev/null; then
  bash bench/ort/run.sh "$PWD/$models" "$secs"
else
  echo "# node not installed: ONNX Runtime comparison skipped"
fi
