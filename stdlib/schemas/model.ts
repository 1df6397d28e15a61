// `model FAMILY { ... }`: which network to fine-tune. One schema per family, built from the
// facts of each family (reference: published config.json, tokenizer and generation settings).
import { block, boolean, integer, oneOf, path, type Schema } from "./common.ts";

export const dtypes = ["f32", "f16", "bf16"] as const;
export type Dtype = (typeof dtypes)[number];

/** Explicit dimensions of a randomly initialised model (keys of `model` used with `init = random`). */
export interface Dimensions {
  hidden_size: number;
  num_layers: number;
  num_heads: number;
  intermediate_size: number;
  max_positions: number;
  vocab_size?: number;
  /** ChatGLM2: key/value heads shared by the query heads (multi-query attention). */
  kv_groups?: number;
  /** MOSS: how many dimensions of each head are rotated. */
  rotary_dim?: number;
}

/** Family-specific generation defaults (the published `generation_config.json` or chat code). */
export interface GenerationDefaults {
  strategy: "greedy" | "beam" | "top_k" | "top_p" | "sample";
  max_new_tokens: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  repetition_penalty?: number;
}

export interface FamilyFacts {
  title: string;
  /** The published size, used by `init = checkpoint` and as `size` for `init = random`. */
  nativeSize: string;
  sizes: Record<string, Dimensions>;
  dtype: Dtype;
  /** Model-native names of the linear layers LoRA can adapt, each with its canonical name. */
  loraTargets: Record<string, string>;
  defaultTargets: string[];
  template: string;
  generation: GenerationDefaults;
  generationSource: string;
}

const tinyDims = { hidden_size: 64, num_layers: 2, num_heads: 4, intermediate_size: 128, max_positions: 512 };

export const families: Record<string, FamilyFacts> = {
  baichuan7b: {
    title: "Baichuan-7B (RoPE, RMSNorm, SwiGLU)",
    nativeSize: "7b",
    sizes: {
      tiny: tinyDims,
      "7b": { hidden_size: 4096, num_layers: 32, num_heads: 32, intermediate_size: 11008, max_positions: 4096, vocab_size: 64000 },
    },
    dtype: "bf16",
    loraTargets: { W_pack: "attn.qkv", o_proj: "attn.out", gate_proj: "mlp.gate", up_proj: "mlp.up", down_proj: "mlp.down" },
    defaultTargets: ["W_pack"],
    template: "baichuan7b",
    generation: { strategy: "greedy", max_new_tokens: 64, repetition_penalty: 1.1 },
    generationSource: "README usage: greedy, max_new_tokens 64, repetition_penalty 1.1",
  },
  baichuan13b: {
    title: "Baichuan-13B (ALiBi, RMSNorm, SwiGLU)",
    nativeSize: "13b",
    sizes: {
      tiny: tinyDims,
      "13b": { hidden_size: 5120, num_layers: 40, num_heads: 40, intermediate_size: 13696, max_positions: 4096, vocab_size: 64000 },
    },
    dtype: "bf16",
    loraTargets: { W_pack: "attn.qkv", o_proj: "attn.out", gate_proj: "mlp.gate", up_proj: "mlp.up", down_proj: "mlp.down" },
    defaultTargets: ["W_pack"],
    template: "baichuan13b",
    generation: { strategy: "sample", max_new_tokens: 2048, temperature: 0.3, top_k: 5, top_p: 0.85, repetition_penalty: 1.1 },
    generationSource: "Baichuan-13B-Chat generation_config.json",
  },
  moss: {
    title: "MOSS-moon-003 16B (CodeGen/GPT-J style, parallel block, partial RoPE)",
    nativeSize: "16b",
    sizes: {
      tiny: { ...tinyDims, num_heads: 2, rotary_dim: 8 },
      "16b": { hidden_size: 6144, num_layers: 34, num_heads: 24, intermediate_size: 24576, max_positions: 2048, vocab_size: 107008, rotary_dim: 64 },
    },
    dtype: "f16",
    loraTargets: { qkv_proj: "attn.qkv", out_proj: "attn.out", fc_in: "mlp.up", fc_out: "mlp.down" },
    defaultTargets: ["qkv_proj"],
    template: "moss",
    generation: { strategy: "top_p", max_new_tokens: 256, temperature: 0.7, top_p: 0.8, repetition_penalty: 1.02 },
    generationSource: "MOSS README usage: temperature 0.7, top_p 0.8, repetition_penalty 1.02, max_new_tokens 256",
  },
  chatglm: {
    title: "ChatGLM-6B (GLM, 2D RoPE, prefix mask, DeepNorm residual)",
    nativeSize: "6b",
    sizes: {
      tiny: tinyDims,
      "6b": { hidden_size: 4096, num_layers: 28, num_heads: 32, intermediate_size: 16384, max_positions: 2048, vocab_size: 130528 },
    },
    dtype: "f16",
    loraTargets: { query_key_value: "attn.qkv", dense: "attn.out", dense_h_to_4h: "mlp.up", dense_4h_to_h: "mlp.down" },
    defaultTargets: ["query_key_value"],
    template: "chatglm",
    generation: { strategy: "top_p", max_new_tokens: 2048, temperature: 0.95, top_p: 0.7 },
    generationSource: "chat(): do_sample, top_p 0.7, temperature 0.95, max_length 2048",
  },
  chatglm2: {
    title: "ChatGLM2-6B (multi-query attention, partial RoPE, RMSNorm)",
    nativeSize: "6b",
    sizes: {
      tiny: { ...tinyDims, kv_groups: 2 },
      "6b": { hidden_size: 4096, num_layers: 28, num_heads: 32, intermediate_size: 13696, max_positions: 32768, vocab_size: 65024, kv_groups: 2 },
    },
    dtype: "f16",
    loraTargets: { query_key_value: "attn.qkv", dense: "attn.out", dense_h_to_4h: "mlp.up", dense_4h_to_h: "mlp.down" },
    defaultTargets: ["query_key_value"],
    template: "chatglm2",
    generation: { strategy: "top_p", max_new_tokens: 8192, temperature: 0.8, top_p: 0.8 },
    generationSource: "chat(): do_sample, top_p 0.8, temperature 0.8, max_length 8192",
  },
};

/** Canonical LoRA target names, valid for every family that has such a layer. */
export const canonicalTargetGroups = ["attn.*", "mlp.*", "all"] as const;

/** Prompt templates a model can be trained with; `native` is the family's own chat format. */
export const templates = ["native", "human_assistant", "firefly"] as const;

const dimensionKeys: Record<keyof Dimensions, string> = {
  hidden_size: "Width of the residual stream (random init only).",
  num_layers: "Number of transformer blocks (random init only).",
  num_heads: "Number of attention heads; must divide `hidden_size` (random init only).",
  intermediate_size: "Width of the MLP's hidden layer (random init only).",
  max_positions: "Longest sequence the model accepts (random init only).",
  vocab_size: "Rows of the embedding; defaults to the tokenizer's vocabulary size (random init only).",
  kv_groups: "Key/value head groups for multi-query attention; must divide `num_heads` (ChatGLM2, random init only).",
  rotary_dim: "Dimensions of each head that are rotated by RoPE (MOSS, random init only).",
};

function familySchema(name: string, facts: FamilyFacts): Schema {
  const dims: Record<string, Schema> = {};
  for (const [key, description] of Object.entries(dimensionKeys)) {
    if (key === "kv_groups" && name !== "chatglm2") continue;
    if (key === "rotary_dim" && name !== "moss") continue;
    dims[key] = integer(description, { min: 1 });
  }
  return block(
    facts.title,
    {
      path: path("Checkpoint directory (Hugging Face layout: config.json, tokenizer files, weight shards). Required with `init = checkpoint`.", "directory"),
      init: oneOf(["checkpoint", "random"], "`checkpoint` loads published weights from `path`; `random` builds the model from `size` or explicit dimensions, seeded by `train.seed`.", { default: "checkpoint" }),
      size: oneOf(Object.keys(facts.sizes), `Preset dimensions for \`init = random\`; \`${facts.nativeSize}\` is the published architecture, \`tiny\` a few-layer model for tests and demos.`, { default: facts.nativeSize }),
      dtype: oneOf(dtypes, "Storage type of the base weights. bf16 is widened to f32 in the shader (exact); f16 needs the `shader-f16` device feature.", { default: facts.dtype }),
      tokenizer: path("Tokenizer file or directory. Defaults to `path`; required with `init = random`.", "file or directory"),
      template: oneOf(templates, "Prompt template used for training and generation: `native` is the family's chat format, `human_assistant` is `Human: ...\\n\\nAssistant: ...`, `firefly` is `<s>input</s>target</s>`.", { default: "native" }),
      trust_config: boolean("Accept a config.json whose dimensions differ from the family's published ones (derived or resized checkpoints).", { default: false }),
      ...dims,
    },
    {
      allOf: [
        { if: { properties: { init: { const: "random" } }, required: ["init"] }, then: { required: ["tokenizer"] }, else: { required: ["path"] } },
      ],
    },
  );
}

export const modelSchemas: Record<string, Schema> = Object.fromEntries(
  Object.entries(families).map(([name, facts]) => [name, familySchema(name, facts)]),
);
