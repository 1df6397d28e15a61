// Host-written buffers that launches of one schedule share: every layer's RoPE launches (queries
// and keys, forward, backward and recomputed) read the same positions input and build the same
// cos/sin table from it, and every layer's attention launches the same mask words from the same
// mask inputs. Launches with equal keys hold one buffer between them, written once per refresh,
// where each held and wrote its own. The GPU executor's preparers (runtime/execute/library/rope.ts,
// attention-call.ts) and the plan of their bytes (compiler/plan/launch-scratch.ts) both key by these.
import type { Node } from "../ir/node.ts";
import { attentionMaskInputs, attentionShape } from "./attention-shape.ts";
import { inputView, type Launch } from "./schedule.ts";
import type { View } from "./views.ts";

// A view as a key: its base node and where and how it reads it.
const viewKey = (v: View) => `%${v.base.id}@${v.offset}[${v.shape}]/${v.strides}`;

/** The key of RoPE node `n`'s positions (u32) in `launch`: launches reading the same positions view share them. */
export function ropePositionsKey(launch: Launch, n: Node): string {
  return `rope positions ${viewKey(inputView(launch, n.inputs[1]))}`;
}

/** The key of RoPE node `n`'s cos/sin table: the same positions, rotary dims and base give the same table. */
export function ropeTableKey(launch: Launch, n: Node): string {
  const a = n.attrs.rope!;
  return `rope table ${viewKey(inputView(launch, n.inputs[1]))} dims ${a.rotaryDim} base ${a.base}`;
}

/**
 * The key of attention node `n`'s mask words in `launch` (q at input `first`): the words are a
 * function of the mask features, the shape and the mask inputs' values.
 */
export function attentionMaskKey(launch: Launch, n: Node, first: number): string {
  const a = n.attrs.attention!;
  const s = attentionShape(n, first);
  const features = [a.causal, a.prefix, a.padding, a.segments, a.alibi].map(Number).join("");
  // a cached attention checks its key ranges against its cache when it reads them
  return `mask ${n.op === "cached_attention" ? "in-place " : ""}${features} B${s.batch} T${s.queryLength} S${s.keyLength} H${s.queryHeads} ${attentionMaskInputs(n, first).map((m) => viewKey(inputView(launch, m))).join(" ")}`;
}
