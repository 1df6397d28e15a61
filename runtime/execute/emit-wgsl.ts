// The WGSL of every kernel dispatch of a schedule, prepared exactly as the executor prepares it
// (`sftc compile --emit wgsl`): each launch's kernels are chosen on the real device, so the
// variants (vec4 loads, dtypes, the matmul strategy) are the ones a run would compile.
import { diag, invariant, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { numel, type Node } from "../../compiler/ir/node.ts";
import type { Schedule } from "../../compiler/passes/schedule.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { kernelKey, kernelSource } from "../../stdlib/kernels/kernel.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, type GpuTensor } from "../gpu/tensor.ts";
import { engineKernels } from "./engine-kernels.ts";
import { launchPreparers } from "./executor.ts";
import type { SideOutputs } from "./steps.ts";

/**
 * Every kernel dispatch of `schedule` as WGSL, prepared as the executor prepares it on `gpu`
 * (buffers are allocated so the library can choose its variants, and freed again). A kernel whose
 * module was already printed is named, not repeated.
 */
export function scheduleWgsl(gpu: GpuDevice, schedule: Schedule): Result<string> {
  const tensors = new Map<Node, GpuTensor>();
  const scratch: GpuTensor[] = [];
  const allocate = (dtype: StorageDType, shape: readonly number[], label: string) => {
    const t = createTensor(gpu, dtype, shape, label);
    scratch.push(t);
    return t;
  };
  const kernels = engineKernels(gpu);
  if (!kernels.ok) return kernels;
  const ctx = {
    gpu,
    ...kernels.value,
    tensorOf: (n: Node) => {
      let t = tensors.get(n);
      if (!t) tensors.set(n, (t = createTensor(gpu, n.dtype, numel(n.shape) ? n.shape : [1], `%${n.id}`)));
      return t;
    },
    scratch: allocate,
    release: () => invariant(false, "scheduleWgsl prepares launches and never refreshes them"),
    shared: <T>(_key: string, make: () => T) => make(), // printing needs no sharing
    // a launch's own temporary buffers (the executor shares them between launches)
    workspace: allocate,
    register: (n: Node, t: GpuTensor) => void tensors.set(n, t),
    sideOutputs: new Map<Node, SideOutputs>(),
    keepsStatistics: () => true, // printing allocates everything alike
  };
  try {
    const printed = new Map<string, number>();
    const parts: string[] = [];
    for (const [index, launch] of schedule.launches.entries()) {
      const prepare = launchPreparers[launch.kernel];
      if (!prepare) return fail(diag("SFT4005", `the runtime cannot execute ${launch.kernel} launches`, { where: launch.launches.join(", ") }));
      const prepared = prepare(ctx, launch);
      if (!prepared.ok) return prepared;
      const outputs = launch.outputs.map((o) => `%${o.id} ${o.dtype}[${o.shape.join(",")}]`).join(", ");
      parts.push(`// ==== #${index} ${launch.kernel} [${launch.launches.join(", ")}] -> ${outputs}\n`);
      for (const step of prepared.value.steps) {
        if (step.kind === "copy") {
          parts.push("// ---- buffer copy (no kernel)\n");
          continue;
        }
        const key = kernelKey(step.spec);
        const first = printed.get(key);
        if (first !== undefined) parts.push(`// ---- ${key}${step.copy ? " (copy of a view)" : ""}: same WGSL as in #${first}\n`);
        else {
          printed.set(key, index);
          parts.push(`// ---- ${key}${step.copy ? " (copy of a view)" : ""}\n${kernelSource(step.spec).trim()}\n`);
        }
      }
    }
    parts.push(`// ==== ${schedule.launches.length} launches, ${printed.size} distinct kernels\n`);
    return ok(parts.join("\n"));
  } finally {
    for (const t of [...tensors.values(), ...scratch]) t.destroy();
  }
}
