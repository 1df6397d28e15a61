// The sftc side of the end-to-end training bench: each method's optimizer steps on the GPU
// engine as `sftc run` trains a 7B pipeline (LoRA adapters, gradient checkpointing, the frozen
// weights stored as the options say, QLoRA's base linears in NF4), timed step by step with the
// host init, the upload and the first step apart, the peak of sftc's tensor buffers, and with
// --profile the GPU time by kernel of one more forward and backward.
import { ok } from "../compiler/diagnostics.ts";
import { buildFamilyGraph, type TrainingMethod } from "../compiler/models/family-graph.ts";
import { numel } from "../compiler/ir/node.ts";
import { DEFAULT_SUBGROUP_TILING } from "../stdlib/kernels/matmul-subgroup.ts";
import { frozenWeightDtypes, nf4WeightNames } from "../compiler/plan/storage.ts";
import { formatBytes } from "../compiler/passes/memory-plan.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { checkedMatmulStrategy } from "../runtime/gpu/kernel-self-check.ts";
import { familyGraphModel, initialWeights } from "../runtime/pipeline/family-model.ts";
import { labelTokens } from "../runtime/train/backend.ts";
import { GpuBackend } from "../runtime/train/gpu-backend.ts";
import type { WeightSource } from "../runtime/train/gpu-weights.ts";
import { trainSettings } from "../runtime/train/settings.ts";
import type { ModelConfig } from "../stdlib/families/config.ts";
import type { Family } from "../stdlib/families/family.ts";
import { families } from "../stdlib/families/index.ts";
import { modelConfig, TARGETS, type E2eOptions, type Method } from "./e2e-options.ts";
import { sharedShapeWeights, uploadsCaughtUp } from "./shared-weights.ts";
import { median, syntheticBatch, timedUpdate } from "./train-step.ts";
import { kernelProfile, type ProfileRow } from "./profile.ts";

/** One sftc run: its figures, or why it failed. */
export type SftcRow = { method: Method; precision: string } & (
  | {
      ok: true;
      /** Host-side random draw and adapter initialization, s. */
      initSeconds: number;
      /** Weights to the device (QLoRA: quantization included), s. */
      uploadSeconds: number;
      /** The first step: compiling the training graph, creating the pipelines, running it, s. */
      firstStepSeconds: number;
      samplesNs: number[];
      medianNs: number;
      tokensPerSecond: number;
      /** Loss of every step, warm-up included. */
      losses: number[];
      /** Most bytes of sftc's tensor buffers alive at once (gpu.memory.peakBytes). */
      peakBytes: number;
      trainableValues: number;
      /** GPU time by kernel of one profiled forward and backward (--profile); absent otherwise. */
      profile?: ProfileRow[];
    }
  | { ok: false; why: string }
);

/**
 * The base weights (bench/shared-weights.ts: one seeded array per shape, the device caught up
 * after each upload), then the adapters' initial values.
 */
async function* baseThenAdapters(gpu: GpuDevice, family: Family, config: ModelConfig, adapters: ReadonlyMap<string, ArrayLike<number>>): WeightSource {
  yield* sharedShapeWeights(family, config, 0, () => uploadsCaughtUp(gpu));
  for (const [name, values] of adapters) yield ok({ name, values });
}

const seconds = (since: number) => (performance.now() - since) / 1000;

/** What the engine's matmuls multiply on this device (its choice after the self-check, SFT_MATMUL included). */
function computePrecision(gpu: GpuDevice): string {
  const strategy = checkedMatmulStrategy(gpu);
  if (!strategy.ok) return "matmul strategy refused";
  const s = strategy.value;
  return typeof s === "string"
    ? `f32 compute (${s} matmul)`
    : `matmuls: f16 products, ${s.config.resultComponentType} accumulation (subgroup matrices, ${s.tiling ?? DEFAULT_SUBGROUP_TILING})`;
}

/** One method's training steps on `gpu`: a failure (not a NaN loss: that is reported) becomes the row's `why`. */
async function sftcRun(gpu: GpuDevice, method: Method, options: E2eOptions): Promise<SftcRow> {
  const narrow = options.dtype === "f32" ? "" : `, ${options.dtype} embeddings and head`;
  const base = method === "qlora" ? `NF4 base + f32 adapters${narrow}` : options.dtype === "f32" ? "f32 weights" : `${options.dtype} block linears${narrow}, f32 adapters and norms`;
  const precision = `${base}, ${computePrecision(gpu)}`;
  try {
    return { method, precision, ok: true, ...(await sftcSteps(gpu, method, options)) };
  } catch (e) {
    return { method, precision, ok: false, why: e instanceof Error ? e.message : String(e) };
  }
}

async function sftcSteps(gpu: GpuDevice, method: Method, options: E2eOptions) {
  const started = performance.now();
  const family = families.baichuan7b;
  const config = modelConfig(options);
  const lora: TrainingMethod = { kind: "lora", rank: options.rank, alpha: options.alpha, targets: TARGETS, dropout: 0 };
  const model = familyGraphModel(family, config, lora, { weightDtypes: frozenWeightDtypes(family, config, method, options.dtype), quantized: method === "qlora" });
  const probe = buildFamilyGraph(family, config, { batch: 1, seq: 2 });
  if (!model.ok || !probe.ok) throw new Error([...model.diagnostics, ...probe.diagnostics].map((d) => d.message).join("; "));
  const shapes = new Map([...probe.value.weights].map(([name, p]) => [name, p.shape]));
  const largest = Math.max(...[...shapes.values()].map((shape) => 4 * numel(shape)));
  if (largest > gpu.limits.maxStorageBufferBindingSize) {
    throw new Error(`the largest weight is ${formatBytes(largest)} in f32, above this adapter's maxStorageBufferBindingSize of ${formatBytes(gpu.limits.maxStorageBufferBindingSize)}`);
  }
  const adapters = initialWeights(family, config, lora, new Map(), 0);
  if (!adapters.ok) throw new Error(adapters.diagnostics.map((d) => d.message).join("; "));
  const initSeconds = seconds(started);

  // the peak of this run alone: the device may have served another before
  gpu.memory.peakBytes = gpu.memory.liveBytes;
  const uploading = performance.now();
  const nf4 = nf4WeightNames(family, config, method);
  const loaded = await GpuBackend.load(gpu, model.value, baseThenAdapters(gpu, family, config, adapters.value), { nf4, checkpoints: (loss) => model.value.layerInputs(loss) });
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
  const backend = loaded.value;
  await gpu.queue.onSubmittedWorkDone();
  const uploadSeconds = seconds(uploading);
  options.log?.(`sftc ${method}: host init ${initSeconds.toFixed(1)} s, weights on the device in ${uploadSeconds.toFixed(1)} s`);

  const s = trainSettings({});
  const batch = syntheticBatch(options.rows, options.seq, config.dims.vocab, s.seed);
  const losses: number[] = [];
  const samplesNs: number[] = [];
  let firstStepSeconds = 0;
  let profile: ProfileRow[] | undefined;
  try {
    for (let step = 1; step <= options.warmup + options.steps; step++) {
      const { loss, ns: elapsedNs } = await timedUpdate(gpu, s, backend, batch, step);
      if (step === 1) firstStepSeconds = elapsedNs / 1e9;
      if (step > options.warmup) samplesNs.push(elapsedNs);
      losses.push(loss);
      options.log?.(`sftc ${method} step ${step}: ${(elapsedNs / 1e9).toFixed(2)} s, loss ${loss}`);
    }
    if (options.profile && !gpu.hasTimestamps) options.log?.(`sftc ${method} profile: not taken, the adapter has no timestamp-query`);
    if (options.profile && gpu.hasTimestamps) {
      backend.zeroGradients();
      profile = kernelProfile((await backend.forwardBackward(batch, 1 / labelTokens(batch), { timestamps: true })).timings);
      options.log?.(`sftc ${method} profile: ${profile.map((r) => `${r.kernel} ${(r.ns / 1e6).toFixed(1)} ms`).join(", ")}`);
    }
    const errors = await gpu.takeErrors();
    if (errors.length) throw new Error(`the GPU reported: ${errors.map((d) => d.message).join("; ")}`);
  } finally {
    backend.destroy();
  }
  const medianNs = median(samplesNs);
  const trainableValues = model.value.trainable.reduce((n, t) => n + numel(t.shape), 0);
  return { initSeconds, uploadSeconds, firstStepSeconds, samplesNs, medianNs, tokensPerSecond: (options.rows * options.seq) / (medianNs / 1e9), losses, peakBytes: gpu.memory.peakBytes, trainableValues, ...(profile ? { profile } : {}) };
}

/** sftc's runs of every method on `gpu`, in order (each backend freed before the next). */
export async function sftcRuns(gpu: GpuDevice, options: E2eOptions): Promise<SftcRow[]> {
  const rows: SftcRow[] = [];
  for (const method of options.methods) rows.push(await sftcRun(gpu, method, options));
  return rows;
}
