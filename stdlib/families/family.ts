// A model family as data: everything a graph builder, a checkpoint loader and a LoRA resolver
// need to know about one published architecture. The compiler reads these traits and never
// branches on a family's name, so a new family is a new file in this folder.

export type FamilyName = "baichuan7b" | "baichuan13b" | "moss" | "chatglm" | "chatglm2";

/** The canonical dimensions of a model, whatever its config.json calls them. */
export interface ModelDims {
  hidden: number;
  layers: number;
  heads: number;
  /** Key/value heads: equal to `heads` without grouped or multi-query attention. */
  kvHeads: number;
  headDim: number;
  ffn: number;
  /** Embedding rows (often padded beyond the tokenizer's size). */
  vocab: number;
  maxPositions: number;
  normEps: number;
  /** Head dimensions rotated by RoPE per position stream; 0 without RoPE. */
  rotaryDims: number;
}

export type DimName = keyof ModelDims;

/** Where one canonical dimension comes from in config.json. */
export interface DimSource {
  /** Keys tried in order; the first one present and not null gives the value. */
  keys: readonly string[];
  /**
   * The value when none of `keys` is set, from the dimensions resolved before it (in the order
   * of `DIM_ORDER`). Without a fallback one of the keys is required.
   */
  fallback?: (dims: Partial<ModelDims>) => number;
}

/** Dimensions resolve in this order, so a fallback may use any dimension listed before it. */
export const DIM_ORDER: readonly DimName[] = [
  "hidden", "layers", "heads", "headDim", "kvHeads", "ffn", "vocab", "maxPositions", "normEps", "rotaryDims",
];

export type JsonScalar = string | number | boolean | null;

/**
 * A config.json key that tells this family apart from others. A failed check means the
 * config belongs to another family or to an unsupported variant.
 */
export interface ConfigCheck {
  key: string;
  /** Accepted values (for an array value such as `architectures`, every element must be one). */
  oneOf?: readonly JsonScalar[];
  /** The key must be present. */
  required?: boolean;
  /** The key must be absent: its presence marks another family. */
  absent?: boolean;
  /** Why the check exists, quoted in the error. */
  because: string;
}

/** Canonical parameter roles, per layer or global, used by the graph builder. */
export type ParamRole =
  | "embed.weight"
  | "attn_norm.weight" | "attn_norm.bias"
  | "attn.qkv.weight" | "attn.qkv.bias"
  | "attn.out.weight" | "attn.out.bias"
  | "mlp_norm.weight" | "mlp_norm.bias"
  | "mlp.gate.weight" | "mlp.up.weight" | "mlp.up.bias"
  | "mlp.gate_up.weight"
  | "mlp.down.weight" | "mlp.down.bias"
  | "final_norm.weight" | "final_norm.bias"
  | "head.weight" | "head.bias";

/** One checkpoint tensor. A name containing `{layer}` stands for one tensor per layer. */
export interface TensorDecl {
  name: string;
  role: ParamRole;
  shape: (dims: ModelDims) => number[];
  /** May be missing from a checkpoint (a tied output head). */
  optional?: boolean;
}

export type NormTrait = {
  kind: "rmsnorm" | "layernorm";
  /**
   * Where the reference rounds to half precision: "twice" = (x·rsqrt) rounded, then weight·that
   * rounded (Baichuan); "once" = weight·x·rsqrt rounded once (ChatGLM2, LayerNorms).
   */
  halfRounding: "once" | "twice";
};

export type ResidualTrait =
  /** x + attn(norm1(x)); h + mlp(norm2(h)). */
  | { kind: "pre_norm" }
  /** GPT-J: one norm feeds both branches; x + attn(ln(x)) + mlp(ln(x)). */
  | { kind: "parallel" }
  /** GLM: the residual is the normed input times alpha; a·alpha + attn(a), a = norm(x). */
  | { kind: "scaled_normed_input"; alpha: (dims: ModelDims) => number };

/**
 * Row layout of the fused QKV projection. The output rows split into `groups` equal chunks;
 * each chunk holds its share of the heads as sections in `order` (q heads, then k or v heads).
 * Baichuan: 1 group, q,k,v. ChatGLM2: 1 group with kvHeads for k and v. MOSS: 4 groups of
 * q,v,k. ChatGLM-6B: one group per head ("per_head"), q,k,v.
 */
export interface QkvLayout {
  groups: number | "per_head";
  order: readonly ["q" | "k" | "v", "q" | "k" | "v", "q" | "k" | "v"];
}

export type PositionTrait =
  | {
      kind: "rope";
      /** "half": rotate first half against second; "interleaved": pairs (2i, 2i+1). */
      pairing: "half" | "interleaved";
      /** 2 for GLM's 2D encoding: two halves of each head rotated by two position streams. */
      streams: 1 | 2;
      base: number;
      /** Precision the reference stores inverse frequencies in (ChatGLM-6B: f16, even in fp32 mode). */
      invFreq: "f32" | "f16";
    }
  | { kind: "alibi" };

export type MlpTrait =
  | { kind: "swiglu"; gateUp: "separate" | "fused_gate_first" }
  | { kind: "gelu_tanh" };

export interface AttentionTrait {
  softmax: "fp32" | "model_dtype";
  /** Queries divided by sqrt(d)·(layer+1) before QKᵀ, multiplied back in fp32 (GLM). */
  queryKeyLayerScaling: boolean;
  mask: MaskTrait;
}

export type MaskTrait =
  | { kind: "causal" }
  /**
   * GLM: bidirectional over the prompt, causal from `startToken` on. The first position stream
   * counts up to the prompt and then stays at `maskToken`'s index; the second counts 1, 2, ...
   * from `startToken`. Both name entries of `tokens.specials`.
   */
  | { kind: "glm_prefix"; maskToken: string; startToken: string };

/** Which linears and norms carry a bias vector. */
export interface BiasTrait {
  qkv: boolean;
  out: boolean;
  mlp: boolean;
  norm: boolean;
  head: boolean;
}

/** A token id read from config.json (`key`) with the published value as default. */
export interface TokenDecl {
  name: string;
  key?: string;
  id: number;
}

export interface TokenTraits {
  bos: TokenDecl | null;
  /** Generation stops on any of these. */
  eos: readonly TokenDecl[];
  pad: TokenDecl | null;
  specials: readonly TokenDecl[];
}

/** A linear layer LoRA may adapt, with its model-native and canonical names. */
export interface LoraModule {
  native: string;
  /** Canonical names this module covers (a fused gate/up covers both). */
  canonical: readonly string[];
}

export interface Family {
  name: FamilyName;
  /** Human name, for messages. */
  title: string;
  publishedDtype: "f16" | "bf16";
  dims: Record<DimName, DimSource>;
  checks: readonly ConfigCheck[];
  norm: NormTrait;
  residual: ResidualTrait;
  qkv: QkvLayout;
  position: PositionTrait;
  attention: AttentionTrait;
  mlp: MlpTrait;
  biases: BiasTrait;
  /** Whether the output head reuses the embedding matrix: config key and its default. */
  tiedHead: { key: string; default: boolean };
  tensors: readonly TensorDecl[];
  /** Stored buffers the loader ignores (`{layer}` allowed). */
  skip: readonly string[];
  tokens: TokenTraits;
  lora: { defaultTargets: readonly string[]; modules: readonly LoraModule[] };
  /** A small config.json in this family's own keys, for tests and demos. */
  tiny: Record<string, unknown>;
}

/** Where each head's q, k and v rows start in the fused QKV weight (each block is headDim rows). */
export function qkvRowOffsets(layout: QkvLayout, dims: ModelDims): { q: number[]; k: number[]; v: number[] } {
  const groups = layout.groups === "per_head" ? dims.heads : layout.groups;
  const count = { q: dims.heads, k: dims.kvHeads, v: dims.kvHeads };
  const chunkRows = ((dims.heads + 2 * dims.kvHeads) * dims.headDim) / groups;
  const offsets = { q: [] as number[], k: [] as number[], v: [] as number[] };
  for (let g = 0; g < groups; g++) {
    let row = g * chunkRows;
    for (const part of layout.order) {
      const perGroup = count[part] / groups;
      for (let i = 0; i < perGroup; i++, row += dims.headDim) offsets[part].push(row);
    }
  }
  return offsets;
}

/** The number of fused-QKV groups for these dimensions. */
export function qkvGroups(layout: QkvLayout, dims: ModelDims): number {
  return layout.groups === "per_head" ? dims.heads : layout.groups;
}

/** Expands a `{layer}` template into one name per layer. */
export function expandTemplate(template: string, layers: number): string[] {
  if (!template.includes("{layer}")) return [template];
  return Array.from({ length: layers }, (_, i) => template.replaceAll("{layer}", String(i)));
}

/** A matcher for names produced by `template`, whatever the layer index. */
export function templatePattern(template: string): RegExp {
  const escaped = template.split("{layer}").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${escaped.join("\\d+")}$`);
}

/**
 * The LoRA modules a user-written target selects: a model-native name (`W_pack`), a canonical
 * name (`attn.qkv`), a canonical wildcard (`mlp.*`, `attn.*`) or `all`. Empty when nothing matches.
 */
export function loraModulesFor(family: Family, target: string): LoraModule[] {
  if (target === "all") return [...family.lora.modules];
  const wildcard = target.endsWith(".*") ? target.slice(0, -1) : null;
  return family.lora.modules.filter(
    (m) =>
      m.native === target ||
      m.canonical.some((c) => c === target || (wildcard !== null && c.startsWith(wildcard))),
  );
}
