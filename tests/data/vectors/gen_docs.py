#!/usr/bin/python3
"""gen_docs.py — deterministic Markdown documents for the vector tests, written with words from a
model's vocabulary (so each word is one WordPiece token, not [UNK]).

Usage: gen_docs.py VOCAB OUT_DIR N_DOCS SEED [--sections S] [--words W] [--prefix NAME]
Each document: '# <3 words>' then S sections '## <2 words>' with a paragraph of about W words.
Words follow a Zipf-like law, so rare words make selective keyword queries.
Also: gen_docs.py VOCAB --queries N SEED  prints N queries of 1-3 words, one a line.
"""
import random
import sys


def words_of(vocab_path):
    out = []
    with open(vocab_path, encoding="utf-8") as f:
        for line in f:
            w = line.rstrip("\n")
            if len(w) >= 4 and w.isascii() and w.isalpha() and w.islower():
                out.append(w)
    return out


def pick(rng, words, n):
    # Zipf-like: index ~ floor(len * u^2) favours the head of the list.
    return [words[int(len(words) * rng.random() ** 2)] for _ in range(n)]


def main(argv):
    words = words_of(argv[1])
    if argv[2] == "--queries":
        n, rng = int(argv[3]), random.Random(int(argv[4]))
        for _ in range(n):
            print(" ".join(pick(rng, words, rng.randint(1, 3))))
        return 0
    out, n_docs, seed = argv[2], int(argv[3]), int(argv[4])
    opts = dict(zip(argv[5::2], argv[6::2]))
    sections, n_words = int(opts.get("--sections", 2)), int(opts.get("--words", 20))
    prefix = opts.get("--prefix", "doc")
    rng = random.Random(seed)
    for i in range(n_docs):
        parts = ["# " + " ".join(pick(rng, words, 3)).capitalize(), ""]
        for s in range(sections):
            parts += ["## " + " ".join(pick(rng, words, 2)).capitalize(), ""]
            body = pick(rng, words, max(3, n_words + rng.randint(-n_words // 4, n_words // 4)))
            parts += [" ".join(body).capitalize() + ".", ""]
        with open(f"{out}/{prefix}{i:04d}.md", "w", encoding="utf-8") as f:
            f.write("\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
