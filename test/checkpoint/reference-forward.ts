// A float64 CPU forward pass driven only by a family's declared traits (norm, residual, QKV
// layout, positions, mask, MLP, biases, head tying). It never looks at the family's name:
// matching the per-family PyTorch goldens shows the declarations carry what a graph builder needs.
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { qkvRowOffsets, type Family, type ParamRole } from "../../stdlib/families/family.ts";

/** Weights by role: `role` for global tensors, `role@layer` for per-layer ones. */
export type Weights = Map<string, Float64Array>;

export function weightKey(role: ParamRole, layer: number | null): string {
  return layer === null ? role : `${role}@${layer}`;
}

/** Logits (T, vocab) of one sequence of token ids. */
export function referenceForward(family: Family, config: ModelConfig, weights: Weights, ids: number[]): Float64Array[] {
  const d = config.dims;
  const get = (role: ParamRole, layer: number | null = null) => weights.get(weightKey(role, layer));
  const need = (role: ParamRole, layer: number | null = null) => get(role, layer) ?? missing(weightKey(role, layer));
  const norm = (x: Float64Array[], prefix: "attn_norm" | "mlp_norm" | "final_norm", layer: number | null) =>
    x.map((row) => normalize(family.norm.kind, row, need(`${prefix}.weight`, layer), get(`${prefix}.bias`, layer), d.normEps));
  const embed = need("embed.weight");
  let h = ids.map((id) => embed.slice(id * d.hidden, (id + 1) * d.hidden));
  const positions = positionStreams(family, config, ids);
  const allowed = attentionMask(family, config, ids);

  for (let layer = 0; layer < d.layers; layer++) {
    const attn = (x: Float64Array[]) => {
      const qkv = linear(x, need("attn.qkv.weight", layer), get("attn.qkv.bias", layer));
      return linear(attention(family, config, qkv, positions, allowed), need("attn.out.weight", layer), get("attn.out.bias", layer));
    };
    const mlp = (x: Float64Array[]) => feedForward(family, config, x, (role) => get(role, layer));
    const residual = family.residual;
    if (residual.kind === "pre_norm") {
      h = add(h, attn(norm(h, "attn_norm", layer)));
      h = add(h, mlp(norm(h, "mlp_norm", layer)));
    } else if (residual.kind === "parallel") {
      const a = norm(h, "attn_norm", layer);
      h = add(add(h, attn(a)), mlp(a));
    } else {
      const alpha = residual.alpha(d);
      const a = norm(h, "attn_norm", layer);
      h = add(scale(a, alpha), attn(a));
      const m = norm(h, "mlp_norm", layer);
      h = add(scale(m, alpha), mlp(m));
    }
  }
  const head = config.tiedHead ? embed : need("head.weight");
  return linear(norm(h, "final_norm", null), head, config.tiedHead ? undefined : get("head.bias"));
}

function normalize(kind: "rmsnorm" | "layernorm", x: Float64Array, weight: Float64Array, bias: Float64Array | undefined, eps: number): Float64Array {
  const n = x.length;
  const mean = kind === "layernorm" ? x.reduce((s, v) => s + v, 0) / n : 0;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  const r = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * r * weight[i] + (bias ? bias[i] : 0));
}

/** x (T, in) times W (out, in) transposed, plus bias. */
function linear(x: Float64Array[], weight: Float64Array, bias?: Float64Array): Float64Array[] {
  const inputs = x[0].length;
  const outputs = weight.length / inputs;
  return x.map((row) => {
    const out = new Float64Array(outputs);
    for (let o = 0; o < outputs; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inputs; i++) s += row[i] * weight[o * inputs + i];
      out[o] = s;
    }
    return out;
  });
}

const add = (a: Float64Array[], b: Float64Array[]) => a.map((row, t) => row.map((v, i) => v + b[t][i]));
const scale = (a: Float64Array[], k: number) => a.map((row) => row.map((v) => v * k));

/** One or two position streams per token (GLM's 2D positions follow its prefix tokens). */
function positionStreams(family: Family, config: ModelConfig, ids: number[]): number[][] {
  const mask = family.attention.mask;
  if (mask.kind === "causal") return [ids.map((_, t) => t)];
  const context = ids.indexOf(config.tokens.specials[mask.startToken]);
  const maskAt = ids.indexOf(config.tokens.specials[mask.maskToken]);
  return [ids.map((_, t) => (t >= context ? maskAt : t)), ids.map((_, t) => (t < context ? 0 : t - context + 1))];
}

function attentionMask(family: Family, config: ModelConfig, ids: number[]): (t: number, s: number) => boolean {
  const mask = family.attention.mask;
  if (mask.kind === "causal") return (t, s) => s <= t;
  const context = ids.indexOf(config.tokens.specials[mask.startToken]);
  return (t, s) => s <= t || s < context;
}

/** Rotates one head vector in place: `dims` dimensions starting at `start`, for position `pos`. */
function rotate(x: Float64Array, start: number, dims: number, pos: number, family: Family): void {
  const p = family.position;
  if (p.kind !== "rope") return;
  const half = dims / 2;
  let inv = Array.from({ length: half }, (_, i) => 1 / p.base ** ((2 * i) / dims));
  if (p.invFreq === "f16") inv = Array.from(roundToDType("f16", inv.map(Math.fround)));
  const pairs = Array.from({ length: half }, (_, i) => (p.pairing === "half" ? [start + i, start + i + half] : [start + 2 * i, start + 2 * i + 1]));
  pairs.forEach(([a, b], i) => {
    const c = Math.cos(pos * inv[i]);
    const s = Math.sin(pos * inv[i]);
    const [xa, xb] = [x[a], x[b]];
    x[a] = xa * c - xb * s;
    x[b] = xb * c + xa * s;
  });
}

/** ALiBi slopes: a geometric series, padded from the next power of two for other head counts. */
function alibiSlopes(n: number): number[] {
  const powerOfTwo = (m: number) => {
    const start = 2 ** -(2 ** -(Math.log2(m) - 3));
    return Array.from({ length: m }, (_, i) => start ** (i + 1));
  };
  if (Number.isInteger(Math.log2(n))) return powerOfTwo(n);
  const closest = 2 ** Math.floor(Math.log2(n));
  return [...powerOfTwo(closest), ...alibiSlopes(2 * closest).filter((_, i) => i % 2 === 0).slice(0, n - closest)];
}

/** Multi-head attention over the fused projection `qkv` (T, rows); returns (T, heads·headDim). */
function attention(family: Family, config: ModelConfig, qkv: Float64Array[], positions: number[][], allowed: (t: number, s: number) => boolean): Float64Array[] {
  const d = config.dims;
  const offsets = qkvRowOffsets(family.qkv, d);
  const T = qkv.length;
  const slice = (t: number, at: number) => qkv[t].slice(at, at + d.headDim);
  const rope = (v: Float64Array, t: number) => {
    positions.forEach((stream, i) => rotate(v, i * d.rotaryDims, d.rotaryDims, stream[t], family));
    return v;
  };
  const slopes = family.position.kind === "alibi" ? alibiSlopes(d.heads) : null;
  const out = Array.from({ length: T }, () => new Float64Array(d.heads * d.headDim));
  for (let h = 0; h < d.heads; h++) {
    const group = Math.floor(h / (d.heads / d.kvHeads));
    const keys = Array.from({ length: T }, (_, s) => rope(slice(s, offsets.k[group]), s));
    const values = Array.from({ length: T }, (_, s) => slice(s, offsets.v[group]));
    for (let t = 0; t < T; t++) {
      const q = rope(slice(t, offsets.q[h]), t);
      const scores = keys.map((k, s) => (allowed(t, s) ? dot(q, k) / Math.sqrt(d.headDim) + (slopes ? slopes[h] * s : 0) : -Infinity));
      const max = Math.max(...scores);
      const weights = scores.map((v) => Math.exp(v - max));
      const total = weights.reduce((a, b) => a + b, 0);
      for (let s = 0; s < T; s++) for (let i = 0; i < d.headDim; i++) out[t][h * d.headDim + i] += (weights[s] / total) * values[s][i];
    }
  }
  return out;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i], 0);
const silu = (v: number) => v / (1 + Math.exp(-v));
const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

function feedForward(family: Family, config: ModelConfig, x: Float64Array[], get: (role: ParamRole) => Float64Array | undefined): Float64Array[] {
  const need = (role: ParamRole) => get(role) ?? missing(role);
  const mlp = family.mlp;
  let hidden: Float64Array[];
  if (mlp.kind === "gelu_tanh") {
    hidden = linear(x, need("mlp.up.weight"), get("mlp.up.bias")).map((row) => row.map(geluTanh));
  } else if (mlp.gateUp === "separate") {
    const up = linear(x, need("mlp.up.weight"));
    hidden = linear(x, need("mlp.gate.weight")).map((row, t) => row.map((g, i) => silu(g) * up[t][i]));
  } else {
    const ffn = config.dims.ffn;
    hidden = linear(x, need("mlp.gate_up.weight")).map((row) => row.slice(0, ffn).map((g, i) => silu(g) * row[ffn + i]));
  }
  return linear(hidden, need("mlp.down.weight"), get("mlp.down.bias"));
}

function missing(role: string): never {
  throw new Error(`weight ${role} missing`);
}
