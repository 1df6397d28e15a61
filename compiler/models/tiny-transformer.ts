// A small decoder-only transformer as an op graph, forward pass plus loss. The options cover the
// traits of the five families (models.md): RMSNorm/LayerNorm, half/interleaved/partial/GLM-2D RoPE
// or ALiBi, MQA/GQA, SwiGLU/GELU MLPs, pre-norm, parallel (MOSS) and GLM residuals, prefix masks,
// biases and tied heads. B = batch, T = sequence, C = hidden, H = heads, D = head dim, V = vocab.
import { diag, fail, ok, type Diagnostic, type Result } from "../diagnostics.ts";
import * as b from "../ir/build.ts";
import type { Node, RopeStyle } from "../ir/node.ts";

export type Position = { kind: "rope"; style: RopeStyle; rotaryDim?: number; glm2d?: boolean; base?: number } | { kind: "alibi" };

export interface TinyTransformerOptions {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  batch: number;
  seq: number;
  norm: "rms" | "layer";
  position: Position;
  mlp: "swiglu" | "gelu";
  /** pre: x + f(norm(x)); parallel: x + attn(n) + mlp(n) with one norm (MOSS); glm: alpha·norm(x) + f(norm(x)). */
  residual: "pre" | "parallel" | "glm";
  /** GLM prefix-bidirectional mask (input `prefix_len`) instead of plain causal. */
  prefixMask?: boolean;
  /** How the fused QKV projection's rows are ordered: Q|K|V blocks (default) or [q, k, v] per head. */
  qkvLayout?: "blocks" | "per-head";
  /** Biases on the QKV and MLP projections. */
  bias?: boolean;
  tiedHead?: boolean;
  eps?: number;
}

export interface TinyTransformer {
  loss: Node;
  logits: Node; // (B*T, V)
  /** Every weight, in creation order. */
  params: Node[];
  /** Graph inputs: ids, labels (B*T) with -100 for ignored tokens, positions, prefix_len. */
  inputs: Node[];
  /** The residual stream entering each layer and the final norm: the natural checkpoints. */
  layerInputs: Node[];
}

function check(o: TinyTransformerOptions): Diagnostic[] {
  const problems: string[] = [];
  const d = o.hidden / o.heads;
  if (!Number.isInteger(d)) problems.push(`hidden ${o.hidden} is not divisible by heads ${o.heads}`);
  if (o.heads % o.kvHeads !== 0) problems.push(`heads ${o.heads} is not a multiple of kv heads ${o.kvHeads}`);
  if (o.qkvLayout === "per-head" && o.kvHeads !== o.heads) problems.push("a per-head QKV layout needs as many kv heads as heads");
  if (o.position.kind === "rope") {
    const section = o.position.glm2d ? d / 2 : d;
    const rd = o.position.rotaryDim ?? section;
    if (!Number.isInteger(section) || rd % 2 !== 0 || rd < 2 || rd > section) problems.push(`rotary dim ${rd} does not fit head dim ${d}${o.position.glm2d ? " (two halves)" : ""}`);
  }
  for (const key of ["vocab", "hidden", "layers", "heads", "kvHeads", "ffn", "batch", "seq"] as const)
    if (!(Number.isInteger(o[key]) && o[key] > 0)) problems.push(`${key} must be a positive integer, got ${o[key]}`);
  return problems.map((p) => diag("SFT4001", `Model dimensions: ${p}.`, { hint: "Pick hidden = heads x head_dim, heads a multiple of kv_heads and an even rotary dim." }));
}

/** Builds the forward graph and the token-mean cross-entropy loss. */
export function tinyTransformer(o: TinyTransformerOptions): Result<TinyTransformer> {
  const problems = check(o);
  if (problems.length) return fail(...problems);
  const { batch: B, seq: T, hidden: C, vocab: V } = o;
  const H = o.heads;
  const KV = o.kvHeads;
  const D = C / H;
  const eps = o.eps ?? 1e-5;
  const params: Node[] = [];
  const p = (name: string, shape: number[]) => {
    const n = b.param(name, shape);
    params.push(n);
    return n;
  };
  const linear = (x: Node, name: string, outDim: number, inDim: number, bias: boolean) => {
    const y = b.matmul(x, p(`${name}.weight`, [outDim, inDim]), { transB: true }); // nn.Linear layout (out, in)
    return bias ? b.add(y, b.expandTo(p(`${name}.bias`, [outDim]), y.shape)) : y;
  };
  const norm = (x: Node, name: string) =>
    o.norm === "rms" ? b.rmsNorm(x, p(`${name}.weight`, [C]), eps) : b.layerNorm(x, p(`${name}.weight`, [C]), p(`${name}.bias`, [C]), eps);

  const sections = o.position.kind === "rope" && o.position.glm2d ? 2 : 1;
  const ids = b.input("ids", [B, T], "i32");
  const labels = b.input("labels", [B * T], "i32");
  const positions = b.input("positions", [B, T, sections], "i32");
  const prefixLen = b.input("prefix_len", [B], "i32");
  const inputs = [ids, labels, ...(o.position.kind === "rope" ? [positions] : []), ...(o.prefixMask ? [prefixLen] : [])];

  const position = o.position;
  const rotate = (x: Node) =>
    position.kind === "rope"
      ? b.rope(x, positions, { style: position.style, rotaryDim: position.rotaryDim ?? D / sections, sections: sections as 1 | 2, base: position.base ?? 10000, inverse: false })
      : x;
  const attentionAttrs = { scale: 1 / Math.sqrt(D), causal: true, prefix: !!o.prefixMask, padding: false, segments: false, alibi: position.kind === "alibi" };

  const attn = (x: Node, l: number) => {
    const qkv = linear(x, `layers.${l}.attn.qkv`, (H + 2 * KV) * D, C, !!o.bias); // (B, T, (H + 2KV) D)
    // Q, K, V as strided views of the projection: Q|K|V blocks, or [q, k, v] per head (ChatGLM-6B, models.md §6.1)
    const part = (start: number, n: number, i: number) =>
      o.qkvLayout === "per-head"
        ? b.slice(b.reshape(qkv, [B, T, H, 3 * D]), 3, i * D, (i + 1) * D)
        : b.reshape(b.slice(qkv, 2, start * D, (start + n) * D), [B, T, n, D]);
    const q = rotate(part(0, H, 0));
    const k = rotate(part(H, KV, 1));
    const v = part(H + KV, KV, 2);
    const out = b.attention(q, k, v, attentionAttrs, o.prefixMask ? [prefixLen] : []); // (B, T, H, D)
    return linear(b.reshape(out, [B, T, C]), `layers.${l}.attn.out`, C, C, false);
  };
  const mlp = (x: Node, l: number) => {
    if (o.mlp === "gelu") return linear(b.geluTanh(linear(x, `layers.${l}.mlp.in`, o.ffn, C, !!o.bias)), `layers.${l}.mlp.out`, C, o.ffn, !!o.bias);
    const gateUp = linear(x, `layers.${l}.mlp.gate_up`, 2 * o.ffn, C, false); // (B, T, 2F): gate | up
    const act = b.mul(b.silu(b.slice(gateUp, 2, 0, o.ffn)), b.slice(gateUp, 2, o.ffn, 2 * o.ffn));
    return linear(act, `layers.${l}.mlp.down`, C, o.ffn, false);
  };

  const table = p("embed.weight", [V, C]);
  let x = b.embedding(table, ids); // (B, T, C)
  const layerInputs: Node[] = [];
  const alpha = Math.sqrt(2 * o.layers); // GLM residual scale (models.md §4.2)
  for (let l = 0; l < o.layers; l++) {
    layerInputs.push(x);
    const a = norm(x, `layers.${l}.norm1`);
    if (o.residual === "parallel") {
      x = b.add(b.add(x, attn(a, l)), mlp(a, l));
      continue;
    }
    const h = b.add(o.residual === "glm" ? b.scale(a, alpha) : x, attn(a, l));
    const m = norm(h, `layers.${l}.norm2`);
    x = b.add(o.residual === "glm" ? b.scale(m, alpha) : h, mlp(m, l));
  }
  layerInputs.push(x);
  const final = b.reshape(norm(x, "final_norm"), [B * T, C]);
  const logits = o.tiedHead ? b.matmul(final, table, { transB: true }) : linear(final, "lm_head", V, C, false); // (B*T, V)
  return ok({ loss: b.crossEntropy(logits, labels), logits, params, inputs, layerInputs });
}
