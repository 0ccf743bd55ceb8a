#!/usr/bin/env bash
# install_test.sh — libkb as an installed library: `cmake --install` into a temporary prefix,
# then examples/ask.c built against that tree alone, three ways (pkg-config and the shared
# library; pkg-config and libkb.a; a CMake project with find_package(kb CONFIG)), each run on a
# KB of a few documents without a backend (passages are printed) and against the loopback LLM
# server tests/llm_server.py (the streamed answer and the numbered sources are printed).
# Case `symbols`: libkb.so exports exactly the KB_API functions of the installed kb.h.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR CASE [EXTRA_CFLAGS]
#   CASE: example | symbols; EXTRA_CFLAGS: what the example needs to link a sanitized libkb.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BUILD=$1 SRC=$2 CASE=$3 EXTRA_CFLAGS=${4:-}
PY=/usr/bin/python3 DATA=$SRC/tests/data/llm
for tool in cc pkg-config nm readelf cmake; do
  command -v $tool >/dev/null || { echo "skipped: $tool is needed"; exit 77; }
done
T=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

P=$T/prefix
cmake --install "$BUILD" --prefix "$P" >"$T/install.log" 2>&1; ok $? 0 "cmake --install succeeds"
[ -f "$P/lib/libkb.so.0" ] || { cat "$T/install.log"; echo "FAIL: nothing installed"; exit 1; }

case $CASE in
symbols)
  nm -D --defined-only "$P/lib/libkb.so" | awk '{print $3}' | sort > "$T/exported"
  echo "libkb.so exports $(wc -l < "$T/exported") symbols:"; tr '\n' ' ' < "$T/exported"; echo
  ok "$(grep -vc '^kb_' "$T/exported")" 0 "every exported symbol starts with kb_"
  sed -n 's/^KB_API .*\(kb_[a-z0-9_]*\)(.*/\1/p' "$P/include/kb/kb.h" | sort > "$T/api"
  ok "$(wc -l < "$T/api")" "$(grep -c '^KB_API ' "$P/include/kb/kb.h")" "every KB_API line names one function"
  diff "$T/api" "$T/exported" >"$T/diff"; ok $? 0 "the exports are exactly kb.h's KB_API functions"
  cat "$T/diff"
  ok "$(readelf -d "$P/lib/libkb.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" "libkb.so.0" "the SONAME is libkb.so.MAJOR"
  ok "$(readlink "$P/lib/libkb.so")" "libkb.so.0" "libkb.so links to the SONAME"
  # libkb.a holds every stage: no kb_ symbol it uses is left undefined.
  nm "$P/lib/libkb.a" 2>/dev/null | awk '$1 == "U" && $2 ~ /^kb_/ {print $2}' | sort -u > "$T/undef"
  nm --defined-only "$P/lib/libkb.a" 2>/dev/null | awk '{print $3}' | sort -u > "$T/defined"
  ok "$(comm -23 "$T/undef" "$T/defined" | wc -l)" 0 "libkb.a defines every kb_ symbol it uses"
  finish ;;
example) ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac

# ---- the installed tree: one header, the libraries, pkg-config and CMake files
ok "$(cd "$P/include" && find . -type f)" "./kb/kb.h" "kb/kb.h is the only installed header"
for f in bin/kb lib/libkb.a lib/pkgconfig/kb.pc lib/cmake/kb/kbConfig.cmake \
         lib/cmake/kb/kbConfigVersion.cmake lib/cmake/kb/kbTargets.cmake \
         share/kb/prompts/default.prompt; do
  [ -e "$P/$f" ]; ok $? 0 "$f is installed"
done
export PKG_CONFIG_PATH=$P/lib/pkgconfig
ok "$(pkg-config --modversion kb)" "$("$P/bin/kb" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n 1)" \
   "kb.pc's version is the program's"

# ---- build the example three ways, from the installed tree only
EX=$SRC/examples/ask.c
# shellcheck disable=SC2046,SC2086
cc $EXTRA_CFLAGS -o "$T/ask_shared" "$EX" $(pkg-config --cflags --libs kb) -Wl,-rpath,"$P/lib" \
  2>"$T/cc.err"; ok $? 0 "the example builds with pkg-config --cflags --libs kb"; cat "$T/cc.err"
readelf -d "$T/ask_shared" 2>/dev/null | grep -q 'NEEDED.*libkb\.so\.0'; ok $? 0 "the pkg-config build uses libkb.so.0"
# Static libkb, its dependencies shared (Debian's -dev packages ship few static libraries).
# shellcheck disable=SC2046,SC2086
cc $EXTRA_CFLAGS -o "$T/ask_static" "$EX" $(pkg-config --cflags --static kb) \
  $(pkg-config --variable=static_lib kb) $(pkg-config --variable=libs_private kb) \
  $(pkg-config --libs $(pkg-config --print-requires-private kb)) 2>"$T/cc.err"
ok $? 0 "the example builds with libkb.a and pkg-config --static's flags"; cat "$T/cc.err"
readelf -d "$T/ask_static" 2>/dev/null | grep -q 'libkb\.so'; ok $? 1 "the static build does not need libkb.so"
cmake -S "$SRC/examples" -B "$T/cmake" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="$EXTRA_CFLAGS" >"$T/cmake.log" 2>&1 &&
  cmake --build "$T/cmake" >>"$T/cmake.log" 2>&1
rc=$?; ok $rc 0 "the example builds with CMake's find_package(kb CONFIG) and kb::kb"
[ $rc -eq 0 ] || cat "$T/cmake.log"

# ---- run each: without a backend, then against the loopback LLM server
[ -x "$PY" ] || { echo "skipped the runs: $PY is needed for the loopback server"; finish; }
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
unset KB_LLM_BACKEND KB_LLM_URL KB_LLM_MODEL KB_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY KB_DIR
export XDG_CONFIG_HOME=$T/cfg HOME=$T/home XDG_CACHE_HOME=$T/cache HF_HOME=$T/hf
$PY "$SRC/tests/llm_server.py" --port-file "$T/port" --log "$T/req.jsonl" --data "$DATA" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
BASE=http://127.0.0.1:$(cat "$T/port")/s
Q="how are the logs rotated"
ALEN=$(wc -c < "$DATA/answer.txt")
SOURCE_LINE='^\[[0-9]\] .*logs.md › Log rotation › Rotating the logs, lines 5–9$'
for how in shared static cmake; do
  bin=$T/ask_$how; [ "$how" = cmake ] && bin=$T/cmake/ask
  [ -x "$bin" ] || { ok missing built "$how: the example exists"; continue; }
  kb=$T/kb_$how
  "$bin" "$kb" "$Q" "$DATA/docs" >"$T/out" 2>"$T/err"; ok $? 0 "$how: no backend: exits 0"
  grep -q '^No LLM backend is configured' "$T/out"; ok $? 0 "$how: no backend: says so"
  grep -q "$SOURCE_LINE" "$T/out"; ok $? 0 "$how: no backend: the passages with their sources"
  grep -q 'logrotate -f /etc/logrotate.d/kb' "$T/out"; ok $? 0 "$how: no backend: the passage text"
  : > "$T/req.jsonl"
  KB_LLM_BACKEND=openai KB_LLM_URL=$BASE/ok KB_LLM_MODEL=m "$bin" "$kb" "$Q" >"$T/out" 2>"$T/err"
  ok $? 0 "$how: with the loopback backend: exits 0"
  head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "$how: the streamed answer, byte for byte"
  grep -q '^Sources:$' "$T/out"; ok $? 0 "$how: sources follow the answer"
  grep -q "$SOURCE_LINE" "$T/out"; ok $? 0 "$how: the numbered sources"
  grep -q 'Logs are rotated every night' "$T/req.jsonl"; ok $? 0 "$how: the passages went to the backend"
  [ -s "$T/err" ] && cat "$T/err"
done
# In-memory documents: an empty KB and no paths.
"$T/ask_shared" "$T/kb_mem" "when does the keeper trim the wick" >"$T/out" 2>&1
ok $? 0 "in-memory documents: exits 0"
grep -q '^\[1\] Lighthouses' "$T/out"; ok $? 0 "in-memory documents: the one about the wick comes first"
finish
