#!/usr/bin/env bash
# serve_test.sh — kb serve over real sockets: a KB embedded with a random-weight model, a
# loopback LLM (tests/llm_server.py) for answers, kb serve on a free port, and
# tests/serve_client.py (or headless Chromium for the page) checking one CASE:
#   auth limits sse concurrent embeddings dropped filters  (serve_client.py cases)
#   tokens     token files: 0600, stable, refused when readable by others
#   shutdown   SIGTERM during a streamed answer stops the server cleanly
#   page       the page at / asks a question in headless Chromium (DOM + screenshot PNG)
#   strict     repeated Hosts, odd ports, JSON with more after it and NULs are 400 (client)
#   log        kb serve -v: one line per request, control characters escaped (client)
#   keyword_only  a KB without vectors: errors name request fields ("mode"), not CLI flags
#   embeddings_formats embeddings_models embeddings_batches embeddings_matryoshka
#              /v1/embeddings as OpenAI's: encoding_format, model names and aliases, GET
#              /v1/models, 2048 inputs, token arrays, usage, dimensions, input_type (client)
#   openai_clients  the official openai and @langchain/openai npm clients (tests/npm)
#   shutdown_load  SIGTERM during stalled answers with every CPU busy: prompt, clean exit
#   slowloris  100 slow clients trickling headers (serve_client.py case) cannot starve it
# Usage: serve_test.sh PATH_TO_KB MODELS_DIR TESTS_DIR CASE
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$(realpath "$1") MODELS=$2 SRC=$(realpath "$3") CASE=$4
PY=/usr/bin/python3 DATA=$SRC/data/llm
T=$(mktemp -d)
SERVER_PID= LLM_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [ -n "$LLM_PID" ] && kill "$LLM_PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
unset KB_LLM_BACKEND KB_LLM_URL KB_LLM_MODEL KB_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY KB_MODEL
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
export HF_HOME=$T/hf KB_DIR=$T/kb
mkdir -p "$HOME"
[ -x "$PY" ] || skip "$PY is needed for the test client"
MODEL=$MODELS/tiny_f16_mean
[ -f "$MODEL/model.safetensors" ] || skip "model $MODEL is missing (run the encoder_models fixture)"

# A model that may be cut to 8 dimensions and has query/passage prefixes: the fixture's tiny
# model with kb_model.json saying so.
case $CASE in embeddings_matryoshka|openai_clients)
    mkdir -p "$T/models" && cp -r "$MODEL" "$T/models/tiny_matryoshka" || exit 1
    MODEL=$T/models/tiny_matryoshka
    printf '{"matryoshka_min_dim": 8, "query_prefix": "query: ", "passage_prefix": "passage: "}\n' \
        > "$MODEL/kb_model.json" ;;
esac

# The KB: the LLM test documents, embedded with the random-weight model.
$KB ingest -q --model "$MODEL" "$DATA/docs" >/dev/null 2>"$T/ingest.err"
ok $? 0 "the test KB is ingested with a model"
mkdir -p "$T/extra"
for i in 1 2 3 4 5 6; do printf '# Wombats %s\n\nThe wombat %s digs burrows.\n' $i $i > "$T/extra/w$i.md"; done

start_llm() {
    $PY "$SRC/llm_server.py" --port-file "$T/llm_port" --log "$T/llm.jsonl" --data "$DATA" &
    LLM_PID=$!
    for _ in $(seq 100); do [ -s "$T/llm_port" ] && break; sleep 0.05; done
    export KB_LLM_BACKEND=openai KB_LLM_MODEL=m KB_LLM_URL=http://127.0.0.1:$(cat "$T/llm_port")/s/${1:-ok}
}

# start_server [FLAGS...]: kb serve on a free port; sets PORT, SERVE_READ, SERVE_ADMIN.
start_server() {
    : > "$T/serve.out"
    $KB serve --port 0 "$@" >"$T/serve.out" 2>"$T/serve.err" &
    SERVER_PID=$!
    for _ in $(seq 200); do grep -q '^listening on ' "$T/serve.out" && break; sleep 0.05; done
    PORT=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$T/serve.out")
    [ -n "$PORT" ] || { echo "kb serve did not start:"; cat "$T/serve.err"; exit 1; }
    export SERVE_PORT=$PORT SERVE_READ=$($KB serve --print-token read) SERVE_ADMIN=$($KB serve --print-token admin)
}

stop_server() { # stops with SIGTERM; sets STOP_RC to the exit status
    kill -TERM "$SERVER_PID"
    STOP_RC=0
    wait "$SERVER_PID" || STOP_RC=$?
    SERVER_PID=
}

client() { $PY "$SRC/serve_client.py" "$1"; ok $? 0 "serve_client.py $1"; }

export KB ANSWER=$DATA/answer.txt MODEL EXTRA_DOCS=$T/extra
case $CASE in
auth)
    start_llm; start_server; client auth
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
filters)
    start_server; client filters
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
limits)
    export MAX_BODY=131072 MAX_CONNECTIONS=4
    start_server --max-body $MAX_BODY --max-connections $MAX_CONNECTIONS --timeout 2
    client limits
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM after every limit was hit" ;;
sse)
    start_llm; start_server --threads 2; client sse
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
dropped)
    export MAX_CONNECTIONS=4
    start_llm stall; start_server --threads 1 --max-connections $MAX_CONNECTIONS --timeout 30
    client dropped
    # the stalled LLM goes away, so the answer holding the handle ends with an error now
    # rather than after the 30 s stall (SIGTERM during a stream: the shutdown case)
    kill "$LLM_PID"; wait "$LLM_PID" 2>/dev/null; LLM_PID=
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
concurrent)
    start_server --threads 4; client concurrent
    $KB -q check; ok $? 0 "kb check passes after concurrent API and CLI writes"
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
embeddings)
    start_server; client embeddings
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
tokens)
    $KB serve --print-token read > "$T/r1"; ok $? 0 "--print-token read exits 0"
    $KB serve --print-token admin > "$T/a1"
    grep -Eqx '[0-9a-f]{64}' "$T/r1"; ok $? 0 "the read token is 64 hex characters"
    ok "$(stat -c %a "$KB_DIR/tokens")" 700 "the tokens folder is mode 0700"
    ok "$(stat -c %a "$KB_DIR/tokens/read") $(stat -c %a "$KB_DIR/tokens/admin")" "600 600" "token files are mode 0600"
    ok "$(cat "$KB_DIR/tokens/read")" "$(cat "$T/r1")" "--print-token prints the stored token"
    [ "$(cat "$T/r1")" != "$(cat "$T/a1")" ]; ok $? 0 "read and admin tokens differ"
    ok "$($KB serve --print-token read)" "$(cat "$T/r1")" "tokens stay the same from run to run"
    chmod 0644 "$KB_DIR/tokens/admin"
    $KB serve --port 0 >/dev/null 2>"$T/err"; ok $? 78 "a token file readable by others is refused (exit 78)"
    grep -q 'tokens.*0600' "$T/err"; ok $? 0 "the error names the tokens folder and the mode"
    chmod 0600 "$KB_DIR/tokens/admin"
    rm -rf "$KB_DIR/tokens"
    start_server
    [ -f "$KB_DIR/tokens/read" ]; ok $? 0 "kb serve creates missing tokens (older KBs)"
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM"
    $KB --kb "$T/none" serve --port 0 >/dev/null 2>&1; ok $? 66 "a missing KB exits 66"
    $KB serve --listen 999.1.1.1 --port 0 >/dev/null 2>"$T/err"; ok $? 2 "a bad --listen address is a usage error"
    $KB serve --port 0 --cors nope >/dev/null 2>&1; ok $? 2 "--cors needs an origin" ;;
shutdown)
    start_llm slow; start_server
    $PY - <<'PYEOF' &
import http.client, json, os
c = http.client.HTTPConnection("127.0.0.1", int(os.environ["SERVE_PORT"]), timeout=30)
c.request("POST", "/v1/ask", json.dumps({"question": "logs", "stream": True}),
          {"Authorization": "Bearer " + os.environ["SERVE_READ"]})
r = c.getresponse()
try:
    r.read()
except http.client.IncompleteRead:
    pass  # the server cut the stream as it stopped
PYEOF
    CLIENT=$!
    sleep 1
    t0=$(date +%s%N)
    stop_server; ok "$STOP_RC" 0 "SIGTERM during a streamed answer exits 0"
    t1=$(date +%s%N)
    [ $(( (t1 - t0) / 1000000 )) -lt 8000 ]; ok $? 0 "the server stops within 8 s, ending the open stream"
    wait "$CLIENT" ;;
page)
    command -v chromium >/dev/null || skip "chromium is not installed (Debian package chromium)"
    start_llm; start_server
    Q="how are the logs rotated"
    URL="http://127.0.0.1:$PORT/#token=$SERVE_READ&q=$(printf %s "$Q" | sed 's/ /%20/g')"
    PAGE_URL=$URL DOM_OUT=$T/dom.html PNG_OUT=$T/shot.png PROFILE=$T/chrome timeout 120 $PY "$SRC/serve_client.py" page
    rc=$?
    # KB_KEEP_SCREENSHOT=FILE keeps the screenshot for a look by eye.
    if [ -n "${KB_KEEP_SCREENSHOT:-}" ]; then cp "$T/shot.png" "$KB_KEEP_SCREENSHOT"; fi
    ok "$rc" 0 "headless chromium loads the page, which asks the question from its fragment"
    $PY - "$T/dom.html" "$ANSWER" <<'PYEOF'
import html, re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
answer = open(sys.argv[2], encoding="utf-8").read()
m = re.search(r'<div id="answer"[^>]*>(.*?)</div>', dom, re.S)
assert m and html.unescape(m.group(1)) == answer, (m and m.group(1)[:200])
assert 'data-state="done"' in dom, "the page never finished"
src = re.search(r'<ol id="sources">(.*?)</ol>', dom, re.S).group(1)
assert re.search(r'<li value="1"><span class="path">[^<]*logs\.md', src), src[:300]
PYEOF
    ok $? 0 "the DOM shows the streamed answer and its numbered sources"
    $PY - "$T/shot.png" <<'PYEOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert (w, h) == (1000, 800) and depth == 8 and ctype in (2, 6), (w, h, depth, ctype)
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
rows, prev = [], bytearray(stride)
for y in range(h):  # undo the PNG filters (RFC 2083 6.3)
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
colours = {row[x:x + 3] for row in rows[::4] for x in range(0, stride, bpp * 4)}
dark = sum(1 for row in rows for x in range(0, stride, bpp) if sum(row[x:x + 3]) < 200)
assert len(colours) > 20, f"only {len(colours)} colours: a blank page"
assert dark > 2000, f"only {dark} dark pixels: no text drawn"
PYEOF
    ok $? 0 "the screenshot is 1000x800 and shows text, not a blank page" ;;
strict)
    start_server; client strict
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
log)
    start_server -v; export SERVE_ERR=$T/serve.err; client log
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
keyword_only)
    # A KB without vectors: refusals speak of the request's fields, never of CLI flags.
    export KB_DIR=$T/kw
    $KB ingest -q --model none "$DATA/docs" >/dev/null 2>&1; ok $? 0 "a keyword-only KB is ingested"
    start_server
    $PY - <<'PYEOF'
import http.client, json, os
def post(path, doc):
    c = http.client.HTTPConnection("127.0.0.1", int(os.environ["SERVE_PORT"]), timeout=30)
    c.request("POST", path, json.dumps(doc), {"Authorization": "Bearer " + os.environ["SERVE_READ"],
                                              "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read())
for path, doc in (("/v1/search", {"query": "logs", "mode": "vector"}),
                  ("/v1/search", {"query": "logs", "mode": "hybrid"}),
                  ("/v1/prompt", {"question": "logs", "mode": "vector"})):
    status, body = post(path, doc)
    msg = body["error"]["message"]
    assert status == 400 and body["error"]["code"] == "invalid_request", (path, status, body)
    assert 'mode must be "bm25"' in msg and "--" not in msg, (path, msg)
status, body = post("/v1/search", {"query": "logs", "format": "docxx"})
msg = body["error"]["message"]
assert status == 400 and "unknown format 'docxx'" in msg and "markdown" in msg, (status, body)
status, body = post("/v1/search", {"query": "logs", "mode": "bm25"})
assert status == 200 and body["results"], (status, body)
PYEOF
    ok $? 0 "mode on a KB without vectors and an unknown format are 400s naming the fields, not flags"
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
embeddings_formats|embeddings_batches|embeddings_matryoshka)
    start_server; client "$CASE"
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
embeddings_models)
    export MODEL_ALIASES="text-embedding-3-small my-embedder"
    start_llm; start_server --model-alias text-embedding-3-small --model-alias my-embedder
    client embeddings_models
    $KB serve --model-alias "" --port 0 >/dev/null 2>&1; ok $? 2 "an empty --model-alias is a usage error"
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
openai_clients)
    command -v node >/dev/null || skip "node is not installed (scripts/install-deps.sh)"
    [ -d "$SRC/npm/node_modules/openai" ] || { echo "FAIL: $SRC/npm/node_modules lacks the clients (npm ci in tests/npm)"; exit 1; }
    start_server --model-alias text-embedding-ada-002
    env -u LANGCHAIN_TRACING_V2 -u LANGSMITH_TRACING -u OPENAI_BASE_URL timeout 240 node "$SRC/npm/clients_test.mjs"
    ok $? 0 "the official openai and @langchain/openai clients get kb embed's vectors"
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM" ;;
shutdown_load)
    # SIGTERM while answers wait on an LLM that went quiet mid-answer, every CPU busy: kb
    # serve cancels them, exits 0 within 5 s, and in the sanitized build LeakSanitizer finds
    # nothing. The exit once raced the answers' threads (OpenSSL's per-thread state leaked in
    # about 1 run in 10 under load), so this is tried 16 times: 4 rounds of 4 servers, each
    # with one streamed answer (the first server also one whole answer), stopped together.
    start_llm stall
    HOGS= PIDS=
    trap 'kill $PIDS $HOGS 2>/dev/null; cleanup' EXIT
    for _ in $(seq "$(nproc)"); do timeout 60 sh -c 'while :; do :; done' & HOGS="$HOGS $!"; done
    SERVE_READ=$($KB serve --print-token read)
    for round in 1 2 3 4; do
        PIDS= PORTS=
        for i in 1 2 3 4; do
            $KB serve --port 0 --threads 2 >"$T/s$i.out" 2>"$T/s$i.err" &
            PIDS="$PIDS $!"
        done
        for i in 1 2 3 4; do
            for _ in $(seq 200); do grep -q '^listening on ' "$T/s$i.out" && break; sleep 0.05; done
            PORTS="$PORTS $(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$T/s$i.out")"
        done
        SERVE_READ=$SERVE_READ $PY - "$T/ready" $PORTS <<'PYEOF' &
import http.client, json, os, sys, threading
token, ports = os.environ["SERVE_READ"], [int(p) for p in sys.argv[2:]]
started = threading.Semaphore(0)
def ask(port, stream):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/ask", json.dumps({"question": "logs", "stream": stream}),
              {"Authorization": "Bearer " + token})
    try:
        r = c.getresponse()
        if stream:
            r.readline()  # the first token: the LLM has started, then goes quiet
            started.release()
        r.read()
    except (http.client.HTTPException, OSError):
        if stream:
            started.release()  # cut before its first token: the check below fails anyway
asks = [threading.Thread(target=ask, args=(p, True)) for p in ports]
asks.append(threading.Thread(target=ask, args=(ports[0], False)))
for t in asks:
    t.start()
for _ in ports:
    started.acquire()
open(sys.argv[1], "w").close()
for t in asks:
    t.join()
PYEOF
        CLIENT=$!
        for _ in $(seq 400); do [ -e "$T/ready" ] && break; sleep 0.05; done
        ok "$([ -e "$T/ready" ] && echo yes)" yes "round $round: every stream has started"
        rm -f "$T/ready"
        sleep 0.5
        t0=$(date +%s%N)
        kill -TERM $PIDS
        i=0
        for pid in $PIDS; do
            i=$((i + 1))
            rc=0; wait "$pid" || rc=$?
            ms=$(( ($(date +%s%N) - t0) / 1000000 ))
            ok "$rc" 0 "round $round server $i: SIGTERM during a stalled answer under load exits 0"
            [ "$ms" -lt 5000 ]; ok $? 0 "round $round server $i: stopped within 5 s (took $ms ms)"
            reports=$(grep -c Sanitizer "$T/s$i.err")
            ok "$reports" 0 "round $round server $i: no sanitizer report"
            [ "$reports" = 0 ] || sed 's/^/    /' "$T/s$i.err"
        done
        PIDS=
        wait "$CLIENT"
    done
    kill $HOGS 2>/dev/null ;;
slowloris)
    export HEADER_TIMEOUT=2
    start_server --header-timeout $HEADER_TIMEOUT
    client slowloris
    stop_server; ok "$STOP_RC" 0 "kb serve exits 0 on SIGTERM after the slow clients" ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac
finish
