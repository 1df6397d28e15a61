// Everything a training run needs from a resolved pipeline before its first step: tokenizer,
// family and configuration, base weights (a checkpoint, or `init = random` from train.seed),
// the method's graph model and initial weights, and the data as the loop's source. Settings the
// family graphs cannot train yet are refused here by name, never silently ignored.
//
// Prepared to stream (the GPU engine), a checkpoint's weights are not read here: the setup keeps
// an opener that reads them one tensor at a time for the engine to place on the device as they
// arrive, and holds on the host only the weights the checkpoint lacks (LoRA's initial adapters).
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { DType } from "../../compiler/ir/node.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { planSettings, savedModules } from "../../compiler/plan/settings.ts";
import { frozenWeightDtypes, nf4WeightNames, roundToStorage } from "../../compiler/plan/storage.ts";
import { loadTrainingData } from "../data/batches.ts";
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { decodeElements } from "../checkpoint/dtype.ts";
import { openModelDir } from "../checkpoint/model-dir.ts";
import { decodeSettings, loadPipelineGenerator, type PipelineGenerator } from "../generate/pipeline-model.ts";
import { loadTokenizer, type TokenizerKind } from "../tokenizer/tokenizer.ts";
import type { WeightSource } from "../train/gpu-weights.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { PipelineData } from "../train/pipeline-data.ts";
import { familyGraphModel, initialWeights, savedWeightNames, trainingMethod, type FamilyGraphModel } from "./family-model.ts";

/** Tokenizer, family, configuration and decode settings of a pipeline's model. */
export type ModelInfo = Omit<PipelineGenerator, "model" | "weights">;

/** Reads base weights one tensor at a time; `onProgress` gets the bytes read so far and in all. */
export type WeightStream = (onProgress?: (done: number, total: number) => void) => WeightSource;

export interface TrainingSetup {
  /** Tokenizer, family, configuration and decode settings (for the samples). */
  generator: ModelInfo;
  method: TrainingMethod;
  model: FamilyGraphModel;
  /**
   * Initial weights held on the host: every weight the graph reads, adapters included, or with
   * `baseWeights` only those the checkpoint lacks (LoRA's adapters; none for full fine-tuning).
   */
  weights: Map<string, Float64Array>;
  /** The checkpoint's weights, read as they stream (a setup prepared with `stream` from a checkpoint). */
  baseWeights?: WeightStream;
  /** Base weights stored as NF4 (QLoRA; `nf4WeightNames`), none for full and LoRA. */
  nf4: string[];
  /** Frozen weights stored narrower than f32, with their dtype (frozenWeightDtypes). */
  weightDtypes: ReadonlyMap<string, DType>;
  data: PipelineData;
}

export interface PrepareOptions {
  /** Leave a checkpoint's weights unread, for an engine that streams them (`baseWeights`). */
  stream?: boolean;
}

/** Loads model and data of `pipeline`; every failure is a diagnostic. */
export async function prepareTraining(pipeline: ResolvedPipeline, options: PrepareOptions = {}): Promise<Result<TrainingSetup>> {
  const refused = unsupportedSettings(pipeline);
  if (refused.length) return fail(...refused);
  const generator = options.stream && pipeline.model.init !== "random" ? await streamedModel(pipeline) : await loadPipelineGenerator(pipeline);
  if (!generator.ok) return generator;
  const { family, config, tokenizer } = generator.value;
  // an id past the embedding table would read outside it on the GPU: refuse before any data is read
  if (tokenizer.vocabSize > config.dims.vocab) {
    return fail(
      diag("SFT5403", `the tokenizer has ${tokenizer.vocabSize} ids but the model's embedding has ${config.dims.vocab} rows`, {
        where: String(pipeline.model.tokenizer ?? pipeline.model.path),
        hint: "use the tokenizer published with the checkpoint, or give a random model a vocab_size of at least the tokenizer's size",
      }),
    );
  }
  const method = trainingMethod(pipeline.method);
  const seed = Number(pipeline.train.seed ?? 0);
  // frozen weights of a 16-bit model in its dtype (both engines see the same rounded values)
  const storage = planSettings(pipeline);
  const narrow = frozenWeightDtypes(family, config, storage.method.kind, storage.dtype, savedModules(storage.method));
  const quantized = pipeline.method.kind === "qlora";
  const model = familyGraphModel(family, config, method, { saved: savedWeightNames(family, config, pipeline.method), seed, weightDtypes: narrow, quantized });
  if (!model.ok) return model;
  const base = "weights" in generator.value ? generator.value.weights : new Map<string, Float64Array>();
  const weights = initialWeights(family, config, method, base, seed);
  if (!weights.ok) return weights;
  roundToStorage(weights.value, narrow);
  const data = await loadTrainingData(pipeline);
  if (!data.ok) return data;
  const nf4 = nf4WeightNames(family, config, storage.method.kind);
  const baseWeights = "baseWeights" in generator.value ? { baseWeights: generator.value.baseWeights } : {};
  return ok({ generator: modelInfo(generator.value), method, model: model.value, weights: weights.value, ...baseWeights, nf4, weightDtypes: narrow, data: new PipelineData(data.value) });
}

/** The model's description alone, without its weights or generation backend. */
function modelInfo({ family, config, tokenizer, settings, prompts, stops, seed }: ModelInfo): ModelInfo {
  return { family, config, tokenizer, settings, prompts, stops, seed };
}

/** The pipeline's tokenizer and checkpoint configuration, its weights left to stream. */
async function streamedModel(pipeline: ResolvedPipeline): Promise<Result<ModelInfo & { baseWeights: WeightStream }>> {
  const family = families[pipeline.model.family as FamilyName];
  const dir = String(pipeline.model.path);
  // `tokenizer` names the model directory or a tokenizer file in one
  const tokenizerPath = String(pipeline.model.tokenizer ?? dir);
  const tokenizer = await loadTokenizer(existsSync(tokenizerPath) && statSync(tokenizerPath).isFile() ? dirname(tokenizerPath) : tokenizerPath, family.name as TokenizerKind);
  if (!tokenizer.ok) return tokenizer;
  const opened = await openModelDir(dir, family.name);
  if (!opened.ok) return opened;
  const { config, weights } = opened.value;
  async function* baseWeights(onProgress?: (done: number, total: number) => void): WeightSource {
    for await (const tensor of weights(onProgress)) {
      yield tensor.ok ? ok({ name: tensor.value.name, values: decodeElements(tensor.value.dtype, tensor.value.data) }) : tensor;
    }
  }
  const decode = pipeline.decode;
  return ok({
    family,
    config,
    tokenizer: tokenizer.value,
    settings: decodeSettings(decode, config, family),
    prompts: (decode.prompts as string[] | undefined) ?? [],
    stops: (decode.stop as string[] | undefined) ?? [],
    seed: Number(decode.seed ?? pipeline.train.seed ?? 0),
    baseWeights,
  });
}

/** Settings of `pipeline` the training engines cannot honour yet, as SFT5901 errors. */
function unsupportedSettings(pipeline: ResolvedPipeline): Diagnostic[] {
  const m = pipeline.method;
  const refused: [boolean, string, string][] = [
    [pipeline.train.packing === true, "train.packing", "set packing = false (the family graphs attend over whole rows)"],
    [m.kind !== "full" && m.bias !== undefined && m.bias !== "none", "method.bias", "set bias = none"],
    [m.kind === "full" && m.freeze_embeddings === true, "method.freeze_embeddings", "set freeze_embeddings = false"],
    [m.kind === "full" && Number(m.freeze_layers ?? 0) > 0, "method.freeze_layers", "set freeze_layers = 0"],
    // the NF4 matmul decodes bitsandbytes' layout only: NF4 codes, blocks of 64, absmax double-quantized in blocks of 256
    [m.kind === "qlora" && (m.quant_type ?? "nf4") !== "nf4", "method.quant_type", "set quant_type = nf4"],
    [m.kind === "qlora" && Number(m.block_size ?? 64) !== 64, "method.block_size", "set block_size = 64"],
    [m.kind === "qlora" && m.double_quant === false, "method.double_quant", "set double_quant = true"],
    [m.kind === "qlora" && Number(m.double_quant_block_size ?? 256) !== 256, "method.double_quant_block_size", "set double_quant_block_size = 256"],
  ];
  return refused
    .filter(([applies]) => applies)
    .map(([, key, hint]) => diag("SFT5901", `${key} is not supported by the training engines yet`, { where: `pipeline ${pipeline.name}: ${key}`, hint }));
}
