// export.mjs — writes an ONNX (opset 17, float32) graph of HF BertModel from a model folder.
//
// Usage: node export.mjs MODEL_DIR OUT.onnx [--fused]
//
// Inputs:  input_ids [batch, sequence] int64, attention_mask [batch, sequence] int64
//          (token_type_ids are taken as all zero: row 0 of token_type_embeddings is added).
// Outputs: last_hidden_state [batch, sequence, hidden] float32
//          sentence_embedding [batch, hidden] float32: pooled (CLS or masked mean, from
//          kb_model.json / 1_Pooling/config.json, default CLS) and L2-normalised when the folder
//          says so (modules.json lists Normalize, or there is no modules.json).
// The graph follows the node pattern torch.onnx gives BertModel (MatMul+Add linears, Reshape/
// Transpose heads, Div by sqrt(head_dim), additive (1-mask)*-10000, Softmax, Div/Erf/Add/Mul/Mul
// GELU, LayerNormalization) so that ONNX Runtime's own graph fusions apply as they would to an
// exported Hugging Face model. --fused instead writes each layer with the com.microsoft contrib
// ops (Attention, SkipLayerNormalization, BiasGelu) that ORT's offline transformer optimizer emits.
import fs from 'node:fs';
import { loadModel } from './model.mjs';
import { FLOAT, INT64, tensor, node, valueInfo, model } from './onnx.mjs';

// Transposes a row-major [rows, cols] matrix (HF Linear weight [out, in] -> [in, out]).
function transpose(a, rows, cols) {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

export function buildGraph(m, { fused = false } = {}) {
  const { cfg, get } = m;
  const H = cfg.hidden_size, heads = cfg.num_attention_heads, L = cfg.num_hidden_layers;
  const D = H / heads, eps = cfg.layer_norm_eps ?? 1e-12;
  if (!Number.isInteger(D)) throw new Error(`config.json: hidden_size ${H} not divisible by heads`);
  const nodes = [], inits = [];
  let k = 0;
  const init = (name, dims, type, values) => { inits.push(tensor(name, dims, type, values)); return name; };
  const op = (type, inputs, attrs = {}, out = null, domain = '') => {
    const o = out || `${type.toLowerCase()}_${k++}`;
    nodes.push(node(type, inputs, [o], attrs, `n${k++}`, domain));
    return o;
  };
  const ms = (type, inputs, attrs = {}) => op(type, inputs, attrs, null, 'com.microsoft');
  const weightT = (prefix) => {
    const w = get(`${prefix}.weight`);
    const [out, inp] = w.shape;
    return init(`${prefix}.weight_T`, [inp, out], FLOAT, transpose(w.data, out, inp));
  };
  const weight = (name) => init(name, get(name).shape, FLOAT, get(name).data);
  const linear = (x, prefix) => op('Add', [op('MatMul', [x, weightT(prefix)]), weight(`${prefix}.bias`)]);
  const layerNorm = (x, prefix) =>
    op('LayerNormalization', [x, weight(`${prefix}.weight`), weight(`${prefix}.bias`)],
       { axis: -1, epsilon: { f: eps } });

  // constants, added to the graph on first use
  const constants = {
    c_zero1: [[1], INT64, [0]], c_zero: [[], INT64, [0]], c_axes12: [[2], INT64, [1, 2]],
    c_axis1: [[1], INT64, [1]], c_axis2: [[1], INT64, [2]], c_one: [[], FLOAT, [1]],
    c_half: [[], FLOAT, [0.5]], c_neg: [[], FLOAT, [-10000]], c_sqrt2: [[], FLOAT, [Math.SQRT2]],
    c_sqrtd: [[], FLOAT, [Math.sqrt(D)]], c_eps_mean: [[], FLOAT, [1e-9]],
    c_eps_norm: [[], FLOAT, [1e-12]], c_split_shape: [[4], INT64, [0, 0, heads, D]],
    c_merge_shape: [[3], INT64, [0, 0, H]],
  };
  const used = new Set();
  const C = (name) => {
    if (!used.has(name)) { used.add(name); init(name, ...constants[name]); }
    return name;
  };

  // embeddings
  const tt = get('embeddings.token_type_embeddings.weight');
  init('token_type_row0', [H], FLOAT, tt.data.subarray(0, H));
  const word = op('Gather', [weight('embeddings.word_embeddings.weight'), 'input_ids'], { axis: 0 });
  const seqLen = op('Shape', ['input_ids'], { start: 1, end: 2 });
  const pos = op('Slice', [weight('embeddings.position_embeddings.weight'), C('c_zero1'), seqLen, C('c_zero1')]);
  let x = op('Add', [op('Add', [word, pos]), 'token_type_row0']);
  x = layerNorm(x, 'embeddings.LayerNorm');

  // Plain ONNX layer, in the node pattern torch.onnx exports for BertLayer.
  let addMask = null;
  const plainLayer = (x, p) => {
    if (!addMask) { // extended attention mask [batch, 1, 1, seq]: (1 - mask) * -10000
      const maskF = op('Cast', [op('Unsqueeze', ['attention_mask', C('c_axes12')])], { to: FLOAT });
      addMask = op('Mul', [op('Sub', [C('c_one'), maskF]), C('c_neg')]);
    }
    const heads4 = (t, perm) => op('Transpose', [op('Reshape', [t, C('c_split_shape')])], { perm });
    const q = heads4(linear(x, `${p}.attention.self.query`), [0, 2, 1, 3]);
    const kT = heads4(linear(x, `${p}.attention.self.key`), [0, 2, 3, 1]);
    const v = heads4(linear(x, `${p}.attention.self.value`), [0, 2, 1, 3]);
    const scores = op('Add', [op('Div', [op('MatMul', [q, kT]), C('c_sqrtd')]), addMask]);
    const probs = op('Softmax', [scores], { axis: -1 });
    const ctx4 = op('Transpose', [op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] });
    const ctx = op('Reshape', [ctx4, C('c_merge_shape')]);
    const attn = op('Add', [linear(ctx, `${p}.attention.output.dense`), x]);
    x = layerNorm(attn, `${p}.attention.output.LayerNorm`);
    const inter = linear(x, `${p}.intermediate.dense`);
    const erf = op('Erf', [op('Div', [inter, C('c_sqrt2')])]);
    const gelu = op('Mul', [op('Mul', [inter, op('Add', [erf, C('c_one')])]), C('c_half')]);
    const out = op('Add', [linear(gelu, `${p}.output.dense`), x]);
    return layerNorm(out, `${p}.output.LayerNorm`);
  };

  // Fused layer: the com.microsoft contrib ops onnxruntime.transformers.optimizer (and optimum's
  // ORTOptimizer) produce for BERT — Attention (packed QKV, 2-D int32 mask, -10000 mask filter),
  // SkipLayerNormalization (residual + bias + LayerNorm), BiasGelu (exact erf GELU).
  let maskI32 = null;
  const fusedLayer = (x, p) => {
    if (!maskI32) maskI32 = op('Cast', ['attention_mask'], { to: 6 });
    const qkvW = new Float32Array(H * 3 * H), qkvB = new Float32Array(3 * H);
    ['query', 'key', 'value'].forEach((n, j) => {
      const w = get(`${p}.attention.self.${n}.weight`).data; // [out, in]
      for (let o = 0; o < H; o++)
        for (let i = 0; i < H; i++) qkvW[i * 3 * H + j * H + o] = w[o * H + i];
      qkvB.set(get(`${p}.attention.self.${n}.bias`).data, j * H);
    });
    const wq = init(`${p}.attention.qkv.weight`, [H, 3 * H], FLOAT, qkvW);
    const bq = init(`${p}.attention.qkv.bias`, [3 * H], FLOAT, qkvB);
    const ctx = ms('Attention', [x, wq, bq, maskI32], { num_heads: heads });
    const sln = (a, skip, prefix, ln) => ms('SkipLayerNormalization',
      [a, skip, weight(`${ln}.weight`), weight(`${ln}.bias`), weight(`${prefix}.bias`)],
      { epsilon: { f: eps } });
    const dense = `${p}.attention.output.dense`;
    x = sln(op('MatMul', [ctx, weightT(dense)]), x, dense, `${p}.attention.output.LayerNorm`);
    const inter = `${p}.intermediate.dense`;
    const gelu = ms('BiasGelu', [op('MatMul', [x, weightT(inter)]), weight(`${inter}.bias`)]);
    const out = `${p}.output.dense`;
    return sln(op('MatMul', [gelu, weightT(out)]), x, out, `${p}.output.LayerNorm`);
  };

  for (let l = 0; l < L; l++)
    x = (fused ? fusedLayer : plainLayer)(x, `encoder.layer.${l}`);
  nodes.push(node('Identity', [x], ['last_hidden_state'], {}, 'out_hidden'));

  // pooling + normalisation
  let pooled;
  if (m.pooling === 'cls') {
    pooled = op('Gather', ['last_hidden_state', C('c_zero')], { axis: 1 });
  } else if (m.pooling === 'mean') {
    const mf = op('Unsqueeze', [op('Cast', ['attention_mask'], { to: FLOAT }), C('c_axis2')]);
    const sum = op('ReduceSum', [op('Mul', ['last_hidden_state', mf]), C('c_axis1')], { keepdims: 0 });
    const cnt = op('Max', [op('ReduceSum', [mf, C('c_axis1')], { keepdims: 0 }), C('c_eps_mean')]);
    pooled = op('Div', [sum, cnt]);
  } else {
    throw new Error(`pooling "${m.pooling}" not supported (cls, mean)`);
  }
  if (m.normalize) {
    const norm = op('Max', [op('ReduceL2', [pooled], { axes: [1], keepdims: 1 }), C('c_eps_norm')]);
    op('Div', [pooled, norm], {}, 'sentence_embedding');
  } else {
    op('Identity', [pooled], {}, 'sentence_embedding');
  }

  return model({
    name: 'bert', opset: 17, contrib: fused, nodes, initializers: inits,
    inputs: [valueInfo('input_ids', INT64, ['batch', 'sequence']),
             valueInfo('attention_mask', INT64, ['batch', 'sequence'])],
    outputs: [valueInfo('last_hidden_state', FLOAT, ['batch', 'sequence', H]),
              valueInfo('sentence_embedding', FLOAT, ['batch', H])],
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const fused = args.includes('--fused');
  const [dir, outFile] = args.filter((x) => x !== '--fused');
  if (!dir || !outFile) {
    console.error('usage: node export.mjs MODEL_DIR OUT.onnx [--fused]');
    process.exit(2);
  }
  try {
    const m = loadModel(dir);
    const bytes = buildGraph(m, { fused });
    fs.writeFileSync(outFile, bytes);
    console.error(`export: wrote ${outFile} (${(bytes.length / 1e6).toFixed(1)} MB, ` +
                  `${m.cfg.num_hidden_layers} layers, hidden ${m.cfg.hidden_size}, ` +
                  `pooling ${m.pooling}, normalize ${m.normalize}, ${fused ? 'fused' : 'plain'})`);
  } catch (e) {
    console.error(`export: ${e.message}`);
    process.exit(1);
  }
}
