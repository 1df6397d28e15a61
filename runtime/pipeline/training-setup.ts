// Everything a training run needs from a resolved pipeline before its first step: tokenizer,
// family and configuration, base weights (a checkpoint, or `init = random` from train.seed),
// the method's graph model and initial weights, and the data as the loop's source. Settings the
// family graphs cannot train yet are refused here by name, never silently ignored.
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { loadTrainingData } from "../data/batches.ts";
import { loadPipelineGenerator, type PipelineGenerator } from "../generate/pipeline-model.ts";
import { PipelineData } from "../train/pipeline-data.ts";
import { familyGraphModel, initialWeights, nf4WeightNames, savedWeightNames, trainingMethod, type FamilyGraphModel } from "./family-model.ts";

export interface TrainingSetup {
  /** Tokenizer, family, configuration, base weights and decode settings (for the samples). */
  generator: PipelineGenerator;
  method: TrainingMethod;
  model: FamilyGraphModel;
  /** Every weight the graph reads, adapters included, before training. */
  weights: Map<string, Float64Array>;
  /** Base weights stored as NF4 (QLoRA; `nf4WeightNames`), none for full and LoRA. */
  nf4: string[];
  data: PipelineData;
}

/** Loads model and data of `pipeline`; every failure is a diagnostic. */
export async function prepareTraining(pipeline: ResolvedPipeline): Promise<Result<TrainingSetup>> {
  const refused = unsupportedSettings(pipeline);
  if (refused.length) return fail(...refused);
  const generator = await loadPipelineGenerator(pipeline);
  if (!generator.ok) return generator;
  const { family, config } = generator.value;
  const method = trainingMethod(pipeline.method);
  const seed = Number(pipeline.train.seed ?? 0);
  const model = familyGraphModel(family, config, method, savedWeightNames(family, config, pipeline.method), seed);
  if (!model.ok) return model;
  const weights = initialWeights(family, config, method, generator.value.weights, seed);
  if (!weights.ok) return weights;
  const data = await loadTrainingData(pipeline);
  if (!data.ok) return data;
  const nf4 = pipeline.method.kind === "qlora" ? nf4WeightNames(family, config) : [];
  return ok({ generator: generator.value, method, model: model.value, weights: weights.value, nf4, data: new PipelineData(data.value) });
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
