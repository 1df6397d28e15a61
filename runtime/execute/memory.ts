// Which GPU buffer holds each node. Without a memory plan every node gets its own buffer. With
// one, activations and gradients whose lifetimes (the plan's first and last launch) do not
// overlap share buffers (greedy by size: the largest tensor first, each into the smallest
// buffer it can share). The plan's byte offsets in one arena cannot be used as they are: WebGPU forbids one
// buffer bound read-only and writable in the same dispatch, and the library kernels read their
// inputs through read-only bindings. Buffers live in one launch never share, so a dispatch never
// reads and writes one buffer. Weights, inputs and constants keep their own buffers.
import { numel, type Node } from "../../compiler/ir/node.ts";
import type { MemoryPlan, PlannedBuffer } from "../../compiler/passes/memory-plan.ts";
import { storageBytes } from "../../stdlib/kernels/dtype.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, tensorInBuffer, type GpuTensor } from "../gpu/tensor.ts";

/** The buffers of a schedule's nodes. */
export interface Placement {
  /** The tensor of `n`, allocated (or placed in a shared buffer) on first request. */
  bufferOf(n: Node): GpuTensor;
  /** Every buffer allocated, each once (tensors placed in shared buffers are not allocations). */
  allocations(): GpuTensor[];
  /** Bytes of the shared buffers (0 without a plan). */
  sharedBytes(): number;
}

const shapeOf = (n: Node) => (n.shape.length ? n.shape : [1]);
const labelOf = (n: Node) => n.attrs.name ?? `%${n.id} ${n.op}`;
const bytesOf = (n: Node) => storageBytes(n.dtype, numel(n.shape));

interface Slot {
  bytes: number;
  /** [first, last] launches of the tensors placed in it, which never overlap. */
  lifetimes: [number, number][];
  owner?: GpuTensor;
}

// Greedy by size: the largest tensors first, each into the smallest slot (all fit: they were
// opened by larger tensors) in which it overlaps no placed lifetime, else a new slot.
function assignSlots(plan: MemoryPlan): { slotOf: Map<Node, Slot>; slots: Slot[] } {
  const placed = [...plan.buffers.values()].filter((b) => b.category === "activations" || b.category === "gradients");
  placed.sort((x: PlannedBuffer, y: PlannedBuffer) => bytesOf(y.node) - bytesOf(x.node) || x.first - y.first);
  const slots: Slot[] = [];
  const slotOf = new Map<Node, Slot>();
  for (const b of placed) {
    const apart = (s: Slot) => s.lifetimes.every(([first, last]) => last < b.first || b.last < first);
    const slot = slots.filter(apart).sort((x, y) => x.bytes - y.bytes)[0] ?? slots[slots.push({ bytes: bytesOf(b.node), lifetimes: [] }) - 1];
    slot.lifetimes.push([b.first, b.last]);
    slotOf.set(b.node, slot);
  }
  return { slotOf, slots };
}

/** One buffer per node, or buffers shared by lifetime when the schedule's plan is given. */
export function placeBuffers(gpu: GpuDevice, plan: MemoryPlan | undefined): Placement {
  const own: GpuTensor[] = [];
  const tensors = new Map<Node, GpuTensor>();
  const { slotOf, slots } = plan ? assignSlots(plan) : { slotOf: new Map<Node, Slot>(), slots: [] };
  const allocate = (n: Node) => {
    const t = createTensor(gpu, n.dtype, shapeOf(n), labelOf(n));
    own.push(t);
    return t;
  };
  const bufferOf = (n: Node): GpuTensor => {
    let t = tensors.get(n);
    if (t) return t;
    const slot = slotOf.get(n);
    if (!slot) t = allocate(n);
    else {
      if (!slot.owner) {
        slot.owner = createTensor(gpu, "u32", [slot.bytes / 4], `shared buffer ${slots.indexOf(slot)}`);
        own.push(slot.owner);
      }
      t = tensorInBuffer(gpu, slot.owner, n.dtype, shapeOf(n), labelOf(n));
    }
    tensors.set(n, t);
    return t;
  };
  return {
    bufferOf,
    allocations: () => own,
    sharedBytes: () => slots.reduce((sum, s) => sum + (s.owner?.byteSize ?? 0), 0),
  };
}
