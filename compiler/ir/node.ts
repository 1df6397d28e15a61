// The op-graph IR: one node type. A node is an op applied to input nodes, with attributes, and
// carries its inferred dtype and shape. Graphs are the nodes reachable from named outputs.
// Nodes are immutable; passes build new nodes instead of editing old ones.
import { invariant } from "../diagnostics.ts";
import { inferType } from "./infer.ts";

export type DType = "f32" | "f16" | "bf16" | "i32";
export type Shape = readonly number[];

/** The whole op set (39 ops). Higher-level ops map to library kernels and have `_backward` ops. */
export const OPS = [
  // leaves
  "param", "input", "const",
  // elementwise unary
  "neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "gelu_tanh", "cast",
  // elementwise binary and select
  "add", "sub", "mul", "div", "max", "greater", "where",
  // reductions over one axis (the axis is kept with size 1)
  "sum", "reduce_max", "mean",
  // movement
  "reshape", "permute", "slice", "concat", "broadcast",
  // library-kernel ops
  "matmul", "embedding", "embedding_backward", "rms_norm", "layer_norm", "norm_backward",
  "rope", "attention", "attention_backward", "cached_attention", "cross_entropy", "cross_entropy_backward",
] as const;
export type Op = (typeof OPS)[number];

export const UNARY_OPS: ReadonlySet<Op> = new Set<Op>(["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "gelu_tanh", "cast"]);
export const BINARY_OPS: ReadonlySet<Op> = new Set<Op>(["add", "sub", "mul", "div", "max", "greater"]);
export const ELEMENTWISE_OPS: ReadonlySet<Op> = new Set<Op>([...UNARY_OPS, ...BINARY_OPS, "where"]);
export const MOVEMENT_OPS: ReadonlySet<Op> = new Set<Op>(["reshape", "permute", "slice", "concat", "broadcast"]);
export const LEAF_OPS: ReadonlySet<Op> = new Set<Op>(["param", "input", "const"]);

export type RopeStyle = "half" | "interleaved";

/** Rotary embedding on x (B, T, H, D) with positions (B, T, sections). */
export interface RopeAttrs {
  style: RopeStyle;
  /** Dims rotated at the start of each section; the rest pass through. */
  rotaryDim: number;
  /** 1, or 2 for GLM 2-D positions: the head splits in two halves, each with its own stream. */
  sections: 1 | 2;
  base: number;
  /** The inverse rotation (the backward of a rotation). */
  inverse: boolean;
}

/**
 * Attention on q (B, T, Hq, D), k and v (B, S, Hkv, D) with Hq a multiple of Hkv; query row i sits
 * at key position i + S - T. Optional mask inputs (i32) follow q, k, v in this order:
 * prefixLen (B), keyRange (B, 2) and segmentIds (B, S), as stdlib/kernels/attention-mask.ts.
 */
export interface AttentionAttrs {
  scale: number;
  causal: boolean;
  /** GLM: keys j < prefixLen[b] are visible to every query (bidirectional prefix). */
  prefix: boolean;
  /** Only keys in [keyRange[b, 0], keyRange[b, 1]) are real: left or right padding. */
  padding: boolean;
  /** Packed sequences: a query sees a key only when their segmentIds agree. */
  segments: boolean;
  /** Baichuan-13B ALiBi bias slope_h * j (models.md §2.2). */
  alibi: boolean;
}

// cached_attention (the same attributes): one new query per sequence, q (B, 1, Hq, D), over a KV
// cache kPast, vPast (B, C, Hkv, D) and the new token's own key and value kNew, vNew (B, 1, Hkv,
// D), as if the keys were the cache's first keyRange[b, 1] - 1 positions followed by the new one:
// the cache holds each row's positions left of that end and the new key is not copied in to be
// attended (the runtime appends it after the step). Inputs: q, kPast, vPast, kNew, vNew, then the
// masks as for attention, keyRange required (`padding`). The cache is in q's dtype or in f16 (a
// 16-bit cache beside f32 activations). The causal mask has nothing to hide from the last
// position; ALiBi's bias moves by one constant per row, which the softmax ignores.

/** Every attribute an op may carry; each op reads only its own (see infer.ts). */
export interface Attrs {
  name?: string;
  value?: number;
  dtype?: DType;
  axis?: number;
  start?: number;
  end?: number;
  shape?: Shape;
  perm?: readonly number[];
  transA?: boolean;
  transB?: boolean;
  eps?: number;
  norm?: "rms" | "layer";
  /** Which input a `_backward` op differentiates. */
  wrt?: number;
  rows?: number;
  ignoreIndex?: number;
  rope?: RopeAttrs;
  attention?: AttentionAttrs;
}

export interface Node {
  readonly id: number;
  readonly op: Op;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly inputs: readonly Node[];
  readonly attrs: Readonly<Attrs>;
}

let nextId = 0;

/** Creates a node; its dtype and shape are inferred, and a type error is an internal bug. */
export function node(op: Op, inputs: readonly Node[], attrs: Attrs = {}): Node {
  const type = inferType(op, inputs, attrs);
  invariant(typeof type !== "string", `${op}(${inputs.map((i) => `${i.dtype}[${i.shape}]`).join(", ")}): ${type}`);
  return Object.freeze({ id: nextId++, op, dtype: type.dtype, shape: Object.freeze([...type.shape]), inputs: Object.freeze([...inputs]), attrs: Object.freeze({ ...attrs }) });
}

/** A graph: named outputs; its nodes are everything they reach. */
export interface Graph {
  readonly outputs: ReadonlyMap<string, Node>;
}

export function graph(outputs: Iterable<readonly [string, Node]>): Graph {
  return { outputs: new Map(outputs) };
}

export function numel(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function isFloat(dtype: DType): boolean {
  return dtype !== "i32";
}

/**
 * Everything reachable from `roots` through `children`, children before parents (iterative: graphs
 * are deep). Items for which `stop` holds are neither listed nor walked through; `enter` sees each
 * item once, before its children; a cycle calls `onCycle` (default: an internal error) and stops.
 */
export function postOrder<T>(
  roots: Iterable<T>,
  children: (t: T) => readonly T[],
  hooks: { stop?: (t: T) => boolean; enter?: (t: T) => void; onCycle?: (t: T) => void } = {},
): T[] {
  const order: T[] = [];
  const state = new Map<T, "open" | "done">();
  for (const root of roots) {
    const stack: [T, number][] = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [t, i] = top;
      if (i === 0) {
        if (state.get(t) === "done" || hooks.stop?.(t)) {
          stack.pop();
          continue;
        }
        if (state.get(t) === "open") {
          if (!hooks.onCycle) invariant(false, "the graph has a cycle");
          hooks.onCycle(t);
          return order;
        }
        state.set(t, "open");
        hooks.enter?.(t);
      }
      const next = children(t);
      if (i < next.length) {
        top[1]++;
        stack.push([next[i], 0]);
      } else {
        state.set(t, "done");
        order.push(t);
        stack.pop();
      }
    }
  }
  return order;
}

/** Nodes reachable from `roots`, every input before its users; `stop` nodes are left out. */
export function topoSort(roots: Iterable<Node>, stop?: (n: Node) => boolean): Node[] {
  return postOrder(roots, (n) => n.inputs, { stop });
}

/** For each node, the nodes that read it (in topological order). */
export function consumers(order: readonly Node[]): Map<Node, Node[]> {
  const users = new Map<Node, Node[]>(order.map((n) => [n, []]));
  for (const n of order) for (const i of new Set(n.inputs)) users.get(i)?.push(n);
  return users;
}
