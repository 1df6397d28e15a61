// Fused attention forward (flash-style): one kernel, online softmax over key tiles held in
// workgroup memory, never a (T, S) score matrix. Saves the log-sum-exp of every row for the
// backward. Reference: attentionForwardReference (attention-reference.ts).
//
// Work split: one workgroup per (query block of BLOCK_Q rows, query head, batch row); one
// invocation per query row keeps q (pre-scaled) and its output accumulator in registers, and the
// workgroup streams K/V tiles of BLOCK_K keys through workgroup memory. Only the key window a
// block can see (padding range, causal limit, GLM prefix) is streamed.
import type { KernelSpec, UniformValues } from "./kernel.ts";
import { ceilDiv } from "./kernel.ts";
import { maskBindings, type AttentionMask } from "./attention-mask.ts";
import { viewUniforms, viewUniformValues } from "./attention-layout.ts";
import type { AttentionShape } from "./attention-reference.ts";
import {
  ATTENTION_UNIFORMS,
  attentionUniformValues,
  BLOCK_Q,
  keyBlock,
  qkvBindings,
  wgslAttentionCommon,
  wgslKeyValueTiles,
  WGSL_QUERY_ROW,
  type AttentionVariant,
  type AttentionViews,
} from "./attention-common.ts";

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
export function attentionForwardUniforms(shape: AttentionShape, views: AttentionViews, scale: number, mask: AttentionMask): UniformValues {
  return {
    ...attentionUniformValues(shape, scale, mask),
    ...viewUniformValues("q", views.q),
    ...viewUniformValues("k", views.k),
    ...viewUniformValues("v", views.v),
    ...viewUniformValues("o", views.o),
  };
}
