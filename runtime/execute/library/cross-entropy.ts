// Cross-entropy launches: the loss (mean over the tokens whose label is not ignored) and, merged
// into the same pass when the loss gradient is a constant, the logits gradient. The token count
// comes from the labels input (or, for one chunk of a longer mean, the labels that mean counts)
// on the host at each refresh: it sets the gradient's scale
// (dLoss / count) and the mean's. The mean is one workgroup summing the per-token losses in a
// fixed order, so it is deterministic.
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import { inputView, type Launch } from "../../../compiler/passes/schedule.ts";
import { crossEntropy } from "../../../stdlib/kernels/cross-entropy.ts";
import type { KernelSpec } from "../../../stdlib/kernels/kernel.ts";
import { wgslWorkgroupReduce } from "../../../stdlib/kernels/reduce.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import { wholeInput, type ExecContext, type PreparedLaunch } from "../steps.ts";
import type { DispatchStep, Step } from "../../gpu/bound-steps.ts";

const MEAN_WORKGROUP = 256;

/** out[0] = scale · sum(values); uniforms n, scale. One workgroup: a fixed summation order. */
const scaledSum: KernelSpec = {
  name: "scaled_sum",
  variant: {},
  uniforms: { n: "u32", scale: "f32" },
  bindings: [
    { name: "values", dtype: "f32", access: "read" },
    { name: "out", dtype: "f32", access: "read_write" },
  ],
  workgroupSize: [MEAN_WORKGROUP, 1, 1],
  dispatch: () => [1, 1, 1],
  declarations: wgslWorkgroupReduce(MEAN_WORKGROUP),
  body: `  var s = 0.0;
  for (var i = lidx; i < u.n; i += WG_X) { s += load_values(i); }
  let total = workgroup_sum(lidx, s);
  if (lidx == 0u) { store_out(0u, total * u.scale); }`,
};

export function prepareCrossEntropy(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const loss = launch.outputs.find((o) => o.op === "cross_entropy");
  const grad = launch.outputs.find((o) => o.op === "cross_entropy_backward");
  const any = (loss ?? grad)!;
  const [logits, labels, counted = labels] = loss ? loss.inputs : any.inputs.slice(1);
  const dLoss = grad?.inputs[0];
  if (grad && dLoss!.op !== "const") return fail(diag("SFT4005", `cross-entropy gradient %${grad.id}: a loss gradient that is not a constant has no kernel`));
  const [rows, vocab] = logits.shape;
  const perToken = ctx.scratch("f32", [rows], `per-token loss of %${any.id}`);
  const tensors: Record<string, GpuTensor> = { logits: wholeInput(ctx, launch, logits), targets: wholeInput(ctx, launch, labels), loss: perToken };
  if (grad) tensors.d_logits = ctx.tensorOf(grad);
  const ignore = any.attrs.ignoreIndex!;
  const pass: DispatchStep = { kind: "dispatch", spec: crossEntropy({ logits: tensors.logits.dtype, grad: !!grad }), uniforms: { rows, vocab, ignore, scale: 0 }, tensors };
  const steps: Step[] = [pass];
  const mean: DispatchStep | undefined = loss && { kind: "dispatch", spec: scaledSum, uniforms: { n: rows, scale: 0 }, tensors: { values: perToken, out: ctx.tensorOf(loss) } };
  if (mean) steps.push(mean);
  const countedView = inputView(launch, counted);
  return ok({
    steps,
    refresh: (ints) => {
      const values = ints(countedView);
      if (!values) return fail(diag("SFT4005", `cross-entropy %${any.id} needs its labels as a graph input, read on the host.`));
      const count = values.reduce((c, l) => c + (l === ignore ? 0 : 1), 0);
      pass.uniforms.scale = count ? (dLoss?.attrs.value ?? 0) / count : 0;
      if (mean) mean.uniforms.scale = 1 / Math.max(count, 1);
      return ok(undefined);
    },
  });
}
