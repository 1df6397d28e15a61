// Small constructors over `node()`, so graph builders and rules read like the math they express.
import { node, type Attrs, type AttentionAttrs, type DType, type Node, type RopeAttrs, type Shape } from "./node.ts";

export const param = (name: string, shape: Shape, dtype: DType = "f32") => node("param", [], { name, shape, dtype });
export const input = (name: string, shape: Shape, dtype: DType = "f32") => node("input", [], { name, shape, dtype });
export const constant = (value: number, shape: Shape, dtype: DType = "f32") => node("const", [], { value, shape, dtype });
/** A constant shaped and typed like `like`. */
export const fill = (value: number, like: Node) => constant(value, like.shape, like.dtype);

export const add = (a: Node, b: Node) => node("add", [a, b]);
export const sub = (a: Node, b: Node) => node("sub", [a, b]);
export const mul = (a: Node, b: Node) => node("mul", [a, b]);
export const div = (a: Node, b: Node) => node("div", [a, b]);
export const maximum = (a: Node, b: Node) => node("max", [a, b]);
export const greater = (a: Node, b: Node) => node("greater", [a, b]);
export const where = (c: Node, a: Node, b: Node) => node("where", [c, a, b]);
export const scale = (a: Node, s: number) => mul(a, fill(s, a));

const unary = (op: "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "tanh" | "sigmoid" | "silu" | "gelu_tanh") => (x: Node) => node(op, [x]);
export const neg = unary("neg");
export const exp = unary("exp");
export const log = unary("log");
export const sqrt = unary("sqrt");
export const rsqrt = unary("rsqrt");
export const tanh = unary("tanh");
export const sigmoid = unary("sigmoid");
export const silu = unary("silu");
export const geluTanh = unary("gelu_tanh");
export const cast = (x: Node, dtype: DType) => node("cast", [x], { dtype });

export const sum = (x: Node, axis: number) => node("sum", [x], { axis });
export const mean = (x: Node, axis: number) => node("mean", [x], { axis });
export const reduceMax = (x: Node, axis: number) => node("reduce_max", [x], { axis });

export const reshape = (x: Node, shape: Shape) => node("reshape", [x], { shape });
export const permute = (x: Node, perm: readonly number[]) => node("permute", [x], { perm });
export const slice = (x: Node, axis: number, start: number, end: number) => node("slice", [x], { axis, start, end });
export const concat = (xs: readonly Node[], axis: number) => node("concat", xs, { axis });
export const broadcast = (x: Node, shape: Shape) => node("broadcast", [x], { shape });

/** Broadcasts a lower-rank tensor (aligned to the trailing dims, numpy style) to `shape`. */
export function expandTo(x: Node, shape: Shape): Node {
  const padded = x.shape.length === shape.length ? x : reshape(x, [...Array(shape.length - x.shape.length).fill(1), ...x.shape]);
  return broadcast(padded, shape);
}

export const matmul = (a: Node, b: Node, opts: { transA?: boolean; transB?: boolean } = {}) =>
  node("matmul", [a, b], { transA: opts.transA ?? false, transB: opts.transB ?? false });
export const embedding = (table: Node, ids: Node) => node("embedding", [table, ids]);
export const rmsNorm = (x: Node, w: Node, eps: number) => node("rms_norm", [x, w], { eps });
export const layerNorm = (x: Node, w: Node, b: Node, eps: number) => node("layer_norm", [x, w, b], { eps });
export const rope = (x: Node, positions: Node, attrs: RopeAttrs) => node("rope", [x, positions], { rope: attrs });
/** Attention; `masks` are the mask inputs the attributes ask for (prefixLen, keyRange, segmentIds). */
export const attention = (q: Node, k: Node, v: Node, attrs: AttentionAttrs, masks: readonly Node[] = []) =>
  node("attention", [q, k, v, ...masks], { attention: attrs });
/** cached_attention (node.ts): a decode step's query over the cache and its own new key and value. */
export const cachedAttention = (q: Node, kPast: Node, vPast: Node, kNew: Node, vNew: Node, attrs: AttentionAttrs, masks: readonly Node[]) =>
  node("cached_attention", [q, kPast, vPast, kNew, vNew, ...masks], { attention: attrs });
/** The token-mean cross-entropy; with `counted`, the sum over `labels` divided by the tokens of `counted` not ignored (one chunk of a longer mean). */
export const crossEntropy = (logits: Node, labels: Node, ignoreIndex = -100, counted?: Node) => node("cross_entropy", counted ? [logits, labels, counted] : [logits, labels], { ignoreIndex });

/** A copy of `n` with new inputs (same op and attributes); used by rewrites and recomputation. */
export function withInputs(n: Node, inputs: readonly Node[], attrs: Attrs = n.attrs): Node {
  return node(n.op, inputs, attrs);
}
