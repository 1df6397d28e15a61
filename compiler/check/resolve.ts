// The resolved pipeline: plain JSON with every default filled in (schema defaults, then the
// model family's defaults), paths made absolute, and LoRA targets expanded to the family's own
// layer names. This is what `sftc explain` prints and what later phases consume.
import { dirname, isAbsolute, resolve } from "node:path";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { genericDecodeDefaults, keysUsedBy, type Strategy } from "../../stdlib/schemas/decode.ts";
import { families } from "../../stdlib/schemas/model.ts";
import { modelDimensions, targetNames, type CheckedPipeline, type CheckedSection } from "./semantics.ts";
import type { Json } from "./to-json.ts";

type JsonObject = { [key: string]: Json };

export interface ResolvedPipeline {
  name: string;
  /** The `.sft` file that declares the pipeline. */
  file: string;
  model: JsonObject & { family: string };
  method: JsonObject & { kind: string };
  datasets: (JsonObject & { format: string; name: string })[];
  train: JsonObject;
  decode: JsonObject & { strategy: string };
}

const clone = <T>(value: T): T => structuredClone(value);

/** Fills absent keys with their schema `default`, inside typed objects too. */
export function applyDefaults(schema: Schema, value: JsonObject): JsonObject {
  const out: JsonObject = { ...value };
  for (const [key, property] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
    if (!(key in out) && property.default !== undefined) out[key] = clone(property.default as Json);
    const current = out[key];
    if (property.oneOf && current !== null && typeof current === "object" && !Array.isArray(current)) {
      const variant = (property.oneOf as Schema[]).find((v) => v.properties?.type?.const === current.type);
      if (variant) out[key] = applyDefaults(variant, current);
    }
  }
  return out;
}

/** Makes every path-valued key absolute, relative to the file where its value was written. */
function resolvePaths(schema: Schema, section: CheckedSection, json: JsonObject): JsonObject {
  const out = { ...json };
  for (const [key, property] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
    const value = out[key];
    if (!property["x-path"] || typeof value !== "string") continue;
    out[key] = resolve(baseDirectory(section, key), value);
  }
  return out;
}

/** Paths are relative to the `.sft` file that holds them; overrides are relative to the working directory. */
export function baseDirectory(section: CheckedSection, key: string): string {
  const file = section.spans.get(`/${key}`)?.value.file ?? section.section.header.file;
  return isAbsolute(file) ? dirname(file) : process.cwd();
}

export function resolvePipeline(name: string, file: string, p: CheckedPipeline & { model: CheckedSection; method: CheckedSection; train: CheckedSection }, schemaOf: (s: CheckedSection) => Schema): ResolvedPipeline {
  const full = (s: CheckedSection) => resolvePaths(schemaOf(s), s, applyDefaults(schemaOf(s), s.json));
  const facts = families[p.model.kind];

  const model: JsonObject = full(p.model);
  // Preset dimensions first; the block's own values (explicit dimensions, resolved paths) win.
  if (model.init === "random") Object.assign(model, { ...modelDimensions(p.model), ...model });
  else model.tokenizer ??= model.path;

  const method: JsonObject = full(p.method);
  if (p.method.kind !== "full") {
    method.targets ??= [...facts.declared.lora.defaultTargets];
    const names = targetNames(facts);
    method.target_modules = [...new Set((method.targets as string[]).flatMap((t) => names.get(t) ?? []))];
  }

  const train: JsonObject = full(p.train);
  if (!("epochs" in train) && !("max_steps" in train)) train.epochs = 1;
  train.eval_batch_size ??= train.batch_size;
  train.output = resolve(dirname(file), typeof train.output === "string" ? train.output : `runs/${name}`);

  return {
    name,
    file,
    model: { family: p.model.kind, ...model },
    method: { kind: p.method.kind, ...method },
    datasets: p.datasets.map((d) => ({ format: d.kind, name: d.section.name?.name ?? d.kind, ...full(d) })),
    train,
    decode: resolveDecode(p.decode, p.model.kind, train.seed as number),
  };
}

/** Decoding keys: the user's, else the family's generation defaults, else Hugging Face's. */
function resolveDecode(decode: CheckedSection | undefined, family: string, seed: number): JsonObject & { strategy: string } {
  const generation = families[family].generation;
  const strategy = (decode?.kind ?? generation.strategy) as Strategy;
  const familyValues: JsonObject = { ...generation };
  const strategyDefaults: JsonObject = strategy === "top_k" ? { top_k: 50 } : {};
  const out: JsonObject & { strategy: string } = { strategy };
  for (const key of keysUsedBy[strategy]) {
    const value = decode?.json[key] ?? familyValues[key] ?? strategyDefaults[key] ?? genericDecodeDefaults[key];
    if (value !== undefined) out[key] = clone(value as Json);
  }
  out.seed ??= seed;
  return out;
}
