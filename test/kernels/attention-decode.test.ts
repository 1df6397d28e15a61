// Split-KV decode attention (one new token per sequence against a KV cache) against the float64
// reference: masks, ALiBi, GQA, one and several splits, caches longer than one split.
import { suite } from "uvu";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import { attentionDecodeKernels, attentionDecodeUniforms, decodePartialsSize, decodeSplitLength, MAX_SPLIT_KEYS } from "../../stdlib/kernels/attention-decode.ts";
import { denseView, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { assertClose } from "../support/numeric.ts";
import { toleranceFor, withGpu } from "./gpu-harness.ts";
import { assertLogSumExpClose, attentionShape, caseLabel, makeInputs, uploadInputs, type AttentionCase } from "./attention-harness.ts";

const test = suite("attention decode");

const decode = (batch: number, queryHeads: number, kvHeads: number, keyLength: number, headDim: number) =>
  attentionShape(batch, queryHeads, kvHeads, 1, keyLength, headDim);

// [case, keys per split]
const CASES: [AttentionCase, number][] = [
  [{ shape: decode(1, 1, 1, 1, 32), mask: "causal", fused: false, dtype: "f32" }, 1],
  [{ shape: decode(2, 4, 2, 40, 32), mask: "padding", fused: false, dtype: "f32" }, 16],
  [{ shape: decode(2, 4, 2, 40, 32), mask: "padding", fused: false, dtype: "f32" }, 40],
  [{ shape: decode(1, 2, 1, 300, 64), mask: "causal", fused: false, dtype: "f32" }, decodeSplitLength(300)],
  // the longest split: several keys per invocation in the scores, many steps of four in the sum
  [{ shape: decode(1, 2, 1, 300, 64), mask: "causal", fused: false, dtype: "f32" }, MAX_SPLIT_KEYS],
  // a head dim off four: the scores' tail
  [{ shape: decode(1, 2, 2, 37, 30), mask: "causal", fused: false, dtype: "f32" }, 16],
  [{ shape: decode(1, 6, 6, 25, 128), mask: "alibi", fused: false, dtype: "f32" }, 7],
  [{ shape: decode(2, 2, 1, 30, 32), mask: "prefix", fused: false, dtype: "f32" }, 8],
  [{ shape: decode(2, 2, 2, 30, 64), mask: "segments", fused: false, dtype: "f32" }, 8],
  [{ shape: decode(3, 4, 2, 26, 32), mask: "alibi+padding+segments", fused: false, dtype: "f32" }, 8],
  [{ shape: decode(3, 2, 1, 12, 32), mask: "left-padding", fused: false, dtype: "f32" }, 5],
];
const F16_CASES: [AttentionCase, number][] = [[{ shape: decode(2, 4, 2, 40, 64), mask: "padding", fused: false, dtype: "f16" }, 16]];

test(
  "decode matches the float64 reference",
  withGpu(async (gpu) => {
    let seed = 500;
    for (const [c, splitLength] of gpu.hasF16 ? [...CASES, ...F16_CASES] : CASES) {
      const inputs = makeInputs(c, seed++);
      const { batch: B, queryHeads: Hq, headDim: D } = c.shape;
      const oView = denseView("bthd", 1, Hq, D);
      const tensors = uploadInputs(gpu, c, inputs);
      tensors.partials = createTensor(gpu, "f32", [decodePartialsSize(c.shape, splitLength)], "partials");
      tensors.o = createTensor(gpu, c.dtype, [B, 1, Hq, D], "o");
      tensors.lse = createTensor(gpu, "f32", [B, Hq], "lse");
      const kernels = attentionDecodeKernels({ dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) });
      const scale = 1 / Math.sqrt(D);
      const uniforms = attentionDecodeUniforms(c.shape, { ...inputs.views, o: oView }, scale, inputs.mask, splitLength);
      const batch = new CommandBatch(gpu);
      batch.dispatch(kernels.split, uniforms, tensors);
      batch.dispatch(kernels.combine, uniforms, tensors);
      await batch.submit();
      const ref = attentionForwardReference({ shape: c.shape, ...inputs, scale });
      const label = `${caseLabel(c)} split ${splitLength}`;
      assertClose(gatherView(await readFloats(gpu, tensors.o), oView, B, 1, Hq, D), ref.out, toleranceFor(c.dtype), `O ${label}`);
      assertLogSumExpClose(await readFloats(gpu, tensors.lse), ref.logSumExp, toleranceFor(c.dtype), `lse ${label}`);
    }
  }),
);

test.run();
