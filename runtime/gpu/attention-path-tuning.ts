// Which path attention takes, tuned per device (kernel-tuning.ts): the fused kernels (online
// softmax over key tiles, never a score matrix) or a materialized score matrix on the matmul
// kernels (stdlib/kernels/attention-scores-steps.ts). The fused kernels do their products in
// small tiles per workgroup; the matmul kernels reach far higher rates on tensor cores, at the
// price of a chunk's f32 scores in memory and the causal half computed and masked. Which is
// faster depends on the card, so where the engine runs attention on subgroup matrices the device
// times both, forward and backward each, at the families' head dims on causal attention over 1024
// tokens (after the layouts are tuned, so the fused side is the engine's), and the engine then
// takes the faster one at that head dim, for every sequence length and batch (timed at one). A
// backward with grouped queries, whose dK and dV add the group's heads a product at a time, is
// timed apart at head dim 128 (ChatGLM2's 32 query heads over 2); other grouped backwards keep
// the fused kernels.
// SFT_ATTENTION=scores asks for the score matrix wherever it applies; any other SFT_ATTENTION
// keeps the fused kernels.
import { attentionBackwardKernelsFor, backwardOnSubgroupMatrices } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardUniforms, type AttentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { attentionForwardKernelFor } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { scoresBackwardKernels, scoresChunkHeads, scoresForwardKernels } from "../../stdlib/kernels/attention-scores-steps.ts";
import { SCORES_REQUEST, type AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { onSubgroupMatrices, type BoundKernel, type KernelSpec, type UniformValues } from "../../stdlib/kernels/kernel.ts";
import { invariant, type Result } from "../../compiler/diagnostics.ts";
import { matmulKernelsOf, type MatmulKernel } from "../../stdlib/kernels/matmul.ts";
import { matmulStrategyFor, type MatmulStrategy } from "../../stdlib/kernels/matmul-strategy.ts";
import { attentionAdapter, tunedAttentionLayout, tunedBackwardLayouts } from "./attention-tuning.ts";
import type { GpuDevice } from "./device.ts";
import { engineGemv } from "./gemv-tuning.ts";
import { causalTimingAttention, causalVariant, probeStorage, scoresAttentionProbe, subgroupAttentionBackwardProbe, subgroupAttentionProbe, TUNED_HEAD_DIMS, TUNING_TOKENS } from "./kernel-probe-cases.ts";
import type { KernelProbe, ProbeCase } from "./kernel-probe.ts";
import { engineTuningOptions, tuneChoice, tuningDisabled, type Env, type TuningJob, type TuningOptions, type TuningOutcome } from "./kernel-tuning.ts";
import { envAsks } from "../../stdlib/kernels/env-request.ts";
import { tunedMatmulTiling } from "./matmul-tuning.ts";

export type AttentionDirection = "forward" | "backward";

/** The engine's fused attention kernels for a variant. */
interface FusedKernels {
  forward: (variant: AttentionVariant) => KernelSpec;
  backward: (variant: AttentionVariant) => AttentionBackwardKernels;
}

/** Grouped queries, timed on their own backward at head dim 128: ChatGLM2's 32 query heads over 2 key/value heads. */
const GROUPED = { headDim: 128, kvHeads: 2 };

/** A tuned job: its direction, and whether its queries are grouped (the backward only). */
type PathJob = { direction: AttentionDirection; grouped: boolean };
const jobKey = ({ direction, grouped }: PathJob, headDim: number) => `${direction}${grouped ? " grouped" : ""} ${headDim}`;

/** A job's tuning at a head dim: whether the score matrix was the faster path, on the matmul strategy timed. */
export interface TunedPath extends PathJob {
  headDim: number;
  scores: boolean;
  strategy: MatmulStrategy;
}

/** Per device, by job and head dim (jobKey): the paths its tuning chose. */
const tuned = new WeakMap<GpuDevice, Map<string, TunedPath>>();

/** Whether SFT_ATTENTION asks for the score matrix wherever it applies. */
export function scoresRequested(env: Env = process.env): boolean {
  return envAsks(SCORES_REQUEST, env);
}

/** The engine's attention path on `gpu` with the matmul `strategy` it runs, from the device's tuning (chosenAttentionScores). */
export function engineAttentionScores(gpu: GpuDevice, strategy: MatmulStrategy, env: Env = process.env): AttentionScoresChoice {
  return chosenAttentionScores([...(tuned.get(gpu)?.values() ?? [])], strategy, env);
}

/**
 * The attention path with the matmul `strategy` the engine runs, given the `tunings`:
 * SFT_ATTENTION=scores takes the score matrix wherever it applies, another SFT_ATTENTION the fused
 * kernels; otherwise the head dims whose tuning chose it on this very strategy (a matmul that failed
 * its self-check after the tuning leaves the fused kernels, which were not timed against it).
 */
export function chosenAttentionScores(tunings: readonly TunedPath[], strategy: MatmulStrategy, env: Env = process.env): AttentionScoresChoice {
  if (env.SFT_ATTENTION?.trim()) return { forward: scoresRequested(env), backward: scoresRequested(env) };
  const timedOn = JSON.stringify(strategy);
  const chosen = (job: PathJob) =>
    TUNED_HEAD_DIMS.filter((d) => tunings.some((t) => t.direction === job.direction && t.grouped === job.grouped && t.headDim === d && t.scores && JSON.stringify(t.strategy) === timedOn));
  return { forward: chosen({ direction: "forward", grouped: false }), backward: chosen({ direction: "backward", grouped: false }), groupedBackward: chosen({ direction: "backward", grouped: true }) };
}

/**
 * The score-matrix side of the path jobs: the sequence on `matmul`, and its probe at a direction
 * and head dim, which also checks `storage` dtypes. Each probe is built once, so a probe two jobs
 * check (the plain and the grouped backward) builds its float64 answers once; the probes live with
 * the matmul and storage they check, so jobs on another matmul or storage cannot be handed them.
 */
export interface ScoresPath {
  matmul: MatmulKernel;
  probe: (direction: AttentionDirection, headDim: number) => KernelProbe;
}

/** The score-matrix side on `matmul`, its probes checking `storage` dtypes. */
export function scoresPath(matmul: MatmulKernel, storage: readonly AttentionVariant["dtype"][] = ["f32"]): ScoresPath {
  const probes = new Map<string, KernelProbe>();
  return {
    matmul,
    probe: (direction, headDim) => {
      const key = `${direction} ${headDim}`;
      const probe = probes.get(key) ?? scoresAttentionProbe(matmul, headDim, direction, storage);
      probes.set(key, probe);
      return probe;
    },
  };
}

/**
 * The two paths of `direction` at `headDim` as candidates (choice: whether the score matrix), timed
 * on causal attention of two batch rows of `tokens` tokens (4096 / D heads, f32 storage, as a
 * LoRA step's activations are; the score matrix's launches are per batch row and chunk of heads):
 * `fused`, the engine's fused kernels (the forward kernel, or delta, dK/dV and dQ), and the
 * score-matrix sequence of `scores`, checked by its probe.
 */
export function attentionPathJob(
  direction: AttentionDirection,
  headDim: number,
  fused: FusedKernels,
  scores: ScoresPath,
  { tokens = TUNING_TOKENS, kvHeads }: { tokens?: number; kvHeads?: number } = {},
): TuningJob<boolean> | undefined {
  const { shape, views, scale, mask, elements, keyElements, rows, pattern, zeros } = causalTimingAttention(headDim, tokens, 2, kvHeads);
  const chunk = scoresChunkHeads(direction, shape, "f32", views);
  if (!chunk) return undefined;
  const variant = causalVariant(headDim, "f32");
  const call = { shape, variant, scale, heads: chunk };
  const forward = direction === "forward";
  const fusedKernels: BoundKernel[] = forward ? [{ spec: fused.forward(variant), uniforms: attentionForwardUniforms(shape, views, scale, mask) }] : fusedBackward(fused.backward(variant), attentionBackwardUniforms(shape, views, scale, mask));
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
      probe: scores.probe(direction, headDim),
      kernels: forward ? scoresForwardKernels(call, views, scores.matmul) : scoresBackwardKernels(call, views, scores.matmul),
    },
  ];
  const scoreElements = chunk * tokens * tokens;
  const tensors = (): ProbeCase["tensors"] => ({
    ...{ q: pattern(), k: pattern(keyElements), v: pattern(keyElements), o: forward ? zeros(elements) : pattern(), lse: zeros(rows), scores: zeros(scoreElements) },
    ...(forward ? {} : { dout: pattern(), delta: zeros(rows), dq: zeros(elements), dkv: zeros(2 * keyElements), grad: zeros(scoreElements) }),
  });
  const heads = shape.kvHeads === shape.queryHeads ? `${shape.queryHeads} heads` : `${shape.queryHeads} heads over ${shape.kvHeads}`;
  return { candidates, problem: { label: `causal attention ${direction}, ${shape.batch} x ${tokens} tokens, ${heads} of ${headDim}, f32`, tensors } };
}

// The fused backward as it runs: delta, then dK/dV, then dQ, on one set of uniforms.
function fusedBackward(kernels: AttentionBackwardKernels, uniforms: UniformValues): BoundKernel[] {
  return (["delta", "dkdv", "dq"] as const).map((k) => ({ spec: kernels[k], uniforms }));
}

/**
 * Tunes the attention path of the forward and of the backward at each of TUNED_HEAD_DIMS where
 * the engine runs the fused kernels on subgroup matrices (and SFT_ATTENTION leaves the choice
 * open); the choices are then the engine's (engineAttentionScores). One outcome per job.
 */
export async function tuneAttentionPaths(gpu: GpuDevice, env: Env = process.env, options: TuningOptions & { tokens?: number } = engineTuningOptions(env)): Promise<TuningOutcome[]> {
  if (tuningDisabled(env) || env.SFT_ATTENTION?.trim()) return [];
  // the strategy the engine takes if its self-check passes (the check follows the tunings)
  const strategy = matmulStrategyFor(gpu.adapter, env, tunedMatmulTiling(gpu));
  if (!strategy.ok) return [];
  const scores = scoresPath(matmulKernelsOf(strategy.value, engineGemv(gpu)), probeStorage(gpu));
  const adapter = attentionAdapter(gpu);
  const outcomes: TuningOutcome[] = [];
  const forward = (v: AttentionVariant) => attentionForwardKernelFor(adapter, v, env, tunedAttentionLayout(gpu, v.headDim));
  const backward = (v: AttentionVariant) => attentionBackwardKernelsFor(adapter, v, env, tunedBackwardLayouts(gpu, v.headDim));
  const fused: FusedKernels = { forward: (v) => unwrap(forward(v)), backward: (v) => unwrap(backward(v)) };
  for (const headDim of TUNED_HEAD_DIMS) {
    const variant = causalVariant(headDim, "f32");
    const [f, b] = [forward(variant), backward(variant)];
    const jobs: PathJob[] = [
      { direction: "forward", grouped: false },
      { direction: "backward", grouped: false },
      ...(headDim === GROUPED.headDim ? [{ direction: "backward" as const, grouped: true }] : []),
    ];
    for (const job of jobs) {
      // where the fused kernels run on subgroup matrices at this head dim (CPU adapters keep them)
      const onMatrices = job.direction === "forward" ? f.ok && onSubgroupMatrices(f.value) : b.ok && backwardOnSubgroupMatrices(b.value);
      if (!onMatrices) continue;
      const paths = attentionPathJob(job.direction, headDim, fused, scores, { tokens: options.tokens, kvHeads: job.grouped ? GROUPED.kvHeads : undefined });
      if (!paths) continue;
      const tuning = await tuneChoice(gpu, `attention ${job.direction} path${job.grouped ? ", grouped queries" : ""}, head dim ${headDim}`, paths, options);
      if (!tuning) continue;
      const byJob = tuned.get(gpu) ?? new Map<string, TunedPath>();
      tuned.set(gpu, byJob.set(jobKey(job, headDim), { ...job, headDim, scores: tuning.choice, strategy: strategy.value }));
      outcomes.push(tuning.outcome);
    }
  }
  return outcomes;
}

function unwrap<T>(r: Result<T>): T {
  invariant(r.ok, `the engine's fused attention kernels: ${r.ok ? "" : r.diagnostics.map((d) => d.message).join("; ")}`);
  return r.value;
}
