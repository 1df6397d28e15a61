// What the attention kernels (forward, backward, decode) share: the compile-time variant, the
// uniforms, and WGSL pieces (constants, operand views, masks, K/V tiles, the query-row opening).
import { invariant } from "../../compiler/diagnostics.ts";
import type { KernelBinding, UniformValues } from "./kernel.ts";
import { checkMaskShapes, wgslMask, type AttentionMask, type MaskFlags } from "./attention-mask.ts";
import { wgslViewIndex, type TensorView } from "./attention-layout.ts";
import type { AttentionShape } from "./attention-reference.ts";

/** Compile-time choices of the attention kernels (the pipeline cache key). */
export interface AttentionVariant extends MaskFlags {
  /** Storage dtype of Q, K, V, O and their gradients; scores and sums are always f32. */
  dtype: "f32" | "f16";
  headDim: number;
}

/** Query rows per workgroup (one invocation each). */
export const BLOCK_Q = 64;

/**
 * Keys per tile: two (BLOCK_K, D) f32 tiles stay within 16 KiB, the WebGPU default workgroup
 * memory, so every adapter runs every head size (D = 32 -> 64 keys, 128 -> 16, 256 -> 8).
 */
export function keyBlock(headDim: number): number {
  return Math.max(1, Math.min(64, Math.floor(2048 / headDim)));
}

/** WGSL constants of the attention kernels: D (where a head dim is given), NEG_BIG and negative_infinity(). */
export function wgslAttentionConstants(headDim?: number): string {
  return `${headDim === undefined ? "" : `\nconst D = ${headDim}u;`}
// "No score yet": exp(NEG_BIG - m) underflows to 0 without inf arithmetic.
const NEG_BIG = -3.0e38;
fn negative_infinity() -> f32 {
  var bits = 0xff800000u; // a var, so the value is not a (rejected) infinite constant
  return bitcast<f32>(bits);
}`;
}

/** The constants, index functions of the named views, and the mask helpers. */
export function wgslAttentionCommon(variant: AttentionVariant, views: readonly string[]): string {
  return `${wgslAttentionConstants(variant.headDim)}
${views.map(wgslViewIndex).join("\n")}
${wgslMask(variant)}`;
}

/** The read-only q, k, v bindings every attention kernel starts with (they may share one buffer). */
export function qkvBindings(dtype: AttentionVariant["dtype"]): KernelBinding[] {
  return (["q", "k", "v"] as const).map((name) => ({ name, dtype, access: "read" }));
}

/**
 * K/V tiles in workgroup memory and `load_kv_tiles(b, kvh, j0, n, lidx)`, which the whole
 * workgroup calls (uniform control flow) to load keys j0..j0+n-1 of KV head kvh, barriers included.
 */
export function wgslKeyValueTiles(headDim: number): string {
  const blockK = keyBlock(headDim);
  return `const BLOCK_K = ${blockK}u;
var<workgroup> k_tile: array<f32, ${blockK * headDim}>; // (BLOCK_K, D)
var<workgroup> v_tile: array<f32, ${blockK * headDim}>; // (BLOCK_K, D)
fn load_kv_tiles(b: u32, kvh: u32, j0: u32, n: u32, lidx: u32) {
  workgroupBarrier(); // the previous tile is no longer read
  for (var e = lidx; e < n * D; e += WG_X) {
    let r = e / D;
    let d = e % D;
    k_tile[e] = load_k(k_at(b, j0 + r, kvh) + d);
    v_tile[e] = load_v(v_at(b, j0 + r, kvh) + d);
  }
  workgroupBarrier();
}`;
}

/**
 * Opening of the kernels with one invocation per query row and a workgroup per (query block,
 * head, batch row): the row `i` at position `p`, and the key window `[j_start, j_end)` the block sees.
 */
export const WGSL_QUERY_ROW = `
  let b = wid.z;
  let h = wid.y;
  let kvh = h / u.group_size;
  let first = wid.x * WG_X;
  let i = first + lidx;
  let in_range = i < u.q_len;
  let p = i + u.query_offset;
  let j_start = key_window_start(b);
  let j_end = key_window_end(b, min(first + WG_X, u.q_len) - 1u + u.query_offset);
`;

/** Uniforms shared by the attention kernels besides the views. */
export const ATTENTION_UNIFORMS = {
  batch: "u32",
  // Equals the variant's D. Loops over head dims run to this uniform rather than the constant:
  // a constant trip count gets every nested loop fully unrolled, which made lavapipe's LLVM
  // compile one kernel in ~25 s instead of ~1.5 s.
  head_dim: "u32",
  query_heads: "u32",
  group_size: "u32",
  q_len: "u32",
  key_len: "u32",
  query_offset: "u32",
  scale: "f32",
} as const;

export function attentionUniformValues(shape: AttentionShape, scale: number, mask: AttentionMask): UniformValues {
  invariant(shape.queryHeads % shape.kvHeads === 0, `attention: ${shape.queryHeads} query heads over ${shape.kvHeads} KV heads`);
  checkMaskShapes(mask, shape.batch, shape.queryHeads, shape.queryLength, shape.keyLength);
  return {
    batch: shape.batch,
    head_dim: shape.headDim,
    query_heads: shape.queryHeads,
    group_size: shape.queryHeads / shape.kvHeads,
    q_len: shape.queryLength,
    key_len: shape.keyLength,
    query_offset: mask.queryOffset,
    scale,
  };
}

/** Views of the operands of one attention call. */
export interface AttentionViews {
  q: TensorView;
  k: TensorView;
  v: TensorView;
  o: TensorView;
}
