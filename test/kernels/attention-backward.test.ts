// Fused attention backward (delta, dK/dV, dQ kernels) against the float64 reference, after the
// fused forward: every mask kind, GQA/MQA, fused dQKV and separate layouts; and determinism.
import { suite } from "uvu";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { attentionBackwardKernels, attentionBackwardUniforms, type BackwardViews } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { denseView, fusedQkvViews, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionBackwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";
import { attentionShape, casesFor, caseLabel, makeInputs, scatterView, uploadInputs, type AttentionCase, type AttentionInputs } from "./attention-harness.ts";

const test = suite("attention backward");

const shape = attentionShape;

interface BackwardResult {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  raw: Float32Array[];
}

/** Forward then the three backward kernels in one command batch; gradients as dense (B, H, L, D). */
async function runBackward(gpu: GpuDevice, c: AttentionCase, inputs: AttentionInputs, dOut: Float64Array, scale: number): Promise<BackwardResult> {
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
  const views: BackwardViews = { ...inputs.views, o: oView, dout: oView, ...grads };
  const variant = { dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) };
  const uniforms = attentionBackwardUniforms(c.shape, views, scale, inputs.mask);
  const backward = attentionBackwardKernels(variant);
  const batch = new CommandBatch(gpu);
  batch.dispatch(attentionForwardKernel(variant), uniforms, tensors);
  batch.dispatch(backward.delta, uniforms, tensors);
  batch.dispatch(backward.dkdv, uniforms, tensors);
  batch.dispatch(backward.dq, uniforms, tensors);
  await batch.submit();
  const dqBuffer = await readFloats(gpu, tensors.dq);
  const dkvBuffer = c.fused ? dqBuffer : await readFloats(gpu, tensors.dkv);
  return {
    dq: gatherView(dqBuffer, grads.dq, B, T, Hq, D),
    dk: gatherView(dkvBuffer, grads.dk, B, S, Hkv, D),
    dv: gatherView(dkvBuffer, grads.dv, B, S, Hkv, D),
    raw: [dqBuffer, dkvBuffer],
  };
}

test(
  "backward matches the float64 reference",
  withGpu(async (gpu) => {
    let seed = 300;
    for (const c of casesFor(gpu)) {
      const inputs = makeInputs(c, seed++);
      const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
      const dOut = randomValues(new Random(seed++), B * Hq * T * D, c.dtype);
      const scale = 1 / Math.sqrt(D);
      const got = await runBackward(gpu, c, inputs, dOut, scale);
      const ref = attentionBackwardReference({ shape: c.shape, ...inputs, scale }, dOut);
      const tol = toleranceFor(c.dtype);
      assertClose(got.dq, ref.dq, tol, `dQ ${caseLabel(c)}`);
      assertClose(got.dk, ref.dk, tol, `dK ${caseLabel(c)}`);
      assertClose(got.dv, ref.dv, tol, `dV ${caseLabel(c)}`);
    }
  }),
);

test(
  "backward is bitwise deterministic",
  withGpu(async (gpu) => {
    const c: AttentionCase = { shape: shape(2, 4, 1, 45, 45, 32), mask: "causal", fused: true, dtype: "f32" };
    const inputs = makeInputs(c, 9);
    const dOut = randomValues(new Random(10), 2 * 4 * 45 * 32);
    const first = await runBackward(gpu, c, inputs, dOut, 0.2);
    const second = await runBackward(gpu, c, inputs, dOut, 0.2);
    assertBitwiseEqual(first.raw[0], second.raw[0], "dQKV");
  }),
);

test.run();
