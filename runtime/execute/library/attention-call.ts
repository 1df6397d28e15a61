// What the attention launches share, whichever kernels compute them (attention.ts: fused and
// decode kernels; attention-scores.ts: a materialized score matrix): the call an attention node
// makes (shape, mask variant, scale, mask inputs) and the mask's one binding, read on the host at
// each refresh and packed by maskWords.
import { diag, fail, ok, type Diagnostic, type Result } from "../../../compiler/diagnostics.ts";
import type { Node } from "../../../compiler/ir/node.ts";
import { inputView, type Launch } from "../../../compiler/passes/schedule.ts";
import { attentionDtype, attentionMaskInputs, attentionShape } from "../../../compiler/passes/attention-shape.ts";
import { alibiSlopes } from "../../../stdlib/kernels/alibi.ts";
import type { AttentionVariant } from "../../../stdlib/kernels/attention-common.ts";
import { maskFromInputs, maskWordCount, maskWords, type AttentionMask } from "../../../stdlib/kernels/attention-mask.ts";
import type { AttentionShape } from "../../../stdlib/kernels/attention-reference.ts";
import { writeTensor, type GpuTensor } from "../../gpu/tensor.ts";
import { attentionMaskKey } from "../../../compiler/passes/shared-scratch.ts";
import type { ExecContext, PreparedLaunch, RefreshPass } from "../steps.ts";
import type { DispatchStep } from "../../gpu/bound-steps.ts";

// The call of an attention node: q at input `first` (0 in the forward; 1 in the backward, after
// dOut and followed by k, v and out), then the mask inputs.
export interface Call {
  /** The input q is at. */
  first: number;
  shape: AttentionShape;
  variant: AttentionVariant;
  scale: number;
  masks: Node[];
}

export function callOf(n: Node, first: number): Call {
  const a = n.attrs.attention!;
  const shape = attentionShape(n, first);
  const variant: AttentionVariant = { dtype: attentionDtype(n, first), headDim: shape.headDim, causal: a.causal, prefix: a.prefix, padding: a.padding, segments: a.segments, alibi: a.alibi };
  return { first, shape, variant, scale: a.scale, masks: attentionMaskInputs(n, first) };
}

/**
 * The mask's binding of `call` (`mask_words`, where it masks more than causally) for the
 * dispatches in `steps` (their uniforms are set by `setUniforms` once the mask is known), and the
 * refresh that reads the mask inputs on the host.
 */
export function maskBinding(ctx: ExecContext, launch: Launch, n: Node, call: Call, steps: DispatchStep[], setUniforms: (mask: AttentionMask) => void): NonNullable<PreparedLaunch["refresh"]> {
  const { batch, keyLength, queryHeads, queryLength } = call.shape;
  const { variant } = call;
  // the launches of one mask (every layer's, forward and backward) share the mask and its words,
  // made by the first refresh of a pass (compiler/passes/shared-scratch.ts)
  const key = attentionMaskKey(launch, n, call.first);
  const shared = ctx.shared(key, (): SharedMask => {
    const count = maskWordCount(variant, batch, keyLength, queryHeads);
    return { words: count > 0 ? ctx.scratch("u32", [count], `mask words (${key})`) : undefined };
  });
  if (shared.words) for (const s of steps) s.tensors.mask_words = shared.words;
  const views = call.masks.map((m) => inputView(launch, m));
  return (ints, pass) => {
    if (shared.pass !== pass) {
      const values = views.map((v) => ints(v));
      if (values.some((v) => !v)) return fail(diag("SFT4005", `attention %${n.id} needs its mask tensors as graph inputs, read on the host.`));
      const mask = maskFromInputs(variant, values as ArrayLike<number>[], keyLength - queryLength, variant.alibi ? alibiSlopes(queryHeads) : undefined);
      const wrong = n.op === "cached_attention" ? cachedKeyRangeError(n, mask, keyLength) : undefined;
      if (wrong) return fail(wrong);
      if (shared.words) writeTensor(ctx.gpu, shared.words, maskWords(mask, batch, keyLength)!);
      Object.assign(shared, { mask, pass });
    }
    setUniforms(shared.mask!);
    return ok(undefined);
  };
}

/** The mask the launches of one key share, its words where the kernels read any, and the refresh pass that made them. */
interface SharedMask {
  words?: GpuTensor;
  mask?: AttentionMask;
  pass?: RefreshPass;
}

// cached_attention reads the new key at each row's key range end - 1 and the cache before it: an
// end outside 1..keyLength (the cache's capacity plus the new key) would read outside the row.
function cachedKeyRangeError(n: Node, mask: AttentionMask, keyLength: number): Diagnostic | undefined {
  const ranges = mask.keyRanges!;
  for (let b = 0; 2 * b < ranges.length; b++) {
    const [start, end] = [ranges[2 * b], ranges[2 * b + 1]];
    if (end < 1 || end > keyLength || start >= end) return diag("SFT4005", `cached attention %${n.id}: row ${b}'s key range [${start}, ${end}) is not within 1..${keyLength} with the new key last`);
  }
  return undefined;
}

// The kernels store Q, K, V, O and their gradients in f32 or f16.
export function unsupportedDtype(n: Node): Result<never> | undefined {
  return n.dtype === "f32" || n.dtype === "f16" ? undefined : fail(diag("SFT4005", `attention %${n.id}: the kernels take f32 or f16 tensors, not ${n.dtype}`));
}
