#!/usr/bin/env bash
# hub_test.sh — `kb model pull` and `kb model list` against a fake hub on 127.0.0.1
# (tests/hub_server.py serving tests/data/hub). Usage: hub_test.sh PATH_TO_KB CASE
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$(realpath "$1") CASE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
    rm -rf "$T"
}
trap cleanup EXIT

export HOME=$T/home XDG_CACHE_HOME=$T/cache HF_HOME=$T/hf
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_ENDPOINT KB_HF_ENDPOINT HF_HUB_CACHE
mkdir -p "$HOME"
cd "$T"

# The fake repos: the small files from tests/data/hub plus random weights.
cp -r "$HERE/data/hub" repos
head -c 3000000 /dev/urandom > repos/BAAI/bge-small-en-v1.5/model.safetensors
head -c 300000 /dev/urandom > repos/intfloat/e5-small-v2/model.safetensors
head -c 50000 /dev/urandom > repos/sentence-transformers/all-MiniLM-L6-v2/model.safetensors

# serve [--fault F]...: (re)starts the fake hub and points kb at it.
serve() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; fi
    : > log; : > port
    $PY "$HERE/hub_server.py" repos log "$@" > port &
    SERVER_PID=$!
    for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
    export KB_HF_ENDPOINT="http://127.0.0.1:$(head -1 port)"
}

M=BAAI/bge-small-en-v1.5
D=$XDG_CACHE_HOME/kb/models/BAAI--bge-small-en-v1.5
W=model.safetensors
lines() { wc -l < "$1" | tr -d ' '; }
exists() { [ -e "$1" ] && echo yes || echo no; }
json() { $PY -c "import json,sys; d=json.load(open('$1')); print($2)"; }

case_pull_fetches_the_files_kb_reads() {
    serve
    $KB model pull $M >out 2>err; ok $? 0 "pull exits 0"
    ok "$(cat out)" "$M is in cache/kb/models/BAAI--bge-small-en-v1.5" "the last line names the folder (relative below the current one)"
    ok "$(lines err)" 0 "nothing on stderr when it is not a terminal"
    for f in config.json vocab.txt tokenizer_config.json special_tokens_map.json modules.json \
             1_Pooling/config.json $W; do
        cmp -s "repos/$M/$f" "$D/$f"; ok $? 0 "$f arrives byte for byte"
    done
    ok "$(exists $D/README.md)$(exists $D/pytorch_model.bin)" "nono" "files kb does not read are not fetched"
    ok "$(find $D -name '*.part' -o -name '*.tmp' | wc -l)" 0 "no temporary files are left"
    commit=$($PY -c "import json,urllib.request as u; print(json.load(u.urlopen('$KB_HF_ENDPOINT/api/models/$M/revision/main'))['sha'])")
    ok "$(json $D/kb_manifest.json 'd["commit"]')" "$commit" "the manifest records the commit"
    ok "$(json $D/kb_manifest.json '[f["sha256"] for f in d["files"] if f["path"]=="'$W'"][0]')" \
       "$(sha256sum repos/$M/$W | cut -d' ' -f1)" "the manifest records the weights' SHA-256"
    grep -q "GET /$M/resolve/$commit/config.json" log; ok $? 0 "files are fetched at the resolved commit"
    grep -q '^GET /cdn/' log; ok $? 0 "the weights come through the LFS redirect"
    : > log
    $KB --json model pull $M >out 2>err; ok $? 0 "a second pull exits 0"
    ok "$(grep -c resolve log)" 0 "an up-to-date model is not fetched again"
    ok "$(json out 'd["dir"]')" "$D" "--json gives the absolute folder"
}

case_interrupted_download_resumes_with_a_range_request() {
    serve --fault drop=1
    $KB model pull $M >out 2>err; ok $? 0 "a transfer that breaks off once is resumed within the pull"
    cmp -s repos/$M/$W $D/$W; ok $? 0 "the resumed weights are identical"
    grep -q '^GET /cdn/.* range=bytes=1500000- ' log; ok $? 0 "the server saw a Range request from the middle"
    rm -rf "$XDG_CACHE_HOME"
    serve --fault drop=100
    $KB model pull $M >out 2>err; ok $? 69 "a transfer that keeps breaking off exits 69"
    ok "$(lines err)" 1 "one error line"
    grep -q "^kb: $W: download interrupted after .*run the command again to resume" err; ok $? 0 "the message names the file and says how to resume"
    ok "$(exists $D/$W.part)$(exists $D/$W)$(exists $D/kb_manifest.json)" "yesnono" "the partial file is kept and the folder is not complete"
    have=$(stat -c %s $D/$W.part)
    serve
    $KB model pull $M >out 2>err; ok $? 0 "the next pull finishes"
    grep -q "^GET /cdn/.* range=bytes=$have- " log; ok $? 0 "it resumed from the partial file with a Range request"
    ok "$(grep -c '^GET /cdn/' log)" 1 "with one request"
    cmp -s repos/$M/$W $D/$W; ok $? 0 "the weights are identical"
}

case_server_ignoring_range_restarts_the_download() {
    serve --fault drop=100
    $KB model pull $M >/dev/null 2>&1; ok $? 69 "a broken transfer leaves a partial file"
    serve --fault ignore-range
    $KB model pull $M >out 2>err; ok $? 0 "a server that ignores Range still gives a good download"
    grep -q '^GET /cdn/.* range=bytes=' log; ok $? 0 "a Range request was sent"
    cmp -s repos/$M/$W $D/$W; ok $? 0 "the whole file was written once, not appended"
}

case_checksum_mismatch_is_an_error_and_leaves_no_corrupt_file() {
    serve --fault corrupt
    $KB model pull $M >out 2>err; ok $? 65 "a checksum mismatch exits 65"
    ok "$(lines err)" 1 "one error line"
    grep -q "^kb: $W: checksum mismatch" err; ok $? 0 "the message names the file"
    ok "$(exists $D/$W)$(exists $D/$W.part)$(exists $D/kb_manifest.json)" "nonono" "no corrupt file and no manifest are left"
    $KB --json model list >out; ok "$(json out '[e["complete"] for e in d]')" "[False]" "the folder is listed as incomplete"
    serve --fault corrupt --fault plain-api
    $KB model pull $M >out 2>err; ok $? 65 "without SHA-256 in the API answer, X-Linked-Etag catches it"
    grep -q "^kb: $W: checksum mismatch" err; ok $? 0 "with the same message"
    serve
    $KB model pull $M >/dev/null 2>&1; ok $? 0 "a later good download completes it"
    cmp -s repos/$M/$W $D/$W; ok $? 0 "with the right bytes"
}

case_unknown_model_exits_66_with_one_line() {
    serve
    $KB model pull nobody/nothing >out 2>err; ok $? 66 "an unknown model exits 66"
    ok "$(cat err)" "kb: nobody/nothing: no such model on the hub (HTTP 404)" "one line naming the model"
    $KB model pull --revision v9 $M >out 2>err; ok $? 66 "an unknown revision exits 66"
    ok "$(cat err)" "kb: $M: no revision 'v9' on the hub" "one line naming the revision"
    serve --fault status=404
    $KB model pull $M 2>err; ok $? 66 "a 404 from the hub exits 66"
    ok "$(exists $XDG_CACHE_HOME/kb/models)" no "nothing is created for a model that is not there"
    serve --fault status=503
    $KB model pull $M 2>err; ok $? 69 "a hub that answers 503 exits 69"
    grep -q 'HTTP 503; try again later' err; ok $? 0 "and says to try again"
}

case_private_model_needs_hf_token() {
    serve --fault token=hf_s3cretTOKEN
    $KB model pull $M >out 2>err; ok $? 66 "a model the hub does not show without a token exits 66"
    ok "$(cat err)" "kb: $M: no such model on the hub, or it is private (HTTP 401); set HF_TOKEN if you have access" "one line that mentions HF_TOKEN"
    HF_TOKEN=wrong $KB model pull $M >out 2>err; ok $? 78 "a refused token exits 78"
    ok "$(cat err)" "kb: $M: the hub refused the token in HF_TOKEN (HTTP 401: invalid credentials)" "one line saying the token was refused"
    HF_TOKEN=hf_s3cretTOKEN $KB -v model pull $M >out 2>err; ok $? 0 "the right token gets the model"
    grep -q 'auth=yes' log; ok $? 0 "the token was sent"
    ok "$(grep -c hf_s3cretTOKEN out err)" "out:0
err:0" "the token is never printed"
    serve --fault status=403
    $KB model pull $M 2>err; ok $? 78 "a gated model exits 78"
    grep -q "^kb: $M: the model is gated (HTTP 403): accept its terms" err; ok $? 0 "the message says it is gated"
}

case_unreachable_endpoint_exits_69() {
    port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    KB_HF_ENDPOINT=http://127.0.0.1:$port $KB model pull $M >out 2>err; ok $? 69 "a closed port exits 69"
    ok "$(lines err)" 1 "one error line"
    grep -q "^kb: cannot reach the model hub at http://127.0.0.1:$port: " err; ok $? 0 "the message names the endpoint"
    HF_ENDPOINT=http://127.0.0.1:$port $KB model pull $M 2>/dev/null; ok $? 69 "HF_ENDPOINT is honoured too"
}

case_list_shows_kb_and_huggingface_cache_models() {
    serve
    $KB model pull $M >/dev/null 2>&1; ok $? 0 "pull"
    # A model that huggingface_hub downloaded: blobs, a snapshot of symlinks, refs/main.
    hf=$HF_HOME/hub/models--sentence-transformers--all-MiniLM-L6-v2
    mkdir -p $hf/blobs $hf/refs $hf/snapshots/c0ffee
    echo c0ffee > $hf/refs/main
    for f in config.json vocab.txt model.safetensors; do
        b=$(sha256sum repos/sentence-transformers/all-MiniLM-L6-v2/$f | cut -d' ' -f1)
        cp repos/sentence-transformers/all-MiniLM-L6-v2/$f $hf/blobs/$b
        ln -s ../../blobs/$b $hf/snapshots/c0ffee/$f
    done
    mkdir -p $XDG_CACHE_HOME/kb/models/acme--partial && echo '{}' > $XDG_CACHE_HOME/kb/models/acme--partial/config.json
    $KB model list >out 2>err; ok $? 0 "list exits 0"
    ok "$(head -1 out | tr -s ' ')" "NAME SOURCE SIZE FOLDER" "a table with a header"
    grep -q "^$M  *kb  *3.0 MB  cache/kb/models/BAAI--bge-small-en-v1.5\$" out; ok $? 0 "the pulled model is listed with its size and folder"
    grep -q "^sentence-transformers/all-MiniLM-L6-v2  *huggingface .*  hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/c0ffee\$" out; ok $? 0 "the Hugging Face cache model is listed"
    grep -q "^acme/partial .*(incomplete)\$" out; ok $? 0 "a partial folder is marked incomplete"
    $KB --json model list >out; ok $? 0 "list --json exits 0"
    ok "$(json out '[(e["name"], e["source"], e["complete"]) for e in d]')" \
       "[('$M', 'kb', True), ('acme/partial', 'kb', False), ('sentence-transformers/all-MiniLM-L6-v2', 'huggingface', True)]" \
       "--json lists all three, sorted, with completeness"
    want=$(du -b --apparent-size -s $D | cut -f1); want=$((want - $(stat -c %s $D) - $(stat -c %s $D/1_Pooling)))
    ok "$(json out 'd[0]["bytes"]')" "$want" "bytes is the size of the folder's files"
    rm -rf "$XDG_CACHE_HOME" "$HF_HOME"
    $KB model list >out 2>err; ok $? 0 "an empty list exits 0"
    ok "$(lines out)" 0 "and prints no table"
    grep -q "kb model pull" err; ok $? 0 "it says how to get a model"
}

case_retrieval_prefixes_are_written_for_known_models() {
    serve
    $KB model pull intfloat/e5-small-v2 >/dev/null 2>&1; ok $? 0 "pull an e5 model"
    e5=$XDG_CACHE_HOME/kb/models/intfloat--e5-small-v2
    ok "$(json $e5/kb_model.json '(d["query_prefix"], d["passage_prefix"])')" "('query: ', 'passage: ')" "e5 gets query: and passage: prefixes"
    ok "$(exists $e5/tokenizer.json)$(exists $e5/1_Pooling/config.json)" "yesyes" "tokenizer.json and the pooling settings are fetched"
    $KB model pull $M >/dev/null 2>&1
    ok "$(json $D/kb_model.json 'sorted(d.items())')" "[('query_prefix', 'Represent this sentence for searching relevant passages: ')]" "bge v1.5 gets its query instruction only"
    $KB model pull sentence-transformers/all-MiniLM-L6-v2 >/dev/null 2>&1; ok $? 0 "pull a model with no prefixes"
    ok "$(exists $XDG_CACHE_HOME/kb/models/sentence-transformers--all-MiniLM-L6-v2/kb_model.json)" no "other models get no kb_model.json"
}

case_repo_without_safetensors_is_refused() {
    serve
    $KB model pull acme/bin-only >out 2>err; ok $? 65 "a repo with only pytorch weights exits 65"
    ok "$(cat err)" "kb: acme/bin-only has no model.safetensors (kb reads only safetensors weights)" "one line saying why"
    ok "$(grep -c resolve log)" 0 "nothing is downloaded"
}

case_changed_model_fetches_only_what_changed() {
    serve
    $KB model pull $M >/dev/null 2>&1; ok $? 0 "pull"
    echo '{"architectures": ["BertModel"], "hidden_size": 384, "changed": true}' > repos/$M/config.json
    rm repos/$M/special_tokens_map.json
    serve
    $KB model pull $M >/dev/null 2>&1; ok $? 0 "pull after the repo changed"
    cmp -s repos/$M/config.json $D/config.json; ok $? 0 "the changed file is fetched"
    ok "$(grep -c '^GET /cdn/' log)" 0 "unchanged weights are kept, not fetched again"
    ok "$(exists $D/special_tokens_map.json)" no "a file the new commit dropped is removed"
}

case_disk_full_exits_74() {
    serve
    mkdir -p $D && ln -s /dev/full $D/$W.part # every write to the weights fails with ENOSPC
    $KB model pull $M >out 2>err; ok $? 74 "a failed write exits 74"
    ok "$(lines err)" 1 "one error line"
    grep -q "^kb: $D/$W.part: cannot write: No space left on device" err; ok $? 0 "the message names the file and the reason"
    ok "$(exists $D/kb_manifest.json)" no "the folder is not marked complete"
}

case_pulled_model_opens_by_name_with_its_prefixes() {
    # A real (random-weight) model from scripts/gen_models.py, served as intfloat/e5-tiny-v2.
    if ! $PY "$HERE/../scripts/gen_models.py" gen --only tiny_f16_mean >/dev/null 2>&1; then
        echo "SKIP: scripts/gen_models.py could not make a model (needs /usr/bin/python3 with numpy)"
        exit 77
    fi
    cp -r gen/tiny_f16_mean repos/intfloat/e5-tiny-v2
    serve
    $KB model pull intfloat/e5-tiny-v2 >/dev/null 2>&1; ok $? 0 "pull"
    $KB embed --model intfloat/e5-tiny-v2 "hello world" >by_name 2>err; ok $? 0 "kb embed opens the pulled model by its hub name"
    $KB embed --model gen/tiny_f16_mean "passage: hello world" >by_dir 2>err
    ok "$(cat by_name)" "$(cat by_dir)" "passages get the passage prefix from kb_model.json"
    $KB embed --query --model intfloat/e5-tiny-v2 "hello world" >by_name 2>err
    $KB embed --model gen/tiny_f16_mean "query: hello world" >by_dir 2>err
    ok "$(cat by_name)" "$(cat by_dir)" "queries get the query prefix"
}

case_model_command_usage_and_help() {
    $KB model >out 2>err; ok $? 2 "kb model alone is a usage error"
    grep -q 'kb model pull' err; ok $? 0 "and prints the usage"
    for sub in "model --help" "help model" "model pull --help" "model list --help"; do
        $KB $sub | grep -q 'example:'; ok $? 0 "kb $sub has an example"
    done
    $KB model pull 2>/dev/null; ok $? 2 "pull without NAME exits 2"
    $KB model pull bge-small 2>err; ok $? 2 "a name without ORG exits 2"
    grep -q "'bge-small' is not a hub model name" err; ok $? 0 "and says what a name looks like"
    $KB model pull 'a/../b' 2>/dev/null; ok $? 2 "a name with .. exits 2"
    $KB model frob 2>/dev/null; ok $? 2 "an unknown subcommand exits 2"
    $KB model list extra 2>/dev/null; ok $? 2 "list takes no arguments"
    $KB --help | grep -q 'model pull|list'; ok $? 0 "kb --help lists the model command"
}

if ! declare -F "case_$CASE" >/dev/null; then echo "unknown case '$CASE'"; exit 2; fi
"case_$CASE"
echo "$CASE: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
