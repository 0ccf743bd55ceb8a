#!/usr/bin/env bash
# readers_writers.sh — readers during a writer, the long version: READERS processes query a KB in
# every mode (and kb status) in a loop while ingest runs again and again over changing files
# (canary documents name their version), for SECONDS; prints queries and ingests run, errors,
# 'locked' surfaced, mixed generations and query latency. The test (tests/concurrency_test.sh
# readers_during_writers) is the same for 20 s with 3 readers.
# Usage: bench/readers_writers.sh [SECONDS] [READERS]   (from the repository root; default 300, 6)
# Env: KB_BIN (a kb binary; default: built into build/bench), KB_MODELS (folder with
# scripts/gen_models.py's tiny_f16_mean; default: generated into build/bench/models).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300} readers=${2:-6}
out=$PWD/build/bench
kb=${KB_BIN:-}
if [ -z "$kb" ]; then
  cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=OFF >/dev/null
  cmake --build "$out" --target kb_cli -j"$(nproc)" >/dev/null
  kb=$out/kb
fi
models=${KB_MODELS:-$out/models}
if [ ! -f "$models/tiny_f16_mean/model.safetensors" ]; then
  mkdir -p "$models"
  /usr/bin/python3 scripts/gen_models.py --vocab ../shared/data/tokenizer/bert-base-uncased/vocab.txt \
    --only tiny_f16_mean -- "$models" >/dev/null
fi
echo "# $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $readers readers, ${seconds} s, model tiny_f16_mean"
KB_READERS=$readers bash tests/concurrency_test.sh "$kb" "$models" readers_during_writers "$seconds"
