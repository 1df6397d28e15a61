// LoRA adapters as a PEFT directory, loadable by `PeftModel.from_pretrained(base, dir)`:
// `adapter_config.json` (a LoraConfig) and `adapter_model.safetensors` whose keys are
// `base_model.model.<module path>.lora_A.weight` (r, in_features) and `.lora_B.weight`
// (out_features, r), the module path being the base model's own (e.g.
// `transformer.encoder.layers.0.self_attention.query_key_value`).
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeHost } from "../../stdlib/kernels/dtype.ts";
import { writeSafetensors, type TensorToWrite } from "./safetensors-writer.ts";

export interface LoraModuleWeights {
  /** The base model's module path, without `.weight`. */
  modulePath: string;
  /** (rank, inFeatures), row-major. */
  a: Float32Array;
  /** (outFeatures, rank), row-major. */
  b: Float32Array;
  inFeatures: number;
  outFeatures: number;
}

export interface PeftAdapterConfig {
  baseModel: string;
  rank: number;
  alpha: number;
  dropout: number;
  /** The model-native module names LoRA was applied to, e.g. ["query_key_value"]. */
  targetModules: readonly string[];
  dtype: "F32" | "F16";
}

/** PEFT's LoraConfig fields, as `save_pretrained` writes them for a causal LM. */
export function adapterConfigJson(config: PeftAdapterConfig): Record<string, unknown> {
  return {
    auto_mapping: null,
    base_model_name_or_path: config.baseModel,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: config.rank,
    revision: null,
    target_modules: [...config.targetModules],
    task_type: "CAUSAL_LM",
  };
}

export function peftTensors(modules: readonly LoraModuleWeights[], rank: number, dtype: PeftAdapterConfig["dtype"]): TensorToWrite[] {
  const encode = (values: Float32Array) => () => {
    const bytes = encodeHost(dtype === "F16" ? "f16" : "f32", values);
    return bytes.subarray(0, values.length * (dtype === "F16" ? 2 : 4));
  };
  return modules.flatMap((m) => {
    if (m.a.length !== rank * m.inFeatures || m.b.length !== m.outFeatures * rank) {
      throw new Error(`sftc internal error: LoRA weights of ${m.modulePath} do not match rank ${rank}`);
    }
    const prefix = `base_model.model.${m.modulePath}`;
    return [
      { name: `${prefix}.lora_A.weight`, dtype, shape: [rank, m.inFeatures], bytes: encode(m.a) },
      { name: `${prefix}.lora_B.weight`, dtype, shape: [m.outFeatures, rank], bytes: encode(m.b) },
    ];
  });
}

/** Writes the adapter directory; each file appears atomically. */
export async function writePeftAdapter(dir: string, config: PeftAdapterConfig, modules: readonly LoraModuleWeights[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, "adapter_model.safetensors"), peftTensors(modules, config.rank, config.dtype), { format: "pt" });
  const configPath = join(dir, "adapter_config.json");
  await writeFile(`${configPath}.tmp`, `${JSON.stringify(adapterConfigJson(config), null, 2)}\n`);
  await rename(`${configPath}.tmp`, configPath);
}
