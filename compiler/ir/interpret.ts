// The float64 CPU interpreter: executes any graph (forward and backward) on Float64Array, row-major.
// It is the numerical reference for whole-model checks, so it favours plain loops over speed.
// Library ops (norms, attention, cross-entropy, embedding) run on the float64 references their
// GPU kernels are tested against, so the interpreter and the kernels share one definition.
import { diag, fail, invariant, ok, type Result } from "../diagnostics.ts";
import { numel, topoSort, type Graph, type Node, type Shape } from "./node.ts";
import { rope } from "./rope-reference.ts";
import { alibiSlopes } from "../../stdlib/kernels/alibi.ts";
import { appendedKeys } from "../../stdlib/kernels/attention-decode.ts";
import { maskFromInputs } from "../../stdlib/kernels/attention-mask.ts";
import { attentionBackwardReference, attentionForwardReference, type AttentionProblem } from "../../stdlib/kernels/attention-reference.ts";
import { crossEntropyRef } from "../../stdlib/kernels/cross-entropy.ts";
import { embeddingBackwardRef, embeddingForwardRef } from "../../stdlib/kernels/embedding.ts";
import { normBackwardRef, normForwardRef } from "../../stdlib/kernels/norms.ts";

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
      return embeddingForwardRef(y, x, s0[0], s0[1]);
    case "embedding_backward":
      return embeddingBackwardRef(y, x, a.rows!, s0[s0.length - 1]);
    case "rms_norm":
    case "layer_norm": {
      const cols = s0[s0.length - 1];
      return normForwardRef(n.op === "rms_norm" ? "rms" : "layer", x, y, xs[2], x.length / cols, cols, a.eps!).y;
    }
    case "norm_backward": {
      const cols = s1[s1.length - 1];
      const { dx, dw, db } = normBackwardRef(a.norm!, y, xs[2], x, y.length / cols, cols, a.eps!);
      return [dx, dw, db][a.wrt!];
    }
    case "rope":
      return rope(x, y, s0, a.rope!);
    case "attention":
      return fromHeadsMajor(attentionForwardReference(attentionProblem(n, xs, 0)).out, n.shape);
    case "cached_attention":
      return fromHeadsMajor(attentionForwardReference(cachedAttentionProblem(n, xs)).out, n.shape);
    case "attention_backward": {
      const grads = attentionBackwardReference(attentionProblem(n, xs, 1), toHeadsMajor(x, s0));
      const wrt = n.inputs[1 + a.wrt!];
      return fromHeadsMajor([grads.dq, grads.dk, grads.dv][a.wrt!], wrt.shape);
    }
    case "cross_entropy":
    case "cross_entropy_backward":
      return crossEntropy(n, xs);
  }
  invariant(false, `the interpreter cannot evaluate ${n.op}`);
}

// The library ops run on the float64 references beside their kernels (stdlib/kernels), which
// take attention in (B, H, T, D) layout and report cross-entropy per token.

// (B, L, H, D) -> (B, H, L, D) and back.
const toHeadsMajor = (x: F64, shape: Shape) => permute(x, shape, [0, 2, 1, 3]);
const fromHeadsMajor = (x: F64, shape: Shape) => permute(x, [shape[0], shape[2], shape[1], shape[3]], [0, 2, 1, 3]);

// The attention call of `attention` (q at input 0) or `attention_backward` (dOut first, q at 1).
function attentionProblem(n: Node, xs: readonly F64[], first: number): AttentionProblem {
  const a = n.attrs.attention!;
  const [q, k] = [n.inputs[first], n.inputs[first + 1]];
  const [batch, queryLength, queryHeads, headDim] = q.shape;
  const [, keyLength, kvHeads] = k.shape;
  const masks = xs.slice(first + (n.op === "attention" ? 3 : 4));
  const mask = maskFromInputs(a, masks, keyLength - queryLength, a.alibi ? alibiSlopes(queryHeads) : undefined);
  return {
    shape: { batch, queryHeads, kvHeads, queryLength, keyLength, headDim },
    q: toHeadsMajor(xs[first], q.shape),
    k: toHeadsMajor(xs[first + 1], k.shape),
    v: toHeadsMajor(xs[first + 2], k.shape),
    scale: a.scale,
    mask,
  };
}

// cached_attention as attention over (B, C + 1) keys: each row's first keyRange[b, 1] - 1 cached
// positions, then the new key (node.ts); the query sits at the last position, C.
function cachedAttentionProblem(n: Node, xs: readonly F64[]): AttentionProblem {
  const a = n.attrs.attention!;
  const [q, kPast] = n.inputs;
  const [batch, , queryHeads, headDim] = q.shape;
  const [, past, kvHeads] = kPast.shape;
  const masks = xs.slice(5);
  const keyRanges = masks[a.prefix ? 1 : 0];
  const ends = Array.from({ length: batch }, (_, b) => keyRanges[2 * b + 1]);
  const keys = appendedKeys(xs[1], xs[3], ends, past, kvHeads * headDim);
  const values = appendedKeys(xs[2], xs[4], ends, past, kvHeads * headDim);
  const shape = [batch, past + 1, kvHeads, headDim];
  const mask = maskFromInputs(a, masks, past, a.alibi ? alibiSlopes(queryHeads) : undefined);
  return {
    shape: { batch, queryHeads, kvHeads, queryLength: 1, keyLength: past + 1, headDim },
    q: toHeadsMajor(xs[0], q.shape),
    k: toHeadsMajor(keys, shape),
    v: toHeadsMajor(values, shape),
    scale: a.scale,
    mask,
  };
}

// Sum over non-ignored tokens divided by their count (in `counted` when given; 0 when all are
// ignored), or its gradient scaled by dLoss.
function crossEntropy(n: Node, xs: readonly F64[]): F64 {
  const backward = n.op === "cross_entropy_backward";
  const [logits, labels, counted] = backward ? xs.slice(1) : xs;
  const [rows, vocab] = n.inputs[backward ? 1 : 0].shape;
  const ignore = n.attrs.ignoreIndex!;
  const count = (counted ?? labels).reduce((c, l) => c + (l === ignore ? 0 : 1), 0);
  const scale = count ? (backward ? xs[0][0] : 1) / count : 0;
  const { loss, dLogits } = crossEntropyRef(logits, labels, rows, vocab, scale, ignore);
  return backward ? dLogits : Float64Array.of(loss.reduce((sum, l) => sum + l, 0) / Math.max(count, 1));
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

// Batched matmul; a 2-D right operand is shared by every batch.
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
