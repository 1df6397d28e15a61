// `model FAMILY { ... }`: which network to fine-tune. One schema per family, built from the
// facts of each family (reference: published config.json, tokenizer and generation settings).
import { invariant } from "../../compiler/diagnostics.ts";
import { resolveModelConfig } from "../families/config.ts";
import { families as declared, type Family } from "../families/index.ts";
import { templates } from "../templates/index.ts";
import { block, integer, oneOf, path, type Schema } from "./common.ts";

export const dtypes = ["f32", "f16", "bf16"] as const;

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

/** What the checker needs to know of a family beyond its declaration in stdlib/families. */
export interface FamilyFacts {
  /** The declaration: title, published dtype, LoRA modules, tiny config. */
  declared: Family;
  /** The published size, used by `init = checkpoint` and as `size` for `init = random`. */
  nativeSize: string;
  sizes: Record<string, Dimensions>;
  generation: GenerationDefaults;
  generationSource: string;
}

/** The `tiny` preset: the dimensions of the family's tiny config.json (the test fixtures' model). */
function tinyDims(family: Family): Dimensions {
  const resolved = resolveModelConfig(family.tiny, family, `${family.name} tiny config`);
  invariant(resolved.ok, `the tiny config of ${family.name} does not resolve`);
  const d = resolved.value.dims;
  return {
    hidden_size: d.hidden,
    num_layers: d.layers,
    num_heads: d.heads,
    intermediate_size: d.ffn,
    max_positions: d.maxPositions,
    vocab_size: d.vocab,
    ...(family.name === "chatglm2" ? { kv_groups: d.kvHeads } : {}),
    ...(family.name === "moss" ? { rotary_dim: d.rotaryDims } : {}),
  };
}

export const families: Record<string, FamilyFacts> = {
  baichuan7b: {
    declared: declared.baichuan7b,
    nativeSize: "7b",
    sizes: {
      tiny: tinyDims(declared.baichuan7b),
      "7b": { hidden_size: 4096, num_layers: 32, num_heads: 32, intermediate_size: 11008, max_positions: 4096, vocab_size: 64000 },
    },
    generation: { strategy: "greedy", max_new_tokens: 64, repetition_penalty: 1.1 },
    generationSource: "README usage: greedy, max_new_tokens 64, repetition_penalty 1.1",
  },
  baichuan13b: {
    declared: declared.baichuan13b,
    nativeSize: "13b",
    sizes: {
      tiny: tinyDims(declared.baichuan13b),
      "13b": { hidden_size: 5120, num_layers: 40, num_heads: 40, intermediate_size: 13696, max_positions: 4096, vocab_size: 64000 },
    },
    generation: { strategy: "sample", max_new_tokens: 2048, temperature: 0.3, top_k: 5, top_p: 0.85, repetition_penalty: 1.1 },
    generationSource: "Baichuan-13B-Chat generation_config.json",
  },
  moss: {
    declared: declared.moss,
    nativeSize: "16b",
    sizes: {
      tiny: tinyDims(declared.moss),
      "16b": { hidden_size: 6144, num_layers: 34, num_heads: 24, intermediate_size: 24576, max_positions: 2048, vocab_size: 107008, rotary_dim: 64 },
    },
    generation: { strategy: "top_p", max_new_tokens: 256, temperature: 0.7, top_p: 0.8, repetition_penalty: 1.02 },
    generationSource: "MOSS README usage: temperature 0.7, top_p 0.8, repetition_penalty 1.02, max_new_tokens 256",
  },
  chatglm: {
    declared: declared.chatglm,
    nativeSize: "6b",
    sizes: {
      tiny: tinyDims(declared.chatglm),
      "6b": { hidden_size: 4096, num_layers: 28, num_heads: 32, intermediate_size: 16384, max_positions: 2048, vocab_size: 130528 },
    },
    generation: { strategy: "top_p", max_new_tokens: 2048, temperature: 0.95, top_p: 0.7 },
    generationSource: "chat(): do_sample, top_p 0.7, temperature 0.95, max_length 2048",
  },
  chatglm2: {
    declared: declared.chatglm2,
    nativeSize: "6b",
    sizes: {
      tiny: tinyDims(declared.chatglm2),
      "6b": { hidden_size: 4096, num_layers: 28, num_heads: 32, intermediate_size: 13696, max_positions: 32768, vocab_size: 65024, kv_groups: 2 },
    },
    generation: { strategy: "top_p", max_new_tokens: 8192, temperature: 0.8, top_p: 0.8 },
    generationSource: "chat(): do_sample, top_p 0.8, temperature 0.8, max_length 8192",
  },
};

/** Prompt templates a model can be trained with: `native` (the family's own) or a family's by name. */
export const templateNames = ["native", ...Object.keys(templates)];

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
    facts.declared.title,
    {
      path: path("Checkpoint directory (Hugging Face layout: config.json, tokenizer files, weight shards). Required with `init = checkpoint`.", "directory"),
      init: oneOf(["checkpoint", "random"], "`checkpoint` loads published weights from `path`; `random` builds the model from `size` or explicit dimensions, seeded by `train.seed`.", { default: "checkpoint" }),
      size: oneOf(Object.keys(facts.sizes), `Preset dimensions for \`init = random\`; \`${facts.nativeSize}\` is the published architecture, \`tiny\` a few-layer model for tests and demos.`, { default: facts.nativeSize }),
      dtype: oneOf(dtypes, "Storage type of the base weights on the GPU: generation keeps the block linears, embedding table and output head in it, and so do LoRA and QLoRA for their frozen weights (QLoRA's block linears are NF4), while norms, trained modules and full fine-tuning's weights are f32. bf16 is widened to f32 in the shader (exact); f16 needs the `shader-f16` device feature.", { default: facts.declared.publishedDtype }),
      tokenizer: path("Tokenizer file or directory. Defaults to `path`; required with `init = random`.", "file or directory"),
      template: oneOf(templateNames, "Chat template for training and generation (prompt layout, special tokens, loss mask): `native` is the family's own; another family's template may be named, e.g. to continue training a model that was fine-tuned with it.", { default: "native" }),
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
