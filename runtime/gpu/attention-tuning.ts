// The subgroup-matrix attention forward's layout, tuned per device (kernel-tuning.ts). A layout
// is subgroups per workgroup (query rows per block) and keys per tile; the largest that fits the
// workgroup memory serves each K and V tile to the most rows, but smaller ones run more
// workgroups at once and hold less per workgroup, and which is faster depends on the card. At
// the families' head dims (128; MOSS 256) the device checks every layout that fits, times them
// on causal attention over 1024 tokens (4096 / D heads), and the engine takes the fastest for
// every forward at that head dim (each mask variant is a sibling kernel of the same layout).
// SFT_TUNE=off keeps the largest layout.
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import {
  attentionForwardSubgroupKernel,
  attentionKernelChoice,
  subgroupAttentionLayouts,
  subgroupAttentionTolerance,
  type AttentionAdapter,
  type SubgroupAttentionLayout,
} from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView } from "../../stdlib/kernels/attention-layout.ts";
import type { AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import type { GpuDevice } from "./device.ts";
import { attentionCases, causalVariant } from "./kernel-probe-cases.ts";
import { tuneKernel, tuningDisabled, tuningFile, type TuningCandidate, type TuningOptions, type TuningOutcome, type TuningProblem } from "./kernel-tuning.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** The head dims tuned: Baichuan's, ChatGLM's and ChatGLM2's 128 and MOSS's 256. */
export const TUNED_HEAD_DIMS = [128, 256];
const TUNING_TOKENS = 1024;

const tuned = new WeakMap<GpuDevice, Map<number, SubgroupAttentionLayout>>();

/** What the attention kernel choice reads of `gpu`: its adapter and its workgroup memory. */
export function attentionAdapter(gpu: GpuDevice): AttentionAdapter {
  return { ...gpu.adapter, workgroupStorageBytes: gpu.limits.maxComputeWorkgroupStorageSize };
}

/** The layout the device's tuning chose at `headDim`; undefined where it did not tune one. */
export function tunedAttentionLayout(gpu: GpuDevice, headDim: number): SubgroupAttentionLayout | undefined {
  return tuned.get(gpu)?.get(headDim);
}

/** A layout as the user reads it, e.g. "4 subgroups x 32 keys". */
export function attentionLayoutName(layout: SubgroupAttentionLayout): string {
  return `${layout.subgroups} subgroup${layout.subgroups === 1 ? "" : "s"} x ${layout.blockK} keys`;
}

/** Every layout of `layouts` as a candidate at `headDim`, timed on causal attention over `tokens` tokens. */
export function attentionLayoutJob(layouts: readonly SubgroupAttentionLayout[], headDim: number, tokens = TUNING_TOKENS): { candidates: TuningCandidate[]; problem: TuningProblem } {
  const heads = Math.max(1, 4096 / headDim);
  const shape: AttentionShape = { batch: 1, queryHeads: heads, kvHeads: heads, queryLength: tokens, keyLength: tokens, headDim };
  const view = denseView("bthd", tokens, heads, headDim);
  const uniforms = attentionForwardUniforms(shape, { q: view, k: view, v: view, o: view }, 1 / Math.sqrt(headDim), { causal: true, queryOffset: 0 });
  const variant: AttentionVariant = causalVariant(headDim, "f32");
  const candidates = layouts.map((layout) => ({
    name: attentionLayoutName(layout),
    probe: {
      op: "attention" as const,
      kernel: `subgroup-matrix attention forward (${attentionLayoutName(layout)}, head dim ${headDim})`,
      fallback: "scalar attention forward",
      tolerance: subgroupAttentionTolerance(),
      cases: () => attentionCases((v) => attentionForwardSubgroupKernel(v, layout), [headDim], "f16"),
    },
    spec: attentionForwardSubgroupKernel(variant, layout),
    uniforms,
  }));
  const elements = tokens * heads * headDim;
  const pattern = () => new Float32Array(elements).map((_, i) => ((i * 7919) % 64) / 64 - 0.5);
  const problem: TuningProblem = {
    label: `causal attention, ${tokens} tokens, ${heads} heads of ${headDim}, f32`,
    tensors: () => ({
      q: { dtype: "f32", data: pattern() },
      k: { dtype: "f32", data: pattern() },
      v: { dtype: "f32", data: pattern() },
      o: { dtype: "f32", data: new Float32Array(elements) },
      lse: { dtype: "f32", data: new Float32Array(heads * tokens) },
    }),
  };
  return { candidates, problem };
}

/**
 * Tunes the forward's layout at each of TUNED_HEAD_DIMS where the engine would run it on
 * subgroup matrices and more than one layout fits; the chosen ones are then the device's
 * (tunedAttentionLayout). One outcome per head dim tuned.
 */
export async function tuneAttentionLayouts(gpu: GpuDevice, env: Env = process.env, options: TuningOptions & { tokens?: number } = { file: tuningFile(env) }): Promise<TuningOutcome[]> {
  if (tuningDisabled(env)) return [];
  const adapter = attentionAdapter(gpu);
  const outcomes: TuningOutcome[] = [];
  for (const headDim of TUNED_HEAD_DIMS) {
    const choice = attentionKernelChoice(adapter, headDim, env);
    if (!choice.ok || choice.value === "scalar") continue;
    const layouts = subgroupAttentionLayouts(adapter, headDim);
    if (layouts.length < 2) continue;
    const job = attentionLayoutJob(layouts, headDim, options.tokens);
    const outcome = await tuneKernel(gpu, `attention forward layout, head dim ${headDim}`, job.candidates, job.problem, options);
    const chosen = outcome && layouts.find((l) => attentionLayoutName(l) === outcome.chosen);
    if (!outcome || !chosen) continue;
    const byHeadDim = tuned.get(gpu) ?? new Map<number, SubgroupAttentionLayout>();
    tuned.set(gpu, byHeadDim.set(headDim, chosen));
    outcomes.push(outcome);
  }
  return outcomes;
}
