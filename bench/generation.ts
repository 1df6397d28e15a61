// The generation benchmark: prefill (one prompt of N tokens) and greedy decode (M new tokens,
// KV cache) on the adapter, through the runtime's KV-cache model and GPU step runner, for the
// quickstart's tiny model and, at full size, a Baichuan-7B-sized random-init model when the
// machine's memory holds what that path needs (said when skipped).
import { totalmem } from "node:os";
import { buildFamilyGraph } from "../compiler/models/family-graph.ts";
import { numel } from "../compiler/ir/node.ts";
import { fromDimensions } from "../compiler/plan/model-config.ts";
import { CachedGenerationModel } from "../runtime/generate/cached-model.ts";
import { gpuRunner } from "../runtime/generate/gpu-runner.ts";
import { loadPipelineGenerator } from "../runtime/generate/pipeline-model.ts";
import { randomWeights } from "../runtime/generate/weights.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { Random } from "../runtime/random.ts";
import { families } from "../stdlib/families/index.ts";
import { families as familyFacts } from "../stdlib/schemas/model.ts";
import type { GenerationSizes } from "./sizes.ts";
import { median, quickstartPipeline } from "./train-step.ts";

export interface GenerationRow {
  model: string;
  parameters: number;
  promptTokens: number;
  newTokens: number;
  backend: string;
  /** Wall time of the prompt's one step, ns; its tokens/s = promptTokens / time. */
  prefillNs: number;
  prefillTokensPerSecond: number;
  /** Wall time of every decode step (one token each), ns. */
  decodeSamplesNs: number[];
  decodeMedianNs: number;
  /** 1 / median decode step. */
  decodeTokensPerSecond: number;
}

export type GenerationCase = ({ measured: true } & GenerationRow) | { measured: false; model: string; why: string };

const argmax = (logits: Float32Array) => logits.reduce((best, x, i) => (x > logits[best] ? i : best), 0);

/**
 * Prefill of a seeded random prompt of `promptTokens` ids, then `newTokens` greedy steps; EOS does
 * not stop it (the benchmark times a fixed number of steps).
 */
async function measure(model: CachedGenerationModel, label: string, parameters: number, vocab: number, sizes: GenerationSizes): Promise<GenerationRow> {
  const random = new Random(1);
  const prompt = Array.from({ length: sizes.promptTokens }, () => 3 + random.int(vocab - 3));
  const checked = model.check(prompt);
  if (!checked.ok) throw new Error(`${label}: ${checked.diagnostics.map((d) => d.message).join("; ")}`);
  const started = performance.now();
  const { session, logits } = await model.start([prompt]);
  const prefillNs = (performance.now() - started) * 1e6;
  const samples: number[] = [];
  let next = argmax(logits[0]);
  try {
    for (let i = 0; i < sizes.newTokens; i++) {
      const t = performance.now();
      const [out] = await session.append([next]);
      samples.push((performance.now() - t) * 1e6);
      next = argmax(out);
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
    prefillNs,
    prefillTokensPerSecond: prompt.length / (prefillNs / 1e9),
    decodeSamplesNs: samples,
    decodeMedianNs,
    decodeTokensPerSecond: 1e9 / decodeMedianNs,
  };
}

const count = (weights: ReadonlyMap<string, ArrayLike<number>>) => [...weights.values()].reduce((n, w) => n + w.length, 0);

async function tinyCase(gpu: GpuDevice, sizes: GenerationSizes): Promise<GenerationCase> {
  const loaded = await loadPipelineGenerator(quickstartPipeline(), { gpu });
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
  const { model, config, family, weights } = loaded.value;
  const d = config.dims;
  const label = `${family.name} tiny (pipelines/quickstart.sft, random init): hidden ${d.hidden}, ${d.layers} layers, vocab ${d.vocab}`;
  return { measured: true, ...(await measure(model as CachedGenerationModel, label, count(weights), d.vocab, sizes)) };
}

// The generation path holds the weights as float64 on the host and writes them to the device
// as f32 for each step: about 8 + 4 bytes per parameter of host memory, and 4 of device memory.
const HOST_BYTES_PER_PARAMETER = 12;

/** What the memory check compares against: host memory and the adapter's largest binding, bytes. */
export interface MemoryLimits {
  hostBytes: number;
  maxStorageBufferBindingSize: number;
}

/** Why a model with `weights` (name -> shape) cannot run within `limits`, or undefined when it can. */
export function memoryRefusal(limits: MemoryLimits, weights: readonly (readonly number[])[]): string | undefined {
  const GiB = 2 ** 30;
  const parameters = weights.reduce((n, shape) => n + numel(shape), 0);
  const host = HOST_BYTES_PER_PARAMETER * parameters;
  if (host > limits.hostBytes) {
    return `needs about ${(host / GiB).toFixed(0)} GiB of host memory (float64 weights on the host plus their f32 copies for the device), this machine has ${(limits.hostBytes / GiB).toFixed(1)} GiB`;
  }
  const largest = Math.max(...weights.map((shape) => 4 * numel(shape)));
  if (largest > limits.maxStorageBufferBindingSize) {
    return `its largest weight is ${(largest / GiB).toFixed(2)} GiB in f32, above the adapter's maxStorageBufferBindingSize of ${(limits.maxStorageBufferBindingSize / GiB).toFixed(2)} GiB`;
  }
  return undefined;
}

async function sevenBCase(gpu: GpuDevice, sizes: GenerationSizes): Promise<GenerationCase> {
  const family = families.baichuan7b;
  const planned = fromDimensions(family, familyFacts.baichuan7b.sizes["7b"], "the published 7b preset");
  if (!planned.ok) throw new Error(planned.diagnostics.map((d) => d.message).join("; "));
  const config = planned.value.config;
  const d = config.dims;
  const built = buildFamilyGraph(family, config, { batch: 1, seq: 2 });
  if (!built.ok) throw new Error(built.diagnostics.map((x) => x.message).join("; "));
  const shapes = [...built.value.weights.values()].map((w) => w.shape);
  const parameters = shapes.reduce((n, shape) => n + numel(shape), 0);
  const label = `baichuan7b 7b preset, random init: hidden ${d.hidden}, ${d.layers} layers, vocab ${d.vocab}, ${(parameters / 1e9).toFixed(2)} B parameters`;
  const refusal = memoryRefusal({ hostBytes: totalmem(), maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize }, shapes);
  if (refusal) return { measured: false, model: label, why: refusal };
  const weights = randomWeights(family, config, 0);
  if (!weights.ok) throw new Error(weights.diagnostics.map((x) => x.message).join("; "));
  const model = new CachedGenerationModel({ family, config, weights: weights.value }, gpuRunner(gpu));
  return { measured: true, ...(await measure(model, label, parameters, d.vocab, sizes)) };
}

/** The tiny model's prefill and decode on `gpu`; with `large` sizes, the 7B-sized model's too (or why not). */
export async function benchGeneration(gpu: GpuDevice, tiny: GenerationSizes, large?: GenerationSizes): Promise<GenerationCase[]> {
  const cases = [await tinyCase(gpu, tiny)];
  cases.push(large ? await sevenBCase(gpu, large) : { measured: false, model: "baichuan7b 7b preset, random init", why: "run only with --size full" });
  return cases;
}
