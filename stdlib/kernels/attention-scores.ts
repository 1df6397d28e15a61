// Attention through a materialized score matrix: for a chunk of query heads of one batch row,
//   S = Q K^T (a batched matmul), P = softmax(scale S + bias, masked) (scoresSoftmaxKernel),
//   O = P V (a batched matmul),
// and in the backward, with P recomputed from S and the forward's log-sum-exp,
//   dP = dO V^T, dS = P * (dP - delta) (scoresGradKernel), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO.
// The products run on the engine's matmul kernels (subgroup matrices where the adapter has them),
// which reach far higher rates than a fused kernel's small per-tile products; the price is the
// (heads, T, S) f32 scores in memory and the causal half computed and masked rather than skipped.
// Which of this and the fused kernels is faster is the device's to time (runtime/gpu/attention-path-tuning.ts).
// The runtime side is runtime/execute/library/attention.ts; both kernels here work on
// rows (head, query) of one chunk, and their float64 references follow them.
import { keyAllowed, maskBindings, scoreBias, wgslMask, type AttentionMask, type MaskFlags } from "./attention-mask.ts";
import { elementwiseKernel } from "./elementwise.ts";
import { linearGrid, WGSL_FLAT_WORKGROUP, type KernelSpec, type UniformValues } from "./kernel.ts";
import { wgslAttentionConstants } from "./attention-common.ts";

/** Where a chunk's rows sit in the attention call: batch row, first query head, sizes. */
export interface ScoresChunk {
  /** Batch rows of the call (the mask's words are laid out by it). */
  batch: number;
  /** The batch row every score row of the chunk belongs to. */
  batchRow: number;
  /** The chunk's first query head; its rows are heads firstHead.. of that batch row. */
  firstHead: number;
  /** Query heads in the chunk. */
  heads: number;
  /** Query heads of the call (the log-sum-exp and delta are (B, Hq, T)). */
  queryHeads: number;
  queryLength: number;
  keyLength: number;
  queryOffset: number;
  scale: number;
}

/** The most bytes one chunk's f32 scores take: a chunk has as many heads as fit. */
export const SCORES_CHUNK_BYTES = 128 * 2 ** 20;

/** The variable and value that force attention through the score matrix on any adapter. */
export const SCORES_REQUEST = { variable: "SFT_ATTENTION", value: "scores" } as const;

/** Which attention launches take the score-matrix path where it applies: all (true), none, or those of the listed head dims. */
export interface AttentionScoresChoice {
  forward: boolean | readonly number[];
  backward: boolean | readonly number[];
  /**
   * A backward with grouped queries, whose dK and dV add the group's heads a product at a time
   * (timed apart); unset, as `backward` where that is all or none, else none.
   */
  groupedBackward?: boolean | readonly number[];
  /** The most bytes of one chunk's scores (default SCORES_CHUNK_BYTES). */
  chunkBytes?: number;
}

/** Whether an attention launch of `direction` at `headDim` (`grouped`: with grouped queries) takes the score-matrix path under `choice`. */
export function takesScores(choice: AttentionScoresChoice, direction: "forward" | "backward", headDim: number, grouped: boolean): boolean {
  const which = direction === "forward" ? choice.forward : grouped ? (choice.groupedBackward ?? (typeof choice.backward === "boolean" ? choice.backward : false)) : choice.backward;
  return typeof which === "boolean" ? which : which.includes(headDim);
}

/** Invocations per score row in the softmax kernel (a power of two: its sums are a tree). */
const ROW_INVOCATIONS = 128;

const CHUNK_UNIFORMS = {
  rows: "u32",
  q_len: "u32",
  key_len: "u32",
  query_offset: "u32",
  scale: "f32",
  batch: "u32",
  batch_row: "u32",
  first_head: "u32",
  query_heads: "u32",
} as const;

export function scoresChunkUniforms(c: ScoresChunk): UniformValues {
  return {
    rows: c.heads * c.queryLength,
    q_len: c.queryLength,
    key_len: c.keyLength,
    query_offset: c.queryOffset,
    scale: c.scale,
    batch: c.batch,
    batch_row: c.batchRow,
    first_head: c.firstHead,
    query_heads: c.queryHeads,
  };
}

/**
 * The softmax over each score row (heads x T rows of S keys, f32, in place), one workgroup a row.
 * "forward": P = exp(s - m) / l with s = scale S + bias where the key is visible (0 elsewhere),
 * and the row's log-sum-exp m + log l written at (b, h, t) of `lse` (-inf for a row that sees no
 * key, as the fused kernels write). "recompute": P = exp(s - lse) from the saved `lse`.
 * Bindings: scores (f32, read_write), lse (f32; written by the forward), then the mask's.
 */
export function scoresSoftmaxKernel(flags: MaskFlags, mode: "forward" | "recompute"): KernelSpec {
  const forward = mode === "forward";
  return {
    name: "attention_scores_softmax",
    variant: { ...flags, mode },
    uniforms: CHUNK_UNIFORMS,
    bindings: [{ name: "scores", dtype: "f32", access: "read_write" }, { name: "lse", dtype: "f32", access: forward ? "read_write" : "read" }, ...maskBindings(flags)],
    workgroupSize: [ROW_INVOCATIONS, 1, 1],
    dispatch: (u) => linearGrid(u.rows),
    declarations: `${wgslAttentionConstants()}
${WGSL_FLAT_WORKGROUP}
${wgslMask(flags)}
${forward ? `var<workgroup> row_max: array<f32, ${ROW_INVOCATIONS}>;\nvar<workgroup> row_sum: array<f32, ${ROW_INVOCATIONS}>;` : ""}
// the scaled, biased score of key j for query position p of head h (whether p may see j is key_allowed's)
fn score_at(at: u32, h: u32, p: u32, j: u32) -> f32 {
  return scores[at + j] * u.scale + score_bias(h, p, j);
}`,
    body: `
  let row = flat_workgroup_id(wid, nwg); // (head in chunk) * T + t
  if (row >= u.rows) { return; }
  let t = row % u.q_len;
  let b = u.batch_row;
  let h = u.first_head + row / u.q_len;
  let p = t + u.query_offset;
  let at = row * u.key_len;
  let lse_at = (b * u.query_heads + h) * u.q_len + t;
${forward ? FORWARD_BODY : RECOMPUTE_BODY}`,
  };
}

// Each invocation keeps a running max and sum over its keys; the workgroup merges the pairs in a
// tree, then every invocation writes its keys' probabilities.
const FORWARD_BODY = `
  var m = NEG_BIG;
  var l = 0.0;
  for (var j = lidx; j < u.key_len; j += WG_X) {
    if (key_allowed(b, p, j)) {
      let s = score_at(at, h, p, j);
      let m_new = max(m, s);
      l = l * exp(m - m_new) + exp(s - m_new);
      m = m_new;
    }
  }
  row_max[lidx] = m;
  row_sum[lidx] = l;
  for (var half = WG_X / 2u; half > 0u; half >>= 1u) {
    workgroupBarrier();
    if (lidx < half) {
      let m2 = row_max[lidx + half];
      let m_new = max(row_max[lidx], m2);
      row_sum[lidx] = row_sum[lidx] * exp(row_max[lidx] - m_new) + row_sum[lidx + half] * exp(m2 - m_new);
      row_max[lidx] = m_new;
    }
  }
  workgroupBarrier();
  let m_row = row_max[0];
  let l_row = row_sum[0];
  let sees = l_row != 0.0; // 0: the row sees no key (a NaN passes on, as in the fused kernels)
  for (var j = lidx; j < u.key_len; j += WG_X) {
    let visible = sees && key_allowed(b, p, j);
    scores[at + j] = select(0.0, exp(score_at(at, h, p, j) - m_row) / l_row, visible);
  }
  if (lidx == 0u) {
    lse[lse_at] = select(negative_infinity(), m_row + log(l_row), sees);
  }`;

const RECOMPUTE_BODY = `
  let lse_row = lse[lse_at];
  let sees = lse_row > NEG_BIG; // -inf: the row saw no key
  for (var j = lidx; j < u.key_len; j += WG_X) {
    let visible = sees && key_allowed(b, p, j);
    scores[at + j] = select(0.0, exp(score_at(at, h, p, j) - lse_row), visible);
  }`;

/**
 * dS = P * (dP - delta[b, h, t]) over a chunk's (heads, T, S) rows, into `grad` (which holds dP).
 * The softmax scale is left to the products that read dS (dQ = scale dS K, dK = scale dSᵀ Q take
 * it as their alpha), so dS is rounded to f16 on subgroup matrices as the fused kernels round it,
 * before scaling. Bindings: probs (f32, read), grad (f32, read_write), delta (f32 (B, Hq, T), read).
 */
export function scoresGradKernel(): KernelSpec {
  return elementwiseKernel({
    name: "attention_scores_grad",
    variant: {},
    uniforms: CHUNK_UNIFORMS,
    bindings: [
      { name: "probs", dtype: "f32", access: "read" },
      { name: "grad", dtype: "f32", access: "read_write" },
      { name: "delta", dtype: "f32", access: "read" },
    ],
    perElement: `  let row = i / u.key_len;
  let h = u.first_head + row / u.q_len;
  let d = delta[(u.batch_row * u.query_heads + h) * u.q_len + row % u.q_len];
  grad[i] = probs[i] * (grad[i] - d);`,
  });
}

/** The element count of scoresGradKernel's dispatch over chunk `c`, with its uniforms. */
export function scoresGradUniforms(c: ScoresChunk): UniformValues {
  return { n: c.heads * c.queryLength * c.keyLength, ...scoresChunkUniforms(c) };
}

// ---- float64 CPU references ----

/**
 * scoresSoftmaxKernel's result on `scores` (heads, T, S) of chunk `c`: the probabilities, and the
 * chunk's log-sum-exp per row (forward; in "recompute" mode `lse` (heads, T) is read instead).
 */
export function scoresSoftmaxRef(scores: ArrayLike<number>, c: ScoresChunk, mask: AttentionMask, lse?: ArrayLike<number>): { probs: Float64Array; lse: Float64Array } {
  const { keyLength: S } = c;
  const rows = c.heads * c.queryLength;
  const probs = new Float64Array(rows * S);
  const rowLse = new Float64Array(rows);
  for (let row = 0; row < rows; row++) {
    const h = c.firstHead + Math.floor(row / c.queryLength);
    const p = (row % c.queryLength) + c.queryOffset;
    const visible = (j: number) => keyAllowed(mask, S, c.batchRow, p, j);
    const s = (j: number) => scores[row * S + j] * c.scale + scoreBias(mask, h, p, j);
    let norm = lse?.[row];
    if (norm === undefined) {
      let max = -Infinity;
      for (let j = 0; j < S; j++) if (visible(j)) max = Math.max(max, s(j));
      let sum = 0;
      for (let j = 0; j < S; j++) if (visible(j)) sum += Math.exp(s(j) - max);
      norm = sum > 0 ? max + Math.log(sum) : -Infinity;
    }
    rowLse[row] = norm;
    if (norm === -Infinity) continue;
    for (let j = 0; j < S; j++) if (visible(j)) probs[row * S + j] = Math.exp(s(j) - norm);
  }
  return { probs, lse: rowLse };
}

/** scoresGradKernel's result: P * (dP - delta) with `delta` (heads, T) of chunk `c`. */
export function scoresGradRef(probs: ArrayLike<number>, dp: ArrayLike<number>, delta: ArrayLike<number>, c: ScoresChunk): Float64Array {
  const S = c.keyLength;
  return Float64Array.from({ length: probs.length }, (_, i) => probs[i] * (dp[i] - delta[Math.floor(i / S)]));
}
