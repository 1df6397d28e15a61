// RMSNorm / LayerNorm launches. The forward saves its per-row statistics (rstd, and the mean for
// LayerNorm) as side outputs of the norm node where a backward of the schedule reads them (else
// into the launch workspace: compiler/passes/saved-statistics.ts); the backward launch (dx, dw, db
// of one norm merged) reads those of the forward norm over the same input and weight. When no
// such forward ran in this schedule, the backward recomputes the statistics with one forward
// dispatch into the launch's workspace.
import { ok, type Result } from "../../../compiler/diagnostics.ts";
import { numel, type Node } from "../../../compiler/ir/node.ts";
import type { Launch } from "../../../compiler/passes/schedule.ts";
import { latestNormOf } from "../../../compiler/passes/saved-statistics.ts";
import { normBackwardInput, normBackwardWeight, normForward, type NormKind } from "../../../stdlib/kernels/norms.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import { statisticsTensor, wholeInput, workspaceTensor, type ExecContext, type PreparedLaunch, type SideOutputs } from "../steps.ts";
import type { DispatchStep, Step } from "../../gpu/bound-steps.ts";

const rowsCols = (x: Node) => ({ rows: numel(x.shape) / x.shape[x.shape.length - 1], cols: x.shape[x.shape.length - 1] });

// The forward dispatch of a `kind` norm of x (inputs x, w and LayerNorm's b) writing `y`, and
// the statistics it saves (in buffers from `allocate`).
function forwardStep(allocate: ExecContext["scratch"], kind: NormKind, inputs: readonly GpuTensor[], eps: number, y: GpuTensor): { step: DispatchStep; stats: SideOutputs } {
  const [x, w, b] = inputs;
  const cols = w.numel;
  const rows = x.numel / cols;
  const stats: SideOutputs = { rstd: allocate("f32", [rows], `rstd of ${y.label}`) };
  if (kind === "layer") stats.mean = allocate("f32", [rows], `mean of ${y.label}`);
  const tensors: Record<string, GpuTensor> = { x, w, y, ...stats };
  if (kind === "layer") tensors.b = b ?? w; // only y depends on the bias: a recomputation may bind anything
  const spec = normForward(kind, x.dtype, w.dtype, y.dtype);
  return { step: { kind: "dispatch", spec, uniforms: { rows, cols, eps }, tensors }, stats };
}

export function prepareNorm(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const n = launch.outputs[0];
  const inputs = n.inputs.map((i) => wholeInput(ctx, launch, i));
  const allocate: ExecContext["scratch"] = (dtype, shape, label) => statisticsTensor(ctx, n, dtype, shape, label);
  const { step, stats } = forwardStep(allocate, n.op === "rms_norm" ? "rms" : "layer", inputs, n.attrs.eps!, ctx.tensorOf(n));
  if (ctx.keepsStatistics(n)) ctx.sideOutputs.set(n, stats);
  return ok({ steps: [step] });
}

export function prepareNormBackward(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const first = launch.outputs[0];
  const [g, x, w] = first.inputs;
  const kind = first.attrs.norm!;
  const { rows, cols } = rowsCols(x);
  const eps = first.attrs.eps!;
  const steps: Step[] = [];
  // the latest matching norm prepared so far that kept its statistics (saved-statistics.ts)
  const forward = latestNormOf(ctx.sideOutputs.keys(), first);
  let stats = forward && ctx.sideOutputs.get(forward);
  if (!stats) {
    const recompute = forwardStep((dtype, shape, label) => workspaceTensor(ctx, dtype, shape, label), kind, [wholeInput(ctx, launch, x), wholeInput(ctx, launch, w)], eps, workspaceTensor(ctx, x.dtype, x.shape, `recomputed norm of %${x.id}`));
    steps.push(recompute.step);
    stats = recompute.stats;
  }
  const wrt = (i: number) => launch.outputs.find((o) => o.attrs.wrt === i);
  const [dy, xt, wt] = [g, x, w].map((i) => wholeInput(ctx, launch, i));
  const uniforms = { rows, cols, eps };
  const dx = wrt(0);
  if (dx) {
    const tensors = { x: xt, w: wt, dy, ...stats, dx: ctx.tensorOf(dx) };
    steps.push({ kind: "dispatch", spec: normBackwardInput(kind, xt.dtype, wt.dtype), uniforms, tensors });
  }
  const dw = wrt(1);
  const db = wrt(2);
  if (dw || db) {
    // the weight kernel writes dw and (LayerNorm) db together: one not asked for goes to the workspace
    const tensors: Record<string, GpuTensor> = { x: xt, dy, ...stats, dw: dw ? ctx.tensorOf(dw) : workspaceTensor(ctx, "f32", [cols], "unused dw") };
    if (kind === "layer") tensors.db = db ? ctx.tensorOf(db) : workspaceTensor(ctx, "f32", [cols], "unused db");
    steps.push({ kind: "dispatch", spec: normBackwardWeight(kind, xt.dtype), uniforms: { rows, cols }, tensors });
  }
  return ok({ steps });
}
