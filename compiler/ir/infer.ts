// Shape and dtype inference, one rule per op. A rule returns the output type, or a string that
// says what is wrong (the node constructor turns it into an internal error; the verifier reports it).
import type { Attrs, DType, Node, Op, Shape } from "./node.ts";

export interface TensorType {
  dtype: DType;
  shape: Shape;
}

type Rule = (inputs: readonly Node[], a: Readonly<Attrs>) => TensorType | string;

const same = (x: Shape, y: Shape) => x.length === y.length && x.every((d, i) => d === y[i]);
const show = (s: Shape) => `[${s.join(",")}]`;
const count = (s: Shape) => s.reduce((p, d) => p * d, 1);

function arity(n: number, rule: Rule): Rule {
  return (inputs, a) => (inputs.length === n ? rule(inputs, a) : `expects ${n} inputs, got ${inputs.length}`);
}

function validAxis(rank: number, axis: number | undefined): axis is number {
  return axis !== undefined && Number.isInteger(axis) && axis >= 0 && axis < rank;
}

const leaf: Rule = (inputs, a) => {
  if (inputs.length) return "a leaf takes no inputs";
  if (!a.dtype || !a.shape) return "needs dtype and shape";
  if (a.shape.some((d) => !Number.isInteger(d) || d < 1)) return `bad shape ${show(a.shape)}`;
  return { dtype: a.dtype, shape: a.shape };
};

const unary: Rule = arity(1, ([x], a) => ({ dtype: a.dtype ?? x.dtype, shape: x.shape }));

const binary: Rule = arity(2, ([x, y]) => {
  if (!same(x.shape, y.shape)) return `shapes differ: ${show(x.shape)} vs ${show(y.shape)} (broadcast explicitly)`;
  if (x.dtype !== y.dtype) return `dtypes differ: ${x.dtype} vs ${y.dtype}`;
  return { dtype: x.dtype, shape: x.shape };
});

const reduce: Rule = arity(1, ([x], a) => {
  if (!validAxis(x.shape.length, a.axis)) return `bad axis ${a.axis} for rank ${x.shape.length}`;
  return { dtype: x.dtype, shape: x.shape.map((d, i) => (i === a.axis ? 1 : d)) };
});

const rules: Record<Op, Rule> = {
  param: (inputs, a) => (a.name ? leaf(inputs, a) : "a param needs a name"),
  input: (inputs, a) => (a.name ? leaf(inputs, a) : "an input needs a name"),
  const: (inputs, a) => (a.value === undefined ? "a const needs a value" : leaf(inputs, a)),
  neg: unary, exp: unary, log: unary, sqrt: unary, rsqrt: unary, tanh: unary, sigmoid: unary, silu: unary, gelu_tanh: unary,
  cast: (inputs, a) => (a.dtype ? unary(inputs, a) : "a cast needs a dtype"),
  add: binary, sub: binary, mul: binary, div: binary, max: binary, greater: binary,
  where: arity(3, ([c, x, y]) => {
    if (!same(c.shape, x.shape) || !same(x.shape, y.shape)) return "condition and both branches must have one shape";
    return x.dtype === y.dtype ? { dtype: x.dtype, shape: x.shape } : "branch dtypes differ";
  }),
  sum: reduce, reduce_max: reduce, mean: reduce,
  reshape: arity(1, ([x], a) => {
    if (!a.shape || count(a.shape) !== count(x.shape)) return `cannot reshape ${show(x.shape)} to ${show(a.shape ?? [])}`;
    return { dtype: x.dtype, shape: a.shape };
  }),
  permute: arity(1, ([x], a) => {
    const p = a.perm ?? [];
    const ok = p.length === x.shape.length && [...p].sort((i, j) => i - j).every((v, i) => v === i);
    return ok ? { dtype: x.dtype, shape: p.map((i) => x.shape[i]) } : `bad permutation [${p}] for rank ${x.shape.length}`;
  }),
  slice: arity(1, ([x], a) => {
    if (!validAxis(x.shape.length, a.axis)) return `bad axis ${a.axis}`;
    const { start = -1, end = -1 } = a;
    if (!(start >= 0 && end > start && end <= x.shape[a.axis])) return `bad range [${start}, ${end}) for size ${x.shape[a.axis]}`;
    return { dtype: x.dtype, shape: x.shape.map((d, i) => (i === a.axis ? end - start : d)) };
  }),
  concat: (inputs, a) => {
    if (!inputs.length) return "concat needs inputs";
    const first = inputs[0];
    if (!validAxis(first.shape.length, a.axis)) return `bad axis ${a.axis}`;
    const axis = a.axis;
    const compatible = inputs.every((x) => x.dtype === first.dtype && x.shape.length === first.shape.length && x.shape.every((d, i) => i === axis || d === first.shape[i]));
    if (!compatible) return "inputs must agree except along the axis";
    return { dtype: first.dtype, shape: first.shape.map((d, i) => (i === axis ? inputs.reduce((s, x) => s + x.shape[axis], 0) : d)) };
  },
  broadcast: arity(1, ([x], a) => {
    const s = a.shape ?? [];
    const ok = s.length === x.shape.length && x.shape.every((d, i) => d === s[i] || d === 1);
    return ok ? { dtype: x.dtype, shape: s } : `cannot broadcast ${show(x.shape)} to ${show(s)} (reshape to the same rank first)`;
  }),
  matmul: arity(2, ([x, y], a) => {
    if (x.shape.length < 2 || y.shape.length < 2) return "matmul operands need rank >= 2";
    // weights may be stored narrower than activations (bf16/f16 weights, f32 accumulation)
    if (x.dtype === "i32" || y.dtype === "i32") return "matmul operands must be floating point";
    const [m, k] = a.transA ? x.shape.slice(-2).reverse() : x.shape.slice(-2);
    const [k2, n] = a.transB ? y.shape.slice(-2).reverse() : y.shape.slice(-2);
    if (k !== k2) return `inner dimensions differ: ${k} vs ${k2}`;
    const batch = x.shape.slice(0, -2);
    if (y.shape.length > 2 && !same(batch, y.shape.slice(0, -2))) return "batch dimensions differ (a 2-D right operand is shared across the batch)";
    return { dtype: x.dtype === "f32" || y.dtype === "f32" ? "f32" : x.dtype, shape: [...batch, m, n] };
  }),
  embedding: arity(2, ([table, ids]) => {
    if (table.shape.length !== 2 || ids.dtype !== "i32") return "embedding takes a (V, C) table and i32 ids";
    // a 16-bit table (frozen weights kept narrow) is widened as it is read, as by a matmul
    return { dtype: table.dtype === "f16" || table.dtype === "bf16" ? "f32" : table.dtype, shape: [...ids.shape, table.shape[1]] };
  }),
  embedding_backward: arity(2, ([g, ids], a) => {
    if (!a.rows || ids.dtype !== "i32" || !same(g.shape.slice(0, -1), ids.shape)) return "needs rows, i32 ids and a gradient of shape (...ids, C)";
    return { dtype: g.dtype, shape: [a.rows, g.shape[g.shape.length - 1]] };
  }),
  rms_norm: arity(2, ([x, w], a) => normType(x, [w], a)),
  layer_norm: arity(3, ([x, w, b], a) => normType(x, [w, b], a)),
  norm_backward: arity(3, ([g, x, w], a) => {
    if (!same(g.shape, x.shape)) return "the gradient must have the input's shape";
    if (a.wrt === 0) return { dtype: x.dtype, shape: x.shape };
    if (a.wrt === 1 || (a.wrt === 2 && a.norm === "layer")) return { dtype: w.dtype, shape: w.shape };
    return `bad wrt ${a.wrt} for ${a.norm} norm`;
  }),
  rope: arity(2, ([x, pos], a) => {
    const r = a.rope;
    if (!r || x.shape.length !== 4) return "rope takes x (B, T, H, D) and rope attributes";
    const section = x.shape[3] / r.sections;
    if (!Number.isInteger(section) || r.rotaryDim % 2 || r.rotaryDim < 2 || r.rotaryDim > section) return `rotary dim ${r.rotaryDim} does not fit head dim ${x.shape[3]}`;
    if (pos.dtype !== "i32" || !same(pos.shape, [x.shape[0], x.shape[1], r.sections])) return `positions must be i32 (B, T, ${r.sections})`;
    return { dtype: x.dtype, shape: x.shape };
  }),
  attention: (inputs, a) => attentionType(inputs, a, 3),
  cached_attention: (inputs, a) => {
    // inputs: q, kPast, vPast, kNew, vNew, masks...
    const [q, , , kNew, vNew] = inputs;
    if (inputs.length < 5 || !a.attention?.padding) return "expects q, kPast, vPast, kNew, vNew and masks with keyRange (padding)";
    if (a.attention.segments) return "cached_attention takes no segment ids (the new key has none)";
    if (q.shape[1] !== 1 || !same(kNew.shape, vNew.shape) || kNew.shape.length !== 4 || kNew.shape[1] !== 1) return "one new query and its key and value per sequence: q (B, 1, Hq, D), kNew and vNew (B, 1, Hkv, D)";
    if (kNew.shape[0] !== q.shape[0] || kNew.shape[3] !== q.shape[3] || kNew.shape[2] !== inputs[1].shape[2]) return `kNew [${kNew.shape}] does not match q [${q.shape}] and kPast [${inputs[1].shape}]`;
    // the cache may be kept in f16 beside f32 activations (a 16-bit KV cache, half the memory)
    if (kNew.dtype !== q.dtype || vNew.dtype !== q.dtype) return "q and the new key and value share one dtype";
    if (inputs[1].dtype !== inputs[2].dtype || (inputs[1].dtype !== q.dtype && inputs[1].dtype !== "f16")) return "the cache's keys and values share one dtype: q's, or f16";
    return attentionType(inputs.slice(0, 3).concat(inputs.slice(5)), a, 3);
  },
  attention_backward: (inputs, a) => {
    // inputs: dOut, q, k, v, out, masks...
    const [g, q, k, v, out] = inputs;
    if (inputs.length < 5 || !same(g.shape, q.shape) || !same(out.shape, q.shape)) return "expects dOut, q, k, v, out with dOut and out shaped like q";
    const t = attentionType(inputs.slice(1, 4).concat(inputs.slice(5)), a, 3);
    if (typeof t === "string") return t;
    const wrt = [q, k, v][a.wrt ?? -1];
    return wrt ? { dtype: wrt.dtype, shape: wrt.shape } : `bad wrt ${a.wrt}`;
  },
  // inputs: logits, labels[, counted]: the mean divides by the tokens of `counted` that are not ignored
  cross_entropy: (inputs) => ceType(inputs) ?? { dtype: "f32", shape: [] },
  cross_entropy_backward: ([g, ...inputs]) => {
    if (g?.shape.length !== 0) return "the loss gradient must be a scalar";
    return ceType(inputs) ?? { dtype: inputs[0].dtype, shape: inputs[0].shape };
  },
};

function normType(x: Node, params: Node[], a: Readonly<Attrs>): TensorType | string {
  const c = x.shape[x.shape.length - 1];
  if (!(a.eps && a.eps > 0)) return "a norm needs eps > 0";
  if (params.some((p) => !same(p.shape, [c]))) return `weight and bias must be (${c})`;
  return { dtype: x.dtype, shape: x.shape };
}

function attentionType(inputs: readonly Node[], a: Readonly<Attrs>, base: number): TensorType | string {
  const at = a.attention;
  if (!at) return "needs attention attributes";
  const masks = [at.prefix, at.padding, at.segments].filter(Boolean).length;
  if (inputs.length !== base + masks) return `expects q, k, v and ${masks} mask inputs, got ${inputs.length} inputs`;
  const [q, k, v] = inputs;
  if (q.shape.length !== 4 || !same(k.shape, v.shape) || k.shape.length !== 4) return "q (B, T, Hq, D), k and v (B, S, Hkv, D)";
  const [b, t, hq, d] = q.shape;
  const [b2, s, hkv, d2] = k.shape;
  if (b !== b2 || d !== d2 || hq % hkv !== 0) return `incompatible q [${q.shape}] and k [${k.shape}] (query heads must be a multiple of key heads)`;
  if (at.causal && s < t) return "causal attention needs at least as many keys as queries";
  const extra = inputs.slice(base);
  const expected: Shape[] = [...(at.prefix ? [[b]] : []), ...(at.padding ? [[b, 2]] : []), ...(at.segments ? [[b, s]] : [])];
  if (extra.some((m, i) => m.dtype !== "i32" || !same(m.shape, expected[i]))) return "mask inputs must be i32: prefixLen (B), keyRange (B, 2), segmentIds (B, S)";
  return { dtype: q.dtype, shape: q.shape };
}

function ceType([logits, labels, counted, ...rest]: readonly Node[]): string | undefined {
  if (!logits || !labels || rest.length) return "cross entropy takes logits, labels and optionally the labels its mean counts";
  if (logits.shape.length !== 2 || labels.dtype !== "i32" || !same(labels.shape, [logits.shape[0]])) return "cross entropy takes logits (N, V) and i32 labels (N)";
  if (counted && (counted.dtype !== "i32" || counted.shape.length !== 1)) return "the labels a cross entropy's mean counts are i32 (M)";
  return undefined;
}

export function inferType(op: Op, inputs: readonly Node[], attrs: Readonly<Attrs>): TensorType | string {
  return rules[op](inputs, attrs);
}
