#!/usr/bin/env bash
# fault_sweep.sh — the full fault-injection sweep: an incremental ingest (edits, an addition, a
# rename, a deletion) run once for every allocation kb makes (malloc family, SQLite's
# allocator) and once for every write, sync, truncate and rename (stdio, POSIX, SQLite's VFS),
# with exactly that one call failing. Each run must either finish as a clean run would or fail
# with a one-line message leaving the KB as it was; `kb check` passes after it and the next
# clean run converges (tests/test_fault.c; CI runs 300 evenly spread cases per kind).
# Prints, per kind: the calls in a clean run, runs, how many finished / failed cleanly /
# broke a rule, the distinct error messages, and the time. Exits 0 when nothing broke.
# Usage: bench/fault_sweep.sh [RUNS]   (runs per kind spread evenly over the calls; default 0:
# every call, about 4 minutes on 2 cores).
# KB_BUILD=DIR uses an existing test build (e.g. build/test, whose tests/encoder_models it
# reuses), else build/fault is configured and built and the models generated there.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-0}
out=${KB_BUILD:-build/fault}
PY=/usr/bin/python3
if [ -z "${KB_BUILD:-}" ]; then
    cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=ON >/dev/null &&
        cmake --build "$out" --target test_fault -j"$(nproc)" >/dev/null ||
        { echo "fault_sweep: build failed"; exit 1; }
fi
models=$out/tests/encoder_models
if [ ! -d "$models/tiny_f16_mean" ]; then
    $PY scripts/gen_models.py "$models" --vocab ../shared/data/tokenizer/bert-base-uncased/vocab.txt \
        >/dev/null || { echo "fault_sweep: cannot generate the test models"; exit 1; }
fi
start=$(date +%s)
KB_ENCODER_MODELS=$PWD/$models OPENBLAS_NUM_THREADS=1 KB_FAULT_MAX_RUNS=$runs \
    "$out/tests/test_fault" 2>&1 | grep -oE '(alloc|write) sweep: .*|^  error seen.*|^FAIL.*'
rc=${PIPESTATUS[0]}
printf 'fault_sweep: %d s, %s\n' "$(($(date +%s) - start))" \
    "$([ "$rc" = 0 ] && echo 'no rule broken' || echo "FAILED (test_fault exit $rc)")"
exit "$rc"
