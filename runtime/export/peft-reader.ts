// Reads a PEFT LoRA directory (ours or one saved by PEFT's `save_pretrained`) back into the
// graph's terms: the LoraConfig fields sftc uses, the adapter pairs by graph parameter name
// (`<module>.lora_A.weight` (r, in), `.lora_B.weight` (out, r)) and any full tensors saved beside
// them (`modules_to_save`, trained biases) by the base model's parameter name. Checked on its
// own here, and against a base model's weights with `checkAdapterFits`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { withFile } from "../checkpoint/binary-file.ts";
import { decodeElements } from "../checkpoint/dtype.ts";
import { captureFaults } from "../checkpoint/fault.ts";
import { readSafetensorsIndex } from "../checkpoint/safetensors.ts";
import { readTensor } from "../checkpoint/tensor.ts";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PEFT_PREFIX } from "./peft.ts";

export interface AdapterTensor {
  shape: number[];
  values: Float64Array;
}

/** The LoraConfig fields that change what an adapter computes. */
export interface LoraAdapterConfig {
  baseModel: string | null;
  rank: number;
  alpha: number;
  dropout: number;
  /** A list of module-name suffixes, or a regular expression over full module names. */
  targetModules: string[] | string;
  rslora: boolean;
  bias: "none" | "lora_only" | "all";
  modulesToSave: string[];
}

export interface PeftAdapter {
  dir: string;
  config: LoraAdapterConfig;
  /** The factor on B·A: alpha / r, or alpha / sqrt(r) with `use_rslora`. */
  scale: number;
  /** Adapter pairs by graph name, `<module>.lora_A.weight` and `<module>.lora_B.weight`. */
  lora: Map<string, AdapterTensor>;
  /** Full tensors that replace the base model's, by its parameter name (e.g. `lm_head.weight`). */
  saved: Map<string, AdapterTensor>;
}

const LORA_KEY = /^(.+)\.lora_([AB])\.weight$/;

/** Reads and checks the adapter in `dir`; errors name the file and the field or tensor at fault. */
export async function readPeftAdapter(dir: string): Promise<Result<PeftAdapter>> {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const tensorsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  for (const path of [configPath, tensorsPath]) {
    if (!existsSync(path)) {
      const other = existsSync(join(dir, "adapter_model.bin")) ? " (this directory has adapter_model.bin: save the adapter with safe_serialization=True)" : "";
      return fail(diag("SFT5801", `${path} does not exist${other}`, { where: path, hint: "a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors" }));
    }
  }
  const config = readLoraConfig(configPath);
  if (!config.ok) return config;

  const read = await captureFaults(tensorsPath, () =>
    withFile(tensorsPath, async (file) => {
      const tensors = new Map<string, AdapterTensor>();
      for (const info of await readSafetensorsIndex(file)) {
        const tensor = await readTensor(file, info);
        tensors.set(info.name, { shape: info.shape, values: decodeElements(tensor.dtype, tensor.data) });
      }
      return tensors;
    }),
  );
  if (!read.ok) return read;
  const split = splitTensors(read.value, config.value.rank, tensorsPath);
  if (!split.ok) return split;
  const { rank, alpha, rslora } = config.value;
  return ok({ dir, config: config.value, scale: rslora ? alpha / Math.sqrt(rank) : alpha / rank, ...split.value });
}

function readLoraConfig(path: string): Result<LoraAdapterConfig> {
  const bad = (why: string, key?: string) => fail<LoraAdapterConfig>(diag("SFT5802", `${path}: ${why}`, { where: key ? `${path}: ${key}` : path }));
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    const why = error instanceof SyntaxError ? `is not valid JSON (${error.message})` : `cannot be read (${(error as Error).message})`;
    return fail(diag("SFT5801", `${path} ${why}`, { where: path }));
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return bad("must hold a JSON object");
  const c = raw as Record<string, unknown>;
  if (c.peft_type !== "LORA") return bad(`peft_type is ${JSON.stringify(c.peft_type)}; sftc reads LORA adapters only`, "peft_type");
  if (!(Number.isInteger(c.r) && (c.r as number) >= 1)) return bad(`r must be an integer >= 1, got ${JSON.stringify(c.r)}`, "r");
  if (!(typeof c.lora_alpha === "number" && c.lora_alpha > 0)) return bad(`lora_alpha must be a positive number, got ${JSON.stringify(c.lora_alpha)}`, "lora_alpha");
  const dropout = c.lora_dropout ?? 0;
  if (!(typeof dropout === "number" && dropout >= 0 && dropout < 1)) return bad(`lora_dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`, "lora_dropout");
  const targets = c.target_modules;
  if (!(typeof targets === "string" || (Array.isArray(targets) && targets.every((t) => typeof t === "string")))) {
    return bad(`target_modules must be a list of module names or a regular expression, got ${JSON.stringify(targets)}`, "target_modules");
  }
  if (c.fan_in_fan_out === true) return bad("fan_in_fan_out is true (weights stored transposed, for GPT-2 Conv1D layers); these models use nn.Linear", "fan_in_fan_out");
  if (c.use_dora === true) return bad("use_dora is true; DoRA adapters are not supported", "use_dora");
  for (const key of ["rank_pattern", "alpha_pattern"]) {
    const pattern = c[key];
    if (pattern !== undefined && pattern !== null && (typeof pattern !== "object" || Object.keys(pattern).length > 0)) return bad(`${key} sets per-module values, which sftc does not apply`, key);
  }
  const bias = c.bias ?? "none";
  if (bias !== "none" && bias !== "lora_only" && bias !== "all") return bad(`bias must be "none", "lora_only" or "all", got ${JSON.stringify(bias)}`, "bias");
  const saved = c.modules_to_save ?? [];
  if (!(Array.isArray(saved) && saved.every((m) => typeof m === "string"))) return bad(`modules_to_save must be null or a list of module names, got ${JSON.stringify(saved)}`, "modules_to_save");
  const rslora = c.use_rslora ?? false;
  if (typeof rslora !== "boolean") return bad(`use_rslora must be true or false, got ${JSON.stringify(rslora)}`, "use_rslora");
  return ok({
    baseModel: typeof c.base_model_name_or_path === "string" ? c.base_model_name_or_path : null,
    rank: c.r as number,
    alpha: c.lora_alpha,
    dropout,
    targetModules: typeof targets === "string" ? targets : [...(targets as string[])],
    rslora,
    bias,
    modulesToSave: [...(saved as string[])],
  });
}

/** Sorts the file's tensors into adapter pairs and saved tensors, checking names and ranks. */
function splitTensors(tensors: Map<string, AdapterTensor>, rank: number, file: string): Result<Pick<PeftAdapter, "lora" | "saved">> {
  const problems: Diagnostic[] = [];
  const lora = new Map<string, AdapterTensor>();
  const saved = new Map<string, AdapterTensor>();
  const problem = (key: string, why: string) => problems.push(diag("SFT5802", `${file}: tensor ${key} ${why}`, { where: `${file}: ${key}` }));
  for (const [key, tensor] of tensors) {
    if (!key.startsWith(PEFT_PREFIX)) {
      problem(key, `does not start with ${PEFT_PREFIX}, as PEFT names the tensors of a causal-LM adapter`);
      continue;
    }
    const name = key.slice(PEFT_PREFIX.length);
    const match = LORA_KEY.exec(name);
    if (match) {
      const [rows, cols] = tensor.shape;
      const wanted = match[2] === "A" ? rows : cols;
      if (tensor.shape.length !== 2 || wanted !== rank) problem(key, `has shape [${tensor.shape}], but lora_${match[2]} of rank ${rank} must be ${match[2] === "A" ? `[${rank}, in]` : `[out, ${rank}]`}`);
      else lora.set(name, tensor);
    } else if (/\.lora_|lora_embedding_|lora_magnitude_vector/.test(name)) {
      problem(key, "is a kind of adapter tensor sftc does not apply (embedding LoRA, DoRA, or an adapter name left in the key)");
    } else {
      saved.set(name, tensor);
    }
  }
  for (const name of lora.keys()) {
    const [, module, half] = LORA_KEY.exec(name)!;
    const other = `${module}.lora_${half === "A" ? "B" : "A"}.weight`;
    if (!lora.has(other)) problem(`${PEFT_PREFIX}${name}`, `has no partner ${PEFT_PREFIX}${other}`);
  }
  return problems.length > 0 ? fail(...problems) : ok({ lora, saved });
}

/**
 * Checks that every adapter pair adapts a 2-D weight of the base model with matching (out, in),
 * and every saved tensor replaces a base tensor of the same shape. `weights` maps the base
 * model's parameter names to shapes; `model` names the base model in messages.
 */
export function checkAdapterFits(adapter: PeftAdapter, weights: ReadonlyMap<string, readonly number[]>, model: string): Result<void> {
  const problems: Diagnostic[] = [];
  const file = join(adapter.dir, ADAPTER_WEIGHTS_FILE);
  const hint = adapter.config.baseModel
    ? `the adapter's config names its base model ${adapter.config.baseModel}; use the adapter with that model`
    : "use the adapter with the model it was trained on";
  const problem = (name: string, why: string) => problems.push(diag("SFT5803", `${file}: ${PEFT_PREFIX}${name} ${why}`, { where: `${file}: ${PEFT_PREFIX}${name}`, hint }));
  for (const [name, tensor] of adapter.lora) {
    const [, module, half] = LORA_KEY.exec(name)!;
    const base = weights.get(`${module}.weight`);
    if (base === undefined) problem(name, `adapts ${module}.weight, which ${model} does not have`);
    else if (base.length !== 2) problem(name, `adapts ${module}.weight of shape [${base}], which is not a linear layer's weight`);
    else if (half === "A" && tensor.shape[1] !== base[1]) problem(name, `has shape [${tensor.shape}], but ${module}.weight of ${model} takes ${base[1]} inputs`);
    else if (half === "B" && tensor.shape[0] !== base[0]) problem(name, `has shape [${tensor.shape}], but ${module}.weight of ${model} has ${base[0]} outputs`);
  }
  for (const [name, tensor] of adapter.saved) {
    const base = weights.get(name);
    if (base === undefined) problem(name, `replaces ${name}, which ${model} does not have`);
    else if (base.length !== tensor.shape.length || base.some((n, i) => n !== tensor.shape[i])) problem(name, `has shape [${tensor.shape}], but ${name} of ${model} is [${base}]`);
  }
  return problems.length > 0 ? fail(...problems) : ok(undefined);
}
