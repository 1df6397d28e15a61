// The kernel catalog the scheduler targets: for each kernel, the IR ops it implements, the
// library kernels it launches (names of the KernelSpecs in stdlib/kernels/), which inputs it can
// read as strided views, which elementwise epilogues it absorbs, and which nodes share a launch.
// Library kernels take buffers, not expressions, so only the generated kernels ("elementwise",
// "reduce", compiled by compiler/codegen) absorb elementwise prologues. Epilogues are what the
// library kernel's own options express (matmul's bias, alpha and beta·C).
import { numel, type Node, type Op } from "../ir/node.ts";
import { attentionShape } from "./attention-shape.ts";
import { isContiguous, type View } from "./views.ts";
import { storageBytes } from "../../stdlib/kernels/dtype.ts";

/**
 * How an absorbed epilogue node combines with the kernel's result. "low-rank": + T·op(L), a
 * matmul of small inner size (a LoRA up-projection, or its input gradient) computed inside the
 * epilogue of the matmul it is added to, instead of in a launch of its own.
 */
export type EpilogueKind = "bias" | "residual" | "alpha" | "low-rank";

/** The largest inner size of a matmul that a low-rank epilogue computes (LoRA ranks are 4 to 64). */
const LOW_RANK_MAX = 64;

export interface CatalogEntry {
  name: string;
  /** KernelSpec names launched, in order, for the library nodes sharing the launch. */
  launches: (nodes: readonly Node[]) => readonly string[];
  source: string;
  ops: readonly Op[];
  /** Inputs may be elementwise expressions computed inside the kernel. */
  prologue: boolean;
  /**
   * The kind of epilogue `chain` is when applied to `acc` after the epilogues `before`, or
   * undefined; `lowRank` holds the small matmuls a low-rank epilogue may compute.
   */
  epilogue?: (chain: Node, acc: Node, viewOf: (n: Node) => View | undefined, before: readonly EpilogueKind[], lowRank: ReadonlySet<Node>) => EpilogueKind | undefined;
  /** Whether input `i` of `n` can be read through view `v` without a copy. */
  acceptsView: (n: Node, i: number, v: View) => boolean;
  /** Nodes with equal keys run as one launch with several outputs. */
  mergeKey?: (n: Node) => string;
  uniforms: (n: Node) => Record<string, number>;
  /** Bytes of side outputs kept with the result (attention's log-sum-exp for the backward, where one reads it: saved-statistics.ts). */
  extraBytes?: (n: Node) => number;
}

const any = () => true;
const innerContiguous = (_n: Node, _i: number, v: View) => v.strides[v.strides.length - 1] === 1 || v.shape[v.shape.length - 1] === 1;
const contiguous = (_n: Node, _i: number, v: View) => isContiguous(v);
const last = (n: Node) => n.shape[n.shape.length - 1];
const rowsCols = (x: Node) => ({ rows: numel(x.shape) / last(x), cols: last(x) });
// side outputs are buffers of their own, each rounded up as storage is (storageBytes)
const f32Buffer = (elements: number) => storageBytes("f32", elements);
// the log-sum-exp an attention launch writes per query row and head of its (B, T, Hq, D) output, f32
const logSumExpBytes = (n: Node) => f32Buffer(n.shape[0] * n.shape[1] * n.shape[2]);

/** The inner size K of a matmul node. */
export function matmulInner(n: Node): number {
  const x = n.inputs[0];
  return n.attrs.transA ? x.shape[x.shape.length - 2] : last(x);
}

/**
 * Whether a low-rank epilogue should compute matmul `n`: its inner size K is at most
 * LOW_RANK_MAX and at most a quarter of its output's rows and columns. The epilogue spends K
 * scalar products per output where its own launch would write, copy and read back every output;
 * the bound is meant to admit a LoRA rank against 1024 tokens and 4096 features and to leave out
 * a decode step's single row and a small model's ordinary projections. It is not timed: on an
 * H200 two LoRA steps with the epilogue (1.24, 1.36 s) did not resolve its effect (bench/RESULTS.md).
 */
export function isLowRankProduct(n: Node): boolean {
  if (n.op !== "matmul") return false;
  const k = matmulInner(n);
  return k <= LOW_RANK_MAX && 4 * k <= Math.min(n.shape[n.shape.length - 2], last(n));
}

// The matmul's epilogue (matmul.ts: C = alpha·op(A)op(B) + bias + T·op(L) + beta·C): * alpha
// first, then at most one + bias[n], one + a low-rank product and one + residual or
// + beta·residual (the output starts as the residual, GLM's alpha·LN(x) included).
function matmulEpilogue(chain: Node, acc: Node, viewOf: (n: Node) => View | undefined, before: readonly EpilogueKind[], lowRank: ReadonlySet<Node>): EpilogueKind | undefined {
  const other = chain.inputs.find((i) => i !== acc);
  if (!other || chain.inputs.filter((i) => i === acc).length !== 1) return undefined;
  const kind = chain.op === "add" && lowRank.has(other) ? "low-rank" : matmulEpilogueKind(chain, acc, other, viewOf);
  const allowed = kind === "alpha" ? before.length === 0 : kind !== undefined && !before.includes(kind);
  return allowed ? kind : undefined;
}

function matmulEpilogueKind(chain: Node, acc: Node, other: Node, viewOf: (n: Node) => View | undefined): EpilogueKind | undefined {
  if (chain.op === "mul" && other.op === "const" && chain.inputs[0] === acc) return "alpha";
  if (chain.op !== "add") return undefined;
  const scaled = residualOperand(chain, acc);
  const v = viewOf(scaled);
  if (!v) return undefined;
  if (scaled === other && v.strides.slice(0, -1).every((s) => s === 0) && v.strides[v.strides.length - 1] === 1) return "bias";
  return isContiguous(v) ? "residual" : undefined;
}

/** The tensor a residual epilogue adds (GLM scales it by a constant: beta·C). */
export function residualOperand(chain: Node, acc: Node): Node {
  const other = chain.inputs.find((i) => i !== acc)!;
  return other.op === "mul" && other.inputs[1].op === "const" ? other.inputs[0] : other;
}

// the uniforms the printed schedule shows for attention node `n` (q at input `first`)
function attentionUniforms(n: Node, first: number): Record<string, number> {
  const s = attentionShape(n, first);
  return { batch: s.batch, queries: s.queryLength, keys: s.keyLength, heads: s.queryHeads, kvHeads: s.kvHeads, headDim: s.headDim };
}

export const catalog: readonly CatalogEntry[] = [
  {
    name: "matmul",
    launches: () => ["matmul_tiled"],
    source: "stdlib/kernels/matmul.ts",
    ops: ["matmul"],
    prologue: false,
    epilogue: matmulEpilogue,
    // each operand: rows or columns contiguous (the transposes are flags), any batch stride
    acceptsView: (_n, _i, v) => v.strides.slice(-2).includes(1),
    uniforms: (n) => ({ batch: numel(n.shape.slice(0, -2)), M: n.shape[n.shape.length - 2], N: last(n), K: matmulInner(n) }),
  },
  {
    name: "embedding",
    launches: () => ["embedding_forward"],
    source: "stdlib/kernels/embedding.ts",
    ops: ["embedding"],
    prologue: false,
    acceptsView: contiguous,
    uniforms: (n) => ({ tokens: numel(n.inputs[1].shape), rows: n.inputs[0].shape[0], cols: last(n) }),
  },
  {
    name: "embedding_backward",
    launches: () => ["embedding_backward"],
    source: "stdlib/kernels/embedding.ts",
    ops: ["embedding_backward"],
    prologue: false,
    acceptsView: contiguous,
    uniforms: (n) => ({ tokens: numel(n.inputs[1].shape), rows: n.shape[0], cols: last(n) }),
  },
  {
    name: "norm",
    launches: (nodes) => [nodes[0].op === "rms_norm" ? "rmsnorm_forward" : "layernorm_forward"],
    source: "stdlib/kernels/norms.ts",
    ops: ["rms_norm", "layer_norm"],
    prologue: false,
    acceptsView: contiguous,
    uniforms: (n) => rowsCols(n),
    // rstd (and LayerNorm's mean) per row, saved for a backward that reads them; counted with
    // the output, which lives about as long
    extraBytes: (n) => (n.op === "rms_norm" ? 1 : 2) * f32Buffer(rowsCols(n).rows),
  },
  {
    name: "norm_backward",
    // dx from one kernel, dweight and dbias from another; only those the graph needs run
    launches: (nodes) => {
      const kind = nodes[0].attrs.norm === "rms" ? "rmsnorm" : "layernorm";
      return [...(nodes.some((n) => n.attrs.wrt === 0) ? [`${kind}_backward_input`] : []), ...(nodes.some((n) => n.attrs.wrt !== 0) ? [`${kind}_backward_weight`] : [])];
    },
    source: "stdlib/kernels/norms.ts",
    ops: ["norm_backward"],
    prologue: false,
    acceptsView: contiguous,
    // dx, dweight and dbias of one norm share the launch
    mergeKey: (n) => `norm_backward|${n.inputs.map((i) => i.id)}|${n.attrs.norm}|${n.attrs.eps}`,
    uniforms: (n) => rowsCols(n.inputs[1]),
  },
  {
    name: "rope",
    launches: () => ["rope"],
    source: "stdlib/kernels/rope.ts",
    ops: ["rope"],
    prologue: false,
    // (B, T, H, D) views with contiguous head dims (attention-layout.ts TensorView)
    acceptsView: innerContiguous,
    uniforms: (n) => ({ batch: n.shape[0], tokens: n.shape[1], heads: n.shape[2], headDim: n.shape[3], rotaryDim: n.attrs.rope!.rotaryDim }),
  },
  {
    name: "attention",
    launches: () => ["attention_forward"],
    source: "stdlib/kernels/attention-forward.ts",
    ops: ["attention"],
    prologue: false,
    acceptsView: innerContiguous,
    uniforms: (n) => attentionUniforms(n, 0),
    extraBytes: logSumExpBytes,
  },
  {
    name: "cached_attention",
    // a decode step over the KV cache: the split keys, then their combination (attention-decode.ts)
    launches: () => ["attention_decode_split", "attention_decode_combine"],
    source: "stdlib/kernels/attention-decode.ts",
    ops: ["cached_attention"],
    prologue: false,
    acceptsView: innerContiguous,
    // the keys as the launch counts them: the cache's positions, then the new one
    uniforms: (n) => attentionUniforms(n, 0),
    // no extraBytes: no backward reads its log-sum-exp, which goes into the launch workspace
  },
  {
    name: "attention_backward",
    // FlashAttention-2: D = rowsum(dO * O), then dK/dV per key block, then dQ per query block
    launches: () => ["attention_backward_delta", "attention_backward_dkdv", "attention_backward_dq"],
    source: "stdlib/kernels/attention-backward.ts",
    ops: ["attention_backward"],
    prologue: false,
    acceptsView: innerContiguous,
    mergeKey: (n) => `attention_backward|${n.inputs.map((i) => i.id)}`,
    uniforms: (n) => attentionUniforms(n, 1),
  },
  {
    name: "cross_entropy",
    // per-token losses and the logits gradient in one pass; the mean loss is a generated reduction
    launches: () => ["cross_entropy", "fused_reduce"],
    source: "stdlib/kernels/cross-entropy.ts",
    ops: ["cross_entropy", "cross_entropy_backward"],
    prologue: false,
    acceptsView: contiguous,
    // the loss and the logits gradient come from one pass over the logits
    // (only when the loss gradient is a constant: otherwise it would depend on the loss itself)
    mergeKey: (n) => {
      if (n.op === "cross_entropy_backward" && n.inputs[0].op !== "const") return `cross_entropy_backward|${n.id}`;
      const [logits, labels] = n.op === "cross_entropy" ? n.inputs : n.inputs.slice(1);
      return `cross_entropy|${logits.id}|${labels.id}`;
    },
    uniforms: (n) => {
      const logits = n.op === "cross_entropy" ? n.inputs[0] : n.inputs[1];
      return { rows: logits.shape[0], vocab: logits.shape[1] };
    },
    // the per-token losses
    extraBytes: (n) => (n.op === "cross_entropy" ? f32Buffer(n.inputs[0].shape[0]) : 0),
  },
  {
    name: "reduce",
    launches: () => ["fused_reduce"],
    source: "compiler/codegen/fused-kernel.ts",
    ops: ["sum", "mean", "reduce_max"],
    prologue: true,
    acceptsView: any,
    uniforms: (n) => {
      const x = n.inputs[0];
      const axis = n.attrs.axis!;
      return { outer: numel(x.shape.slice(0, axis)), length: x.shape[axis], inner: numel(x.shape.slice(axis + 1)) };
    },
  },
  {
    name: "elementwise",
    launches: () => ["fused_elementwise"],
    source: "compiler/codegen/fused-kernel.ts",
    ops: ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "gelu_tanh", "cast", "add", "sub", "mul", "div", "max", "greater", "where", "concat"],
    prologue: true,
    acceptsView: any,
    uniforms: (n) => ({ n: numel(n.shape) }),
  },
];

const byOp = new Map<Op, CatalogEntry>(catalog.flatMap((e) => e.ops.map((op): [Op, CatalogEntry] => [op, e])));

/** The catalog entry implementing op (movement ops and leaves have none: they are views and buffers). */
export function entryFor(op: Op): CatalogEntry | undefined {
  return byOp.get(op);
}

/**
 * The library kernel an elementwise kernel matches, when its whole expression is one: SwiGLU
 * (`silu(a) * b`, activations.ts) or a single activation. Otherwise the generated kernel.
 */
export function elementwiseLaunchName(root: Node, inKernel: (n: Node) => boolean): string {
  const [x, y] = root.inputs;
  const leafOrView = (n: Node) => !inKernel(n);
  if (root.op === "mul" && x.op === "silu" && inKernel(x) && leafOrView(x.inputs[0]) && leafOrView(y)) return "swiglu_forward";
  if ((root.op === "silu" || root.op === "gelu_tanh") && leafOrView(x)) return `${root.op}_forward`;
  return "fused_elementwise";
}
