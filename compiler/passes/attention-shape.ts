// What an attention node's launch is, read from the node alone: its shape and the storage dtype
// of Q, K, V, O and their gradients. The kernel catalog (the printed schedule's uniforms), the
// memory plan's scratch (compiler/plan/launch-scratch.ts) and the GPU executor's launches
// (runtime/execute/library/attention-call.ts) read it here, so they cannot disagree; likewise the
// attention backward's workspace, which the executor allocates and the launch scratch counts.
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import type { AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import type { Node } from "../ir/node.ts";

/**
 * The shape of attention node `n` whose q is input `first` (0 in the forward; 1 in the backward,
 * after dO); cached_attention's keys are the cache's positions and the new one after them.
 */
export function attentionShape(n: Node, first: number): AttentionShape {
  const [batch, queryLength, queryHeads, headDim] = n.inputs[first].shape;
  const [, keyLength, kvHeads] = n.inputs[first + 1].shape;
  return { batch, queryHeads, kvHeads, queryLength, keyLength: keyLength + (n.op === "cached_attention" ? 1 : 0), headDim };
}

/** The storage dtype the attention kernels take for node `n` (q at input `first`): f16 stays f16, the rest is f32 (attention-call.ts refuses what is neither). */
export function attentionDtype(n: Node, first: number): AttentionVariant["dtype"] {
  return n.inputs[first].dtype === "f16" ? "f16" : "f32";
}

/**
 * The workspace shapes of an attention backward launch of `s`: dK and dV in one buffer (dK in the
 * first half), dQ (used where no output takes it), and delta in f32. The executor allocates them
 * and the launch scratch of the memory plan counts them.
 */
export function attentionBackwardWorkspace(s: AttentionShape): { dkv: number[]; dq: number[]; delta: number[] } {
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDim } = s;
  return { dkv: [2 * batch * keyLength * kvHeads * headDim], dq: [batch, queryLength, queryHeads, headDim], delta: [batch, queryHeads, queryLength] };
}
