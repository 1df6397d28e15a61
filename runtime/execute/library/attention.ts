// Attention launches, forward and backward: fused kernels, or (where the device chose it and the
// call allows) a materialized score matrix on the matmul kernels (stdlib/kernels/attention-scores-steps.ts,
// its f32 scores in the launch workspace). Q, K, V,
// O and the gradients are (B, L, H, D) views handed to the kernels as strides (no transposes, no
// copies). The masks are the node's i32 inputs prefixLen (B), keyRange (B, 2) and segmentIds
// (B, S), bound as attention-call.ts describes. The forward saves the
// log-sum-exp (B, Hq, T) as a side output of the attention node where a backward reads it (else
// it goes into the launch workspace: compiler/passes/saved-statistics.ts). The backward's
// dK and dV kernels write one (2, B, S, Hkv, D) buffer, whose halves are then copied to the dK
// and dV nodes' buffers. A launch with one query row per sequence (T = 1, as in cached
// generation) runs the split-K decode kernels instead of the forward kernel: they spread the keys
// over many workgroups and write the same output and log-sum-exp.
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import { node, numel, type Node } from "../../../compiler/ir/node.ts";
import { attentionBackwardWorkspace, attentionDtype } from "../../../compiler/passes/attention-shape.ts";
import { inputView, type Launch } from "../../../compiler/passes/schedule.ts";
import { attentionBackwardViews, attentionForwardViews } from "../../../compiler/passes/attention-views.ts";
import { contiguousView, tensorView } from "../../../compiler/passes/views.ts";
import { attentionBackwardUniforms } from "../../../stdlib/kernels/attention-backward.ts";
import type { AttentionVariant, AttentionViews } from "../../../stdlib/kernels/attention-common.ts";
import { attentionDecodeKernels, attentionDecodeUniforms, decodePartialsSize, decodeSplitLength } from "../../../stdlib/kernels/attention-decode.ts";
import { attentionForwardUniforms } from "../../../stdlib/kernels/attention-forward.ts";
import type { TensorView } from "../../../stdlib/kernels/attention-layout.ts";
import { checkedAttentionBackwardKernels, checkedAttentionForwardKernel } from "../../gpu/kernel-self-check.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import { statisticsTensor, workspaceTensor, type ExecContext, type PreparedLaunch } from "../steps.ts";
import type { DispatchStep, Step } from "../../gpu/bound-steps.ts";
import { callOf, maskBinding, unsupportedDtype, type Call } from "./attention-call.ts";
import { scoresBackwardKernels, scoresForwardKernels, scoresPathHeads } from "../../../stdlib/kernels/attention-scores-steps.ts";
import { dispatchSteps } from "../../gpu/bound-kernels.ts";
import { copyView } from "./generated.ts";

/** An attention launch, or a cached_attention one (a decode step over the KV cache). */
export function prepareAttention(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const n = launch.outputs[0];
  const bad = unsupportedDtype(n);
  if (bad) return bad;
  const call = callOf(n, 0);
  const { batch, queryHeads, queryLength } = call.shape;
  const [q, k, v] = n.inputs.slice(0, 3).map((i) => ctx.tensorOf(inputView(launch, i).base));
  const lse = statisticsTensor(ctx, n, "f32", [batch, queryHeads, queryLength], `log-sum-exp of %${n.id}`);
  if (ctx.keepsStatistics(n)) ctx.sideOutputs.set(n, { lse });
  const tensors = { q, k, v, o: ctx.tensorOf(n), lse };
  const views = attentionForwardViews(launch, n);
  if (n.op === "cached_attention") {
    // the decode kernels over the cache (k, v) with the new key and value apart (compiler/ir/node.ts)
    const [kNew, vNew] = n.inputs.slice(3, 5).map((i) => inputView(launch, i));
    const appended = {
      cache: attentionDtype(n, 1),
      tensors: { k_new: ctx.tensorOf(kNew.base), v_new: ctx.tensorOf(vNew.base) },
      views: { kNew: tensorView(kNew), vNew: tensorView(vNew) },
    };
    return ok(decodeSteps(ctx, launch, n, call, tensors, views, appended));
  }
  if (queryLength === 1) return ok(decodeSteps(ctx, launch, n, call, tensors, views));
  const heads = scoresPathHeads(ctx.attentionScores, "forward", call.shape, call.variant.dtype, views);
  if (heads) {
    const { queryLength: T, keyLength: S } = call.shape;
    const scores = workspaceTensor(ctx, "f32", [heads, T, S], `scores of %${n.id}`);
    const kernels = scoresForwardKernels({ ...call, heads }, views, ctx.matmul);
    const steps = dispatchSteps(ctx.gpu, kernels, { ...tensors, scores });
    return ok({ steps, refresh: maskBinding(ctx, launch, n, call, steps, () => {}) });
  }
  // subgroup matrices where the adapter has them and they passed the device's self-check (unless SFT_ATTENTION=scalar), else the scalar kernel
  const spec = checkedAttentionForwardKernel(ctx.gpu, call.variant);
  if (!spec.ok) return spec;
  const step: DispatchStep = { kind: "dispatch", spec: spec.value, uniforms: {}, tensors };
  const refresh = maskBinding(ctx, launch, n, call, [step], (mask) => Object.assign(step.uniforms, attentionForwardUniforms(call.shape, views, call.scale, mask)));
  return ok({ steps: [step], refresh });
}

// One query per sequence: the split kernel writes per-split partial sums into a workspace buffer
// (B, Hq, splits, D + 2), the combine kernel merges them into O and the log-sum-exp. With
// `appended` (cached_attention), k and v are the cache (in its dtype) and the new key and value
// come apart.
function decodeSteps(
  ctx: ExecContext,
  launch: Launch,
  n: Node,
  call: Call,
  tensors: Record<string, GpuTensor>,
  views: AttentionViews,
  appended?: { cache: AttentionVariant["dtype"]; tensors: { k_new: GpuTensor; v_new: GpuTensor }; views: { kNew: TensorView; vNew: TensorView } },
): PreparedLaunch {
  const splitLength = decodeSplitLength(call.shape.keyLength);
  const partials = workspaceTensor(ctx, "f32", [decodePartialsSize(call.shape, splitLength)], `decode partials of %${n.id}`);
  const kernels = attentionDecodeKernels(call.variant, appended?.cache);
  const { q, k, v, o, lse } = tensors;
  const split: DispatchStep = { kind: "dispatch", spec: kernels.split, uniforms: {}, tensors: { q, k, v, ...appended?.tensors, partials } };
  const combine: DispatchStep = { kind: "dispatch", spec: kernels.combine, uniforms: {}, tensors: { partials, o, lse } };
  const refresh = maskBinding(ctx, launch, n, call, [split], (mask) => {
    const uniforms = attentionDecodeUniforms(call.shape, views, call.scale, mask, splitLength, appended?.views);
    for (const d of [split, combine]) Object.assign(d.uniforms, uniforms);
  });
  return { steps: [split, combine], refresh };
}

export function prepareAttentionBackward(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const first = launch.outputs[0];
  const bad = unsupportedDtype(first);
  if (bad) return bad;
  const call = callOf(first, 1);
  const { queryLength, keyLength } = call.shape;
  const [dout, q, k, v, o] = first.inputs.slice(0, 5).map((i) => inputView(launch, i));
  const lse = ctx.sideOutputs.get(o.base)?.lse;
  if (!lse || o.offset !== 0) return fail(diag("SFT4005", `attention backward %${first.id}: its forward output %${o.base.id} is not an attention launch's result with a saved log-sum-exp`));
  const wrt = (i: number) => launch.outputs.find((out) => out.attrs.wrt === i);
  const workspace = attentionBackwardWorkspace(first, launch.outputs);
  // dK in the first half of one buffer, dV in the second
  const dkvNode = node("input", [], { name: `dK|dV of %${first.id}`, dtype: first.dtype, shape: workspace.dkv.shape });
  const dkv = workspaceTensor(ctx, workspace.dkv.dtype, dkvNode.shape, dkvNode.attrs.name!);
  ctx.register(dkvNode, dkv);
  const dq = workspace.dq ? workspaceTensor(ctx, workspace.dq.dtype, workspace.dq.shape, "unused dQ") : ctx.tensorOf(wrt(0)!);
  const delta = workspaceTensor(ctx, workspace.delta.dtype, workspace.delta.shape, `delta of %${first.id}`);
  const views = attentionBackwardViews(launch, first);
  const read = { q: ctx.tensorOf(q.base), k: ctx.tensorOf(k.base), v: ctx.tensorOf(v.base), dout: ctx.tensorOf(dout.base), lse, delta };
  const heads = scoresPathHeads(ctx.attentionScores, "backward", call.shape, call.variant.dtype, views);
  let refresh: PreparedLaunch["refresh"];
  let dispatches: DispatchStep[];
  if (heads) {
    const [scores, grad] = ["scores", "score gradients"].map((what) => workspaceTensor(ctx, "f32", [heads, queryLength, keyLength], `${what} of %${first.id}`));
    const kernels = scoresBackwardKernels({ ...call, heads }, views, ctx.matmul);
    dispatches = dispatchSteps(ctx.gpu, kernels, { ...read, o: ctx.tensorOf(o.base), dq, dkv, scores, grad });
    refresh = maskBinding(ctx, launch, first, call, dispatches, () => {});
  } else {
    // dQ and dK/dV on subgroup matrices as the forward (same bindings and uniforms), else the scalar ones; delta is always scalar
    const chosen = checkedAttentionBackwardKernels(ctx.gpu, call.variant);
    if (!chosen.ok) return chosen;
    const kernels = chosen.value;
    const fused: DispatchStep[] = [
      { kind: "dispatch", spec: kernels.delta, uniforms: {}, tensors: { o: ctx.tensorOf(o.base), dout: read.dout, delta } },
      { kind: "dispatch", spec: kernels.dkdv, uniforms: {}, tensors: { ...read, dkv } },
      { kind: "dispatch", spec: kernels.dq, uniforms: {}, tensors: { ...read, dq } },
    ];
    dispatches = fused;
    refresh = maskBinding(ctx, launch, first, call, fused, (mask) => {
      const uniforms = attentionBackwardUniforms(call.shape, views, call.scale, mask);
      for (const d of fused) Object.assign(d.uniforms, uniforms);
    });
  }
  const steps: Step[] = [...dispatches];
  for (const [i, offset] of [[1, 0], [2, numel(workspace.dkv.shape) / 2]]) {
    const out = wrt(i);
    if (out) steps.push(copyView(ctx, { ...contiguousView(dkvNode), shape: out.shape, strides: contiguousView(out).strides, offset }, ctx.tensorOf(out)));
  }
  return ok({ steps, refresh });
}
