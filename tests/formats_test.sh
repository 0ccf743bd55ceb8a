#!/usr/bin/env bash
# formats_test.sh — kb ingest over every real document in ../shared/data/documents (each file's
# outcome and a hand-checked phrase from tests/data/formats/documents.tsv; EPUB chapters, DOCX
# and HTML heading paths, PDF pages), then hostile inputs: billion laughs, XXE to a canary file,
# a zip bomb and the zip caps, zip-slip names, binary named .txt, control bytes, encodings
# (UTF-16BE, UTF-32BE, cp1252, windows-1251 and iso-8859-7 pages), HTML chrome and structure,
# RST/Org/ODT heading paths, RFC 2047 email headers; and what the walk skips (a device, a
# FIFO, symlink loops) with its reason.
# Usage: formats_test.sh PATH_TO_KB TABLE SHARED_DATA
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KB=$1 TABLE=$2 SHARED=$3
PY=/usr/bin/python3
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

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
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/unstructured/README.rst' AND c.heading_path = 'Example Docs › XBRL 10-K' AND c.text LIKE '%inline XBRL format%'")
  ok "$n" 1 "RST: an underlined subsection gives the heading path (README.rst)"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/unstructured/README.org' AND c.heading_path = 'Example Docs › XBRL 10-K' AND c.text LIKE '%inline XBRL format%'")
  ok "$n" 1 "Org: a '**' heading gives the heading path (README.org)"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/unstructured/simple.odt' AND c.heading_path = 'These are a few of my favorite things:' AND c.text LIKE '%This is my first thought%'")
  ok "$n" 1 "ODT: a text:h outline level gives the heading path (simple.odt)"
  n=$(sqlite3 "$T/docs/kb.sqlite" "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/unstructured/stanley-cups.%sv' AND d.title = 'Stanley Cups' AND c.location = 'row 1 – row 5' AND c.text LIKE '%Team: Flyers' || char(10) || 'Location: PHI%'")
  ok "$n" 2 "CSV/TSV: a title row above the header names the table; the next row labels the values"
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
# Control bytes: 20 of 100 bytes are 0x01 (more than 10%), no NUL.
$PY -c 'import sys; open(sys.argv[1], "wb").write(b"abcd\x01" * 20)' "$H/control.txt"
$PY -c 'import sys; open(sys.argv[1], "wb").write(b"\0\0\xfe\xff" + "UTF-32BE words: \u00e9t\u00e9 \u20ac\n".encode("utf-32-be"))' "$H/utf32be.txt"
# A web page in windows-1251: page chrome and hidden parts dropped, the article's own header
# kept, lists, table rows and <pre> kept; and a Greek page declaring iso-8859-7.
$PY - "$H" <<'EOF'
import sys
h = sys.argv[1]
page = """<!DOCTYPE html>
<html><head><meta charset="windows-1251"><title>Заголовок страницы</title>
<style>.x { color: red }</style></head>
<body>
<header><div>SITE-HEADER-CHROME</div><nav>HEADER-NAV-CHROME</nav></header>
<nav>TOP-NAV-CHROME</nav>
<div role="banner">BANNER-ROLE-CHROME</div>
<main>
<article>
<header><h1>Статья о погоде</h1><p>BYLINE-KEPT Иван Петров</p></header>
<p>Погода сегодня хорошая.</p>
<div hidden>HIDDEN-ATTR-CHROME</div>
<div aria-hidden="true">ARIA-HIDDEN-CHROME</div>
<p style="DISPLAY: None">DISPLAY-NONE-CHROME</p>
<h2>Список</h2>
<ul><li>первый пункт</li><li>second item</li></ul>
<table><tr><th>Город</th><th>Температура</th></tr><tr><td>Москва</td><td>-5</td></tr></table>
<pre>  indented   code
    keeps  its spaces</pre>
<footer>ARTICLE-FOOTER-KEPT</footer>
</article>
</main>
<footer><p>SITE-FOOTER-CHROME</p></footer>
</body></html>
"""
open(f"{h}/page-cp1251.html", "wb").write(page.encode("windows-1251"))
greek = """<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-7">
<title>Ελληνικά</title></head><body><h1>Καλημέρα κόσμε</h1><p>Η γλώσσα μου έδωσαν ελληνική.</p></body></html>
"""
open(f"{h}/page-greek.html", "wb").write(greek.encode("iso-8859-7"))
EOF
# RST, Org and ODT with three heading levels (heading paths asserted below).
cat > "$H/levels.rst" <<'EOF'
==========
 Handbook
==========

Opening words of the handbook.

Getting started
===============

Read this first.

Installing
----------

RST-INSTALL-TEXT explains the installation.
EOF
cat > "$H/levels.org" <<'EOF'
#+TITLE: Org notes
* Projects
Projects overview.
** Garden
*** Tomatoes
ORG-TOMATO-TEXT grows in summer.
# ORG-COMMENT-TEXT is a comment and never text
EOF
$PY - "$H" <<'EOF'
import random, sys, zipfile
h = sys.argv[1]
ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')
content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns}><office:body><office:text>'
           '<text:h text:outline-level="1">Annual report</text:h><text:p>Opening words.</text:p>'
           '<text:h text:outline-level="2">Finances</text:h><text:p>ODT-FINANCE-TEXT is in the black.</text:p>'
           '<text:h text:outline-level="3">Costs</text:h><text:p>ODT-COSTS-TEXT fell.</text:p>'
           '</office:text></office:body></office:document-content>')
with zipfile.ZipFile(f"{h}/levels.odt", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
    z.writestr("content.xml", content)
# Zip caps, each tripped by a small zip: more than 10,000 entries; an entry compressed more
# than 200:1; entries each under the 64 MiB entry cap and the ratio cap that together pass
# the 256 MiB total (one 60 MiB chapter, compressed 32:1, that the spine lists five times).
with zipfile.ZipFile(f"{h}/many-entries.docx", "w") as z:
    for i in range(10001):
        z.writestr(f"e/{i}", "")
with zipfile.ZipFile(f"{h}/ratio.docx", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("word/document.xml", "<w:document>" + " " * (8 << 20) + "</w:document>")
random.seed(5)
block = b"".join(bytes([random.choice(b"abcdefghijklmnopqrstuvwxyz")]) + b" " * 63 for _ in range(1 << 14))
with zipfile.ZipFile(f"{h}/total.epub", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
    z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="c.opf"/></rootfiles></container>')
    z.writestr("c.opf", '<package><metadata><title>Big</title></metadata><manifest><item id="a" href="ch.html"/>'
               '</manifest><spine>' + '<itemref idref="a"/>' * 5 + '</spine></package>')
    z.writestr("ch.html", b"<html><body><p>" + block * 60 + b"</p></body></html>")
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

ok "$(reason control.txt)" "binary file (20% control bytes)" "a text file of over 10% control bytes is skipped as binary"
chunks utf32be.txt | grep -qF "UTF-32BE words: été €"; ok $? 0 "UTF-32BE with a BOM is decoded"
ok "$(reason many-entries.docx)" "zip has 10001 entries (limit 10000)" "a zip of over 10,000 entries is refused unread"
case "$(reason ratio.docx)" in "zip bomb: word/document.xml compressed "*":1 (limit 200:1)") ok 1 1 x;;
  *) ok "$(reason ratio.docx)" "zip bomb: word/document.xml compressed N:1 (limit 200:1)" "an entry compressed over 200:1 is refused";; esac
case "$(reason total.epub)" in "zip bomb: ch.html brings the entries read to 3145732"??" bytes (limit 268435456)") ok 1 1 x;;
  *) ok "$(reason total.epub)" "zip bomb: ch.html brings the entries read to 3145732NN bytes (limit 268435456)" \
        "entries under the per-entry caps are refused once together they pass 256 MiB";; esac
# The web pages: page chrome and hidden parts gone, the article's header kept, charsets decoded.
q() { sqlite3 "$T/hk/kb.sqlite" "$1"; }
page="d.path LIKE '%/page-cp1251.html'"
ok "$(q "SELECT title FROM documents d WHERE $page")" "Заголовок страницы" "HTML: <title> (windows-1251 meta charset) is the title"
for chrome in SITE-HEADER HEADER-NAV TOP-NAV BANNER-ROLE HIDDEN-ATTR ARIA-HIDDEN DISPLAY-NONE SITE-FOOTER; do
  ok "$(chunks page-cp1251.html | grep -c "$chrome-CHROME")" 0 "HTML: $chrome content is dropped"
done
ok "$(q "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE $page AND c.heading_path = 'Статья о погоде' AND c.text LIKE '%# Статья о погоде%BYLINE-KEPT Иван Петров%Погода сегодня хорошая.%'")" 1 \
   "HTML: an article's <header> is kept: its h1 is the heading, its byline text"
ok "$(q "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE $page AND c.heading_path = 'Статья о погоде › Список' AND c.text LIKE '%- первый пункт' || char(10) || '- second item%' AND c.text LIKE '%Город | Температура' || char(10) || 'Москва | -5%' AND c.text LIKE '%ARTICLE-FOOTER-KEPT%'")" 1 \
   "HTML: list items, table rows as 'cell | cell' and the article's footer are kept under their heading"
$PY - "$T/hk/kb.sqlite" <<'EOF'
import sqlite3, sys
texts = [t for (t,) in sqlite3.connect(sys.argv[1]).execute(
    "SELECT c.text FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/page-cp1251.html'")]
sys.exit(0 if any("```\n  indented   code\n    keeps  its spaces\n```" in t for t in texts) else 1)
EOF
ok $? 0 "HTML: <pre> is kept verbatim (spaces and line breaks) in a code fence"
ok "$(q "SELECT title FROM documents WHERE path LIKE '%/page-greek.html'")" "Ελληνικά" "HTML: an iso-8859-7 http-equiv charset decodes the title"
chunks page-greek.html | grep -qF "Η γλώσσα μου έδωσαν ελληνική."; ok $? 0 "HTML: an iso-8859-7 page's text is decoded"
# Heading paths of RST (overlined title, two underline styles), Org (three levels) and ODT.
ok "$(q "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/levels.rst' AND c.heading_path = 'Handbook › Getting started › Installing' AND c.text LIKE '%RST-INSTALL-TEXT%'")" 1 \
   "RST: overlined title, '=' and '-' sections nest into the heading path"
ok "$(q "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/levels.org' AND c.heading_path = 'Projects › Garden › Tomatoes' AND c.text LIKE '%ORG-TOMATO-TEXT%'")" 1 \
   "Org: '*', '**', '***' headings nest into the heading path"
ok "$(chunks levels.org | grep -c ORG-COMMENT-TEXT)" 0 "Org: '# ' comment lines are not text"
ok "$(q "SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.doc_id WHERE d.path LIKE '%/levels.odt' AND c.heading_path = 'Annual report › Finances › Costs' AND c.text LIKE '%ODT-COSTS-TEXT%'")" 1 \
   "ODT: text:h outline levels nest into the heading path"

# ---- what the walk skips, with its reason (--follow-symlinks) ----------------------------
S="$T/s"; mkdir -p "$S/sub"
printf 'a plain note\n' > "$S/plain.txt"
ln -s /dev/null "$S/null-device.txt"
ln -s .. "$S/sub/up"
ln -s self-loop.txt "$S/self-loop.txt"
mkfifo "$S/pipe.txt"
mknod "$S/char-device.txt" c 1 3 2>/dev/null ||
  echo "SKIP part: mknod needs CAP_MKNOD (a device is tested through a symlink to /dev/null only)"
# (Reasons read from the warnings: --json gives a skipped path resolved through its links.)
$KB --kb "$T/sk" ingest --follow-symlinks "$S" >"$T/sout" 2>"$T/serr"
ok $? 1 "a folder with a device, a FIFO and symlink loops ingests the rest and exits 1"
sreason() { $PY -c 'import sys; p = "kb: warning: skipped " + sys.argv[2] + ": "; print(next((l[len(p):].rstrip("\n") for l in open(sys.argv[1]) if l.startswith(p)), "not skipped"))' "$T/serr" "$S/$1"; }
ok "$(sreason null-device.txt)" "a device, not a regular file" "a symlink to /dev/null is skipped as a device, never opened"
if [ -c "$S/char-device.txt" ]; then
  ok "$(sreason char-device.txt)" "a device, not a regular file" "a character device is skipped as a device"
fi
ok "$(sreason pipe.txt)" "a FIFO, not a regular file" "a FIFO is skipped, never opened (the walk does not block)"
ok "$(sreason sub/up)" "symbolic link loop" "a symlink to an ancestor folder is skipped as a loop"
ok "$(sreason self-loop.txt)" "symbolic link loop" "a symlink to itself is skipped as a loop"
ok "$(sqlite3 "$T/sk/kb.sqlite" "SELECT count(*) FROM documents WHERE path LIKE '%/plain.txt'")" 1 "the regular file beside them is ingested"

echo "formats_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
