// model.mjs — reads a Hugging Face BERT model folder: config.json, model.safetensors, pooling settings.
import fs from 'node:fs';
import path from 'node:path';

// IEEE half -> float.
function f16ToF32(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// Parses a .safetensors file: name -> {shape, data: Float32Array}. F32/F16/BF16 only; other dtypes
// are skipped. A "bert." prefix is stripped from names.
export function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  if (n <= 0 || 8 + n > buf.length) throw new Error(`${file}: bad header length ${n}`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  const out = new Map();
  for (const [name, d] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = d.data_offsets;
    const count = d.shape.reduce((a, x) => a * x, 1);
    if (base + e > buf.length) throw new Error(`${file}: tensor ${name} runs past the end`);
    const raw = buf.subarray(base + b, base + e);
    const data = new Float32Array(count);
    if (d.dtype === 'F32') {
      if (raw.length !== 4 * count) throw new Error(`${file}: tensor ${name}: size mismatch`);
      for (let i = 0; i < count; i++) data[i] = raw.readFloatLE(4 * i);
    } else if (d.dtype === 'F16' || d.dtype === 'BF16') {
      if (raw.length !== 2 * count) throw new Error(`${file}: tensor ${name}: size mismatch`);
      const table = d.dtype === 'F16' ? null : new Uint32Array(1);
      const tf = table ? new Float32Array(table.buffer) : null;
      for (let i = 0; i < count; i++) {
        const h = raw.readUInt16LE(2 * i);
        if (table) { table[0] = h << 16; data[i] = tf[0]; } else data[i] = f16ToF32(h);
      }
    } else {
      continue;
    }
    out.set(name.startsWith('bert.') ? name.slice(5) : name, { shape: d.shape, data });
  }
  return out;
}

function readJson(file) {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null;
}

// Pooling ('cls' | 'mean') and whether to L2-normalise, as sentence-transformers / kb read them:
// kb_model.json "pooling" overrides 1_Pooling/config.json; default CLS. Normalise when
// modules.json lists a Normalize module, or when there is no modules.json at all.
export function poolingSettings(dir) {
  const kbm = readJson(path.join(dir, 'kb_model.json')) || {};
  const pool = readJson(path.join(dir, '1_Pooling', 'config.json'));
  let pooling = 'cls';
  if (pool && pool.pooling_mode_mean_tokens) pooling = 'mean';
  if (kbm.pooling) pooling = kbm.pooling;
  const modules = readJson(path.join(dir, 'modules.json'));
  const normalize = modules ? modules.some((m) => /Normalize/.test(m.type || '')) : true;
  return { pooling, normalize };
}

// Loads config + weights + pooling settings of MODEL_DIR.
export function loadModel(dir) {
  const cfg = readJson(path.join(dir, 'config.json'));
  if (!cfg) throw new Error(`${dir}/config.json: missing`);
  const W = readSafetensors(path.join(dir, 'model.safetensors'));
  const get = (name) => {
    const t = W.get(name);
    if (!t) throw new Error(`${dir}/model.safetensors: tensor ${name} missing`);
    return t;
  };
  return { cfg, W, get, ...poolingSettings(dir) };
}

// Small deterministic PRNG (mulberry32).
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
