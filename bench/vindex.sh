#!/usr/bin/env bash
# vindex.sh — vector index latency (p50/p95) and recall@10 at 10k and 100k vectors, dim 384,
# next to the memory-bandwidth floor. Builds bench/vindex_bench.c in build/bench.
# Usage: bench/vindex.sh [QUERIES] [RUNS]   (env KB_THREADS sets the FLAT search's threads)
set -euo pipefail
cd "$(dirname "$0")/.."
queries=${1:-200}
runs=${2:-5}
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench --target vindex_bench -j2 >/dev/null
# FAISS's OpenMP threads sleep when idle instead of spinning against kb's threads and OpenBLAS.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# p50/p95 of $queries single queries, k=10, medians of $runs runs; recall@10 vs flat-kb"
for n in 10000 100000; do
    build/bench/vindex_bench "$n" 384 "$queries" "$runs" flat,faiss,ivf,hnsw
done
