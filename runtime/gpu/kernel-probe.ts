// A probe: a kernel to verify on a device, as problems with float64 answers. `checkKernel` runs
// each case once on the device and compares its outputs with the answer (the largest relative
// error ‖out−ref‖/‖ref‖); the self-check at device start (kernel-self-check.ts) and the kernel
// tuning (kernel-tuning.ts) both verify kernels this way before the engine may use them.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { BoundKernel, KernelSpec, UniformValues } from "../../stdlib/kernels/kernel.ts";
import { relativeError } from "../numeric.ts";
import { CommandBatch } from "./batch.ts";
import { boundTensors, type Windows } from "./bound-kernels.ts";
import type { GpuDevice } from "./device.ts";
import { pipelinesOf } from "./pipelines.ts";
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
  const kernels = runKernels(c);
  for (const k of kernels) {
    const compiled = await pipelinesOf(gpu).compile(k.spec);
    if (!compiled.ok) return compiled;
  }
  const tensors: Record<string, GpuTensor> = {};
  for (const [name, t] of Object.entries(c.tensors)) tensors[name] = tensorOfContents(gpu, t, `self-check ${name}`);
  try {
    // errors arise as the launch is recorded and submitted, before the submission is awaited
    const launched = await gpu.scoped(() => {
      const batch = new CommandBatch(gpu);
      const windows: Windows = new Map();
      for (const k of kernels) batch.dispatch(k.spec, k.uniforms, boundTensors(gpu, k, tensors, windows));
      return batch.submit();
    });
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
