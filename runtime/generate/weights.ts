// The weights a generation runs with, by family-graph name: a checkpoint directory's tensors
// widened to float64, or a random initialisation from a seed (`init = random` models), plus an
// optional PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors`,
// as runtime/export/peft.ts writes them and PEFT's `save_pretrained` does).
import { join } from "node:path";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { buildFamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { numel } from "../../compiler/ir/node.ts";
import { decodeElements } from "../checkpoint/dtype.ts";
import { openModelDir, type ModelDir } from "../checkpoint/model-dir.ts";
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PEFT_PREFIX } from "../export/peft.ts";
import { readPeftAdapter as readAdapterDirectory } from "../export/peft-reader.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { expandTemplate, type Family } from "../../stdlib/families/family.ts";
import { Random } from "../random.ts";

export interface ModelWeights {
  config: ModelConfig;
  weights: Map<string, Float64Array>;
}

/** Every tensor of a checkpoint directory the family graph reads, widened to float64. */
export async function checkpointWeights(dir: string, family: Family): Promise<Result<ModelWeights>> {
  const opened = await openModelDir(dir, family.name);
  if (!opened.ok) return opened;
  const weights = new Map<string, Float64Array>();
  for await (const tensor of opened.value.weights()) {
    if (!tensor.ok) return tensor;
    weights.set(tensor.value.name, decodeElements(tensor.value.dtype, tensor.value.data));
  }
  return ok({ config: opened.value.config, weights });
}

/**
 * A random model from `seed`: norm weights 1, biases 0, every other weight N(0, 0.02²)
 * (Hugging Face's initializer_range), drawn in the graph's weight order.
 */
export function randomWeights(family: Family, config: ModelConfig, seed: number): Result<Map<string, Float64Array>> {
  const built = buildFamilyGraph(family, config, { batch: 1, seq: 2 });
  if (!built.ok) return built;
  const roles = new Map(family.tensors.flatMap((t) => expandTemplate(t.name, config.dims.layers).map((name) => [name, t.role] as const)));
  const random = new Random(seed);
  const weights = new Map<string, Float64Array>();
  for (const [name, node] of built.value.weights) {
    const n = numel(node.shape);
    const role = roles.get(name) ?? "";
    if (role.endsWith(".bias")) weights.set(name, new Float64Array(n));
    else if (role.endsWith("norm.weight")) weights.set(name, new Float64Array(n).fill(1));
    else weights.set(name, Float64Array.from({ length: n }, () => 0.02 * random.normal()));
  }
  return ok(weights);
}

export interface LoadedAdapter {
  method: Extract<TrainingMethod, { kind: "lora" }>;
  /** `<module>.lora_A.weight` / `<module>.lora_B.weight` by graph name. */
  weights: Map<string, Float64Array>;
  /** Base weights the adapter replaces whole, by name. */
  saved: Map<string, Float64Array>;
}

/**
 * Reads a PEFT LoRA directory (runtime/export/peft-reader.ts) for `family`; its tensors are
 * checked against the graph they adapt. PEFT's scale (alpha / r, or alpha / sqrt(r) with
 * `use_rslora`) is carried as the graph method's alpha, whose LoRA path multiplies by alpha / r.
 * Full tensors saved beside the adapter (`modules_to_save`) replace the base weights.
 */
export async function readPeftAdapter(dir: string, family: Family, config: ModelConfig): Promise<Result<LoadedAdapter>> {
  const read = await readAdapterDirectory(dir);
  if (!read.ok) return read;
  const adapter = read.value;
  const tensorsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const { rank, targetModules } = adapter.config;
  if (typeof targetModules === "string") {
    return fail(diag("SFT5702", `${join(dir, ADAPTER_CONFIG_FILE)}: target_modules is a regular expression; sftc needs the list of module names`, { where: dir }));
  }
  const method = { kind: "lora" as const, rank, alpha: adapter.scale * rank, targets: targetModules };
  const built = buildFamilyGraph(family, config, { batch: 1, seq: 2, method });
  if (!built.ok) return fail(...built.diagnostics.map((d) => ({ ...d, message: `${join(dir, ADAPTER_CONFIG_FILE)}: ${d.message}` })));
  const weights = new Map<string, Float64Array>();
  for (const [name, node] of built.value.adapters) {
    const values = adapter.lora.get(name)?.values;
    if (values?.length !== numel(node.shape)) {
      const problem = values ? `has ${values.length} values, expected shape [${node.shape}]` : "is missing";
      return fail(diag("SFT5702", `${tensorsPath}: the adapter tensor ${PEFT_PREFIX}${name} ${problem}.`, { where: `${tensorsPath}: ${name}`, hint: "Use an adapter trained for this model and its adapter_config.json." }));
    }
    weights.set(name, values);
  }
  const saved = new Map([...adapter.saved].map(([name, t]) => [name, t.values] as const));
  return ok({ method, weights, saved });
}

/**
 * The weights with each adapted linear merged: W + (alpha / rank) · B · A, in float64, which the
 * graph's LoRA path computes as x·Wᵀ + scale · (x·Aᵀ)·Bᵀ (the same function of x).
 */
export function mergeLora(weights: ReadonlyMap<string, Float64Array>, adapter: LoadedAdapter): Map<string, Float64Array> {
  const merged = new Map([...weights, ...adapter.saved]);
  for (const [name, values] of merged) merged.set(name, adaptedTensor(name, values, adapter));
  return merged;
}

/**
 * One base tensor as the adapter leaves it: replaced whole when saved beside the adapter, and an
 * adapted linear's weight merged, W + (alpha / rank) · B · A (a new array); else `values` itself.
 */
function adaptedTensor(name: string, values: Float64Array, adapter: LoadedAdapter): Float64Array {
  const base = adapter.saved.get(name) ?? values;
  if (!name.endsWith(".weight")) return base;
  const down = adapter.weights.get(name.replace(/\.weight$/, ".lora_A.weight")); // (rank, in)
  const up = adapter.weights.get(name.replace(/\.weight$/, ".lora_B.weight")); // (out, rank)
  if (!down || !up) return base;
  const { rank, alpha } = adapter.method;
  const w = Float64Array.from(base); // (out, in)
  const inFeatures = down.length / rank;
  const outFeatures = up.length / rank;
  for (let o = 0; o < outFeatures; o++)
    for (let r = 0; r < rank; r++) {
      const coefficient = (alpha / rank) * up[o * rank + r];
      for (let i = 0; i < inFeatures; i++) w[o * inFeatures + i] += coefficient * down[r * inFeatures + i];
    }
  return w;
}

/** A tensor on its way to the device: graph name, shape, values (float64 from a checkpoint). */
export interface StreamedTensor {
  name: string;
  shape: number[];
  values: Float32Array | Float64Array;
}

/**
 * A model directory's tensors one at a time, widened to float64, those `adapter` saves in full
 * replaced by its own, then the adapter's LoRA tensors (A (rank, in), B (out, rank)), which the
 * step graphs apply unmerged: only the tensor in flight is held. `onProgress` gets the bytes read.
 */
export async function* streamedWeights(dir: ModelDir, adapter?: LoadedAdapter, onProgress?: (done: number, total: number) => void): AsyncGenerator<Result<StreamedTensor>> {
  for await (const tensor of dir.weights(onProgress)) {
    if (!tensor.ok) {
      yield tensor;
      return;
    }
    const { name, dtype, shape, data } = tensor.value;
    yield ok({ name, shape, values: adapter?.saved.get(name) ?? decodeElements(dtype, data) });
  }
  if (!adapter) return;
  const rank = adapter.method.rank;
  for (const [name, values] of adapter.weights) {
    const shape = name.endsWith(".lora_A.weight") ? [rank, values.length / rank] : [values.length / rank, rank];
    yield ok({ name, shape, values });
  }
}
