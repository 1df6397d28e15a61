// The float64 CPU interpreter: executes any graph (forward and backward) on Float64Array, row-major.
// It is the numerical reference for whole-model checks, so it favours plain loops over speed.
import { diag, fail, invariant, ok, type Result } from "../diagnostics.ts";
import { numel, topoSort, type Graph, type Node, type Shape } from "./node.ts";
import * as ref from "./reference-ops.ts";

type F64 = Float64Array;

/** Values for params and inputs, by name. */
export type Feeds = ReadonlyMap<string, F64>;

/** Runs the graph; returns every named output. A missing or mis-sized feed is an error value. */
export function interpret(g: Graph, feeds: Feeds): Result<Map<string, F64>> {
  const values = new Map<Node, F64>();
  for (const n of topoSort(g.outputs.values())) {
    if (n.op === "param" || n.op === "input") {
      const v = feeds.get(n.attrs.name ?? "");
      if (!v || v.length !== numel(n.shape)) {
        const problem = v ? `has ${v.length} values, expected ${numel(n.shape)}` : "is missing";
        return fail(diag("SFT4002", `The ${n.op} '${n.attrs.name}' ${problem}.`, { where: n.attrs.name, hint: `Feed a Float64Array of shape [${n.shape}].` }));
      }
      values.set(n, v);
    } else values.set(n, evalNode(n, n.inputs.map((i) => values.get(i)!)));
  }
  return ok(new Map([...g.outputs].map(([name, n]) => [name, values.get(n)!])));
}

export function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

const unaryFns: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  sigmoid,
  silu: (x) => x * sigmoid(x),
  // gelu_new / ChatGLM gelu_impl (models.md §3.2, §4.2)
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
  cast: (x) => x,
};

const binaryFns: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  greater: (a, b) => (a > b ? 1 : 0),
};

/** The value of one node given the values of its inputs (contiguous, in the inputs' shapes). */
export function evalNode(n: Node, xs: readonly F64[]): F64 {
  const a = n.attrs;
  const [x, y] = xs;
  const [s0, s1] = n.inputs.map((i) => i.shape);
  const unary = unaryFns[n.op];
  if (unary) return x.map(unary);
  const binary = binaryFns[n.op];
  if (binary) return x.map((v, i) => binary(v, y[i]));
  switch (n.op) {
    case "const":
      return new Float64Array(numel(n.shape)).fill(a.value!);
    case "where":
      return y.map((v, i) => (x[i] !== 0 ? v : xs[2][i]));
    case "sum":
    case "mean":
    case "reduce_max":
      return reduce(n.op, x, s0, a.axis!);
    case "reshape":
      return Float64Array.from(x);
    case "permute":
      return permute(x, s0, a.perm!);
    case "broadcast":
      return broadcast(x, s0, n.shape);
    case "slice":
      return slice(x, s0, a.axis!, a.start!, a.end!);
    case "concat":
      return concat(xs, n.inputs.map((i) => i.shape), a.axis!);
    case "matmul":
      return matmul(x, y, s0, s1, a.transA!, a.transB!);
    case "embedding":
      return ref.embedding(x, y, s0[1]);
    case "embedding_backward":
      return ref.embeddingBackward(x, y, a.rows!, s0[s0.length - 1]);
    case "rms_norm":
      return ref.rmsNorm(x, y, s0, a.eps!);
    case "layer_norm":
      return ref.layerNorm(x, y, xs[2], s0, a.eps!);
    case "norm_backward":
      return ref.normBackward(a.norm!, a.wrt!, x, y, xs[2], s0, a.eps!);
    case "rope":
      return ref.rope(x, y, s0, a.rope!);
    case "attention":
      return ref.attention({ q: x, k: y, v: xs[2], qShape: s0, kShape: s1, masks: xs.slice(3) }, a.attention!);
    case "attention_backward": {
      const t = { q: y, k: xs[2], v: xs[3], qShape: s1, kShape: n.inputs[2].shape, masks: xs.slice(5) };
      return ref.attentionBackward(t, a.attention!, x, xs[4], a.wrt!);
    }
    case "cross_entropy":
      return Float64Array.of(ref.crossEntropy(x, y, s0, a.ignoreIndex!));
    case "cross_entropy_backward":
      return ref.crossEntropyBackward(x[0], y, xs[2], s1, n.attrs.ignoreIndex!);
  }
  invariant(false, `the interpreter cannot evaluate ${n.op}`);
}

function reduce(op: "sum" | "mean" | "reduce_max", x: F64, shape: Shape, axis: number): F64 {
  const len = shape[axis];
  const inner = numel(shape.slice(axis + 1));
  const outer = numel(shape.slice(0, axis));
  const out = new Float64Array(outer * inner).fill(op === "reduce_max" ? -Infinity : 0);
  for (let o = 0; o < outer; o++)
    for (let r = 0; r < len; r++)
      for (let i = 0; i < inner; i++) {
        const v = x[(o * len + r) * inner + i];
        const at = o * inner + i;
        out[at] = op === "reduce_max" ? Math.max(out[at], v) : out[at] + v;
      }
  return op === "mean" ? out.map((v) => v / len) : out;
}

/** out[idx] = x[sum(idx[i] * srcStride[i])]: the one gather loop behind permute and broadcast. */
export function gather(x: F64, outShape: Shape, srcStrides: readonly number[], offset = 0): F64 {
  const out = new Float64Array(numel(outShape));
  const idx = new Array<number>(outShape.length).fill(0);
  for (let k = 0; k < out.length; k++) {
    let at = offset;
    for (let i = 0; i < idx.length; i++) at += idx[i] * srcStrides[i];
    out[k] = x[at];
    for (let i = idx.length - 1; i >= 0 && ++idx[i] === outShape[i]; i--) idx[i] = 0;
  }
  return out;
}

function permute(x: F64, shape: Shape, perm: readonly number[]): F64 {
  const st = strides(shape);
  return gather(x, perm.map((p) => shape[p]), perm.map((p) => st[p]));
}

function broadcast(x: F64, shape: Shape, to: Shape): F64 {
  const st = strides(shape);
  return gather(x, to, st.map((s, i) => (shape[i] === 1 ? 0 : s)));
}

function slice(x: F64, shape: Shape, axis: number, start: number, end: number): F64 {
  const st = strides(shape);
  return gather(x, shape.map((d, i) => (i === axis ? end - start : d)), st, start * st[axis]);
}

function concat(xs: readonly F64[], shapes: readonly Shape[], axis: number): F64 {
  const inner = numel(shapes[0].slice(axis + 1));
  const outer = numel(shapes[0].slice(0, axis));
  const widths = shapes.map((s) => s[axis] * inner);
  const total = widths.reduce((p, w) => p + w, 0);
  const out = new Float64Array(outer * total);
  for (let o = 0; o < outer; o++) {
    let at = o * total;
    xs.forEach((x, k) => {
      out.set(x.subarray(o * widths[k], (o + 1) * widths[k]), at);
      at += widths[k];
    });
  }
  return out;
}

/** Batched matmul; a 2-D right operand is shared by every batch. */
function matmul(x: F64, y: F64, sx: Shape, sy: Shape, transA: boolean, transB: boolean): F64 {
  const r = sx.length;
  const [m, k] = transA ? [sx[r - 1], sx[r - 2]] : [sx[r - 2], sx[r - 1]];
  const n = transB ? sy[sy.length - 2] : sy[sy.length - 1];
  const batch = numel(sx.slice(0, -2));
  const shared = sy.length === 2;
  const out = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const xa = bi * m * k;
    const ya = shared ? 0 : bi * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = x[xa + (transA ? p * m + i : i * k + p)];
          const bv = y[ya + (transB ? j * k + p : p * n + j)];
          acc += av * bv;
        }
        out[(bi * m + i) * n + j] = acc;
      }
  }
  return out;
}
