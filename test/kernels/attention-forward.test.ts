// Fused attention forward against the float64 reference: every mask kind, GQA/MQA, fused QKV and
// KV-cache layouts, T = 1 and T not a multiple of the tiles, D in {32, 64, 128}.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import { denseView, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionForwardKernel, attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { attentionForwardReference, type AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { toleranceFor, withGpu } from "./gpu-harness.ts";
import { assertLogSumExpClose, caseLabel, makeInputs, uploadInputs, type AttentionCase } from "./attention-harness.ts";

const test = suite("attention forward");

const shape = (batch: number, queryHeads: number, kvHeads: number, queryLength: number, keyLength: number, headDim: number): AttentionShape => ({
  batch,
  queryHeads,
  kvHeads,
  queryLength,
  keyLength,
  headDim,
});

const CASES: AttentionCase[] = [
  { shape: shape(1, 1, 1, 1, 1, 32), mask: "none", fused: true, dtype: "f32" },
  { shape: shape(2, 4, 2, 37, 37, 64), mask: "causal", fused: true, dtype: "f32" },
  { shape: shape(1, 4, 1, 70, 70, 32), mask: "causal", fused: false, dtype: "f32" },
  { shape: shape(1, 2, 2, 20, 20, 128), mask: "causal", fused: true, dtype: "f32" },
  { shape: shape(1, 6, 6, 19, 19, 32), mask: "alibi", fused: true, dtype: "f32" },
  { shape: shape(2, 2, 1, 16, 16, 32), mask: "prefix", fused: true, dtype: "f32" },
  { shape: shape(3, 2, 2, 13, 13, 32), mask: "padding", fused: false, dtype: "f32" },
  { shape: shape(3, 2, 1, 9, 9, 64), mask: "left-padding", fused: true, dtype: "f32" },
  { shape: shape(2, 2, 2, 30, 30, 32), mask: "segments", fused: true, dtype: "f32" },
  { shape: shape(2, 4, 2, 7, 40, 32), mask: "padding", fused: false, dtype: "f32" }, // KV cache: 33 past keys
  { shape: shape(1, 2, 1, 1, 25, 64), mask: "alibi", fused: false, dtype: "f32" },
  { shape: shape(2, 3, 3, 11, 11, 32), mask: "none", fused: false, dtype: "f32" },
];

const SCALE = (headDim: number) => 1 / Math.sqrt(headDim);

test(
  "forward matches the float64 reference",
  withGpu(async (gpu) => {
    let seed = 100;
    for (const c of CASES) {
      const inputs = makeInputs(c, seed++);
      const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
      const oView = denseView("bthd", T, Hq, D);
      const tensors = uploadInputs(gpu, c, inputs);
      tensors.o = createTensor(gpu, c.dtype, [B, T, Hq, D], "o");
      tensors.lse = createTensor(gpu, "f32", [B, Hq, T], "lse");
      const spec = attentionForwardKernel({ dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) });
      const views = { ...inputs.views, o: oView };
      await runKernel(gpu, spec, attentionForwardUniforms(c.shape, views, SCALE(D), inputs.mask), tensors);
      const ref = attentionForwardReference(c.shape, inputs.q, inputs.k, inputs.v, SCALE(D), inputs.mask);
      const tol = toleranceFor(c.dtype);
      assertClose(gatherView(await readFloats(gpu, tensors.o), oView, c.shape.batch, T, Hq, D), ref.out, tol, `O ${caseLabel(c)}`);
      assertLogSumExpClose(await readFloats(gpu, tensors.lse), ref.logSumExp, tol, `lse ${caseLabel(c)}`);
    }
  }),
);

test(
  "forward binds only (T, D)-sized buffers and fixed tiles, never a (T, S) score matrix",
  withGpu(async (gpu) => {
    // A kernel cannot allocate: its memory is what it binds plus its workgroup arrays.
    const c: AttentionCase = { shape: shape(1, 1, 1, 256, 256, 32), mask: "causal", fused: false, dtype: "f32" };
    const { queryLength: T, keyLength: S, headDim: D } = c.shape;
    const inputs = makeInputs(c, 7);
    const tensors = uploadInputs(gpu, c, inputs);
    tensors.o = createTensor(gpu, "f32", [1, T, 1, D], "o");
    tensors.lse = createTensor(gpu, "f32", [1, 1, T], "lse");
    const spec = attentionForwardKernel({ dtype: "f32", headDim: D, ...maskFlags(inputs.mask) });
    const oView = denseView("bthd", T, 1, D);
    await runKernel(gpu, spec, attentionForwardUniforms(c.shape, { ...inputs.views, o: oView }, SCALE(D), inputs.mask), tensors);
    for (const b of spec.bindings) {
      const bytes = tensors[b.name].byteSize;
      assert.ok(bytes <= 2 * S * D * 4, `${b.name} binds ${bytes} bytes`);
      assert.ok(bytes < T * S * 4, `${b.name} is as large as a score matrix`);
    }
    const sizes = [...(spec.declarations ?? "").matchAll(/var<workgroup>\s+\w+:\s*array<f32,\s*(\d+)>/g)].map((m) => Number(m[1]));
    assert.ok(sizes.length === 2 && sizes.every((n) => n <= 64 * D), `workgroup arrays ${sizes}`);
    const ref = attentionForwardReference(c.shape, inputs.q, inputs.k, inputs.v, SCALE(D), inputs.mask);
    assertClose(gatherView(await readFloats(gpu, tensors.o), oView, 1, T, 1, D), ref.out, 1e-5, `O ${caseLabel(c)}`);
  }),
);

test.run();
