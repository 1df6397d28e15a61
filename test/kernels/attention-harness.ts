// Shared setup of the attention kernel tests: random problems in strided layouts (a fused QKV
// buffer or separate Q and KV-cache tensors), masks of every kind, and upload to the GPU.
import * as assert from "uvu/assert";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { alibiSlopes } from "../../stdlib/kernels/alibi.ts";
import { denseView, fusedQkvViews, gatherView, scatterView, type TensorView } from "../../stdlib/kernels/attention-layout.ts";
import type { BackwardViews } from "../../stdlib/kernels/attention-backward.ts";
import { maskFlags, maskWords, type AttentionMask } from "../../stdlib/kernels/attention-mask.ts";
import type { AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { randomValues } from "./gpu-harness.ts";

export function attentionShape(batch: number, queryHeads: number, kvHeads: number, queryLength: number, keyLength: number, headDim: number): AttentionShape {
  return { batch, queryHeads, kvHeads, queryLength, keyLength, headDim };
}

/** A mask kind; "alibi+padding+segments" has all three, as a packed, padded Baichuan-13B batch does. */
export type MaskKind = "none" | "causal" | "prefix" | "padding" | "left-padding" | "segments" | "alibi" | "alibi+segments" | "alibi+padding+segments";

export interface AttentionCase {
  shape: AttentionShape;
  mask: MaskKind;
  /** Q, K and V read from one (B, T, Hq + 2 Hkv, D) buffer; needs T == S. */
  fused: boolean;
  dtype: "f32" | "f16";
}

export function caseLabel(c: AttentionCase): string {
  const s = c.shape;
  return `B${s.batch} Hq${s.queryHeads} Hkv${s.kvHeads} T${s.queryLength} S${s.keyLength} D${s.headDim} ${c.mask}${c.fused ? " fused" : ""} ${c.dtype}`;
}

const shape = attentionShape;

/**
 * Forward and backward cases: T = 1, T not a multiple of the tiles, D in {32, 64, 128, 256}, MQA and
 * GQA, every mask kind, fused QKV and separate layouts, and queries after a KV cache (S > T).
 * Mask kinds other than causal use D = 32: each (mask, D, dtype) is one more pipeline to compile.
 */
export const ATTENTION_CASES: AttentionCase[] = [
  { shape: shape(1, 1, 1, 1, 1, 32), mask: "none", fused: true, dtype: "f32" },
  { shape: shape(2, 4, 2, 37, 37, 64), mask: "causal", fused: true, dtype: "f32" },
  { shape: shape(1, 4, 1, 70, 70, 32), mask: "causal", fused: false, dtype: "f32" },
  { shape: shape(1, 2, 2, 20, 20, 128), mask: "causal", fused: true, dtype: "f32" },
  { shape: shape(1, 6, 6, 19, 19, 32), mask: "alibi", fused: true, dtype: "f32" },
  { shape: shape(2, 2, 1, 16, 16, 32), mask: "prefix", fused: true, dtype: "f32" },
  { shape: shape(3, 2, 2, 13, 13, 32), mask: "padding", fused: false, dtype: "f32" },
  { shape: shape(3, 2, 1, 9, 9, 32), mask: "left-padding", fused: true, dtype: "f32" },
  { shape: shape(2, 2, 2, 30, 30, 32), mask: "segments", fused: true, dtype: "f32" },
  { shape: shape(3, 4, 2, 23, 23, 32), mask: "alibi+padding+segments", fused: false, dtype: "f32" },
  { shape: shape(2, 4, 2, 7, 40, 32), mask: "padding", fused: false, dtype: "f32" }, // 33 cached keys
  { shape: shape(1, 2, 1, 1, 25, 32), mask: "alibi", fused: false, dtype: "f32" },
  { shape: shape(2, 3, 3, 11, 11, 32), mask: "none", fused: false, dtype: "f32" },
  { shape: shape(1, 32, 2, 3, 3, 32), mask: "causal", fused: true, dtype: "f32" }, // ChatGLM2 heads: 2 KV groups
  { shape: shape(1, 2, 2, 9, 9, 256), mask: "causal", fused: true, dtype: "f32" }, // MOSS head size
];

/** f16 storage (f32 math) cases, run where the device has shader-f16. */
export const F16_ATTENTION_CASES: AttentionCase[] = [
  { shape: shape(2, 4, 2, 37, 37, 64), mask: "causal", fused: true, dtype: "f16" },
  { shape: shape(2, 4, 2, 7, 40, 32), mask: "padding", fused: false, dtype: "f16" },
];

/** The cases a device runs: the f16 ones only with shader-f16. */
export function casesFor(gpu: GpuDevice): AttentionCase[] {
  return gpu.hasF16 ? [...ATTENTION_CASES, ...F16_ATTENTION_CASES] : ATTENTION_CASES;
}

/** The mask of a case; query rows are the last T of the S keys. */
export function makeMask(c: AttentionCase, rng: Random): AttentionMask {
  const { batch: B, queryHeads, queryLength: T, keyLength: S } = c.shape;
  const mask: AttentionMask = { causal: c.mask !== "none", queryOffset: S - T };
  const has = (kind: string) => c.mask.split("+").includes(kind);
  const perBatch = (f: (b: number) => number[]) => Uint32Array.from(Array.from({ length: B }, (_, b) => f(b)).flat());
  if (has("prefix")) mask.prefixLengths = perBatch((b) => [Math.min(S, 1 + rng.int(S))]);
  // Right padding: row b keeps its first S - b*2 keys. Left padding: row b starts at b*3 (rows
  // whose position is before the start see no key at all).
  if (has("padding")) mask.keyRanges = perBatch((b) => [0, Math.max(1, S - 2 * b)]);
  if (has("left-padding")) mask.keyRanges = perBatch((b) => [Math.min(S - 1, 3 * b), S]);
  if (has("segments")) {
    mask.segments = new Int32Array(B * S);
    for (let b = 0; b < B; b++) {
      let segment = 0;
      for (let j = 0; j < S; j++) {
        if (j > 0 && rng.uniform() < 0.15) segment++;
        mask.segments[b * S + j] = segment;
      }
    }
  }
  if (has("alibi")) mask.alibiSlopes = alibiSlopes(queryHeads);
  return mask;
}

/** Host inputs: the GPU buffers' contents plus dense (B, H, L, D) copies for the reference. */
export interface AttentionInputs {
  mask: AttentionMask;
  views: { q: TensorView; k: TensorView; v: TensorView };
  /** Buffer contents by name: "qkv" when fused, else "q" and "kv" (K and V share one buffer). */
  buffers: Record<string, Float64Array>;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
}

export function makeInputs(c: AttentionCase, seed: number): AttentionInputs {
  const rng = new Random(seed);
  const { batch: B, queryHeads: Hq, kvHeads: Hkv, queryLength: T, keyLength: S, headDim: D } = c.shape;
  const mask = makeMask(c, rng);
  let views: AttentionInputs["views"];
  let buffers: Record<string, Float64Array>;
  if (c.fused) {
    assert.is(T, S, "a fused QKV case needs T == S");
    views = fusedQkvViews(T, Hq, Hkv, D);
    buffers = { qkv: randomValues(rng, B * T * (Hq + 2 * Hkv) * D, c.dtype) };
  } else {
    // Q as (B, H, T, D); K and V as two halves of one (B, S, Hkv, D) cache buffer.
    const half = B * S * Hkv * D;
    views = { q: denseView("bhtd", T, Hq, D), k: denseView("bthd", S, Hkv, D), v: denseView("bthd", S, Hkv, D, half) };
    buffers = { q: randomValues(rng, B * Hq * T * D, c.dtype), kv: randomValues(rng, 2 * half, c.dtype) };
  }
  const source = (name: "q" | "k" | "v") => buffers[c.fused ? "qkv" : name === "q" ? "q" : "kv"];
  return {
    mask,
    views,
    buffers,
    q: gatherView(source("q"), views.q, B, T, Hq, D),
    k: gatherView(source("k"), views.k, B, S, Hkv, D),
    v: gatherView(source("v"), views.v, B, S, Hkv, D),
  };
}

/** GPU tensors of the inputs and of the mask data, keyed by kernel binding name. */
export function uploadInputs(gpu: GpuDevice, c: AttentionCase, inputs: AttentionInputs): Record<string, GpuTensor> {
  const tensors: Record<string, GpuTensor> = {};
  if (c.fused) {
    const qkv = uploadTensor(gpu, c.dtype, [inputs.buffers.qkv.length], inputs.buffers.qkv, "qkv");
    Object.assign(tensors, { q: qkv, k: qkv, v: qkv });
  } else {
    const kv = uploadTensor(gpu, c.dtype, [inputs.buffers.kv.length], inputs.buffers.kv, "kv");
    Object.assign(tensors, { q: uploadTensor(gpu, c.dtype, [inputs.buffers.q.length], inputs.buffers.q, "q"), k: kv, v: kv });
  }
  return { ...tensors, ...uploadMask(gpu, inputs.mask, c.shape.batch, c.shape.keyLength) };
}

/** The `mask_words` binding of `mask` (B rows of S keys), where it has one. */
export function uploadMask(gpu: GpuDevice, mask: AttentionMask, batch: number, keyLength: number): Record<string, GpuTensor> {
  const words = maskWords(mask, batch, keyLength);
  return words ? { mask_words: uploadTensor(gpu, "u32", [words.length], words, "mask_words") } : {};
}

/** Compares log-sum-exps: rows that see no key must be -inf on both sides, the rest close. */
export function assertLogSumExpClose(out: ArrayLike<number>, ref: Float64Array, tol: number, label: string): void {
  const a = Float64Array.from(out);
  const r = Float64Array.from(ref);
  for (let i = 0; i < r.length; i++) {
    if (r[i] === -Infinity || a[i] === -Infinity) {
      assert.is(a[i], r[i], `${label}: row ${i} sees no key on one side only`);
      a[i] = r[i] = 0;
    }
  }
  assertClose(a, r, tol, label);
}

/** A backward call's buffers: the inputs, O, lse, delta, dO written, and the gradients allocated. */
export interface BackwardSetup {
  tensors: Record<string, GpuTensor>;
  views: BackwardViews;
  variant: { dtype: AttentionCase["dtype"]; headDim: number } & ReturnType<typeof maskFlags>;
  /** The gradients after the kernels ran, as dense (B, H, L, D), and the raw buffers. */
  read(): Promise<{ dq: Float64Array; dk: Float64Array; dv: Float64Array; raw: Float32Array[] }>;
}

/** Uploads case `c` with `inputs` and `dOut` (dense (B, Hq, T, D)) for the backward kernels. */
export function backwardSetup(gpu: GpuDevice, c: AttentionCase, inputs: AttentionInputs, dOut: Float64Array): BackwardSetup {
  const { batch: B, queryHeads: Hq, kvHeads: Hkv, queryLength: T, keyLength: S, headDim: D } = c.shape;
  const tensors: Record<string, GpuTensor> = uploadInputs(gpu, c, inputs);
  const oView = denseView("bthd", T, Hq, D);
  let grads: Pick<BackwardViews, "dq" | "dk" | "dv">;
  if (c.fused) {
    const fused = fusedQkvViews(T, Hq, Hkv, D);
    grads = { dq: fused.q, dk: fused.k, dv: fused.v };
    tensors.dq = tensors.dkv = createTensor(gpu, c.dtype, [B, T, Hq + 2 * Hkv, D], "dqkv");
  } else {
    grads = { dq: denseView("bthd", T, Hq, D), dk: denseView("bhtd", S, Hkv, D), dv: denseView("bhtd", S, Hkv, D, B * Hkv * S * D) };
    tensors.dq = createTensor(gpu, c.dtype, [B, T, Hq, D], "dq");
    tensors.dkv = createTensor(gpu, c.dtype, [2, B, Hkv, S, D], "dkv");
  }
  tensors.o = createTensor(gpu, c.dtype, [B, T, Hq, D], "o");
  tensors.lse = createTensor(gpu, "f32", [B, Hq, T], "lse");
  tensors.delta = createTensor(gpu, "f32", [B, Hq, T], "delta");
  tensors.dout = uploadTensor(gpu, c.dtype, [B, T, Hq, D], scatterView(dOut, oView, [B, Hq, T, D]), "dout");
  return {
    tensors,
    views: { ...inputs.views, o: oView, dout: oView, ...grads },
    variant: { dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) },
    async read() {
      const dqBuffer = await readFloats(gpu, tensors.dq);
      const dkvBuffer = c.fused ? dqBuffer : await readFloats(gpu, tensors.dkv);
      return {
        dq: gatherView(dqBuffer, grads.dq, B, T, Hq, D),
        dk: gatherView(dkvBuffer, grads.dk, B, S, Hkv, D),
        dv: gatherView(dkvBuffer, grads.dv, B, S, Hkv, D),
        raw: [dqBuffer, dkvBuffer],
      };
    },
  };
}
