// A probe: a kernel to verify on a device, as problems with float64 answers. `checkKernel` runs
// each case once on the device and compares its outputs with the answer (the largest relative
// error ‖out−ref‖/‖ref‖); a case already run on the device, by this probe or another, is not run
// again (caseOutcome). The self-check at device start (kernel-self-check.ts) and the kernel
// tuning (kernel-tuning.ts) both verify kernels this way before the engine may use them.
import { createHash } from "node:crypto";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { BoundKernel, KernelSpec, UniformValues } from "../../stdlib/kernels/kernel.ts";
import { relativeError } from "../numeric.ts";
import { CommandBatch } from "./batch.ts";
import { bindKernels, boundKernelText } from "./bound-kernels.ts";
import type { GpuDevice } from "./device.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "./tensor.ts";

/** The ops whose fast kernels the device checks: on subgroup matrices, and attention through a score matrix (where asked for). */
export type CheckedOp = "matmul" | "attention" | "attention backward" | "attention scores";

/**
 * One problem a kernel (or a sequence of kernels) must solve: its tensors by name and the float64
 * answer for some of them.
 */
export type ProbeCase = ProbeProblem & KernelRun;

/** What runs: one kernel binding the tensors of its bindings' names, or kernels bound to named tensors, in order. */
export type KernelRun = { spec: KernelSpec; uniforms: UniformValues } | { kernels: readonly BoundKernel[] };

/** The kernels of a run, in order. */
export function runKernels(run: KernelRun): readonly BoundKernel[] {
  return "kernels" in run ? run.kernels : [{ spec: run.spec, uniforms: run.uniforms }];
}

interface ProbeProblem {
  label: string;
  /** Initial contents of every tensor (a binding's name, or a name the kernels bind). */
  tensors: Record<string, TensorContents>;
  /** The expected contents of the outputs, by binding name (or by the names `placed` gives). */
  expected: Record<string, Float64Array>;
  /** Outputs that lie inside another binding (dK and dV share `dkv`): that binding and their first element. */
  placed?: Record<string, { binding: string; offset: number }>;
}

/** A tensor's initial contents: values, or `zeros` elements (new buffers start zeroed: no host array). */
export type TensorContents = { dtype: StorageDType; data: ArrayLike<number> } | { dtype: StorageDType; zeros: number };

/** A device tensor holding `contents`. */
export function tensorOfContents(gpu: GpuDevice, contents: TensorContents, label: string): GpuTensor {
  return "zeros" in contents ? createTensor(gpu, contents.dtype, [contents.zeros], label) : uploadTensor(gpu, contents.dtype, [contents.data.length], contents.data, label);
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
  /** A probe of kernels built on another op's fast kernel: where that op's check failed (earlier in the same self-check), `instead` runs on its fallback. */
  unless?: { failed: CheckedOp; instead: () => KernelProbe };
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
      const ran = await caseOutcome(gpu, c);
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

// Per device, each case's outcome by caseKey: a case that two probes share (a tuning's candidate
// and the self-check's probe of the kernel it chose, two jobs that check the same kernels) runs on
// the device once.
const caseOutcomes = new WeakMap<GpuDevice, Map<string, Result<number>>>();

// The case's outcome on `gpu`: run there, or the outcome of the same case run there before.
async function caseOutcome(gpu: GpuDevice, c: ProbeCase): Promise<Result<number>> {
  const key = caseKey(c);
  let outcomes = caseOutcomes.get(gpu);
  if (!outcomes) caseOutcomes.set(gpu, (outcomes = new Map()));
  const known = outcomes.get(key);
  if (known) return known;
  const outcome = await runCase(gpu, c);
  outcomes.set(key, outcome);
  return outcome;
}

// What decides a case's outcome: its kernels as bound, every tensor's initial contents, and the
// expected outputs with where they lie (not its label).
function caseKey(c: ProbeCase): string {
  const hash = createHash("sha256");
  for (const k of runKernels(c)) hash.update(boundKernelText(k));
  for (const [name, t] of Object.entries(c.tensors)) {
    if ("zeros" in t) hash.update(`${name} ${t.dtype} ${t.zeros} zeros\n`);
    else hash.update(`${name} ${t.dtype} ${t.data.length}\n`).update(t.data instanceof Float64Array ? t.data : Float64Array.from(t.data));
  }
  for (const [name, ref] of Object.entries(c.expected)) hash.update(`expected ${name} ${ref.length}\n`).update(ref);
  hash.update(JSON.stringify(c.placed ?? {}));
  return hash.digest("hex");
}

// The largest relative error over the case's outputs (NaN propagates), or the compile or GPU errors.
async function runCase(gpu: GpuDevice, c: ProbeCase): Promise<Result<number>> {
  const tensors: Record<string, GpuTensor> = {};
  for (const [name, t] of Object.entries(c.tensors)) tensors[name] = tensorOfContents(gpu, t, `self-check ${name}`);
  try {
    const bound = await bindKernels(gpu, runKernels(c), tensors);
    if (!bound.ok) return bound;
    try {
      // errors arise as the launch is recorded and submitted, before the submission is awaited
      const launched = await gpu.scoped(() => {
        const batch = new CommandBatch(gpu);
        bound.value.record(batch);
        return batch.submit();
      });
      if (!launched.ok) return launched;
      await launched.value;
    } finally {
      bound.value.destroy();
    }
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
