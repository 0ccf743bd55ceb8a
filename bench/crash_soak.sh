#!/usr/bin/env bash
# crash_soak.sh — the full crash-safety soak: RUNS kill -9 at random moments during ingests (and
# some index rebuilds) of a FILES-file folder that changes between runs (tests/crash_test.sh),
# then every named crash point ROUNDS times on other folders (tests/crash_points_test.sh).
# Prints runs, kills landed mid-run, damaged KBs (failing `kb check`), whether resuming
# converged to an uninterrupted run's KB, and the total time. Exits 0 when nothing failed.
# Usage: bench/crash_soak.sh [RUNS] [FILES] [ROUNDS]   (defaults 320 3000 5; about 20 minutes
# on 2 cores). Needs a build with KB_TEST_HOOKS: KB_BUILD=DIR uses an existing build tree
# (e.g. build/dev, whose tests/encoder_models it reuses), else build/soak is configured and built.
# SEED=N repeats a soak.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-320} files=${2:-3000} rounds=${3:-5} seed=${SEED:-$$}
out=${KB_BUILD:-build/soak}
PY=/usr/bin/python3
if [ -z "${KB_BUILD:-}" ]; then
    cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_BUILD_TESTS=OFF -DKB_TEST_HOOKS=ON >/dev/null &&
        cmake --build "$out" --target kb_cli -j"$(nproc)" >/dev/null || { echo "crash_soak: build failed"; exit 1; }
fi
grep -q '^KB_TEST_HOOKS:BOOL=ON' "$out/CMakeCache.txt" 2>/dev/null ||
    { echo "crash_soak: $out is not a build with KB_TEST_HOOKS=ON"; exit 1; }
model=$out/tests/encoder_models/tiny_f16_mean
if [ ! -f "$model/model.safetensors" ]; then
    model=$out/soak-models/tiny_f16_mean
    vocab=../shared/data/tokenizer/bert-base-uncased/vocab.txt
    [ -f "$model/model.safetensors" ] || $PY scripts/gen_models.py "$out/soak-models" --only tiny_f16_mean \
        $([ -f $vocab ] && echo --vocab $vocab) >/dev/null || { echo "crash_soak: cannot generate the model"; exit 1; }
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
t0=$(date +%s)
echo "# $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); seed $seed; $runs runs over $files files, crash points x $rounds"
bash tests/crash_test.sh --files "$files" "$out/kb" "$runs" "$model" "$seed" > "$log" 2>&1; rc_random=$?
grep -E '^(DAMAGED|FAIL|run [0-9]+:)' "$log" | head -20
t1=$(date +%s)
bash tests/crash_points_test.sh "$out/kb" "$model" "$rounds" "$seed" > "$log.points" 2>&1; rc_points=$?
grep -E '^(FAIL|round )' "$log.points" | head -20
t2=$(date +%s)
sed -n 's/^files: /random kills: folder /p' "$log"
sed -n 's/^runs: /random kills: runs /p; s/^damaged KBs: /random kills: damaged KBs: /p; s/^converged: /random kills: converged: /p' "$log"
echo "random kills: $((t1 - t0)) s"
grep '^named crash points:' "$log.points"
echo "named crash points: $((t2 - t1)) s"
echo "total time: $((t2 - t0)) s; result: $([ $rc_random = 0 ] && [ $rc_points = 0 ] && echo pass || echo FAIL)"
rm -f "$log.points"
[ $rc_random = 0 ] && [ $rc_points = 0 ]
