// Generated kernels (compiler/codegen/fused-kernel.ts) as executor steps: the scheduler's
// "elementwise" and "reduce" launches, copies of views a library kernel cannot read, and fills.
// Copies and fills are one-node launches built here (a `cast` to the same dtype reads any
// strided view and writes it contiguously; a `const` writes one value everywhere).
import { fusedKernel } from "../../../compiler/codegen/fused-kernel.ts";
import { node, type DType, type Node, type Shape } from "../../../compiler/ir/node.ts";
import type { Launch } from "../../../compiler/passes/schedule.ts";
import { contiguousView, isContiguous, type View } from "../../../compiler/passes/views.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import { workspaceTensor, type ExecContext } from "../steps.ts";
import type { DispatchStep, Step } from "../../gpu/bound-steps.ts";

/** The step of a generated launch: its inputs read from their nodes' buffers, its output written to `out`. */
export function generatedStep(ctx: ExecContext, launch: Launch, out: GpuTensor, copy = false): DispatchStep {
  const k = fusedKernel(launch);
  const tensors: Record<string, GpuTensor> = { [k.output.binding]: out };
  for (const { binding, base } of k.inputs) tensors[binding] = ctx.tensorOf(base);
  return { kind: "dispatch", spec: k.spec, uniforms: { ...k.uniforms }, tensors, copy };
}

function oneNodeLaunch(n: Node, inputs: Launch["inputs"]): Launch {
  return { kernel: "elementwise", launches: ["fused_elementwise"], anchors: [], nodes: [n], outputs: [n], inputs, epilogue: [], uniforms: {} };
}

/** Copies `view` (of a node's buffer) into `out`, contiguous: a buffer copy when the view already is, else a generated kernel. */
export function copyView(ctx: ExecContext, view: View, out: GpuTensor): Step {
  const src = ctx.tensorOf(view.base);
  if (isContiguous(view) && view.base.dtype === out.dtype && src.byteSize === out.byteSize) return { kind: "copy", src, dst: out };
  const source = node("input", [], { name: "copy source", dtype: view.base.dtype, shape: view.shape });
  const copied = node("cast", [source], { dtype: out.dtype as DType });
  return generatedStep(ctx, oneNodeLaunch(copied, [{ node: source, view }]), out, true);
}

/** A view's contents as a new contiguous buffer, and the step that fills it (a counted copy). */
export function contiguousCopy(ctx: ExecContext, view: View, label: string): { tensor: GpuTensor; view: View; step: Step } {
  const tensor = workspaceTensor(ctx, view.base.dtype, view.shape.length ? view.shape : [1], label);
  const base = node("input", [], { name: label, dtype: view.base.dtype, shape: view.shape });
  ctx.register(base, tensor);
  return { tensor, view: contiguousView(base), step: copyView(ctx, view, tensor) };
}

/** Writes `value` to every element of `out` (shape `shape`). */
export function fillStep(ctx: ExecContext, out: GpuTensor, shape: Shape, value: number): DispatchStep {
  const filled = node("const", [], { value, dtype: out.dtype as DType, shape });
  return generatedStep(ctx, oneNodeLaunch(filled, []), out);
}
