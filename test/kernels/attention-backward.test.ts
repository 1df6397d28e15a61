// Fused attention backward (delta, dK/dV, dQ kernels) against the float64 reference, after the
// fused forward: every mask kind, GQA/MQA, fused dQKV and separate layouts; and determinism.
import { suite } from "uvu";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { attentionBackwardKernels, attentionBackwardUniforms } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { attentionBackwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";
import { attentionShape, backwardSetup, casesFor, caseLabel, makeInputs, type AttentionCase, type AttentionInputs } from "./attention-harness.ts";

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
  const { tensors, views, variant, read } = backwardSetup(gpu, c, inputs, dOut);
  const uniforms = attentionBackwardUniforms(c.shape, views, scale, inputs.mask);
  const backward = attentionBackwardKernels(variant);
  const batch = new CommandBatch(gpu);
  batch.dispatch(attentionForwardKernel(variant), uniforms, tensors);
  batch.dispatch(backward.delta, uniforms, tensors);
  batch.dispatch(backward.dkdv, uniforms, tensors);
  batch.dispatch(backward.dq, uniforms, tensors);
  await batch.submit();
  return read();
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
