// The tensor-core attention kernels' layouts, tuned per device (kernel-tuning.ts). A layout is
// subgroups per workgroup (rows per block) and keys (or queries) per tile; the largest that fits
// the workgroup memory serves each tile it fills to the most rows, but smaller ones run more
// workgroups at once and hold less per workgroup, and which is faster depends on the card. At the
// families' head dims (128; MOSS 256), for the forward and for the backward's dQ and dK/dV
// kernels each, the device checks every layout that fits against float64, times them on causal
// attention over 1024 tokens (4096 / D heads), and the engine then takes the fastest for every
// launch of that kernel and head dim (each mask variant is a sibling kernel of the same layout).
// SFT_TUNE=off keeps the largest layouts.
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import {
  attentionDkdvSubgroupKernel,
  attentionDqSubgroupKernel,
  backwardLayouts,
  backwardWorkgroupBytes,
  type BackwardKernel,
} from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardKernels, attentionBackwardUniforms } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardSubgroupKernel } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionKernelChoice, subgroupAttentionLayouts, type AttentionAdapter, type SubgroupAttentionLayout } from "../../stdlib/kernels/attention-subgroup-layout.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import type { GpuDevice } from "./device.ts";
import { causalTimingAttention, causalVariant, subgroupAttentionBackwardProbe, subgroupAttentionProbe, TUNED_HEAD_DIMS, TUNING_TOKENS } from "./kernel-probe-cases.ts";
import type { KernelProbe, ProbeCase } from "./kernel-probe.ts";
import { engineTuningOptions, tuneChoice, tuningDisabled, type KernelCandidate, type TuningJob, type TuningOptions, type TuningOutcome, type TuningProblem, type Env } from "./kernel-tuning.ts";

/** An attention kernel with a layout of its own. */
export type AttentionKernel = "forward" | BackwardKernel;

const JOB: Record<AttentionKernel, string> = { forward: "attention forward layout", dq: "attention backward dQ layout", dkdv: "attention backward dK/dV layout" };

const tuned = new WeakMap<GpuDevice, Map<string, SubgroupAttentionLayout>>();

/** What the attention kernel choice reads of `gpu`: its adapter and its workgroup memory. */
export function attentionAdapter(gpu: GpuDevice): AttentionAdapter {
  return { ...gpu.adapter, workgroupStorageBytes: gpu.limits.maxComputeWorkgroupStorageSize };
}

/** The layout the device's tuning chose for `kernel` at `headDim`; undefined where it did not tune one. */
export function tunedAttentionLayout(gpu: GpuDevice, headDim: number, kernel: AttentionKernel = "forward"): SubgroupAttentionLayout | undefined {
  return tuned.get(gpu)?.get(`${kernel} ${headDim}`);
}

/** The layout the engine runs for `kernel` at `headDim` on `gpu`: the tuned one, else the largest that fits (undefined: none fits). */
export function engineAttentionLayout(gpu: GpuDevice, headDim: number, kernel: AttentionKernel = "forward"): SubgroupAttentionLayout | undefined {
  return tunedAttentionLayout(gpu, headDim, kernel) ?? attentionLayouts(attentionAdapter(gpu), headDim, kernel)[0];
}

/** The tuned layouts of the backward's dQ and dK/dV kernels at `headDim` (those tuned). */
export function tunedBackwardLayouts(gpu: GpuDevice, headDim: number): Partial<Record<BackwardKernel, SubgroupAttentionLayout>> {
  const [dq, dkdv] = (["dq", "dkdv"] as const).map((k) => tunedAttentionLayout(gpu, headDim, k));
  return { ...(dq ? { dq } : {}), ...(dkdv ? { dkdv } : {}) };
}

/** A layout as the user reads it, e.g. "4 subgroups x 32 keys". */
export function attentionLayoutName(layout: SubgroupAttentionLayout): string {
  return `${layout.subgroups} subgroup${layout.subgroups === 1 ? "" : "s"} x ${layout.blockK} keys`;
}

/** The layouts of `kernel` that fit `adapter` at `headDim`, largest (the untuned choice) first. */
export function attentionLayouts(adapter: AttentionAdapter, headDim: number, kernel: AttentionKernel = "forward"): SubgroupAttentionLayout[] {
  return kernel === "forward" ? subgroupAttentionLayouts(adapter, headDim) : backwardLayouts(adapter, headDim, kernel);
}

// The kernel of `kernel` with `layout` for `variant`.
function layoutKernel(kernel: AttentionKernel, variant: AttentionVariant, layout: SubgroupAttentionLayout): KernelSpec {
  if (kernel === "forward") return attentionForwardSubgroupKernel(variant, layout);
  return kernel === "dq" ? attentionDqSubgroupKernel(variant, layout) : attentionDkdvSubgroupKernel(variant, layout);
}

// The probe of `kernel` with `layout` at `headDim`: the self-check's probe of that kernel alone
// (the backward's other kernel is the scalar one, whose cases are left out), named by its layout.
function layoutProbe(kernel: AttentionKernel, layout: SubgroupAttentionLayout, headDim: number): KernelProbe {
  const of = (variant: AttentionVariant) => layoutKernel(kernel, variant, layout);
  const probe =
    kernel === "forward"
      ? subgroupAttentionProbe(of, [headDim])
      : subgroupAttentionBackwardProbe((v) => ({ ...attentionBackwardKernels(v), [kernel]: of(v) }), [headDim], kernel);
  const what = JOB[kernel].replace(" layout", "");
  return { ...probe, kernel: `subgroup-matrix ${what} (${attentionLayoutName(layout)}, head dim ${headDim})`, fallback: `scalar ${what}` };
}

/** Every layout of `layouts` as a candidate for `kernel` at `headDim`, timed on causal attention over `tokens` tokens. */
export function attentionLayoutJob(
  layouts: readonly SubgroupAttentionLayout[],
  headDim: number,
  kernel: AttentionKernel = "forward",
  tokens = TUNING_TOKENS,
): TuningJob<SubgroupAttentionLayout, KernelCandidate<SubgroupAttentionLayout>> {
  const { shape, views, scale, mask, elements, rows, pattern, zeros } = causalTimingAttention(headDim, tokens, 1);
  const uniforms = kernel === "forward" ? attentionForwardUniforms(shape, views, scale, mask) : attentionBackwardUniforms(shape, views, scale, mask);
  const variant = causalVariant(headDim, "f32");
  const candidates = layouts.map((layout) => ({ name: attentionLayoutName(layout), choice: layout, probe: layoutProbe(kernel, layout, headDim), spec: layoutKernel(kernel, variant, layout), uniforms }));
  const outputs: ProbeCase["tensors"] = kernel === "forward" ? { o: zeros(elements), lse: zeros(rows) } : kernel === "dq" ? { dq: zeros(elements) } : { dkv: zeros(2 * elements) };
  const backwardInputs: ProbeCase["tensors"] = kernel === "forward" ? {} : { dout: pattern(), lse: zeros(rows), delta: zeros(rows) };
  const problem: TuningProblem = {
    label: `causal attention, ${tokens} tokens, ${shape.queryHeads} heads of ${headDim}, f32`,
    tensors: () => ({ q: pattern(), k: pattern(), v: pattern(), ...backwardInputs, ...outputs }),
  };
  return { candidates, problem };
}

/**
 * Tunes each attention kernel's layout (forward, dQ, dK/dV) at each of TUNED_HEAD_DIMS where the
 * engine would run it on subgroup matrices and more than one layout fits; the chosen ones are
 * then the device's (tunedAttentionLayout). One outcome per kernel and head dim tuned.
 */
export async function tuneAttentionLayouts(gpu: GpuDevice, env: Env = process.env, options: TuningOptions & { tokens?: number } = engineTuningOptions(env)): Promise<TuningOutcome[]> {
  if (tuningDisabled(env)) return [];
  const adapter = attentionAdapter(gpu);
  const outcomes: TuningOutcome[] = [];
  for (const headDim of TUNED_HEAD_DIMS) {
    for (const kernel of ["forward", "dq", "dkdv"] as const) {
      // as the engine chooses (SFT_ATTENTION, and whether any layout of this kernel fits)
      const bytes = kernel === "forward" ? undefined : (layout: SubgroupAttentionLayout) => backwardWorkgroupBytes(layout, headDim, kernel);
      const choice = attentionKernelChoice(adapter, headDim, env, { name: JOB[kernel], bytes });
      if (!choice.ok || choice.value === "scalar") continue;
      const layouts = attentionLayouts(adapter, headDim, kernel);
      if (layouts.length < 2) continue;
      const tuning = await tuneChoice(gpu, `${JOB[kernel]}, head dim ${headDim}`, attentionLayoutJob(layouts, headDim, kernel, options.tokens), options);
      if (!tuning) continue;
      const byKernel = tuned.get(gpu) ?? new Map<string, SubgroupAttentionLayout>();
      tuned.set(gpu, byKernel.set(`${kernel} ${headDim}`, tuning.choice));
      outcomes.push(tuning.outcome);
    }
  }
  return outcomes;
}
