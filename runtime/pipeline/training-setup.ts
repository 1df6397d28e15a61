// Everything a training run needs from a resolved pipeline before its first step: tokenizer,
// family and configuration, base weights (a checkpoint, or `init = random` from train.seed),
// the method's graph model and initial weights, and the data as the loop's source. Packed rows
// are refused here: the family graphs attend over whole rows.
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { loadTrainingData } from "../data/batches.ts";
import { loadPipelineGenerator, type PipelineGenerator } from "../generate/pipeline-model.ts";
import type { GraphModel } from "../train/cpu-backend.ts";
import { PipelineData } from "../train/pipeline-data.ts";
import { familyGraphModel, initialWeights, trainingMethod } from "./family-model.ts";

export interface TrainingSetup {
  /** Tokenizer, family, configuration, base weights and decode settings (for the samples). */
  generator: PipelineGenerator;
  method: TrainingMethod;
  model: GraphModel;
  /** Every weight the graph reads, adapters included, before training. */
  weights: Map<string, Float64Array>;
  data: PipelineData;
}

/** Loads model and data of `pipeline`; every failure is a diagnostic. */
export async function prepareTraining(pipeline: ResolvedPipeline): Promise<Result<TrainingSetup>> {
  const packed = pipeline.datasets.find((d) => d.packing === true);
  if (packed) {
    return fail(diag("SFT5901", `dataset ${packed.name}: packing is not supported by the training engines yet`, { where: `dataset ${packed.name}`, hint: "set packing = false" }));
  }
  const generator = await loadPipelineGenerator(pipeline);
  if (!generator.ok) return generator;
  const { family, config } = generator.value;
  const method = trainingMethod(pipeline.method);
  const model = familyGraphModel(family, config, method);
  if (!model.ok) return model;
  const weights = initialWeights(family, config, method, generator.value.weights, Number(pipeline.train.seed ?? 0));
  if (!weights.ok) return weights;
  const data = await loadTrainingData(pipeline);
  if (!data.ok) return data;
  return ok({ generator: generator.value, method, model: model.value, weights: weights.value, data: new PipelineData(data.value) });
}
