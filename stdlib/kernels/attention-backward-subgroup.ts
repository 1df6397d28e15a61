// Fused attention backward on subgroup matrices: the dK/dV and dQ kernels of
// attention-backward.ts (same bindings, uniforms, views, masks, GQA/MQA and outputs; the delta
// kernel is shared) with their products on subgroup matrices, f16 inputs and f32 results.
// With P = exp(S - lse) recomputed per tile (no rescaling: lse is final), the accumulators
// live in result matrices across the whole loop.
//
// Every operand tile is stored as the operand is in memory, [row][d] in padded rows (tileStride),
// filled four head dims per invocation and step (wgslTileRows); where a product needs its
// transpose, the right matrices load column-major from the same tile.
//
// dQ: a workgroup per (query block, query head, batch row), each subgroup owning M query rows,
// Q and dO held in left matrices. Per key tile: S = Q K^T and dP = dO V^T by matrix products
// (K^T and V^T read column-major from the K and V tiles); ordinary invocations turn them into
// dS = P * (dP - delta) (f16); then dQ += dS K.
//
// dK/dV: a workgroup per (key block, KV head, batch row), each subgroup owning M keys, K and V
// held in left matrices. Per query head of the group and query tile: S^T = K Q^T and
// dP^T = V dO^T (Q^T and dO^T read column-major from the Q and dO tiles); ordinary invocations
// write P^T and dS^T = P^T * (dP^T - delta) (f16); then dV += P^T dO and dK += dS^T Q. dK and dV
// are summed over the group's query heads in the same result matrices.
//
// Precision: Q, K, V and dO are rounded to f16, P and dS too before their products (2^-11 per
// value); scores, sums, delta and every accumulation are f32. Uniformity: as in
// attention-forward-subgroup.ts.
import { ok, type Result } from "../../compiler/diagnostics.ts";
import { ceilDiv, onSubgroupMatrices, type KernelSpec } from "./kernel.ts";
import { subgroupMatrixTypes, type SubgroupMatrixConfig } from "./matmul-subgroup.ts";
import { wgslAttentionCommon, type AttentionVariant } from "./attention-common.ts";
import { attentionBackwardKernels, type AttentionBackwardKernels } from "./attention-backward.ts";
import {
  attentionKernelChoice,
  blockRows,
  checkSubgroupLayout,
  subgroupAttentionLayouts,
  tileAt,
  tileStride,
  type AttentionAdapter,
  type SubgroupAttentionLayout,
} from "./attention-subgroup-layout.ts";
import {
  lines,
  loadLefts,
  product,
  range,
  subgroupAttentionFrame,
  subgroupRows,
  keyValueSources,
  querySources,
  wgslTileRows,
  wgslQueryBlockOpening,
} from "./attention-subgroup-wgsl.ts";

/** The two backward kernels on subgroup matrices. */
export type BackwardKernel = "dq" | "dkdv";

/**
 * f16 elements of the operand array: the two tiles of a loop step (K and V for dQ, Q and dO for
 * dK/dV), or the two operands staged before the loop (Q and dO, or K and V), [row][d] each.
 */
function operandElements(layout: SubgroupAttentionLayout, headDim: number): number {
  return 2 * Math.max(layout.blockK, blockRows(layout)) * tileStride(headDim);
}

/**
 * Bytes of workgroup memory of the dQ or the dK/dV kernel: the f16 operand tiles, S and dP in
 * f32 (which at the end hold the f32 results of a block, (rows, D)), dS (dQ) or P^T and dS^T
 * (dK/dV) in f16, and lse and delta in f32 for each query row of a block (dQ) or a tile (dK/dV).
 */
export function backwardWorkgroupBytes(layout: SubgroupAttentionLayout, headDim: number, kernel: BackwardKernel): number {
  const rows = blockRows(layout);
  const tile = layout.blockK;
  const operands = 2 * operandElements(layout, headDim);
  const scores = 4 * Math.max(2 * rows * tile, rows * headDim);
  const dq = kernel === "dq";
  const weights = 2 * (dq ? 1 : 2) * rows * tile;
  return operands + scores + weights + 2 * 4 * (dq ? rows : tile);
}

/** Every layout of the dQ or dK/dV kernel that fits `adapter` at head dim `headDim`, largest first (subgroupAttentionLayouts). */
export function backwardLayouts(adapter: AttentionAdapter, headDim: number, kernel: BackwardKernel): SubgroupAttentionLayout[] {
  return subgroupAttentionLayouts(adapter, headDim, (layout) => backwardWorkgroupBytes(layout, headDim, kernel));
}

/**
 * Relative error allowed against attentionBackwardReference on f16 inputs and dO: P and dS are
 * rounded to f16 (2^-11 each) before their products; f32 accumulation adds far less.
 */
export function subgroupAttentionBackwardTolerance(): number {
  return 3e-3;
}

/** Whether the backward runs on subgroup matrices: a layout may fit the dQ kernel's workgroup memory and not the dK/dV kernel's, so either counts. */
export function backwardOnSubgroupMatrices(kernels: AttentionBackwardKernels): boolean {
  return onSubgroupMatrices(kernels.dq) || onSubgroupMatrices(kernels.dkdv);
}

/**
 * The backward kernels for a launch: the shared delta kernel, and dK/dV and dQ on subgroup
 * matrices where the adapter has a layout for each (SFT_ATTENTION as attentionKernelChoice; the
 * `tuned` layout where the device tuned one, runtime/gpu/attention-tuning.ts), else the scalar ones.
 */
export function attentionBackwardKernelsFor(
  adapter: AttentionAdapter,
  variant: AttentionVariant,
  env: Readonly<Record<string, string | undefined>> = process.env,
  tuned: Partial<Record<BackwardKernel, SubgroupAttentionLayout>> = {},
): Result<AttentionBackwardKernels> {
  const scalar = attentionBackwardKernels(variant);
  const D = variant.headDim;
  const dq = attentionKernelChoice(adapter, D, env, { name: "attention backward dQ", bytes: (layout) => backwardWorkgroupBytes(layout, D, "dq"), preferred: tuned.dq });
  if (!dq.ok) return dq;
  const dkdv = attentionKernelChoice(adapter, D, env, { name: "attention backward dK/dV", bytes: (layout) => backwardWorkgroupBytes(layout, D, "dkdv"), preferred: tuned.dkdv });
  if (!dkdv.ok) return dkdv;
  return ok({
    delta: scalar.delta,
    dkdv: dkdv.value === "scalar" ? scalar.dkdv : attentionDkdvSubgroupKernel(variant, dkdv.value),
    dq: dq.value === "scalar" ? scalar.dq : attentionDqSubgroupKernel(variant, dq.value),
  });
}

/**
 * WGSL: per column block y of the tile, the products `lefts1 x right` -> f32_tile at row0 and
 * `lefts2 x right` -> f32_tile at DP_AT (S and dP, or their transposes; rows of `widthName`
 * columns), the right matrices the transposes of the f16 tiles at 0 and at `at2` ([column][d],
 * `width` rows), loaded column-major.
 */
function scoresAndGradients(lefts1: string, lefts2: string, at2: string, width: number, widthName: string, D: number, c: SubgroupMatrixConfig, types: ReturnType<typeof subgroupMatrixTypes>): string {
  const names = (prefix: string) => range(D / c.K).map((x) => `${prefix}${x}`);
  const at = (y: number) => (x: number) => `${tileAt(D, y * c.N, x * c.K)}u`;
  return lines(
    range(width / c.N).map((y) =>
      lines([
        product(`s${y}`, true, names(lefts1), "f16_tile", at(y), "TILE_STRIDE", types, true),
        `      subgroupMatrixStore<row_major>(&f32_tile, row0 * ${widthName} + ${y * c.N}u, s${y}, ${widthName});`,
        product(`dp${y}`, true, names(lefts2), "f16_tile", (x) => `${at2} + ${at(y)(x)}`, "TILE_STRIDE", types, true),
        `      subgroupMatrixStore<row_major>(&f32_tile, DP_AT + row0 * ${widthName} + ${y * c.N}u, dp${y}, ${widthName});`,
      ]),
    ),
  );
}

/** WGSL: stores result matrices `NAMEy` (y = 0..n-1, N columns each) of this subgroup's rows to `f32_tile` (rows, D), then writes them out. */
function storeResults(names: string[], c: { N: number }): string {
  return lines(names.map((name, y) => `    subgroupMatrixStore<row_major>(&f32_tile, row0 * D + ${y * c.N}u, ${name}, D);`));
}

/** The dQ kernel: bindings and uniforms of attention-backward.ts's dQ kernel. */
export function attentionDqSubgroupKernel(variant: AttentionVariant, layout: SubgroupAttentionLayout): KernelSpec {
  const D = variant.headDim;
  checkSubgroupLayout(layout, D);
  const { config: c, blockK: BK } = layout;
  const BQ = blockRows(layout);
  const scalar = attentionBackwardKernels(variant).dq;
  const types = subgroupMatrixTypes(c);
  const { scope } = subgroupRows(layout);
  const dChunks = D / c.K;
  const dq = range(D / c.N).map((y) => `dq${y}`);
  return {
    ...subgroupAttentionFrame("attention_backward_dq_subgroup_matrix", { ...variant, blockK: BK }, layout, scalar, (u) => [ceilDiv(u.q_len, BQ), u.query_heads, u.batch]),
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "dout", "dq"])}
const BLOCK_Q = ${BQ}u;
const BLOCK_K = ${BK}u;
const TILE_STRIDE = ${tileStride(D)}u; // padded rows of the operand tiles (TILE_PAD)
const V_AT = ${BK * tileStride(D)}u; // V (BLOCK_K, D) in f16_tile, after K (BLOCK_K, D)
const DOUT_AT = ${BQ * tileStride(D)}u; // dO (BLOCK_Q, D) staged after Q (BLOCK_Q, D) before the loop
const DP_AT = ${BQ * BK}u;    // dP (BLOCK_Q, BLOCK_K) in f32_tile, after S
var<workgroup> f16_tile: array<f16, ${operandElements(layout, D)}>;
var<workgroup> f32_tile: array<f32, ${Math.max(2 * BQ * BK, BQ * D)}>; // S, dP; at the end dQ (BLOCK_Q, D)
var<workgroup> ds_tile: array<f16, ${BQ * BK}>; // (BLOCK_Q, BLOCK_K)
var<workgroup> row_lse: array<f32, ${BQ}>;
var<workgroup> row_delta: array<f32, ${BQ}>;`,
    body: `${wgslQueryBlockOpening(layout)}
  // stage Q and dO as f16 (rows past T are zero), and the rows' lse and delta
${wgslTileRows("f16_tile", "BLOCK_Q", querySources("first", true), "first + r < u.q_len")}
  for (var r = lidx; r < BLOCK_Q; r += WG_X) {
    let i = first + r;
    row_lse[r] = 0.0;
    row_delta[r] = 0.0;
    if (i < u.q_len) {
      row_lse[r] = lse[(b * u.query_heads + h) * u.q_len + i];
      row_delta[r] = delta[(b * u.query_heads + h) * u.q_len + i];
    }
  }
  workgroupBarrier();
  ${scope}{
${loadLefts("q", dChunks, "f16_tile", (x) => `row0 * TILE_STRIDE + ${x * c.K}u`, "TILE_STRIDE", types, "    ")}
${loadLefts("g", dChunks, "f16_tile", (x) => `DOUT_AT + row0 * TILE_STRIDE + ${x * c.K}u`, "TILE_STRIDE", types, "    ")}
${lines(dq.map((name) => `    var ${name} = ${types.result}();`))}
    for (var j0 = j_start; j0 < j_end; j0 += BLOCK_K) {
      let n = min(BLOCK_K, j_end - j0);
      workgroupBarrier(); // Q and dO, or the previous tile, are no longer read
${wgslTileRows("f16_tile", "BLOCK_K", keyValueSources("j0"))}
      workgroupBarrier();
${scoresAndGradients("q", "g", "V_AT", BK, "BLOCK_K", D, c, types)}
      workgroupBarrier();
      // dS = P * (dP - delta), P = exp(S * scale + bias - lse); 0 where masked
      for (var e = lidx; e < BLOCK_Q * BLOCK_K; e += WG_X) {
        let r = e / BLOCK_K;
        let c = e % BLOCK_K;
        let i = first + r;
        let p = i + u.query_offset;
        var ds = 0.0;
        if (i < u.q_len && c < n && key_allowed(b, p, j0 + c)) {
          let prob = exp(f32_tile[e] * u.scale + score_bias(h, p, j0 + c) - row_lse[r]);
          ds = prob * (f32_tile[DP_AT + e] - row_delta[r]);
        }
        ds_tile[e] = f16(ds);
      }
      workgroupBarrier();
${loadLefts("ds", BK / c.K, "ds_tile", (x) => `row0 * BLOCK_K + ${x * c.K}u`, "BLOCK_K", types)}
${lines(dq.map((name, y) => product(name, false, range(BK / c.K).map((x) => `ds${x}`), "f16_tile", (x) => `${tileAt(D, x * c.K, y * c.N)}u`, "TILE_STRIDE", types)))}
    }
    workgroupBarrier(); // the last tile's S and dP are no longer read
${storeResults(dq, c)}
  }
  workgroupBarrier();
  for (var e = lidx; e < BLOCK_Q * D; e += WG_X) {
    let i = first + e / D;
    if (i < u.q_len) { store_dq(dq_at(b, i, h) + e % D, f32_tile[e] * u.scale); }
  }`,
  };
}

/** The dK/dV kernel: bindings and uniforms of attention-backward.ts's dK/dV kernel. */
export function attentionDkdvSubgroupKernel(variant: AttentionVariant, layout: SubgroupAttentionLayout): KernelSpec {
  const D = variant.headDim;
  checkSubgroupLayout(layout, D);
  const { config: c, blockK: BQT } = layout;
  const BKV = blockRows(layout);
  const scalar = attentionBackwardKernels(variant).dkdv;
  const types = subgroupMatrixTypes(c);
  const { row0, scope } = subgroupRows(layout);
  const dChunks = D / c.K;
  const dk = range(D / c.N).map((y) => `dk${y}`);
  const dv = range(D / c.N).map((y) => `dv${y}`);
  return {
    ...subgroupAttentionFrame("attention_backward_dkdv_subgroup_matrix", { ...variant, queryTile: BQT }, layout, scalar, (u) => [ceilDiv(u.key_len, BKV), u.query_heads / u.group_size, u.batch]),
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "dout", "dk", "dv"])}
const BLOCK_KV = ${BKV}u;
const QUERY_TILE = ${BQT}u;
const TILE_STRIDE = ${tileStride(D)}u; // padded rows of the operand tiles (TILE_PAD)
const DOUT_AT = ${BQT * tileStride(D)}u; // dO (QUERY_TILE, D) in f16_tile, after Q (QUERY_TILE, D)
const V_AT = ${BKV * tileStride(D)}u; // V (BLOCK_KV, D) staged after K (BLOCK_KV, D) before the loop
const DP_AT = ${BKV * BQT}u;   // dP^T (BLOCK_KV, QUERY_TILE) in f32_tile, after S^T
var<workgroup> f16_tile: array<f16, ${operandElements(layout, D)}>;
var<workgroup> f32_tile: array<f32, ${Math.max(2 * BKV * BQT, BKV * D)}>; // S^T, dP^T; at the end dK, then dV (BLOCK_KV, D)
var<workgroup> weight_tile: array<f16, ${2 * BKV * BQT}>; // P^T, then dS^T (BLOCK_KV, QUERY_TILE)
var<workgroup> tile_lse: array<f32, ${BQT}>;
var<workgroup> tile_delta: array<f32, ${BQT}>;
const DS_AT = ${BKV * BQT}u;`,
    body: `  let b = wid.z;
  let kvh = wid.y;
  let first_j = wid.x * BLOCK_KV;
  let row0 = ${row0}; // this subgroup's first key in the block
  // stage K and V as f16 (keys past S are zero)
${wgslTileRows("f16_tile", "BLOCK_KV", keyValueSources("first_j"), "first_j + r < u.key_len")}
  workgroupBarrier();
  // Query rows before this one cannot see any key of the block (causal without a prefix).
  let p_first = query_window_start(b, first_j);
  let i_start = select(0u, p_first - u.query_offset, p_first > u.query_offset);
  ${scope}{
${loadLefts("k", dChunks, "f16_tile", (x) => `row0 * TILE_STRIDE + ${x * c.K}u`, "TILE_STRIDE", types, "    ")}
${loadLefts("v", dChunks, "f16_tile", (x) => `V_AT + row0 * TILE_STRIDE + ${x * c.K}u`, "TILE_STRIDE", types, "    ")}
${lines([...dk, ...dv].map((name) => `    var ${name} = ${types.result}();`))}
    for (var g = 0u; g < u.group_size; g++) {
      let h = kvh * u.group_size + g;
      for (var i0 = i_start; i0 < u.q_len; i0 += QUERY_TILE) {
        let n = min(QUERY_TILE, u.q_len - i0);
        workgroupBarrier(); // K and V, or the previous tile, are no longer read
${wgslTileRows("f16_tile", "QUERY_TILE", querySources("i0", true))}
        for (var r = lidx; r < QUERY_TILE; r += WG_X) {
          tile_lse[r] = 0.0;
          tile_delta[r] = 0.0;
          if (r < n) {
            tile_lse[r] = lse[(b * u.query_heads + h) * u.q_len + i0 + r];
            tile_delta[r] = delta[(b * u.query_heads + h) * u.q_len + i0 + r];
          }
        }
        workgroupBarrier();
${scoresAndGradients("k", "v", "DOUT_AT", BQT, "QUERY_TILE", D, c, types)}
        workgroupBarrier();
        // P^T = exp(S^T * scale + bias - lse) and dS^T = P^T * (dP^T - delta); 0 where masked
        for (var e = lidx; e < BLOCK_KV * QUERY_TILE; e += WG_X) {
          let r = e / QUERY_TILE;
          let c = e % QUERY_TILE;
          let j = first_j + r;
          let p = i0 + c + u.query_offset;
          var prob = 0.0;
          var ds = 0.0;
          if (j < u.key_len && c < n && key_allowed(b, p, j)) {
            prob = exp(f32_tile[e] * u.scale + score_bias(h, p, j) - tile_lse[c]);
            ds = prob * (f32_tile[DP_AT + e] - tile_delta[c]);
          }
          weight_tile[e] = f16(prob);
          weight_tile[DS_AT + e] = f16(ds);
        }
        workgroupBarrier();
${loadLefts("pt", BQT / c.K, "weight_tile", (x) => `row0 * QUERY_TILE + ${x * c.K}u`, "QUERY_TILE", types, "        ")}
${loadLefts("dst", BQT / c.K, "weight_tile", (x) => `DS_AT + row0 * QUERY_TILE + ${x * c.K}u`, "QUERY_TILE", types, "        ")}
${lines(dv.map((name, y) => product(name, false, range(BQT / c.K).map((x) => `pt${x}`), "f16_tile", (x) => `DOUT_AT + ${tileAt(D, x * c.K, y * c.N)}u`, "TILE_STRIDE", types)))}
${lines(dk.map((name, y) => product(name, false, range(BQT / c.K).map((x) => `dst${x}`), "f16_tile", (x) => `${tileAt(D, x * c.K, y * c.N)}u`, "TILE_STRIDE", types)))}
      }
    }
    workgroupBarrier(); // the last tile's S^T and dP^T are no longer read
${storeResults(dk, c)}
    workgroupBarrier();
    for (var e = lidx; e < BLOCK_KV * D; e += WG_X) {
      let j = first_j + e / D;
      if (j < u.key_len) { store_dkv(dk_at(b, j, kvh) + e % D, f32_tile[e] * u.scale); }
    }
    workgroupBarrier();
${storeResults(dv, c)}
  }
  workgroupBarrier();
  for (var e = lidx; e < BLOCK_KV * D; e += WG_X) {
    let j = first_j + e / D;
    if (j < u.key_len) { store_dkv(dv_at(b, j, kvh) + e % D, f32_tile[e]); }
  }`,
  };
}
