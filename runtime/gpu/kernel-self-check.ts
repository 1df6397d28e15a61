// Self-check of the fast kernels at device start. Where the engine would run a kernel on
// subgroup matrices (tensor cores), it first runs that kernel once on the device on a small
// seeded problem with sizes off the kernel's tiles and compares it with the float64 CPU
// reference on the same f16-rounded inputs: the matmul (of the chosen tiling), the attention
// forward, and the attention backward's dQ and dK/dV kernels (fed the reference's log-sum-exp
// and delta, so each is checked on its own). The attention kernels are checked on causal
// attention at head dims 64, 128 and 256; the verdict stands for every mask variant (padding,
// prefix, ALiBi) and head dim of that op, which are sibling kernels of the same generator. A
// kernel that disagrees beyond its tolerance, fails to compile, raises a GPU error or throws
// is not used: the engine takes the plain kernel for that op and warns once (SFT5010), or
// refuses with SFT5011 when the user asked for the fast kernel explicitly (SFT_MATMUL /
// SFT_ATTENTION=subgroup-matrix, which governs the attention forward and backward alike).
// Adapters without subgroup matrices (CPU adapters such as lavapipe) run no check. Before the
// checks, the device tunes the matmul's tiling (matmul-tuning.ts; its tuning checked every preset
// with this probe, so the check the tuned one passed stands instead of running again), the
// decode matmul's workgroup (gemv-tuning.ts) and the attention kernels' layouts
// (attention-tuning.ts; the attention probes check the tuned layouts, at every checked head dim).
import { diag, fail, invariant, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { attentionBackwardKernelsFor, backwardOnSubgroupMatrices } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardKernels, type AttentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernelFor } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { onSubgroupMatrices, type KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { matmulKernelsOf } from "../../stdlib/kernels/matmul.ts";
import { matmulStrategyFor, plainMatmulStrategy, type MatmulStrategy } from "../../stdlib/kernels/matmul-strategy.ts";
import { SCORES_REQUEST, type AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import type { GpuDevice } from "./device.ts";
import { causalVariant, probeStorage, scoresPathProbe, subgroupAttentionBackwardProbe, subgroupAttentionProbe } from "./kernel-probe-cases.ts";
import { checkKernel, type CheckedOp, type KernelCheck, type KernelProbe } from "./kernel-probe.ts";
import { tuningFile, type TuningOutcome, type Env } from "./kernel-tuning.ts";
import { envAsks, type EnvRequest } from "../../stdlib/kernels/env-request.ts";
import { attentionAdapter, tuneAttentionLayouts, tunedAttentionLayout, tunedBackwardLayouts } from "./attention-tuning.ts";
import { engineAttentionScores, scoresRequested, tuneAttentionPaths } from "./attention-path-tuning.ts";
import { engineGemv, tuneGemv } from "./gemv-tuning.ts";
import { matmulProbe, tunedMatmulTiling, tuneMatmulTiling } from "./matmul-tuning.ts";

/** The self-check of a device: one check per op whose fast kernel the engine would choose. */
export interface SelfCheckOutcome {
  /** The kernel choices tuned on the device before the checks (matmul-, gemv- and attention-tuning.ts). */
  tunings: TuningOutcome[];
  checks: Partial<Record<CheckedOp, KernelCheck>>;
  /** One SFT5010 warning per kernel that fell back, and an SFT5012 note where kernel choices were timed. */
  warnings: Diagnostic[];
}

const running = new WeakMap<GpuDevice, Promise<SelfCheckOutcome>>();
const settled = new WeakMap<GpuDevice, SelfCheckOutcome>();

/** The device's tunings: the matmul's tiling, the decode matmul's workgroup, the attention kernels' layouts, then the attention paths. */
async function tuneKernels(gpu: GpuDevice, env: Env): Promise<TuningOutcome[]> {
  const jobs = [() => tuneMatmulTiling(gpu, env), () => tuneGemv(gpu, env), () => tuneAttentionLayouts(gpu, env), () => tuneAttentionPaths(gpu, env)];
  const tunings: TuningOutcome[] = [];
  for (const job of jobs) {
    try {
      tunings.push(...[await job()].flat().filter((t) => t !== undefined));
    } catch {
      // a tuning that throws (a kernel past a device limit, a lost device) leaves that job's
      // defaults: the device still opens, and the self-check decides what runs
    }
  }
  return tunings;
}

/**
 * Tunes kernel choices (`tune`: the matmul's tiling, the gemv's workgroup, the attention layouts), then runs the probes `probesFor` gives for `gpu` (default:
 * the engine's fast kernels under `env`, the tuned tiling's among them), once per device: later
 * calls return the first outcome. openDevice calls it.
 */
export function selfCheckKernels(
  gpu: GpuDevice,
  env: Env = process.env,
  probesFor: (gpu: GpuDevice, env: Env) => KernelProbe[] = fastKernelProbes,
  tune: (gpu: GpuDevice, env: Env) => Promise<TuningOutcome[]> = tuneKernels,
): Promise<SelfCheckOutcome> {
  let outcome = running.get(gpu);
  if (!outcome) {
    outcome = runProbes(gpu, env, probesFor, tune);
    running.set(gpu, outcome);
  }
  return outcome;
}

/** The outcome of the device's self-check, once it has finished; undefined before. */
export function selfCheckOf(gpu: GpuDevice): SelfCheckOutcome | undefined {
  return settled.get(gpu);
}

// The variable that asks for each op's fast kernel explicitly: then a failed check is an error
// at the kernel choice (SFT5011) instead of a fallback.
const REQUEST: Record<CheckedOp, EnvRequest> = {
  matmul: { variable: "SFT_MATMUL", value: "subgroup-matrix" },
  attention: { variable: "SFT_ATTENTION", value: "subgroup-matrix" },
  "attention backward": { variable: "SFT_ATTENTION", value: "subgroup-matrix" },
  "attention scores": SCORES_REQUEST,
};
/** Whether `env` asks for the fast kernel of `op` explicitly (a failed check then refuses with SFT5011); the variable and value that do, if so. */
export function explicitRequest(op: CheckedOp, env: Env = process.env): string | undefined {
  return envAsks(REQUEST[op], env) ? requestText(op) : undefined;
}

// The explicit request of `op` as it is set and as messages name it: `variable=value`.
function requestText(op: CheckedOp): string {
  const { variable, value } = REQUEST[op];
  return `${variable}=${value}`;
}

async function runProbes(gpu: GpuDevice, env: Env, probesFor: (gpu: GpuDevice, env: Env) => KernelProbe[], tune: (gpu: GpuDevice, env: Env) => Promise<TuningOutcome[]>): Promise<SelfCheckOutcome> {
  const started = performance.now();
  const tunings = await tune(gpu, env);
  const outcome: SelfCheckOutcome = { tunings, checks: {}, warnings: [] };
  const timed = tunings.filter((t) => t.source === "measured");
  if (timed.length) outcome.warnings.push(tunedNote(gpu, timed, (performance.now() - started) / 1000, env));
  for (const built of probesFor(gpu, env)) {
    // a probe built on another op's fast kernel runs its fallback where that op's check just failed
    const probe = built.unless && outcome.checks[built.unless.failed]?.verified === false ? built.unless.instead() : built;
    const check = tunings.find((t) => t.check && sameProbe(t.check, probe))?.check ?? (await checkKernel(gpu, probe));
    outcome.checks[probe.op] = check;
    if (!check.verified && !explicitRequest(probe.op, env)) outcome.warnings.push(fallbackWarning(gpu, check));
  }
  settled.set(gpu, outcome);
  return outcome;
}

// Whether `check` is of `probe`: a tuning's check of its chosen candidate stands for the same probe
// here (the tuned matmul tiling's: the tuning checks every preset with matmulProbe, which names a
// preset by its configuration and tiling, as the self-check's probe of the tiling the engine runs).
// The device would not run its cases again anyway (kernel-probe.ts caches each case's outcome);
// this also spares building them, float64 references included.
function sameProbe(check: KernelCheck, probe: KernelProbe): boolean {
  return check.op === probe.op && check.kernel === probe.kernel && check.fallback === probe.fallback && check.tolerance === probe.tolerance;
}

// Said when a start timed kernel choices: it took a while, once, and where the choices are kept.
function tunedNote(gpu: GpuDevice, timed: readonly TuningOutcome[], seconds: number, env: Env): Diagnostic {
  const choices = timed.map((t) => `${t.job}: ${t.chosen}`).join("; ");
  const kept = timed.every((t) => t.savedTo !== undefined);
  return diag("SFT5012", `timed kernel choices on '${gpu.adapter.name}' in ${seconds.toFixed(1)} s (${choices})`, {
    where: gpu.adapter.name,
    hint: kept
      ? `Kept in ${timed[0].savedTo}; later starts on this card reuse them (SFT_TUNE=off skips tuning).`
      : `Could not write ${tuningFile(env)}: the next start times them again (SFT_TUNING_CACHE names another file; SFT_TUNE=off skips tuning).`,
  });
}

function fallbackWarning(gpu: GpuDevice, check: KernelCheck): Diagnostic {
  return diag("SFT5010", `the ${check.kernel} failed its self-check on '${gpu.adapter.name}' (${check.failure}); using the ${check.fallback} instead`, {
    where: gpu.adapter.name,
    hint: "Results stay correct with the plain kernel, only slower. Please report the adapter and driver (`sftc devices`).",
  });
}

// ---- the engine's choices ----

/** The check of `op` on `gpu`; openDevice ran it wherever the fast kernel would be chosen. */
function checkOf(gpu: GpuDevice, op: CheckedOp): KernelCheck {
  const check = selfCheckOf(gpu)?.checks[op];
  invariant(check, `the ${op} kernel was chosen without its self-check (openDevice runs it; was SFT_MATMUL or SFT_ATTENTION changed after the device opened?)`);
  return check;
}

function explicitRequestFailed(check: KernelCheck): Diagnostic {
  const { variable } = REQUEST[check.op];
  return diag("SFT5011", `${requestText(check.op)}, but the ${check.kernel} failed its self-check on this device (${check.failure})`, {
    where: variable,
    hint: `Unset ${variable} to use the ${check.fallback}, and please report the adapter and driver (\`sftc devices\`).`,
  });
}

/**
 * The engine's `chosen` kernel where it is plain (`fast` false) or the self-check of `op` verified
 * it; else the `plain` one, or SFT5011 where the fast one was asked for explicitly.
 */
function checkedChoice<T>(gpu: GpuDevice, op: CheckedOp, env: Env, chosen: Result<T>, fast: (kernel: T) => boolean, plain: () => T): Result<T> {
  if (!chosen.ok || !fast(chosen.value)) return chosen;
  const check = checkOf(gpu, op);
  if (check.verified) return chosen;
  if (explicitRequest(op, env)) return fail(explicitRequestFailed(check));
  return ok(plain());
}

/** The matmul strategy for `gpu` (matmulStrategyFor), with subgroup matrices only where the self-check verified them. */
export function checkedMatmulStrategy(gpu: GpuDevice, env: Env = process.env): Result<MatmulStrategy> {
  return checkedChoice(gpu, "matmul", env, matmulStrategyFor(gpu.adapter, env, tunedMatmulTiling(gpu)), (s) => typeof s === "object", () => plainMatmulStrategy(gpu.adapter.architecture));
}

/**
 * The engine's attention path on `gpu` with the matmul `strategy` (engineAttentionScores); where
 * SFT_ATTENTION=scores asked for the score matrix and it failed its self-check, SFT5011.
 */
export function checkedAttentionScores(gpu: GpuDevice, strategy: MatmulStrategy, env: Env = process.env): Result<AttentionScoresChoice> {
  const choice = engineAttentionScores(gpu, strategy, env);
  if (!scoresRequested(env)) return ok(choice);
  const check = checkOf(gpu, "attention scores");
  return check.verified ? ok(choice) : fail(explicitRequestFailed(check));
}

/** The attention forward kernel for `variant` on `gpu` (attentionForwardKernelFor), on subgroup matrices only where the self-check verified them. */
export function checkedAttentionForwardKernel(gpu: GpuDevice, variant: AttentionVariant, env: Env = process.env): Result<KernelSpec> {
  return checkedChoice(gpu, "attention", env, attentionForwardKernelFor(attentionAdapter(gpu), variant, env, tunedAttentionLayout(gpu, variant.headDim)), onSubgroupMatrices, () => attentionForwardKernel(variant));
}

/**
 * The attention backward kernels for `variant` on `gpu` (attentionBackwardKernelsFor: SFT_ATTENTION
 * governs them as it does the forward), on subgroup matrices only where the self-check verified them.
 */
export function checkedAttentionBackwardKernels(gpu: GpuDevice, variant: AttentionVariant, env: Env = process.env): Result<AttentionBackwardKernels> {
  return checkedChoice(gpu, "attention backward", env, attentionBackwardKernelsFor(attentionAdapter(gpu), variant, env, tunedBackwardLayouts(gpu, variant.headDim)), backwardOnSubgroupMatrices, () => attentionBackwardKernels(variant));
}


// ---- the probes of the engine's fast kernels ----

// Head dims of the families (Baichuan, ChatGLM, ChatGLM2: 128; MOSS: 256) and of small models
// (64); each may get its own layout (subgroups per workgroup, keys per tile).
const CHECKED_HEAD_DIMS = [64, 128, 256];

/**
 * The probes of the fast kernels the engine would choose on `gpu` under `env`: those on subgroup
 * matrices (none without them), and the score-matrix attention where SFT_ATTENTION asks for it.
 */
export function fastKernelProbes(gpu: GpuDevice, env: Env): KernelProbe[] {
  const probes: KernelProbe[] = [];
  const strategy = matmulStrategyFor(gpu.adapter, env, tunedMatmulTiling(gpu));
  if (strategy.ok && typeof strategy.value === "object") probes.push(matmulProbe(strategy.value, plainMatmulStrategy(gpu.adapter.architecture)));
  const adapter = attentionAdapter(gpu);
  const forward = fastAt((variant) => attentionForwardKernelFor(adapter, variant, env, tunedAttentionLayout(gpu, variant.headDim)), onSubgroupMatrices, "attention forward");
  if (forward.headDims.length) probes.push(subgroupAttentionProbe(forward.kernels, forward.headDims));
  const backward = fastAt((variant) => attentionBackwardKernelsFor(adapter, variant, env, tunedBackwardLayouts(gpu, variant.headDim)), backwardOnSubgroupMatrices, "attention backward");
  if (backward.headDims.length) probes.push(subgroupAttentionBackwardProbe(backward.kernels, backward.headDims));
  // the score matrix where SFT_ATTENTION asks for it, on any adapter, on the matmul the engine
  // runs (the plain one where the fast one fails its check, which runs first)
  if (scoresRequested(env) && strategy.ok) {
    const plain = () => forcedScoresProbe(gpu, plainMatmulStrategy(gpu.adapter.architecture));
    probes.push({ ...forcedScoresProbe(gpu, strategy.value), unless: { failed: "matmul", instead: plain } });
  }
  return probes;
}

/** The score-matrix attention's probe on `strategy`'s kernels, in their precision, at every checked head dim. */
function forcedScoresProbe(gpu: GpuDevice, strategy: MatmulStrategy): KernelProbe {
  return scoresPathProbe(matmulKernelsOf(strategy, engineGemv(gpu)), CHECKED_HEAD_DIMS, probeStorage(gpu));
}

/**
 * The checked head dims at which the engine's choice `launched` is on subgroup matrices (`fast`),
 * and that choice for a variant at one of them.
 */
function fastAt<T>(launched: (variant: AttentionVariant) => Result<T>, fast: (kernels: T) => boolean, what: string): { headDims: number[]; kernels: (variant: AttentionVariant) => T } {
  const headDims = CHECKED_HEAD_DIMS.filter((d) => {
    const chosen = launched(causalVariant(d, "f32"));
    return chosen.ok && fast(chosen.value);
  });
  const kernels = (variant: AttentionVariant) => {
    const chosen = launched(variant);
    invariant(chosen.ok && fast(chosen.value), `the subgroup-matrix ${what} for head dim ${variant.headDim}`);
    return chosen.value;
  };
  return { headDims, kernels };
}
