// The decode matmul's workgroup, tuned per device (kernel-tuning.ts). A decode step is bound by
// reading its weights once, and how close a gemv comes to the card's bandwidth depends on how many
// loads are in flight and how the workgroup sums its partial products, which no rule predicts
// across cards (a 7B decode step on an H200, with the 64-invocation tree-summing kernel, read its
// weights at about a fifth of the card's copy bandwidth). The device checks and times 64, 128 and
// 256 invocations a workgroup, each with the tree reduction and, where its subgroups have one
// fixed size, with subgroup sums, each with one or two K steps an iteration, and the engine takes
// the fastest; then the chosen workgroup reading an NF4 weight (a QLoRA model's decode) 32 weights
// a step and four, which trade decode work against loads in flight. Tuned wherever decode-shaped
// launches take the gemv kernel: every matmul strategy but "registers" (CPU adapters).
// SFT_TUNE=off keeps DEFAULT_GEMV (32 weights a step).
import { DEFAULT_GEMV, gemvSpec, type GemvVariant } from "../../stdlib/kernels/matmul-gemv.ts";
import { matmulUniforms, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { nf4MatmulKernel } from "../../stdlib/kernels/nf4-matmul.ts";
import { matmulStrategyFor } from "../../stdlib/kernels/matmul-strategy.ts";
import type { GpuDevice } from "./device.ts";
import { gemvCases, nf4GemvCases, nf4WeightProductProblem, WEIGHTS, weightProductProblem } from "./kernel-probe-cases.ts";
import { engineTuningOptions, tuneChoice, tuningDisabled, type KernelCandidate, type TuningJob, type TuningOptions, type TunedChoice, type TuningOutcome, type Env } from "./kernel-tuning.ts";

/** The timed product: one token's activations times a 4096 x 4096 f32 weight (67 MB read). */
const GEMV_TUNING_SHAPE: MatmulShape = { batch: 1, m: 1, n: 4096, k: 4096 };

const tuned = new WeakMap<GpuDevice, GemvVariant>();

/** The lanes of `gpu`'s subgroups where it has subgroups of one size (what subgroup sums need), else undefined. */
export function fixedSubgroupSize(gpu: GpuDevice): number | undefined {
  const { subgroupMinSize, subgroupMaxSize } = gpu.adapter;
  return gpu.hasSubgroups && subgroupMinSize === subgroupMaxSize && subgroupMaxSize > 0 ? subgroupMaxSize : undefined;
}

/** The gemv workgroup the engine's launches take on `gpu`: the tuned one, else DEFAULT_GEMV. */
export function engineGemv(gpu: GpuDevice): GemvVariant {
  return tunedGemv(gpu) ?? DEFAULT_GEMV;
}

/** The gemv workgroup the device's tuning chose; undefined where it did not tune. */
export function tunedGemv(gpu: GpuDevice): GemvVariant | undefined {
  return tuned.get(gpu);
}

/** A variant as the user reads it, e.g. "256 invocations, subgroup sums, 2 steps". */
export function gemvVariantName(v: GemvVariant): string {
  return `${v.invocations} invocations, ${v.subgroupSize ? "subgroup sums" : "tree sums"}${v.unroll === 2 ? ", 2 steps" : ""}`;
}

/**
 * The variants `gpu` can run: 64, 128 or 256 invocations; tree sums, and subgroup sums where it
 * has subgroups of one size dividing the workgroup; one or two K steps an iteration.
 */
export function gemvVariants(gpu: GpuDevice): GemvVariant[] {
  const lanes = fixedSubgroupSize(gpu);
  const sums = (invocations: number): GemvVariant[] => [{ invocations }, ...(lanes && invocations % lanes === 0 ? [{ invocations, subgroupSize: lanes }] : [])];
  return [64, 128, 256].flatMap(sums).flatMap((v) => [v, { ...v, unroll: 2 as const }]);
}

/** Every variant of `gpu` as a candidate, checked on gemvCases and timed on x Wᵀ at `shape`. */
export function gemvJob(gpu: GpuDevice, shape: MatmulShape = GEMV_TUNING_SHAPE): TuningJob<GemvVariant, KernelCandidate<GemvVariant>> {
  const candidates = gemvVariants(gpu).map((v) => ({
    name: gemvVariantName(v),
    choice: v,
    probe: { op: "matmul" as const, kernel: `gemv (${gemvVariantName(v)})`, fallback: `gemv (${gemvVariantName(DEFAULT_GEMV)})`, tolerance: 1e-5, cases: () => gemvCases((o, s) => gemvSpec(o, s, v)) },
    spec: gemvSpec(WEIGHTS, shape, v),
    uniforms: matmulUniforms(shape, WEIGHTS),
  }));
  return { candidates, problem: weightProductProblem(shape) };
}

/** How the NF4 gemv candidates read W, as the user reads it. */
const nf4StepsName = (wideSteps: boolean) => (wideSteps ? "32 weights a step" : "four weights a step");

/**
 * The gemv workgroup `base` reading an NF4 W 32 weights a step and four (GemvVariant.wideSteps),
 * each checked on nf4GemvCases and timed on x Wᵀ at `shape` with W in NF4.
 */
export function nf4StepsJob(base: GemvVariant, shape: MatmulShape = GEMV_TUNING_SHAPE): TuningJob<GemvVariant, KernelCandidate<GemvVariant>> {
  const kernel = (v: GemvVariant) => (o: MatmulOptions, s: MatmulShape) => gemvSpec(o, s, v);
  const candidates = [true, false].map((wideSteps) => {
    const v = { ...base, wideSteps };
    return {
      name: nf4StepsName(wideSteps),
      choice: v,
      probe: {
        op: "matmul" as const,
        kernel: `NF4 gemv (${gemvVariantName(base)}, ${nf4StepsName(wideSteps)})`,
        fallback: `NF4 gemv (${gemvVariantName(base)}, ${nf4StepsName(!wideSteps)})`,
        tolerance: 1e-5,
        cases: () => nf4GemvCases(kernel(v)),
      },
      spec: nf4MatmulKernel(WEIGHTS, shape, kernel(v)),
      uniforms: matmulUniforms(shape, WEIGHTS),
    };
  });
  return { candidates, problem: nf4WeightProductProblem(shape) };
}

/**
 * Tunes the gemv workgroup where decode-shaped launches take the gemv kernel (every strategy but
 * "registers") and tuning is not refused (SFT_TUNE=off), then how that workgroup reads NF4
 * weights (nf4StepsJob); the chosen variant is then the device's (tunedGemv). The outcomes of the
 * jobs timed: none where nothing was tuned or no variant passed its check.
 */
export async function tuneGemv(gpu: GpuDevice, env: Env = process.env, options: TuningOptions & { shape?: MatmulShape } = engineTuningOptions(env)): Promise<TuningOutcome[]> {
  if (tuningDisabled(env)) return [];
  const strategy = matmulStrategyFor(gpu.adapter, env);
  if (!strategy.ok || strategy.value === "registers") return [];
  const workgroup = await tuneChoice(gpu, "gemv workgroup", gemvJob(gpu, options.shape), options);
  if (!workgroup) return [];
  tuned.set(gpu, workgroup.choice);
  // the workgroup's outcome stands whatever becomes of the NF4 job: one that throws, or whose
  // candidates both fail their checks, leaves the workgroup's default (32 weights a step)
  let steps: TunedChoice<GemvVariant> | undefined;
  try {
    steps = await tuneChoice(gpu, "NF4 gemv steps", nf4StepsJob(workgroup.choice, options.shape), options);
  } catch {
    steps = undefined;
  }
  if (steps) tuned.set(gpu, steps.choice);
  return [workgroup.outcome, ...(steps ? [steps.outcome] : [])];
}
