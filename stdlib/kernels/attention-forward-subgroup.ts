// Fused attention forward on subgroup matrices (tensor cores through Vulkan cooperative
// matrices), flash-attention-2 style: same bindings, uniforms, views, masks, GQA/MQA, output and
// log-sum-exp as attentionForwardKernel (attention-forward.ts), which stays the choice without
// subgroup matrices or with SFT_ATTENTION=scalar.
//
// Work split: one workgroup per (query block of BLOCK_Q rows, query head, batch row); each of
// its subgroups owns M query rows (M of the matrix configuration). Per key tile of BLOCK_K keys:
//   1. the workgroup converts K and V to f16 in workgroup memory, both stored as they are in
//      memory, [key][d] (zero past the key window), four head dims per invocation and step;
//   2. each subgroup computes its S = Q K^T (M, BLOCK_K) with matrix products, Q held in left
//      matrices loaded once, K^T's right matrices loaded column-major from K's tile, f32 results
//      stored to workgroup memory;
//   3. ordinary invocations apply scale, bias and mask to S (f32), update the row's sums and
//      write P = exp(S - m) as f16: every invocation of the workgroup takes part, LANES of them
//      per row (subgroup size / M, at least 1) each over every LANES-th key of the tile, their
//      tile maxima combined through workgroup memory and their sums kept apart until the end;
//      m is the row's running max, moved only when a tile's max exceeds it by more than TAU
//      (conditional rescaling, as in recent FlashAttention work); a row whose m moves raises a
//      workgroup flag, and only then is O scaled row by row by exp(old m - new m) (a result
//      matrix cannot be scaled row by row): N columns at a time, the subgroups store a column
//      block of O over S's tile (S is read by then), every invocation scales it, and the
//      subgroups load it back: a workgroup barrier before each of the three (the first block
//      needs none before its store), so a rescale costs 3 D / N - 1 barriers, which TAU keeps rare;
//   4. each subgroup adds P V with matrix products to its O rows, result matrices it holds from
//      the first key tile to the last.
// At the end O leaves the same way, N columns at a time through S's tile, divided by the row's
// sum; m + log(sum) goes to lse. O never has a tile of its own, which leaves room for query
// blocks of four subgroups in 48 KiB.
//
// Precision: Q, K and V are rounded to f16 (f16 inputs exactly as stored), products accumulate
// in f32; P is rounded to f16 before P V (relative error up to 2^-11 per weight, see
// subgroupAttentionTolerance). Scores, m, sum and the log-sum-exp stay f32. The CPU reference
// is attentionForwardReference on the f16-rounded inputs. m is one of the row's scores and at
// most TAU = 8 (RESCALE_TAU) below its max, so P <= e^8 ~ 2981 stays far inside f16 (65504)
// with the same relative rounding, and no P is smaller than with the exact max; O and sum
// share m, so O / sum and m + log(sum) are exact as before and the error bound is unchanged.
//
// Subgroup-matrix calls and barriers sit in control flow that depends only on uniforms and the
// workgroup id. With several subgroups per workgroup, a subgroup's rows come from its index,
// local index / subgroup size, which WGSL's uniformity analysis cannot prove uniform per
// subgroup: that check is switched off around the body, which relies on subgroups being runs of
// consecutive local indices of the adapter's fixed size (as on NVIDIA). One subgroup per
// workgroup makes no such assumption.
import { invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { wgslAttentionCommon, type AttentionVariant } from "./attention-common.ts";
import { attentionForwardKernel } from "./attention-forward.ts";
import { subgroupMatrixTypes } from "./matmul-subgroup.ts";
import {
  attentionKernelChoice,
  blockRows,
  checkSubgroupLayout,
  keyValueElements,
  P_PAD,
  S_PAD,
  softmaxLanes,
  tileAt,
  tileStride,
  type AttentionAdapter,
  type SubgroupAttentionLayout,
} from "./attention-subgroup-layout.ts";
import { keyValueSources, lines, loadLefts, product, querySources, range, subgroupAttentionFrame, subgroupRows, wgslQueryBlockOpening, wgslTileRows } from "./attention-subgroup-wgsl.ts";

/**
 * Relative error allowed against attentionForwardReference on f16-rounded q, k, v: P is rounded
 * to f16 (unit roundoff 2^-11 per weight) before P V; f32 accumulation adds far less.
 */
export function subgroupAttentionTolerance(): number {
  return 2e-3;
}

/**
 * TAU of the forward kernel: how far (in scaled score units) a key tile's max may exceed a row's
 * running max m before m moves to it and O is rescaled; P = exp(score - m) <= e^8 ~ 2981 in f16.
 */
export const RESCALE_TAU = 8;

/**
 * WGSL of step 3 for one key tile: each (row, lane) applies scale, bias and mask to its keys of
 * S (lane, lane + LANES, ...), the row's lanes agree on the tile max through part_max (one
 * barrier), m moves as the header says, and each lane writes its P and adds its weights to its
 * own lane_sum, scaled with the row. With one lane the invocations loop over whole rows and need
 * no barrier; with several, every invocation owns exactly one (row, lane).
 */
function softmaxStep(lanes: number): string {
  const many = lanes > 1;
  const scores = `        let i = first + r;
        let p = i + u.query_offset;
        var m = row_max[r]; // read before any lane of the row writes it
        var tile_max = NEG_BIG;
        for (var c = lane; c < BLOCK_K; c += LANES) {
          var s = NEG_BIG;
          if (i < u.q_len && c < n && key_allowed(b, p, j0 + c)) {
            s = s_tile[r * S_STRIDE + c] * u.scale + score_bias(h, p, j0 + c);
          }
          s_tile[r * S_STRIDE + c] = s;
          tile_max = max(tile_max, s);
        }`;
  const combine = `        part_max[lidx] = tile_max;
        workgroupBarrier();
        for (var x = 0u; x < LANES; x++) { tile_max = max(tile_max, part_max[r * LANES + x]); }`;
  const weights = `        // m moves to the first tile with an allowed key (O and sum are still 0) and to a tile
        // whose max exceeds it by more than TAU; below that, P in terms of the old m fits f16
        var scale = 1.0;
        if (m == NEG_BIG) {
          m = tile_max;
        } else if (tile_max > m + TAU) {
          scale = exp(m - tile_max);
          m = tile_max;
          atomicOr(&rescale_flag, 1u);
        }
        var sum = 0.0;
        for (var c = lane; c < BLOCK_K; c += LANES) {
          var w = 0.0;
          if (tile_max > NEG_BIG) { w = exp(s_tile[r * S_STRIDE + c] - m); } // a masked score gives 0
          sum += w;
          p_tile[r * P_STRIDE + c] = f16(w);
        }
        lane_sum[r * LANES + lane] = lane_sum[r * LANES + lane] * scale + sum;`;
  if (!many)
    return `      // online softmax, one invocation per row
      for (var r = lidx; r < BLOCK_Q; r += WG_X) {
        let lane = 0u;
${scores}
${weights}
        row_max[r] = m;
        row_scale[r] = scale;
      }`;
  return `      // online softmax, LANES invocations per row
      {
        let r = lidx / LANES;
        let lane = lidx % LANES;
${scores}
${combine}
${weights}
        if (lane == 0u) {
          row_max[r] = m;
          row_scale[r] = scale;
        }
      }`;
}

/**
 * The bindings and uniforms of attentionForwardKernel: q, k, v (read; may be one fused buffer),
 * o, lse (B, Hq, T) f32, then the mask's; uniform values from attentionForwardUniforms. `lanes`
 * invocations per row take the softmax (softmaxLanes; 1 is the choice where invocations take
 * whole rows, which the benchmark compares).
 */
export function attentionForwardSubgroupKernel(variant: AttentionVariant, layout: SubgroupAttentionLayout, lanes = softmaxLanes(layout)): KernelSpec {
  const { config: c, blockK: BK } = layout;
  const D = variant.headDim;
  const BQ = blockRows(layout);
  checkSubgroupLayout(layout, D);
  invariant(BK >= c.M, `attention: ${BK} keys per tile are fewer than the ${c.M} rows of a result matrix`);
  const invocations = layout.subgroups * layout.subgroupSize;
  invariant(lanes === 1 || lanes * BQ === invocations, `attention: ${lanes} lanes per row of ${BQ} rows in ${invocations} invocations`);
  const scalar = attentionForwardKernel(variant); // the same uniforms and bindings
  const types = subgroupMatrixTypes(c);
  const dChunks = D / c.K;
  const blocks = range(D / c.N); // O's column blocks: result matrices o0, o1, ... of N columns
  // S (M, BLOCK_K) = Q K^T: Q as D/K left matrices, K^T's right matrices column-major from K [key][d]
  const scores = range(BK / c.N).map((y) =>
    lines([
      product(`s${y}`, true, range(dChunks).map((x) => `q${x}`), "kv_tile", (x) => `${tileAt(D, y * c.N, x * c.K)}u`, "TILE_STRIDE", types, true),
      `      subgroupMatrixStore<row_major>(&s_tile, row0 * S_STRIDE + ${y * c.N}u, s${y}, S_STRIDE);`,
    ]),
  );
  // O += P V, P stored [row][key], V [key][d] after K
  const update = blocks.map((y) => product(`o${y}`, false, range(BK / c.K).map((x) => `p${x}`), "kv_tile", (x) => `V_AT + ${tileAt(D, x * c.K, y * c.N)}u`, "TILE_STRIDE", types));
  // each column block y of O in turn through s_tile (rows S_STRIDE apart): stored by the
  // subgroups, then `each(y)` (lines) by every invocation for element (r, e % N) of the block at
  // s_tile[at] (and loaded back into o_y when `back`); `afterFirstBarrier` runs after the first
  // block's barrier
  const oBlocksThroughScores = (indent: string, each: (y: number) => string[], back: boolean, afterFirstBarrier = "") =>
    lines(
      blocks.map((y) =>
        lines([
          ...(y > 0 ? [`${indent}workgroupBarrier(); // the previous block is read`] : []),
          `${indent}subgroupMatrixStore<row_major>(&s_tile, row0 * S_STRIDE, o${y}, S_STRIDE);`,
          `${indent}workgroupBarrier();`,
          ...(y === 0 && afterFirstBarrier ? [`${indent}${afterFirstBarrier}`] : []),
          `${indent}for (var e = lidx; e < BLOCK_Q * ${c.N}u; e += WG_X) {`,
          `${indent}  let r = e / ${c.N}u;`,
          `${indent}  let at = r * S_STRIDE + e % ${c.N}u;`,
          ...each(y).map((x) => `${indent}  ${x}`),
          `${indent}}`,
          ...(back ? [`${indent}workgroupBarrier();`, `${indent}o${y} = subgroupMatrixLoad<${types.result}, row_major>(&s_tile, row0 * S_STRIDE, S_STRIDE);`] : []),
        ]),
      ),
    );
  const { scope } = subgroupRows(layout);
  return {
    ...subgroupAttentionFrame("attention_forward_subgroup_matrix", { ...variant, blockK: BK, lanes }, layout, scalar, (u) => [ceilDiv(u.q_len, BQ), u.query_heads, u.batch]),
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "o"])}
const BLOCK_Q = ${BQ}u;
const BLOCK_K = ${BK}u;
const S_STRIDE = ${BK + S_PAD}u; // padded rows of s_tile and p_tile (S_PAD, P_PAD)
const P_STRIDE = ${BK + P_PAD}u;
const TILE_STRIDE = ${tileStride(D)}u; // padded rows of the Q, K and V tiles (TILE_PAD)
const V_AT = ${BK * tileStride(D)}u; // V's offset in kv_tile
const TAU = ${RESCALE_TAU}.0; // how far a tile's max may exceed a row's m before m moves
const LANES = ${lanes}u; // invocations per row in the softmax
var<workgroup> s_tile: array<f32, ${BQ * (BK + S_PAD)}>; // (BLOCK_Q, BLOCK_K) scores, then biased and masked; a column block of O when rescaled and at the end
var<workgroup> p_tile: array<f16, ${BQ * (BK + P_PAD)}>; // (BLOCK_Q, BLOCK_K) exp(score - m)
var<workgroup> kv_tile: array<f16, ${keyValueElements(layout, D)}>; // K (BLOCK_K, D) then V (BLOCK_K, D); first Q (BLOCK_Q, D)
var<workgroup> row_max: array<f32, ${BQ}>;
var<workgroup> row_scale: array<f32, ${BQ}>; // exp(old m - new m) of the current tile; at the end the row's sum
var<workgroup> lane_sum: array<f32, ${BQ * lanes}>; // [row][lane] sums of P in terms of the row's m${lanes > 1 ? `
var<workgroup> part_max: array<f32, ${BQ * lanes}>; // [row][lane] maxima of the current tile` : ""}
var<workgroup> rescale_flag: atomic<u32>; // nonzero when some row's m moved in the current tile
fn row_sum(r: u32) -> f32 {
  var l = 0.0;
  for (var x = 0u; x < LANES; x++) { l += lane_sum[r * LANES + x]; }
  return l;
}`,
    body: `${wgslQueryBlockOpening(layout)}
  // stage Q as f16 (rows past T are zero); clear the row statistics and the flag
${wgslTileRows("kv_tile", "BLOCK_Q", querySources("first", false), "first + r < u.q_len")}
  for (var r = lidx; r < BLOCK_Q; r += WG_X) { row_max[r] = NEG_BIG; }
  for (var e = lidx; e < BLOCK_Q * LANES; e += WG_X) { lane_sum[e] = 0.0; }
  if (lidx == 0u) { atomicStore(&rescale_flag, 0u); }
  workgroupBarrier();
  ${scope}{
${loadLefts("q", dChunks, "kv_tile", (x) => `row0 * TILE_STRIDE + ${x * c.K}u`, "TILE_STRIDE", types, "    ")}
${lines(blocks.map((y) => `    var o${y} = ${types.result}();`))}
    for (var j0 = j_start; j0 < j_end; j0 += BLOCK_K) {
      let n = min(BLOCK_K, j_end - j0);
      workgroupBarrier(); // Q, or the previous tile's K, V, P and O blocks, are no longer read
${wgslTileRows("kv_tile", "BLOCK_K", keyValueSources("j0"))}
      workgroupBarrier();
${lines(scores)}
      workgroupBarrier();
${softmaxStep(lanes)}
      workgroupBarrier(); // P, row_scale and the flag are written, S is read
      if (workgroupUniformLoad(&rescale_flag) != 0u) {
        // O's rows scaled through s_tile, a column block at a time; the flag is cleared once every
        // invocation has read it (after a barrier of the block loop, not workgroupUniformLoad's own)
${oBlocksThroughScores("        ", () => ["s_tile[at] *= row_scale[r];"], true, "if (lidx == 0u) { atomicStore(&rescale_flag, 0u); }")}
      }
${loadLefts("p", BK / c.K, "p_tile", (x) => `row0 * P_STRIDE + ${x * c.K}u`, "P_STRIDE", types)}
${lines(update)}
    }
    // A row that sees no key: zeros and lse = -inf, as the scalar kernel writes. row_scale now
    // holds the row's sum (the last tile's scales were read before that tile's barriers).
    for (var r = lidx; r < BLOCK_Q; r += WG_X) {
      let i = first + r;
      let l = row_sum(r);
      row_scale[r] = l;
      if (i < u.q_len) { lse[(b * u.query_heads + h) * u.q_len + i] = select(negative_infinity(), row_max[r] + log(l), l > 0.0); }
    }
    workgroupBarrier(); // s_tile's last rescaled block is loaded back (a subgroup's lanes included), and the sums are written
    // O / sum out, a column block at a time
${oBlocksThroughScores("    ", (y) => ["let i = first + r;", "let l = row_scale[r];", `if (i < u.q_len) { store_o(o_at(b, i, h) + ${y * c.N}u + e % ${c.N}u, select(0.0, s_tile[at] / l, l > 0.0)); }`], false)}
  }`,
  };
}

/**
 * The forward kernel `attentionKernelChoice` picks for `variant` on `adapter`, on subgroup
 * matrices with the `tuned` layout where the device tuned one (runtime/gpu/attention-tuning.ts).
 */
export function attentionForwardKernelFor(
  adapter: AttentionAdapter,
  variant: AttentionVariant,
  env: Readonly<Record<string, string | undefined>> = process.env,
  tuned?: SubgroupAttentionLayout,
): Result<KernelSpec> {
  const choice = attentionKernelChoice(adapter, variant.headDim, env, { preferred: tuned });
  if (!choice.ok) return choice;
  return ok(choice.value === "scalar" ? attentionForwardKernel(variant) : attentionForwardSubgroupKernel(variant, choice.value));
}
