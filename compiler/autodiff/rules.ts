// Backward rules: for a node, its output gradient `g` and an input index, the gradient with respect
// to that input, built from other ops (or the op's own `_backward` op). Only the inputs that need a
// gradient are asked for, so frozen branches cost nothing.
import * as b from "../ir/build.ts";
import { node, numel, type Node } from "../ir/node.ts";
import { invariant } from "../diagnostics.ts";

type Rule = (n: Node, g: Node, i: number) => Node;

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/** Inputs of an op that never carry gradients (ids, positions, labels, mask data, conditions). */
export function isDifferentiableInput(n: Node, i: number): boolean {
  if (n.inputs[i].dtype === "i32") return false;
  if (n.op === "where") return i !== 0;
  return n.op !== "greater";
}

const rules: Partial<Record<Node["op"], Rule>> = {
  add: (_n, g) => g,
  sub: (_n, g, i) => (i === 0 ? g : b.neg(g)),
  mul: (n, g, i) => b.mul(g, n.inputs[1 - i]),
  // d(x/y)/dy = -(x/y)/y
  div: (n, g, i) => (i === 0 ? b.div(g, n.inputs[1]) : b.neg(b.div(b.mul(g, n), n.inputs[1]))),
  // ties go to the first operand
  max: (n, g, i) => {
    const secondWins = b.greater(n.inputs[1], n.inputs[0]);
    const zero = b.fill(0, g);
    return i === 0 ? b.where(secondWins, zero, g) : b.where(secondWins, g, zero);
  },
  where: (n, g, i) => (i === 1 ? b.where(n.inputs[0], g, b.fill(0, g)) : b.where(n.inputs[0], b.fill(0, g), g)),
  neg: (_n, g) => b.neg(g),
  exp: (n, g) => b.mul(g, n),
  log: (n, g) => b.div(g, n.inputs[0]),
  sqrt: (n, g) => b.div(b.scale(g, 0.5), n),
  // d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  rsqrt: (n, g) => b.mul(g, b.scale(b.mul(n, b.mul(n, n)), -0.5)),
  tanh: (n, g) => b.mul(g, b.sub(b.fill(1, n), b.mul(n, n))),
  sigmoid: (n, g) => b.mul(g, b.mul(n, b.sub(b.fill(1, n), n))),
  // silu' = s (1 + x (1 - s)), s = sigmoid(x)
  silu: (n, g) => {
    const x = n.inputs[0];
    const s = b.sigmoid(x);
    return b.mul(g, b.mul(s, b.add(b.fill(1, x), b.mul(x, b.sub(b.fill(1, x), s)))));
  },
  // gelu = x/2 (1 + t), t = tanh(c (x + k x³)); gelu' = (1 + t)/2 + x/2 (1 - t²) c (1 + 3k x²)
  gelu_tanh: (n, g) => {
    const x = n.inputs[0];
    const x2 = b.mul(x, x);
    const t = b.tanh(b.scale(b.add(x, b.scale(b.mul(x2, x), GELU_K)), GELU_C));
    const one = b.fill(1, x);
    const inner = b.scale(b.add(one, b.scale(x2, 3 * GELU_K)), GELU_C);
    const d = b.add(b.scale(b.add(one, t), 0.5), b.mul(b.scale(x, 0.5), b.mul(b.sub(one, b.mul(t, t)), inner)));
    return b.mul(g, d);
  },
  cast: (n, g) => b.cast(g, n.inputs[0].dtype),
  sum: (n, g) => b.broadcast(g, n.inputs[0].shape),
  mean: (n, g) => b.scale(b.broadcast(g, n.inputs[0].shape), 1 / n.inputs[0].shape[n.attrs.axis!]),
  reduce_max: (n, g) => {
    const x = n.inputs[0];
    const notMax = b.greater(b.broadcast(n, x.shape), x);
    return b.where(notMax, b.fill(0, x), b.broadcast(g, x.shape));
  },
  reshape: (n, g) => b.reshape(g, n.inputs[0].shape),
  permute: (n, g) => {
    const perm = n.attrs.perm!;
    return b.permute(g, perm.map((_, i) => perm.indexOf(i)));
  },
  broadcast: (n, g) => {
    const from = n.inputs[0].shape;
    return from.reduce((acc, d, axis) => (d === 1 && n.shape[axis] !== 1 ? b.sum(acc, axis) : acc), g);
  },
  slice: (n, g) => {
    const x = n.inputs[0];
    const { axis = 0, start = 0, end = 0 } = n.attrs;
    const pad = (len: number) => b.constant(0, x.shape.map((d, i) => (i === axis ? len : d)), x.dtype);
    const parts = [...(start > 0 ? [pad(start)] : []), g, ...(end < x.shape[axis] ? [pad(x.shape[axis] - end)] : [])];
    return parts.length === 1 ? g : b.concat(parts, axis);
  },
  concat: (n, g, i) => {
    const axis = n.attrs.axis!;
    const start = n.inputs.slice(0, i).reduce((s, x) => s + x.shape[axis], 0);
    return b.slice(g, axis, start, start + n.inputs[i].shape[axis]);
  },
  matmul: matmulRule,
  embedding: (n, g) => node("embedding_backward", [g, n.inputs[1]], { rows: n.inputs[0].shape[0] }),
  rms_norm: (n, g, i) => node("norm_backward", [g, n.inputs[0], n.inputs[1]], { norm: "rms", eps: n.attrs.eps, wrt: i }),
  layer_norm: (n, g, i) => node("norm_backward", [g, n.inputs[0], n.inputs[1]], { norm: "layer", eps: n.attrs.eps, wrt: i }),
  rope: (n, g) => b.rope(g, n.inputs[1], { ...n.attrs.rope!, inverse: !n.attrs.rope!.inverse }),
  attention: (n, g, i) => {
    const [q, k, v, ...masks] = n.inputs;
    return node("attention_backward", [g, q, k, v, n, ...masks], { attention: n.attrs.attention, wrt: i });
  },
  cross_entropy: (n, g) => node("cross_entropy_backward", [g, ...n.inputs], { ignoreIndex: n.attrs.ignoreIndex }),
};

// C = op(A) op(B). dA = g op(B)ᵀ, dB = op(A)ᵀ g, each folded into one matmul with transposes.
// A 2-D B shared across a batch gets its gradient from the batch flattened into rows.
function matmulRule(n: Node, g: Node, i: number): Node {
  const [x, y] = n.inputs;
  const { transA = false, transB = false } = n.attrs;
  const sharedB = y.shape.length === 2 && x.shape.length > 2;
  invariant(!(sharedB && transA), "a transposed batched left operand with a shared right operand has no flat gradient");
  if (i === 0) return transA ? b.matmul(y, g, { transA: transB, transB: true }) : b.matmul(g, y, { transB: !transB });
  if (sharedB) {
    const rows = numel(x.shape.slice(0, -1));
    const x2 = b.reshape(x, [rows, x.shape[x.shape.length - 1]]);
    const g2 = b.reshape(g, [rows, g.shape[g.shape.length - 1]]);
    return transB ? b.matmul(g2, x2, { transA: true }) : b.matmul(x2, g2, { transA: true });
  }
  return transB ? b.matmul(g, x, { transA: true, transB: transA }) : b.matmul(x, g, { transA: !transA });
}

/** The gradient flowing into input `i` of `n` given the gradient `g` of its output. */
export function backwardRule(n: Node, g: Node, i: number): Node {
  const rule = rules[n.op];
  invariant(rule, `no backward rule for ${n.op} (differentiating a backward op is not supported)`);
  return rule(n, g, i);
}
