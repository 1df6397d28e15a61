// The attention and MLP blocks of one layer, built from a family's traits: the fused-QKV split
// by its layout data, RoPE or ALiBi, causal or GLM prefix masks, MQA/GQA (key/value heads shared
// by consecutive query heads), SwiGLU with separate or fused gate/up, or a GELU MLP.
// B = batch, T = sequence, C = hidden, H = heads, KV = key/value heads, D = head dim, F = ffn.
import * as b from "../ir/build.ts";
import type { Node } from "../ir/node.ts";
import { qkvGroups, qkvRowOffsets, type Family, type ModelDims } from "../../stdlib/families/family.ts";
import { rotary, type RotaryInputs } from "./rotary.ts";

/** The linear layers a block may call, by canonical role. */
export type LinearRole = "attn.qkv" | "attn.out" | "mlp.gate" | "mlp.up" | "mlp.gate_up" | "mlp.down" | "head";

/** The norms of a layer stack, by the prefix of their checkpoint roles. */
export type NormRole = "attn_norm" | "mlp_norm" | "final_norm";

/** What a block needs from the graph under construction. */
export interface BlockContext {
  family: Family;
  dims: ModelDims;
  /** x (B, T, in) through the layer's checkpoint linear for `role` (with bias and adapter). */
  project(x: Node, role: LinearRole, layer: number): Node;
  /** x (B, T, C) through the family's norm with the weights of `role` (`layer` null: final). */
  norm(x: Node, role: NormRole, layer: number | null): Node;
  rotary: RotaryInputs;
  /** Prompt lengths (B) for a GLM prefix mask; null for causal families. */
  prefixLength: Node | null;
  /**
   * Whether q and k heads that lie together in the fused projection turn in one rotation: a
   * launch fewer a layer, for graphs without a backward (generation steps). A training graph
   * keeps two, as the backward would first copy the q and k gradients together.
   */
  rotateTogether?: boolean;
}

/**
 * The layers over the embedded input x (B, T, C) in the family's residual style, each layer's
 * attention of its normed input given by `attend` ((B, T, C) -> (B, T, C)); the result is not
 * final-normed.
 */
export function layerStack(ctx: BlockContext, x: Node, attend: (a: Node, layer: number) => Node): Node {
  const residual = ctx.family.residual;
  for (let layer = 0; layer < ctx.dims.layers; layer++) {
    const a = ctx.norm(x, "attn_norm", layer);
    if (residual.kind === "parallel") {
      x = b.add(b.add(x, attend(a, layer)), mlpBlock(ctx, a, layer));
      continue;
    }
    // GLM adds the normed input times alpha instead of the raw input (models.md §4.2, §6.8)
    const alpha = residual.kind === "scaled_normed_input" ? residual.alpha(ctx.dims) : null;
    const h = b.add(alpha === null ? x : b.scale(a, alpha), attend(a, layer));
    const m = ctx.norm(h, "mlp_norm", layer);
    x = b.add(alpha === null ? h : b.scale(m, alpha), mlpBlock(ctx, m, layer));
  }
  return x;
}

/** The query, key and value heads of the normed input x (B, T, C), RoPE applied to q and k. */
export function qkvHeads(ctx: BlockContext, x: Node, layer: number): { q: Node; k: Node; v: Node } {
  const { family, dims } = ctx;
  const [B, T] = x.shape;
  const D = dims.headDim;
  const qkv = ctx.project(x, "attn.qkv", layer); // (B, T, (H + 2KV) D)
  // The fused rows split into G equal chunks, each holding its share of q, k and v heads in the
  // layout's order; head i of a part sits in chunk i / (count / G).
  const groups = qkvGroups(family.qkv, dims);
  const chunk = qkv.shape[2] / groups;
  const grouped = b.reshape(qkv, [B, T, groups, chunk]); // (B, T, G, chunk)
  const offsets = qkvRowOffsets(family.qkv, dims);
  const part = (name: "q" | "k" | "v", count: number) => {
    const start = offsets[name][0]; // the part's first row, in chunk 0
    const section = b.slice(grouped, 3, start, start + (count / groups) * D); // (B, T, G, count/G · D)
    return b.reshape(section, [B, T, count, D]);
  };
  const v = part("v", dims.kvHeads);
  // one chunk whose k heads follow its q heads: one rotation of the q and k heads together (each
  // head turns by its position alone), then q and k as its head ranges
  if (ctx.rotateTogether && groups === 1 && offsets.k[0] === offsets.q[0] + dims.heads * D && family.position.kind === "rope") {
    const both = b.reshape(b.slice(grouped, 3, offsets.q[0], offsets.q[0] + (dims.heads + dims.kvHeads) * D), [B, T, dims.heads + dims.kvHeads, D]);
    const rotated = rotary(family, dims, both, ctx.rotary); // (B, T, H + KV, D)
    return { q: b.slice(rotated, 2, 0, dims.heads), k: b.slice(rotated, 2, dims.heads, dims.heads + dims.kvHeads), v };
  }
  const q = rotary(family, dims, part("q", dims.heads), ctx.rotary); // (B, T, H, D)
  const k = rotary(family, dims, part("k", dims.kvHeads), ctx.rotary); // (B, T, KV, D)
  return { q, k, v };
}

/** Self-attention of the normed input x (B, T, C) -> (B, T, C). */
export function attentionBlock(ctx: BlockContext, x: Node, layer: number): Node {
  const { family, dims } = ctx;
  const [B, T] = x.shape;
  const D = dims.headDim;
  const { q, k, v } = qkvHeads(ctx, x, layer);
  const mask = family.attention.mask;
  const attrs = {
    // GLM's query-key layer scaling divides and multiplies back by (layer + 1): an fp16 overflow
    // guard (models.md §6.7) that is the identity in f32 arithmetic.
    scale: 1 / Math.sqrt(D),
    causal: true,
    prefix: mask.kind === "glm_prefix",
    padding: false,
    segments: false,
    alibi: family.position.kind === "alibi",
  };
  const out = b.attention(q, k, v, attrs, attrs.prefix ? [ctx.prefixLength!] : []); // (B, T, H, D)
  return ctx.project(b.reshape(out, [B, T, dims.heads * D]), "attn.out", layer);
}

/** The feed-forward block of the normed input x (B, T, C) -> (B, T, C). */
export function mlpBlock(ctx: BlockContext, x: Node, layer: number): Node {
  const mlp = ctx.family.mlp;
  const F = ctx.dims.ffn;
  let hidden: Node; // (B, T, F)
  if (mlp.kind === "gelu_tanh") {
    hidden = b.geluTanh(ctx.project(x, "mlp.up", layer));
  } else if (mlp.gateUp === "separate") {
    hidden = b.mul(b.silu(ctx.project(x, "mlp.gate", layer)), ctx.project(x, "mlp.up", layer));
  } else {
    const gateUp = ctx.project(x, "mlp.gate_up", layer); // (B, T, 2F): gate rows, then up rows
    hidden = b.mul(b.silu(b.slice(gateUp, 2, 0, F)), b.slice(gateUp, 2, F, 2 * F));
  }
  return ctx.project(hidden, "mlp.down", layer);
}
