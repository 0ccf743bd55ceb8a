#!/usr/bin/env bash
# Installs the Debian 12 packages kb builds and tests with, then the npm clients the tests
# drive (tests/npm, pinned by its package-lock.json). Idempotent; needs root (or sudo).
# Each package and why it is there: docs/ARCHITECTURE.md, "Dependencies".
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libsqlite3-dev      # the store: documents, chunks, FTS5 (BM25)
  libpcre2-dev        # sentence splitting in the chunker
  libutf8proc-dev     # Unicode categories: UTF-8 validation, tokens, query words
  nettle-dev          # SHA-256 content hashes for change detection
  libcjson-dev        # JSON output and BEIR datasets
  zlib1g-dev          # gzip'ed BEIR corpora
  libfaiss-dev libopenblas-dev  # vectors (FAISS through its C API; BLAS under it)
  libcurl4-openssl-dev  # HTTP: model downloads (kb model pull), LLM backends
  libxml2-dev         # ingest: HTML, XHTML, XML, and the XML inside DOCX/ODT/EPUB
  libzip-dev          # ingest: DOCX/ODT/EPUB read from zip in memory, with size caps
  poppler-utils       # ingest: pdftotext, run per PDF with a timeout (GPL kept out of our process)
  libmicrohttpd-dev   # kb serve: the HTTP API (threads, limits, timeouts)
  libcmocka-dev       # unit tests
  wrk                 # bench/serve.sh: HTTP load against kb serve
  chromium            # the web page's test: headless Chromium renders and screenshots it
  sqlite3             # tests inspect and damage KBs with the sqlite3 shell
  python3             # tests read the JSON output
  openssl             # kb ask's TLS test makes a self-signed certificate at test time
  python3-numpy       # the independent float64 reference encoder (scripts/gen_models.py)
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm for the official OpenAI clients' tests: Debian's only where the machine has none
# (a newer Node.js of its own is kept)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm ci from the lockfile, here once rather than in the timed tests (a few seconds; nothing
# when that lockfile is installed already)
rc=0; bash "$(dirname "$0")/../tests/npm/install.sh" || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || exit "$rc"   # 77: no node here; those tests then skip
