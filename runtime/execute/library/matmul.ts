// A matmul launch with its fused epilogue (kernel-catalog.ts): C = alpha·op(A)op(B) + bias +
// T·op(L) + beta·R. The epilogue chain is walked from the matmul node through the launch's nodes
// to recover alpha (a constant factor), the bias (a row vector broadcast over rows), the low-rank
// product T·op(L) (a small-K matmul of the launch, computed in the kernel's stores) and the
// residual R (the output buffer starts as a copy of R, then the kernel accumulates with beta =
// R's constant scale or 1).
// Operands are read in place when their view is row- or column-major with a row stride (a
// column-major view flips the operand's transpose flag) and one batch stride; others are copied.
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import { numel, sameShape, type Node } from "../../../compiler/ir/node.ts";
import { matmulInner, residualOperand } from "../../../compiler/passes/kernel-catalog.ts";
import { inputView, type KernelInput, type Launch } from "../../../compiler/passes/schedule.ts";
import { reshapeStrides, type View } from "../../../compiler/passes/views.ts";
import { matmulUniforms, type MatmulOptions, type MatmulShape } from "../../../stdlib/kernels/matmul.ts";
import { lowRankProduct, type LowRankLayout } from "../../../stdlib/kernels/matmul-low-rank.ts";
import { nf4MatmulKernel } from "../../../stdlib/kernels/nf4-matmul.ts";
import { bytesPerElement } from "../../../stdlib/kernels/dtype.ts";
import { tensorWindow, type GpuTensor } from "../../gpu/tensor.ts";
import type { ExecContext, PreparedLaunch } from "../steps.ts";
import type { Step } from "../../gpu/bound-steps.ts";
import { contiguousCopy, copyView } from "./generated.ts";

/** How the kernel reads one operand: stored transposed or not, its row stride and batch stride. */
interface OperandLayout {
  trans: boolean;
  ld: number;
  batchStride: number;
}

// The layout of an operand whose (..., r, c) view is stored transposed when `trans`, or
// undefined when the kernel cannot read it (an offset, no unit stride, unmergeable batch dims).
// A 2-D operand is shared by every batch item (batch stride 0).
function operandLayout(v: View, trans: boolean): OperandLayout | undefined {
  if (v.offset !== 0) return undefined;
  const rank = v.shape.length;
  const [r, c] = v.shape.slice(-2);
  const [sr, sc] = v.strides.slice(-2);
  let batchStride = 0;
  if (rank > 2) {
    const merged = reshapeStrides(v.shape.slice(0, -2), v.strides.slice(0, -2), [numel(v.shape.slice(0, -2))]);
    if (!merged) return undefined;
    batchStride = merged[0];
  }
  if (c === 1 || sc === 1) return { trans, ld: r === 1 ? c : sr, batchStride };
  if (r === 1 || sr === 1) return { trans: !trans, ld: sc, batchStride };
  return undefined;
}

// alpha, the bias input and the residual input (with its beta) of the launch's epilogue chain
interface Epilogue {
  alpha: number;
  bias?: KernelInput;
  /** The small-K matmul node the stores add. */
  lowRank?: Node;
  residual?: KernelInput;
  beta: number;
}

function walkEpilogue(launch: Launch, mm: Node): Result<Epilogue> {
  const e: Epilogue = { alpha: 1, beta: 0 };
  const inputOf = (n: Node) => launch.inputs.find((i) => i.node === n);
  let acc = mm;
  for (const kind of launch.epilogue) {
    const next = launch.nodes.find((n) => n !== acc && (n.op === "add" || n.op === "mul") && n.inputs.includes(acc) && sameShape(n.shape, mm.shape));
    if (!next) return fail(diag("SFT4005", `matmul launch: the ${kind} epilogue after %${acc.id} is not in the launch`));
    const other = next.inputs.find((i) => i !== acc)!;
    if (kind === "alpha") e.alpha *= other.attrs.value!;
    else if (kind === "bias") e.bias = inputOf(other);
    else if (kind === "low-rank") e.lowRank = other;
    else {
      const operand = residualOperand(next, acc);
      e.residual = inputOf(operand);
      e.beta = operand === other ? 1 : other.inputs[1].attrs.value!;
    }
    if ((kind === "bias" && !e.bias) || (kind === "residual" && !e.residual)) return fail(diag("SFT4005", `matmul launch: the ${kind} operand of %${next.id} is not read from a buffer`));
    acc = next;
  }
  return ok(e);
}

export function prepareMatmul(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const mm = launch.anchors[0];
  const out = launch.outputs[0];
  const epilogue = walkEpilogue(launch, mm);
  if (!epilogue.ok) return epilogue;
  const { alpha, bias, lowRank, residual, beta } = epilogue.value;
  const steps: Step[] = [];
  const [x, y] = mm.inputs;
  const batch = numel(mm.shape.slice(0, -2));
  const m = mm.shape[mm.shape.length - 2];
  const n = mm.shape[mm.shape.length - 1];
  const k = matmulInner(mm);

  // each operand in place (from an aligned offset through a window of its buffer: a chunk of
  // rows), or a contiguous copy first
  const operand = (input: Node, trans: boolean, name: string): { tensor: GpuTensor; layout: OperandLayout } => {
    const view = inputView(launch, input);
    const layout = operandLayout(view, trans);
    if (layout) return { tensor: ctx.tensorOf(view.base), layout };
    const fromOffset = operandLayout({ ...view, offset: 0 }, trans);
    const aligned = (view.offset * bytesPerElement(view.base.dtype)) % ctx.gpu.limits.minStorageBufferOffsetAlignment === 0;
    if (fromOffset && aligned) return { tensor: tensorWindow(ctx.gpu, ctx.tensorOf(view.base), view.offset), layout: fromOffset };
    const copy = contiguousCopy(ctx, view, `${name} of %${mm.id} (copied view)`);
    steps.push(copy.step);
    return { tensor: copy.tensor, layout: operandLayout(copy.view, trans)! };
  };
  // an NF4 weight (QLoRA) can only be B, read in place through the kernel's decoding accessor
  const nf4 = ctx.nf4Bindings?.(inputView(launch, y).base);
  const nf4Layout = nf4 && operandLayout(inputView(launch, y), !!mm.attrs.transB);
  if (ctx.nf4Bindings?.(inputView(launch, x).base) || (nf4 && nf4Layout?.batchStride !== 0)) {
    return fail(diag("SFT4005", `matmul %${mm.id} reads an NF4 weight other than as an in-place B operand, which the NF4 kernel cannot decode`));
  }
  const a = operand(x, !!mm.attrs.transA, "A");
  const b = nf4Layout ? { tensor: undefined, layout: nf4Layout } : operand(y, !!mm.attrs.transB, "B");

  const tensors: Record<string, GpuTensor> = { a: a.tensor, ...(nf4 ?? { b: b.tensor! }), c: ctx.tensorOf(out) };
  if (bias) {
    // a row vector (stride 1 along N, 0 elsewhere) read from index 0
    const row: View = { base: bias.view.base, shape: [n], strides: [1], offset: bias.view.offset };
    if (row.offset === 0) tensors.bias = ctx.tensorOf(row.base);
    else {
      const copy = contiguousCopy(ctx, row, `bias of %${mm.id} (copied view)`);
      steps.push(copy.step);
      tensors.bias = copy.tensor;
    }
  }
  // T (…, M, r) and L of the low-rank product, each in place or copied
  const lowRankOperands = lowRank && {
    t: operand(lowRank.inputs[0], !!lowRank.attrs.transA, "T"),
    l: operand(lowRank.inputs[1], !!lowRank.attrs.transB, "L"),
    rank: matmulInner(lowRank),
  };
  // the output starts as the residual; the kernel adds beta times it
  if (residual) steps.push(copyView(ctx, residual.view, tensors.c));

  const shape: MatmulShape = { batch, m, n, k, strideA: a.layout.batchStride, strideB: b.layout.batchStride, lda: a.layout.ld, ldb: b.layout.ld, alpha, beta };
  const trans = { transA: a.layout.trans, transB: b.layout.trans };
  const options: MatmulOptions = { a: a.tensor.dtype, b: b.tensor?.dtype ?? "f32", out: tensors.c.dtype, ...trans, bias: tensors.bias?.dtype, accumulate: !!residual };
  const kernel = (o: MatmulOptions, s: MatmulShape) => (nf4 ? nf4MatmulKernel(o, s, ctx.matmul) : ctx.matmul(o, s));
  if (!lowRankOperands) {
    steps.push({ kind: "dispatch", spec: kernel(options, shape), uniforms: matmulUniforms(shape, trans), tensors });
    return ok({ steps });
  }
  const { t, l, rank } = lowRankOperands;
  const layout: LowRankLayout = {
    rank,
    transT: t.layout.trans,
    ldt: t.layout.ld,
    strideT: t.layout.batchStride,
    transL: l.layout.trans,
    ldl: l.layout.ld,
    strideL: l.layout.batchStride,
  };
  const fusedShape = { ...shape, lowRank: layout };
  const fused = kernel({ ...options, lowRank: { t: t.tensor.dtype, l: l.tensor.dtype } }, fusedShape);
  if (fused.bindings.length <= ctx.gpu.limits.maxStorageBuffersPerShaderStage) {
    steps.push({ kind: "dispatch", spec: fused, uniforms: matmulUniforms(fusedShape, trans), tensors: { ...tensors, lora_t: t.tensor, lora_l: l.tensor } });
    return ok({ steps });
  }
  // the device binds too few storage buffers for the fused kernel (NF4's five parts, a bias, T
  // and L): the product without the low-rank term, then T·op(L) accumulated into C
  steps.push({ kind: "dispatch", spec: kernel(options, shape), uniforms: matmulUniforms(shape, trans), tensors });
  const small = lowRankProduct(layout, batch, m, n);
  const smallOptions: MatmulOptions = { a: t.tensor.dtype, b: l.tensor.dtype, out: tensors.c.dtype, ...small.trans, accumulate: true };
  const smallShape = { ...small.shape, beta: 1 };
  steps.push({ kind: "dispatch", spec: ctx.matmul(smallOptions, smallShape), uniforms: matmulUniforms(smallShape, small.trans), tensors: { a: t.tensor, b: l.tensor, c: tensors.c } });
  return ok({ steps });
}
