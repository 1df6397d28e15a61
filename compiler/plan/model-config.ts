// The dimensions a memory plan is computed for, without loading any weight: a checkpoint's
// config.json when the caller could read it, else the family's published preset; a randomly
// initialised model's own dimensions (its vocabulary from the tokenizer unless `vocab_size` is
// given). Every source goes through the family's config resolver, so the fallbacks (head
// dimension, rotary dimensions, key/value heads) are the ones the model builder uses.
import { diag, fail, ok, type Result } from "../diagnostics.ts";
import type { ResolvedPipeline } from "../check/resolve.ts";
import { resolveModelConfig, type ModelConfig } from "../../stdlib/families/config.ts";
import { families, isFamilyName, type Family } from "../../stdlib/families/index.ts";
import type { DimName } from "../../stdlib/families/family.ts";
import { families as familyFacts, type Dimensions } from "../../stdlib/schemas/model.ts";

/** What the caller read from disk for the model, if anything. */
export interface ModelSources {
  /** The parsed `config.json` of `model.path`, when it exists. */
  configJson?: unknown;
  /** The tokenizer's vocabulary size (random init without `vocab_size`). */
  tokenizerVocab?: number;
}

export interface PlannedModel {
  family: Family;
  config: ModelConfig;
  /** Where the dimensions came from, for the printed plan. */
  source: string;
}

// The `.sft` dimension keys and the canonical dimension each sets.
const DIMENSION_KEYS: [keyof Dimensions, DimName][] = [
  ["hidden_size", "hidden"],
  ["num_layers", "layers"],
  ["num_heads", "heads"],
  ["intermediate_size", "ffn"],
  ["max_positions", "maxPositions"],
  ["vocab_size", "vocab"],
  ["kv_groups", "kvHeads"],
  ["rotary_dim", "rotaryDims"],
];

/** The model of `pipeline` with the dimensions the plan uses. */
export function plannedModel(pipeline: ResolvedPipeline, sources: ModelSources = {}): Result<PlannedModel> {
  const name = pipeline.model.family;
  if (!isFamilyName(name)) return fail(diag("SFT3004", `unknown model family '${name}'`, { where: pipeline.file }));
  const family = families[name];
  const facts = familyFacts[name];
  const model = pipeline.model;
  if (model.init === "random") {
    const dims = model as unknown as Partial<Dimensions>;
    const vocab = dims.vocab_size ?? sources.tokenizerVocab;
    if (vocab === undefined) {
      return fail(diag("SFT3004", `the vocabulary size of ${pipeline.name}'s random model is unknown`, { where: String(model.tokenizer ?? pipeline.file), hint: "give `vocab_size` in the model block, or make the tokenizer readable" }));
    }
    const source = dims.vocab_size === undefined ? "the model block (vocabulary from the tokenizer)" : "the model block";
    return fromDimensions(family, { ...(dims as Dimensions), vocab_size: vocab }, source);
  }
  const path = String(model.path);
  if (sources.configJson !== undefined) {
    const file = `${path}/config.json`;
    const config = resolveModelConfig(sources.configJson, family, file);
    return config.ok ? ok({ family, config: config.value, source: file }) : config;
  }
  return fromDimensions(family, facts.sizes[facts.nativeSize], `the published ${facts.nativeSize} preset (${path}/config.json was not read)`);
}

/** A config.json in the family's own keys with `dims`, resolved as a checkpoint's would be. */
export function fromDimensions(family: Family, dims: Dimensions, source: string): Result<PlannedModel> {
  const raw: Record<string, unknown> = { ...family.tiny };
  // drop the tiny model's dimensions (except the norm epsilon, which no .sft key sets)
  for (const [name, sourceKeys] of Object.entries(family.dims)) if (name !== "normEps") for (const key of sourceKeys.keys) delete raw[key];
  const set = (name: DimName, value: number | undefined) => {
    const key = family.dims[name].keys[0];
    if (value !== undefined && key !== undefined) raw[key] = value;
  };
  for (const [key, name] of DIMENSION_KEYS) set(name, dims[key]);
  set("headDim", dims.hidden_size / dims.num_heads);
  const config = resolveModelConfig(raw, family, `${family.name} dimensions from ${source}`);
  return config.ok ? ok({ family, config: config.value, source }) : config;
}
