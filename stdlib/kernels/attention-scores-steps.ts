// The kernel sequence of attention through a materialized score matrix (attention-scores.ts), as
// kernels bound to named tensors, so the runtime's launches, the device's probe and its tuning
// run the same steps. Per batch row and chunk of query heads:
//   forward:  S = Q K^T, softmax (P and the log-sum-exp), O = P V
//   backward: (delta = rowsum(dO * O) first, once) S = Q K^T, softmax recomputed from the
//             log-sum-exp, dP = dO V^T, dS = P * (dP - delta), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO
// The products are batched over the chunk's heads: an operand is a window of its (B, L, H, D)
// view from the chunk's batch row and first head, rows its token stride apart, heads its head
// stride apart. With grouped queries a chunk stays within one group: K and V are its key/value
// head for every head (stride 0), and dK and dV sum the group's heads (keyValueGradients).
// The sequence is built as data first (Step), so the windows it binds are the ones the chunking
// rule checks (scoresChunkHeads), then bound to kernels.
// Tensor names: q, k, v, o, lse, scores (the chunk's f32 (heads, T, S) workspace); in the
// backward also dout, delta, dq, dkv (dK and dV in one buffer, as views.dk and views.dv place
// them) and grad (the scores' gradients). The mask's binding keeps its own name.
import type { AttentionVariant, AttentionViews } from "./attention-common.ts";
import { attentionBackwardUniforms, attentionDeltaKernel, type BackwardViews } from "./attention-backward.ts";
import { viewIndex, type TensorView } from "./attention-layout.ts";
import type { AttentionShape } from "./attention-reference.ts";
import { SCORES_CHUNK_BYTES, scoresChunkUniforms, scoresGradKernel, scoresGradUniforms, scoresSoftmaxKernel, takesScores, type AttentionScoresChoice, type ScoresChunk } from "./attention-scores.ts";
import { bytesPerElement, type StorageDType } from "./dtype.ts";
import type { BoundKernel, TensorRef } from "./kernel.ts";
import { matmulUniforms, type MatmulKernel, type MatmulShape } from "./matmul.ts";

/** One attention call on the score-matrix path. */
export interface ScoresCall {
  shape: AttentionShape;
  variant: AttentionVariant;
  scale: number;
  /** Query heads per chunk (scoresChunkHeads). */
  heads: number;
}

/**
 * Byte offsets at which a bind group may start a window of a buffer: WebGPU's default
 * minStorageBufferOffsetAlignment, which the runtime does not ask to lower.
 */
const WINDOW_ALIGNMENT = 256;

/**
 * Query heads per chunk of an attention call on the score-matrix path, or undefined where the
 * path does not apply: one query row (decode), one head's f32 scores over `chunkBytes`, or no
 * chunking whose windows (of Q, K, V and the rest, elements of `dtype`) all start at offsets a
 * bind group can take. The most heads that fit, within a group under grouped queries.
 */
export function scoresChunkHeads(direction: "forward", shape: AttentionShape, dtype: StorageDType, views: AttentionViews, chunkBytes?: number): number | undefined;
export function scoresChunkHeads(direction: "forward" | "backward", shape: AttentionShape, dtype: StorageDType, views: BackwardViews, chunkBytes?: number): number | undefined;
export function scoresChunkHeads(direction: "forward" | "backward", shape: AttentionShape, dtype: StorageDType, views: AttentionViews | BackwardViews, chunkBytes = SCORES_CHUNK_BYTES): number | undefined {
  return chunkHeads(direction, shape, dtype, views, chunkBytes);
}

// scoresChunkHeads without its overloads, which pair the backward with BackwardViews
function chunkHeads(direction: "forward" | "backward", shape: AttentionShape, dtype: StorageDType, views: AttentionViews | BackwardViews, chunkBytes: number): number | undefined {
  const { queryHeads, kvHeads, queryLength: T, keyLength: S } = shape;
  if (T === 1) return undefined;
  const group = queryHeads / kvHeads;
  for (let heads = Math.min(group > 1 ? group : queryHeads, Math.floor(chunkBytes / (4 * T * S))); heads >= 1; heads--) {
    if (group > 1 && group % heads !== 0) continue;
    const call = { shape, dtype, scale: 1, heads };
    // the backward's views are BackwardViews (the overloads)
    const steps = direction === "forward" ? forwardSteps(call, views) : backwardSteps(call, views as BackwardViews);
    if (steps.every((s) => s.kind !== "product" || [s.a, s.b, s.c].every(bindable))) return heads;
  }
  return undefined;
}

/** Query heads per chunk where an attention launch of `direction` takes the score-matrix path under `choice` (scoresChunkHeads), else undefined: the fused kernels. */
export function scoresPathHeads(choice: AttentionScoresChoice, direction: "forward", shape: AttentionShape, dtype: StorageDType, views: AttentionViews): number | undefined;
export function scoresPathHeads(choice: AttentionScoresChoice, direction: "backward", shape: AttentionShape, dtype: StorageDType, views: BackwardViews): number | undefined;
export function scoresPathHeads(choice: AttentionScoresChoice, direction: "forward" | "backward", shape: AttentionShape, dtype: StorageDType, views: AttentionViews | BackwardViews): number | undefined {
  if (!takesScores(choice, direction, shape.headDim, shape.kvHeads < shape.queryHeads)) return undefined;
  return chunkHeads(direction, shape, dtype, views, choice.chunkBytes ?? SCORES_CHUNK_BYTES);
}

/** O = softmax(scale Q K^T + bias, masked) V, and the log-sum-exp (B, Hq, T) into `lse`. */
export function scoresForwardKernels(call: ScoresCall, views: AttentionViews, matmul: MatmulKernel): BoundKernel[] {
  return forwardSteps(chunkedCall(call), views).map((s) => boundStep(s, call, matmul));
}

/** dQ, dK and dV through `views.dq`, `views.dk` and `views.dv`, delta first. */
export function scoresBackwardKernels(call: ScoresCall, views: BackwardViews, matmul: MatmulKernel): BoundKernel[] {
  return backwardSteps(chunkedCall(call), views).map((s) => boundStep(s, call, matmul));
}

// What a call's steps depend on (its mask flags only bind them: boundStep).
interface ChunkedCall {
  shape: AttentionShape;
  dtype: StorageDType;
  scale: number;
  heads: number;
}

const chunkedCall = (call: ScoresCall): ChunkedCall => ({ shape: call.shape, dtype: call.variant.dtype, scale: call.scale, heads: call.heads });

/** An operand of a chunk's product: a tensor window with its stored layout. */
interface Operand {
  ref: TensorRef;
  dtype: StorageDType;
  /** Stored transposed: (K, M) for A, (N, K) for B. */
  trans: boolean;
  /** Elements between stored rows. */
  ld: number;
  /** Elements between the chunk's heads (the matmul's batch). */
  stride: number;
}

const bindable = (o: Operand) => ((o.ref.start ?? 0) * bytesPerElement(o.dtype)) % WINDOW_ALIGNMENT === 0;

// A step of the sequence: C = alpha op(A) op(B) (+ C where `accumulate`) for each of `heads`,
// (m, k) x (k, n); or one of the path's own kernels (attention-scores.ts) over a chunk's scores.
type Step =
  | { kind: "product"; a: Operand; b: Operand; c: Operand; heads: number; dims: [number, number, number]; alpha: number; accumulate: boolean }
  | { kind: "softmax"; chunk: ScoresChunk; mode: "forward" | "recompute" }
  | { kind: "scores gradient"; chunk: ScoresChunk }
  | { kind: "delta"; views: BackwardViews };

function product(a: Operand, b: Operand, c: Operand, heads: number, dims: [number, number, number], alpha = 1, accumulate = false): Step {
  return { kind: "product", a, b, c, heads, dims, alpha, accumulate };
}

function boundStep(step: Step, call: ScoresCall, matmul: MatmulKernel): BoundKernel {
  switch (step.kind) {
    case "product": {
      const { a, b, c, heads, dims: [m, n, k], alpha, accumulate } = step;
      const shape: MatmulShape = { batch: heads, m, n, k, strideA: a.stride, strideB: b.stride, strideC: c.stride, lda: a.ld, ldb: b.ld, ldc: c.ld, alpha, beta: accumulate ? 1 : 0 };
      const trans = { transA: a.trans, transB: b.trans };
      return { spec: matmul({ a: a.dtype, b: b.dtype, out: c.dtype, ...trans, accumulate }, shape), uniforms: matmulUniforms(shape, trans), bind: { a: a.ref, b: b.ref, c: c.ref } };
    }
    case "softmax": {
      // the mask flags alone: the softmax kernel's WGSL depends on nothing else of the variant
      const { causal, prefix, padding, segments, alibi } = call.variant;
      return { spec: scoresSoftmaxKernel({ causal, prefix, padding, segments, alibi }, step.mode), uniforms: scoresChunkUniforms(step.chunk) };
    }
    case "scores gradient":
      return { spec: scoresGradKernel(), uniforms: scoresGradUniforms(step.chunk), bind: { probs: { name: "scores" } } };
    case "delta": {
      const { queryLength: T, keyLength: S } = call.shape;
      // the mask's query offset is always S - T (maskFromInputs); only its shape checks read more of it
      const uniforms = attentionBackwardUniforms(call.shape, step.views, call.scale, { causal: call.variant.causal, queryOffset: S - T });
      return { spec: attentionDeltaKernel(call.variant), uniforms };
    }
  }
}

// A chunk of the call: its place, and its operands (views at its batch row and first head, K and
// V at that head's key/value head, the scores).
interface Chunk extends ScoresChunk {
  at(name: string, view: TensorView, trans?: boolean): Operand;
  /** K, V or their gradients: every head of the chunk reads one key/value head under grouped queries (head stride 0). */
  kv(name: string, view: TensorView, trans?: boolean): Operand;
  scores(name: string, trans?: boolean): Operand;
  /** Head `i` of the chunk alone: its window of a query view, or of the scores. */
  headAt(i: number, name: string, view: TensorView): Operand;
  headScores(i: number, name: string, trans: boolean): Operand;
}

function chunksOf(call: ChunkedCall): Chunk[] {
  const { batch, queryHeads, kvHeads, queryLength: T, keyLength: S } = call.shape;
  const group = queryHeads / kvHeads;
  const window = (name: string, view: TensorView, b: number, h: number, trans: boolean, stride = view.headStride): Operand => ({ ref: { name, start: viewIndex(view, b, 0, h, 0) }, dtype: call.dtype, trans, ld: view.tokenStride, stride });
  const starts = Array.from({ length: Math.ceil(queryHeads / call.heads) }, (_, i) => i * call.heads);
  return [...Array(batch).keys()].flatMap((b) =>
    starts.map((h0) => ({
      batch,
      batchRow: b,
      firstHead: h0,
      heads: Math.min(call.heads, queryHeads - h0),
      queryHeads,
      queryLength: T,
      keyLength: S,
      queryOffset: S - T,
      scale: call.scale,
      at: (name: string, view: TensorView, trans = false) => window(name, view, b, h0, trans),
      kv: (name: string, view: TensorView, trans = false) => window(name, view, b, Math.floor(h0 / group), trans, group > 1 ? 0 : view.headStride),
      scores: (name: string, trans = false): Operand => ({ ref: { name }, dtype: "f32", trans, ld: S, stride: T * S }),
      headAt: (i: number, name: string, view: TensorView) => window(name, view, b, h0 + i, false),
      headScores: (i: number, name: string, trans: boolean): Operand => ({ ref: { name, start: i * T * S }, dtype: "f32", trans, ld: S, stride: T * S }),
    })),
  );
}

// S = Q K^T of a chunk, then the softmax over it (`mode` as scoresSoftmaxKernel's).
function scoresThenSoftmax(call: ChunkedCall, chunk: Chunk, views: AttentionViews, mode: "forward" | "recompute"): Step[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  return [product(chunk.at("q", views.q), chunk.kv("k", views.k, true), chunk.scores("scores"), chunk.heads, [T, S, D]), { kind: "softmax", chunk, mode }];
}

function forwardSteps(call: ChunkedCall, views: AttentionViews): Step[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  return chunksOf(call).flatMap((chunk) => [...scoresThenSoftmax(call, chunk, views, "forward"), product(chunk.scores("scores"), chunk.kv("v", views.v), chunk.at("o", views.o), chunk.heads, [T, D, S])]);
}

function backwardSteps(call: ChunkedCall, views: BackwardViews): Step[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  return [
    { kind: "delta", views },
    ...chunksOf(call).flatMap((chunk): Step[] => [
      ...scoresThenSoftmax(call, chunk, views, "recompute"),
      product(chunk.at("dout", views.dout), chunk.kv("v", views.v, true), chunk.scores("grad"), chunk.heads, [T, S, D]),
      { kind: "scores gradient", chunk },
      product(chunk.scores("grad"), chunk.kv("k", views.k), chunk.at("dq", views.dq), chunk.heads, [T, D, S], call.scale),
      ...keyValueGradients(call, chunk, views),
    ]),
  ];
}

// dK = scale dSᵀ Q and dV = Pᵀ dO of a chunk. Without grouped queries each head has its own K and V
// head: one product over the chunk's heads each. With them, the chunk's heads share one: their
// products add into it one head at a time (a chunk's first head, where its group starts,
// overwrites what a previous step left), in order, so the sums are deterministic. Each addition
// rounds to the storage dtype: f32 in training (activations are f32), where the fused kernels'
// f32 registers and these agree; with f16 storage the error grows with the group.
function keyValueGradients(call: ChunkedCall, chunk: Chunk, views: BackwardViews): Step[] {
  const { queryHeads, kvHeads, queryLength: T, keyLength: S, headDim: D } = call.shape;
  const dims: [number, number, number] = [S, D, T];
  if (queryHeads === kvHeads) {
    return [
      product(chunk.scores("grad", true), chunk.at("q", views.q), chunk.kv("dkv", views.dk), chunk.heads, dims, call.scale),
      product(chunk.scores("scores", true), chunk.at("dout", views.dout), chunk.kv("dkv", views.dv), chunk.heads, dims),
    ];
  }
  const group = queryHeads / kvHeads;
  return [...Array(chunk.heads).keys()].flatMap((i) => {
    const accumulate = (chunk.firstHead + i) % group !== 0;
    return [
      product(chunk.headScores(i, "grad", true), chunk.headAt(i, "q", views.q), chunk.kv("dkv", views.dk), 1, dims, call.scale, accumulate),
      product(chunk.headScores(i, "scores", true), chunk.headAt(i, "dout", views.dout), chunk.kv("dkv", views.dv), 1, dims, 1, accumulate),
    ];
  });
}
