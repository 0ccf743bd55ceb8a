// onnx.mjs — a minimal ONNX protobuf writer (field numbers from onnx/onnx.proto), no dependencies.

// ---- protobuf wire format -------------------------------------------------------------------
function varint(v) {
  let x = BigInt.asUintN(64, BigInt(v));
  const bytes = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    bytes.push(b);
  } while (x);
  return Buffer.from(bytes);
}
const key = (field, wire) => varint((field << 3) | wire);
const fInt = (field, v) => Buffer.concat([key(field, 0), varint(v)]);
const fBytes = (field, buf) => Buffer.concat([key(field, 2), varint(buf.length), buf]);
const fStr = (field, s) => fBytes(field, Buffer.from(s, 'utf8'));
const fFloat = (field, v) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return Buffer.concat([key(field, 5), b]);
};
const msg = (parts) => Buffer.concat(parts.flat().filter(Boolean));

// ---- ONNX messages --------------------------------------------------------------------------
export const FLOAT = 1;
export const INT64 = 7;

// TensorProto from a Float32Array / BigInt64Array / number[] (int64) with dims.
export function tensor(name, dims, type, values) {
  let raw;
  if (type === FLOAT) {
    const a = values instanceof Float32Array ? values : Float32Array.from(values);
    raw = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  } else {
    const a = values instanceof BigInt64Array ? values : BigInt64Array.from(values.map(BigInt));
    raw = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  }
  return msg([dims.map((d) => fInt(1, d)), fInt(2, type), fStr(8, name), fBytes(9, raw)]);
}

// AttributeProto: number -> INT (integers) unless {f: x}; array of ints -> INTS; string -> STRING.
function attribute(name, v) {
  if (typeof v === 'object' && !Array.isArray(v) && 'f' in v)
    return msg([fStr(1, name), fFloat(2, v.f), fInt(20, 1)]);
  if (typeof v === 'number') return msg([fStr(1, name), fInt(3, v), fInt(20, 2)]);
  if (typeof v === 'string') return msg([fStr(1, name), fStr(4, v), fInt(20, 3)]);
  if (Array.isArray(v)) return msg([fStr(1, name), v.map((x) => fInt(8, x)), fInt(20, 7)]);
  throw new Error(`attribute ${name}: unsupported value`);
}

export function node(op, inputs, outputs, attrs = {}, name = '', domain = '') {
  return msg([
    domain ? fStr(7, domain) : null,
    inputs.map((i) => fStr(1, i)),
    outputs.map((o) => fStr(2, o)),
    name ? fStr(3, name) : null,
    fStr(4, op),
    Object.entries(attrs).map(([k, v]) => fBytes(5, attribute(k, v))),
  ]);
}

// ValueInfoProto for a tensor; dims are numbers or symbolic names.
export function valueInfo(name, elemType, dims) {
  const dim = (d) => fBytes(1, typeof d === 'number' ? fInt(1, d) : fStr(2, d));
  const shape = msg(dims.map(dim));
  const tensorType = msg([fInt(1, elemType), fBytes(2, shape)]);
  return msg([fStr(1, name), fBytes(2, fBytes(1, tensorType))]);
}

// ModelProto (IR version 8, default-domain opset `opset`, plus com.microsoft version 1 when
// `contrib`) as one Buffer.
export function model({ nodes, initializers, inputs, outputs, name, opset, contrib = false }) {
  const graph = msg([
    nodes.map((n) => fBytes(1, n)),
    fStr(2, name),
    initializers.map((t) => fBytes(5, t)),
    inputs.map((v) => fBytes(11, v)),
    outputs.map((v) => fBytes(12, v)),
  ]);
  const opsetIds = [msg([fStr(1, ''), fInt(2, opset)])];
  if (contrib) opsetIds.push(msg([fStr(1, 'com.microsoft'), fInt(2, 1)]));
  return msg([fInt(1, 8), fStr(2, 'kb-bench-ort'), fStr(3, '1'), fBytes(7, graph),
              opsetIds.map((id) => fBytes(8, id))]);
}
