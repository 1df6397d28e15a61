// What the launches of a schedule allocate beside the memory plan's buffers, as the GPU executor's
// launch preparers do (runtime/execute/library/): buffers a launch keeps for itself, most of them
// written by the host (the embedding backward's token groups, the per-token losses of a logits
// gradient launched without its loss); host-written buffers launches share by key, counted once
// (compiler/passes/shared-scratch.ts: RoPE's positions and table, attention's mask words with the
// ALiBi slopes, padding and segments); and the workspace launches share: attention backward's
// dK|dV, delta and an unused dQ, a decode attention's partial sums, the scores
// of attention on the score-matrix path where the device takes it (`scores`), the statistics
// of forwards no backward reads (attention's log-sum-exp, a norm's rstd and mean:
// compiler/passes/saved-statistics.ts), and the norms a checkpointed backward recomputes
// (output and statistics), with the unused weight gradients of frozen norms. The workspace is
// one buffer per (request index, size) of a launch, so it costs the union of the launches'
// requests, not their sum. Not counted: the contiguous copies of views a library kernel cannot
// read (the schedule's placement decides those).
import { numel, type Node } from "../ir/node.ts";
import type { Schedule } from "../passes/schedule.ts";
import { decodePartialsSize, decodeSplitLength } from "../../stdlib/kernels/attention-decode.ts";
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { scoresPathHeads } from "../../stdlib/kernels/attention-scores-steps.ts";
import { attentionBackwardWorkspace, attentionDtype, attentionShape } from "../passes/attention-shape.ts";
import { attentionBackwardViews, attentionForwardViews } from "../passes/attention-views.ts";
import { maskWordCount } from "../../stdlib/kernels/attention-mask.ts";
import { attentionMaskKey, ropePositionsKey, ropeTableKey } from "../passes/shared-scratch.ts";
import { storageBytes, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import { latestNormOf, statisticsRead } from "../passes/saved-statistics.ts";

/**
 * Bytes of the launches' own buffers and of the workspace they share, for `schedule`. RoPE's
 * table has a row per position up to the largest the step reads: below `positions` where given
 * (a decode step over a KV cache reads positions up to its cache's capacity), else below each
 * node's sequence length (a training step's positions).
 */
export function launchScratchBytes(schedule: Schedule, scores?: AttentionScoresChoice, positions?: number): number {
  const workspace = new Map<string, number>();
  // buffers launches share by key (compiler/passes/shared-scratch.ts), counted once
  const shared = new Map<string, number>();
  let own = 0;
  const read = statisticsRead(schedule);
  for (const launch of schedule.launches) {
    const requests: number[] = [];
    const take = (dtype: StorageDType, elements: number) => requests.push(storageBytes(dtype, elements));
    const first = launch.outputs[0];
    switch (launch.kernel) {
      case "embedding_backward": {
        const tokens = numel(first.inputs[1].shape);
        own += storageBytes("i32", tokens) + storageBytes("u32", tokens + 1) + storageBytes("u32", tokens);
        break;
      }
      case "rope":
        for (const n of launch.outputs) {
          shared.set(ropePositionsKey(launch, n), storageBytes("u32", numel(n.inputs[1].shape)));
          shared.set(ropeTableKey(launch, n), ropeTableBytes(n, positions ?? n.shape[1]));
        }
        break;
      case "norm":
        // rstd, and LayerNorm's mean, per row
        if (!read.has(first)) for (let i = 0; i < (first.op === "layer_norm" ? 2 : 1); i++) take("f32", numel(first.shape) / first.shape[first.shape.length - 1]);
        break;
      case "attention":
      case "cached_attention": {
        shared.set(attentionMaskKey(launch, first, 0), maskBytes(first, 0));
        const shape = attentionShape(first, 0);
        const { queryLength: T, keyLength: S } = shape;
        // the log-sum-exp (B, Hq, T), first
        if (!read.has(first)) take("f32", shape.batch * shape.queryHeads * T);
        // one query row (decode): the split kernels' partial sums; else, on the score-matrix path, a chunk's scores
        if (T === 1) take("f32", decodePartialsSize(shape, decodeSplitLength(S)));
        const heads = scores && launch.kernel === "attention" ? scoresPathHeads(scores, "forward", shape, attentionDtype(first, 0), attentionForwardViews(launch, first)) : undefined;
        if (heads) take("f32", heads * T * S);
        break;
      }
      case "cross_entropy":
        // with the loss, the per-token losses are its side output (in the arena); a logits
        // gradient launched without its loss still writes them
        if (!launch.outputs.some((o) => o.op === "cross_entropy")) own += storageBytes("f32", first.inputs[1].shape[0]);
        break;
      case "attention_backward": {
        shared.set(attentionMaskKey(launch, first, 1), maskBytes(first, 1));
        // dK|dV, dQ where no output takes it, and delta
        const shape = attentionShape(first, 1);
        const { dkv, dq, delta } = attentionBackwardWorkspace(first, launch.outputs);
        for (const part of [dkv, dq, delta]) if (part) take(part.dtype, numel(part.shape));
        const heads = scores ? scoresPathHeads(scores, "backward", shape, attentionDtype(first, 1), attentionBackwardViews(launch, first)) : undefined;
        if (heads) for (let i = 0; i < 2; i++) take("f32", heads * shape.queryLength * shape.keyLength); // the chunk's scores and their gradients
        break;
      }
      case "norm_backward": {
        const [, x, w] = first.inputs;
        const rows = numel(x.shape) / numel(w.shape);
        // recomputed unless a norm before it kept its statistics
        if (!latestNormOf(read, first)) {
          take(x.dtype as StorageDType, numel(x.shape));
          take("f32", rows);
          if (first.attrs.norm === "layer") take("f32", rows);
        }
        // the weight kernel writes dw and (LayerNorm) db together: one not asked for goes to the workspace
        const [dw, db] = [1, 2].map((i) => launch.outputs.some((o) => o.attrs.wrt === i));
        if (dw || db) {
          if (!dw) take("f32", numel(w.shape));
          if (first.attrs.norm === "layer" && !db) take("f32", numel(w.shape));
        }
        break;
      }
    }
    requests.forEach((bytes, i) => workspace.set(`${i}:${bytes}`, bytes));
  }
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  return own + sum(shared) + sum(workspace);
}

/** RoPE's table of `positions` rows rounded up to a power of two (the one it keeps: rope.ts frees the smaller ones). */
function ropeTableBytes(n: Node, positions: number): number {
  const rows = 2 ** Math.ceil(Math.log2(Math.max(1, positions)));
  return storageBytes("f32", rows * n.attrs.rope!.rotaryDim);
}

/** Attention's mask words (the ALiBi slopes, the padding/prefix batch table, the segment ids: maskWords); q is input `first`. */
function maskBytes(n: Node, first: number): number {
  const { batch, keyLength, queryHeads } = attentionShape(n, first);
  const words = maskWordCount(n.attrs.attention!, batch, keyLength, queryHeads);
  return words > 0 ? storageBytes("u32", words) : 0;
}
