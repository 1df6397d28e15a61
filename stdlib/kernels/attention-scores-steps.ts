// The kernel sequence of attention through a materialized score matrix (attention-scores.ts), as
// kernels bound to named tensors, so the runtime's launches, the device's probe and its tuning
// run the same steps. Per batch row and chunk of query heads:
//   forward:  S = Q K^T, softmax (P and the log-sum-exp), O = P V
//   backward: (delta = rowsum(dO * O) first, once) S = Q K^T, softmax recomputed from the
//             log-sum-exp, dP = dO V^T, dS = P * (dP - delta), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO
// The products are batched over the chunk's heads: an operand is a window of its (B, L, H, D)
// view from the chunk's batch row and first head, rows its token stride apart, heads its head
// stride apart (so a chunk's windows start at offsets WINDOW_ALIGNMENT allows: scoresChunkHeads).
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

// A chunk of the call: its place, and its operands (views at its batch row and first head, the scores).
interface Chunk extends ScoresChunk {
  at(name: string, view: TensorView, trans?: boolean): Operand;
  scores(name: string, trans?: boolean): Operand;
}

function chunksOf(call: ScoresCall): Chunk[] {
  const { batch, queryHeads, queryLength: T, keyLength: S } = call.shape;
  const dtype = call.variant.dtype;
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
      at: (name: string, view: TensorView, trans = false): Operand => ({ ref: { name, start: viewIndex(view, b, 0, h0, 0) }, dtype, trans, ld: view.tokenStride, stride: view.headStride }),
      scores: (name: string, trans = false): Operand => ({ ref: { name }, dtype: "f32", trans, ld: S, stride: T * S }),
    })),
  );
}

// C = alpha op(A) op(B) for each head of a chunk: (m, k) x (k, n) into c (row stride ld, head stride).
function product(matmul: MatmulKernel, a: Operand, b: Operand, c: Operand, heads: number, [m, n, k]: [number, number, number], alpha = 1): BoundKernel {
  const shape: MatmulShape = { batch: heads, m, n, k, strideA: a.stride, strideB: b.stride, strideC: c.stride, lda: a.ld, ldb: b.ld, ldc: c.ld, alpha };
  const trans = { transA: a.trans, transB: b.trans };
  return { spec: matmul({ a: a.dtype, b: b.dtype, out: c.dtype, ...trans }, shape), uniforms: matmulUniforms(shape, trans), bind: { a: a.ref, b: b.ref, c: c.ref } };
}

// S = Q K^T of a chunk, then the softmax over it (`mode` as scoresSoftmaxKernel's).
function scoresThenSoftmax(call: ScoresCall, chunk: Chunk, views: AttentionViews, matmul: MatmulKernel, mode: "forward" | "recompute"): BoundKernel[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  return [
    product(matmul, chunk.at("q", views.q), chunk.at("k", views.k, true), chunk.scores("scores"), chunk.heads, [T, S, D]),
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
    product(matmul, chunk.scores("scores"), chunk.at("v", views.v), chunk.at("o", views.o), chunk.heads, [T, D, S]),
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
        product(matmul, dout, chunk.at("v", views.v, true), chunk.scores("grad"), chunk.heads, [T, S, D]),
        { spec: scoresGradKernel(), uniforms: scoresGradUniforms(chunk), bind: { probs: { name: "scores" } } },
        product(matmul, chunk.scores("grad"), chunk.at("k", views.k), chunk.at("dq", views.dq), chunk.heads, [T, D, S], call.scale),
        product(matmul, chunk.scores("grad", true), chunk.at("q", views.q), chunk.at("dkv", views.dk), chunk.heads, [S, D, T], call.scale),
        product(matmul, chunk.scores("scores", true), dout, chunk.at("dkv", views.dv), chunk.heads, [S, D, T]),
      ];
    }),
  ];
}
