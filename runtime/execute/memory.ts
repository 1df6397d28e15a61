// Which GPU buffer holds each node. Without a memory plan every node gets its own buffer. With
// one, activations and gradients live in the plan's pool (compiler/passes/memory-plan.ts): one
// buffer per pool entry, of the planned size, each tensor placed at its planned offset in its
// entry's buffer and bound as that range. The planner chose the tenants so that those live
// together have disjoint ranges and no launch binds two of one buffer while writing one (WebGPU
// forbids one buffer bound read-only and writable in a dispatch).
// Weights, inputs and constants keep their own buffers. Buffers a launch needs only while it
// runs come from a workspace that launches share (LaunchWorkspace).
import type { Node } from "../../compiler/ir/node.ts";
import type { MemoryPlan } from "../../compiler/passes/memory-plan.ts";
import { invariant } from "../../compiler/diagnostics.ts";
import { storageBytes, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, tensorInBuffer, type GpuTensor } from "../gpu/tensor.ts";

/** The buffers of a schedule's nodes. */
export interface Placement {
  /** The tensor of `n`, allocated (or placed in a pool buffer) on first request. */
  bufferOf(n: Node): GpuTensor;
  /** Every buffer allocated, each once (tensors placed in pool buffers are not allocations). */
  allocations(): GpuTensor[];
  /** Bytes of the pool buffers allocated (0 without a plan). */
  sharedBytes(): number;
}

const shapeOf = (n: Node) => (n.shape.length ? n.shape : [1]);
const labelOf = (n: Node) => n.attrs.name ?? `%${n.id} ${n.op}`;

/** One buffer per node, or the plan's pool buffers for activations and gradients when the schedule's plan is given. */
export function placeBuffers(gpu: GpuDevice, plan: MemoryPlan | undefined): Placement {
  const own: GpuTensor[] = [];
  const pooled: GpuTensor[] = [];
  const tensors = new Map<Node, GpuTensor>();
  const allocate = (n: Node) => {
    const t = createTensor(gpu, n.dtype, shapeOf(n), labelOf(n));
    own.push(t);
    return t;
  };
  const inPool = (slot: number): GpuTensor => {
    if (!pooled[slot]) {
      const bytes = plan!.pool[slot].bytes;
      pooled[slot] = createTensor(gpu, "u32", [bytes / 4], `pool buffer ${slot}`);
      invariant(pooled[slot].byteSize === bytes, `pool buffer ${slot}: ${pooled[slot].byteSize} bytes allocated, ${bytes} planned`);
      own.push(pooled[slot]);
    }
    return pooled[slot];
  };
  const bufferOf = (n: Node): GpuTensor => {
    let t = tensors.get(n);
    if (t) return t;
    const planned = plan?.buffers.get(n);
    t = !planned || planned.slot < 0 ? allocate(n) : tensorInBuffer(gpu, inPool(planned.slot), n.dtype, shapeOf(n), labelOf(n), planned.bufferOffset);
    tensors.set(n, t);
    return t;
  };
  return {
    bufferOf,
    allocations: () => own,
    sharedBytes: () => pooled.reduce((sum, t) => sum + (t?.byteSize ?? 0), 0),
  };
}

/**
 * Buffers a launch uses only while it runs (attention's dK|dV and delta, a norm recomputed for
 * its backward, contiguous copies of views): later launches reuse them, so they cost the largest
 * launch's need, not one buffer per launch. The k-th request of a launch takes the k-th buffer
 * of its size, so one launch never gets a buffer twice. Launches run in order, so a buffer
 * written by one launch is never read by another.
 */
export class LaunchWorkspace {
  private readonly buffers = new Map<string, GpuTensor>();
  private requests = 0;

  constructor(private readonly gpu: GpuDevice) {}

  /** Starts the next launch's requests. */
  nextLaunch(): void {
    this.requests = 0;
  }

  take(dtype: StorageDType, shape: readonly number[], label: string): GpuTensor {
    const bytes = storageBytes(dtype, shape.reduce((a, b) => a * b, 1));
    const key = `${this.requests++}:${bytes}`;
    let owner = this.buffers.get(key);
    if (!owner) {
      owner = createTensor(this.gpu, "u32", [bytes / 4], `workspace ${key}`);
      this.buffers.set(key, owner);
    }
    return tensorInBuffer(this.gpu, owner, dtype, shape, label);
  }

  /** Every workspace buffer, each once. */
  allocations(): GpuTensor[] {
    return [...this.buffers.values()];
  }
}
