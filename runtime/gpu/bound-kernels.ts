// Kernels bound to named tensors (stdlib BoundKernel) made concrete: each binding the tensor of
// its name, or a window of it from an element on (tensorWindow), one window per (name, start).
import type { BoundKernel } from "../../stdlib/kernels/kernel.ts";
import type { GpuDevice } from "./device.ts";
import { tensorWindow, type GpuTensor } from "./tensor.ts";

/** Windows made for one set of named tensors, by name and first element; the owners keep the buffers. */
export type Windows = Map<string, GpuTensor>;

/**
 * The tensors `kernel` binds, from `named` (a binding whose tensor is not there is left out, for
 * the caller to add), its windows taken from or added to `windows`.
 */
export function boundTensors(gpu: GpuDevice, kernel: BoundKernel, named: Readonly<Record<string, GpuTensor>>, windows: Windows): Record<string, GpuTensor> {
  const out: Record<string, GpuTensor> = {};
  for (const b of kernel.spec.bindings) {
    const { name, start = 0 } = kernel.bind?.[b.name] ?? { name: b.name };
    const tensor = named[name];
    if (!tensor) continue;
    if (start === 0) {
      out[b.name] = tensor;
      continue;
    }
    const key = `${name}@${start}`;
    let window = windows.get(key);
    if (!window) windows.set(key, (window = tensorWindow(gpu, tensor, start, `${tensor.label} from element ${start}`)));
    out[b.name] = window;
  }
  return out;
}
