#!/usr/bin/python3
"""gen_models.py — random-weight BERT models in the Hugging Face layout, with reference embeddings.

Usage: /usr/bin/python3 scripts/gen_models.py OUT_DIR [--vocab bert-base-uncased/vocab.txt]
                                               [--only NAME ...]

Each variant becomes OUT_DIR/NAME/ holding exactly what a Hugging Face / sentence-transformers
model folder holds (config.json, model.safetensors, vocab.txt, tokenizer_config.json and, for
sentence-transformers variants, modules.json, 1_Pooling/config.json, 2_Normalize/,
sentence_bert_config.json, config_sentence_transformers.json), plus expected.json: token-id
sequences and the embeddings an independent float64 numpy implementation of BertModel gives
for them. The reference reads the weights back from the .safetensors file it wrote, so F16/BF16
rounding is the same as what kb sees. numpy only; fixed seeds.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# name, hidden, layers, heads, intermediate, max_positions, dtype, pooling (None = no
# sentence-transformers files), normalize, "bert." prefix, full vocabulary, weight std, extras
VARIANTS = [
    dict(name="tiny_f32_plain", hidden=32, layers=2, heads=4, inter=64, max_pos=64,
         dtype="F32", st=None, prefix=True, std=0.1),
    dict(name="tiny_f16_mean", hidden=32, layers=2, heads=4, inter=64, max_pos=64,
         dtype="F16", st="mean", normalize=True, prefix=False, std=0.1),
    dict(name="tiny_bf16_cls_raw", hidden=48, layers=3, heads=6, inter=96, max_pos=40,
         dtype="BF16", st="cls", normalize=False, prefix=False, std=0.1),
    dict(name="fullvocab_bf16_kbsettings", hidden=32, layers=2, heads=2, inter=64, max_pos=128,
         dtype="BF16", st=None, prefix=True, std=0.1, full_vocab=True,
         kb_model={"pooling": "mean", "max_tokens": 48, "query_prefix": "query: ",
                   "passage_prefix": "passage: "}),
    dict(name="minilm_f32_mean", hidden=384, layers=6, heads=12, inter=1536, max_pos=512,
         dtype="F32", st="mean", normalize=True, prefix=False, std=0.02, max_seq=256),
    dict(name="bge_f16_cls", hidden=384, layers=12, heads=12, inter=1536, max_pos=512,
         dtype="F16", st="cls", normalize=True, prefix=False, std=0.02,
         prompts={"query": "Represent this sentence for searching relevant passages: ",
                  "document": ""}),
    # Benchmark shapes (bench/encoder.sh; generated only when named with --only): the real
    # models' sizes and vocabulary, inputs truncated at 128 tokens.
    dict(name="bench_minilm_l6", hidden=384, layers=6, heads=12, inter=1536, max_pos=512,
         dtype="F32", st="mean", normalize=True, prefix=False, std=0.02, full_vocab=True,
         bench=True, kb_model={"max_tokens": 128}),
    dict(name="bench_bge_small", hidden=384, layers=12, heads=12, inter=1536, max_pos=512,
         dtype="F32", st="cls", normalize=True, prefix=False, std=0.02, full_vocab=True,
         bench=True, kb_model={"max_tokens": 128},
         prompts={"query": "Represent this sentence for searching relevant passages: ",
                  "document": ""}),
    # Fast to ingest, real dimension: builds large KBs for the search-latency benchmark.
    dict(name="bench_fast384", hidden=384, layers=1, heads=12, inter=384, max_pos=512,
         dtype="F32", st="mean", normalize=True, prefix=False, std=0.02, full_vocab=True,
         bench=True, bag_of_words=True, kb_model={"max_tokens": 256}),
    # Meaningful by construction (make_bag_of_words): end-to-end retrieval quality tests.
    dict(name="bag_of_words", hidden=256, layers=1, heads=4, inter=64, max_pos=512,
         dtype="F32", st="mean", normalize=True, prefix=False, std=0.02, full_vocab=True,
         bench=True, bag_of_words=True, kb_model={"max_tokens": 256}),
]

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def load_vocab(path, full):
    """The first 4000 entries of bert-base-uncased (all of it for full variants), or synthetic."""
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            words = f.read().split("\n")
        if words and words[-1] == "":
            words.pop()
        return words if full else words[:4000]
    words = ["[PAD]"] + ["[unused%d]" % i for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                 "[MASK]"]
    words += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    words += ["##" + chr(c) for c in range(97, 123)]
    words += ["the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "query",
              "passage", "hello", "world", "model", "search", "document", "represent", "this",
              "sentence", "searching", "relevant", "passages"]
    target = 30522 if full else 2000
    words += ["[filler%d]" % i for i in range(target - len(words))]
    return words


def bf16_round(a32):
    """float32 -> bfloat16 bits, round to nearest even (as torch does)."""
    bits = a32.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def encode_tensor(a, dtype):
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    return bf16_round(a).astype("<u2").tobytes()


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, bytes). Layout as the safetensors library writes it:
    sorted by dtype size (largest first) then name, header padded with spaces to 8 bytes."""
    order = sorted(tensors, key=lambda n: (-DTYPE_SIZE.get(tensors[n][0], 8), n))
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in order:
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(tensors[name][2])


def read_safetensors(path):
    """An independent reader: name -> float64 array."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base, out = 8 + n, {}
    for name, desc in header.items():
        if name == "__metadata__":
            continue
        b, e = desc["data_offsets"]
        raw = blob[base + b:base + e]
        if desc["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4")
        elif desc["dtype"] == "F16":
            a = np.frombuffer(raw, "<f2")
        elif desc["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            continue
        out[name] = a.astype(np.float64).reshape(desc["shape"])
    return out


def make_weights(v, vocab_size, rng, vocab=None):
    """BERT-init-like random weights (normal, std), LayerNorm gamma near 1, beta near 0."""
    h, i, std = v["hidden"], v["inter"], v["std"]
    w = {}
    normal = lambda *shape: rng.normal(0.0, std, size=shape).astype(np.float32)
    gamma = lambda n: (1.0 + rng.normal(0.0, 0.1, size=n)).astype(np.float32)
    beta = lambda n: rng.normal(0.0, 0.05, size=n).astype(np.float32)
    w["embeddings.word_embeddings.weight"] = normal(vocab_size, h)
    w["embeddings.position_embeddings.weight"] = normal(v["max_pos"], h)
    w["embeddings.token_type_embeddings.weight"] = normal(2, h)
    w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"] = gamma(h), beta(h)
    for l in range(v["layers"]):
        p = "encoder.layer.%d." % l
        for m in ("query", "key", "value"):
            w[p + "attention.self.%s.weight" % m] = normal(h, h)
            w[p + "attention.self.%s.bias" % m] = beta(h)
        w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"] = \
            normal(h, h), beta(h)
        w[p + "attention.output.LayerNorm.weight"] = gamma(h)
        w[p + "attention.output.LayerNorm.bias"] = beta(h)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = \
            normal(i, h), beta(i)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = normal(h, i), beta(h)
        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"] = gamma(h), beta(h)
    w["pooler.dense.weight"], w["pooler.dense.bias"] = normal(h, h), beta(h)
    if v.get("bag_of_words"):
        make_bag_of_words(w, v, vocab)
    return w


# English stopwords (Lucene's list) and BERT's specials: tokens a bag of words should ignore.
BOW_IGNORED = set("""a an and are as at be but by for if in into is it no not of on or such that
the their then there these they this to was will with [CLS] [SEP] [PAD] [UNK] [MASK]""".split())


def make_bag_of_words(w, v, vocab):
    """A model whose embeddings mean something by construction, for end-to-end retrieval tests
    without pretrained weights: every layer is exactly the identity (its output projections are
    zero, so each residual + LayerNorm returns its input), position and type embeddings are
    zero, and LayerNorm has gamma 1, beta 0. The pooled vector is then the mean of the tokens'
    normalised random word vectors: a random projection of the text's bag of word pieces, with
    stopwords, punctuation and specials (zero rows, which LayerNorm keeps at zero) left out."""
    h = v["hidden"]
    zero = lambda *shape: np.zeros(shape, dtype=np.float32)
    one = lambda n: np.ones(n, dtype=np.float32)
    emb = w["embeddings.word_embeddings.weight"]
    for i, tok in enumerate(vocab):
        if tok in BOW_IGNORED or (len(tok) == 1 and not tok.isalnum()):
            emb[i] = 0.0
    w["embeddings.position_embeddings.weight"] = zero(v["max_pos"], h)
    w["embeddings.token_type_embeddings.weight"] = zero(2, h)
    w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"] = one(h), zero(h)
    for l in range(v["layers"]):
        p = "encoder.layer.%d." % l
        w[p + "attention.output.dense.weight"] = zero(h, h)
        w[p + "attention.output.dense.bias"] = zero(h)
        w[p + "output.dense.weight"] = zero(h, v["inter"])
        w[p + "output.dense.bias"] = zero(h)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"], w[p + ln + ".bias"] = one(h), zero(h)


def config_json(v, vocab_size):
    """config.json as transformers 4.x writes it for a BertModel."""
    return {
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": v["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": v["inter"],
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": v["max_pos"],
        "model_type": "bert",
        "num_attention_heads": v["heads"],
        "num_hidden_layers": v["layers"],
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[v["dtype"]],
        "transformers_version": "4.41.2",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_st_files(d, v):
    """sentence-transformers' modules.json, pooling config, Normalize folder and settings."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    if v.get("normalize"):
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(d, "2_Normalize"), exist_ok=True)
    write_json(os.path.join(d, "modules.json"), modules)
    write_json(os.path.join(d, "1_Pooling", "config.json"), {
        "word_embedding_dimension": v["hidden"],
        "pooling_mode_cls_token": v["st"] == "cls",
        "pooling_mode_mean_tokens": v["st"] == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True})
    write_json(os.path.join(d, "sentence_bert_config.json"),
               {"max_seq_length": v.get("max_seq", v["max_pos"]), "do_lower_case": False})
    write_json(os.path.join(d, "config_sentence_transformers.json"), {
        "__version__": {"sentence_transformers": "3.0.1", "transformers": "4.41.2",
                        "pytorch": "2.3.0"},
        "prompts": v.get("prompts", {}), "default_prompt_name": None,
        "similarity_fn_name": "cosine"})


def settings(v):
    """pooling, normalize, max_tokens, prefixes as kb should read them from the files."""
    pooling = v["st"] or "cls"
    normalize = bool(v.get("normalize")) if v["st"] else True
    max_tokens = min(v["max_pos"], v.get("max_seq", v["max_pos"]), 512)
    kbm = v.get("kb_model", {})
    pooling = kbm.get("pooling", pooling)
    max_tokens = kbm.get("max_tokens", max_tokens)
    prompts = v.get("prompts", {})
    query = kbm.get("query_prefix", prompts.get("query", ""))
    passage = kbm.get("passage_prefix", prompts.get("passage", prompts.get("document", "")))
    return pooling, normalize, max_tokens, query, passage


# ---- the reference: BertModel (Devlin et al. 2019; Vaswani et al. 2017) in float64 ----------

_erf = np.vectorize(math.erf)


def layer_norm(x, g, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def reference_embedding(W, ids, cfg, pooling, normalize):
    get = lambda n: W[n] if n in W else W["bert." + n]
    n, h, heads = len(ids), cfg["hidden_size"], cfg["num_attention_heads"]
    d, eps = h // heads, cfg["layer_norm_eps"]
    x = (get("embeddings.word_embeddings.weight")[ids]
         + get("embeddings.position_embeddings.weight")[:n]
         + get("embeddings.token_type_embeddings.weight")[0])
    x = layer_norm(x, get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"), eps)
    for l in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        lin = lambda inp, m: inp @ get(p + m + ".weight").T + get(p + m + ".bias")
        split = lambda t: t.reshape(n, heads, d).transpose(1, 0, 2)      # (heads, n, d)
        q = split(lin(x, "attention.self.query"))
        k = split(lin(x, "attention.self.key"))
        v = split(lin(x, "attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)                # (heads, n, n)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, h)
        x = layer_norm(lin(ctx, "attention.output.dense") + x,
                       get(p + "attention.output.LayerNorm.weight"),
                       get(p + "attention.output.LayerNorm.bias"), eps)
        inner = lin(x, "intermediate.dense")
        inner = 0.5 * inner * (1.0 + _erf(inner / math.sqrt(2.0)))
        x = layer_norm(lin(inner, "output.dense") + x, get(p + "output.LayerNorm.weight"),
                       get(p + "output.LayerNorm.bias"), eps)
    pooled = x[0] if pooling == "cls" else x.mean(axis=0)
    if normalize:
        pooled = pooled / np.linalg.norm(pooled)
    return pooled


def test_sequences(rng, vocab, max_tokens):
    """Token-id sequences of varied lengths 1..max_tokens, [CLS] first and [SEP] last."""
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    lengths = sorted({1, 2, 3, 5, 8, 13, 17, 31, max_tokens // 2, max_tokens - 1, max_tokens})
    lengths = [n for n in lengths if 1 <= n <= max_tokens]
    seqs = []
    for n in lengths:
        body = rng.integers(0, len(vocab), size=max(n - 2, 0)).tolist()
        seqs.append([cls] if n == 1 else [cls] + body + [sep])
    return seqs


def generate(out_dir, v, vocab_path, seed):
    rng = np.random.default_rng(seed)
    d = os.path.join(out_dir, v["name"])
    os.makedirs(d, exist_ok=True)
    vocab = load_vocab(vocab_path, v.get("full_vocab", False))
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "do_basic_tokenize": True,
        "do_lower_case": True, "mask_token": "[MASK]", "model_max_length": 512,
        "never_split": None, "pad_token": "[PAD]", "sep_token": "[SEP]", "strip_accents": None,
        "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer",
        "unk_token": "[UNK]"})
    cfg = config_json(v, len(vocab))
    write_json(os.path.join(d, "config.json"), cfg)
    weights = make_weights(v, len(vocab), rng, vocab)
    prefix = "bert." if v["prefix"] else ""
    tensors = {}
    for name, a in weights.items():
        full = name if name.startswith("pooler.") and not prefix else prefix + name
        tensors[full] = (v["dtype"], a.shape, encode_tensor(a, v["dtype"]))
    write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    if v["st"]:
        write_st_files(d, v)
    if "kb_model" in v:
        write_json(os.path.join(d, "kb_model.json"), v["kb_model"])
    pooling, normalize, max_tokens, query, passage = settings(v)
    W = read_safetensors(os.path.join(d, "model.safetensors"))
    seqs = test_sequences(rng, vocab, max_tokens)
    embs = [reference_embedding(W, s, cfg, pooling, normalize).tolist() for s in seqs]
    write_json(os.path.join(d, "expected.json"), {
        "hidden": v["hidden"], "dtype": v["dtype"], "pooling": pooling, "normalize": normalize,
        "max_tokens": max_tokens, "query_prefix": query, "passage_prefix": passage,
        "sequences": seqs, "embeddings": embs})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--vocab", help="bert-base-uncased vocab.txt (else a synthetic vocabulary)")
    ap.add_argument("--only", nargs="*", help="variant names to generate")
    args = ap.parse_args()
    for k, v in enumerate(VARIANTS):
        if args.only and v["name"] not in args.only:
            continue
        if v.get("bench") and not args.only:
            continue
        generate(args.out_dir, v, args.vocab, 1234 + k)
        print("generated", os.path.join(args.out_dir, v["name"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
