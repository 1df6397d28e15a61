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
// Adapters without subgroup matrices (CPU adapters such as lavapipe) run no check.
import { diag, fail, invariant, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { relativeError } from "../numeric.ts";
import { attentionBackwardKernelsFor, subgroupAttentionBackwardTolerance } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardKernels, attentionBackwardUniforms, type AttentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernelFor, subgroupAttentionTolerance, type AttentionAdapter } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardKernel, attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { denseView } from "../../stdlib/kernels/attention-layout.ts";
import { attentionBackwardReference, attentionForwardReference, type AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import { roundToDType, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { KernelSpec, UniformValues } from "../../stdlib/kernels/kernel.ts";
import { subgroupMatrixTolerance, tilingKey, SUBGROUP_TILINGS, DEFAULT_SUBGROUP_TILING, type SubgroupMatrixStrategy } from "../../stdlib/kernels/matmul-subgroup.ts";
import { matmulKernel, matmulRef, matmulStrategyFor, matmulUniforms, plainMatmulStrategy, type MatmulOptions, type MatmulShape, type MatmulStrategy } from "../../stdlib/kernels/matmul.ts";
import { Random } from "../random.ts";
import { runKernel } from "./batch.ts";
import type { GpuDevice } from "./device.ts";
import { pipelinesOf } from "./pipelines.ts";
import { readFloats, uploadTensor, type GpuTensor } from "./tensor.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** The ops whose kernel the engine may take on subgroup matrices. */
type CheckedOp = "matmul" | "attention" | "attention backward";

/** One problem a kernel must solve: its tensors (by binding name) and the float64 answer for some of them. */
export interface ProbeCase {
  label: string;
  spec: KernelSpec;
  uniforms: UniformValues;
  /** Initial contents of every binding. */
  tensors: Record<string, { dtype: StorageDType; data: ArrayLike<number> }>;
  /** The expected contents of the outputs, by binding name (or by the names `placed` gives). */
  expected: Record<string, Float64Array>;
  /** Outputs that lie inside another binding (dK and dV share `dkv`): that binding and their first element. */
  placed?: Record<string, { binding: string; offset: number }>;
}

/** A fast kernel to verify, with the plain kernel the engine falls back to. */
export interface KernelProbe {
  op: CheckedOp;
  /** The fast kernel, as the user reads it. */
  kernel: string;
  /** The plain kernel, as the user reads it. */
  fallback: string;
  tolerance: number;
  /** Built only when the probe runs. */
  cases: () => ProbeCase[];
}

/** The outcome of one probe on one device. */
export interface KernelCheck {
  op: CheckedOp;
  kernel: string;
  fallback: string;
  verified: boolean;
  tolerance: number;
  /** The largest relative error ‖out−ref‖/‖ref‖ over the cases that ran (NaN when an output had NaN). */
  relativeError?: number;
  /** Why the kernel was not verified. */
  failure?: string;
}

/** The self-check of a device: one check per op whose fast kernel the engine would choose. */
export interface SelfCheckOutcome {
  checks: Partial<Record<CheckedOp, KernelCheck>>;
  /** One SFT5010 warning per kernel that fell back. */
  warnings: Diagnostic[];
}

const running = new WeakMap<GpuDevice, Promise<SelfCheckOutcome>>();
const settled = new WeakMap<GpuDevice, SelfCheckOutcome>();

/**
 * Runs the probes `probesFor` gives for `gpu` (default: the engine's fast kernels under `env`),
 * once per device: later calls return the first outcome. openDevice calls it.
 */
export function selfCheckKernels(gpu: GpuDevice, env: Env = process.env, probesFor: (gpu: GpuDevice, env: Env) => KernelProbe[] = fastKernelProbes): Promise<SelfCheckOutcome> {
  let outcome = running.get(gpu);
  if (!outcome) {
    outcome = runProbes(gpu, probesFor(gpu, env), env);
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
const REQUEST_VARIABLE: Record<CheckedOp, string> = { matmul: "SFT_MATMUL", attention: "SFT_ATTENTION", "attention backward": "SFT_ATTENTION" };
const requested = (op: CheckedOp, env: Env) => env[REQUEST_VARIABLE[op]]?.trim() === "subgroup-matrix";

async function runProbes(gpu: GpuDevice, probes: KernelProbe[], env: Env): Promise<SelfCheckOutcome> {
  const outcome: SelfCheckOutcome = { checks: {}, warnings: [] };
  for (const probe of probes) {
    const check = await checkKernel(gpu, probe);
    outcome.checks[probe.op] = check;
    if (!check.verified && !requested(probe.op, env)) outcome.warnings.push(fallbackWarning(gpu, check));
  }
  settled.set(gpu, outcome);
  return outcome;
}

/**
 * Runs `probe`'s cases on `gpu` and compares each with its reference; stops at the first failure.
 * A probe that throws (building its cases or its kernel, or launching it) fails its check: the
 * device still opens, with the plain kernel.
 */
export async function checkKernel(gpu: GpuDevice, probe: KernelProbe): Promise<KernelCheck> {
  const { op, kernel, fallback, tolerance } = probe;
  const failed = (failure: string, relativeError?: number): KernelCheck => ({ op, kernel, fallback, tolerance, verified: false, relativeError, failure });
  let worst = 0;
  try {
    for (const c of probe.cases()) {
      const ran = await runCase(gpu, c);
      if (!ran.ok) return failed(`${c.label}: ${ran.diagnostics.map((d) => d.message).join("; ")}`);
      const error = ran.value;
      if (!(error <= tolerance)) return failed(`${c.label}: relative error ${formatError(error)} exceeds ${tolerance.toExponential(0)}`, error);
      worst = Math.max(worst, error);
    }
  } catch (e) {
    return failed(`threw: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { op, kernel, fallback, tolerance, verified: true, relativeError: worst };
}

// The largest relative error over the case's outputs (NaN propagates), or the compile or GPU errors.
async function runCase(gpu: GpuDevice, c: ProbeCase): Promise<Result<number>> {
  const compiled = await pipelinesOf(gpu).compile(c.spec);
  if (!compiled.ok) return compiled;
  const tensors: Record<string, GpuTensor> = {};
  for (const [name, t] of Object.entries(c.tensors)) tensors[name] = uploadTensor(gpu, t.dtype, [t.data.length], t.data, `self-check ${name}`);
  try {
    // errors arise as the launch is recorded and submitted, before runKernel first awaits
    const launched = await gpu.scoped(() => runKernel(gpu, c.spec, c.uniforms, tensors));
    if (!launched.ok) return launched;
    await launched.value;
    if (gpu.isLost) return fail(diag("SFT5007", "the GPU device was lost while the kernel ran"));
    let worst = 0;
    for (const [name, ref] of Object.entries(c.expected)) {
      const { binding, offset } = c.placed?.[name] ?? { binding: name, offset: 0 };
      const out = await readFloats(gpu, tensors[binding]);
      worst = Math.max(worst, relativeError(out.subarray(offset, offset + ref.length), ref));
    }
    return ok(worst);
  } finally {
    for (const t of Object.values(tensors)) t.destroy();
  }
}

function formatError(error: number): string {
  return Number.isNaN(error) ? "NaN (non-finite outputs)" : error.toExponential(2);
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
  invariant(check, `the ${op} kernel was chosen on subgroup matrices without its self-check (openDevice runs it; was SFT_MATMUL or SFT_ATTENTION changed after the device opened?)`);
  return check;
}

function explicitRequestFailed(check: KernelCheck): Diagnostic {
  const variable = REQUEST_VARIABLE[check.op];
  return diag("SFT5011", `${variable}=subgroup-matrix, but the ${check.kernel} failed its self-check on this device (${check.failure})`, {
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
  if (requested(op, env)) return fail(explicitRequestFailed(check));
  return ok(plain());
}

/** The matmul strategy for `gpu` (matmulStrategyFor), with subgroup matrices only where the self-check verified them. */
export function checkedMatmulStrategy(gpu: GpuDevice, env: Env = process.env): Result<MatmulStrategy> {
  return checkedChoice(gpu, "matmul", env, matmulStrategyFor(gpu.adapter, env), (s) => typeof s === "object", () => plainMatmulStrategy(gpu.adapter.architecture));
}

/** The attention forward kernel for `variant` on `gpu` (attentionForwardKernelFor), on subgroup matrices only where the self-check verified them. */
export function checkedAttentionForwardKernel(gpu: GpuDevice, variant: AttentionVariant, env: Env = process.env): Result<KernelSpec> {
  return checkedChoice(gpu, "attention", env, attentionForwardKernelFor(attentionAdapter(gpu), variant, env), onSubgroupMatrices, () => attentionForwardKernel(variant));
}

/**
 * The attention backward kernels for `variant` on `gpu` (attentionBackwardKernelsFor: SFT_ATTENTION
 * governs them as it does the forward), on subgroup matrices only where the self-check verified them.
 */
export function checkedAttentionBackwardKernels(gpu: GpuDevice, variant: AttentionVariant, env: Env = process.env): Result<AttentionBackwardKernels> {
  return checkedChoice(gpu, "attention backward", env, attentionBackwardKernelsFor(attentionAdapter(gpu), variant, env), backwardOnSubgroupMatrices, () => attentionBackwardKernels(variant));
}

const onSubgroupMatrices = (spec: KernelSpec) => !!spec.enables?.includes("chromium_experimental_subgroup_matrix");
// A layout may fit the dQ kernel's workgroup memory and not the dK/dV kernel's: either counts.
const backwardOnSubgroupMatrices = (kernels: AttentionBackwardKernels) => onSubgroupMatrices(kernels.dq) || onSubgroupMatrices(kernels.dkdv);

/** What the attention kernel choice reads of `gpu`: its adapter and its workgroup memory. */
export function attentionAdapter(gpu: GpuDevice): AttentionAdapter {
  return { ...gpu.adapter, workgroupStorageBytes: gpu.limits.maxComputeWorkgroupStorageSize };
}

// ---- the probes of the engine's fast kernels ----

// Head dims of the families (Baichuan, ChatGLM, ChatGLM2: 128; MOSS: 256) and of small models
// (64); each may get its own layout (subgroups per workgroup, keys per tile).
const CHECKED_HEAD_DIMS = [64, 128, 256];

/** The probes of the fast kernels the engine would choose on `gpu` under `env`; none without subgroup matrices. */
function fastKernelProbes(gpu: GpuDevice, env: Env): KernelProbe[] {
  const probes: KernelProbe[] = [];
  const strategy = matmulStrategyFor(gpu.adapter, env);
  if (strategy.ok && typeof strategy.value === "object") probes.push(matmulProbe(strategy.value, plainMatmulStrategy(gpu.adapter.architecture)));
  const adapter = attentionAdapter(gpu);
  const forward = fastAt((variant) => attentionForwardKernelFor(adapter, variant, env), onSubgroupMatrices, "attention forward");
  if (forward.headDims.length) probes.push(subgroupAttentionProbe(forward.kernels, forward.headDims));
  const backward = fastAt((variant) => attentionBackwardKernelsFor(adapter, variant, env), backwardOnSubgroupMatrices, "attention backward");
  if (backward.headDims.length) probes.push(subgroupAttentionBackwardProbe(backward.kernels, backward.headDims));
  return probes;
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

/** The subgroup-matrix matmul of `strategy` against matmulRef on f16-rounded A and B. */
function matmulProbe(strategy: SubgroupMatrixStrategy, fallback: MatmulStrategy): KernelProbe {
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

/**
 * Matmuls with M, N, K off every tile: x Wᵀ with W stored (N, K) as weights are, in f32 and with
 * f16 activations times bf16 weights (half-precision checkpoints), and a batched A B with bias,
 * alpha and accumulation (as gradients accumulate). `inputs` is the precision the kernel
 * multiplies in: the reference sees A and B rounded to it.
 */
export function matmulCases(kernel: (o: MatmulOptions, s: MatmulShape) => KernelSpec, inputs: StorageDType): ProbeCase[] {
  const rng = new Random(5010);
  const weights: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true };
  const halfWeights: MatmulOptions = { ...weights, a: "f16", b: "bf16" };
  const gradients: MatmulOptions = { ...weights, transB: false, bias: "f32", accumulate: true };
  const cases: [MatmulOptions, MatmulShape, string][] = [
    [weights, { batch: 1, m: 70, n: 90, k: 100 }, "70x100 times (90, 100)ᵀ"],
    [halfWeights, { batch: 1, m: 24, n: 72, k: 40 }, "f16 24x40 times bf16 (72, 40)ᵀ"],
    [gradients, { batch: 2, m: 33, n: 40, k: 50, alpha: 0.5, beta: 1 }, "2 x (33x50 times 50x40) + bias + C"],
  ];
  return cases.map(([o, s, label]) => {
    const a = roundToDType(o.a, rng.normalArray(s.batch * s.m * s.k));
    const b = roundToDType(o.b, rng.normalArray(s.batch * s.k * s.n));
    const bias = o.bias ? Float64Array.from(rng.normalArray(s.n)) : undefined;
    const c0 = o.accumulate ? Float64Array.from(rng.normalArray(s.batch * s.m * s.n)) : new Float64Array(s.batch * s.m * s.n);
    const expected = matmulRef(roundToDType(inputs, a), roundToDType(inputs, b), o, s, { bias, c0: o.accumulate ? c0 : undefined });
    const tensors: ProbeCase["tensors"] = { a: { dtype: o.a, data: a }, b: { dtype: o.b, data: b }, c: { dtype: o.out, data: c0 } };
    if (bias) tensors.bias = { dtype: "f32", data: bias };
    return { label, spec: kernel(o, s), uniforms: matmulUniforms(s, o), tensors, expected: { c: expected } };
  });
}

/** The subgroup-matrix attention forward `kernel` at each head dim in `headDims` against the reference on f16-rounded Q, K, V. */
function subgroupAttentionProbe(kernel: (variant: AttentionVariant) => KernelSpec, headDims: number[]): KernelProbe {
  return {
    op: "attention",
    kernel: `subgroup-matrix attention forward (head dims ${headDims.join(", ")})`,
    fallback: "scalar attention forward",
    tolerance: subgroupAttentionTolerance(),
    cases: () => attentionCases(kernel, headDims, "f16"),
  };
}

/** The variant of causal attention with `dtype` storage. */
function causalVariant(headDim: number, dtype: AttentionVariant["dtype"]): AttentionVariant {
  return { dtype, headDim, causal: true, prefix: false, padding: false, segments: false, alibi: false };
}

// The problem of the attention probes: causal attention of 40 queries over 40 keys, 2 query heads
// sharing 1 KV head (as ChatGLM2's groups do), Q, K, V in `variant`'s storage dtype, dense (B, H, L, D).
function causalProblem(rng: Random, variant: AttentionVariant) {
  const { headDim, dtype } = variant;
  const shape: AttentionShape = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 40, keyLength: 40, headDim };
  const mask = { causal: true, queryOffset: 0 };
  const scale = 1 / Math.sqrt(headDim);
  const q = roundToDType(dtype, rng.normalArray(shape.queryHeads * shape.queryLength * headDim));
  const k = roundToDType(dtype, rng.normalArray(shape.kvHeads * shape.keyLength * headDim));
  const v = roundToDType(dtype, rng.normalArray(shape.kvHeads * shape.keyLength * headDim));
  const queries = denseView("bhtd", shape.queryLength, shape.queryHeads, headDim);
  const keys = denseView("bhtd", shape.keyLength, shape.kvHeads, headDim);
  const label = `causal attention T 40, 2 heads over 1 KV head, head dim ${headDim}, ${dtype} storage`;
  return { shape, mask, scale, q, k, v, queries, keys, label };
}

// Each checked head dim with f32 storage, and the first with f16 storage (f16 models).
const probeVariants = (headDims: number[]) => [...headDims.map((d) => causalVariant(d, "f32")), causalVariant(headDims[0], "f16")];

/**
 * The forward of causalProblem at each variant of probeVariants: O and the log-sum-exp against
 * attentionForwardReference on Q, K and V rounded to `inputs`, the precision the kernel
 * multiplies in.
 */
export function attentionCases(kernel: (variant: AttentionVariant) => KernelSpec, headDims: number[], inputs: StorageDType): ProbeCase[] {
  const rng = new Random(5011);
  return probeVariants(headDims).map((variant) => {
    const { shape, mask, scale, q, k, v, queries, keys, label } = causalProblem(rng, variant);
    const ref = attentionForwardReference({ shape, q: roundToDType(inputs, q), k: roundToDType(inputs, k), v: roundToDType(inputs, v), scale, mask });
    const { dtype } = variant;
    return {
      label,
      spec: kernel(variant),
      uniforms: attentionForwardUniforms(shape, { q: queries, k: keys, v: keys, o: queries }, scale, mask),
      tensors: {
        q: { dtype, data: q },
        k: { dtype, data: k },
        v: { dtype, data: v },
        o: { dtype, data: new Float64Array(q.length) },
        lse: { dtype: "f32", data: new Float64Array(shape.queryHeads * shape.queryLength) },
      },
      expected: { o: ref.out, lse: ref.logSumExp },
    };
  });
}

/** The subgroup-matrix attention backward `kernels` at each head dim in `headDims` against the reference on f16-rounded Q, K, V and dO. */
export function subgroupAttentionBackwardProbe(kernels: (variant: AttentionVariant) => AttentionBackwardKernels, headDims: number[]): KernelProbe {
  return {
    op: "attention backward",
    kernel: `subgroup-matrix attention backward (head dims ${headDims.join(", ")})`,
    fallback: "scalar attention backward",
    tolerance: subgroupAttentionBackwardTolerance(),
    cases: () => attentionBackwardCases(kernels, headDims, "f16"),
  };
}

/**
 * The backward of causalProblem at each variant of probeVariants, two cases each: the dQ kernel,
 * and the dK/dV kernel (dK and dV each compared on their own half of the one buffer). Both are
 * fed the reference's log-sum-exp and delta = rowsum(dO * O) (the delta kernel is the plain
 * backward's), and checked against attentionBackwardReference on Q, K, V and dO rounded to
 * `inputs`, the precision the kernels multiply in.
 */
export function attentionBackwardCases(kernels: (variant: AttentionVariant) => AttentionBackwardKernels, headDims: number[], inputs: StorageDType): ProbeCase[] {
  const rng = new Random(5012);
  return probeVariants(headDims).flatMap((variant) => {
    const { shape, mask, scale, q, k, v, queries, keys, label } = causalProblem(rng, variant);
    const { dtype, headDim } = variant;
    const dout = roundToDType(dtype, rng.normalArray(q.length));
    const problem = { shape, q: roundToDType(inputs, q), k: roundToDType(inputs, k), v: roundToDType(inputs, v), scale, mask };
    const dOut = roundToDType(inputs, dout);
    const forward = attentionForwardReference(problem);
    const grads = attentionBackwardReference(problem, dOut);
    const delta = new Float64Array(forward.logSumExp.length); // (B, Hq, T)
    for (let row = 0; row < delta.length; row++) for (let d = 0; d < headDim; d++) delta[row] += dOut[row * headDim + d] * forward.out[row * headDim + d];
    const views = { q: queries, k: keys, v: keys, o: queries, dout: queries, dq: queries, dk: keys, dv: denseView("bhtd", shape.keyLength, shape.kvHeads, headDim, k.length) };
    const uniforms = attentionBackwardUniforms(shape, views, scale, mask);
    const read: ProbeCase["tensors"] = {
      q: { dtype, data: q },
      k: { dtype, data: k },
      v: { dtype, data: v },
      dout: { dtype, data: dout },
      lse: { dtype: "f32", data: forward.logSumExp },
      delta: { dtype: "f32", data: delta },
    };
    const chosen = kernels(variant);
    const dq: ProbeCase = { label: `dQ of ${label}`, spec: chosen.dq, uniforms, tensors: { ...read, dq: { dtype, data: new Float64Array(q.length) } }, expected: { dq: grads.dq } };
    const dkdv: ProbeCase = {
      label: `dK, dV of ${label}`,
      spec: chosen.dkdv,
      uniforms,
      tensors: { ...read, dkv: { dtype, data: new Float64Array(2 * k.length) } },
      expected: { dk: grads.dk, dv: grads.dv },
      placed: { dk: { binding: "dkv", offset: 0 }, dv: { binding: "dkv", offset: k.length } },
    };
    return [dq, dkdv];
  });
}
