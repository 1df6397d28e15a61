// Float64 reference semantics of the library-kernel ops (norms, RoPE, attention, cross-entropy,
// embedding) and their backward ops. Plain loops, written for clarity: the interpreter uses
// them as the ground truth for whole-model checks.
import { invariant } from "../diagnostics.ts";
import type { AttentionAttrs, RopeAttrs, Shape } from "./node.ts";

type F64 = Float64Array;

/** rows x cols view of a tensor normalized over its last axis. */
function rowsOf(shape: Shape): [number, number] {
  const cols = shape[shape.length - 1];
  return [shape.reduce((a, b) => a * b, 1) / cols, cols];
}

/** y = x * rsqrt(mean(x²) + eps) * w over the last axis. */
export function rmsNorm(x: F64, w: F64, shape: Shape, eps: number): F64 {
  const [rows, c] = rowsOf(shape);
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < c; j++) ss += x[r * c + j] ** 2;
    const inv = 1 / Math.sqrt(ss / c + eps);
    for (let j = 0; j < c; j++) y[r * c + j] = x[r * c + j] * inv * w[j];
  }
  return y;
}

/** y = (x - mean) * rsqrt(var + eps) * w + b over the last axis (biased variance, as PyTorch). */
export function layerNorm(x: F64, w: F64, b: F64, shape: Shape, eps: number): F64 {
  const [rows, c] = rowsOf(shape);
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const { mu, inv } = moments(x, r * c, c, eps);
    for (let j = 0; j < c; j++) y[r * c + j] = (x[r * c + j] - mu) * inv * w[j] + b[j];
  }
  return y;
}

function moments(x: F64, at: number, c: number, eps: number): { mu: number; inv: number } {
  let mu = 0;
  for (let j = 0; j < c; j++) mu += x[at + j];
  mu /= c;
  let v = 0;
  for (let j = 0; j < c; j++) v += (x[at + j] - mu) ** 2;
  return { mu, inv: 1 / Math.sqrt(v / c + eps) };
}

/** Gradient of a norm with respect to input `wrt` (0 = x, 1 = weight, 2 = bias). */
export function normBackward(kind: "rms" | "layer", wrt: number, g: F64, x: F64, w: F64, shape: Shape, eps: number): F64 {
  const [rows, c] = rowsOf(shape);
  const out = new Float64Array(wrt === 0 ? x.length : c);
  for (let r = 0; r < rows; r++) {
    const at = r * c;
    let mu = 0;
    let inv: number;
    if (kind === "rms") {
      let ss = 0;
      for (let j = 0; j < c; j++) ss += x[at + j] ** 2;
      inv = 1 / Math.sqrt(ss / c + eps);
    } else ({ mu, inv } = moments(x, at, c, eps));
    const xhat = (j: number) => (x[at + j] - mu) * inv;
    if (wrt === 1) for (let j = 0; j < c; j++) out[j] += g[at + j] * xhat(j);
    else if (wrt === 2) for (let j = 0; j < c; j++) out[j] += g[at + j];
    else {
      // dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)); RMS has no mean term.
      let meanD = 0;
      let meanDX = 0;
      for (let j = 0; j < c; j++) {
        const d = g[at + j] * w[j];
        meanD += d;
        meanDX += d * xhat(j);
      }
      meanD = kind === "rms" ? 0 : meanD / c;
      meanDX /= c;
      for (let j = 0; j < c; j++) out[at + j] = inv * (g[at + j] * w[j] - meanD - xhat(j) * meanDX);
    }
  }
  return out;
}

/** Rotary embedding on x (B, T, H, D) with positions (B, T, sections); models.md §6.2. */
export function rope(x: F64, positions: F64, shape: Shape, a: RopeAttrs): F64 {
  const [b, t, h, d] = shape;
  const y = Float64Array.from(x);
  const width = d / a.sections;
  const half = a.rotaryDim / 2;
  const sign = a.inverse ? -1 : 1;
  for (let bt = 0; bt < b * t; bt++) {
    for (let s = 0; s < a.sections; s++) {
      const p = positions[bt * a.sections + s];
      for (let i = 0; i < half; i++) {
        const angle = p * Math.pow(a.base, (-2 * i) / a.rotaryDim);
        const cos = Math.cos(angle);
        const sin = sign * Math.sin(angle);
        // half-rotation pairs (i, i + rd/2); interleaved (GPT-J rotate_every_two) pairs (2i, 2i+1)
        const [i0, i1] = a.style === "half" ? [i, i + half] : [2 * i, 2 * i + 1];
        for (let hh = 0; hh < h; hh++) {
          const at = (bt * h + hh) * d + s * width;
          const x0 = x[at + i0];
          const x1 = x[at + i1];
          y[at + i0] = x0 * cos - x1 * sin;
          y[at + i1] = x1 * cos + x0 * sin;
        }
      }
    }
  }
  return y;
}

/** Baichuan-13B `_get_interleave(n)` slopes, including non-power-of-two head counts (models.md §2.2). */
export function alibiSlopes(heads: number): number[] {
  const powerOfTwo = (n: number) => {
    const start = 2 ** -(2 ** -(Math.log2(n) - 3));
    return Array.from({ length: n }, (_, i) => start ** (i + 1));
  };
  if (Number.isInteger(Math.log2(heads))) return powerOfTwo(heads);
  const closest = 2 ** Math.floor(Math.log2(heads));
  const extra = alibiSlopes(2 * closest).filter((_, i) => i % 2 === 0).slice(0, heads - closest);
  return [...powerOfTwo(closest), ...extra];
}

export interface AttentionTensors {
  q: F64; // (B, T, Hq, D)
  k: F64; // (B, S, Hkv, D)
  v: F64; // (B, S, Hkv, D)
  qShape: Shape;
  kShape: Shape;
  /** prefixLen (B), validLen (B), segmentIds (B, T), present as the attributes ask. */
  masks: F64[];
}

/** Whether query i of batch row b sees key j, and the additive bias (ALiBi) for head h. */
function maskFn(t: AttentionTensors, a: AttentionAttrs): (b: number, i: number, j: number) => boolean {
  const [, tq] = t.qShape;
  const s = t.kShape[1];
  let m = 0;
  const prefix = a.prefix ? t.masks[m++] : undefined;
  const valid = a.padding ? t.masks[m++] : undefined;
  const seg = a.segments ? t.masks[m++] : undefined;
  const offset = s - tq; // queries are the last T of S positions (decoding against a cache)
  return (b, i, j) => {
    if (a.causal && j > i + offset && !(prefix && j < prefix[b])) return false;
    if (valid && j >= valid[b]) return false;
    if (seg && seg[b * tq + i] !== seg[b * tq + j]) return false;
    return true;
  };
}

/** softmax(q kᵀ · scale + alibi, masked) v; a query that sees no key gets zeros. */
export function attention(t: AttentionTensors, a: AttentionAttrs): F64 {
  return attentionPass(t, a).out;
}

/** dq, dk or dv of attention given dOut and the forward output (FlashAttention-2 formulas). */
export function attentionBackward(t: AttentionTensors, a: AttentionAttrs, dOut: F64, out: F64, wrt: number): F64 {
  const { dq, dk, dv } = attentionPass(t, a, { dOut, out });
  return [dq, dk, dv][wrt];
}

function attentionPass(t: AttentionTensors, a: AttentionAttrs, grad?: { dOut: F64; out: F64 }) {
  const [nb, tq, hq, d] = t.qShape;
  const [, s, hkv] = t.kShape;
  const group = hq / hkv;
  const visible = maskFn(t, a);
  const slopes = a.alibi ? alibiSlopes(hq) : undefined;
  const out = new Float64Array(t.q.length);
  const dq = new Float64Array(t.q.length);
  const dk = new Float64Array(t.k.length);
  const dv = new Float64Array(t.v.length);
  const p = new Float64Array(s);
  for (let b = 0; b < nb; b++) {
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      const qAt = (i: number) => ((b * tq + i) * hq + h) * d;
      const kAt = (j: number) => ((b * s + j) * hkv + kh) * d;
      for (let i = 0; i < tq; i++) {
        let mx = -Infinity;
        for (let j = 0; j < s; j++) {
          if (!visible(b, i, j)) {
            p[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let c = 0; c < d; c++) dot += t.q[qAt(i) + c] * t.k[kAt(j) + c];
          p[j] = dot * a.scale + (slopes ? slopes[h] * j : 0);
          mx = Math.max(mx, p[j]);
        }
        if (mx === -Infinity) continue; // fully masked row: output and gradients stay zero
        let z = 0;
        for (let j = 0; j < s; j++) z += p[j] = Math.exp(p[j] - mx);
        for (let j = 0; j < s; j++) p[j] /= z;
        for (let j = 0; j < s; j++) for (let c = 0; c < d; c++) out[qAt(i) + c] += p[j] * t.v[kAt(j) + c];
        if (!grad) continue;
        let rowD = 0; // D_i = dO_i · O_i
        for (let c = 0; c < d; c++) rowD += grad.dOut[qAt(i) + c] * grad.out[qAt(i) + c];
        for (let j = 0; j < s; j++) {
          if (p[j] === 0) continue;
          let dp = 0;
          for (let c = 0; c < d; c++) {
            dp += grad.dOut[qAt(i) + c] * t.v[kAt(j) + c];
            dv[kAt(j) + c] += p[j] * grad.dOut[qAt(i) + c];
          }
          const ds = p[j] * (dp - rowD) * a.scale;
          for (let c = 0; c < d; c++) {
            dq[qAt(i) + c] += ds * t.k[kAt(j) + c];
            dk[kAt(j) + c] += ds * t.q[qAt(i) + c];
          }
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

/** Mean over non-ignored rows of logsumexp(logits) - logits[label]; 0 when every row is ignored. */
export function crossEntropy(logits: F64, labels: F64, shape: Shape, ignoreIndex: number): number {
  const [n, v] = shape;
  let total = 0;
  let count = 0;
  for (let r = 0; r < n; r++) {
    if (labels[r] === ignoreIndex) continue;
    total += logSumExp(logits, r * v, v) - logits[r * v + labelAt(labels, r, v)];
    count++;
  }
  return count ? total / count : 0;
}

/** d(loss)/d(logits) scaled by the incoming scalar gradient. */
export function crossEntropyBackward(g: number, logits: F64, labels: F64, shape: Shape, ignoreIndex: number): F64 {
  const [n, v] = shape;
  const out = new Float64Array(logits.length);
  const count = labels.reduce((c, l) => c + (l === ignoreIndex ? 0 : 1), 0);
  for (let r = 0; r < n; r++) {
    if (labels[r] === ignoreIndex) continue;
    const lse = logSumExp(logits, r * v, v);
    for (let j = 0; j < v; j++) out[r * v + j] = (g / count) * Math.exp(logits[r * v + j] - lse);
    out[r * v + labelAt(labels, r, v)] -= g / count;
  }
  return out;
}

function labelAt(labels: F64, r: number, v: number): number {
  const l = labels[r];
  invariant(Number.isInteger(l) && l >= 0 && l < v, `label ${l} at row ${r} is outside [0, ${v})`);
  return l;
}

function logSumExp(x: F64, at: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[at + j]);
  let z = 0;
  for (let j = 0; j < n; j++) z += Math.exp(x[at + j] - m);
  return m + Math.log(z);
}

/** Rows of a (V, C) table gathered at ids. */
export function embedding(table: F64, ids: F64, cols: number): F64 {
  const rows = table.length / cols;
  const y = new Float64Array(ids.length * cols);
  ids.forEach((id, i) => {
    invariant(Number.isInteger(id) && id >= 0 && id < rows, `token id ${id} is outside the table of ${rows} rows`);
    y.set(table.subarray(id * cols, (id + 1) * cols), i * cols);
  });
  return y;
}

/** Scatter-add of row gradients into a (rows, C) table gradient. */
export function embeddingBackward(g: F64, ids: F64, rows: number, cols: number): F64 {
  const out = new Float64Array(rows * cols);
  ids.forEach((id, i) => {
    for (let c = 0; c < cols; c++) out[id * cols + c] += g[i * cols + c];
  });
  return out;
}
