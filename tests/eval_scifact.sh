#!/usr/bin/env bash
# eval_scifact.sh — BM25 quality on BEIR SciFact test must reach BEIR's published 0.665.
# Skipped (exit 77) when ../shared/data is absent, as in a user's checkout.
set -u
KB=$1; DATA=$2/retrieval/scifact
if [ ! -f "$DATA/queries.jsonl" ]; then echo "skipped: $DATA not present"; exit 77; fi
ndcg=$($KB -q --json eval --beir "$DATA" --split test --model none --mode bm25 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ndcg_at_10"])')
echo "SciFact test nDCG@10 = $ndcg (target >= 0.665)"
python3 -c "import sys; sys.exit(0 if $ndcg >= 0.665 else 1)"
