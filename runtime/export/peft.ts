// LoRA adapters as a PEFT directory, loadable by `PeftModel.from_pretrained(base, dir)`:
// `adapter_config.json` (a LoraConfig) and `adapter_model.safetensors` whose keys are
// `base_model.model.<module path>.lora_A.weight` (r, in_features) and `.lora_B.weight`
// (out_features, r), the module path being the base model's own (e.g.
// `transformer.encoder.layers.0.self_attention.query_key_value`). PEFT >= 0.3 strips the
// adapter name (`.default`) from saved keys, and saves a `modules_to_save` module's copy under
// the module's own parameter names (`base_model.model.lm_head.weight`).
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeHost } from "../../stdlib/kernels/dtype.ts";
import { writeSafetensors, type TensorToWrite } from "./safetensors-writer.ts";

/** The prefix PEFT's `PeftModelForCausalLM` puts before the base model's parameter names. */
export const PEFT_PREFIX = "base_model.model.";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";

export interface LoraModuleWeights {
  /** The base model's module path, without `.weight`. */
  modulePath: string;
  /** (rank, inFeatures), row-major. */
  a: Float32Array | Float64Array;
  /** (outFeatures, rank), row-major. */
  b: Float32Array | Float64Array;
  inFeatures: number;
  outFeatures: number;
}

/** A full tensor saved beside the adapters (a `modules_to_save` copy, a trained bias). */
export interface SavedTensor {
  /** The base model's parameter name, e.g. `lm_head.weight`. */
  name: string;
  shape: readonly number[];
  values: Float32Array | Float64Array;
}

export type AdapterDtype = "F32" | "F16" | "BF16";

export interface PeftAdapterConfig {
  baseModel: string;
  rank: number;
  alpha: number;
  dropout: number;
  /** The model-native module names LoRA was applied to, e.g. ["query_key_value"]. */
  targetModules: readonly string[];
  dtype: AdapterDtype;
  /** Scale alpha / sqrt(r) instead of alpha / r (PEFT >= 0.7 `use_rslora`). */
  rslora?: boolean;
  /** Which biases were trained (default "none"). */
  bias?: "none" | "lora_only" | "all";
  /** Module-name suffixes trained and saved in full (PEFT `modules_to_save`), e.g. ["lm_head"]. */
  modulesToSave?: readonly string[];
}

/**
 * PEFT's LoraConfig fields, as `save_pretrained` writes them for a causal LM. `use_rslora` is
 * written only when set: PEFT releases before 0.7 reject a config with keys they do not know.
 */
export function adapterConfigJson(config: PeftAdapterConfig): Record<string, unknown> {
  const json: Record<string, unknown> = {
    auto_mapping: null,
    base_model_name_or_path: config.baseModel,
    bias: config.bias ?? "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    modules_to_save: config.modulesToSave && config.modulesToSave.length > 0 ? [...config.modulesToSave] : null,
    peft_type: "LORA",
    r: config.rank,
    revision: null,
    target_modules: [...config.targetModules],
    task_type: "CAUSAL_LM",
  };
  if (config.rslora) json.use_rslora = true;
  return json;
}

function encoder(dtype: AdapterDtype, values: Float32Array | Float64Array): () => Uint8Array {
  const kind = dtype === "F32" ? "f32" : dtype === "F16" ? "f16" : "bf16";
  return () => encodeHost(kind, values).subarray(0, values.length * (kind === "f32" ? 4 : 2));
}

/** The adapter file's tensors, sorted by name as the safetensors library stores them. */
export function peftTensors(modules: readonly LoraModuleWeights[], rank: number, dtype: AdapterDtype, saved: readonly SavedTensor[] = []): TensorToWrite[] {
  const lora = modules.flatMap((m) => {
    if (m.a.length !== rank * m.inFeatures || m.b.length !== m.outFeatures * rank) {
      throw new Error(`sftc internal error: LoRA weights of ${m.modulePath} do not match rank ${rank}`);
    }
    const prefix = `${PEFT_PREFIX}${m.modulePath}`;
    return [
      { name: `${prefix}.lora_A.weight`, dtype, shape: [rank, m.inFeatures], bytes: encoder(dtype, m.a) },
      { name: `${prefix}.lora_B.weight`, dtype, shape: [m.outFeatures, rank], bytes: encoder(dtype, m.b) },
    ];
  });
  const full = saved.map((t) => ({ name: `${PEFT_PREFIX}${t.name}`, dtype, shape: t.shape, bytes: encoder(dtype, t.values) }));
  return [...lora, ...full].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/** Writes the adapter directory; each file appears atomically. */
export async function writePeftAdapter(dir: string, config: PeftAdapterConfig, modules: readonly LoraModuleWeights[], saved: readonly SavedTensor[] = []): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), peftTensors(modules, config.rank, config.dtype, saved), { format: "pt" });
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  await writeFile(`${configPath}.tmp`, `${JSON.stringify(adapterConfigJson(config), null, 2)}\n`);
  await rename(`${configPath}.tmp`, configPath);
}
