// Per-kernel throughput and correctness: each case of kernel-cases.ts runs once on its fresh
// inputs and is checked against its float64 reference, then timed over repeated dispatches
// (GPU timestamps when the device has them, else wall time around onSubmittedWorkDone). A case
// whose kernel fails to compile, or during which the GPU reports an error, becomes a failed row
// with the error text, and the run goes on.
import { CommandBatch } from "../runtime/gpu/batch.ts";
import type { Diagnostic } from "../compiler/diagnostics.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { bindKernels } from "../runtime/gpu/bound-kernels.ts";
import type { BoundSteps } from "../runtime/gpu/bound-steps.ts";
import { runKernels } from "../runtime/gpu/kernel-probe.ts";
import type { Case, KernelCheck } from "./case-inputs.ts";
import { kernelCases } from "./kernel-cases.ts";
import { warmUp } from "./warm-up.ts";
import type { BenchShapes } from "./sizes.ts";

/** One benchmarked kernel. */
export interface KernelResult {
  label: string;
  /** The kernel's spec name (e.g. "matmul_subgroup_matrix"), or a sequence's names joined by "+". */
  kernel: string;
  shape: string;
  /** Compute-bound kernels (matmuls, attention) are compared with a matmul reference, the rest with the memory bandwidth. */
  bound: "compute" | "memory";
  /** (M, N, K) of a matmul. */
  mnk?: [number, number, number];
  nsPerDispatch: number;
  timing: "gpu timestamps" | "wall clock";
  /** GPU-timed durations (ns) of every repetition; empty with wall-clock timing. */
  samplesNs: number[];
  /**
   * Wall time of the timed submission over its dispatches (ns), recorded beside the GPU
   * timestamps so that a run shows whether the two disagree.
   */
  wallNsPerDispatch: number;
  gflops?: number;
  gbs: number;
  check: KernelCheck;
  /** Why the case has no figures: a compile failure or a GPU error during the case. */
  error?: string;
}

/** The case compiled and bound once (a failed row where it does not compile or bind), then checked and timed (timeCase). */
async function runCase(gpu: GpuDevice, c: Case, reps: number, warmUpMs: number): Promise<KernelResult> {
  const bound = await bindKernels(gpu, runKernels(c), c.tensors);
  if (!bound.ok) return failed(c, gpuErrorText(bound.diagnostics));
  try {
    return await timeCase(gpu, c, bound.value, reps, warmUpMs);
  } finally {
    bound.value.destroy();
  }
}

/**
 * One checked run of `run` (the case bound), untimed batches of `reps` runs for `warmUpMs`
 * (warm-up.ts), then `reps` timed ones (a sequence's kernels timed as one pass); the median GPU
 * time, else the mean wall time (recorded in either case).
 */
async function timeCase(gpu: GpuDevice, c: Case, run: BoundSteps, reps: number, warmUpMs: number): Promise<KernelResult> {
  const first = new CommandBatch(gpu);
  run.record(first);
  await first.submit();
  const check = await c.verify();
  const firstErrors = await gpu.takeErrors();
  if (firstErrors.length) return failed(c, gpuErrorText(firstErrors));
  // `reps` runs of the case in one batch
  const name = caseKernel(c);
  const repeated = (batch: CommandBatch) => {
    for (let r = 0; r < reps; r++) {
      batch.beginTimedGroup(name);
      run.record(batch);
      batch.endTimedGroup();
    }
    return batch;
  };
  await warmUp(warmUpMs, async () => void (await repeated(new CommandBatch(gpu)).submit()));
  const batch = repeated(new CommandBatch(gpu, { timestamps: true }));
  const start = performance.now();
  const timings = await batch.submit();
  const wallNs = ((performance.now() - start) * 1e6) / reps;
  const timedErrors = await gpu.takeErrors();
  if (timedErrors.length) return failed(c, gpuErrorText(timedErrors));
  const samplesNs = timings.map((t) => t.ns);
  const sorted = [...samplesNs].sort((a, b) => a - b);
  const ns = sorted.length ? sorted[Math.floor(sorted.length / 2)] : wallNs;
  return {
    ...identity(c),
    nsPerDispatch: ns,
    timing: sorted.length ? "gpu timestamps" : "wall clock",
    samplesNs,
    wallNsPerDispatch: wallNs,
    gflops: c.flops ? c.flops / ns : undefined,
    gbs: c.bytes / ns,
    check,
  };
}

function identity(c: Case): Pick<KernelResult, "label" | "kernel" | "shape" | "bound" | "mnk"> {
  return { label: c.label, kernel: caseKernel(c), shape: c.shape, bound: c.mnk || c.compute ? "compute" : "memory", mnk: c.mnk };
}

// the kernel's name, or a sequence's distinct names in order
function caseKernel(c: Case): string {
  return [...new Set(runKernels(c).map((k) => k.spec.name))].join("+");
}

function gpuErrorText(errors: readonly Diagnostic[]): string {
  return errors.map((d) => `${d.code} ${d.message}`).join("; ");
}

/** The row of a case that could not run: no figures, a NaN error (never within tolerance), and why. */
function failed(c: Case, error: string): KernelResult {
  return {
    ...identity(c),
    nsPerDispatch: NaN,
    timing: "wall clock",
    samplesNs: [],
    wallNsPerDispatch: NaN,
    gbs: NaN,
    check: { relativeError: NaN, tolerance: NaN, rows: "not run" },
    error,
  };
}

/** How a run of cases is told of each one, and which it runs. */
export interface CaseRunOptions {
  /** Told of each case as it finishes (a full-size run takes minutes). */
  progress?: (line: string) => void;
  /** Only the cases whose label matches run; the others are built, then skipped. */
  filter?: RegExp;
  /** Untimed work per case before its timed dispatches (warm-up.ts); default none. */
  warmUpMs?: number;
}

/** Checks and times every benchmarked kernel at shapes `s`; a case that cannot run is a failed row. */
export function benchKernels(gpu: GpuDevice, s: BenchShapes, options: CaseRunOptions = {}): Promise<KernelResult[]> {
  return runCases(gpu, kernelCases(gpu, s), s.reps, { warmUpMs: s.warmUpMs, ...options });
}

/** Checks and times `cases` one after the other, destroying each one's tensors after it. */
export async function runCases(gpu: GpuDevice, cases: Iterable<Case>, reps: number, options: CaseRunOptions = {}): Promise<KernelResult[]> {
  const results: KernelResult[] = [];
  for (const c of cases) {
    const started = performance.now();
    let result: KernelResult | undefined;
    try {
      if (!options.filter || options.filter.test(c.label)) result = await runCase(gpu, c, reps, options.warmUpMs ?? 0);
    } catch (e) {
      // e.g. reading back from a lost device: recorded so the other cases still run
      result = failed(c, e instanceof Error ? e.message : String(e));
    } finally {
      for (const t of Object.values(c.tensors)) t.destroy();
    }
    if (!result) continue;
    results.push(result);
    options.progress?.(`${progressLine(result)} (${((performance.now() - started) / 1000).toFixed(1)} s with its check)`);
  }
  return results;
}

/** One line per finished case, so a run cut short still shows what it measured. */
function progressLine(r: KernelResult): string {
  if (r.error) return `${r.label} ${r.shape}: FAIL ${r.error}`;
  const rate = r.gflops !== undefined ? `${r.gflops.toFixed(1)} GFLOP/s` : `${r.gbs.toFixed(1)} GB/s`;
  const wall = r.timing === "gpu timestamps" ? ` (wall ${(r.wallNsPerDispatch / 1e6).toFixed(3)} ms)` : "";
  return `${r.label} ${r.shape}: ${(r.nsPerDispatch / 1e6).toFixed(3)} ms${wall}, ${rate}, relative error ${r.check.relativeError.toExponential(2)}`;
}
