#!/usr/bin/python3
"""gen_gguf.py — random-weight GGUF decoder models with the exact shapes of real ones, for
kb's speed benchmarks (speed does not depend on the values; correctness is checked against
llama.cpp's own files in ../shared/data/decoder/quantized).

Usage: gen_gguf.py SHAPE TYPE OUT.gguf --vocab VOCAB.gguf
  SHAPE  qwen2.5-0.5b | smollm2-360m | llama3.2-1b
  TYPE   q8_0 | q4_0 | q4_k_m (Q4_K matrices with Q6_K for the output and ffn_down, as
         llama.cpp's Q4_K_M chooses for these models), f16
  VOCAB  a GGUF holding a tokenizer (tokenizer.ggml.*), e.g. ../shared/data/decoder/
         bpe-tokenizers/ggml-vocab-qwen2.gguf; its tokens are padded to the shape's vocabulary
Quantized blocks are random bytes with scales of a realistic size: every bit pattern is a
valid block of these types, so the file has the layout and the cost of a real one.
"""
import argparse
import struct
import sys

import numpy as np

SHAPES = {  # arch, n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, tied, rope base, ctx
    "qwen2.5-0.5b": ("qwen2", 896, 24, 14, 2, 4864, 151936, True, 1e6, 32768),
    "smollm2-360m": ("llama", 960, 32, 15, 5, 2560, 49152, True, 1e5, 8192),
    "llama3.2-1b": ("llama", 2048, 16, 32, 8, 8192, 128256, True, 5e5, 131072),
}
# ggml type ids and block geometry: (id, elements per block, bytes per block, scale offsets)
TYPES = {"f32": (0, 1, 4), "f16": (1, 1, 2), "q4_0": (2, 32, 18), "q8_0": (8, 32, 34),
         "q4_k": (12, 256, 144), "q6_k": (14, 256, 210)}
FILE_TYPE = {"f16": 1, "q4_0": 2, "q8_0": 7, "q4_k_m": 15}

# ---- reading the vocabulary's key/values --------------------------------------------------
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}


def read_kvs(path):
    data = open(path, "rb").read()
    pos = 4 + 4
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        s = data[pos + 8:pos + 8 + n]
        pos += 8 + n
        return s

    def value(t):
        nonlocal pos
        if t == 8:
            return string()
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            return (et, [value(et) for _ in range(n)])
        fmt = SCALAR[t]
        (v,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    kvs = {}
    for _ in range(n_kv):
        key = string().decode()
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        kvs[key] = (t, value(t))
    return kvs


# ---- writing ------------------------------------------------------------------------------
class Writer:
    def __init__(self):
        self.kv = bytearray()
        self.n_kv = 0

    @staticmethod
    def s(text):
        b = text if isinstance(text, bytes) else text.encode()
        return struct.pack("<Q", len(b)) + b

    def put(self, key, t, v):
        self.kv += self.s(key) + struct.pack("<I", t) + self.enc(t, v)
        self.n_kv += 1

    def enc(self, t, v):
        if t == 8:
            return self.s(v)
        if t == 9:
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(self.enc(et, i) for i in items)
        return struct.pack(SCALAR[t], v)


def random_tensor(rng, kind, ne0, ne1):
    tid, blk, size = TYPES[kind]
    n_blocks = ne0 // blk * ne1
    if kind == "f32":
        return tid, rng.uniform(0.5, 1.5, ne0 * ne1).astype("<f4").tobytes()
    if kind == "f16":
        return tid, (rng.standard_normal(ne0 * ne1) / np.sqrt(ne0)).astype("<f2").tobytes()
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    scale = (rng.uniform(0.5, 1.5, n_blocks) * 0.01).astype("<f2").view(np.uint8).reshape(-1, 2)
    at = 208 if kind == "q6_k" else 0
    raw[:, at:at + 2] = scale
    if kind == "q4_k":
        raw[:, 2:4] = (rng.uniform(0, 1, n_blocks) * 0.005).astype("<f2").view(np.uint8).reshape(-1, 2)
    return tid, raw.tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=SHAPES)
    ap.add_argument("type", choices=list(FILE_TYPE))
    ap.add_argument("out")
    ap.add_argument("--vocab", required=True)
    a = ap.parse_args()
    arch, e, layers, heads, kv_heads, ff, vocab, tied, base, ctx = SHAPES[a.shape]
    hd = e // heads
    rng = np.random.default_rng(1)
    w = Writer()
    w.put("general.architecture", 8, arch)
    w.put("general.name", 8, f"kb random {a.shape} {a.type}")
    w.put("general.file_type", 4, FILE_TYPE[a.type])
    w.put("general.alignment", 4, 32)
    for key, t, v in [("context_length", 4, ctx), ("embedding_length", 4, e),
                      ("block_count", 4, layers), ("feed_forward_length", 4, ff),
                      ("attention.head_count", 4, heads), ("attention.head_count_kv", 4, kv_heads),
                      ("attention.layer_norm_rms_epsilon", 6, 1e-6), ("rope.freq_base", 6, base),
                      ("rope.dimension_count", 4, hd)]:
        w.put(f"{arch}.{key}", t, v)
    kvs = read_kvs(a.vocab)
    et, tokens = kvs["tokenizer.ggml.tokens"][1]
    if len(tokens) > vocab:  # a smaller vocabulary: its first tokens, and the merges among them
        tokens = tokens[:vocab]
        kept = set(tokens)
        t, (mt, merges) = kvs["tokenizer.ggml.merges"]
        merges = [m for m in merges if all(p in kept for p in m.split(b" ", 1))
                  and m.replace(b" ", b"", 1) in kept]
        kvs["tokenizer.ggml.merges"] = (t, (mt, merges))
        if "tokenizer.ggml.token_type" in kvs:
            t, (tt, types) = kvs["tokenizer.ggml.token_type"]
            kvs["tokenizer.ggml.token_type"] = (t, (tt, types[:vocab]))
        for key in [k for k in kvs if k.endswith("_token_id") and kvs[k][1] >= vocab]:
            del kvs[key]
    n_real = len(tokens)
    tokens = tokens + [f"[PAD{i}]".encode() for i in range(vocab - n_real)]
    w.put("tokenizer.ggml.tokens", 9, (8, tokens))
    types = kvs.get("tokenizer.ggml.token_type", (9, (5, [1] * n_real)))[1][1]
    w.put("tokenizer.ggml.token_type", 9, (5, list(types) + [5] * (vocab - n_real)))
    for key, (t, v) in kvs.items():
        if key.startswith("tokenizer.") and key not in ("tokenizer.ggml.tokens",
                                                        "tokenizer.ggml.token_type"):
            w.put(key, t, v)

    def mat(name):  # the type llama.cpp's Q4_K_M gives each matrix of these models
        if a.type != "q4_k_m":
            return a.type
        return "q6_k" if name in ("ffn_down", "attn_v", "output") else "q4_k"

    tensors = [("token_embd.weight", mat("output") if tied else mat("token_embd"), e, vocab),
               ("output_norm.weight", "f32", e, 1)]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [(p + "attn_norm.weight", "f32", e, 1), (p + "ffn_norm.weight", "f32", e, 1),
                    (p + "attn_q.weight", mat("attn_q"), e, heads * hd),
                    (p + "attn_k.weight", mat("attn_k"), e, kv_heads * hd),
                    (p + "attn_v.weight", mat("attn_v"), e, kv_heads * hd),
                    (p + "attn_output.weight", mat("attn_output"), heads * hd, e),
                    (p + "ffn_gate.weight", mat("ffn_gate"), e, ff),
                    (p + "ffn_up.weight", mat("ffn_up"), e, ff),
                    (p + "ffn_down.weight", mat("ffn_down"), ff, e)]
        if arch == "qwen2":
            tensors += [(p + "attn_q.bias", "f32", heads * hd, 1),
                        (p + "attn_k.bias", "f32", kv_heads * hd, 1),
                        (p + "attn_v.bias", "f32", kv_heads * hd, 1)]
    with open(a.out, "wb") as f:
        infos, blobs, offset = bytearray(), [], 0
        for name, kind, ne0, ne1 in tensors:
            if kind == "q4_k" and ne0 % 256:  # rows not whole super-blocks: llama.cpp's fallback
                kind = "q8_0"
            if kind == "q6_k" and ne0 % 256:
                kind = "q8_0"
            tid, blob = random_tensor(rng, kind, ne0, ne1)
            dims = [ne0] if ne1 == 1 else [ne0, ne1]
            infos += w.s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            infos += struct.pack("<IQ", tid, offset)
            blobs.append(blob)
            offset += (len(blob) + 31) // 32 * 32
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), w.n_kv) + w.kv + infos)
        f.write(b"\0" * ((-f.tell()) % 32))
        for blob in blobs:
            f.write(blob)
            f.write(b"\0" * ((-len(blob)) % 32))
    print(f"{a.out}: {a.shape} {a.type}, {len(tensors)} tensors, {offset / 1e6:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
