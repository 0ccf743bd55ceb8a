#!/usr/bin/python3
"""serve_queries.py — short search queries for bench/serve.sh: 1-4 consecutive content words
(lowercase letters/digits/hyphens, stopwords dropped) cut from the SciFact claims, so every
query uses the corpus's own vocabulary. Deterministic (fixed seed); one query a line.
Usage: serve_queries.py QUERIES.jsonl N > queries.txt"""
import json
import random
import re
import sys

STOP = set("""a an and are as at be been being but by can could did do does for from had has
have how in into is it its may might more most no not of on or our shall should so such than
that the their them then there these they this those to was we were what when where which
while who whom why will with would after before between both during each few other over same
some under until very all also any only show shows shown one two""".split())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: serve_queries.py QUERIES.jsonl N")
    rng = random.Random(20261128)
    claims = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
    words = [[w for w in re.findall(r"[a-z0-9][a-z0-9-]*", c.lower())
              if w not in STOP and len(w) > 2] for c in claims]
    words = [w for w in words if w]
    out = []
    while len(out) < int(sys.argv[2]):
        w = rng.choice(words)
        n = min(rng.randint(1, 4), len(w))
        start = rng.randint(0, len(w) - n)
        out.append(" ".join(w[start:start + n]))
    sys.stdout.write("".join(q + "\n" for q in out))


if __name__ == "__main__":
    main()
