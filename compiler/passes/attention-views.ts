// The operand views of an attention launch, as its kernels take them: Q, K, V (and in the
// backward dO and O) as the launch reads them (strided views of their buffers, no copies), the
// outputs dense (B, L, H, D); the backward's dK and dV are the halves of one (2, B, S, Hkv, D)
// buffer. Shared by the GPU executor's launches (runtime/execute/library/attention.ts) and the
// memory plan's count of their workspace (compiler/plan/launch-scratch.ts), which must agree on
// which calls can take the score-matrix path.
import type { AttentionViews } from "../../stdlib/kernels/attention-common.ts";
import type { BackwardViews } from "../../stdlib/kernels/attention-backward.ts";
import { denseView, keyValueGradientViews } from "../../stdlib/kernels/attention-layout.ts";
import type { Node } from "../ir/node.ts";
import { inputView, type Launch } from "./schedule.ts";
import { tensorView } from "./views.ts";

/** The forward's views of attention node `n` (inputs q, k, v first). */
export function attentionForwardViews(launch: Launch, n: Node): AttentionViews {
  const [q, k, v] = n.inputs.slice(0, 3).map((i) => tensorView(inputView(launch, i)));
  const [, T, queryHeads, headDim] = n.inputs[0].shape;
  return { q, k, v, o: denseView("bthd", T, queryHeads, headDim) };
}

/** The backward's views of attention-backward node `n` (inputs dO, q, k, v, O first). */
export function attentionBackwardViews(launch: Launch, n: Node): BackwardViews {
  const [dout, q, k, v, o] = n.inputs.slice(0, 5).map((i) => tensorView(inputView(launch, i)));
  const [batch, T, queryHeads, headDim] = n.inputs[1].shape;
  const [, S, kvHeads] = n.inputs[2].shape;
  return { q, k, v, o, dout, dq: denseView("bthd", T, queryHeads, headDim), ...keyValueGradientViews(batch, S, kvHeads, headDim) };
}
