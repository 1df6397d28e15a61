// Attention launches through a materialized score matrix: the kernel sequence of
// stdlib/kernels/attention-scores-steps.ts on the launch's tensors, the products on the engine's
// matmul kernels, a chunk's (heads, T, S) f32 scores (and, in the backward, their gradients) in
// the launch workspace. The log-sum-exp and delta are those of the fused kernels, so a forward
// on one path and a backward on the other agree.
import type { BoundKernel } from "../../../stdlib/kernels/kernel.ts";
import { boundTensors } from "../../gpu/bound-kernels.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import type { DispatchStep, ExecContext } from "../steps.ts";

/**
 * The dispatches of `kernels` over `named` tensors; `masked`: the softmax dispatches, whose mask
 * bindings the launch's mask binding fills.
 */
export function scoresDispatches(ctx: ExecContext, kernels: readonly BoundKernel[], named: Readonly<Record<string, GpuTensor>>): { steps: DispatchStep[]; masked: DispatchStep[] } {
  const windows = new Map<string, GpuTensor>();
  const steps = kernels.map((k): DispatchStep => ({ kind: "dispatch", spec: k.spec, uniforms: { ...k.uniforms }, tensors: boundTensors(ctx.gpu, k, named, windows) }));
  return { steps, masked: steps.filter((s) => s.spec.name === "attention_scores_softmax") };
}
