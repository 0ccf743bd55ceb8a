#!/usr/bin/env bash
# hostile_test.sh — folders built to trouble a walk and a reader, one case per run: a tree
# 10,000 folders deep, file names that are not UTF-8, a file that grows while it is read, one
# rewritten in place (same size) while it is read, NUL-laden .txt files, sparse files of
# 900 MB and 2 GB. Each case checks kb's defined outcome (docs/FORMATS.md). The symlink
# loop case lives in tests/cli_test.sh.
# Usage: hostile_test.sh PATH_TO_KB CASE
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$1 CASE=$2
PY=/usr/bin/python3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
# The reason kb gave for skipping the file whose path ends in $1, from kb's --json report.
# (Read with surrogateescape: kb prints a skipped non-UTF-8 name's bytes as they are.)
# The JSON must be valid UTF-8: bytes of a name that are not UTF-8 come out as U+FFFD.
reason() { $PY -c 'import json,os,sys; d=json.load(open(sys.argv[1], encoding="utf-8")); want=os.fsencode(sys.argv[2]).decode("utf-8", "replace"); print(next((f["reason"] for f in d["skipped_files"] if f["path"].endswith(want)), "not skipped"))' "$T/out" "$1"; }
docs() { sqlite3 "$T/kb/kb.sqlite" "SELECT count(*) FROM documents WHERE path LIKE '%$1'"; }

case $CASE in
deep_tree)
  # 10,000 nested folders (paths far past PATH_MAX, so built one openat at a time), a file at
  # depth 3 and one at the bottom. The walk stops at its depth limit with a reason.
  mkdir -p "$T/d"
  $PY - "$T/d" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for depth in range(1, 10001):
    os.mkdir("n", dir_fd=fd)
    nfd = os.open("n", os.O_RDONLY, dir_fd=fd)
    os.close(fd); fd = nfd
    if depth in (3, 10000):
        f = os.open(f"depth{depth}.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, f"a note kept at depth {depth}\n".encode()); os.close(f)
EOF
  $PY - "$KB" "$T" <<'EOF' >"$T/rss"
import resource, subprocess, sys
kb, t = sys.argv[1:3]
with open(f"{t}/out", "w") as out, open(f"{t}/err", "w") as err:
    rc = subprocess.run([kb, "--kb", f"{t}/kb", "--json", "ingest", f"{t}/d"], stdout=out,
                        stderr=err, timeout=60).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
EOF
  read -r rc rss_mb <"$T/rss"
  ok "$rc" 1 "a 10,000-deep tree ingests what is within reach and exits 1 for the skip"
  ok "$(reason /n)" "folder nested too deep" "the folder past the depth limit is skipped with a reason"
  ok "$(docs depth3.txt)" 1 "a file near the top of the deep tree is ingested"
  ok "$(docs depth10000.txt)" 0 "a file below the depth limit is not reached"
  ok $(( rss_mb < 200 )) 1 "memory stays bounded walking the deep tree (${rss_mb} MB peak)"
  ;;
non_utf8_names)
  # Names in Latin-1 and with a stray continuation byte: skipped with a reason (every path kb
  # stores and prints is UTF-8); a folder so named is not entered; UTF-8 names are read.
  mkdir -p "$T/d/$(printf 'dossier-\xe9t\xe9')"
  printf 'latin one named\n' > "$T/d/$(printf 'caf\xe9').txt"
  printf 'inside the folder\n' > "$T/d/$(printf 'dossier-\xe9t\xe9')/inside.txt"
  printf 'stray byte named\n' > "$T/d/$(printf 'x\x80y').md"
  printf 'utf-8 named\n' > "$T/d/café-ok.txt"
  $KB --kb "$T/kb" --json ingest "$T/d" >"$T/out" 2>"$T/err"
  ok $? 1 "a folder with non-UTF-8 names ingests the rest and exits 1 for the skips"
  ok "$(reason "$(printf 'caf\xe9').txt")" "file name is not valid UTF-8" "a Latin-1 file name is skipped with a reason"
  ok "$(reason "$(printf 'x\x80y').md")" "file name is not valid UTF-8" "a name with a stray byte is skipped with a reason"
  ok "$(reason "$(printf 'dossier-\xe9t\xe9')")" "file name is not valid UTF-8" "a non-UTF-8 folder is skipped, not entered"
  ok "$(docs inside.txt)" 0 "nothing below a non-UTF-8 folder is read"
  ok "$(docs café-ok.txt)" 1 "a UTF-8 name with an accent is ingested"
  ok "$(sqlite3 "$T/kb/kb.sqlite" "SELECT count(*) FROM documents")" 1 "only the UTF-8 named file is stored"
  ;;
file_changes_while_read)
  # A 40 MB text file that a writer keeps appending to while kb reads it: kb reads exactly the
  # size it saw and then checks for more, so it skips the file rather than store a torn read.
  $PY -c 'import sys; open(sys.argv[1], "w").write("a line of growing text\n" * 1800000)' "$T/grow.txt"
  printf 'a file that stays put\n' > "$T/still.txt"
  $PY - "$T/grow.txt" "$T/started" <<'EOF' &
import os, sys, time
f = open(sys.argv[1], "a")
open(sys.argv[2], "w").close()
end = time.time() + 30
while time.time() < end:
    f.write("more text appended while kb reads\n" * 8); f.flush()
    time.sleep(0.0002)  # a steady trickle (~1 MB/s), not a flood that outruns the size cap
EOF
  writer=$!
  while [ ! -e "$T/started" ]; do sleep 0.05; done
  # The size cap is raised so that only the change, never the growth past 64 MiB, decides.
  $KB --kb "$T/kb" --json ingest --max-file-size 1G "$T/grow.txt" "$T/still.txt" >"$T/out" 2>"$T/err"
  rc=$?
  kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
  ok "$rc" 1 "ingesting a file that grows while read exits 1 (skipped), never crashes"
  ok "$(reason /grow.txt)" "file changed while being read" "the growing file is skipped with its reason"
  ok "$(docs grow.txt)" 0 "no torn copy of the growing file is stored"
  ok "$(docs still.txt)" 1 "the file that stays put is ingested"
  ;;
nul_laden_text)
  # NUL bytes in a .txt: binary and skipped, with the offset of the first; UTF-16 without a
  # BOM (a NUL after every ASCII byte) is recognised and read.
  $PY - "$T/d" <<'EOF'
import os, sys
d = sys.argv[1]; os.makedirs(d)
open(f"{d}/zeros.txt", "wb").write(b"words first" + b"\0" * (1 << 20) + b"words last\n")
open(f"{d}/sprinkled.txt", "wb").write(b"".join(b"line %d\0\n" % i for i in range(1000)))
open(f"{d}/utf16le-nobom.txt", "wb").write("UTF-16 without a byte order mark\n".encode("utf-16-le") * 4)
open(f"{d}/trailing-nul.txt", "wb").write(b"ordinary text\n\0")
EOF
  $KB --kb "$T/kb" --json ingest "$T/d" >"$T/out" 2>"$T/err"
  ok $? 1 "a folder of NUL-laden .txt files ingests with skips (exit 1)"
  ok "$(reason /zeros.txt)" "binary file (NUL byte at byte 11)" "a megabyte of NULs in a .txt is binary"
  ok "$(reason /sprinkled.txt)" "binary file (NUL byte at byte 6)" "NULs sprinkled through lines are binary"
  ok "$(reason /trailing-nul.txt)" "binary file (NUL byte at byte 14)" "one trailing NUL is enough to be binary"
  ok "$(sqlite3 "$T/kb/kb.sqlite" "SELECT count(*) FROM chunks WHERE text LIKE '%UTF-16 without a byte order mark%'")" 1 \
     "UTF-16LE without a BOM is decoded, not taken for binary"
  ;;
huge_sparse_file)
  # Sparse files far larger than memory should be spent on: 2 GB is over kb's 1 GiB ceiling on
  # what it reads into memory, so --max-file-size cannot go past it (usage error) and the file
  # is refused unread; 900 MB files of NULs under the ceiling are refused after their first
  # 64 KiB (binary, or not the container the name says), never read whole.
  mkdir -p "$T/d"
  if ! truncate -s 2G "$T/d/huge.txt" 2>/dev/null ||
     [ "$(stat -c %b "$T/d/huge.txt")" -gt 1024 ]; then
    echo "SKIP: the filesystem of $T cannot hold a sparse 2 GB file"; exit 77
  fi
  truncate -s 900M "$T/d/zeros.txt" "$T/d/zeros.pdf" "$T/d/zeros.docx"
  printf 'a small note beside the big files\n' > "$T/d/small.txt"
  $KB --kb "$T/kb" --json ingest --max-file-size 3G "$T/d" >"$T/out" 2>"$T/err"
  ok $? 2 "--max-file-size over the 1 GiB ceiling is a usage error (exit 2)"
  ok "$(head -n 1 "$T/err")" "kb ingest: --max-file-size: at most 1G (kb reads a file whole into memory)" \
     "the usage error is one line naming the flag and the ceiling"
  ok "$([ -e "$T/kb" ] && echo created || echo none)" none "a usage error touches no KB"
  $PY - "$KB" "$T" <<'EOF' >"$T/rss"
import resource, subprocess, sys
kb, t = sys.argv[1:3]
with open(f"{t}/out", "w") as out, open(f"{t}/err", "w") as err:
    rc = subprocess.run([kb, "--kb", f"{t}/kb", "--json", "ingest", "--max-file-size", "1G",
                         f"{t}/d"], stdout=out, stderr=err, timeout=120).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
EOF
  read -r rc rss_mb <"$T/rss"
  ok "$rc" 1 "a folder of huge sparse files ingests the rest and exits 1 for the skips"
  ok "$(reason /huge.txt)" "larger than the 1073741824-byte limit (2147483648 bytes)" "the 2 GB file is refused unread"
  ok "$(reason /zeros.txt)" "binary file (NUL byte at byte 0)" "a 900 MB .txt of NULs is refused as binary from its head"
  ok "$(reason /zeros.pdf)" "not a PDF file (not the container its name says)" "a 900 MB .pdf of NULs is refused from its head"
  ok "$(reason /zeros.docx)" "not a docx file (no zip signature)" "a 900 MB .docx of NULs is refused from its head"
  ok "$(docs small.txt)" 1 "the small file beside them is ingested"
  ok $(( rss_mb < 100 )) 1 "peak memory stays small (${rss_mb} MB for 4.7 GB of files)"
  ;;
file_rewritten_in_place_while_read)
  # A 100 MB file whose middle a writer keeps rewriting in place, never changing its size:
  # the size checks alone cannot see it, the modification time does (docs/FORMATS.md says
  # what is guaranteed). Each try is a fresh KB; the clock tick that timestamps have means a
  # read that starts and ends inside one tick could miss a write, so up to 3 tries.
  $PY -c 'import sys; open(sys.argv[1], "w").write("a line that is rewritten in place\n" * 3000000)' "$T/same.txt"
  size_before=$(stat -c %s "$T/same.txt")
  $PY - "$T/same.txt" "$T/started" <<'EOF' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
middle = os.fstat(fd).st_size // 2 // 4096 * 4096
open(sys.argv[2], "w").close()
end, i = time.time() + 60, 0
while time.time() < end:
    os.pwrite(fd, (b"A" if i % 2 else b"B") * 4096, middle)   # same bytes count, same place
    i += 1
    time.sleep(0.0001)
EOF
  writer=$!
  while [ ! -e "$T/started" ]; do sleep 0.05; done
  got="not skipped"
  for try in 1 2 3; do
    rm -rf "$T/kb"
    $KB --kb "$T/kb" --json ingest --max-file-size 1G "$T/same.txt" >"$T/out" 2>"$T/err"
    rc=$?
    got=$(reason /same.txt)
    [ "$got" = "file changed while being read" ] && break
    echo "note: try $try: $got (exit $rc)"
  done
  kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
  ok "$(stat -c %s "$T/same.txt")" "$size_before" "the writer never changed the file's size"
  ok "$got" "file changed while being read" "a same-size rewrite in place during the read is caught and the file skipped"
  ok "$rc" 1 "the run that caught it exits 1 (skipped)"
  ok "$(docs same.txt)" 0 "no copy of the rewritten file is stored"
  ;;
*) echo "hostile_test.sh: unknown case '$CASE'"; exit 2;;
esac

echo "hostile_test $CASE: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
