// The kernel sequence of attention through a materialized score matrix (attention-scores.ts), as
// kernels bound to named tensors, so the runtime's launches, the device's probe and its tuning
// run the same steps. Per batch row and chunk of query heads:
//   forward:  S = Q K^T, softmax (P and the log-sum-exp), O = P V
//   backward: (delta = rowsum(dO * O) first, once) S = Q K^T, softmax recomputed from the
//             log-sum-exp, dP = dO V^T, dS = P * (dP - delta), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO
// The products are batched over the chunk's heads: an operand is a window of its (B, L, H, D)
// view from the chunk's batch row and first head, rows its token stride apart, heads its head
// stride apart (so a chunk's windows start at offsets WINDOW_ALIGNMENT allows: scoresChunkHeads).
// With grouped queries a chunk stays within one group: K and V are its key/value head for every
// head (stride 0), and dK and dV sum the group's heads (keyValueGradients).
// Tensor names: q, k, v, o, lse, scores (the chunk's f32 (heads, T, S) workspace); in the
// backward also dout, delta, dq, dkv (dK and dV in one buffer, as views.dk and views.dv place
// them) and grad (the scores' gradients). The mask bindings keep their own names.
import type { AttentionVariant, AttentionViews } from "./attention-common.ts";
import { attentionBackwardUniforms, attentionDeltaKernel, type BackwardViews } from "./attention-backward.ts";
import { viewIndex, type TensorView } from "./attention-layout.ts";
import type { MaskFlags } from "./attention-mask.ts";
import type { AttentionShape } from "./attention-reference.ts";
import { chunkStarts, scoresChunkUniforms, scoresGradKernel, scoresGradUniforms, scoresSoftmaxKernel, type ScoresChunk } from "./attention-scores.ts";
import type { StorageDType } from "./dtype.ts";
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

function chunksOf(call: ScoresCall): Chunk[] {
  const { batch, queryHeads, kvHeads, queryLength: T, keyLength: S } = call.shape;
  const group = queryHeads / kvHeads;
  const dtype = call.variant.dtype;
  const window = (name: string, view: TensorView, b: number, h: number, trans: boolean, stride = view.headStride): Operand => ({ ref: { name, start: viewIndex(view, b, 0, h, 0) }, dtype, trans, ld: view.tokenStride, stride });
  return [...Array(batch).keys()].flatMap((b) =>
    chunkStarts(queryHeads, call.heads).map((h0) => ({
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

// C = alpha op(A) op(B) (+ C where `accumulate`) for each head of a chunk: (m, k) x (k, n) into c
// (row stride ld, head stride).
function product(matmul: MatmulKernel, a: Operand, b: Operand, c: Operand, heads: number, [m, n, k]: [number, number, number], alpha = 1, accumulate = false): BoundKernel {
  const shape: MatmulShape = { batch: heads, m, n, k, strideA: a.stride, strideB: b.stride, strideC: c.stride, lda: a.ld, ldb: b.ld, ldc: c.ld, alpha, beta: accumulate ? 1 : 0 };
  const trans = { transA: a.trans, transB: b.trans };
  return { spec: matmul({ a: a.dtype, b: b.dtype, out: c.dtype, ...trans, accumulate }, shape), uniforms: matmulUniforms(shape, trans), bind: { a: a.ref, b: b.ref, c: c.ref } };
}

// S = Q K^T of a chunk, then the softmax over it (`mode` as scoresSoftmaxKernel's).
function scoresThenSoftmax(call: ScoresCall, chunk: Chunk, views: AttentionViews, matmul: MatmulKernel, mode: "forward" | "recompute"): BoundKernel[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  return [
    product(matmul, chunk.at("q", views.q), chunk.kv("k", views.k, true), chunk.scores("scores"), chunk.heads, [T, S, D]),
    { spec: scoresSoftmaxKernel(maskFlagsOf(call.variant), mode), uniforms: scoresChunkUniforms(chunk) },
  ];
}

// the mask flags alone: the softmax kernel's WGSL depends on nothing else of the variant
const maskFlagsOf = ({ causal, prefix, padding, segments, alibi }: MaskFlags): MaskFlags => ({ causal, prefix, padding, segments, alibi });

/** O = softmax(scale Q K^T + bias, masked) V, and the log-sum-exp (B, Hq, T) into `lse`. */
export function scoresForwardKernels(call: ScoresCall, views: AttentionViews, matmul: MatmulKernel): BoundKernel[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  return chunksOf(call).flatMap((chunk) => [
    ...scoresThenSoftmax(call, chunk, views, matmul, "forward"),
    product(matmul, chunk.scores("scores"), chunk.kv("v", views.v), chunk.at("o", views.o), chunk.heads, [T, D, S]),
  ]);
}

/** dQ, dK and dV through `views.dq`, `views.dk` and `views.dv`, delta first. */
export function scoresBackwardKernels(call: ScoresCall, views: BackwardViews, matmul: MatmulKernel): BoundKernel[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  // the mask's query offset is always S - T (maskFromInputs); only its shape checks read more of it
  const uniforms = attentionBackwardUniforms(call.shape, views, call.scale, { causal: call.variant.causal, queryOffset: S - T });
  const delta: BoundKernel = { spec: attentionDeltaKernel(call.variant), uniforms };
  return [
    delta,
    ...chunksOf(call).flatMap((chunk) => {
      const dout = chunk.at("dout", views.dout);
      return [
        ...scoresThenSoftmax(call, chunk, views, matmul, "recompute"),
        product(matmul, dout, chunk.kv("v", views.v, true), chunk.scores("grad"), chunk.heads, [T, S, D]),
        { spec: scoresGradKernel(), uniforms: scoresGradUniforms(chunk), bind: { probs: { name: "scores" } } },
        product(matmul, chunk.scores("grad"), chunk.kv("k", views.k), chunk.at("dq", views.dq), chunk.heads, [T, D, S], call.scale),
        ...keyValueGradients(call, chunk, views, matmul),
      ];
    }),
  ];
}

// dK = scale dSᵀ Q and dV = Pᵀ dO of a chunk. Without grouped queries each head has its own K and V
// head: one product over the chunk's heads each. With them, the chunk's heads share one: their
// products add into it one head at a time (a chunk's first head, where its group starts,
// overwrites what a previous step left), in order, so the sums are deterministic. Each addition
// rounds to the storage dtype: f32 in training (activations are f32), where the fused kernels'
// f32 registers and these agree; with f16 storage the error grows with the group.
function keyValueGradients(call: ScoresCall, chunk: Chunk, views: BackwardViews, matmul: MatmulKernel): BoundKernel[] {
  const { queryHeads, kvHeads, queryLength: T, keyLength: S, headDim: D } = call.shape;
  const dims: [number, number, number] = [S, D, T];
  if (queryHeads === kvHeads) {
    return [
      product(matmul, chunk.scores("grad", true), chunk.at("q", views.q), chunk.kv("dkv", views.dk), chunk.heads, dims, call.scale),
      product(matmul, chunk.scores("scores", true), chunk.at("dout", views.dout), chunk.kv("dkv", views.dv), chunk.heads, dims),
    ];
  }
  const group = queryHeads / kvHeads;
  return [...Array(chunk.heads).keys()].flatMap((i) => {
    const accumulate = (chunk.firstHead + i) % group !== 0;
    return [
      product(matmul, chunk.headScores(i, "grad", true), chunk.headAt(i, "q", views.q), chunk.kv("dkv", views.dk), 1, dims, call.scale, accumulate),
      product(matmul, chunk.headScores(i, "scores", true), chunk.headAt(i, "dout", views.dout), chunk.kv("dkv", views.dv), 1, dims, 1, accumulate),
    ];
  });
}
