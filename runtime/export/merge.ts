// `sftc export --merge`: a LoRA adapter folded into its base model, written as a Hugging Face
// model directory. The base checkpoint streams one tensor at a time: an adapted weight W (out, in)
// becomes W + scale·B·A (B (out, r), A (r, in), scale = alpha/r or alpha/sqrt(r) with rslora),
// accumulated in float64 and rounded once to the stored dtype (or the requested one); a
// `modules_to_save` tensor replaces its base tensor; every other tensor is copied (converted
// only when a dtype is requested). Shards, index, config.json, tokenizer and model-code files
// are written into a staging directory that is renamed into place at the end.
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { statSync } from "node:fs";
import { join } from "node:path";
import { diag, fail, invariant, type Result } from "../../compiler/diagnostics.ts";
import { encodeHost } from "../../stdlib/kernels/dtype.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { DTYPES, decodeElements, type TensorDType } from "../checkpoint/dtype.ts";
import { openModelDir } from "../checkpoint/model-dir.ts";
import type { LoadedTensor, TensorInfo } from "../checkpoint/tensor.ts";
import { DEFAULT_SHARD_BYTES, planShards, writeShards } from "./hf-shards.ts";
import { captureWriteErrors, checkOutputDir, DiagnosticError, writeDirAtomically } from "./output-dir.ts";
import { checkAdapterFits, readPeftAdapter, type AdapterTensor, type PeftAdapter } from "./peft-reader.ts";
import type { SafetensorsDtype, TensorToWrite } from "./safetensors-writer.ts";

export type MergeDtype = "f32" | "f16" | "bf16";

export interface MergeOptions {
  /** Largest shard in bytes (default 5 GB, transformers' default). */
  shardBytes?: number;
  /** Element type of every floating-point tensor of the merged model (default: as stored in the base). */
  dtype?: MergeDtype;
  /** Replace `outDir` when it already holds files. */
  overwrite?: boolean;
  /** Bytes of the base checkpoint read so far, and in all. */
  onProgress?: (done: number, total: number) => void;
}

export interface MergeSummary {
  /** Shard files, in order. */
  shards: string[];
  tensors: number;
  /** Weights that received B·A. */
  merged: number;
  /** Base tensors replaced by the adapter's saved copies. */
  replaced: number;
  /** Other files copied from the base directory (config.json included). */
  copied: string[];
}

/** Tokenizer files of the five families, plus the files `from_pretrained` reads beside the weights. */
const SIDE_FILES = new Set([
  "tokenizer.model", "ice_text.model", "vocab.json", "merges.txt", "tokenizer.json", "added_tokens.json",
  "special_tokens_map.json", "tokenizer_config.json", "generation_config.json",
]);

const TORCH_DTYPE: Record<MergeDtype, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };
const FLOATS: readonly TensorDType[] = ["f64", "f32", "f16", "bf16"];

/** Merges the adapter in `adapterDir` into the `family` model in `modelDir`, writing `outDir`. */
export async function mergeLora(modelDir: string, family: FamilyName, adapterDir: string, outDir: string, options: MergeOptions = {}): Promise<Result<MergeSummary>> {
  const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!(Number.isSafeInteger(shardBytes) && shardBytes > 0)) {
    return fail(diag("SFT5806", `the shard size must be a positive whole number of bytes, got ${shardBytes}`, { where: "shardBytes" }));
  }
  if (options.dtype !== undefined && !Object.hasOwn(TORCH_DTYPE, options.dtype)) {
    return fail(diag("SFT5806", `cannot store a merged model as ${JSON.stringify(options.dtype)}`, { where: "dtype", hint: "use f32, f16 or bf16" }));
  }
  const usable = await checkOutputDir(outDir, options.overwrite ?? false);
  if (!usable.ok) return usable;
  const opened = await openModelDir(modelDir, family);
  if (!opened.ok) return opened;
  const adapter = await readPeftAdapter(adapterDir);
  if (!adapter.ok) return adapter;
  const { checkpoint } = opened.value;
  const shapes = new Map(checkpoint.tensors.map((t) => [t.name, t.shape]));
  const fits = checkAdapterFits(adapter.value, shapes, `the ${families[family].title} model in ${modelDir}`);
  if (!fits.ok) return fits;

  const pairs = lowRankPairs(adapter.value);
  const outDtype = (info: TensorInfo): TensorDType => (options.dtype !== undefined && FLOATS.includes(info.dtype) ? options.dtype : info.dtype);
  const stream = checkpoint.stream({ onProgress: options.onProgress });
  // Each tensor's bytes are produced when the writer reaches it, from the next streamed base tensor.
  const nextMerged = async (info: TensorInfo): Promise<Uint8Array> => {
    const step = await stream.next();
    invariant(!step.done, `the checkpoint stream ended before ${info.name}`);
    if (!step.value.ok) throw new DiagnosticError(step.value.diagnostics);
    invariant(step.value.value.name === info.name, `streamed ${step.value.value.name} where ${info.name} was due`);
    return mergedBytes(step.value.value, outDtype(info), pairs.get(info.name), adapter.value.saved.get(info.name));
  };
  const tensors: TensorToWrite[] = checkpoint.tensors.map((info) => ({
    name: info.name,
    dtype: DTYPES[outDtype(info)].safetensors as SafetensorsDtype,
    shape: info.shape,
    bytes: () => nextMerged(info),
  }));
  const shards = planShards(tensors, shardBytes);

  try {
    return await writeDirAtomically(outDir, (staging) =>
      captureWriteErrors(outDir, async () => {
        await writeShards(staging, shards);
        const copied = await copySideFiles(modelDir, staging, options.dtype, opened.value.config.torchDtype);
        return {
          shards: shards.map((s) => s.file),
          tensors: tensors.length,
          merged: pairs.size,
          replaced: adapter.value.saved.size,
          copied,
        };
      }),
    );
  } finally {
    await stream.return(undefined);
  }
}

interface LowRankPair {
  a: AdapterTensor;
  b: AdapterTensor;
  scale: number;
}

/** The adapter's pairs keyed by the base weight they change (`<module>.weight`). */
function lowRankPairs(adapter: PeftAdapter): Map<string, LowRankPair> {
  const pairs = new Map<string, LowRankPair>();
  for (const [name, a] of adapter.lora) {
    if (!name.endsWith(".lora_A.weight")) continue;
    const module = name.slice(0, -".lora_A.weight".length);
    const b = adapter.lora.get(`${module}.lora_B.weight`);
    invariant(b, `${module} has lora_A without lora_B after the adapter was checked`);
    pairs.set(`${module}.weight`, { a, b, scale: adapter.scale });
  }
  return pairs;
}

/** The merged tensor's bytes in `dtype`; an untouched tensor in its own dtype is passed through. */
function mergedBytes(tensor: LoadedTensor, dtype: TensorDType, pair: LowRankPair | undefined, saved: AdapterTensor | undefined): Uint8Array {
  if (!pair && !saved && dtype === tensor.dtype) return tensor.data;
  const values = saved ? Float64Array.from(saved.values) : decodeElements(tensor.dtype, tensor.data);
  if (pair) addLowRank(values, tensor.shape[0], tensor.shape[1], pair);
  return encodeFloats(dtype, values);
}

/** w (out, in) += scale · B (out, r) · A (r, in), row by row in float64. */
function addLowRank(w: Float64Array, out: number, inFeatures: number, { a, b, scale }: LowRankPair): void {
  const rank = a.shape[0];
  const delta = new Float64Array(inFeatures);
  for (let o = 0; o < out; o++) {
    delta.fill(0);
    for (let r = 0; r < rank; r++) {
      const c = scale * b.values[o * rank + r];
      if (c === 0) continue;
      const row = r * inFeatures;
      for (let i = 0; i < inFeatures; i++) delta[i] += c * a.values[row + i];
    }
    const base = o * inFeatures;
    // Adding an exact zero keeps the stored bits (-0 stays -0), so B = 0 reproduces the base exactly.
    for (let i = 0; i < inFeatures; i++) if (delta[i] !== 0) w[base + i] += delta[i];
  }
}

function encodeFloats(dtype: TensorDType, values: Float64Array): Uint8Array {
  if (dtype === "f64") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  invariant(dtype === "f32" || dtype === "f16" || dtype === "bf16", `a merged tensor cannot be stored as ${dtype}`);
  return encodeHost(dtype, values).subarray(0, values.length * DTYPES[dtype].bytes);
}

/**
 * Copies config.json (with `torch_dtype` set when the dtype changes), the tokenizer files,
 * generation_config.json and the model's own code (`*.py`, for `trust_remote_code`).
 */
async function copySideFiles(modelDir: string, outDir: string, dtype: MergeDtype | undefined, torchDtype: string | null): Promise<string[]> {
  const copied: string[] = [];
  const configPath = join(modelDir, "config.json");
  if (dtype !== undefined && torchDtype !== TORCH_DTYPE[dtype]) {
    const config = JSON.parse(await readFile(configPath, "utf8"));
    await writeFile(join(outDir, "config.json"), `${JSON.stringify({ ...config, torch_dtype: TORCH_DTYPE[dtype] }, null, 2)}\n`);
  } else {
    await copyFile(configPath, join(outDir, "config.json"));
  }
  copied.push("config.json");
  for (const name of (await readdir(modelDir)).sort()) {
    if (!(SIDE_FILES.has(name) || name.endsWith(".py")) || !statSync(join(modelDir, name)).isFile()) continue;
    await copyFile(join(modelDir, name), join(outDir, name));
    copied.push(name);
  }
  return copied;
}
