// Kernels bound to named tensors (stdlib BoundKernel) made concrete: each binding the tensor of
// its name, or a window of it from an element on (tensorWindow), one window per (name, start).
// The self-check's probes, the kernel tuning and the bench run such sequences the same way:
// compiled, bound once (bindKernels), then recorded into as many batches as they like.
import type { Result } from "../../compiler/diagnostics.ts";
import { kernelSource, type BoundKernel } from "../../stdlib/kernels/kernel.ts";
import { BoundSteps, type DispatchStep } from "./bound-steps.ts";
import type { GpuDevice } from "./device.ts";
import { pipelinesOf } from "./pipelines.ts";
import { tensorWindow, type GpuTensor } from "./tensor.ts";

// Windows made for one set of named tensors, by name and first element; the owners keep the buffers.
type Windows = Map<string, GpuTensor>;

/**
 * The dispatches of `kernels` over `named` tensors, each binding the tensor of its name or a window
 * of it (one per name and start, shared by the sequence); a binding whose tensor is not in `named`
 * is left out, for the caller to add.
 */
export function dispatchSteps(gpu: GpuDevice, kernels: readonly BoundKernel[], named: Readonly<Record<string, GpuTensor>>): DispatchStep[] {
  const windows: Windows = new Map();
  return kernels.map((k) => ({ kind: "dispatch", spec: k.spec, uniforms: { ...k.uniforms }, tensors: boundTensors(gpu, k, named, windows) }));
}

// The tensors `kernel` binds, from `named`, its windows taken from or added to `windows`.
function boundTensors(gpu: GpuDevice, kernel: BoundKernel, named: Readonly<Record<string, GpuTensor>>, windows: Windows): Record<string, GpuTensor> {
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

/**
 * `kernels` compiled and bound to `named`: their uniforms in one buffer and a bind group each,
 * made once, so that every batch they are recorded into (BoundSteps.record) reuses them. The
 * compile errors of the first kernel that fails, or the GPU errors of binding; the caller
 * destroys what it gets (the tensors stay the caller's).
 */
export async function bindKernels(gpu: GpuDevice, kernels: readonly BoundKernel[], named: Readonly<Record<string, GpuTensor>>): Promise<Result<BoundSteps>> {
  const compiled = await Promise.all(kernels.map((k) => pipelinesOf(gpu).compile(k.spec)));
  const failure = compiled.find((c) => !c.ok);
  if (failure && !failure.ok) return failure;
  const steps = dispatchSteps(gpu, kernels, named);
  let bound: BoundSteps | undefined;
  const made = await gpu.scoped(() => (bound = new BoundSteps(gpu, steps)));
  if (!made.ok) bound?.destroy();
  return made;
}

/** What makes one bound kernel's run what it is: its uniforms, the tensors its bindings name, and its WGSL. */
export function boundKernelText(k: BoundKernel): string {
  return `${JSON.stringify(k.uniforms)}\n${JSON.stringify(k.bind ?? {})}\n${kernelSource(k.spec)}\n`;
}
