#!/usr/bin/env bash
# generate_test.sh — kb generate and kb tokenize on decoder models (GGUF) from the shared data:
#   llama2c    llama2.c's own outputs for the real stories260K model: greedy 200 and 256 tokens,
#              and its seeded top-p sample (temperature 1, p 0.9, seed 133742), byte for byte
#   json       --json and --logits shapes; the same seed gives the same answer; --ids
#   tokenize   kb tokenize --model FILE.gguf gives llama.cpp's ids (BOS, --no-special)
#   errors     damaged or missing files, ids outside the vocabulary, bad options: one line,
#              the documented exit code
#   interrupt  Ctrl-C stops generation at once and keeps what was printed (exit 130)
# Usage: generate_test.sh PATH_TO_KB SHARED_DATA CASE
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$1 DATA=$2/decoder CASE=$3
STORIES=$DATA/stories260K
[ -f "$STORIES/stories260K.gguf" ] || skip "$STORIES/stories260K.gguf is absent"
M=$STORIES/stories260K.gguf
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

case $CASE in
llama2c)
    # run.c -t 0 -n 200 prints one token per position, then a newline (the file has none)
    $KB generate --model "$M" -n 200 >"$T/out"; ok $? 0 "greedy generation exits 0"
    { cat "$STORIES/expected_t0_n200.txt"; echo; } | cmp -s - "$T/out"; ok $? 0 "greedy 200 tokens are llama2.c's text"
    $KB generate --model "$M" -n 256 --temp 0 >"$T/out"
    cmp -s "$STORIES/expected_t0_n256_runc.txt" "$T/out"; ok $? 0 "greedy 256 tokens are llama2.c's text"
    $KB generate --model "$M" -n 256 --temp 1 --top-p 0.9 --seed 133742 >"$T/out"
    cmp -s "$STORIES/expected_t1_p0.9_s133742_runc.txt" "$T/out"; ok $? 0 "the seeded top-p sample is llama2.c's"
    ;;
json)
    $KB --json generate --model "$M" -n 40 --logits "Once upon a time" >"$T/a"; ok $? 0 "--json --logits exits 0"
    ok "$(json "$T/a" 'd["prompt_ids"][0], len(d["ids"]), len(d["last_logits"]), d["stopped_at_end"]')" "1 40 512 False" \
       "prompt_ids start with BOS; 40 ids; 512 logits"
    t=$(json "$T/a" 'd["text"]')
    case "$t" in *", there"*|*" there"*) ok 0 0 "the text continues the prompt";; *) ok "$t" "a continuation" "the text continues the prompt";; esac
    ids=$(json "$T/a" '" ".join(map(str, d["prompt_ids"]))')
    $KB --json generate --model "$M" -n 40 --ids "$ids" >"$T/b"; ok $? 0 "--ids exits 0"
    ok "$(json "$T/b" 'd["ids"]')" "$(json "$T/a" 'd["ids"]')" "--ids gives what the text gave"
    for s in 1 1; do $KB --json generate --model "$M" -n 60 --temp 0.9 --top-k 40 --min-p 0.05 --repeat-penalty 1.1 --seed 7 >"$T/s$s.$RANDOM"; done
    set -- "$T"/s1.*
    ok "$(json "$1" 'd["ids"]')" "$(json "$2" 'd["ids"]')" "the same seed gives the same answer"
    $KB --json generate --model "$M" -n 60 --temp 0.9 --top-k 40 --seed 8 >"$T/s8"
    [ "$(json "$1" 'd["ids"]')" != "$(json "$T/s8" 'd["ids"]')" ]; ok $? 0 "another seed gives another answer"
    ;;
tokenize)
    TINY=$DATA/tiny-random-llama/llama-2-tiny-random.gguf
    $KB --json tokenize --model "$TINY" "Hello world" >"$T/t"; ok $? 0 "tokenize with a GGUF exits 0"
    ok "$(json "$T/t" 'd["ids"]')" "[1, 15043, 3186]" "llama.cpp's ids with BOS"
    ok "$(json "$T/t" 'd["tokens"][1]')" "▁Hello" "tokens are the vocabulary's entries"
    ok "$($KB tokenize --ids --no-special --model "$TINY" "Hello world")" "15043 3186" "--no-special leaves BOS out"
    Q=$DATA/bpe-tokenizers/ggml-vocab-qwen2.gguf
    $KB --json tokenize --model "$Q" "say <|im_end|>" >"$T/q"; ok $? 0 "a vocabulary-only GGUF tokenizes"
    ok "$(json "$T/q" '151645 not in d["ids"] and "".join(d["tokens"]) == "sayĠ<|im_end|>"')" "True" \
       "a control token in text stays text: pieces that spell it, not <|im_end|> (151645)"
    $KB generate --model "$Q" x 2>"$T/err"; ok $? 2 "a vocabulary-only GGUF cannot generate (exit 2)"
    grep -q "has a vocabulary and no weights" "$T/err"; ok $? 0 "and says why"
    ;;
errors)
    head -c 100000 "$M" >"$T/cut.gguf"
    $KB generate --model "$T/cut.gguf" x 2>"$T/err"; ok $? 65 "a truncated file exits 65"
    ok "$(wc -l <"$T/err")" 1 "one line"
    grep -q "cut.gguf: .*past the end of the file" "$T/err"; ok $? 0 "the line names the file and the fault"
    $KB generate --model "$T/none.gguf" x 2>"$T/err"; ok $? 66 "a missing file exits 66"
    $KB generate --model "$M" --ids "1 512" 2>"$T/err"; ok $? 2 "an id outside the vocabulary exits 2"
    grep -q "token id 512 is outside the vocabulary (0 to 511)" "$T/err"; ok $? 0 "the id and the range are named"
    $KB generate --model "$M" --ids "1 x" 2>/dev/null; ok $? 2 "--ids that are not numbers exit 2"
    $KB generate --model "$M" --top-p 2 2>/dev/null; ok $? 2 "--top-p over 1 exits 2"
    $KB generate x 2>/dev/null; ok $? 2 "no --model exits 2"
    $KB generate --model "$M" --logits 2>/dev/null; ok $? 2 "--logits without --json exits 2"
    $KB generate --model "$M" -n 10 --ctx 5 2>/dev/null; ok $? 0 "a context shorter than -n stops at the context"
    $KB --json generate --model "$M" -n 10 --ctx 5 | python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)["ids"]) == 4 else 1)'
    ok $? 0 "--ctx 5 leaves room for 4 tokens after BOS"
    printf 'GGUF\3\0\0\0' >"$T/short.gguf"
    $KB tokenize --model "$T/short.gguf" x 2>/dev/null; ok $? 65 "kb tokenize refuses a damaged GGUF with 65"
    ;;
interrupt)
    # Ctrl-C stops generation at once; what came stays printed (130)
    $KB generate --model "$M" -n 1000000 --ctx 200000 --ignore-eos >"$T/out" 2>"$T/err" &
    pid=$!
    for _ in $(seq 200); do [ -s "$T/out" ] && break; sleep 0.05; done
    kill -INT "$pid"; t0=$SECONDS
    wait "$pid"; ok $? 130 "Ctrl-C exits 130"
    [ $((SECONDS - t0)) -le 3 ]; ok $? 0 "at once"
    [ "$(wc -c <"$T/out")" -gt 0 ]; ok $? 0 "the text generated so far is printed"
    grep -q 'interrupted: generation stops here' "$T/err"; ok $? 0 "one line says it was interrupted"
    ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac
finish
