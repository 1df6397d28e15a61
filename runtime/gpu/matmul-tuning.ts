// The subgroup-matrix matmul's tiling, tuned per device (kernel-tuning.ts). The presets of
// SUBGROUP_TILINGS differed up to fourfold on one H200 and in an order no rule predicted, and a
// preset's speed depends on the card's memory, caches and driver, so the device times every
// preset at its start and the engine takes the fastest that passes the matmul's probe; the
// outcome is kept in the tuning file, so only a device's first start (and the first after an
// update of sftc, Dawn or the driver) pays for it. SFT_MATMUL_TILING names a preset instead,
// SFT_TUNE=off keeps DEFAULT_SUBGROUP_TILING without timing.
import { DEFAULT_SUBGROUP_TILING, SUBGROUP_TILINGS, subgroupMatrixTolerance, tilingKey, type SubgroupMatrixStrategy, type SubgroupTilingName } from "../../stdlib/kernels/matmul-subgroup.ts";
import { matmulKernel, matmulUniforms, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { matmulStrategyFor, plainMatmulStrategy, type MatmulStrategy } from "../../stdlib/kernels/matmul-strategy.ts";
import type { GpuDevice } from "./device.ts";
import { matmulCases, WEIGHTS, weightProductProblem } from "./kernel-probe-cases.ts";
import type { KernelProbe } from "./kernel-probe.ts";
import { engineTuningOptions, tuneChoice, tuningDisabled, type KernelCandidate, type TuningJob, type TuningOptions, type TuningOutcome, type Env } from "./kernel-tuning.ts";

/**
 * The timed product: 1024 rows of activations times a 4096 x 4096 weight stored (N, K), f32,
 * as a 7B model's attention projections multiply a training step's tokens (about 34 GFLOP, a
 * fraction of a millisecond on a data-center card).
 */
const MATMUL_TUNING_SHAPE: MatmulShape = { batch: 1, m: 1024, n: 4096, k: 4096 };

const tuned = new WeakMap<GpuDevice, SubgroupTilingName>();

/** The tiling the device's tuning chose; undefined where it did not tune. */
export function tunedMatmulTiling(gpu: GpuDevice): SubgroupTilingName | undefined {
  return tuned.get(gpu);
}

/** The subgroup-matrix matmul of `strategy` against matmulRef on f16-rounded A and B. */
export function matmulProbe(strategy: SubgroupMatrixStrategy, fallback: MatmulStrategy): KernelProbe {
  const c = strategy.config;
  const tiling = tilingKey(SUBGROUP_TILINGS[strategy.tiling ?? DEFAULT_SUBGROUP_TILING]);
  return {
    op: "matmul",
    kernel: `subgroup-matrix matmul (${c.componentType}>${c.resultComponentType} ${c.M}x${c.N}x${c.K}, ${tiling})`,
    fallback: `${fallback} matmul`,
    tolerance: subgroupMatrixTolerance(c),
    cases: () => matmulCases((o, s) => matmulKernel(o, s, strategy), "f16"),
  };
}

/** Every tiling preset of `strategy` as a candidate, timed on x Wᵀ at `shape`. */
export function matmulTilingJob(strategy: SubgroupMatrixStrategy, fallback: MatmulStrategy, shape: MatmulShape = MATMUL_TUNING_SHAPE): TuningJob<SubgroupTilingName, KernelCandidate<SubgroupTilingName>> {
  const candidates = (Object.keys(SUBGROUP_TILINGS) as SubgroupTilingName[]).map((tiling) => {
    const preset = { ...strategy, tiling };
    return { name: tiling, choice: tiling, probe: matmulProbe(preset, fallback), spec: matmulKernel(WEIGHTS, shape, preset), uniforms: matmulUniforms(shape, WEIGHTS) };
  });
  return { candidates, problem: weightProductProblem(shape) };
}

/**
 * Tunes the tiling where the engine would run the matmul on subgroup matrices and no preset is
 * named (SFT_MATMUL_TILING) or tuning refused (SFT_TUNE=off); the chosen preset is then the
 * device's (tunedMatmulTiling). Undefined where nothing was tuned or no preset passed its probe.
 */
export async function tuneMatmulTiling(gpu: GpuDevice, env: Env = process.env, options: TuningOptions & { shape?: MatmulShape } = engineTuningOptions(env)): Promise<TuningOutcome | undefined> {
  if (tuningDisabled(env) || env.SFT_MATMUL_TILING?.trim()) return undefined;
  const strategy = matmulStrategyFor(gpu.adapter, env);
  if (!strategy.ok || typeof strategy.value !== "object") return undefined;
  const tuning = await tuneChoice(gpu, "matmul tiling", matmulTilingJob(strategy.value, plainMatmulStrategy(gpu.adapter.architecture), options.shape), options);
  if (tuning) tuned.set(gpu, tuning.choice);
  return tuning?.outcome;
}
