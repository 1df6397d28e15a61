// Which path attention takes, tuned per device (kernel-tuning.ts): the fused kernels (online
// softmax over key tiles, never a score matrix) or a materialized score matrix on the matmul
// kernels (stdlib/kernels/attention-scores-steps.ts). The fused kernels do their products in
// small tiles per workgroup; the matmul kernels reach far higher rates on tensor cores, at the
// price of a chunk's f32 scores in memory and the causal half computed and masked. Which is
// faster depends on the card, so where the engine runs attention on subgroup matrices the device
// times both, forward and backward each, at the families' head dims on causal attention over 1024
// tokens (after the layouts are tuned, so the fused side is the engine's), and the engine then
// takes the faster one at that head dim. SFT_ATTENTION=scores asks for the score matrix wherever
// it applies; any other SFT_ATTENTION keeps the fused kernels.
import { attentionBackwardKernelsFor } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardUniforms, type AttentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { attentionForwardKernelFor, subgroupAttentionTolerance } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { subgroupAttentionBackwardTolerance } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView } from "../../stdlib/kernels/attention-layout.ts";
import type { AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { scoresBackwardKernels, scoresForwardKernels, type MatmulKernelFor } from "../../stdlib/kernels/attention-scores-steps.ts";
import { scoresChunkHeads, type AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { onSubgroupMatrices, type BoundKernel, type KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { invariant, type Result } from "../../compiler/diagnostics.ts";
import { matmulKernel, matmulStrategyFor } from "../../stdlib/kernels/matmul.ts";
import { attentionAdapter, tunedAttentionLayout, tunedBackwardLayouts } from "./attention-tuning.ts";
import type { GpuDevice } from "./device.ts";
import { engineGemv } from "./gemv-tuning.ts";
import { causalVariant, scoresAttentionProbe, subgroupAttentionBackwardProbe, subgroupAttentionProbe, timingValues } from "./kernel-probe-cases.ts";
import type { ProbeCase } from "./kernel-probe.ts";
import { engineTuningOptions, tuneChoice, tuningDisabled, type Env, type TuningJob, type TuningOptions, type TuningOutcome } from "./kernel-tuning.ts";
import { tunedMatmulTiling } from "./matmul-tuning.ts";

export type AttentionDirection = "forward" | "backward";

/** The engine's fused attention kernels for a variant. */
export interface FusedKernels {
  forward: (variant: AttentionVariant) => KernelSpec;
  backward: (variant: AttentionVariant) => AttentionBackwardKernels;
}

/** The head dims tuned: Baichuan's, ChatGLM's and ChatGLM2's 128 and MOSS's 256. */
const TUNED_HEAD_DIMS = [128, 256];
const TUNING_TOKENS = 1024;

/** Per device, direction and head dim: whether the score matrix was the faster path. */
const tuned = new WeakMap<GpuDevice, Map<string, boolean>>();

/**
 * The engine's attention path on `gpu`: SFT_ATTENTION=scores takes the score matrix wherever it
 * applies, another SFT_ATTENTION the fused kernels; otherwise the head dims whose tuning chose it.
 */
export function engineAttentionScores(gpu: GpuDevice, env: Env = process.env): AttentionScoresChoice {
  const wanted = env.SFT_ATTENTION?.trim();
  if (wanted) return { forward: wanted === "scores", backward: wanted === "scores" };
  const chosen = (direction: AttentionDirection) => TUNED_HEAD_DIMS.filter((d) => tuned.get(gpu)?.get(`${direction} ${d}`));
  return { forward: chosen("forward"), backward: chosen("backward") };
}

/** The engine's matmul kernels on `gpu` as tuning sees them (its strategy before the self-check, its decode workgroup). */
function engineMatmul(gpu: GpuDevice, env: Env): MatmulKernelFor | undefined {
  const strategy = matmulStrategyFor(gpu.adapter, env, tunedMatmulTiling(gpu));
  if (!strategy.ok) return undefined;
  const gemv = engineGemv(gpu);
  return (o, s) => matmulKernel(o, s, strategy.value, gemv);
}

/**
 * The two paths of `direction` at `headDim` as candidates (choice: whether the score matrix), timed
 * on causal attention over `tokens` tokens (4096 / D heads, one chunk) with f32 storage: `fused`,
 * the engine's fused kernels (the forward kernel, or delta, dK/dV and dQ), and the score-matrix
 * sequence on `matmul`.
 */
export function attentionPathJob(direction: AttentionDirection, headDim: number, fused: FusedKernels, matmul: MatmulKernelFor, tokens = TUNING_TOKENS): TuningJob<boolean> | undefined {
  const heads = Math.max(1, 4096 / headDim);
  const shape: AttentionShape = { batch: 1, queryHeads: heads, kvHeads: heads, queryLength: tokens, keyLength: tokens, headDim };
  const elements = tokens * heads * headDim;
  const view = denseView("bthd", tokens, heads, headDim);
  const views = { q: view, k: view, v: view, o: view, dout: view, dq: view, dk: view, dv: denseView("bthd", tokens, heads, headDim, elements) };
  const chunk = scoresChunkHeads(shape, Object.values(views), 4);
  if (!chunk) return undefined;
  const [scale, mask] = [1 / Math.sqrt(headDim), { causal: true, queryOffset: 0 }];
  const variant = causalVariant(headDim, "f32");
  const call = { shape, variant, scale, heads: chunk };
  const forward = direction === "forward";
  const fusedKernels: BoundKernel[] = forward
    ? [{ spec: fused.forward(variant), uniforms: attentionForwardUniforms(shape, views, scale, mask) }]
    : ((kernels) => ["delta", "dkdv", "dq"].map((k) => ({ spec: kernels[k as keyof AttentionBackwardKernels], uniforms: attentionBackwardUniforms(shape, views, scale, mask) })))(fused.backward(variant));
  // the products' precision: f16 operands on subgroup matrices
  const inputs = onSubgroupMatrices(matmul({ a: "f32", b: "f32", out: "f32", transA: false, transB: true }, { batch: 1, m: 64, n: 64, k: 64 })) ? "f16" : "f32";
  const candidates = [
    {
      name: "fused kernels",
      choice: false,
      probe: forward ? subgroupAttentionProbe(fused.forward, [headDim]) : subgroupAttentionBackwardProbe(fused.backward, [headDim]),
      kernels: fusedKernels,
    },
    {
      name: "score matrix on the matmul kernels",
      choice: true,
      probe: scoresAttentionProbe(matmul, headDim, direction, inputs, forward ? subgroupAttentionTolerance() : subgroupAttentionBackwardTolerance()),
      kernels: forward ? scoresForwardKernels(call, views, matmul) : scoresBackwardKernels(call, views, matmul),
    },
  ];
  // inputs in [-0.5, 0.5): scores stay near 0, so with lse and delta 0 the backward's P stays near 1
  const pattern = () => ({ dtype: "f32" as const, data: timingValues(elements, 0.5) });
  const zeros = (n: number) => ({ dtype: "f32" as const, data: new Float32Array(n) });
  const scores = chunk * tokens * tokens;
  const tensors = (): ProbeCase["tensors"] => ({
    ...{ q: pattern(), k: pattern(), v: pattern(), o: forward ? zeros(elements) : pattern(), lse: zeros(heads * tokens), scores: zeros(scores) },
    ...(forward ? {} : { dout: pattern(), delta: zeros(heads * tokens), dq: zeros(elements), dkv: zeros(2 * elements), grad: zeros(scores) }),
  });
  return { candidates, problem: { label: `causal attention ${direction}, ${tokens} tokens, ${heads} heads of ${headDim}, f32`, tensors } };
}

/**
 * Tunes the attention path of the forward and of the backward at each of TUNED_HEAD_DIMS where
 * the engine runs the fused kernels on subgroup matrices (and SFT_ATTENTION leaves the choice
 * open); the choices are then the engine's (engineAttentionScores). One outcome per job.
 */
export async function tuneAttentionPaths(gpu: GpuDevice, env: Env = process.env, options: TuningOptions & { tokens?: number } = engineTuningOptions(env)): Promise<TuningOutcome[]> {
  if (tuningDisabled(env) || env.SFT_ATTENTION?.trim()) return [];
  const matmul = engineMatmul(gpu, env);
  if (!matmul) return [];
  const adapter = attentionAdapter(gpu);
  const outcomes: TuningOutcome[] = [];
  const forward = (v: AttentionVariant) => attentionForwardKernelFor(adapter, v, env, tunedAttentionLayout(gpu, v.headDim));
  const backward = (v: AttentionVariant) => attentionBackwardKernelsFor(adapter, v, env, tunedBackwardLayouts(gpu, v.headDim));
  const fused: FusedKernels = { forward: (v) => unwrap(forward(v)), backward: (v) => unwrap(backward(v)) };
  for (const headDim of TUNED_HEAD_DIMS) {
    const variant = causalVariant(headDim, "f32");
    const [f, b] = [forward(variant), backward(variant)];
    for (const direction of ["forward", "backward"] as const) {
      // where the fused kernels run on subgroup matrices at this head dim (CPU adapters keep them)
      const onMatrices = direction === "forward" ? f.ok && onSubgroupMatrices(f.value) : b.ok && (onSubgroupMatrices(b.value.dq) || onSubgroupMatrices(b.value.dkdv));
      if (!onMatrices) continue;
      const job = attentionPathJob(direction, headDim, fused, matmul, options.tokens);
      if (!job) continue;
      const tuning = await tuneChoice(gpu, `attention ${direction} path, head dim ${headDim}`, job, options);
      if (!tuning) continue;
      const byJob = tuned.get(gpu) ?? new Map<string, boolean>();
      tuned.set(gpu, byJob.set(`${direction} ${headDim}`, tuning.choice));
      outcomes.push(tuning.outcome);
    }
  }
  return outcomes;
}

function unwrap<T>(r: Result<T>): T {
  invariant(r.ok, `the engine's fused attention kernels: ${r.ok ? "" : r.diagnostics.map((d) => d.message).join("; ")}`);
  return r.value;
}
