#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/fuzz_*.c) with clang and runs each for SECONDS
# (default 60), starting from its seed corpus and replaying the kept crash inputs first.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; shift || true
CC=clang CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKB_FUZZ=ON \
  -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build build/fuzz -j"$(nproc)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in build/fuzz/tests/fuzz/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f" | sed 's/^fuzz_//')"); done
fi
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/$t
  mkdir -p "$corpus" "build/fuzz/work/$t"
  echo "== fuzz_$t for ${secs}s (seeds: $corpus)"
  "build/fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -artifact_prefix="$corpus/crash-" \
    "build/fuzz/work/$t" "$corpus"
done
