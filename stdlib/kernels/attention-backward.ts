// Fused attention backward, FlashAttention-2 style and deterministic (no float atomics): scores
// are recomputed tile by tile from Q, K and the saved log-sum-exp, in three kernels run in order:
//   1. attention_backward_delta: delta = rowsum(dO * O)                      (B, Hq, T)
//   2. attention_backward_dkdv:  dK, dV per key block, summed over the query heads of a KV group
//   3. attention_backward_dq:    dQ per query block
// With P = exp(S - lse): dV = P^T dO, dS = P * (dO V^T - delta), dQ = scale dS K, dK = scale dS^T Q.
// Reference: attentionBackwardReference (attention-reference.ts).
import type { KernelBinding, KernelSpec, UniformValues } from "./kernel.ts";
import { ceilDiv, linearGrid, WGSL_FLAT_WORKGROUP } from "./kernel.ts";
import { maskBindings, type AttentionMask } from "./attention-mask.ts";
import { viewUniforms, viewUniformValues, wgslViewIndex, type TensorView } from "./attention-layout.ts";
import type { AttentionShape } from "./attention-reference.ts";
import {
  ATTENTION_UNIFORMS,
  attentionUniformValues,
  BLOCK_Q,
  keyBlock,
  qkvBindings,
  wgslAttentionCommon,
  wgslAttentionConstants,
  wgslKeyValueTiles,
  WGSL_QUERY_ROW,
  type AttentionVariant,
  type AttentionViews,
} from "./attention-common.ts";

/**
 * Operand views of the backward. dK and dV are views into ONE buffer (`dkv`): WebGPU forbids
 * binding one buffer to two writable bindings, and a fused dQKV gradient is one buffer anyway.
 */
export interface BackwardViews extends AttentionViews {
  dout: TensorView;
  dq: TensorView;
  dk: TensorView;
  dv: TensorView;
}

/** Key rows per dK/dV workgroup (one invocation each). */
const BLOCK_KV = 64;

/** Query rows per tile of the dK/dV kernel: Q and dO tiles plus lse/delta stay within 16 KiB. */
function queryTile(headDim: number): number {
  return Math.max(1, Math.floor(keyBlock(headDim) / 2));
}

/** q, k, v, dout, lse, delta (read), the gradient output, then the mask's binding. */
function gradientBindings(variant: AttentionVariant, output: string): KernelBinding[] {
  return [
    ...qkvBindings(variant.dtype),
    { name: "dout", dtype: variant.dtype, access: "read" },
    { name: "lse", dtype: "f32", access: "read" },
    { name: "delta", dtype: "f32", access: "read" },
    { name: output, dtype: variant.dtype, access: "read_write" },
    ...maskBindings(variant),
  ];
}

export interface AttentionBackwardKernels {
  delta: KernelSpec;
  dkdv: KernelSpec;
  dq: KernelSpec;
}

/**
 * Bindings — delta: o, dout, delta (f32 out). dkdv: q, k, v, dout, lse, delta, dkv (out).
 * dq: q, k, v, dout, lse, delta, dq (out). The last two are followed by the mask's binding.
 */
export function attentionBackwardKernels(variant: AttentionVariant): AttentionBackwardKernels {
  return { delta: attentionDeltaKernel(variant), dkdv: dkdvKernel(variant), dq: dqKernel(variant) };
}

/** delta = rowsum(dO * O) (B, Hq, T): the first backward kernel, whichever kernels compute the gradients. */
export function attentionDeltaKernel(variant: AttentionVariant): KernelSpec {
  const { dtype } = variant;
  return {
    name: "attention_backward_delta",
    variant: { dtype, headDim: variant.headDim },
    uniforms: { ...ATTENTION_UNIFORMS, ...viewUniforms("o"), ...viewUniforms("dout") },
    bindings: [
      { name: "o", dtype, access: "read" },
      { name: "dout", dtype, access: "read" },
      { name: "delta", dtype: "f32", access: "read_write" },
    ],
    workgroupSize: [64, 1, 1],
    dispatch: (u) => linearGrid(ceilDiv(u.batch * u.query_heads * u.q_len, 64)),
    declarations: `${wgslAttentionConstants(variant.headDim)}
${WGSL_FLAT_WORKGROUP}
${wgslViewIndex("o")}
${wgslViewIndex("dout")}`,
    body: `
  let row = flat_workgroup_id(wid, nwg) * WG_X + lidx; // (b * Hq + h) * T + i
  if (row >= u.batch * u.query_heads * u.q_len) { return; }
  let i = row % u.q_len;
  let h = (row / u.q_len) % u.query_heads;
  let b = row / (u.q_len * u.query_heads);
  let o0 = o_at(b, i, h);
  let g0 = dout_at(b, i, h);
  var sum = 0.0;
  for (var d = 0u; d < u.head_dim; d++) { sum += load_o(o0 + d) * load_dout(g0 + d); }
  delta[row] = sum;`,
  };
}

function dkdvKernel(variant: AttentionVariant): KernelSpec {
  const { headDim } = variant;
  const tile = queryTile(headDim);
  return {
    name: "attention_backward_dkdv",
    variant: { ...variant, blockKV: BLOCK_KV, queryTile: tile },
    uniforms: {
      ...ATTENTION_UNIFORMS,
      ...viewUniforms("q"),
      ...viewUniforms("k"),
      ...viewUniforms("v"),
      ...viewUniforms("dout"),
      ...viewUniforms("dk"),
      ...viewUniforms("dv"),
    },
    bindings: gradientBindings(variant, "dkv"),
    workgroupSize: [BLOCK_KV, 1, 1],
    dispatch: (u) => [ceilDiv(u.key_len, BLOCK_KV), u.query_heads / u.group_size, u.batch],
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "dout", "dk", "dv"])}
const QUERY_TILE = ${tile}u;
var<workgroup> q_tile: array<f32, ${tile * headDim}>;    // (QUERY_TILE, D)
var<workgroup> dout_tile: array<f32, ${tile * headDim}>; // (QUERY_TILE, D)
var<workgroup> lse_tile: array<f32, ${tile}>;
var<workgroup> delta_tile: array<f32, ${tile}>;`,
    body: `
  let b = wid.z;
  let kvh = wid.y;
  let first_j = wid.x * WG_X;
  let j = first_j + lidx;
  let in_range = j < u.key_len;
  var k_row: array<f32, D>;
  var v_row: array<f32, D>;
  var dk: array<f32, D>;
  var dv: array<f32, D>;
  if (in_range) {
    let k0 = k_at(b, j, kvh);
    let v0 = v_at(b, j, kvh);
    for (var d = 0u; d < u.head_dim; d++) { k_row[d] = load_k(k0 + d); v_row[d] = load_v(v0 + d); }
  }
  // Query rows before this one cannot see any key of the block (causal without a prefix).
  let p_first = query_window_start(b, first_j);
  let i_start = select(0u, p_first - u.query_offset, p_first > u.query_offset);
  for (var g = 0u; g < u.group_size; g++) {
    let h = kvh * u.group_size + g;
    for (var i0 = i_start; i0 < u.q_len; i0 += QUERY_TILE) {
      let n = min(QUERY_TILE, u.q_len - i0);
      workgroupBarrier();
      for (var e = lidx; e < n * D; e += WG_X) {
        let r = e / D;
        let d = e % D;
        q_tile[e] = load_q(q_at(b, i0 + r, h) + d);
        dout_tile[e] = load_dout(dout_at(b, i0 + r, h) + d);
      }
      for (var r = lidx; r < n; r += WG_X) {
        let row = (b * u.query_heads + h) * u.q_len + i0 + r;
        lse_tile[r] = lse[row];
        delta_tile[r] = delta[row];
      }
      workgroupBarrier();
      if (in_range) {
        for (var r = 0u; r < n; r++) {
          let p = i0 + r + u.query_offset;
          if (!key_allowed(b, p, j)) { continue; }
          var dot = 0.0;
          for (var d = 0u; d < u.head_dim; d++) { dot += q_tile[r * D + d] * k_row[d]; }
          let prob = exp(dot * u.scale + score_bias(h, p, j) - lse_tile[r]);
          var dp = 0.0;
          for (var d = 0u; d < u.head_dim; d++) {
            dv[d] += prob * dout_tile[r * D + d];
            dp += dout_tile[r * D + d] * v_row[d];
          }
          let ds = prob * (dp - delta_tile[r]);
          for (var d = 0u; d < u.head_dim; d++) { dk[d] += ds * q_tile[r * D + d]; }
        }
      }
    }
  }
  if (in_range) {
    let dk0 = dk_at(b, j, kvh);
    let dv0 = dv_at(b, j, kvh);
    for (var d = 0u; d < u.head_dim; d++) {
      store_dkv(dk0 + d, dk[d] * u.scale);
      store_dkv(dv0 + d, dv[d]);
    }
  }`,
  };
}

function dqKernel(variant: AttentionVariant): KernelSpec {
  const { headDim } = variant;
  return {
    name: "attention_backward_dq",
    variant: { ...variant, blockQ: BLOCK_Q, blockK: keyBlock(headDim) },
    uniforms: { ...ATTENTION_UNIFORMS, ...viewUniforms("q"), ...viewUniforms("k"), ...viewUniforms("v"), ...viewUniforms("dout"), ...viewUniforms("dq") },
    bindings: gradientBindings(variant, "dq"),
    workgroupSize: [BLOCK_Q, 1, 1],
    dispatch: (u) => [ceilDiv(u.q_len, BLOCK_Q), u.query_heads, u.batch],
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "dout", "dq"])}
${wgslKeyValueTiles(headDim)}`,
    body: `${WGSL_QUERY_ROW}
  var q_row: array<f32, D>; // times scale
  var g_row: array<f32, D>; // dO
  var dq: array<f32, D>;
  var row_lse = 0.0;
  var row_delta = 0.0;
  if (in_range) {
    let q0 = q_at(b, i, h);
    let g0 = dout_at(b, i, h);
    for (var d = 0u; d < u.head_dim; d++) { q_row[d] = load_q(q0 + d) * u.scale; g_row[d] = load_dout(g0 + d); }
    let row = (b * u.query_heads + h) * u.q_len + i;
    row_lse = lse[row];
    row_delta = delta[row];
  }
  for (var j0 = j_start; j0 < j_end; j0 += BLOCK_K) {
    let n = min(BLOCK_K, j_end - j0);
    load_kv_tiles(b, kvh, j0, n, lidx);
    if (in_range) {
      for (var r = 0u; r < n; r++) {
        if (!key_allowed(b, p, j0 + r)) { continue; }
        var dot = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < u.head_dim; d++) {
          dot += q_row[d] * k_tile[r * D + d];
          dp += g_row[d] * v_tile[r * D + d];
        }
        let prob = exp(dot + score_bias(h, p, j0 + r) - row_lse);
        let ds = prob * (dp - row_delta);
        for (var d = 0u; d < u.head_dim; d++) { dq[d] += ds * k_tile[r * D + d]; }
      }
    }
  }
  if (in_range) {
    let dq0 = dq_at(b, i, h);
    for (var d = 0u; d < u.head_dim; d++) { store_dq(dq0 + d, dq[d] * u.scale); }
  }`,
  };
}

/** Uniform values of the three backward kernels (each reads the ones it declares). */
export function attentionBackwardUniforms(shape: AttentionShape, views: BackwardViews, scale: number, mask: AttentionMask): UniformValues {
  const named = Object.entries(views).map(([name, view]) => viewUniformValues(name, view));
  return Object.assign({}, attentionUniformValues(shape, scale, mask), ...named);
}
