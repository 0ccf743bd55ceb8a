#!/usr/bin/env bash
# cli_edges_test.sh — what a new user meets first, one CASE each: the formats kb --help lists
# are the ones ingest reads, -vv/-vvv wherever -v goes, unknown --format names, kb status
# --json on a keyword-only KB, and the no-backend line naming the config file kb reads.
# Usage: cli_edges_test.sh PATH_TO_KB TESTS_DIR CASE
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$(realpath "$1") SRC=$(realpath "$2") CASE=$3
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HOME=$T/home XDG_CACHE_HOME=$T/cache XDG_DATA_HOME=$T/data XDG_CONFIG_HOME=$T/config
export HF_HOME=$T/hf KB_DIR=$T/kb
unset KB_LLM_BACKEND KB_LLM_URL KB_LLM_MODEL KB_MODEL
mkdir -p "$HOME" && cd "$T" || exit 1
mkdir docs
printf '# Logs\n\nRotate the logs weekly with logrotate.\n' > docs/logs.md
printf 'Backups run nightly to the tape library.\n' > docs/backup.txt
$KB ingest -q --model none docs >/dev/null 2>&1 || { echo "FAIL: the test KB was not ingested"; exit 1; }

# ---- kb --help lists every format ingest reads (docs/FORMATS.md's rows), and each it lists is
# one ingest takes up (added or skipped for its content, never ignored as not a format)
case_help_lists_formats() {
    $KB --help > help; ok $? 0 "kb --help exits 0"
    local exts; exts=$(sed -n '/^  ingest /,/^  search /p' help | grep -o '\.[a-z]\+' | sort -u)
    ok "$(( $(wc -w <<<"$exts") >= 13 ))" 1 "the ingest line lists the extensions ($(echo $exts))"
    local row missing=
    while IFS= read -r row; do
        local found=0 e
        for e in $row; do grep -qx -- "$e" <<<"$exts" && found=1; done
        [ $found = 1 ] || missing="$missing [$row]"
    done < <(sed -n 's/^| \(\.[a-z][^|]*\) | [a-z]* |.*/\1/p' "$SRC/../docs/FORMATS.md")
    ok "${missing:-none}" none "every row of docs/FORMATS.md's table has an extension in kb --help"
    mkdir f
    for e in $exts .png; do printf 'hello world\n' > "f/a$e"; done
    $KB --kb fk ingest -vv --model none f >out 2>err
    local e bad=
    for e in $exts; do
        grep -q "f/a$e (not a format kb reads)" err && bad="$bad $e"
        grep -q "f/a$e" err || bad="$bad $e(unmentioned)"
    done
    ok "${bad:-none}" none "ingest takes up a file of every extension kb --help lists"
    grep -q "f/a.png (not a format kb reads)" err; ok $? 0 "and ignores one it does not list (.png)"
}

# ---- -vv and -vvv are accepted wherever -v is: before the command and after it
case_verbose_repeats() {
    local cmd
    for cmd in "-vv status" "-vvv status" "status -vv" "search -vvv logs" "prompt -vv logs" \
               "ask -vv logs" "ask -vvv --no-stream logs" "check -vv" "-vv -v search logs"; do
        # shellcheck disable=SC2086
        $KB $cmd >out 2>err; ok $? 0 "kb $cmd exits 0"
        grep -q "unknown" err; ok $? 1 "kb $cmd: no unknown option"
    done
    $KB prompt -vv logs >/dev/null 2>err
    grep -q '^kb: template default; ' err; ok $? 0 "prompt -vv says at least what -v says"
    printf 'more\n' > docs/more.md
    $KB ingest -v docs >/dev/null 2>err
    grep -q 'unchanged' err; ok $? 1 "ingest -v does not list unchanged files"
    $KB ingest -vv docs >/dev/null 2>err
    grep -q '^unchanged .*docs/logs.md' err; ok $? 0 "ingest -vv does (two levels, like -v -v)"
    for cmd in "-vx status" "status -vq" "status -v2"; do
        # shellcheck disable=SC2086
        $KB $cmd >/dev/null 2>err; ok $? 2 "kb $cmd is a usage error"
    done
}

# ---- an unknown --format is a usage error naming the formats; a known one still filters
case_unknown_format_is_a_usage_error() {
    $KB search --format docxx logs >out 2>err; ok $? 2 "--format docxx exits 2"
    ok "$(wc -l < err | tr -d ' ')" 1 "one line on stderr"
    grep -q "unknown format 'docxx': expected one of text, markdown, html, .*, pdf, .*email" err
    ok $? 0 "the line names the format and the ones kb reads"
    ok "$(wc -c < out | tr -d ' ')" 0 "nothing on stdout (no 'no results')"
    $KB search --format markdown logs >out 2>err; ok $? 0 "--format markdown exits 0"
    grep -q 'docs/logs.md' out; ok $? 0 "and finds the Markdown passage"
    $KB search --format text logs >out 2>err; ok $? 0 "--format text (no match) exits 0"
    grep -q 'docs/logs.md' out; ok $? 1 "and leaves the Markdown file out"
}

# ---- kb status --json on a keyword-only KB says "model": null
case_status_json_model_null() {
    $KB --json status >out; ok $? 0 "status --json exits 0"
    $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert "model" in d and d["model"] is None, d
assert d["chunks"] >= 2, d
' out; ok $? 0 "status --json has \"model\": null"
}

# ---- with no backend, the line names the config file kb reads: $XDG_CONFIG_HOME's, else ~'s
case_no_backend_names_the_config_file() {
    $KB ask logs >out 2>err; ok $? 0 "ask with no backend exits 0"
    grep -qF "'model' in $XDG_CONFIG_HOME/kb/config or KB_LLM_BACKEND" err; ok $? 0 "ask names \$XDG_CONFIG_HOME/kb/config"
    grep -qF "~/.config" err; ok $? 1 "and not ~/.config"
    printf 'logs\n' | $KB chat >out 2>err; ok $? 0 "chat with no backend exits 0"
    grep -qF "'model' in $XDG_CONFIG_HOME/kb/config" err; ok $? 0 "chat names \$XDG_CONFIG_HOME/kb/config"
    env -u XDG_CONFIG_HOME "$KB" ask logs >out 2>err
    grep -qF "'model' in ~/.config/kb/config" err; ok $? 0 "without XDG_CONFIG_HOME: ~/.config/kb/config"
}

declare -F "case_$CASE" >/dev/null || { echo "unknown case '$CASE'"; exit 2; }
"case_$CASE"
finish
