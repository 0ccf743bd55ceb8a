// bench.mjs — encoder throughput / query latency of ONNX Runtime (onnxruntime-node) on a BERT folder.
//
// Usage: node bench.mjs MODEL_DIR [--seq 128] [--batch 32] [--seconds 10] [--threads 2]
//                      [--windows 5] [--query-latency] [--onnx FILE] [--fused] [--no-spin]
//
// Exports MODEL_DIR to ONNX (export.mjs; or loads --onnx FILE), opens one session
// (intraOpNumThreads = --threads, interOpNumThreads 1, graphOptimizationLevel 'all'), warms up,
// then runs batches of random ids (all-ones mask) for --seconds, split into --windows equal
// measurement windows. Prints one JSON line; figures are the median over the windows (the best
// window is printed too: on a shared machine it is the nearest to an unloaded run).
// Each run fetches sentence_embedding, i.e. pooling and L2 normalisation are inside the graph.
// --query-latency: batch 1, 32 tokens, each window at least 200 runs; p50/p90 in ms.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { loadModel, rng } from './model.mjs';
import { buildGraph } from './export.mjs';

function parseArgs(argv) {
  const a = { seq: 128, batch: 32, seconds: 10, threads: 2, windows: 5, query: false,
              onnx: null, fused: false, spin: true, dir: null };
  const num = (i) => {
    const v = Number(argv[i]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${argv[i - 1]}: expected a positive number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--seq') a.seq = num(++i);
    else if (v === '--batch') a.batch = num(++i);
    else if (v === '--seconds') a.seconds = num(++i);
    else if (v === '--threads') a.threads = num(++i);
    else if (v === '--windows') a.windows = num(++i);
    else if (v === '--query-latency') a.query = true;
    else if (v === '--fused') a.fused = true;
    else if (v === '--no-spin') a.spin = false;
    else if (v === '--onnx') a.onnx = argv[++i];
    else if (!a.dir && !v.startsWith('--')) a.dir = v;
    else throw new Error(`unexpected argument ${v}`);
  }
  if (!a.dir) throw new Error('usage: node bench.mjs MODEL_DIR [--seq N] [--batch N] [--seconds S] ' +
                              '[--threads N] [--windows N] [--query-latency] [--onnx FILE] [--fused] [--no-spin]');
  if (a.query) { a.batch = 1; a.seq = 32; }
  return a;
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y), n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const quantile = (xs, q) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const round = (x, d) => Number(x.toFixed(d));

// A few pre-made random batches, so the timed loop measures ORT, not the RNG.
function makeFeeds(a, vocab) {
  const r = rng(42), n = a.batch * a.seq, feeds = [];
  const mask = new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [a.batch, a.seq]);
  for (let f = 0; f < 4; f++) {
    const ids = new BigInt64Array(n);
    for (let i = 0; i < n; i++) ids[i] = BigInt(1 + Math.floor(r() * (vocab - 1)));
    feeds.push({ input_ids: new ort.Tensor('int64', ids, [a.batch, a.seq]), attention_mask: mask });
  }
  return feeds;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const m = loadModel(a.dir);
  const maxPos = m.get('embeddings.position_embeddings.weight').shape[0];
  if (a.seq > maxPos) throw new Error(`--seq ${a.seq} exceeds max_position_embeddings ${maxPos}`);
  let onnxFile = a.onnx, tmp = null;
  if (!onnxFile) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-ort-'));
    onnxFile = path.join(tmp, 'model.onnx');
    fs.writeFileSync(onnxFile, buildGraph(m, { fused: a.fused }));
  }
  const session = await ort.InferenceSession.create(onnxFile, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', logSeverityLevel: 3,
    // ORT's intra-op threads spin while waiting for work by default; --no-spin makes them sleep.
    ...(a.spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  const feeds = makeFeeds(a, m.cfg.vocab_size || m.get('embeddings.word_embeddings.weight').shape[0]);
  const fetches = ['sentence_embedding'];
  let k = 0;
  const runOnce = async () => {
    const t0 = process.hrtime.bigint();
    await session.run(feeds[k++ % feeds.length], fetches);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  // warm-up: a few runs or ~1 s, whichever is longer
  const wEnd = Date.now() + 1000;
  for (let i = 0; i < 3 || Date.now() < wEnd; i++) await runOnce();

  const windowMs = (a.seconds * 1000) / a.windows;
  const out = { runtime: 'onnxruntime-node', version: ort.env.versions.node || ort.env.versions.common,
                model: path.basename(path.resolve(a.dir)),
                graph: a.fused ? 'fused' : 'plain', spin: a.spin,
                seq: a.seq, batch: a.batch, threads: a.threads };
  let runs = 0;
  if (a.query) {
    const p50s = [], p90s = [];
    for (let w = 0; w < a.windows; w++) {
      const lat = [], end = Date.now() + windowMs;
      while (lat.length < 200 || Date.now() < end) lat.push(await runOnce());
      p50s.push(quantile(lat, 0.5));
      p90s.push(quantile(lat, 0.9));
      runs += lat.length;
    }
    Object.assign(out, { p50_ms: round(median(p50s), 3), p90_ms: round(median(p90s), 3),
                         best_window_p50_ms: round(Math.min(...p50s), 3),
                         window_p50_ms: p50s.map((x) => round(x, 3)) });
  } else {
    const rates = [], cpuRates = [];
    for (let w = 0; w < a.windows; w++) {
      const t0 = process.hrtime.bigint(), c0 = process.cpuUsage(), end = Date.now() + windowMs;
      let n = 0;
      while (n < 1 || Date.now() < end) { await runOnce(); n++; }
      const s = Number(process.hrtime.bigint() - t0) / 1e9, c = process.cpuUsage(c0);
      rates.push((n * a.batch * a.seq) / s);
      cpuRates.push((n * a.batch * a.seq) / ((c.user + c.system) / 1e6));
      runs += n;
    }
    // tokens per CPU-second of this process: less sensitive to other load on a shared machine,
    // but it counts ORT's spin-waiting as work (compare with --no-spin).
    Object.assign(out, { tokens_per_s: round(median(rates), 1),
                         best_window_tokens_per_s: round(Math.max(...rates), 1),
                         window_tokens_per_s: rates.map((x) => round(x, 1)),
                         tokens_per_cpu_s: round(median(cpuRates), 1) });
  }
  out.runs = runs;
  out.windows = a.windows;
  out.date = new Date().toISOString().slice(0, 10);
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(`bench: ${e.message}`); process.exit(1); });
