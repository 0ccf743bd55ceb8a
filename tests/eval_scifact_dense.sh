#!/usr/bin/env bash
# eval_scifact_dense.sh — the dense path end to end on real data, without pretrained weights:
# a model whose embeddings are a bag of words by construction (scripts/gen_models.py,
# bag_of_words) embeds BEIR SciFact; vector search must be clearly better than chance and
# hybrid (default fusion) at least as good as BM25 alone on the same KB.
# Usage: eval_scifact_dense.sh KB_BINARY SHARED_DATA GEN_MODELS_PY. Skips (77) without the data
# or numpy.
set -u
KB=$1; DATA=$2/retrieval/scifact; VOCAB=$2/tokenizer/bert-base-uncased/vocab.txt; GEN=$3
if [ ! -f "$DATA/queries.jsonl" ] || [ ! -f "$VOCAB" ]; then echo "skipped: $2 not present"; exit 77; fi
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { echo "skipped: /usr/bin/python3 lacks numpy"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export HOME=$work/home XDG_CACHE_HOME=$work/cache XDG_DATA_HOME=$work/data HF_HOME=$work/hf
/usr/bin/python3 "$GEN" --vocab "$VOCAB" --only bag_of_words -- "$work/models" >/dev/null || exit 1
score() {  # score MODE [OPTIONS...] -> nDCG@10 on the test split, reusing the KB in $work/kb
  "$KB" -q --json eval --beir "$DATA" --split test --model "$work/models/bag_of_words" \
    --keep "$work/kb" --mode "$@" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ndcg_at_10"])'
}
vector=$(score vector) || exit 1
bm25=$(score bm25) || exit 1
hybrid=$(score hybrid) || exit 1
echo "SciFact test nDCG@10: vector $vector, bm25 $bm25, hybrid $hybrid"
/usr/bin/python3 - "$vector" "$bm25" "$hybrid" <<'PY'
import sys
vector, bm25, hybrid = map(float, sys.argv[1:])
ok = True
if vector < 0.30:
    print(f"FAIL: vector nDCG@10 {vector:.4f} is not clearly above zero (want >= 0.30)"); ok = False
if hybrid < bm25:
    print(f"FAIL: hybrid nDCG@10 {hybrid:.4f} is below BM25 alone ({bm25:.4f})"); ok = False
sys.exit(0 if ok else 1)
PY
