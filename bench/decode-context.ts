// Decode time per token against the cached context: a random Baichuan-7B-style model of modest
// size (hidden 256, 4 layers, 4 heads, FFN 512, vocab 2000; small enough for a CPU adapter)
// generates greedily after prompts of the given lengths on the adapter the runtime would use,
// and prints the median and the fastest of the timed steps. What grows with the context is the
// KV cache's traffic: a step that copied the cache would slow down with it, one that reads it in
// place (cached_attention) grows only by the attention over it. The steps whose rows outgrow their
// cache bucket (and move, a buffer at a time, into the next) are also reported apart. The cache is
// f32 (an f32 model's) or, with --cache=f16, f16 (a 16-bit model's): half the bytes each step's
// attention reads.
//   node bin/run-ts.js bench/decode-context.ts [--cache=f16] [PROMPT_TOKENS...] (default 128 1500)
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CACHE_BUCKET, cacheCapacity, type CacheDType } from "../compiler/models/cached-graph.ts";
import { fromDimensions } from "../compiler/plan/model-config.ts";
import { CachedGenerationModel, type CachedModelOptions } from "../runtime/generate/cached-model.ts";
import { gpuRunner } from "../runtime/generate/gpu-runner.ts";
import { randomWeights } from "../runtime/generate/weights.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { Random } from "../runtime/random.ts";
import { families } from "../stdlib/families/index.ts";
import type { Dimensions } from "../stdlib/schemas/model.ts";
import { openBenchDevice } from "./adapter.ts";
import { median } from "./train-step.ts";

const DIMENSIONS = { hidden_size: 256, num_layers: 4, num_heads: 4, intermediate_size: 512, max_positions: 4096, vocab_size: 2000 };

export interface ContextRow {
  promptTokens: number;
  /** Decode steps timed. */
  steps: number;
  medianMs: number;
  fastestMs: number;
  /** The milliseconds of the steps that moved the cache into a larger bucket. */
  movesMs: number[];
  /** The last step's logits, for checking the decode against the CPU reference. */
  logits: Float32Array;
}

/** The bench's model: seeded random weights of a Baichuan-7B-style model of `dimensions` (`source` names them in messages). */
export function contextModelOptions(dimensions: Dimensions = DIMENSIONS, source = "bench/decode-context.ts"): CachedModelOptions {
  const family = families.baichuan7b;
  const planned = fromDimensions(family, dimensions, source);
  if (!planned.ok) throw new Error(planned.diagnostics.map((d) => d.message).join("; "));
  const config = planned.value.config;
  const weights = randomWeights(family, config, 1);
  if (!weights.ok) throw new Error(weights.diagnostics.map((d) => d.message).join("; "));
  return { family, config, weights: weights.value };
}

/**
 * `steps` decode steps of `model` (fixed next ids, no sampling) after a seeded random prompt of
 * `promptTokens`: each step's milliseconds, and the last step's logits.
 */
export async function decodeAfterPrompt(model: CachedGenerationModel, promptTokens: number, steps: number): Promise<{ samples: number[]; logits: Float32Array }> {
  const random = new Random(3);
  const { session, logits: promptLogits } = await model.start([Array.from({ length: promptTokens }, () => 3 + random.int(model.vocabSize - 3))]);
  const samples: number[] = [];
  let logits = promptLogits[0];
  try {
    for (let i = 0; i < steps; i++) {
      const started = performance.now();
      [logits] = await session.append([5 + i]);
      samples.push(performance.now() - started);
    }
  } finally {
    session.free();
  }
  return { samples, logits };
}

/**
 * Whether decode step `i` (from 0) after a prompt of `promptTokens` moves the cache: the prompt's
 * bucket holds cacheCapacity(promptTokens) positions and each move adds a bucket, so a step moves
 * when the positions cached before it fill a bucket past the prompt's (device-cache.ts).
 */
function movesAt(promptTokens: number, i: number): boolean {
  const cached = promptTokens + i;
  return cached % CACHE_BUCKET === 0 && cached >= cacheCapacity(promptTokens, CACHE_BUCKET);
}

/** `steps` decode steps after a prompt of each length, on `gpu`, over a cache of `cacheDtype`. */
export async function benchDecodeContext(gpu: GpuDevice, prompts: readonly number[], steps = 24, cacheDtype: CacheDType = "f32"): Promise<ContextRow[]> {
  const options = contextModelOptions();
  const rows: ContextRow[] = [];
  for (const promptTokens of prompts) {
    const runner = gpuRunner(gpu, { cacheDtype });
    try {
      const { samples, logits } = await decodeAfterPrompt(new CachedGenerationModel(options, runner), promptTokens, steps);
      const movesMs = samples.filter((_, i) => movesAt(promptTokens, i));
      rows.push({ promptTokens, steps: samples.length, medianMs: median(samples), fastestMs: Math.min(...samples), movesMs, logits });
    } finally {
      runner.destroy();
    }
  }
  return rows;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const cacheDtype: CacheDType = args.includes("--cache=f16") ? "f16" : "f32";
  const prompts = args.filter((a) => !a.startsWith("--")).map(Number);
  const gpu = await openBenchDevice();
  if (cacheDtype === "f16" && !gpu.hasF16) {
    console.error(`decode-context: '${gpu.adapter.name}' lacks shader-f16, which an f16 KV cache needs`);
    process.exit(2);
  }
  console.log(`adapter: ${gpu.adapter.name}; model: hidden ${DIMENSIONS.hidden_size}, ${DIMENSIONS.num_layers} layers; ${cacheDtype} KV cache`);
  for (const r of await benchDecodeContext(gpu, prompts.length ? prompts : [128, 1500], undefined, cacheDtype)) {
    const moves = r.movesMs.length ? `; steps that moved the cache to a larger bucket: ${r.movesMs.map((ms) => ms.toFixed(2)).join(", ")} ms` : "";
    console.log(`prompt ${r.promptTokens}: decode median ${r.medianMs.toFixed(2)} ms, fastest ${r.fastestMs.toFixed(2)} ms (${r.steps} steps)${moves}`);
  }
  gpu.destroy();
}
