// Fused attention forward against the float64 reference: every mask kind, GQA/MQA, fused QKV and
// KV-cache layouts, T = 1 and T not a multiple of the tiles, D in {32, 64, 128}.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import { denseView, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionForwardKernel, attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { toleranceFor, withGpu } from "./gpu-harness.ts";
import { assertLogSumExpClose, attentionShape, casesFor, caseLabel, makeInputs, uploadInputs, type AttentionCase } from "./attention-harness.ts";

const test = suite("attention forward");

const shape = attentionShape;

const SCALE = (headDim: number) => 1 / Math.sqrt(headDim);

test(
  "forward matches the float64 reference",
  withGpu(async (gpu) => {
    let seed = 100;
    for (const c of casesFor(gpu)) {
      const inputs = makeInputs(c, seed++);
      const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
      const oView = denseView("bthd", T, Hq, D);
      const tensors = uploadInputs(gpu, c, inputs);
      tensors.o = createTensor(gpu, c.dtype, [B, T, Hq, D], "o");
      tensors.lse = createTensor(gpu, "f32", [B, Hq, T], "lse");
      const spec = attentionForwardKernel({ dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) });
      const views = { ...inputs.views, o: oView };
      await runKernel(gpu, spec, attentionForwardUniforms(c.shape, views, SCALE(D), inputs.mask), tensors);
      const ref = attentionForwardReference({ shape: c.shape, ...inputs, scale: SCALE(D) });
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
    const ref = attentionForwardReference({ shape: c.shape, ...inputs, scale: SCALE(D) });
    assertClose(gatherView(await readFloats(gpu, tensors.o), oView, 1, T, 1, D), ref.out, 1e-5, `O ${caseLabel(c)}`);
  }),
);

test.run();
