// The generation benchmark: prefill (one prompt of N tokens) and greedy decode (M new tokens,
// KV cache) on the adapter, through the runtime's KV-cache model and GPU step runner, for the
// quickstart's tiny model and, at full size on a GPU, a Baichuan-7B-sized random model streamed
// onto the device, once with every weight in f32 and once with its linears, table and head in
// bf16 with an f16 KV cache (as `sftc generate --gpu` stores a bf16 model), whose decode is also
// divided by the copy bandwidth (the bytes a step must read) and, on an NVIDIA adapter, compared
// with transformers' generate in f32 and bf16 (bench/torch_generate.py).
//
// The floor: of Baichuan-7B's 7.00 B parameters a decode step reads 6.74 B (the embedding table is
// a lookup of one row), 26.95 GB in f32 and 13.48 GB in bf16; at the H200's ~4.2 TB/s copy figure
// that is ~6.4 ms (f32) or ~3.2 ms (bf16) per token at batch 1, before the KV cache (0.17 GB in
// f32 at 160 cached positions).
import { resolve } from "node:path";
import { buildFamilyGraph } from "../compiler/models/family-graph.ts";
import { numel, type DType } from "../compiler/ir/node.ts";
import { planSettings, type WeightDType } from "../compiler/plan/settings.ts";
import { generationWeightDtypes, kvCacheDtype } from "../compiler/plan/storage.ts";
import { bytesPerElement, type StorageDType } from "../stdlib/kernels/dtype.ts";
import { compileGraph } from "../compiler/passes/compile.ts";
import { fromDimensions } from "../compiler/plan/model-config.ts";
import { buildCachedStep, CACHE_BUCKET, cacheCapacity, type CacheDType } from "../compiler/models/cached-graph.ts";
import { CachedGenerationModel } from "../runtime/generate/cached-model.ts";
import { gpuRunner } from "../runtime/generate/gpu-runner.ts";
import type { StepProfile } from "../runtime/generate/device-cache.ts";
import { loadPipelineGenerator } from "../runtime/generate/pipeline-model.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { Random } from "../runtime/random.ts";
import type { ModelConfig } from "../stdlib/families/config.ts";
import type { Family } from "../stdlib/families/family.ts";
import { families } from "../stdlib/families/index.ts";
import { families as familyFacts } from "../stdlib/schemas/model.ts";
import { torchDeviceFor } from "./ceilings.ts";
import { sharedShapeWeights, uploadsCaughtUp, weightRoles } from "./shared-weights.ts";
import { SEVEN_B, type GenerationSizes } from "./sizes.ts";
import { median, quickstartPipeline } from "./train-step.ts";
import { kernelProfile, type ProfileRow } from "./profile.ts";
import { runTorchScript } from "./torch-python.ts";

export interface GenerationRow {
  model: string;
  parameters: number;
  promptTokens: number;
  newTokens: number;
  backend: string;
  /** Storage dtype of the linears, table and head on the device (norms and biases are f32). */
  weightDtype: WeightDType;
  /** Wall time of the prompt's one step, ns; its tokens/s = promptTokens / time. */
  prefillNs: number;
  prefillTokensPerSecond: number;
  /** Wall time of every decode step (one token each), ns. */
  decodeSamplesNs: number[];
  decodeMedianNs: number;
  /** 1 / median decode step. */
  decodeTokensPerSecond: number;
  /** Whether every logit of the prompt and of every step was finite. */
  logitsFinite: boolean;
  /** The decode step's reads over the copy bandwidth (the 7B-sized model). */
  bandwidth?: DecodeBandwidth;
  /** Launches of a decode step: its compiled schedule's, in one submission, and the cache's appends (one a layer), in a second. */
  launchesPerStep?: number;
  /** GPU time by kernel of one more decode step, every dispatch timed (the 7B-sized model). */
  profile?: ProfileRow[];
}

export type GenerationCase = ({ measured: true } & GenerationRow) | { measured: false; model: string; why: string; weightDtype?: WeightDType };

/** What one decode step must read, and the rate at which it did. */
export interface DecodeBandwidth {
  /** Weights read once per token, in their storage dtype (the embedding table: one row). */
  weightBytes: number;
  /** Keys and values read at `cachedLength`, f32. */
  kvBytes: number;
  /** The mean cached length over the decode steps. */
  cachedLength: number;
  bytesPerToken: number;
  /** bytesPerToken / median step time. */
  gbs: number;
  /** The copy bandwidth measured in the same run. */
  copyGbs: number;
  /** gbs / copyGbs. */
  fraction: number;
}

const argmax = (logits: Float32Array) => logits.reduce((best, x, i) => (x > logits[best] ? i : best), 0);

/**
 * Prefill of a seeded random prompt of `promptTokens` ids, then `newTokens` greedy steps; EOS does
 * not stop it (the benchmark times a fixed number of steps).
 */
async function measure(model: CachedGenerationModel, label: string, parameters: number, weightDtype: WeightDType, vocab: number, sizes: GenerationSizes, profile?: StepProfile): Promise<GenerationRow> {
  const random = new Random(1);
  const prompt = Array.from({ length: sizes.promptTokens }, () => 3 + random.int(vocab - 3));
  const checked = model.check(prompt);
  if (!checked.ok) throw new Error(`${label}: ${checked.diagnostics.map((d) => d.message).join("; ")}`);
  const started = performance.now();
  const { session, logits } = await model.start([prompt]);
  const prefillNs = (performance.now() - started) * 1e6;
  const samples: number[] = [];
  let logitsFinite = logits[0].every(Number.isFinite);
  let next = argmax(logits[0]);
  try {
    for (let i = 0; i < sizes.newTokens; i++) {
      const t = performance.now();
      const [out] = await session.append([next]);
      samples.push((performance.now() - t) * 1e6);
      logitsFinite &&= out.every(Number.isFinite);
      next = argmax(out);
    }
    if (profile) {
      // one more step, not among the samples: each dispatch in its own timed pass
      profile.enabled = true;
      await session.append([next]);
      profile.enabled = false;
    }
  } finally {
    session.free();
  }
  const decodeMedianNs = median(samples);
  return {
    model: label,
    parameters,
    promptTokens: prompt.length,
    newTokens: samples.length,
    backend: model.backend,
    weightDtype,
    prefillNs,
    prefillTokensPerSecond: prompt.length / (prefillNs / 1e9),
    decodeSamplesNs: samples,
    decodeMedianNs,
    decodeTokensPerSecond: 1e9 / decodeMedianNs,
    logitsFinite,
    ...(profile ? { profile: kernelProfile(profile.timings) } : {}),
  };
}

const count = (weights: ReadonlyMap<string, ArrayLike<number>>) => [...weights.values()].reduce((n, w) => n + w.length, 0);

async function tinyCase(gpu: GpuDevice, sizes: GenerationSizes): Promise<GenerationCase> {
  const pipeline = quickstartPipeline();
  const loaded = await loadPipelineGenerator(pipeline, { gpu });
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
  const { model, config, family, weights } = loaded.value;
  const d = config.dims;
  const label = `${family.name} tiny (pipelines/quickstart.sft, random init): hidden ${d.hidden}, ${d.layers} layers, vocab ${d.vocab}`;
  return { measured: true, ...(await measure(model as CachedGenerationModel, label, count(weights), planSettings(pipeline).dtype, d.vocab, sizes)) };
}


/** Bytes of `elements` values of weight `name` in its storage dtype (f32 unless `weightDtypes` names it). */
function storedBytes(weightDtypes: ReadonlyMap<string, DType>, name: string, elements: number): number {
  return elements * bytesPerElement((weightDtypes.get(name) ?? "f32") as StorageDType);
}

/**
 * The bytes one batch-1 decode step must read: every weight once in its storage dtype (f32 unless
 * `weightDtypes` names it; the embedding table one row: a lookup), plus the keys and values of
 * `layers` x `width` per cached position in `cacheDtype`.
 */
export function decodeBytes(
  family: Family,
  config: ModelConfig,
  weights: ReadonlyMap<string, readonly number[]>,
  cachedLength: number,
  weightDtypes: ReadonlyMap<string, DType> = new Map(),
  cacheDtype: CacheDType = "f32",
): { weightBytes: number; kvBytes: number } {
  const roles = weightRoles(family, config);
  let weightBytes = 0;
  for (const [name, shape] of weights) {
    const elements = roles.get(name) === "embed.weight" ? shape[shape.length - 1] : numel(shape);
    weightBytes += storedBytes(weightDtypes, name, elements);
  }
  const { layers, kvHeads, headDim } = config.dims;
  return { weightBytes, kvBytes: 2 * layers * kvHeads * headDim * bytesPerElement(cacheDtype) * cachedLength };
}

/** The decode step's bytes over its median time, as a fraction of the copy bandwidth `copyGbs`. */
export function decodeBandwidth(bytes: { weightBytes: number; kvBytes: number }, cachedLength: number, medianNs: number, copyGbs: number): DecodeBandwidth {
  const bytesPerToken = bytes.weightBytes + bytes.kvBytes;
  const gbs = bytesPerToken / medianNs;
  return { ...bytes, cachedLength, bytesPerToken, gbs, copyGbs, fraction: gbs / copyGbs };
}

/** The adapter limits a weight must fit in, bytes. */
export interface BufferLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
}

/**
 * Why weights of `shapes` (by name) cannot be held as device buffers under `limits`, each in its
 * storage dtype (f32 unless `weightDtypes` names it), or undefined. The device's free memory is
 * not knowable through WebGPU, so it is not checked: an allocation that fails shows as a GPU error.
 */
export function bufferRefusal(limits: BufferLimits, shapes: ReadonlyMap<string, readonly number[]>, weightDtypes: ReadonlyMap<string, DType> = new Map()): string | undefined {
  const GiB = 2 ** 30;
  const sized = [...shapes].map(([name, shape]) => {
    const dtype = (weightDtypes.get(name) ?? "f32") as StorageDType;
    return { dtype, bytes: bytesPerElement(dtype) * numel(shape) };
  });
  const largest = sized.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  for (const limit of ["maxStorageBufferBindingSize", "maxBufferSize"] as const)
    if (largest.bytes > limits[limit]) return `its largest weight is ${(largest.bytes / GiB).toFixed(2)} GiB in ${largest.dtype}, above the adapter's ${limit} of ${(limits[limit] / GiB).toFixed(2)} GiB`;
  return undefined;
}

/** The 7B model's storage dtypes: every weight f32, and the linears, table and head in bf16. */
const SEVEN_B_DTYPES = ["f32", "bf16"] as const;

async function sevenBCase(gpu: GpuDevice, sizes: GenerationSizes, copyGbs: number, dtype: WeightDType): Promise<GenerationCase> {
  const family = families.baichuan7b;
  const planned = fromDimensions(family, familyFacts.baichuan7b.sizes["7b"], "the published 7b preset");
  if (!planned.ok) throw new Error(planned.diagnostics.map((d) => d.message).join("; "));
  const config = planned.value.config;
  const d = config.dims;
  const built = buildFamilyGraph(family, config, { batch: 1, seq: 2 });
  if (!built.ok) throw new Error(built.diagnostics.map((x) => x.message).join("; "));
  const shapes = new Map([...built.value.weights].map(([name, w]) => [name, w.shape] as const));
  const parameters = [...shapes.values()].reduce((n, shape) => n + numel(shape), 0);
  const weightDtypes = generationWeightDtypes(family, config, dtype);
  // the cache as a pipeline of this dtype keeps it (runtime/generate/pipeline-model.ts)
  const cacheDtype = kvCacheDtype(dtype, d, gpu.hasF16);
  const stored = `${dtype === "f32" ? "f32" : `${dtype} linears, table and head`}, ${cacheDtype} KV cache`;
  const label = `${SEVEN_B}: hidden ${d.hidden}, ${d.layers} layers, vocab ${d.vocab}, ${(parameters / 1e9).toFixed(2)} B parameters (${stored} on the device)`;
  const modelBytes = [...shapes].reduce((n, [name, shape]) => n + storedBytes(weightDtypes, name, numel(shape)), 0);
  if (torchDeviceFor(gpu) === "cpu") return { measured: false, model: label, weightDtype: dtype, why: `'${gpu.adapter.name}' is a CPU adapter: ${(modelBytes / 1e9).toFixed(1)} GB of weights in host memory and minutes per token` };
  const refusal = bufferRefusal(gpu.limits, shapes, weightDtypes);
  if (refusal) return { measured: false, model: label, weightDtype: dtype, why: refusal };

  const runner = gpuRunner(gpu, { weightDtypes, cacheDtype });
  try {
    // each upload is flushed and awaited before the next tensor: staging memory stays one tensor
    const caughtUp = () => uploadsCaughtUp(gpu);
    const loaded = await runner.load(sharedShapeWeights(family, config, 0, caughtUp));
    if (!loaded.ok) return { measured: false, model: label, weightDtype: dtype, why: loaded.diagnostics.map((x) => x.message).join("; ") };
    await caughtUp();
    const model = new CachedGenerationModel({ family, config, weights: new Map() }, runner);
    const row = await measure(model, label, parameters, dtype, d.vocab, sizes, gpu.hasTimestamps ? runner.profile : undefined);
    const cachedLength = sizes.promptTokens + (sizes.newTokens - 1) / 2;
    const bandwidth = decodeBandwidth(decodeBytes(family, config, shapes, cachedLength, weightDtypes, cacheDtype), cachedLength, row.decodeMedianNs, copyGbs);
    return { measured: true, ...row, bandwidth, launchesPerStep: decodeLaunches(family, config, cachedLength, weightDtypes, cacheDtype) };
  } catch (e) {
    // a failure of the 7B case (device memory, a limit) is its row, not the end of the run
    return { measured: false, model: label, weightDtype: dtype, why: `failed: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    runner.destroy();
    await gpu.queue.onSubmittedWorkDone();
  }
}

// Launches of the decode step's schedule at a cached length (the runner compiles the same graph).
function decodeLaunches(family: Family, config: ModelConfig, cachedLength: number, weightDtypes: ReadonlyMap<string, DType>, cacheDtype: CacheDType): number | undefined {
  const past = cacheCapacity(Math.round(cachedLength), CACHE_BUCKET);
  const g = buildCachedStep(family, config, { batch: 1, past, fresh: 1 }, weightDtypes, undefined, cacheDtype);
  const compiled = g.ok ? compileGraph(g.value) : undefined;
  // the step's launches, then the cache's append of the new keys and values, one per layer
  return compiled?.ok ? compiled.value.schedule.launches.length + config.dims.layers : undefined;
}

/** transformers' generate per dtype, from bench/torch_generate.py. */
export type TorchGenerateRow =
  | { dtype: string; ok: true; parameters: number; attention: string; newTokensNs: number; oneTokenNs: number; prefillNs: number; decodeTokensPerSecond: number; peakMemoryBytes: number }
  | { dtype: string; ok: false; error: string };

export type TorchGenerate =
  | { available: true; python: string; torch: string; transformers: string; cuda: string; device: string; promptTokens: number; newTokens: number; reps: number; rows: TorchGenerateRow[] }
  | { available: false; why: string };

const GENERATE_SCRIPT = resolve(import.meta.dirname, "torch_generate.py");
// Two 7B models built, each generating 1 + 2 x reps times: a few minutes at most on a GPU.
const GENERATE_TIMEOUT_MS = 300_000;

/** transformers' generate of the 7B-sized model with `sizes`, on CUDA only, through the first Python that has it. */
export function torchGenerate(kind: "cpu" | "cuda" | undefined, sizes: GenerationSizes | undefined): TorchGenerate {
  if (!sizes) return { available: false, why: "run only with --size full" };
  if (kind !== "cuda") return { available: false, why: "runs only on an NVIDIA adapter (CUDA): a 7B generate on a CPU would take far too long" };
  // a script that runs but reports no generate (no transformers, say) counts as that Python's failure
  const parse = (out: string) => {
    const parsed = JSON.parse(out.trim().split("\n").pop()!) as TorchGenerate;
    if (!parsed.available) throw new Error(parsed.why);
    return parsed;
  };
  const run = runTorchScript([GENERATE_SCRIPT, String(sizes.promptTokens), String(sizes.newTokens)], parse, { timeout: GENERATE_TIMEOUT_MS, maxBuffer: 1 << 24 });
  return run.ok ? run.value : { available: false, why: `transformers' generate did not run: ${run.why}` };
}

/**
 * The tiny model's prefill and decode on `gpu`; with `large` sizes, the 7B-sized model's too, in
 * f32 and in bf16 (or why not), its decode divided by `copyGbs`. Each 7B model's weights are
 * freed before the next.
 */
export async function benchGeneration(gpu: GpuDevice, tiny: GenerationSizes, large: GenerationSizes | undefined, copyGbs: number): Promise<GenerationCase[]> {
  const cases = [await tinyCase(gpu, tiny)];
  for (const dtype of SEVEN_B_DTYPES)
    cases.push(large ? await sevenBCase(gpu, large, copyGbs, dtype) : { measured: false, model: `${SEVEN_B}, ${dtype} weights`, weightDtype: dtype, why: "run only with --size full" });
  return cases;
}
