#!/usr/bin/env bash
# chat_test.sh — kb chat end to end against tests/llm_server.py on 127.0.0.1: a piped
# conversation, the history each request carries and its trimming to the context budget,
# /sources and /exit, JSON lines, and how failed turns end (or do not end) the chat.
# Usage: chat_test.sh PATH_TO_KB TESTS_DIR
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$1; SRC=$2; PY=/usr/bin/python3; DATA=$SRC/data/llm
[ -x "$PY" ] || { echo "skipped: $PY is needed for the loopback server"; exit 77; }
T=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
unset KB_LLM_BACKEND KB_LLM_URL KB_LLM_MODEL KB_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY
export XDG_CONFIG_HOME=$T/cfg HOME=$T/home KB_DIR=$T/kb KB_LLM_MAX_RETRIES=0

$PY "$SRC/llm_server.py" --port-file "$T/port" --log "$T/req.jsonl" --data "$DATA" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port"); BASE=http://127.0.0.1:$PORT/s
$KB ingest "$DATA/docs" >/dev/null 2>&1; ok $? 0 "the test KB is ingested"
CANARY=sk-canary-7a3e01c95d2b
Q1="how are the logs rotated"; Q2="who signs visitors in"; Q3="what does the backup keep"
export OPENAI_API_KEY=$CANARY
ASK=(--backend openai --model m --url "$BASE/ok")

# Checks request N of the log (1-based) with a Python expression over `user` (the last
# message's content) and `msgs`; prints 0 when it holds.
req_holds() {
    sed -n "$1p" "$T/req.jsonl" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read()); msgs = r["body"]["messages"]; user = msgs[-1]["content"]
answer = open(sys.argv[2], encoding="utf-8").read()
first_line = answer.splitlines()[0]
print(0 if eval(sys.argv[1]) else 1)
' "$2" "$DATA/answer.txt"
}

# ---- a piped conversation: every answer streamed, each request carrying the turns before it
: > "$T/req.jsonl"
printf '%s\n\n%s\n%s\n' "$Q1" "$Q2" "$Q3" | $KB -v chat "${ASK[@]}" >"$T/out" 2>"$T/err"
ok $? 0 "a piped three-question chat exits 0 at end of input"
for _ in 1 2 3; do cat "$DATA/answer.txt"; echo; done > "$T/want"
cmp -s "$T/out" "$T/want"; ok $? 0 "stdout is the three answers byte for byte, a blank line after each"
ok "$(wc -l < "$T/req.jsonl")" 3 "one request per question (blank lines are skipped)"
ok "$(req_holds 1 '"Earlier in this conversation" not in user and "Question: '"$Q1"'" in user')" 0 "the first request has no history"
ok "$(req_holds 2 '"User: '"$Q1"'" in user and "Assistant: " + first_line in user and "Question: '"$Q2"'" in user')" 0 "the second request carries the first question and its answer"
ok "$(req_holds 2 'user.index("User: '"$Q1"'") < user.index("Assistant: ") < user.index("Passages:")')" 0 "the history comes before the passages, oldest first"
ok "$(req_holds 3 '"User: '"$Q1"'" in user and "User: '"$Q2"'" in user and user.count("Assistant: ") == 2')" 0 "the third request carries both earlier turns"
ok "$(req_holds 2 '[m["role"] for m in msgs] == ["system", "user"]')" 0 "history travels inside the templated user message"
grep -q 'history: 2 of 2 earlier messages fit the context budget; 4 kept' "$T/err"; ok $? 0 "-v says how much history was kept"
grep -c 'first token after' "$T/err" | grep -qx 3; ok $? 0 "-v reports time to first token and tokens/s per answer"
! grep -q "$CANARY" "$T/out" "$T/err"; ok $? 0 "the API key appears in no output"

# ---- a small context budget: the oldest turns are dropped, newest kept
: > "$T/req.jsonl"
printf '%s\n%s\n%s\n' "$Q1" "$Q2" "$Q3" |
  $KB -v chat "${ASK[@]}" --context-window 1200 --max-tokens 256 >"$T/out" 2>"$T/err"
ok $? 0 "a chat over a small context window exits 0"
ok "$(req_holds 2 '"User: '"$Q1"'" in user')" 0 "with room for one turn, the second request still has the first"
ok "$(req_holds 3 '"User: '"$Q2"'" in user and "Assistant: " + first_line in user')" 0 "the third request keeps the newest turn"
ok "$(req_holds 3 '"User: '"$Q1"'" not in user')" 0 "the third request drops the oldest turn that no longer fits"
grep -q 'history: 2 of 4 earlier messages fit the context budget; 4 kept' "$T/err"; ok $? 0 "-v reports the trimmed history"

# ---- /sources, /clear, unknown commands, /exit
: > "$T/req.jsonl"
printf '%s\n/sources\n/nosuch\n/clear\n%s\n/exit\n%s\n' "$Q1" "$Q2" "$Q3" | $KB chat "${ASK[@]}" >"$T/out" 2>"$T/err"
ok $? 0 "a chat ended by /exit exits 0"
ok "$(wc -l < "$T/req.jsonl")" 2 "nothing after /exit is asked"
grep -q '^\[[0-9]\] .*logs.md › Log rotation › Rotating the logs, lines 5–9$' "$T/out"; ok $? 0 "/sources lists the last answer's sources as [n] path › heading, lines"
grep -q "unknown command '/nosuch'" "$T/err"; ok $? 0 "an unknown command is named on stderr"
ok "$(req_holds 2 '"Earlier in this conversation" not in user')" 0 "/clear forgets the conversation"
printf '/sources\n' | $KB chat "${ASK[@]}" >"$T/out" 2>"$T/err"; ok $? 0 "/sources before any question is not an error"
grep -q 'no sources yet' "$T/err"; ok $? 0 "/sources before any question says there are none yet"

# ---- --json: per turn tokens, sources, turn; a summary at the end
printf '%s\n/sources\n%s\n' "$Q1" "$Q2" | $KB chat --json "${ASK[@]}" >"$T/out" 2>"$T/err"; ok $? 0 "--json chat exits 0"
$PY -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
answer = open(sys.argv[2], encoding="utf-8").read()
assert all("type" in l for l in lines)
types = [l["type"] for l in lines]
assert types[-1] == "summary" and types.count("summary") == 1, types
for turn, q in ((1, sys.argv[3]), (2, sys.argv[4])):
    mine = [l for l in lines if l.get("turn") == turn]
    kinds = [l["type"] for l in mine]
    n = kinds.count("token")
    assert kinds[:n] == ["token"] * n and n > 1, kinds
    assert "".join(l["text"] for l in mine[:n]) == answer
    t = [l for l in mine if l["type"] == "turn"][0]
    assert t["question"] == q and t["answer"] == answer and t["usage"]["completion_tokens"] == 62
    assert kinds.index("sources") < kinds.index("turn")
assert [l["type"] for l in lines if l.get("turn") == 1].count("sources") == 2  # /sources repeats them
s = lines[-1]
assert s["turns"] == 2 and s["answered"] == 2 and s["usage"]["completion_tokens"] == 124, s
assert s["history_messages"] == 4, s
' "$T/out" "$DATA/answer.txt" "$Q1" "$Q2"; ok $? 0 "--json: token lines, sources and a turn object per question, then one summary"

# ---- failures: an unreachable backend fails each turn but the chat goes on; a refused key ends it
printf '%s\n%s\n' "$Q1" "$Q2" | $KB chat --json --backend ollama --model m --url http://127.0.0.1:9/ >"$T/out" 2>"$T/err"
ok $? 69 "a chat whose backend is unreachable exits 69"
ok "$(grep -c 'unreachable' "$T/err")" 2 "each failed turn is one line on stderr"
$PY -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
turns = [l for l in lines if l["type"] == "turn"]
assert len(turns) == 2 and all("unreachable" in t["error"] and "answer" not in t for t in turns), turns
assert lines[-1]["type"] == "summary" and lines[-1]["answered"] == 0 and lines[-1]["turns"] == 2
' "$T/out"; ok $? 0 "--json: failed turns carry the error and the summary still ends the stream"
: > "$T/req.jsonl"
printf '%s\n%s\n' "$Q1" "$Q2" | OPENAI_API_KEY=sk-wrong-$CANARY $KB chat "${ASK[@]}" >"$T/out" 2>"$T/err"
ok $? 78 "a refused key ends the chat with 78"
ok "$(wc -l < "$T/req.jsonl")" 1 "after a refused key nothing more is asked"
! grep -q "$CANARY" "$T/out" "$T/err"; ok $? 0 "a refused key is not echoed"

# ---- no backend configured: the passages for each question, the hint once
printf '%s\n%s\n' "$Q1" "$Q2" | $KB chat >"$T/out" 2>"$T/err"; ok $? 0 "chat with no backend exits 0"
ok "$(grep -c 'no LLM backend configured' "$T/err")" 1 "the how-to-configure line comes once"
grep -q 'logrotate -f /etc/logrotate.d/kb' "$T/out" && grep -q 'front desk' "$T/out"; ok $? 0 "each question gets its best passages"

# ---- usage
$KB chat "a question" </dev/null >/dev/null 2>"$T/err"; ok $? 2 "a QUESTION argument is a usage error"
grep -q 'standard input' "$T/err"; ok $? 0 "the usage error says questions come from standard input"
$KB chat --help | grep -q 'example:'; ok $? 0 "chat --help has an example"
$KB --help | grep -q '^  chat '; ok $? 0 "kb --help lists chat"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
