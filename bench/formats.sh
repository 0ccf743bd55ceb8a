#!/usr/bin/env bash
# formats.sh — parse + chunk throughput per document format (MB/s of input), no embedding.
# Builds a mixed folder once under build/bench-formats-data: the SciFact abstracts of
# ../shared/data/retrieval written out as .txt, .md, .html, .csv and .eml files (about 8 MB of
# each kind, 50 abstracts a file) next to a copy of ../shared/data/documents (PDF, DOCX, EPUB,
# ODT, XML, ...); then runs bench/formats_bench.c over it: medians of RUNS runs.
# Usage: bench/formats.sh [RUNS]      Goal: >= 5 MB/s parse + chunk for text, Markdown, HTML.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shared=${KB_SHARED_DATA:-../shared/data}
data=build/bench-formats-data
corpus=$shared/retrieval/scifact/corpus.jsonl.gz
[ -f "$corpus" ] || { echo "formats.sh: $corpus not found (shared data absent)"; exit 77; }
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DKB_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench --target formats_bench -j2 >/dev/null
if [ ! -f "$data/.done" ]; then
  rm -rf "$data"; mkdir -p "$data/scifact"
  cp -r "$shared/documents" "$data/documents"
  /usr/bin/python3 - "$corpus" "$data/scifact" <<'EOF'
import gzip, html, json, sys
corpus, out = sys.argv[1:3]
docs = [json.loads(line) for line in gzip.open(corpus, "rt", encoding="utf-8")]
def paras(d):
    text = d["text"]
    sents = [s.strip() + "." for s in text.split(". ") if s.strip()]
    return [" ".join(sents[i:i + 3]) for i in range(0, len(sents), 3)] or [text]
for n in range(0, len(docs), 50):
    part = docs[n:n + 50]
    name = f"{out}/abstracts-{n // 50:03d}"
    with open(name + ".txt", "w") as f:
        for d in part:
            f.write(d["title"] + "\n\n" + "\n\n".join(paras(d)) + "\n\n")
    with open(name + ".md", "w") as f:
        f.write(f"# SciFact abstracts {n}-{n + len(part) - 1}\n\n")
        for d in part:
            f.write(f"## {d['title']}\n\n" + "\n\n".join(paras(d)) + "\n\n")
            f.write(f"| field | value |\n|---|---|\n| id | {d['_id']} |\n| words | {len(d['text'].split())} |\n\n")
    with open(name + ".html", "w") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>SciFact {n}</title>"
                "<style>p{margin:0}</style><script>var x = 1;</script></head><body>"
                "<nav><a href='/'>Home</a></nav><main>")
        for d in part:
            f.write(f"<article><h2>{html.escape(d['title'])}</h2>")
            f.write("".join(f"<p>{html.escape(p)}</p>" for p in paras(d)))
            f.write(f"<table><tr><th>id</th><td>{d['_id']}</td></tr></table></article>")
        f.write("</main><footer>footer</footer></body></html>\n")
    with open(name + ".csv", "w") as f:
        f.write("id,title,abstract\n")
        for d in part:
            q = lambda s: '"' + s.replace('"', '""') + '"'
            f.write(f"{d['_id']},{q(d['title'])},{q(d['text'])}\n")
    with open(name + ".eml", "w") as f:
        f.write(f"From: SciFact <scifact@example.org>\nSubject: SciFact abstracts {n}\n"
                "Content-Type: text/plain; charset=utf-8\n\n")
        for d in part:
            f.write(d["title"] + "\n\n" + "\n\n".join(paras(d)) + "\n\n")
EOF
  touch "$data/.done"
fi
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# kb_doc_read + kb_chunk_text (256/32 word tokens) per file, medians of $runs runs; MB = input"
build/bench/formats_bench "$runs" "$data/scifact" "$data/documents"
