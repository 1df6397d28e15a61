// Everything `sftc generate` and `sftc chat` need from a resolved pipeline: its tokenizer, its
// model (a checkpoint directory, or `init = random` weights drawn from `train.seed`), an optional
// PEFT adapter, the backend that runs it (the KV-cache model on the interpreter or a GPU, or the
// no-cache reference), and the decode block as generation settings.
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { plannedModel } from "../../compiler/plan/model-config.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { loadTokenizer, type Tokenizer, type TokenizerKind } from "../tokenizer/tokenizer.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { CachedGenerationModel, interpreterRunner } from "./cached-model.ts";
import { CpuGenerationModel } from "./cpu-model.ts";
import type { GenerationSettings, Strategy } from "./engine.ts";
import { gpuRunner } from "./gpu-runner.ts";
import type { GenerationModel } from "./model.ts";
import { checkpointWeights, mergeLora, randomWeights, readPeftAdapter, type LoadedAdapter } from "./weights.ts";

export interface PipelineGenerator {
  family: Family;
  config: ModelConfig;
  tokenizer: Tokenizer;
  model: GenerationModel;
  /** The model's own weights by graph name, before any adapter. */
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
  const decode = pipeline.decode;
  return ok({
    family,
    config,
    tokenizer: tokenizer.value,
    model: options.noCache
      ? new CpuGenerationModel({ family, config, weights: new Map([...weights, ...(adapter?.saved ?? []), ...(adapter?.weights ?? [])]), method: adapter?.method })
      : new CachedGenerationModel({ family, config, weights: adapter ? mergeLora(weights, adapter) : weights }, options.gpu ? gpuRunner(options.gpu) : interpreterRunner),
    weights,
    settings: decodeSettings(decode, config, family),
    prompts: (decode.prompts as string[] | undefined) ?? [],
    stops: (decode.stop as string[] | undefined) ?? [],
    seed: Number(decode.seed ?? seed),
  });
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
