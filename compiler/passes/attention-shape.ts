// What an attention node's launch is, read from the node alone: its shape and the storage dtype
// of Q, K, V, O and their gradients. The kernel catalog (the printed schedule's uniforms), the
// memory plan's scratch (compiler/plan/launch-scratch.ts) and the GPU executor's launches
// (runtime/execute/library/attention-call.ts) read it here, so they cannot disagree; likewise the
// attention backward's workspace, which the executor allocates and the launch scratch counts.
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import type { AttentionShape } from "../../stdlib/kernels/attention-reference.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
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

/**
 * The mask inputs of attention node `n` (q at input `first`): after q, k, v in the forward
 * (cached_attention: q, the cache's k and v, the new k and v), after dO, q, k, v, out in the backward.
 */
export function attentionMaskInputs(n: Node, first: number): Node[] {
  return n.inputs.slice(first === 0 ? (n.op === "cached_attention" ? 5 : 3) : 5);
}

/** The storage dtype the attention kernels take for node `n` (q at input `first`): f16 stays f16, the rest is f32 (attention-call.ts refuses what is neither). */
export function attentionDtype(n: Node, first: number): AttentionVariant["dtype"] {
  return n.inputs[first].dtype === "f16" ? "f16" : "f32";
}

/** One buffer of a launch's workspace. */
export interface WorkspacePart {
  dtype: StorageDType;
  shape: number[];
}

/**
 * The workspace of the attention backward launch whose first output is `first`, among `outputs`:
 * dK and dV in one buffer (dK in the first half) in the gradients' dtype, dQ where no output takes
 * it, and delta in f32. The executor allocates them and the launch scratch of the memory plan
 * counts them.
 */
export function attentionBackwardWorkspace(first: Node, outputs: readonly Node[]): { dkv: WorkspacePart; dq?: WorkspacePart; delta: WorkspacePart } {
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDim } = attentionShape(first, 1);
  const dtype = first.dtype as StorageDType;
  const takesDq = outputs.some((o) => o.attrs.wrt === 0);
  return {
    dkv: { dtype, shape: [2 * batch * keyLength * kvHeads * headDim] },
    dq: takesDq ? undefined : { dtype, shape: [batch, queryLength, queryHeads, headDim] },
    delta: { dtype: "f32", shape: [batch, queryHeads, queryLength] },
  };
}
