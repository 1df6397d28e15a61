// Checks that need more than one key or section: settings that contradict each other or have no
// effect, model dimensions that do not fit together, LoRA targets the family lacks, sequences
// longer than the model's positions. Runs on sections that passed their schema.
import { keysUsedBy, type Strategy } from "../../stdlib/schemas/decode.ts";
import { families, type Dimensions, type FamilyFacts } from "../../stdlib/schemas/model.ts";
import { diag, type Diagnostic, type Span } from "../diagnostics.ts";
import type { FlatSection } from "./flatten.ts";
import { didYouMean, listNames } from "./suggest.ts";
import type { Json, Located } from "./to-json.ts";

/** A section that passed its schema, with its JSON and the spans of its keys and values. */
export interface CheckedSection {
  section: FlatSection;
  kind: string;
  json: Record<string, Json>;
  spans: Map<string, Located>;
}

export interface CheckedPipeline {
  model?: CheckedSection;
  method?: CheckedSection;
  datasets: CheckedSection[];
  train?: CheckedSection;
  decode?: CheckedSection;
}

function keySpan(s: CheckedSection, key: string): Span {
  return s.spans.get(`/${key}`)?.key ?? s.section.header;
}

function valueSpan(s: CheckedSection, key: string): Span {
  return s.spans.get(`/${key}`)?.value ?? s.section.header;
}

/** The dimensions a model will have, when they are known before loading anything. */
export function modelDimensions(model: CheckedSection): Dimensions | undefined {
  const facts = families[model.kind];
  if (model.json.init !== "random") return facts.sizes[facts.nativeSize];
  // The embedding follows the tokenizer unless `vocab_size` is given: a preset's vocabulary
  // (the published one, or the tiny config's) need not match the tokenizer in use.
  const { vocab_size: _presetVocab, ...preset } = facts.sizes[String(model.json.size ?? facts.nativeSize)];
  return { ...preset, ...(model.json as Partial<Dimensions>) };
}

/** LoRA target names a family accepts (native, canonical, `attn.*`, `mlp.*`, `all`), each with the native layers it selects. */
export function targetNames(facts: FamilyFacts): Map<string, string[]> {
  const names = new Map<string, string[]>();
  const add = (name: string, native: string) => names.set(name, [...new Set([...(names.get(name) ?? []), native])]);
  for (const module of facts.declared.lora.modules) {
    add(module.native, module.native);
    for (const canonical of module.canonical) {
      add(canonical, module.native);
      add(`${canonical.split(".")[0]}.*`, module.native);
    }
    add("all", module.native);
  }
  return names;
}

export function checkSemantics(p: CheckedPipeline): Diagnostic[] {
  const out: Diagnostic[] = [];
  const facts = p.model ? families[p.model.kind] : undefined;
  const dims = p.model ? modelDimensions(p.model) : undefined;

  if (p.model) checkModel(p.model, out);
  if (p.method && facts) checkMethod(p.method, p.model!, facts, dims, out);
  if (p.train) checkTrain(p.train, p.datasets, out);
  if (p.decode) checkDecode(p.decode, out);
  for (const d of p.datasets) {
    if (d.json.on_error === "fail" && "max_bad_fraction" in d.json) {
      out.push(diag("SFT2021", "`max_bad_fraction` has no effect with `on_error = fail`", { span: keySpan(d, "max_bad_fraction"), hint: "remove it, or use `on_error = skip`" }));
    }
    const length = d.json.max_length;
    if (dims && typeof length === "number" && length > dims.max_positions) {
      out.push(diag("SFT3006", `\`max_length = ${length}\` is longer than the ${dims.max_positions} positions of \`${p.model!.kind}\``, {
        span: valueSpan(d, "max_length"),
        hint: `use at most ${dims.max_positions}`,
      }));
    }
  }
  return out;
}

function checkModel(model: CheckedSection, out: Diagnostic[]): void {
  const published = families[model.kind].declared.publishedDtype;
  if (model.json.init !== "random" && published === "bf16" && model.json.dtype === "f16") {
    out.push(diag("SFT3007", `\`dtype = f16\` converts the published bf16 weights of \`${model.kind}\` to f16, which is lossy: values above 65504 overflow and small ones lose precision`, {
      span: valueSpan(model, "dtype"),
      hint: "keep `bf16` (widened exactly to f32 in the shader) or use `f32`",
    }));
  }
  const dimensionKeys = ["size", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions", "vocab_size", "kv_groups", "rotary_dim"];
  if (model.json.init !== "random") {
    for (const key of dimensionKeys.filter((k) => k in model.json)) {
      out.push(diag("SFT2021", `\`${key}\` has no effect with \`init = checkpoint\`: the dimensions come from the checkpoint's config.json`, {
        span: keySpan(model, key),
        hint: "remove it, or set `init = random` to build the model from these dimensions",
      }));
    }
    return;
  }
  const dims = modelDimensions(model)!;
  const at = (key: string) => valueSpan(model, key in model.json ? key : "size");
  if (dims.hidden_size % dims.num_heads !== 0) {
    out.push(diag("SFT3004", `\`num_heads = ${dims.num_heads}\` does not divide \`hidden_size = ${dims.hidden_size}\``, { span: at("num_heads"), hint: "each head gets hidden_size / num_heads dimensions" }));
    return;
  }
  if (dims.kv_groups !== undefined && dims.num_heads % dims.kv_groups !== 0) {
    out.push(diag("SFT3004", `\`kv_groups = ${dims.kv_groups}\` does not divide \`num_heads = ${dims.num_heads}\``, { span: at("kv_groups"), hint: "every key/value group serves the same number of query heads" }));
  }
  const headDim = dims.hidden_size / dims.num_heads;
  if (dims.rotary_dim !== undefined && (dims.rotary_dim > headDim || dims.rotary_dim % 2 !== 0)) {
    out.push(diag("SFT3004", `\`rotary_dim = ${dims.rotary_dim}\` must be even and at most the head size ${headDim}`, { span: at("rotary_dim"), hint: "RoPE rotates pairs of dimensions within a head" }));
  }
}

function checkMethod(method: CheckedSection, model: CheckedSection, facts: FamilyFacts, dims: Dimensions | undefined, out: Diagnostic[]): void {
  if (method.kind === "full") return;
  if (method.kind === "qlora" && model.json.dtype === "f32") {
    out.push(diag("SFT2020", "`method qlora` quantizes the base weights to 4 bits, but the model asks for f32 base weights (`dtype = f32`)", {
      span: valueSpan(model, "dtype"),
      hint: "remove `dtype` (the checkpoint is read in its own type, then quantized) or use `method lora` to keep f32 weights",
    }));
  }
  if (method.kind === "qlora" && method.json.double_quant === false && "double_quant_block_size" in method.json) {
    out.push(diag("SFT2021", "`double_quant_block_size` has no effect with `double_quant = false`", { span: keySpan(method, "double_quant_block_size"), hint: "remove it" }));
  }
  const rank = method.json.rank;
  if (dims && typeof rank === "number" && rank > dims.hidden_size) {
    out.push(diag("SFT3005", `\`rank = ${rank}\` is larger than the model's hidden size ${dims.hidden_size}`, { span: valueSpan(method, "rank"), hint: "a LoRA rank is usually 4 to 64" }));
  }
  const names = targetNames(facts);
  const targets = Array.isArray(method.json.targets) ? method.json.targets : [];
  targets.forEach((target, i) => {
    const name = String(target);
    if (names.has(name)) return;
    out.push(diag("SFT2022", `\`${model.kind}\` has no layer \`${name}\` to adapt${didYouMean(name, names.keys())}`, {
      span: method.spans.get(`/targets/${i}`)?.value ?? valueSpan(method, "targets"),
      hint: `it accepts ${listNames(names.keys())}`,
    }));
  });
}

function checkTrain(train: CheckedSection, datasets: CheckedSection[], out: Diagnostic[]): void {
  if ("epochs" in train.json && "max_steps" in train.json) {
    out.push(diag("SFT2020", "both `epochs` and `max_steps` are set", { span: keySpan(train, "max_steps"), hint: "keep one: training length is either passes over the data or optimizer steps" }));
  }
  if ("eval_every" in train.json && !datasets.some((d) => typeof d.json.eval_split === "number" && d.json.eval_split > 0)) {
    out.push(diag("SFT2021", "`eval_every` has no effect: no dataset holds out an evaluation split", { span: keySpan(train, "eval_every"), hint: "add `eval_split = 0.01` to a dataset" }));
  }
}

function checkDecode(decode: CheckedSection, out: Diagnostic[]): void {
  const strategy = decode.kind as Strategy;
  const used = keysUsedBy[strategy];
  for (const key of Object.keys(decode.json)) {
    if (used.includes(key)) continue;
    const users = (Object.keys(keysUsedBy) as Strategy[]).filter((s) => keysUsedBy[s].includes(key));
    out.push(diag("SFT2021", `\`${key}\` has no effect with \`decode ${strategy}\``, {
      span: keySpan(decode, key),
      hint: `it is used by ${listNames(users.map((s) => `decode ${s}`))}; remove it or change the strategy`,
    }));
  }
  const beams = decode.json.num_beams;
  const returned = decode.json.num_return_sequences;
  if (strategy === "beam" && typeof returned === "number" && returned > (typeof beams === "number" ? beams : 4)) {
    out.push(diag("SFT2020", `\`num_return_sequences = ${returned}\` is more than the ${typeof beams === "number" ? beams : 4} beams searched`, {
      span: valueSpan(decode, "num_return_sequences"),
      hint: "raise `num_beams` or return fewer sequences",
    }));
  }
}
