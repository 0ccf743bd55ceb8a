#!/usr/bin/env bash
# ask_test.sh — kb ask / kb prompt end to end against tests/llm_server.py on 127.0.0.1: the
# request each backend gets, the streamed answer byte for byte, retries, timeouts, the size
# cap, the no-backend fallback, prompt injection, and a canary API key that must never show.
# With CASE, only that case (the functions case_* below), each its own ctest test: PDF pages in
# citations, -k 1, user and built-in templates, the token budget, the connect timeout, TLS,
# hosted providers' URL shapes.
# Usage: ask_test.sh PATH_TO_KB TESTS_DIR [CASE]   (KB_SHARED_DATA: ../shared/data)
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$1; SRC=$(cd "$2" && pwd); CASE=${3:-}; PY=/usr/bin/python3; DATA=$SRC/data/llm
case $KB in /*) ;; *) KB=$PWD/$KB ;; esac
SHARED=${KB_SHARED_DATA:-$SRC/../../shared/data}
[ -x "$PY" ] || { echo "skipped: $PY is needed for the loopback server"; exit 77; }
T=$(mktemp -d)
SERVER_PID=; EXTRA_PIDS=
cleanup() {
  for pid in $SERVER_PID $EXTRA_PIDS; do kill "$pid" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
unset KB_LLM_BACKEND KB_LLM_URL KB_LLM_MODEL KB_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY
export XDG_CONFIG_HOME=$T/cfg HOME=$T/home KB_DIR=$T/kb KB_LLM_MAX_RETRIES=3
yes_() { if "$@"; then echo 0; else echo 1; fi; }

$PY "$SRC/llm_server.py" --port-file "$T/port" --log "$T/req.jsonl" --data "$DATA" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port"); BASE=http://127.0.0.1:$PORT/s
$KB ingest "$DATA/docs" >/dev/null; ok $? 0 "the test KB is ingested"
CANARY=sk-canary-4f1d9a7e2b6c
Q="how are the logs rotated"
ALEN=$(wc -c < "$DATA/answer.txt")
last_req() { tail -n 1 "$T/req.jsonl"; }
no_canary() { ! grep -q "$CANARY" "$@"; }
ASK=(--backend openai --model m --url "$BASE/ok")

# start_extra PORTFILE ARGS...: another llm_server.py (killed on exit); its port in EXTRA_PORT.
start_extra() {
    local pf=$1; shift
    $PY "$SRC/llm_server.py" --port-file "$pf" --log "$T/req.jsonl" --data "$DATA" "$@" \
        </dev/null >/dev/null &
    EXTRA_PIDS="$EXTRA_PIDS $!"
    for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.05; done
    EXTRA_PORT=$(cat "$pf" 2>/dev/null)
}
# passages_sent: how many passages the last request's user message holds (opening, closing).
passages_sent() {
    last_req | $PY -c '
import json, re, sys
user = json.loads(sys.stdin.read())["body"]["messages"][-1]["content"]
print(len(re.findall(r"<passage id=", user)), len(re.findall(r"</passage>", user)))'
}

# ---- citations carry the PDF page: sources (plain, --json), the prompt's delimiter, and the
# page checked against pdftotext's own text of that page
case_pdf_pages() {
    local pdf K=$T/pdfkb
    pdf=$(realpath -q "$SHARED/documents/chroma/state_of_the_union_2024.pdf")
    local q="insulin prices for seniors on Medicare"
    command -v pdftotext >/dev/null || { echo "skipped: pdftotext (poppler-utils) is needed to read PDFs"; exit 77; }
    [ -f "$pdf" ] || { echo "skipped: $SHARED/documents/chroma/state_of_the_union_2024.pdf is missing (the shared documents, ../shared/data/README.md)"; exit 77; }
    $KB --kb "$K" ingest "$pdf" >/dev/null 2>&1; ok $? 0 "the PDF is ingested"
    : > "$T/req.jsonl"
    $KB --kb "$K" ask -k 4 "${ASK[@]}" "$q" >"$T/out" 2>"$T/err"; ok $? 0 "PDF: kb ask exits 0"
    cp "$T/req.jsonl" "$T/req_plain.jsonl"
    $KB --kb "$K" ask --json --no-stream -k 4 "${ASK[@]}" "$q" >"$T/json" 2>"$T/err"; ok $? 0 "PDF: kb ask --json exits 0"
    $KB --kb "$K" ask --json --no-stream -k 4 "$q" >"$T/passages" 2>/dev/null; ok $? 0 "PDF: without a backend the passages come as JSON"
    $KB --kb "$K" prompt --json -k 4 "$q" >"$T/prompt" 2>"$T/err"; ok $? 0 "PDF: kb prompt --json exits 0"
    $PY - "$pdf" "$T/json" "$T/out" "$T/req_plain.jsonl" "$T/passages" "$T/prompt" <<'PYEOF'
import json, re, subprocess, sys
pdf, jfile, outfile, reqfile, pfile, promptfile = sys.argv[1:7]
src = json.load(open(jfile))["sources"]
plain = [l.rstrip("\n") for l in open(outfile, encoding="utf-8") if l.startswith("[")]
req_user = json.loads(open(reqfile).read().splitlines()[-1])["body"]["messages"][-1]["content"]
prompt_user = json.load(open(promptfile))[-1]["content"]
assert src and len(plain) == len(src), (src, plain)
for s in src:
    m = re.fullmatch(r"pages? (\d+)(?:-(\d+))?", s.get("location", ""))
    assert m and s["format"] == "pdf" and s["path"] == pdf and s["page"] == int(m.group(1)), s
    where = pdf + (" \u203a " + s["heading_path"] if "heading_path" in s else "")
    want = "[%d] %s, %s" % (s["number"], where, s["location"])
    assert want in plain, (want, plain)           # the page, not "lines a-b"
    delim = r'<passage id="%d" [^>]*lines="%d-%d" location="%s">' % (
        s["number"], s["line_start"], s["line_end"], re.escape(s["location"]))
    assert re.search(delim, req_user) and re.search(delim, prompt_user), delim
# Independently: each passage opens on its first page and ends on its last, by pdftotext.
squash = lambda t: re.sub(r"\s+", "", t)
def page_text(first, last):
    return squash(subprocess.run(["pdftotext", "-enc", "UTF-8", "-f", str(first), "-l", str(last),
                                  pdf, "-"], capture_output=True, text=True, check=True).stdout)
for s in json.load(open(pfile))["sources"]:
    m = re.fullmatch(r"pages? (\d+)(?:-(\d+))?", s["location"])
    first, last = int(m.group(1)), int(m.group(2) or m.group(1))
    text = squash(s["text"])
    assert text[:40] in page_text(first, first), ("not on page %d" % first, text[:40])
    assert text[-40:] in page_text(last, last), ("not on page %d" % last, text[-40:])
PYEOF
    ok $? 0 "PDF: every source names its page(s) in kb ask, --json, the request and kb prompt, and the pages hold the text"
    $KB --kb "$K" search -k 1 "$q" >"$T/out"; ok $? 0 "PDF: kb search exits 0"
    grep -Eq "^1\. .*state_of_the_union_2024\.pdf:[0-9]+-[0-9]+  \[pages? [0-9]+(-[0-9]+)?\]  \(" "$T/out"
    ok $? 0 "PDF: kb search shows the page, and no title that only repeats the file name"
}

# ---- one formatter for where a passage comes from: titles that say more than the file name
# are shown by kb search; kb ask cites lines for text formats
case_places() {
    mkdir -p "$T/h" && cd "$T" || exit 1
    printf '<html><head><title>Operator Manual</title></head><body><h1>Install</h1>\n<p>Run the installer to rotate widgets.</p></body></html>\n' > h/guide.html
    printf 'plain words about widgets\n' > h/plain.txt
    cp "$DATA/docs/logs.md" h/
    $KB --kb "$T/hkb" ingest h >/dev/null 2>&1; ok $? 0 "the HTML, text and Markdown files are ingested"
    $KB --kb "$T/hkb" search widgets >"$T/out"; ok $? 0 "search exits 0"
    grep -Eq '^[0-9]\. h/guide\.html:[0-9]+-[0-9]+  Operator Manual › Install  \(' "$T/out"; ok $? 0 "search shows a title that says more than the file name, before the section"
    grep -Eq '^[0-9]\. h/plain\.txt:1-1  \(' "$T/out"; ok $? 0 "search shows no title that is the file name"
    $KB --kb "$T/hkb" search rotated logrotate >"$T/out"
    grep -Eq '^1\. h/logs\.md:[0-9]+-[0-9]+  Log rotation › Rotating the logs  \(' "$T/out"; ok $? 0 "search shows no title that the section already starts with"
    $KB --kb "$T/hkb" ask "${ASK[@]}" widgets installer >"$T/out" 2>"$T/err"; ok $? 0 "ask exits 0"
    grep -Eq '^\[[0-9]\] h/guide\.html › Install, lines? [0-9]+' "$T/out"; ok $? 0 "ask cites an HTML passage without a location by its lines"
}

# ---- -k 1: exactly one passage goes into the prompt
case_k1() {
    : > "$T/req.jsonl"
    $KB ask "${ASK[@]}" "$Q" >/dev/null 2>&1; ok $? 0 "ask with the default k exits 0"
    local all; all=$(passages_sent)
    ok "$(( ${all% *} > 1 ))" 1 "with the default k more than one passage is sent (got ${all% *})"
    $KB ask -k 1 "${ASK[@]}" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "ask -k 1 exits 0"
    ok "$(passages_sent)" "1 1" "-k 1 sends exactly one passage"
    last_req | grep -q '<passage id=\\"1\\"'; ok $? 0 "-k 1: the one passage is number 1"
    ok "$(grep -c '^\[[0-9]*\] ' "$T/out")" 1 "-k 1 lists one source"
}

# ---- a user template from $XDG_CONFIG_HOME/kb/prompts, end to end
case_user_template() {
    mkdir -p "$XDG_CONFIG_HOME/kb/prompts"
    printf '# mine\n[system]\nYou are TERSE-7. Cite as [n].\n[user]\nQ={{question}}\n{{context}}\n' \
        > "$XDG_CONFIG_HOME/kb/prompts/terse.prompt"
    : > "$T/req.jsonl"
    $KB -v ask --template terse "${ASK[@]}" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "ask --template terse exits 0"
    head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "the user template's answer is printed"
    last_req | $PY -c '
import json, sys
msgs = json.loads(sys.stdin.read())["body"]["messages"]
assert [m["role"] for m in msgs] == ["system", "user"], msgs
assert msgs[0]["content"] == "You are TERSE-7. Cite as [n].", msgs[0]
assert msgs[1]["content"].startswith("Q=how are the logs rotated\n<passage id=\"1\""), msgs[1]
'; ok $? 0 "the request carries the user template's system and user parts, filled in"
    printf '[system]\nx\n[user]\n{{question}} {{contxt}}\n' > "$XDG_CONFIG_HOME/kb/prompts/broken.prompt"
    $KB ask --template broken "${ASK[@]}" "$Q" >/dev/null 2>"$T/err"; ok $? 65 "a malformed user template exits 65"
    grep -q "broken.prompt:4: unknown placeholder" "$T/err"; ok $? 0 "the malformed template is named with its line"
}

# ---- the built-in summarize template is rendered and sent
case_summarize() {
    : > "$T/req.jsonl"
    $KB ask --template summarize "${ASK[@]}" "the log rotation guide" >"$T/out" 2>"$T/err"; ok $? 0 "ask --template summarize exits 0"
    head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "the summary is printed"
    last_req | $PY -c '
import json, sys
msgs = json.loads(sys.stdin.read())["body"]["messages"]
assert msgs[0]["role"] == "system" and msgs[0]["content"].startswith("You write faithful summaries"), msgs[0]
user = msgs[1]["content"]
assert user.rstrip().endswith("Summarise: the log rotation guide") and "<passage id=\"1\"" in user, user
'; ok $? 0 "the request carries the summarize template with the passages"
}

# ---- -v with a small context window names the passages left out of the budget
case_budget() {
    : > "$T/req.jsonl"
    $KB ask "${ASK[@]}" "$Q" >/dev/null 2>&1
    local all; all=$(passages_sent)
    $KB -v ask --context-window 800 --max-tokens 256 "${ASK[@]}" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "a small context window still answers"
    grep -Eq '^kb: left out .*\.md:[0-9]+-[0-9]+ \(over the token budget\)$' "$T/err"; ok $? 0 "-v reports a passage left out (over the token budget)"
    local few; few=$(passages_sent)
    ok "$(( ${few% *} >= 1 && ${few% *} < ${all% *} ))" 1 "fewer passages are sent (${few% *} of ${all% *})"
    ok "$(grep -c '^\[[0-9]*\] ' "$T/out")" "${few% *}" "the sources list what was sent"
    $KB ask --context-window 800 --max-tokens 256 "${ASK[@]}" "$Q" >/dev/null 2>"$T/err"
    grep -q 'left out' "$T/err"; ok $? 1 "without -v nothing is said about it"
}

# ---- connect timeout: a listener that never accepts; kb gives up after connect_timeout
case_connect_timeout() {
    local port start
    start_extra "$T/port_na" --no-accept; port=$EXTRA_PORT
    [ -n "$port" ] || { echo "FAIL: the never-accepting listener did not start"; exit 1; }
    start=$(date +%s%N)
    KB_LLM_CONNECT_TIMEOUT=0.5 $KB ask --backend openai --model m --url "http://127.0.0.1:$port/s/ok" "$Q" >"$T/out" 2>"$T/err"
    ok $? 69 "a connection that is never accepted exits 69"
    local ms=$(( ($(date +%s%N) - start) / 1000000 ))
    ok "$(( ms >= 400 && ms < 4000 ))" 1 "it gives up after connect_timeout (0.5 s; took $ms ms)"
    ok "$(wc -l < "$T/err")" 1 "the connect timeout is one line"
    grep -q "127.0.0.1:$port.*no connection within 0.5 s (connect_timeout)" "$T/err"; ok $? 0 "the line names the server and connect_timeout"
    grep -q '^\[1\] ' "$T/out"; ok $? 0 "the best passages are printed instead"
}

# ---- TLS: a self-signed certificate made now is refused, though the server works with it
case_tls() {
    command -v openssl >/dev/null || { echo "skipped: the openssl program is needed to make a certificate"; exit 77; }
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
    ok $? 0 "openssl makes a self-signed certificate"
    local port; start_extra "$T/port_tls" --tls "$T/cert.pem" "$T/key.pem"; port=$EXTRA_PORT
    [ -n "$port" ] || { echo "FAIL: the HTTPS server did not start"; exit 1; }
    $PY - "$port" "$T/cert.pem" <<'PYEOF'
import ssl, sys, urllib.request
port, cert = sys.argv[1:3]
req = urllib.request.Request("https://127.0.0.1:%s/s/ok/v1/chat/completions" % port,
                             data=b'{"model": "m"}', headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=cert), timeout=10) as r:
    assert r.status == 200 and r.read().startswith(b"data:")
PYEOF
    ok $? 0 "a client that trusts the certificate gets answers over HTTPS"
    : > "$T/req.jsonl"
    OPENAI_API_KEY=$CANARY $KB ask --backend openai --model m --url "https://127.0.0.1:$port/s/ok" "$Q" >"$T/out" 2>"$T/err"
    ok $? 69 "kb refuses the self-signed certificate with exit 69"
    ok "$(wc -l < "$T/err")" 1 "the refusal is one line"
    grep -Eq "TLS certificate was refused \(SSL certificate problem: self.signed certificate\)" "$T/err"; ok $? 0 "the line names the certificate problem"
    ok "$(wc -c < "$T/req.jsonl")" 0 "no request (and no key) reached the server"
}

# ---- every HTTP status from 300 to 599, unassigned ones too, ends kb ask: 408, 429 and 5xx
# after max_retries more requests (Retry-After: 0 keeps it quick), all others after one; the
# exit code is the documented one (README.md "Asking questions") and stderr one line with the
# server's message. A kb that loops is stopped by `timeout`, and after 3 such the case gives up.
case_every_status() {
    local s b n rc want_rc want_n start=$SECONDS stuck=0 backends=(openai ollama anthropic)
    for s in $(seq 300 599); do
        case $s in
            408|429|5??) want_rc=69 want_n=3 ;;
            404) want_rc=66 want_n=1 ;;
            *) want_rc=78 want_n=1 ;;
        esac
        b=${backends[s % 3]}
        : > "$T/req.jsonl"
        KB_LLM_MAX_RETRIES=2 ANTHROPIC_API_KEY=x timeout -k 1 5 $KB ask --no-stream --backend "$b" \
            --model m --url "$BASE/status-$s" "$Q" >"$T/out" 2>"$T/err"
        rc=$?
        n=$(grep -c "/s/status-$s/" "$T/req.jsonl")
        ok "$rc" "$want_rc" "HTTP $s ($b): kb ask exits $want_rc"
        ok "$n" "$want_n" "HTTP $s ($b): the server sees $want_n request(s)"
        ok "$(wc -l < "$T/err")" 1 "HTTP $s ($b): one line on stderr"
        # a 304 has no body to quote (libcurl reads none)
        [ "$s" = 304 ] || { grep -q "HTTP $s.*(fake status $s)" "$T/err"; ok $? 0 "HTTP $s ($b): the line names the status and quotes the server"; }
        case $s in
            3??) grep -q "set url to the address the server gave: http://127.0.0.1:$PORT/s/ok/" "$T/err"
                 ok $? 0 "HTTP $s ($b): the line names the Location to set url to" ;;
            408|429|5??) grep -q "after 3 attempts" "$T/err"; ok $? 0 "HTTP $s ($b): the line counts the attempts" ;;
        esac
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            stuck=$((stuck + 1))
            [ "$stuck" -lt 3 ] || { ok "stopped at $s" "all ended" "kb ask ended for every status (3 runs were killed by timeout)"; break; }
        fi
    done
    echo "every_status: $(( s - 299 )) statuses in $(( SECONDS - start )) s"
}

# ---- backend local: the in-process decoder on the real stories260K model (no server at all)
case_local() {
    local M=$SHARED/decoder/stories260K/stories260K.gguf
    [ -f "$M" ] || skip "$M is absent"
    kill "$SERVER_PID" 2>/dev/null; SERVER_PID=  # nothing listens: the answer needs no server
    local L=(--backend local --model "$M" -k 1 --max-tokens 24)
    $KB ask "${L[@]}" "$Q" >"$T/out" 2>"$T/err"; ok $? 78 "a model without a chat template exits 78"
    grep -q "has no chat template; set chat_format" "$T/err"; ok $? 0 "and says to set chat_format"
    ok "$(wc -l <"$T/err")" 1 "in one line"
    $KB ask "${L[@]}" --chat-format chatml "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "--chat-format chatml answers (exit 0)"
    grep -q '^\[1\] .*logs.md' "$T/out"; ok $? 0 "the sources follow the answer"
    $KB --json ask --no-stream "${L[@]}" --chat-format chatml "$Q" >"$T/json"; ok $? 0 "--json --no-stream exits 0"
    $PY - "$T/json" "$T/out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
streamed = open(sys.argv[2]).read()
assert d["answer"] and d["answer"] in streamed, (d["answer"], streamed)  # greedy: the same text
u = d["usage"]
assert 0 < u["completion_tokens"] <= 24 and u["prompt_tokens"] > 20, u
assert d["backend"] == "local" and len(d["sources"]) == 1, d
PY
    ok $? 0 "the JSON answer equals the streamed one, with counted usage and one source"
    KB_LLM_CHAT_FORMAT=llama3 $KB ask "${L[@]}" "$Q" >/dev/null 2>&1; ok $? 0 "chat_format comes from the environment too"
    $KB ask "${L[@]}" --chat-format gemma "$Q" 2>"$T/err" >/dev/null; ok $? 78 "an unknown chat format exits 78"
    $KB ask "${L[@]}" --chat-format chatml -k 8 --context-window 64 "$Q" 2>"$T/err" >/dev/null; ok $? 2 "a prompt over the context exits 2"
    grep -q "the prompt is [0-9]* tokens, more than the model's context of 64" "$T/err"; ok $? 0 "and gives the numbers"
    $KB ask --backend local --model "$T/none.gguf" --chat-format chatml "$Q" 2>"$T/err" >/dev/null; ok $? 66 "a missing model file exits 66"
}

# ---- hosted OpenAI-compatible providers: each documented base URL shape (README.md), on the
# loopback server, is sent to its chat/completions with no /v1 added after a version path
case_providers() {
    local shape want key=sk-provider-7c2e
    # base URL path after the host | the path the request must reach
    while read -r shape want; do
        : > "$T/req.jsonl"
        KB_API_KEY=$key $KB ask --backend openai --model m --url "$BASE/ok$shape" "$Q" >"$T/out" 2>"$T/err"
        ok $? 0 "--url .../s/ok$shape answers"
        head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "$shape: the answer is printed"
        last_req | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["path"] == sys.argv[1], (r["path"], sys.argv[1])
assert r["headers"]["authorization"] == "Bearer " + sys.argv[2], r["headers"]
' "/s/ok$want" "$key"; ok $? 0 "$shape is sent to $want with the key as a bearer token"
    done <<'URLS'
/v1beta/openai/ /v1beta/openai/chat/completions
/compatibility/v1 /compatibility/v1/chat/completions
/openai/v1 /openai/v1/chat/completions
/api/v1 /api/v1/chat/completions
/v1 /v1/chat/completions
/v1/ /v1/chat/completions
/chat/completions /chat/completions
/ /v1/chat/completions
URLS
}

# ---- Ctrl-C: a streamed answer stops at once, what came is printed with its sources (130)
case_interrupt() {
    $KB ask --backend openai --model m --url "$BASE/stall" "$Q" >"$T/out" 2>"$T/err" &
    local pid=$! waited=0
    for _ in $(seq 100); do [ -s "$T/out" ] && break; sleep 0.05; done  # the first tokens came
    kill -INT "$pid"
    local t0=$SECONDS
    wait "$pid"; ok $? 130 "Ctrl-C during a stalled stream exits 130"
    waited=$((SECONDS - t0))
    [ "$waited" -le 3 ]; ok $? 0 "and at once (${waited} s), not at the stall timeout"
    [ -s "$T/out" ] && grep -q '^Sources:' "$T/out"; ok $? 0 "what came is printed, then the sources"
    grep -q 'interrupted: the answer stops here' "$T/err"; ok $? 0 "one line says it was interrupted"
}

if [ -n "$CASE" ]; then
    declare -F "case_$CASE" >/dev/null || { echo "unknown case '$CASE'"; exit 2; }
    "case_$CASE"
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
fi

# ---- no backend configured: the best passages and one line on how to configure
$KB ask "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "no backend configured exits 0"
ok "$(wc -l < "$T/err")" 1 "no backend: exactly one line on stderr"
grep -q "config" "$T/err"; ok $? 0 "the line says how to configure a model"
grep -q '^\[[0-9]\] .*logs.md › Log rotation › Rotating the logs, lines 5–9' "$T/out"; ok $? 0 "no backend: passages with their sources"
grep -q 'logrotate -f /etc/logrotate.d/kb' "$T/out"; ok $? 0 "no backend: the passage text is shown"

# ---- each backend: request body, auth header, byte-exact streamed answer, canary never shown
check_backend() { # backend model keyvar
    local b=$1 m=$2 kv=$3
    : > "$T/req.jsonl"
    env "$kv=$CANARY" $KB -v -v ask --backend "$b" --model "$m" --url "$BASE/ok" "$Q" >"$T/out" 2>"$T/err"
    ok $? 0 "$b: ask exits 0"
    head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "$b: the streamed answer is printed byte for byte"
    grep -q '^Sources:$' "$T/out"; ok $? 0 "$b: sources follow the answer"
    grep -q '^\[[0-9]\] .*logs.md › Log rotation › Rotating the logs, lines 5–9$' "$T/out"; ok $? 0 "$b: sources as [n] path › heading, lines a–b"
    ok "$(yes_ no_canary "$T/out" "$T/err" )" 0 "$b: the API key appears in no output, even with -v -v"
    grep -q '\*\*\*' "$T/err"; ok $? 0 "$b: -v -v shows the auth header as ***"
    grep -q 'first token after' "$T/err"; ok $? 0 "$b: -v reports time to first token and tokens/s"
    last_req | $PY -c '
import json, sys
b, m, key = sys.argv[1:4]
r = json.loads(sys.stdin.read()); body = r["body"]; h = r["headers"]
assert body["model"] == m and body["stream"] is True, body
msgs = body["messages"]
if b == "anthropic":
    assert h["x-api-key"] == key and h["anthropic-version"] == "2023-06-01", h
    assert "only the passages" in body["system"] and body["max_tokens"] == 1024
    assert [x["role"] for x in msgs] == ["user"], msgs
    assert r["path"].endswith("/v1/messages")
else:
    assert h["authorization"] == "Bearer " + key, h
    assert [x["role"] for x in msgs] == ["system", "user"], msgs
    assert r["path"].endswith("/api/chat" if b == "ollama" else "/v1/chat/completions")
user = msgs[-1]["content"]
assert "Question: how are the logs rotated" in user
assert "<passage id=\"1\"" in user and "Logs are rotated every night at 02:00 by logrotate" in user
' "$b" "$m" "$CANARY"; ok $? 0 "$b: the request carries model, stream flag, auth header and the retrieved passages"
}
check_backend openai gpt-4o-mini OPENAI_API_KEY
check_backend ollama llama3.2 KB_API_KEY
check_backend anthropic claude-3-5-haiku-20241022 ANTHROPIC_API_KEY

# ---- --json: JSON lines while streaming; --json --no-stream: one document
$KB ask --json --no-stream --backend openai --model m --url "$BASE/ok" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "--json --no-stream exits 0"
$PY -c '
import json, sys
d = json.load(open(sys.argv[1])); a = open(sys.argv[2], encoding="utf-8").read()
assert d["answer"] == a and d["backend"] == "openai" and d["model"] == "m"
assert d["sources"][0]["number"] == 1 and d["sources"][0]["path"].startswith("/")
assert d["usage"]["prompt_tokens"] == 712 and d["usage"]["completion_tokens"] == 62
assert d["timings"]["total_ms"] >= d["timings"]["first_token_ms"] >= 0
' "$T/out" "$DATA/answer.txt"; ok $? 0 "--json --no-stream gives answer, sources, usage and timings in one document"
cat > "$T/lines.py" <<'PYEOF'
import json, sys
# JSON lines of kb ask --json: tokens, then sources, then a summary; argv: file, answer file, expected error or ""
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
answer = open(sys.argv[2], encoding="utf-8").read(); error = sys.argv[3]
types = [l["type"] for l in lines]
n = types.count("token")
assert types == ["token"] * n + ["sources", "summary"], types
text = "".join(l["text"] for l in lines[:n])
s = lines[-1]; src = lines[-2]["sources"]
assert src and src[0]["number"] == 1 and src[0]["path"].startswith("/"), src
if error:
    assert error in s["error"] and "answer" not in s and answer.startswith(text) and "text" in src[0], (s, text)
else:
    assert n > 1 and text == answer and s["answer"] == answer and "text" not in src[0], s
    assert s["usage"]["completion_tokens"] > 0 and s["timings"]["total_ms"] >= s["timings"]["first_token_ms"] >= 0
PYEOF
for b in openai ollama anthropic; do
  ANTHROPIC_API_KEY=x $KB ask --json --backend $b --model m --url "$BASE/ok" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "$b: --json exits 0"
  $PY "$T/lines.py" "$T/out" "$DATA/answer.txt" ""; ok $? 0 "$b: --json streams token lines that add up to the answer, then sources, then the summary"
done
KB_LLM_STALL_TIMEOUT=1 $KB ask --json --backend openai --model m --url "$BASE/stall" "$Q" >"$T/out" 2>"$T/err"; ok $? 69 "--json: a stalled stream exits 69"
$PY "$T/lines.py" "$T/out" "$DATA/answer.txt" "stalled"; ok $? 0 "--json: a stream cut short still ends with sources and a summary naming the error"
$KB ask --json --backend ollama --model m --url http://127.0.0.1:9/ "$Q" >"$T/out" 2>/dev/null; ok $? 69 "--json: an unreachable backend exits 69"
$PY "$T/lines.py" "$T/out" "$DATA/answer.txt" "unreachable"; ok $? 0 "--json: unreachable gives the passages as sources with text and a summary with the error"

# ---- --mode goes through to the search: this KB has no vectors
$KB ask --mode bm25 --backend openai --model m --url "$BASE/ok" "$Q" >/dev/null 2>&1; ok $? 0 "--mode bm25 answers"
for m in vector hybrid; do
  $KB ask --mode $m --backend openai --model m --url "$BASE/ok" "$Q" >"$T/out" 2>"$T/err"; ok $? 2 "--mode $m on a KB without vectors is a usage error"
  grep -q 'this knowledge base has no vectors, so mode must be "bm25"' "$T/err"; ok $? 0 "--mode $m: the search says the KB has no vectors"
done
$KB ask --mode fuzzy "$Q" >/dev/null 2>"$T/err"; ok $? 2 "an unknown --mode is a usage error"
$KB ask --no-stream --backend ollama --model m --url "$BASE/ok" "$Q" >"$T/out" 2>/dev/null; ok $? 0 "--no-stream exits 0"
head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "--no-stream prints the same answer"

# ---- retries on 429 (Retry-After) and 500
for s in 429 500; do
  : > "$T/req.jsonl"
  $KB -v ask --backend openai --model m --url "$BASE/r$s-a" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "HTTP $s then success exits 0"
  ok "$(wc -l < "$T/req.jsonl")" 2 "HTTP $s is retried once"
  grep -q "HTTP $s from .*retrying in" "$T/err"; ok $? 0 "the retry is reported with -v"
  head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "after a $s retry the answer is whole"
done
grep -q "retrying in 1.0 s" <($KB -v ask --backend ollama --model m --url "$BASE/r429-b" "$Q" 2>&1 >/dev/null); ok $? 0 "Retry-After: 1 is honoured"
start=$(date +%s%N)
$KB -v ask --backend openai --model m --url "$BASE/r429date-c" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "Retry-After as an HTTP date: the retry succeeds"
ok "$(( ($(date +%s%N) - start) / 1000000 >= 900 ))" 1 "Retry-After as an HTTP date 2 s ahead is waited for"
grep -Eq "HTTP 429 from .*retrying in [12]\.0 s \(Retry-After\)" "$T/err"; ok $? 0 "an IMF-fixdate Retry-After sets the wait (not the 0.5 s backoff)"
head -c "$ALEN" "$T/out" | cmp -s - "$DATA/answer.txt"; ok $? 0 "after a dated Retry-After the answer is whole"
grep -q "retrying in 0.0 s (Retry-After)" <($KB -v ask --backend openai --model m --url "$BASE/r429past-d" "$Q" 2>&1 >/dev/null); ok $? 0 "a Retry-After date already past retries at once"

# ---- wrong key, unknown model: one line, exit codes, the key never echoed
OPENAI_API_KEY=sk-wrong-$CANARY $KB -v -v ask --backend openai --model m --url "$BASE/ok" "$Q" >"$T/out" 2>"$T/err"; ok $? 78 "a refused key exits 78"
grep -q 'HTTP 401: the API key was refused (Incorrect API key provided: \*\*\*' "$T/err"; ok $? 0 "401 says the key was refused and quotes the server with the key masked"
ok "$(yes_ no_canary "$T/out" "$T/err")" 0 "a 401 reply that echoes the key does not leak it"
ANTHROPIC_API_KEY=$CANARY $KB ask --backend anthropic --model nosuch --url "$BASE/ok" "$Q" >"$T/out" 2>"$T/err"; ok $? 66 "an unknown model exits 66"
grep -q "unknown model 'nosuch'.*(model: nosuch)" "$T/err"; ok $? 0 "404 names the model and the server's message"
ok "$(wc -l < "$T/err")" 1 "an unknown model is one line"
$KB ask --backend ollama --model nosuch --url "$BASE/ok" "$Q" 2>&1 >/dev/null | grep -q 'try pulling it first'; ok $? 0 "Ollama's own 404 text is quoted"

# ---- unreachable, stall, first-token timeout, size cap
$KB ask --backend ollama --model m --url http://127.0.0.1:9/ "$Q" >"$T/out" 2>"$T/err"; ok $? 69 "an unreachable backend exits 69"
grep -q 'unreachable' "$T/err"; ok $? 0 "unreachable is said in one line"
ok "$(wc -l < "$T/err")" 1 "unreachable: exactly one line on stderr"
grep -q '^\[1\] ' "$T/out"; ok $? 0 "unreachable: the best passages are printed instead"
start=$(date +%s)
KB_LLM_STALL_TIMEOUT=1 $KB ask --backend openai --model m --url "$BASE/stall" "$Q" >"$T/out" 2>"$T/err"; ok $? 69 "a stalled stream exits 69"
ok "$(( $(date +%s) - start < 8 ))" 1 "the stall is noticed within the timeout"
grep -q 'stalled: no data for 1.0 s' "$T/err"; ok $? 0 "the stall is named"
head -c 20 "$T/out" | grep -q '^Logs are rotated'; ok $? 0 "the part that arrived before the stall was printed"
ANTHROPIC_API_KEY=x KB_LLM_FIRST_TOKEN_TIMEOUT=1 $KB ask --backend anthropic --model m --url "$BASE/slow" "$Q" >/dev/null 2>"$T/err" </dev/null
ok $? 69 "a first token later than first_token_timeout exits 69"
grep -q 'no answer within 1.0 s (first_token_timeout)' "$T/err"; ok $? 0 "the first-token timeout is named"
ANTHROPIC_API_KEY=x $KB -v ask --backend anthropic --model m --url "$BASE/slow" "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "a slow first token within the limit is fine"
grep -Eq 'first token after [2-9]\.' "$T/err"; ok $? 0 "-v reports the slow first token"
for b in openai ollama anthropic; do
  ANTHROPIC_API_KEY=x $KB ask --backend $b --model m --url "$BASE/endless" "$Q" >"$T/out" 2>"$T/err"; ok $? 69 "$b: an endless reply exits 69"
  grep -q 'over the 10 MB limit' "$T/err"; ok $? 0 "$b: the size cap is named"
  ok "$(( $(wc -c < "$T/out") < 11000000 ))" 1 "$b: output stops at the cap"
done

# ---- config file, key file
mkdir -p "$XDG_CONFIG_HOME/kb"
printf '# kb\nbackend = openai\nmodel = from-config\nkey_file = ~/key\n[openai]\nurl = %s/ok/v1\n' "$BASE" > "$XDG_CONFIG_HOME/kb/config"
mkdir -p "$HOME"; printf '%s\n' "$CANARY" > "$HOME/key"; chmod 644 "$HOME/key"
$KB -v -v ask "$Q" >"$T/out" 2>"$T/err"; ok $? 78 "a key file others can read is refused (78)"
grep -q 'mode 644 lets others read it' "$T/err"; ok $? 0 "the key file message says why"
chmod 600 "$HOME/key"; : > "$T/req.jsonl"
$KB -v -v ask "$Q" >"$T/out" 2>"$T/err"; ok $? 0 "config file settings and a 0600 key file work"
last_req | grep -q "\"authorization\": \"Bearer $CANARY\""; ok $? 0 "the key file's key is sent"
last_req | grep -q '"model": "from-config"'; ok $? 0 "the model comes from the config file"
ok "$(yes_ no_canary "$T/out" "$T/err")" 0 "the key file's key is never printed"
KB_LLM_MODEL=from-env $KB ask --url "$BASE/ok" "$Q" >/dev/null 2>&1; last_req | grep -q '"model": "from-env"'; ok $? 0 "the environment overrides the config file"
rm "$XDG_CONFIG_HOME/kb/config"

# ---- kb prompt: exact messages; a passage that says "ignore previous instructions" stays quoted
$KB prompt --json "visitors sign in at the front desk" >"$T/out"; ok $? 0 "kb prompt --json exits 0"
$PY -c '
import json, re, sys
msgs = json.load(open(sys.argv[1]))
assert [m["role"] for m in msgs] == ["system", "user"]
user = msgs[1]["content"]
opens = re.findall(r"<passage id=", user); closes = re.findall(r"</passage>", user)
assert len(opens) == len(closes) >= 1, (opens, closes)
i = user.index("Ignore previous instructions")
assert user.rfind("<passage id=", 0, i) > user.rfind("</passage>", 0, i)  # inside a passage
assert "&lt;/passage>" in user and "&lt;passage id=\"99\"" in user
' "$T/out"; ok $? 0 "an injected delimiter stays quoted inside its passage"
$KB prompt "$Q" | head -1 | grep -qx '\[system\]'; ok $? 0 "kb prompt prints the messages after [role] lines"
$KB prompt --template concise "$Q" | grep -q 'at most three sentences'; ok $? 0 "--template picks a built-in template"
$KB prompt --template nosuch "$Q" 2>"$T/err" >/dev/null; ok $? 66 "an unknown template exits 66"
for c in ask prompt; do $KB $c --help | grep -q 'example:'; ok $? 0 "$c --help has an example"; done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
