// Everything `sftc generate` and `sftc chat` need from a resolved pipeline: its tokenizer, its
// model (a checkpoint directory, or `init = random` weights drawn from `train.seed`), an optional
// PEFT adapter, the backend that runs it (the KV-cache model on the interpreter or a GPU, or the
// no-cache reference), and the decode block as generation settings. On a GPU a checkpoint streams
// to the device one tensor at a time and is stored in the pipeline's `model.dtype`; an adapter
// is applied unmerged, as in training; the CPU backends read the weights into a host map and
// compute in float64.
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { plannedModel } from "../../compiler/plan/model-config.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { loadTokenizer, type Tokenizer, type TokenizerKind } from "../tokenizer/tokenizer.ts";
import { planSettings } from "../../compiler/plan/settings.ts";
import { blockLinearNames, generationWeightDtypes, kvCacheDtype, nf4WeightNames } from "../../compiler/plan/storage.ts";
import { f16StorageRefusal, type GpuDevice } from "../gpu/device.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import { CachedGenerationModel, interpreterRunner, type StepRunner } from "./cached-model.ts";
import type { CacheDType } from "../../compiler/models/cached-graph.ts";
import { CpuGenerationModel } from "./cpu-model.ts";
import type { GenerationSettings, Strategy } from "./engine.ts";
import { gpuRunner, type GpuStepRunner } from "./gpu-runner.ts";
import type { GenerationModel } from "./model.ts";
import { openModelDir } from "../checkpoint/model-dir.ts";
import { checkpointWeights, randomWeights, readPeftAdapter, streamedWeights, type LoadedAdapter } from "./weights.ts";

export interface PipelineGenerator {
  family: Family;
  config: ModelConfig;
  tokenizer: Tokenizer;
  model: GenerationModel;
  /** The model's own weights by graph name, before any adapter; empty when streamed to a GPU. */
  weights: ReadonlyMap<string, Float64Array>;
  settings: GenerationSettings;
  /** Prompts of the decode block, answered when no other is given. */
  prompts: string[];
  /** Stop strings of the decode block. */
  stops: string[];
  seed: number;
}

export interface GeneratorOptions {
  /** A PEFT LoRA adapter directory to apply. */
  adapterDir?: string;
  /**
   * Run the no-cache reference (the family graph over the whole sequence, LoRA in the graph)
   * instead of the KV-cache backend (adapters merged into the weights).
   */
  noCache?: boolean;
  /** Run the KV-cache steps on this GPU instead of the interpreter. */
  gpu?: GpuDevice;
  /** Bytes of the checkpoint read so far and in all, after each tensor streamed to the GPU. */
  onProgress?: (done: number, total: number) => void;
}

/** Loads the pipeline's tokenizer, weights and adapter; every failure is a diagnostic. */
export async function loadPipelineGenerator(pipeline: ResolvedPipeline, options: GeneratorOptions = {}): Promise<Result<PipelineGenerator>> {
  const model = pipeline.model;
  const family = families[model.family as FamilyName];
  // `tokenizer` names the model directory or a tokenizer file in one (`init = random` models)
  const tokenizerPath = String(model.tokenizer ?? model.path);
  const tokenizerDir = existsSync(tokenizerPath) && statSync(tokenizerPath).isFile() ? dirname(tokenizerPath) : tokenizerPath;
  const tokenizer = await loadTokenizer(tokenizerDir, family.name as TokenizerKind);
  if (!tokenizer.ok) return tokenizer;

  const seed = Number(pipeline.train.seed ?? 0);
  if (options.gpu && !options.noCache && model.init !== "random") {
    const streamed = await streamedGpuModel(pipeline, family, options.adapterDir, options.gpu, options.onProgress);
    if (!streamed.ok) return streamed;
    return ok(generator(pipeline, family, tokenizer.value, streamed.value.config, new Map(), streamed.value.model, seed));
  }
  let config: ModelConfig;
  let weights: Map<string, Float64Array>;
  if (model.init === "random") {
    const planned = plannedModel(pipeline, { tokenizerVocab: tokenizer.value.vocabSize });
    if (!planned.ok) return planned;
    const drawn = randomWeights(family, planned.value.config, seed);
    if (!drawn.ok) return drawn;
    [config, weights] = [planned.value.config, drawn.value];
  } else {
    const loaded = await checkpointWeights(String(model.path), family);
    if (!loaded.ok) return loaded;
    ({ config, weights } = loaded.value);
  }
  let adapter: LoadedAdapter | undefined;
  if (options.adapterDir !== undefined) {
    const read = await readPeftAdapter(options.adapterDir, family, config);
    if (!read.ok) return read;
    adapter = read.value;
  }
  let runner: StepRunner = interpreterRunner;
  if (options.gpu && !options.noCache) {
    const onGpu = pipelineGpuRunner(pipeline, family, config, options.gpu, adapter?.saved.keys());
    if (!onGpu.ok) return onGpu;
    runner = onGpu.value;
  }
  // a QLoRA pipeline's base is NF4: the CPU backends compute over its round trip (as its CPU
  // training does); the GPU runner quantizes the block linears itself, the same way
  const quantizedOnCpu = runner === interpreterRunner && pipeline.method.kind === "qlora";
  // an adapter's tensors beside the base weights, applied unmerged by either model; gathered
  // (and a QLoRA base quantized) when the model first reads them, not here: a training setup
  // loads a generator for its tokenizer, configuration and weights and never runs its model
  let modelWeights: Map<string, Float64Array> | undefined;
  const adapted = {
    family,
    config,
    method: adapter?.method,
    get weights() {
      modelWeights ??= new Map([
        ...(quantizedOnCpu ? nf4RoundTrip(weights, blockLinearNames(family, config.dims.layers)) : weights),
        ...(adapter?.saved ?? []),
        ...(adapter?.weights ?? []),
      ]);
      return modelWeights;
    },
  };
  const generation = options.noCache ? new CpuGenerationModel(adapted) : new CachedGenerationModel(adapted, runner);
  return ok(generator(pipeline, family, tokenizer.value, config, weights, generation, seed));
}

/**
 * A GPU step runner that stores the model's linears, table and head in the pipeline's
 * `model.dtype` (generationWeightDtypes), as a PyTorch model loaded in that dtype holds them,
 * except the tensors `trained` names (an adapter's modules_to_save, trained in f32); a QLoRA
 * pipeline's block linears are NF4, as its training stores them (and bitsandbytes loads a 4-bit
 * base). f16 on a device without shader-f16 is SFT5009. The KV cache is f16 for a 16-bit model
 * (pipelineCacheDtype), f32 on a device without shader-f16.
 */
export function pipelineGpuRunner(pipeline: ResolvedPipeline, family: Family, config: ModelConfig, gpu: GpuDevice, trained?: Iterable<string>): Result<GpuStepRunner> {
  const { dtype, method } = planSettings(pipeline);
  const weightDtypes = generationWeightDtypes(family, config, dtype, trained, method.kind === "qlora");
  const refused = f16StorageRefusal(gpu, weightDtypes, `the weights of this ${family.name} model`);
  if (refused) return refused;
  return ok(gpuRunner(gpu, { weightDtypes, nf4: nf4WeightNames(family, config, method.kind), cacheDtype: pipelineCacheDtype(pipeline, config, gpu) }));
}

/** The KV cache's dtype for `pipeline`'s generation on `gpu`: its model.dtype's width (kvCacheDtype), whatever the weights were trained in. */
export function pipelineCacheDtype(pipeline: ResolvedPipeline, config: ModelConfig, gpu: GpuDevice): CacheDType {
  return kvCacheDtype(planSettings(pipeline).dtype, config.dims, gpu.hasF16);
}

/**
 * The KV-cache model on a pipelineGpuRunner of `gpu` with the pipeline's checkpoint streamed
 * onto it tensor by tensor, then the adapter in `adapterDir` (applied unmerged; its saved modules
 * replace theirs as they pass); the runner's weights are freed on failure.
 */
async function streamedGpuModel(
  pipeline: ResolvedPipeline,
  family: Family,
  adapterDir: string | undefined,
  gpu: GpuDevice,
  onProgress?: (done: number, total: number) => void,
): Promise<Result<{ config: ModelConfig; model: GenerationModel }>> {
  const opened = await openModelDir(String(pipeline.model.path), family.name);
  if (!opened.ok) return opened;
  const config = opened.value.config;
  let adapter: LoadedAdapter | undefined;
  if (adapterDir !== undefined) {
    const read = await readPeftAdapter(adapterDir, family, config);
    if (!read.ok) return read;
    adapter = read.value;
  }
  const made = pipelineGpuRunner(pipeline, family, config, gpu, adapter?.saved.keys());
  if (!made.ok) return made;
  const runner = made.value;
  const loaded = await runner.load(streamedWeights(opened.value, adapter, onProgress));
  if (!loaded.ok) {
    runner.destroy();
    return loaded;
  }
  return ok({ config, model: new CachedGenerationModel({ family, config, weights: new Map(), method: adapter?.method }, runner) });
}

function generator(
  pipeline: ResolvedPipeline,
  family: Family,
  tokenizer: Tokenizer,
  config: ModelConfig,
  weights: Map<string, Float64Array>,
  model: GenerationModel,
  seed: number,
): PipelineGenerator {
  const decode = pipeline.decode;
  return {
    family,
    config,
    tokenizer,
    model,
    weights,
    settings: decodeSettings(decode, config, family),
    prompts: (decode.prompts as string[] | undefined) ?? [],
    stops: (decode.stop as string[] | undefined) ?? [],
    seed: Number(decode.seed ?? seed),
  };
}

// The families whose reference chat code appends ChatGLM's InvalidScoreLogitsProcessor (models.md §4.5, §5.5).
const invalidScoreGuard: Record<FamilyName, boolean> = { baichuan7b: false, baichuan13b: false, moss: false, chatglm: true, chatglm2: true };

/** The resolved decode block as engine settings; the family's EOS ids stop generation. */
export function decodeSettings(decode: ResolvedPipeline["decode"], config: ModelConfig, family: Family): GenerationSettings {
  const number = (key: string, fallback: number) => (typeof decode[key] === "number" ? (decode[key] as number) : fallback);
  const strategy = decode.strategy as Strategy;
  const sampling = strategy !== "greedy" && strategy !== "beam";
  return {
    strategy,
    maxNewTokens: number("max_new_tokens", 20),
    maxLength: Infinity,
    eosTokenIds: config.tokens.eos,
    logits: {
      repetitionPenalty: number("repetition_penalty", 1),
      temperature: sampling ? number("temperature", 1) : 1,
      topK: sampling ? number("top_k", 0) : 0,
      topP: sampling ? number("top_p", 1) : 1,
      invalidScoreGuard: invalidScoreGuard[family.name],
    },
    numBeams: strategy === "beam" ? number("num_beams", 4) : 1,
    lengthPenalty: number("length_penalty", 1),
    earlyStopping: decode.early_stopping === true,
    numReturnSequences: number("num_return_sequences", 1),
  };
}
