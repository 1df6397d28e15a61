// Runs a schedule with its memory plan on the float64 interpreter: each launch computes its nodes
// from the buffers it reads (through their views) and writes its outputs at their planned arena
// offsets. A fusion, view or liveness mistake shows up as a numerical difference from `interpret`.
import { diag, fail, ok, type Result } from "../diagnostics.ts";
import { evalNode, gather, type Feeds } from "../ir/interpret.ts";
import { numel, type Node } from "../ir/node.ts";
import { bytesPerElement, type MemoryPlan } from "./memory-plan.ts";
import type { Schedule } from "./schedule.ts";
import type { View } from "./views.ts";

type F64 = Float64Array;

export function simulate(s: Schedule, plan: MemoryPlan, feeds: Feeds): Result<Map<string, F64>> {
  // one slot per arena byte: element i of a buffer at offset o lives at o + i * elementBytes,
  // so buffers that overlap in the plan overwrite each other exactly as on the device
  const arena = new Float64Array(plan.arenaBytes).fill(NaN);
  const load = (n: Node): F64 | undefined => {
    if (n.op === "param" || n.op === "input") return feeds.get(n.attrs.name!);
    const b = plan.buffers.get(n);
    if (!b || b.offset < 0) return undefined;
    const size = bytesPerElement(n.dtype);
    return Float64Array.from({ length: numel(n.shape) }, (_, i) => arena[b.offset + i * size]);
  };
  const read = (v: View): F64 | undefined => {
    const base = load(v.base);
    return base && gather(base, v.shape, v.strides, v.offset);
  };
  for (const [i, launch] of s.launches.entries()) {
    const local = new Map<Node, F64>();
    for (const { node, view } of launch.inputs) {
      const value = read(view);
      if (!value || value.length !== numel(node.shape)) return fail(diag("SFT4002", `Launch ${i} (${launch.kernel}) reads %${node.id}, which has no value.`, { where: node.attrs.name }));
      local.set(node, value);
    }
    for (const n of launch.nodes) if (!local.has(n)) local.set(n, evalNode(n, n.inputs.map((x) => local.get(x)!)));
    for (const o of launch.outputs) {
      const b = plan.buffers.get(o)!;
      const size = bytesPerElement(o.dtype);
      local.get(o)!.forEach((v, k) => (arena[b.offset + k * size] = v));
    }
  }
  const out = new Map<string, F64>();
  for (const [name, v] of s.outputViews) {
    const value = read(v);
    if (!value) return fail(diag("SFT4002", `Output ${name} has no value after the last launch.`));
    out.set(name, value);
  }
  return ok(out);
}
