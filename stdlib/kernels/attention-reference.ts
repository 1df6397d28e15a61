// Float64 CPU reference of attention: the plain softmax(Q K^T * scale + bias + mask) V, one
// query row at a time, and its backward derived by hand from the softmax Jacobian. The fused
// kernels (attention-forward.ts, attention-backward.ts, attention-decode.ts) are tested against it.
import { keyAllowed, scoreBias, type AttentionMask } from "./attention-mask.ts";

/** Sizes of one attention call. Hq is a multiple of Hkv; query head h reads KV head h / (Hq/Hkv). */
export interface AttentionShape {
  batch: number;
  queryHeads: number;
  kvHeads: number;
  /** T: query rows. */
  queryLength: number;
  /** S: key rows (cache included). */
  keyLength: number;
  headDim: number;
}

/** One attention call: dense q (B, Hq, T, D), k and v (B, Hkv, S, D). */
export interface AttentionProblem {
  shape: AttentionShape;
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  scale: number;
  mask: AttentionMask;
}

export interface AttentionForward {
  /** (B, Hq, T, D); a query row that sees no key gets zeros. */
  out: Float64Array;
  /** (B, Hq, T) log of the softmax denominator; -Infinity for a row that sees no key. */
  logSumExp: Float64Array;
}

export interface AttentionGradients {
  dq: Float64Array; // (B, Hq, T, D)
  dk: Float64Array; // (B, Hkv, S, D)
  dv: Float64Array; // (B, Hkv, S, D)
}

/** The probabilities of one query row over all S keys (0 where masked), and its log-sum-exp. */
function softmaxRow({ shape, q, k, scale, mask }: AttentionProblem, b: number, h: number, i: number): { p: Float64Array; lse: number } {
  const { queryHeads, kvHeads, queryLength: T, keyLength: S, headDim: D } = shape;
  const kvh = Math.floor(h / (queryHeads / kvHeads));
  const qRow = ((b * queryHeads + h) * T + i) * D;
  const pos = i + mask.queryOffset;
  const scores = new Float64Array(S).fill(-Infinity);
  let max = -Infinity;
  for (let j = 0; j < S; j++) {
    if (!keyAllowed(mask, S, b, pos, j)) continue;
    const kRow = ((b * kvHeads + kvh) * S + j) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qRow + d] * k[kRow + d];
    scores[j] = dot * scale + scoreBias(mask, h, pos, j);
    max = Math.max(max, scores[j]);
  }
  const p = new Float64Array(S);
  if (max === -Infinity) return { p, lse: -Infinity };
  let sum = 0;
  for (let j = 0; j < S; j++) sum += p[j] = Math.exp(scores[j] - max);
  for (let j = 0; j < S; j++) p[j] /= sum;
  return { p, lse: max + Math.log(sum) };
}

export function attentionForwardReference(problem: AttentionProblem): AttentionForward {
  const { shape, v } = problem;
  const { batch, queryHeads, kvHeads, queryLength: T, keyLength: S, headDim: D } = shape;
  const out = new Float64Array(batch * queryHeads * T * D);
  const logSumExp = new Float64Array(batch * queryHeads * T);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < queryHeads; h++) {
      const kvh = Math.floor(h / (queryHeads / kvHeads));
      for (let i = 0; i < T; i++) {
        const { p, lse } = softmaxRow(problem, b, h, i);
        const row = (b * queryHeads + h) * T + i;
        logSumExp[row] = lse;
        for (let j = 0; j < S; j++) {
          if (p[j] === 0) continue;
          const vRow = ((b * kvHeads + kvh) * S + j) * D;
          for (let d = 0; d < D; d++) out[row * D + d] += p[j] * v[vRow + d];
        }
      }
    }
  return { out, logSumExp };
}

/**
 * Gradients for dOut (B, Hq, T, D). With P = softmax(S) per row and dP = dOut V^T:
 * dV = P^T dOut, dS = P * (dP - rowsum(P * dP)), dQ = scale dS K, dK = scale dS^T Q; the
 * KV-head gradients sum over the query heads that share the KV head.
 */
export function attentionBackwardReference(problem: AttentionProblem, dOut: Float64Array): AttentionGradients {
  const { shape, q, k, v, scale } = problem;
  const { batch, queryHeads, kvHeads, queryLength: T, keyLength: S, headDim: D } = shape;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  const dp = new Float64Array(S);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < queryHeads; h++) {
      const kvh = Math.floor(h / (queryHeads / kvHeads));
      for (let i = 0; i < T; i++) {
        const { p } = softmaxRow(problem, b, h, i);
        const row = ((b * queryHeads + h) * T + i) * D;
        let rowDot = 0; // sum_j P_ij dP_ij
        for (let j = 0; j < S; j++) {
          const kvRow = ((b * kvHeads + kvh) * S + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += dOut[row + d] * v[kvRow + d];
          dp[j] = dot;
          rowDot += p[j] * dot;
        }
        for (let j = 0; j < S; j++) {
          if (p[j] === 0) continue;
          const kvRow = ((b * kvHeads + kvh) * S + j) * D;
          const ds = p[j] * (dp[j] - rowDot) * scale;
          for (let d = 0; d < D; d++) {
            dv[kvRow + d] += p[j] * dOut[row + d];
            dq[row + d] += ds * k[kvRow + d];
            dk[kvRow + d] += ds * q[row + d];
          }
        }
      }
    }
  return { dq, dk, dv };
}
