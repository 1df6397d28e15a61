// Every attention kernel binds at most eight storage buffers, WebGPU's guaranteed limit per
// shader stage, with every mask feature on: the mask's data (ALiBi slopes, key ranges and prefix
// lengths, segment ids) is one binding however many features a call has, so a packed, padded
// Baichuan-13B batch trains on an adapter that allows eight.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { MAX_KERNEL_STORAGE_BUFFERS } from "../../compiler/passes/schedule.ts";
import { attentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import { attentionBackwardKernelsFor } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { attentionDecodeKernels } from "../../stdlib/kernels/attention-decode.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { attentionForwardKernelFor } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { maskBindings } from "../../stdlib/kernels/attention-mask.ts";
import { scoresSoftmaxKernel } from "../../stdlib/kernels/attention-scores.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { expectOk } from "../support/result.ts";
import { H200 } from "../support/h200-adapter.ts";

const EVERY_MASK: AttentionVariant = { dtype: "f32", headDim: 128, causal: true, prefix: true, padding: true, segments: true, alibi: true };

function attentionKernels(variant: AttentionVariant): KernelSpec[] {
  return [
    attentionForwardKernel(variant),
    expectOk(attentionForwardKernelFor(H200, variant, {})),
    ...Object.values(attentionBackwardKernels(variant)),
    ...Object.values(expectOk(attentionBackwardKernelsFor(H200, variant, {}))),
    ...Object.values(attentionDecodeKernels(variant)),
    ...Object.values(attentionDecodeKernels(variant, variant.dtype)),
    ...Object.values(attentionDecodeKernels(variant, "f16")), // an f16 cache beside f32 activations
    scoresSoftmaxKernel(variant, "forward"),
    scoresSoftmaxKernel(variant, "recompute"),
  ];
}

test("with every mask feature, no attention kernel binds more than eight storage buffers; the mask is one of them", () => {
  assert.equal(maskBindings(EVERY_MASK).length, 1);
  const kernels = attentionKernels(EVERY_MASK);
  assert.ok(kernels.some((k) => k.name.includes("subgroup_matrix")), "the subgroup-matrix kernels are among them");
  for (const k of kernels) assert.ok(k.bindings.length <= MAX_KERNEL_STORAGE_BUFFERS, `${k.name} binds ${k.bindings.length}`);
  // the widest: q, k, v, dO, lse, delta, the gradient and the mask
  assert.is(Math.max(...kernels.map((k) => k.bindings.length)), MAX_KERNEL_STORAGE_BUFFERS);
});

test.run();
