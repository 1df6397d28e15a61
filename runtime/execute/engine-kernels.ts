// The kernels the engine's launches run on a device, worked out in one place from what the device
// verified and tuned when it opened (kernel-self-check.ts): the matmul strategy (subgroup matrices
// only where their self-check passed), the decode matmul's workgroup (the tuned one), and which
// attention launches take the score-matrix path (chosen on that very strategy). The executor,
// `sftc compile --emit wgsl` and the training engine's plan all read them here, so what a run
// compiles, what is printed and what memory is planned for cannot disagree.
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { matmulKernelsOf, type MatmulKernel } from "../../stdlib/kernels/matmul.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { engineGemv } from "../gpu/gemv-tuning.ts";
import { checkedAttentionScores, checkedMatmulStrategy } from "../gpu/kernel-self-check.ts";
import type { Env } from "../gpu/kernel-tuning.ts";

export interface EngineKernels {
  /** The matmul kernel for a launch's options and shape: the checked strategy's, decode-shaped products on the device's gemv workgroup. */
  matmul: MatmulKernel;
  /** Which attention launches take the score-matrix path (stdlib/kernels/attention-scores-steps.ts) instead of the fused kernels. */
  attentionScores: AttentionScoresChoice;
}

/** Choices a caller makes in place of the device's. */
export interface KernelOverrides {
  /** Which attention launches take the score-matrix path, instead of the device's choice (to compare the two paths on one device). */
  attentionScores?: AttentionScoresChoice;
}

/**
 * The engine's kernels on `gpu` under `env` (SFT_MATMUL, SFT_ATTENTION), `overrides` applied; an
 * explicit request whose kernel failed its self-check is SFT5011.
 */
export function engineKernels(gpu: GpuDevice, overrides: KernelOverrides = {}, env: Env = process.env): Result<EngineKernels> {
  const strategy = checkedMatmulStrategy(gpu, env);
  if (!strategy.ok) return strategy;
  const attentionScores = overrides.attentionScores ? ok(overrides.attentionScores) : checkedAttentionScores(gpu, strategy.value, env);
  if (!attentionScores.ok) return attentionScores;
  return ok({ matmul: matmulKernelsOf(strategy.value, engineGemv(gpu)), attentionScores: attentionScores.value });
}
