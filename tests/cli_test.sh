#!/usr/bin/env bash
# cli_test.sh — the kb command end to end: ingest, re-ingest, removal, skips, search, check,
# exit codes and JSON. Usage: cli_test.sh PATH_TO_KB
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
mkdir docs
printf '# Install\n\nRun make.\n\n## Linux\n\nUse apt-get to rotate the logs.\n' > docs/a.md
printf 'plain text about nginx configuration\n' > docs/b.txt
printf 'bad\201\n' > docs/c.txt  # 0x81: neither UTF-8 nor cp1252
: > docs/empty.txt
printf 'x\0y' > docs/bin.txt
$KB --kb kbdir ingest docs >out 2>err; ok $? 1 "ingest with skipped files exits 1"
ok "$(grep -c 'skipped' err)" 3 "three files skipped with reasons"
grep -q 'docs/c.txt: not valid UTF-8 at line 1' err; ok $? 0 "skip reason names the file and line"
$KB --kb kbdir search rotate logs >out; ok $? 0 "search exits 0"
grep -q '^1\. docs/a.md:5-7  Install › Linux' out; ok $? 0 "result shows relative path, lines and heading path"
$KB --kb kbdir search '"unbalanced AND (NEAR* -x' >/dev/null; ok $? 0 "query syntax is plain text"
$KB --kb kbdir --json search nginx | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"]; sys.exit(0 if r[0]["path"].endswith("/docs/b.txt") and r[0]["path"].startswith("/") else 1)'
ok $? 0 "--json search gives absolute paths"
$KB --kb kbdir --json ingest docs | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["unchanged"]==2 and d["added"]==0 else 1)'
ok $? 0 "re-ingest of unchanged files changes nothing"
rm docs/b.txt
$KB --kb kbdir -q --json ingest docs | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["removed"]==1 else 1)'
ok $? 0 "a deleted file is removed"
$KB --kb kbdir ingest nosuchdir 2>err; ok $? 66 "missing path exits 66"
grep -q '^kb: nosuchdir: No such file' err; ok $? 0 "missing path named in one line"
$KB --kb kbdir check >/dev/null; ok $? 0 "check passes"
sqlite3 kbdir/kb.sqlite "DROP TRIGGER chunks_ad; DELETE FROM chunks WHERE id=(SELECT max(id) FROM chunks);" 2>/dev/null
$KB --kb kbdir check 2>err; ok $? 65 "check detects a damaged full-text index"
$KB --kb nokb search x 2>/dev/null; ok $? 66 "search on a missing KB exits 66"
mkdir other; echo hi > other/file
$KB --kb other ingest docs 2>err; ok $? 66 "a folder that is not a KB is refused"
ok "$(ls other)" "file" "nothing written into a folder that is not a KB"

# hidden files, globs, size cap
mkdir -p walk/.hidden walk/sub
echo 'secret words' > walk/.hidden/h.md; echo 'alpha words' > walk/sub/a.md; echo 'beta words' > walk/b.txt
echo 'gamma words gamma words gamma words' > walk/big.md
$KB --kb wk --json ingest --exclude sub --max-file-size 20 walk | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["added"]==1 and d["skipped"]==1 and "limit" in d["skipped_files"][0]["reason"] else 1)'
ok $? 0 "hidden and excluded files are not walked; files over --max-file-size are skipped with a reason"
$KB --kb wk2 --json ingest --include '*.md' walk | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["added"]==2 else 1)'
ok $? 0 "--include limits the walk to matching files"
ln -s ../walk walk/sub/loop
$KB --kb wk3 -q --json ingest --follow-symlinks walk >out 2>/dev/null; ok $? 1 "a symlink loop is skipped and the walk ends"
python3 -c 'import json,sys; d=json.load(open("out")); sys.exit(0 if [f["path"] for f in d["skipped_files"]] == [sys.argv[1]] else 1)' "$(pwd -P)/walk/sub/loop"
ok $? 0 "--json names the skipped link itself (absolute), not the folder it points to"
mkfifo walk/pipe.txt
$KB --kb wk4 --json ingest walk 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if any("FIFO" in f["reason"] for f in d["skipped_files"]) else 1)'
ok $? 0 "a FIFO is skipped with a reason, never read"
# an unreadable file (as root nothing is unreadable, so drop to nobody for this one)
mkdir -p unread && echo 'fine words' > unread/ok.md && echo 'secret words' > unread/no.md && chmod 000 unread/no.md
chmod 755 "$T" unread; as=""
if [ "$(id -u)" -eq 0 ]; then as="setpriv --reuid=nobody --regid=nogroup --clear-groups"; mkdir -m 777 ukb; fi
$as $KB --kb ukb/kb ingest unread >/dev/null 2>err; ok $? 1 "an unreadable file is skipped (exit 1)"
grep -q 'skipped unread/no.md: Permission denied' err; ok $? 0 "the unreadable file is named with the reason"
# a second writer
flock kbdir/kb.lock sleep 3 & sleep 0.5
$KB --kb kbdir ingest docs 2>err; ok $? 75 "a locked KB exits 75"
grep -q 'locked by pid' err; ok $? 0 "the lock message names the holder"
wait
# a KB from a newer kb
cp -r wk newer; sqlite3 newer/kb.sqlite 'PRAGMA user_version=99'
before=$(sha256sum newer/kb.sqlite)
$KB --kb newer search words 2>err; ok $? 65 "a newer schema is refused"
grep -q 'newer kb (schema 99' err; ok $? 0 "the schema message names the version"
$KB --kb newer ingest walk 2>/dev/null; ok $? 65 "ingest into a newer schema is refused"
ok "$(sha256sum newer/kb.sqlite)" "$before" "a refused KB is left untouched"
echo 'not sqlite' > fake.sqlite; mkdir fakekb; mv fake.sqlite fakekb/kb.sqlite
$KB --kb fakekb search x 2>/dev/null; ok $? 66 "a kb.sqlite that is not a database is not a KB"
# control characters in file names and text reach no terminal raw (escapes, forged lines)
mkdir ctl
printf 'terminal \033]0;pwned\007 escape words\r\nforged line\n' > "ctl/esc$(printf '\033')[31mred.md"
printf 'carriage words\n' > "ctl/cr$(printf '\r')name.txt"
printf 'newline words\n' > "ctl/nl"$'\n'"name.txt"
printf 'bad\201\n' > "ctl/skip$(printf '\033')[2J.txt"
$KB --kb ctlkb -v ingest ctl >out 2>err
ok $? 1 "ingest of control-character names exits 1 (one file skipped)"
$KB --kb ctlkb search words >>out 2>>err; ok $? 0 "search finds the control-character files"
$KB --kb ctlkb search --full escape words >>out 2>>err
$KB --kb ctlkb ask escape words >>out 2>>err
$KB --kb ctlkb ingest --dry-run ctl >>out 2>>err
python3 - out err <<'PY'
import sys
for f in sys.argv[1:]:
    data = open(f, "rb").read()
    bad = [b for b in data if (b < 0x20 and b not in (0x0a, 0x09)) or b == 0x7f]
    if bad:
        print(f"FAIL: {f} holds raw control bytes {sorted(set(bad))}")
        sys.exit(1)
PY
ok $? 0 "no raw control byte in what search, ask, ingest -v and --dry-run print"
grep -q 'ctl/esc\\x1b\[31mred.md' out; ok $? 0 "a file name's ESC is shown as \\x1b"
grep -q 'ctl/nl\\nname.txt' err; ok $? 0 "a file name's newline is shown as \\n in ingest -v"
grep -q 'skipped ctl/skip\\x1b\[2J.txt' err; ok $? 0 "a skipped file's name is escaped in the warning"
grep -q '\\x1b\]0;pwned\\x07 escape words' out; ok $? 0 "a passage's escape sequence is shown escaped"
# --modified-after: a time past what kb stores (nanoseconds in int64, up to 2262-04-11) is a
# usage error naming the range, never arithmetic that overflows (UBSan stops the process there)
for t in 10000000000 99999999999999999999 9999-12-31 1969-12-31 999999999d; do
  $KB --kb kbdir search --modified-after "$t" rotate >/dev/null 2>err; ok $? 2 "--modified-after $t exits 2"
  grep -q "out of range: a time from 1970-01-01 to 2262-04-11" err; ok $? 0 "--modified-after $t names the valid range"
done
$KB --kb wk --json search --modified-after 9223372036 words >out; ok $? 0 "the last time in range is taken"
python3 -c 'import json,sys; sys.exit(0 if json.load(open("out"))["results"] == [] else 1)'
ok $? 0 "nothing was modified after 2262-04-11"
$KB --kb wk --json search --modified-after 86400 words >out; ok $? 0 "an early time filters nothing"
python3 -c 'import json,sys; sys.exit(0 if len(json.load(open("out"))["results"]) == 1 else 1)'
ok $? 0 "a file changed after 1970-01-02 is found"
$KB --kb kbdir ask --backend gpt x 2>err; ok $? 2 "an unknown --backend is a usage error"
grep -q "expected openai, ollama, anthropic or local" err; ok $? 0 "the message lists the backends from kb's table"
$KB --kb kbdir search -k 2>/dev/null; ok $? 2 "usage error exits 2"
for c in ingest search status check eval; do $KB $c --help | grep -q 'examples\?:'; ok $? 0 "$c --help has an example"; done
$KB --version | grep -q '^kb [0-9]'; ok $? 0 "--version"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
