// Attention launches through a materialized score matrix (stdlib/kernels/attention-scores.ts):
// per batch row and chunk of query heads, batched matmuls on the engine's matmul kernels around
// a softmax kernel, with the chunk's (heads, T, S) f32 scores in the launch workspace. Q, K, V,
// O and the gradients stay (B, L, H, D) views: the matmul kernels take a row stride (the view's
// token stride) and a batch stride (its head stride), and a window of the buffer (tensorWindow)
// starts each chunk at its batch row and first head, which is why every window must start at a
// bindable offset. The log-sum-exp and delta are those of the fused kernels, so a forward on one
// path and a backward on the other agree.
import type { AttentionViews } from "../../../stdlib/kernels/attention-common.ts";
import { attentionDeltaKernel, attentionBackwardUniforms, type BackwardViews } from "../../../stdlib/kernels/attention-backward.ts";
import { viewIndex, type TensorView } from "../../../stdlib/kernels/attention-layout.ts";
import type { AttentionMask } from "../../../stdlib/kernels/attention-mask.ts";
import { chunkStarts, scoresChunkUniforms, scoresGradKernel, scoresGradUniforms, scoresSoftmaxKernel, type AttentionScoresChoice, type ScoresChunk } from "../../../stdlib/kernels/attention-scores.ts";
import { matmulKernel, matmulUniforms, type MatmulShape } from "../../../stdlib/kernels/matmul.ts";
import type { GpuDevice } from "../../gpu/device.ts";
import { tensorWindow, type GpuTensor } from "../../gpu/tensor.ts";
import { workspaceTensor, type DispatchStep, type ExecContext } from "../steps.ts";
import type { Call } from "./attention-call.ts";

/**
 * The engine's choice on `gpu`: SFT_ATTENTION=scores takes the score-matrix path wherever it
 * applies (the fused kernels where it does not); otherwise the fused kernels.
 */
export function engineAttentionScores(gpu: GpuDevice, env: Readonly<Record<string, string | undefined>> = process.env): AttentionScoresChoice {
  const wanted = env.SFT_ATTENTION?.trim() === "scores";
  return { forward: wanted, backward: wanted };
}

/** The steps of one launch on the score-matrix path; `masked` are those that bind the mask. */
export interface ScoresSteps {
  steps: DispatchStep[];
  masked: DispatchStep[];
  /** Sets the uniforms that come from the mask (and, in the backward, the delta kernel's). */
  setUniforms(mask: AttentionMask): void;
}

/** An operand of a chunk's product: a tensor (window) with its stored layout. */
interface Operand {
  tensor: GpuTensor;
  /** Stored transposed: (K, M) for A, (N, K) for B. */
  trans: boolean;
  /** Elements between stored rows. */
  ld: number;
  /** Elements between the chunk's heads (the matmul's batch). */
  stride: number;
}

// One chunk: its place in the call and the windows of the views at its batch row and first head.
interface Chunk extends ScoresChunk {
  at(name: string, tensor: GpuTensor, view: TensorView, trans?: boolean): Operand;
  /** The chunk's scores (heads, T, S) as a matmul operand. */
  scores(tensor: GpuTensor, trans?: boolean): Operand;
}

function chunksOf(ctx: ExecContext, call: Call, heads: number, label: string): Chunk[] {
  const { batch, queryHeads, queryLength: T, keyLength: S } = call.shape;
  const chunks: Chunk[] = [];
  for (let b = 0; b < batch; b++) {
    for (const h0 of chunkStarts(queryHeads, heads)) {
      const place: ScoresChunk = { batchRow: b, firstHead: h0, heads: Math.min(heads, queryHeads - h0), queryHeads, queryLength: T, keyLength: S, queryOffset: S - T, scale: call.scale };
      chunks.push({
        ...place,
        at: (name, tensor, view, trans = false) => ({
          tensor: tensorWindow(ctx.gpu, tensor, viewIndex(view, b, 0, h0, 0), `${name} of ${label}, batch row ${b}, heads from ${h0}`),
          trans,
          ld: view.tokenStride,
          stride: view.headStride,
        }),
        scores: (tensor, trans = false) => ({ tensor, trans, ld: S, stride: T * S }),
      });
    }
  }
  return chunks;
}

// C = op(A) op(B) for each head of a chunk: (m, k) x (k, n) into c (row stride ld, head stride).
function product(ctx: ExecContext, a: Operand, b: Operand, c: Operand, dims: { heads: number; m: number; n: number; k: number }): DispatchStep {
  const shape: MatmulShape = { batch: dims.heads, m: dims.m, n: dims.n, k: dims.k, strideA: a.stride, strideB: b.stride, strideC: c.stride, lda: a.ld, ldb: b.ld, ldc: c.ld };
  const trans = { transA: a.trans, transB: b.trans };
  const spec = matmulKernel({ a: a.tensor.dtype, b: b.tensor.dtype, out: c.tensor.dtype, ...trans }, shape, ctx.matmulStrategy, ctx.gemv);
  return { kind: "dispatch", spec, uniforms: matmulUniforms(shape, trans), tensors: { a: a.tensor, b: b.tensor, c: c.tensor } };
}

/** The scores S = Q K^T of a chunk and the softmax step over them (`mode` as scoresSoftmaxKernel's). */
function scoresAndSoftmax(ctx: ExecContext, call: Call, chunk: Chunk, operands: { q: GpuTensor; k: GpuTensor; scores: GpuTensor; lse: GpuTensor }, views: AttentionViews, mode: "forward" | "recompute"): DispatchStep[] {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  const s = product(ctx, chunk.at("Q", operands.q, views.q), chunk.at("K", operands.k, views.k, true), chunk.scores(operands.scores), { heads: chunk.heads, m: T, n: S, k: D });
  const softmax: DispatchStep = { kind: "dispatch", spec: scoresSoftmaxKernel(call.variant, mode), uniforms: scoresChunkUniforms(chunk), tensors: { scores: operands.scores, lse: operands.lse } };
  return [s, softmax];
}

const isSoftmax = (s: DispatchStep) => s.spec.name === "attention_scores_softmax";

const setQueryOffset = (steps: DispatchStep[]) => (mask: AttentionMask) => {
  for (const s of steps) s.uniforms.query_offset = mask.queryOffset;
};

/** O = softmax(scale Q K^T + bias, masked) V, and the log-sum-exp into `lse` (B, Hq, T). */
export function scoresForward(ctx: ExecContext, call: Call, heads: number, tensors: { q: GpuTensor; k: GpuTensor; v: GpuTensor; o: GpuTensor; lse: GpuTensor }, views: AttentionViews, label: string): ScoresSteps {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  const scores = workspaceTensor(ctx, "f32", [heads, T, S], `scores of ${label}`);
  const steps = chunksOf(ctx, call, heads, label).flatMap((chunk) => [
    ...scoresAndSoftmax(ctx, call, chunk, { ...tensors, scores }, views, "forward"),
    product(ctx, chunk.scores(scores), chunk.at("V", tensors.v, views.v), chunk.at("O", tensors.o, views.o), { heads: chunk.heads, m: T, n: D, k: S }),
  ]);
  const masked = steps.filter(isSoftmax);
  return { steps, masked, setUniforms: setQueryOffset(masked) };
}

/**
 * dQ, dK and dV of one launch: delta = rowsum(dO * O), then per chunk P recomputed from the saved
 * log-sum-exp, dP = dO V^T, dS = scale P * (dP - delta), dQ = dS K, dK = dS^T Q, dV = P^T dO,
 * written through `views.dq`, `views.dk` and `views.dv` (dK and dV in one buffer, `tensors.dkv`).
 */
export function scoresBackward(
  ctx: ExecContext,
  call: Call,
  heads: number,
  tensors: { q: GpuTensor; k: GpuTensor; v: GpuTensor; o: GpuTensor; dout: GpuTensor; lse: GpuTensor; delta: GpuTensor; dq: GpuTensor; dkv: GpuTensor },
  views: BackwardViews,
  label: string,
): ScoresSteps {
  const { queryLength: T, keyLength: S, headDim: D } = call.shape;
  const scores = workspaceTensor(ctx, "f32", [heads, T, S], `scores of ${label}`);
  const grad = workspaceTensor(ctx, "f32", [heads, T, S], `score gradients of ${label}`);
  const delta: DispatchStep = { kind: "dispatch", spec: attentionDeltaKernel(call.variant), uniforms: {}, tensors: { o: tensors.o, dout: tensors.dout, delta: tensors.delta } };
  const chunkSteps = chunksOf(ctx, call, heads, label).flatMap((chunk) => {
    const dims = (m: number, n: number, k: number) => ({ heads: chunk.heads, m, n, k });
    const dout = chunk.at("dO", tensors.dout, views.dout);
    const dS: DispatchStep = { kind: "dispatch", spec: scoresGradKernel(), uniforms: scoresGradUniforms(chunk), tensors: { probs: scores, grad, delta: tensors.delta } };
    return [
      ...scoresAndSoftmax(ctx, call, chunk, { ...tensors, scores }, views, "recompute"),
      product(ctx, dout, chunk.at("V", tensors.v, views.v, true), chunk.scores(grad), dims(T, S, D)),
      dS,
      product(ctx, chunk.scores(grad), chunk.at("K", tensors.k, views.k), chunk.at("dQ", tensors.dq, views.dq), dims(T, D, S)),
      product(ctx, chunk.scores(grad, true), chunk.at("Q", tensors.q, views.q), chunk.at("dK", tensors.dkv, views.dk), dims(S, D, T)),
      product(ctx, chunk.scores(scores, true), dout, chunk.at("dV", tensors.dkv, views.dv), dims(S, D, T)),
    ];
  });
  const masked = chunkSteps.filter(isSoftmax);
  const setOffsets = setQueryOffset(masked);
  return {
    steps: [delta, ...chunkSteps],
    masked,
    setUniforms: (mask) => {
      Object.assign(delta.uniforms, attentionBackwardUniforms(call.shape, views, call.scale, mask));
      setOffsets(mask);
    },
  };
}

