// check.mjs — proves the ONNX export computes HF BertModel: ORT vs a plain float64 JS forward pass.
//
// Usage: node check.mjs MODEL_DIR [--fused] [--onnx FILE] [--count N] [--max-len N] [--seed N]
//
// Exports MODEL_DIR (or loads --onnx FILE), runs N random id sequences of different lengths as
// ONE padded batch through ONNX Runtime (so the attention mask is exercised), and compares each
// sentence embedding with a float64 JS implementation run on the unpadded sequence. When the
// folder has expected.json (scripts/gen_models.py), its sequences are checked the same way
// against its embeddings. Prints the max abs differences; exits 1 when one is >= 1e-4.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { loadModel, rng } from './model.mjs';
import { buildGraph } from './export.mjs';

const TOL = 1e-4;

function parseArgs(argv) {
  const a = { count: 6, maxLen: 48, seed: 7, onnx: null, fused: false, dir: null };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--count') a.count = Number(argv[++i]);
    else if (v === '--max-len') a.maxLen = Number(argv[++i]);
    else if (v === '--seed') a.seed = Number(argv[++i]);
    else if (v === '--onnx') a.onnx = argv[++i];
    else if (v === '--fused') a.fused = true;
    else if (!a.dir) a.dir = v;
    else throw new Error(`unexpected argument ${v}`);
  }
  if (!a.dir) throw new Error('usage: node check.mjs MODEL_DIR [--onnx FILE] [--count N] [--max-len N] [--fused]');
  return a;
}

// ---- float64 reference ----------------------------------------------------------------------
// y[n, out] = x[n, in] · W[out, in]^T + b
function linear(x, n, m, prefix) {
  const w = m.get(`${prefix}.weight`), b = m.get(`${prefix}.bias`).data;
  const [out, inp] = w.shape, W = w.data;
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    const xo = i * inp;
    for (let o = 0; o < out; o++) {
      let s = 0;
      const wo = o * inp;
      for (let k = 0; k < inp; k++) s += x[xo + k] * W[wo + k];
      y[i * out + o] = s + b[o];
    }
  }
  return y;
}

function layerNorm(x, n, h, m, prefix, eps) {
  const g = m.get(`${prefix}.weight`).data, b = m.get(`${prefix}.bias`).data;
  for (let i = 0; i < n; i++) {
    let mu = 0, v = 0;
    for (let k = 0; k < h; k++) mu += x[i * h + k];
    mu /= h;
    for (let k = 0; k < h; k++) v += (x[i * h + k] - mu) ** 2;
    const inv = 1 / Math.sqrt(v / h + eps);
    for (let k = 0; k < h; k++) x[i * h + k] = (x[i * h + k] - mu) * inv * g[k] + b[k];
  }
  return x;
}

// erf with |error| < 1.2e-7 relative (Numerical Recipes erfc, Chebyshev) — far below the 1e-4
// tolerance; JS has no Math.erf.
function erf(x) {
  const z = Math.abs(x), t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

// Sentence embedding of one unpadded id sequence, float64.
export function reference(m, ids) {
  const { cfg } = m;
  const n = ids.length, H = cfg.hidden_size, heads = cfg.num_attention_heads;
  const D = H / heads, eps = cfg.layer_norm_eps ?? 1e-12;
  const we = m.get('embeddings.word_embeddings.weight').data;
  const pe = m.get('embeddings.position_embeddings.weight').data;
  const te = m.get('embeddings.token_type_embeddings.weight').data;
  let x = new Float64Array(n * H);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < H; k++) x[i * H + k] = we[ids[i] * H + k] + pe[i * H + k] + te[k];
  layerNorm(x, n, H, m, 'embeddings.LayerNorm', eps);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    const q = linear(x, n, m, `${p}.attention.self.query`);
    const k = linear(x, n, m, `${p}.attention.self.key`);
    const v = linear(x, n, m, `${p}.attention.self.value`);
    const ctx = new Float64Array(n * H), sc = new Float64Array(n), scale = 1 / Math.sqrt(D);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < n; i++) {
        let mx = -Infinity;
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[i * H + h * D + d] * k[j * H + h * D + d];
          sc[j] = s * scale;
          if (sc[j] > mx) mx = sc[j];
        }
        let sum = 0;
        for (let j = 0; j < n; j++) { sc[j] = Math.exp(sc[j] - mx); sum += sc[j]; }
        for (let j = 0; j < n; j++)
          for (let d = 0; d < D; d++) ctx[i * H + h * D + d] += (sc[j] / sum) * v[j * H + h * D + d];
      }
    }
    const a = linear(ctx, n, m, `${p}.attention.output.dense`);
    for (let i = 0; i < a.length; i++) a[i] += x[i];
    x = layerNorm(a, n, H, m, `${p}.attention.output.LayerNorm`, eps);
    const inter = linear(x, n, m, `${p}.intermediate.dense`);
    for (let i = 0; i < inter.length; i++) inter[i] = 0.5 * inter[i] * (1 + erf(inter[i] / Math.SQRT2));
    const o = linear(inter, n, m, `${p}.output.dense`);
    for (let i = 0; i < o.length; i++) o[i] += x[i];
    x = layerNorm(o, n, H, m, `${p}.output.LayerNorm`, eps);
  }
  const pooled = new Float64Array(H);
  if (m.pooling === 'cls') pooled.set(x.subarray(0, H));
  else {
    for (let i = 0; i < n; i++) for (let k = 0; k < H; k++) pooled[k] += x[i * H + k];
    for (let k = 0; k < H; k++) pooled[k] /= n;
  }
  if (m.normalize) {
    const norm = Math.max(Math.hypot(...pooled), 1e-12);
    for (let k = 0; k < H; k++) pooled[k] /= norm;
  }
  return pooled;
}

// ORT: all sequences as one right-padded batch -> sentence embeddings [count][H].
async function runOrt(session, seqs, H) {
  const B = seqs.length, S = Math.max(...seqs.map((s) => s.length));
  const ids = new BigInt64Array(B * S), mask = new BigInt64Array(B * S);
  seqs.forEach((s, b) => s.forEach((id, i) => { ids[b * S + i] = BigInt(id); mask[b * S + i] = 1n; }));
  const out = await session.run({
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
  }, ['sentence_embedding']);
  const e = out.sentence_embedding.data;
  return seqs.map((_, b) => e.subarray(b * H, (b + 1) * H));
}

const maxAbsDiff = (a, b) => a.reduce((mx, x, i) => Math.max(mx, Math.abs(x - b[i])), 0);

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const m = loadModel(a.dir);
  const H = m.cfg.hidden_size, V = m.get('embeddings.word_embeddings.weight').shape[0];
  const maxPos = m.get('embeddings.position_embeddings.weight').shape[0];
  let onnxFile = a.onnx;
  if (!onnxFile) {
    onnxFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kb-ort-')), 'model.onnx');
    fs.writeFileSync(onnxFile, buildGraph(m, { fused: a.fused }));
  }
  const session = await ort.InferenceSession.create(onnxFile, {
    intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3,
  });
  const r = rng(a.seed), maxLen = Math.min(a.maxLen, maxPos);
  const seqs = [];
  for (let c = 0; c < a.count; c++) {
    const len = c === 0 ? 1 : c === 1 ? maxLen : 1 + Math.floor(r() * maxLen);
    seqs.push(Array.from({ length: len }, () => Math.floor(r() * V)));
  }
  const got = await runOrt(session, seqs, H);
  let worst = 0;
  seqs.forEach((s, i) => { worst = Math.max(worst, maxAbsDiff(got[i], reference(m, s))); });
  const result = { model: a.dir, graph: a.onnx ? a.onnx : a.fused ? 'fused' : 'plain', pooling: m.pooling, normalize: m.normalize,
                   sequences: seqs.length, lengths: seqs.map((s) => s.length),
                   max_abs_diff_vs_js_float64: worst };
  const expFile = path.join(a.dir, 'expected.json');
  if (fs.existsSync(expFile)) {
    const exp = JSON.parse(fs.readFileSync(expFile, 'utf8'));
    const g2 = await runOrt(session, exp.sequences, H);
    result.max_abs_diff_vs_expected_json = Math.max(...g2.map((e, i) => maxAbsDiff(e, exp.embeddings[i])));
    if (exp.pooling !== m.pooling || exp.normalize !== m.normalize)
      result.note = `expected.json says pooling ${exp.pooling} normalize ${exp.normalize}`;
  }
  const ok = worst < TOL && (result.max_abs_diff_vs_expected_json ?? 0) < TOL;
  result.ok = ok;
  console.log(JSON.stringify(result));
  if (fs.existsSync(expFile) && result.note) console.error(`check: ${result.note}`);
  if (!a.onnx) fs.rmSync(path.dirname(onnxFile), { recursive: true, force: true });
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(`check: ${e.message}`); process.exit(1); });
