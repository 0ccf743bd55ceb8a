#!/usr/bin/env bash
# run.sh — the ONNX Runtime peer of kb's encoder benchmark, end to end: generate the two benchmark
# model folders (scripts/gen_models.py), check the ONNX export against a float64 JS forward pass,
# then print throughput (seq 128, batch 32) and query latency (batch 1, 32 tokens) JSON lines.
# Usage: bench/ort/run.sh [MODELS_DIR] [SECONDS]   (env THREADS, default 2; GRAPHS, default
#        "plain fused"). Needs node + npm; installs onnxruntime-node offline-safe on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
models="${1:-$root/build/ort/models}"
seconds="${2:-10}"
threads="${THREADS:-2}"
graphs="${GRAPHS:-plain fused}"
cd "$here"
# onnxruntime-node's install script fetches GPU extras from the network; the CPU library is in the package.
[ -d node_modules/onnxruntime-node ] || npm ci --ignore-scripts --no-audit --no-fund >&2
mkdir -p "$models" "$root/build/ort"
for m in bench_minilm_l6 bench_bge_small; do
    [ -f "$models/$m/model.safetensors" ] ||
        /usr/bin/python3 "$root/scripts/gen_models.py" "$models" --only "$m" >&2
done
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in bench_minilm_l6 bench_bge_small; do
    for g in $graphs; do
        flag=""; [ "$g" = fused ] && flag="--fused"
        onnx="$root/build/ort/$m.$g.onnx"
        node export.mjs "$models/$m" "$onnx" $flag 2>/dev/null
        node check.mjs "$models/$m" --onnx "$onnx" >&2
        node bench.mjs "$models/$m" --onnx "$onnx" $flag --seq 128 --batch 32 \
            --seconds "$seconds" --threads "$threads"
        node bench.mjs "$models/$m" --onnx "$onnx" $flag --query-latency \
            --seconds "$seconds" --threads "$threads"
    done
done
