// Per-kernel throughput and correctness: each case of kernel-cases.ts runs once on its fresh
// inputs and is checked against its float64 reference, then timed over repeated dispatches
// (GPU timestamps when the device has them, else wall time around onSubmittedWorkDone).
import { invariant } from "../compiler/diagnostics.ts";
import { CommandBatch } from "../runtime/gpu/batch.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { pipelinesOf } from "../runtime/gpu/pipelines.ts";
import { kernelCases, type Case, type KernelCheck } from "./kernel-cases.ts";
import type { BenchShapes } from "./sizes.ts";

/** One benchmarked kernel. */
export interface KernelResult {
  label: string;
  shape: string;
  /** Compute-bound kernels (matmuls, attention) are compared with a matmul reference, the rest with the memory bandwidth. */
  bound: "compute" | "memory";
  /** (M, N, K) of a matmul. */
  mnk?: [number, number, number];
  nsPerDispatch: number;
  timing: "gpu timestamps" | "wall clock";
  /** GPU-timed durations (ns) of every repetition; empty with wall-clock timing. */
  samplesNs: number[];
  gflops?: number;
  gbs: number;
  check: KernelCheck;
}

/** One checked dispatch, then `reps` timed ones; the median GPU time, else the mean wall time. */
async function runCase(gpu: GpuDevice, c: Case, reps: number): Promise<KernelResult> {
  const compiled = await pipelinesOf(gpu).compile(c.spec);
  invariant(compiled.ok, `${c.label}: ${compiled.diagnostics.map((d) => `${d.code} ${d.message}`).join("; ")}`);
  const first = new CommandBatch(gpu);
  first.dispatch(c.spec, c.uniforms, c.tensors);
  await first.submit();
  const check = await c.verify();
  const batch = new CommandBatch(gpu, { timestamps: true });
  for (let r = 0; r < reps; r++) batch.dispatch(c.spec, c.uniforms, c.tensors);
  const start = performance.now();
  const timings = await batch.submit();
  const wallNs = ((performance.now() - start) * 1e6) / reps;
  const samplesNs = timings.map((t) => t.ns);
  const sorted = [...samplesNs].sort((a, b) => a - b);
  const ns = sorted.length ? sorted[Math.floor(sorted.length / 2)] : wallNs;
  return {
    label: c.label,
    shape: c.shape,
    bound: c.mnk || c.compute ? "compute" : "memory",
    mnk: c.mnk,
    nsPerDispatch: ns,
    timing: sorted.length ? "gpu timestamps" : "wall clock",
    samplesNs,
    gflops: c.flops ? c.flops / ns : undefined,
    gbs: c.bytes / ns,
    check,
  };
}

/** Checks and times every benchmarked kernel at shapes `s`. */
export async function benchKernels(gpu: GpuDevice, s: BenchShapes): Promise<KernelResult[]> {
  const results: KernelResult[] = [];
  for (const c of kernelCases(gpu, s)) {
    try {
      results.push(await runCase(gpu, c, s.reps));
    } finally {
      for (const t of Object.values(c.tensors)) t.destroy();
    }
  }
  return results;
}
