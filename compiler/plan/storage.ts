// Bytes of a tensor in its storage format: one GPU buffer per tensor (rounded to 16 bytes, as
// stdlib/kernels/dtype.ts sizes them), or QLoRA's NF4 layout: two 4-bit codes per byte, one
// absmax per block, and with double quantization the absmax values as 8-bit codes with one f32
// scale per block of absmax values and one f32 offset per tensor (stdlib/quant/nf4.ts).
import { roundToDType, storageBytes, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family, ParamRole } from "../../stdlib/families/family.ts";
import type { DType } from "../ir/node.ts";
import type { CacheDType } from "../models/cached-graph.ts";
import type { WeightDType } from "./settings.ts";

/** How QLoRA stores a quantized weight. */
export interface Nf4Layout {
  /** Weights per absmax block (bitsandbytes: 64). */
  blockSize: number;
  doubleQuant: boolean;
  /** Absmax values per f32 scale of the second quantization (bitsandbytes: 256). */
  doubleQuantBlockSize: number;
}

/** The parts of an NF4 tensor of `numel` weights, in bytes, before buffer rounding. */
export function nf4Parts(numel: number, layout: Nf4Layout): { codes: number; absmax: number; scales: number; offset: number } {
  const blocks = Math.ceil(numel / layout.blockSize);
  const codes = Math.ceil(numel / 2);
  if (!layout.doubleQuant) return { codes, absmax: 4 * blocks, scales: 0, offset: 0 };
  return { codes, absmax: blocks, scales: 4 * Math.ceil(blocks / layout.doubleQuantBlockSize), offset: 4 };
}

/** GPU bytes of an NF4 tensor: codes, absmax (codes), scales and the offset, each its own buffer. */
export function nf4StorageBytes(numel: number, layout: Nf4Layout): number {
  const parts = nf4Parts(numel, layout);
  const buffer = (bytes: number) => (bytes === 0 ? 0 : storageBytes("u32", Math.ceil(bytes / 4)));
  return buffer(parts.codes) + buffer(parts.absmax) + buffer(parts.scales) + buffer(parts.offset);
}

/** GPU bytes of a dense tensor of `numel` elements. */
export function denseStorageBytes(dtype: StorageDType, numel: number): number {
  return storageBytes(dtype, numel);
}

/**
 * The weights QLoRA quantizes: the linear layers inside the transformer blocks. Embeddings, the
 * output head (bitsandbytes skips `lm_head`), norms and biases stay in the model's dtype.
 */
export function isQuantizedRole(role: ParamRole): boolean {
  return role.startsWith("attn.") ? role.endsWith(".weight") : role.startsWith("mlp.") && role.endsWith(".weight");
}

/** The names of the weights isQuantizedRole selects, in every one of `layers` blocks. */
export function blockLinearNames(family: Family, layers: number): string[] {
  const decls = family.tensors.filter((t) => t.name.includes("{layer}") && isQuantizedRole(t.role));
  return Array.from({ length: layers }, (_, layer) => decls.map((t) => t.name.replaceAll("{layer}", String(layer)))).flat();
}

/** The weights a model stores as NF4 under `method`: QLoRA's block linears, none under LoRA or full fine-tuning. */
export function nf4WeightNames(family: Family, config: ModelConfig, method: "full" | "lora" | "qlora"): string[] {
  return method === "qlora" ? blockLinearNames(family, config.dims.layers) : [];
}

/** The tensors `modules_to_save` trains in full, by module name (the PEFT export writes the same). */
export const SAVED_MODULE_ROLES: Readonly<Record<string, readonly ParamRole[]>> = {
  embeddings: ["embed.weight"],
  lm_head: ["head.weight", "head.bias"],
};

/**
 * The weights the training engine stores narrower than f32, with their dtype: under LoRA and
 * QLoRA of a 16-bit model, in the model's `dtype`, the frozen linears inside the blocks (LoRA;
 * QLoRA stores them as NF4; blockLinearNames: 6.48 G of Baichuan-7B's 7.00 G weights) and the
 * embedding table and output head unless `modulesToSave` trains them. The matmuls and the
 * embedding lookup widen them to f32 as they read them. None for full fine-tuning (AdamW updates
 * f32 weights) or an f32 model; norms and biases stay f32.
 */
export function frozenWeightDtypes(
  family: Family,
  config: ModelConfig,
  method: "full" | "lora" | "qlora",
  dtype: WeightDType,
  modulesToSave: readonly string[] = [],
): Map<string, DType> {
  if (method === "full" || dtype === "f32") return new Map();
  const trained = new Set(modulesToSave.flatMap((m) => SAVED_MODULE_ROLES[m] ?? []));
  // the weights of the table and the head; a tied head is the table, with no tensor of its own
  const outer = family.tensors.filter((t) => (t.role === "embed.weight" || (t.role === "head.weight" && !config.tiedHead)) && !trained.has(t.role));
  const names = [...(method === "lora" ? blockLinearNames(family, config.dims.layers) : []), ...outer.map((t) => t.name)];
  return new Map(names.map((name) => [name, dtype]));
}

/**
 * The weights generation on the GPU stores in the model's `dtype`: at inference every weight is
 * frozen, so the same ones as a LoRA run's (block linears, embedding table, untied head), or with
 * `quantized` a QLoRA run's (the table and head: the block linears are NF4, blockLinearNames),
 * less `trained`, tensors an adapter saves in full (trained in f32); norms and biases stay f32.
 * The gemv and matmul kernels widen them as they read them, so a decode step reads half the
 * bytes of f32 weights.
 */
export function generationWeightDtypes(family: Family, config: ModelConfig, dtype: WeightDType, trained: Iterable<string> = [], quantized = false): Map<string, DType> {
  const narrow = frozenWeightDtypes(family, config, quantized ? "qlora" : "lora", dtype);
  for (const name of trained) narrow.delete(name);
  return narrow;
}

/**
 * The dtype generation keeps its KV cache in: f16 for a 16-bit model (`dtype` f16 or bf16), as a
 * PyTorch model caches keys and values in its own dtype, half an f32 cache's memory and decode
 * traffic; f32 for an f32 model, where the device lacks shader-f16 (`shaderF16` false), or where a
 * position's keys (`dims`: KV heads x head dim) are an odd number of values: the cache moves rows
 * by buffer copies, whose sizes and offsets WebGPU wants in whole 4-byte words. f16 rather than
 * bf16 for a bf16 model: WGSL stores 16-bit floats only as f16, which keeps three more mantissa
 * bits than bf16 (a key or value beyond f16's 65,504 would overflow, as in a PyTorch model loaded
 * in float16). The activations stay f32; keys and values are rounded as they are stored.
 */
export function kvCacheDtype(dtype: WeightDType, dims: { kvHeads: number; headDim: number }, shaderF16 = true): CacheDType {
  return dtype !== "f32" && shaderF16 && (dims.kvHeads * dims.headDim) % 2 === 0 ? "f16" : "f32";
}

/** Rounds in place each weight of `weights` that `weightDtypes` names to its dtype, as the device stores it. */
export function roundToStorage(weights: Map<string, Float64Array>, weightDtypes: ReadonlyMap<string, DType>): void {
  for (const [name, dtype] of weightDtypes) {
    const w = weights.get(name);
    if (w) weights.set(name, roundToDType(dtype as StorageDType, w));
  }
}
