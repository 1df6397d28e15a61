// The card's own ceilings, measured in the same run as the kernels: memory bandwidth from a
// large buffer-to-buffer copy, and PyTorch's matmul on the same kind of device (CPU for a CPU
// adapter such as lavapipe, CUDA for an NVIDIA adapter) at the benchmarked matmul shapes.
import { resolve } from "node:path";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { runTorchScript } from "./torch-python.ts";
import { warmUp } from "./warm-up.ts";

/** Bandwidth of a copy of `bytes` bytes: each copy reads and writes them, 2 * bytes of traffic. */
export interface CopyBandwidth {
  bytes: number;
  reps: number;
  timing: "gpu timestamps" | "wall clock";
  /** Median (GPU timestamps) or mean (wall clock) time of one copy. */
  nsPerCopy: number;
  /** GPU-timed durations (ns) of every copy; empty with wall-clock timing. */
  samplesNs: number[];
  gbs: number;
}

/** One PyTorch matmul timing. */
export interface TorchMatmul {
  m: number;
  n: number;
  k: number;
  dtype: string;
  ns: number;
  gflops: number;
}

/** A device-to-device copy through PyTorch (CUDA only): the card's bandwidth outside WebGPU. */
export interface TorchCopy {
  bytes: number;
  ns: number;
  /** 2 * bytes / ns: read and write counted, as for the WebGPU copy. */
  gbs: number;
}

export type TorchReference =
  | { available: true; python: string; torch: string; device: string; kind: "cpu" | "cuda"; reps: number; results: TorchMatmul[]; copy?: TorchCopy }
  | { available: false; why: string };

/**
 * Times `reps` copies of a `bytes`-byte buffer. With timestamp-query each copy sits between two
 * empty compute passes whose end and beginning timestamps bracket it; otherwise the wall time
 * of all copies until onSubmittedWorkDone, divided by `reps`.
 */
export async function copyBandwidth(gpu: GpuDevice, bytes: number, reps: number, warmUpMs = 0): Promise<CopyBandwidth> {
  const device = gpu.device;
  const size = Math.min(bytes, gpu.limits.maxBufferSize) & ~3;
  // the usages every tensor buffer has, so the copy measures the memory tensors live in
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const src = device.createBuffer({ size, usage });
  const dst = device.createBuffer({ size, usage });
  // untimed copies: the first touch of the pages is not counted, and the clocks come up
  await warmUp(warmUpMs, async () => {
    const warm = device.createCommandEncoder();
    warm.copyBufferToBuffer(src, 0, dst, 0, size);
    device.queue.submit([warm.finish()]);
    await device.queue.onSubmittedWorkDone();
  });
  try {
    const timed = gpu.hasTimestamps;
    const querySet = timed ? device.createQuerySet({ type: "timestamp", count: 2 * reps }) : undefined;
    const encoder = device.createCommandEncoder();
    for (let r = 0; r < reps; r++) {
      if (querySet) encoder.beginComputePass({ timestampWrites: { querySet, endOfPassWriteIndex: 2 * r } }).end();
      encoder.copyBufferToBuffer(src, 0, dst, 0, size);
      if (querySet) encoder.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * r + 1 } }).end();
    }
    const readback = querySet ? resolveTimestamps(device, encoder, querySet, 2 * reps) : undefined;
    const start = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    const wallNs = ((performance.now() - start) * 1e6) / reps;
    querySet?.destroy();
    const stamps = readback ? await readback() : [];
    const samplesNs = Array.from({ length: stamps.length / 2 }, (_, r) => stamps[2 * r + 1] - stamps[2 * r]);
    const sorted = [...samplesNs].sort((a, b) => a - b);
    const ns = sorted.length ? sorted[Math.floor(sorted.length / 2)] : wallNs;
    return { bytes: size, reps, timing: timed ? "gpu timestamps" : "wall clock", nsPerCopy: ns, samplesNs, gbs: (2 * size) / ns };
  } finally {
    src.destroy();
    dst.destroy();
  }
}

// Resolves `count` timestamps into a mappable buffer inside `encoder`; the returned function
// (called after the submit) reads them as ns.
function resolveTimestamps(device: GPUDevice, encoder: GPUCommandEncoder, querySet: GPUQuerySet, count: number): () => Promise<number[]> {
  const resolved = device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  encoder.resolveQuerySet(querySet, 0, count, resolved, 0);
  encoder.copyBufferToBuffer(resolved, 0, staging, 0, 8 * count);
  return async () => {
    await staging.mapAsync(GPUMapMode.READ);
    const stamps = Array.from(new BigUint64Array(staging.getMappedRange().slice(0)), Number);
    staging.unmap();
    staging.destroy();
    resolved.destroy();
    return stamps;
  };
}

/** Which PyTorch device matches the adapter: CPU for a CPU adapter, CUDA for NVIDIA; none otherwise. */
export function torchDeviceFor(gpu: GpuDevice): "cpu" | "cuda" | undefined {
  if (gpu.adapter.architecture === "software" || /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapter.description)) return "cpu";
  if (gpu.adapter.vendor === "nvidia") return "cuda";
  return undefined;
}

const SCRIPT = resolve(import.meta.dirname, "torch_matmul.py");

/** PyTorch matmul at `shapes` on `kind`, through the first Python whose torch can run it. */
export function torchMatmul(kind: "cpu" | "cuda" | undefined, shapes: [number, number, number][], copyBytes = 0): TorchReference {
  if (!kind) return { available: false, why: "no PyTorch device matches this adapter (only CPU adapters and NVIDIA GPUs have one)" };
  const run = runTorchScript([SCRIPT, kind, JSON.stringify(shapes), String(copyBytes)], (out) => JSON.parse(out) as { torch: string; device: string; reps: number; results: Omit<TorchMatmul, "gflops">[]; copy?: Omit<TorchCopy, "gbs"> });
  if (!run.ok) return { available: false, why: `PyTorch (${kind}) did not run: ${run.why}` };
  const parsed = run.value;
  const results = parsed.results.map((r) => ({ ...r, gflops: (2 * r.m * r.n * r.k) / r.ns }));
  const copy = parsed.copy ? { ...parsed.copy, gbs: (2 * parsed.copy.bytes) / parsed.copy.ns } : undefined;
  return { available: true, python: run.python, torch: parsed.torch, device: parsed.device, kind, reps: parsed.reps, results, copy };
}
