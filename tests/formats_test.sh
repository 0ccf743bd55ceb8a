#!/usr/bin/env bash
# formats_test.sh — kb ingest over every real document in ../shared/data/documents (each file's
# outcome and a hand-checked phrase from tests/data/formats/documents.tsv; EPUB chapters, DOCX
# and HTML heading paths, PDF pages), then hostile inputs: billion laughs, XXE to a canary file,
# a zip bomb, zip-slip names, binary named .txt, encodings, RFC 2047 email headers.
# Usage: formats_test.sh PATH_TO_KB TABLE SHARED_DATA
set -u
KB=$1 TABLE=$2 SHARED=$3
PY=/usr/bin/python3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { if [ "$1" = "$2" ]; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $3 (got '$1', want '$2')"; fi; }

# ---- the shared documents ----------------------------------------------------------------
DOCS="$SHARED/documents"
if [ -d "$DOCS" ]; then
  $KB --kb "$T/docs" -v -v ingest "$DOCS" >"$T/out" 2>"$T/err"
  ok $? 1 "ingesting the documents folder finishes, with some files skipped (exit 1)"
  $PY - "$DOCS" "$TABLE" "$T/err" "$T/docs/kb.sqlite" <<'EOF'
import os, re, sqlite3, sys
docs, table, errlog, db = sys.argv[1:5]
rows = {}
for line in open(table, encoding="utf-8"):
    if line.startswith("#") or not line.strip():
        continue
    f, outcome, expect = line.rstrip("\n").split("\t")
    rows[f] = (outcome, expect)
events = {}
for line in open(errlog, encoding="utf-8", errors="replace"):
    m = re.match(r"kb: warning: skipped (.*?): (.*)$", line.rstrip("\n"))
    if m:
        events[os.path.relpath(m.group(1), docs)] = ("skipped", m.group(2)); continue
    m = re.match(r"(added|ignored)\s+(.*?)( \(not a format kb reads\))?$", line.rstrip("\n"))
    if m:
        events[os.path.relpath(m.group(2), docs)] = (m.group(1).replace("added", "ingested"), "")
con = sqlite3.connect(db)
fold = lambda s: re.sub(r"\s+", " ", s)
bad = 0
files = sorted(os.path.relpath(os.path.join(d, f), docs) for d, _, fs in os.walk(docs) for f in fs
               if not f.startswith("."))
for f in files:
    if f not in rows:
        print(f"FAIL: {f} has no row in documents.tsv"); bad += 1; continue
    outcome, expect = rows[f]
    got, reason = events.get(f, ("nothing", ""))
    if got != outcome:
        print(f"FAIL: {f}: {got} ({reason}), want {outcome}"); bad += 1; continue
    if outcome == "skipped" and expect not in reason:
        print(f"FAIL: {f}: skip reason '{reason}' lacks '{expect}'"); bad += 1
    if outcome == "ingested":
        texts = [fold(t) for (t,) in con.execute(
            "SELECT c.text FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path=?",
            (os.path.normpath(os.path.abspath(os.path.join(docs, f))),))]
        if not any(fold(expect) in t for t in texts):
            print(f"FAIL: {f}: no chunk contains '{expect}' ({len(texts)} chunks)"); bad += 1
for f in rows:
    if f not in files:
        print(f"FAIL: documents.tsv row for {f}, which is not in the folder"); bad += 1
print(f"{len(files)} documents checked, {bad} wrong")
sys.exit(1 if bad else 0)
EOF
  ok $? 0 "every shared document has a row and its expected outcome and phrase"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%state_of_the_union_2024.pdf' AND c.page >= 20 AND c.location LIKE 'page%'")
  [ "$n" -gt 0 ]; ok $? 0 "PDF chunks keep their page numbers (pages 20+ of a 26-page PDF)"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%winter-sports.epub' AND c.location LIKE 'chapter 4: THIRD-CLASS TEST%'")
  [ "$n" -gt 0 ]; ok $? 0 "EPUB chunks name their chapter in spine order with its title"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.format = 'epub' AND (c.location NOT GLOB 'chapter [0-9]*' OR c.location GLOB '*–*' OR c.location GLOB '*chapter [0-9]*chapter [0-9]*')")
  n_epub=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.format = 'epub'")
  [ "$n_epub" -gt 100 ]; ok $? 0 "the two EPUBs give their chunks (over 100)"
  ok "$n" 0 "every EPUB chunk's location names exactly one chapter"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(DISTINCT c.location) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%winter-sports.epub'")
  [ "$n" -ge 9 ]; ok $? 0 "EPUB chunks spread over the book's chapters (9 or more)"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%winter-sports.epub' AND c.location = 'chapter 3: CHAPTER II RINKS AND SKATERS' AND c.heading_path LIKE '%CHAPTER I THE SUN-SEEKER%'")
  ok "$n" 0 "an EPUB chapter never carries the previous chapter's heading path"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/readers/files/file.docx' AND c.heading_path = 'Mission, Vision, Values & Culture › Mission' AND c.text LIKE '%Meet Zylon - an AI collaborator%'")
  ok "$n" 1 "DOCX without heading styles: headings from larger and bold lines give the path"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/simple.docx' AND c.heading_path = 'These are a few of my favorite things:'")
  [ "$n" -gt 0 ]; ok $? 0 "DOCX heading styles (Heading1 by its style name) give the path"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/fake-html.html' AND c.heading_path = 'My First Heading › My Second Heading › A Third Heading'")
  [ "$n" -gt 0 ]; ok $? 0 "HTML headings become the heading path"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%example-with-scripts.html' AND (c.text LIKE '%function(%' OR c.text LIKE '%{display:%')")
  ok "$n" 0 "HTML scripts and styles are dropped"
  $KB --kb "$T/docs" check >/dev/null 2>&1; ok $? 0 "kb check passes on the KB of all formats"
else
  echo "SKIP part: $DOCS not found (shared data absent)"
fi

# ---- hostile and edge cases --------------------------------------------------------------
H="$T/h"; mkdir -p "$H"
echo "CANARY-SECRET-$$" > "$T/canary.txt"
cat > "$H/laughs.xml" <<'EOF'
<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz><note>laughing matter</note><lolz>&lol9;</lolz></lolz>
EOF
cat > "$H/xxe.xml" <<EOF
<?xml version="1.0"?>
<!DOCTYPE doc [ <!ENTITY xxe SYSTEM "file://$T/canary.txt"> ]>
<doc><para>external entity below</para><para>&xxe;</para></doc>
EOF
printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR' > "$H/picture.txt"
printf 'text\0with a NUL\n' > "$H/nul.txt"
printf '\xfe\xff\0U\0T\0F\0-\0001\0006\0B\0E\0 \0w\0o\0r\0d\0s\0\n' > "$H/utf16be.txt"
printf 'caf\xe9 cr\xe8me br\xfbl\xe9e \x80 5\n' > "$H/cp1252.txt"
# RFC 2047 encoded-words: B and Q, UTF-8 and legacy charsets, split across a folded line.
cat > "$H/encoded.eml" <<'EOF'
From: =?ISO-8859-1?Q?Andr=E9_Dupont?= <andre@example.org>
To: =?utf-8?q?J=C3=B6rg?= <jorg@example.org>
Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= =?UTF-8?Q?_und_M=C3=BCnchen?=
 =?windows-1252?Q?=80_5?= plain =?bogus-charset?Q?left_as_is?=
Content-Type: text/plain; charset=utf-8

Body of the encoded message.
EOF
$PY - "$H" <<'EOF'
import sys, zipfile
h = sys.argv[1]
# A zip bomb: 300 MB of zeros in one entry of an EPUB-shaped zip.
with zipfile.ZipFile(f"{h}/bomb.epub", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="c.opf"/></rootfiles></container>')
    with z.open("c.opf", "w", force_zip64=True) as f:
        block = b"\0" * (1 << 20)
        for _ in range(300):
            f.write(block)
# Zip slip: the spine points outside the book, and an entry is named ../../evil.html.
with zipfile.ZipFile(f"{h}/slip.epub", "w") as z:
    z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="OPS/c.opf"/></rootfiles></container>')
    z.writestr("OPS/c.opf", '<package><metadata><title>Slip</title></metadata><manifest>'
               '<item id="a" href="../../evil.html"/><item id="b" href="ch1.html"/></manifest>'
               '<spine><itemref idref="a"/><itemref idref="b"/></spine></package>')
    z.writestr("../../evil.html", "<p>EVIL-OUTSIDE-TEXT</p>")
    z.writestr("OPS/ch1.html", "<html><body><h1>Safe chapter</h1><p>inside the book</p></body></html>")
EOF
start=$(date +%s)
$KB --kb "$T/hk" -v --json ingest "$H" >"$T/hout" 2>"$T/herr"
ok $? 1 "hostile folder ingests with skips (exit 1), never crashes"
ok $(( $(date +%s) - start < 20 )) 1 "hostile folder (300 MB zip bomb) handled in under 20 s"
reason() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next((f["reason"] for f in d["skipped_files"] if f["path"].endswith("/"+sys.argv[2])), "not skipped"))' "$T/hout" "$1"; }
chunks() { sqlite3 "$T/hk/kb.sqlite" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/$1'"; }
case "$(reason bomb.epub)" in *"zip bomb"*) ok 1 1 x;; *) ok "$(reason bomb.epub)" "zip bomb..." "a zip bomb is refused with a reason";; esac
ok "$(reason picture.txt)" "binary file (PNG image, not text)" "a PNG named .txt is skipped as binary"
case "$(reason nul.txt)" in "binary file (NUL byte at byte 4)") ok 1 1 x;; *) ok "$(reason nul.txt)" "binary file (NUL...)" "a NUL-laden .txt is skipped as binary";; esac
{ chunks laughs.xml | grep -q "laughing matter" || reason laughs.xml | grep -q "entity"; }
ok $? 0 "billion laughs: fails safely (libxml2's entity limits) or is read unexpanded"
ok "$(chunks laughs.xml | grep -c lollollol)" 0 "billion laughs: entities are never expanded"
ok "$(grep -c CANARY "$T/hk/kb.sqlite" 2>/dev/null)" 0 "XXE: the canary file's content never enters the KB"
chunks xxe.xml | grep -q "external entity below"; ok $? 0 "XXE: the rest of the document is read"
ok "$(chunks slip.epub | grep -c EVIL-OUTSIDE-TEXT)" 0 "zip slip: an href leaving the book is ignored"
chunks slip.epub | grep -q "inside the book"; ok $? 0 "zip slip: the safe chapter is read"
chunks utf16be.txt | grep -q "UTF-16BE words"; ok $? 0 "UTF-16BE with a BOM is decoded"
chunks cp1252.txt | grep -q "café crème brûlée € 5"; ok $? 0 "legacy cp1252 text is decoded via iconv"
chunks encoded.eml | grep -qF "# Grüße aus Köln und München€ 5 plain =?bogus-charset?Q?left_as_is?="
ok $? 0 "email Subject: RFC 2047 B and Q words decoded, adjacent words joined, unknown charset kept"
chunks encoded.eml | grep -qF "From: André Dupont <andre@example.org>"; ok $? 0 "email From: an ISO-8859-1 Q word is decoded"
chunks encoded.eml | grep -qF "To: Jörg <jorg@example.org>"; ok $? 0 "email To: a lower-case utf-8 q word is decoded"
ok "$(sqlite3 "$T/hk/kb.sqlite" "SELECT title FROM documents WHERE path LIKE '%/encoded.eml'")" \
   "Grüße aus Köln und München€ 5 plain =?bogus-charset?Q?left_as_is?=" "email title is the decoded Subject"

echo "formats_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
