// Fused attention forward (flash-style): one kernel, online softmax over key tiles held in
// workgroup memory, never a (T, S) score matrix. Saves the log-sum-exp of every row for the
// backward. Reference: attentionForwardReference (attention-reference.ts).
//
// Work split: one workgroup per (query block of BLOCK_Q rows, query head, batch row); one
// invocation per query row keeps q (pre-scaled) and its output accumulator in registers, and the
// workgroup streams K/V tiles of BLOCK_K keys through workgroup memory. Only the key window a
// block can see (padding range, causal limit, GLM prefix) is streamed.
import type { KernelBinding, KernelSpec, UniformValues } from "./kernel.ts";
import { ceilDiv } from "./kernel.ts";
import { checkMaskShapes, maskBindings, wgslMask, type AttentionMask, type MaskFlags } from "./attention-mask.ts";
import { viewUniforms, viewUniformValues, wgslViewIndex, type TensorView } from "./attention-layout.ts";
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

/** WGSL constants of the attention kernels: D, NEG_BIG and negative_infinity(). */
export function wgslAttentionConstants(headDim: number): string {
  return `
const D = ${headDim}u;
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

export interface ForwardViews {
  q: TensorView;
  k: TensorView;
  v: TensorView;
  o: TensorView;
}

/**
 * Bindings: q, k, v (read; may be one fused buffer), o (written through its view), lse (B, Hq, T)
 * f32, then the mask's (attention-mask.ts).
 */
export function attentionForwardKernel(variant: AttentionVariant): KernelSpec {
  return {
    name: "attention_forward",
    variant: { ...variant, blockQ: BLOCK_Q, blockK: keyBlock(variant.headDim) },
    uniforms: { ...ATTENTION_UNIFORMS, ...viewUniforms("q"), ...viewUniforms("k"), ...viewUniforms("v"), ...viewUniforms("o") },
    bindings: [
      ...qkvBindings(variant.dtype),
      { name: "o", dtype: variant.dtype, access: "read_write" },
      { name: "lse", dtype: "f32", access: "read_write" },
      ...maskBindings(variant),
    ],
    workgroupSize: [BLOCK_Q, 1, 1],
    dispatch: (u) => [ceilDiv(u.q_len, BLOCK_Q), u.query_heads, u.batch],
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "o"])}
${wgslKeyValueTiles(variant.headDim)}`,
    body: `${WGSL_QUERY_ROW}

  var q: array<f32, D>;   // this row's query times scale
  var acc: array<f32, D>; // unnormalized output
  var s: array<f32, BLOCK_K>;
  var m = NEG_BIG;        // running max
  var l = 0.0;            // running sum of exp(score - m)
  if (in_range) {
    let at = q_at(b, i, h);
    for (var d = 0u; d < u.head_dim; d++) { q[d] = load_q(at + d) * u.scale; }
  }
  for (var j0 = j_start; j0 < j_end; j0 += BLOCK_K) {
    let n = min(BLOCK_K, j_end - j0);
    load_kv_tiles(b, kvh, j0, n, lidx);
    if (in_range) {
      var tile_max = NEG_BIG;
      for (var r = 0u; r < n; r++) {
        s[r] = NEG_BIG;
        if (key_allowed(b, p, j0 + r)) {
          var dot = 0.0;
          for (var d = 0u; d < u.head_dim; d++) { dot += q[d] * k_tile[r * D + d]; }
          s[r] = dot + score_bias(h, p, j0 + r);
          tile_max = max(tile_max, s[r]);
        }
      }
      if (tile_max > NEG_BIG) {
        let m_new = max(m, tile_max);
        let correction = exp(m - m_new);
        l *= correction;
        for (var d = 0u; d < u.head_dim; d++) { acc[d] *= correction; }
        for (var r = 0u; r < n; r++) {
          let w = exp(s[r] - m_new);
          l += w;
          for (var d = 0u; d < u.head_dim; d++) { acc[d] += w * v_tile[r * D + d]; }
        }
        m = m_new;
      }
    }
  }
  if (in_range) {
    // A row that sees no key: zeros and lse = -inf (the backward then gives it no gradient).
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let at = o_at(b, i, h);
    for (var d = 0u; d < u.head_dim; d++) { store_o(at + d, acc[d] * inv); }
    lse[(b * u.query_heads + h) * u.q_len + i] = select(negative_infinity(), m + log(l), l > 0.0);
  }`,
  };
}

/** Uniform values of one forward call. */
export function attentionForwardUniforms(shape: AttentionShape, views: ForwardViews, scale: number, mask: AttentionMask): UniformValues {
  return {
    ...attentionUniformValues(shape, scale, mask),
    ...viewUniformValues("q", views.q),
    ...viewUniformValues("k", views.k),
    ...viewUniformValues("v", views.v),
    ...viewUniformValues("o", views.o),
  };
}
