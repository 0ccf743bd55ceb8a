#!/usr/bin/env bash
# decoder.sh — kb's in-process decoder against the memory-bandwidth floor, on random-weight
# GGUFs with the exact shapes of real models (scripts/gen_gguf.py; the Qwen2 vocabulary from
# ../shared/data). For each model: prefill tokens/s for a 512-token prompt, decode tokens/s for
# 64 tokens after it, both medians of RUNS runs of `kb -v generate`, and the floor: the file's
# weights read once per token at the bandwidth bench/membw.c measures in the same run.
# Usage: bench/decoder.sh [RUNS] [MODELS...]   MODELS: SHAPE:TYPE, default
#   qwen2.5-0.5b:q8_0 qwen2.5-0.5b:q4_0 qwen2.5-0.5b:q4_k_m smollm2-360m:q8_0
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; shift || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(qwen2.5-0.5b:q8_0 qwen2.5-0.5b:q4_0 qwen2.5-0.5b:q4_k_m smollm2-360m:q8_0)
out=build/bench; mkdir -p "$out/gguf"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" --target kb_cli -j"$(nproc)" >/dev/null
cc -O2 -mavx2 -pthread bench/membw.c -o "$out/membw"
threads=${KB_THREADS:-$(nproc)}
bw=$("$out/membw" 1024 "$threads")
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads, streaming read $bw GB/s, load $(cut -d' ' -f1-3 /proc/loadavg)"
ids=$(/usr/bin/python3 -c 'import random; random.seed(5); print(" ".join(str(random.randrange(1000, 30000)) for _ in range(512)))')
for m in "${models[@]}"; do
  shape=${m%%:*} type=${m##*:} file=$out/gguf/$shape-$type.gguf
  [ -f "$file" ] || /usr/bin/python3 scripts/gen_gguf.py "$shape" "$type" "$file" \
      --vocab ../shared/data/decoder/bpe-tokenizers/ggml-vocab-qwen2.gguf
  for i in $(seq "$runs"); do
    KB_THREADS=$threads "$out/kb" -v generate --model "$file" --ids "$ids" -n 64 --ignore-eos 2>&1 >/dev/null |
      sed -n 's/^kb: prompt .* (\([0-9.]*\) tokens\/s); .* (\([0-9.]*\) tokens\/s)$/\1 \2/p'
  done | /usr/bin/python3 -c '
import json, os, statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
size = os.path.getsize(sys.argv[1]); bw = float(sys.argv[2]) * 1e9
floor = bw / size
dec = statistics.median(r[1] for r in rows)
print(json.dumps({"model": sys.argv[3], "runs": len(rows), "file_mb": round(size / 1e6),
    "prefill_tok_s": round(statistics.median(r[0] for r in rows), 1),
    "decode_tok_s": round(dec, 1), "floor_tok_s": round(floor, 1),
    "fraction_of_floor": round(dec / floor, 3)}))' "$file" "$bw" "$m"
done
