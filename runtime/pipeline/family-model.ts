// A resolved pipeline's model as the training engines see it: the family graph of the method
// (full or LoRA) as a `GraphModel` (with the layer inputs gradient checkpointing keeps), and its
// initial weights (the base model's, plus LoRA
// adapters drawn as PEFT does: A kaiming-uniform with bound 1/sqrt(in), B zero). QLoRA is LoRA
// over the base linears stored as NF4: `blockLinearNames` (compiler/plan/storage.ts) names them,
// `nf4RoundTrip` (stdlib/quant/nf4.ts) gives the values an engine without NF4 storage (the float64 CPU engine) must use to train the same model.
// LoRA dropout: the training graphs read one mask per adapted linear, drawn on the host from the
// run's `dropout` stream (seedFor(train.seed, "dropout")), module by module, element by element.
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { numel, type DType, type Node } from "../../compiler/ir/node.ts";
import { buildFamilyGraph, type FamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { layerInputs } from "../../compiler/plan/step-plan.ts";
import { familyFeeds } from "../../compiler/models/family-inputs.ts";
import { savedModuleTensors } from "../export/peft-family.ts";
import { loraNativeTargets } from "../export/torch/model-py.ts";
import { initialAdapters } from "../export/torch/write-job.ts";
import { planMethod, savedModules } from "../../compiler/plan/settings.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { seedFor } from "../data/split.ts";
import type { Random } from "../random.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { IGNORE_INDEX, type Batch } from "../train/backend.ts";
import type { GraphModel } from "../train/cpu-backend.ts";

/**
 * The graph method of a pipeline's method block; QLoRA trains its adapters like LoRA. The graph
 * scales the LoRA path by alpha / rank: rsLoRA's alpha / sqrt(rank) is alpha · sqrt(rank) there.
 */
export function trainingMethod(method: ResolvedPipeline["method"]): TrainingMethod {
  if (method.kind === "full") return { kind: "full" };
  const rank = Number(method.rank ?? 8);
  const alpha = Number(method.alpha ?? 16) * (method.rslora === true ? Math.sqrt(rank) : 1);
  return { kind: "lora", rank, alpha, targets: (method.targets as string[] | undefined) ?? ["all"], dropout: Number(method.dropout ?? 0) };
}

/** The base weights `modules_to_save` trains beside the adapters, by checkpoint name. */
export function savedWeightNames(family: Family, config: ModelConfig, method: ResolvedPipeline["method"]): string[] {
  return savedModules(planMethod(method)).flatMap((m) => savedModuleTensors(family, config, m)?.tensors.map((t) => t.name) ?? []);
}

/** A family graph model that also names what gradient checkpointing keeps. */
export interface FamilyGraphModel extends GraphModel {
  /** Each layer's input in the graph of `loss` (one `lossFor` returned). */
  layerInputs(loss: Node): Node[];
}

export interface FamilyModelOptions {
  /** Base weights trained beside the adapters (LoRA's modules_to_save), by checkpoint name. */
  saved?: readonly string[];
  /** train.seed, from which LoRA dropout's mask stream is seeded. */
  seed?: number;
  /** Frozen weights stored narrower than f32 (frozenWeightDtypes). */
  weightDtypes?: ReadonlyMap<string, DType>;
  /** The base linears are NF4 (QLoRA): the graph is LoRA's, the model is named "qlora". */
  quantized?: boolean;
}

/**
 * The family graph of `method` as a trainable model: the graph's own trainable tensors (every
 * weight, or the adapters) plus the base weights named in `saved`.
 */
export function familyGraphModel(family: Family, config: ModelConfig, method: TrainingMethod, options: FamilyModelOptions = {}): Result<FamilyGraphModel> {
  const { saved = [], seed = 0, weightDtypes = new Map(), quantized = false } = options;
  const probe = buildFamilyGraph(family, config, { batch: 1, seq: 2, method, weightDtypes });
  if (!probe.ok) return probe;
  const graphs = new WeakMap<Node, FamilyGraph>();
  const dropout = method.kind === "lora" ? (method.dropout ?? 0) : 0;
  const masksByShape = new Map<string, Node[]>();
  const maskInputs = (rows: number, seq: number): Node[] => {
    const key = `${rows}x${seq}`;
    let masks = masksByShape.get(key);
    if (!masks) masksByShape.set(key, (masks = build(rows, seq, true).dropoutMasks));
    return masks;
  };
  const build = (rows: number, seq: number, training = false) => {
    const built = buildFamilyGraph(family, config, { batch: rows, seq, method, training, weightDtypes });
    invariant(built.ok, "the dimensions were checked with the first batch shape");
    graphs.set(built.value.loss, built.value);
    return built.value;
  };
  return ok({
    name: `${family.name} ${quantized ? "qlora" : method.kind}`,
    trainable: [...probe.value.trainable, ...saved.flatMap((name) => probe.value.weights.get(name) ?? [])].map((p) => ({ name: p.attrs.name!, shape: p.shape })),
    lossFor: (rows, seq, training) => build(rows, seq, training).loss,
    ...(dropout > 0 ? { dropout: { seed: seedFor(seed, "dropout"), masks: (rows: number, seq: number, random: Random) => dropoutMasks(maskInputs(rows, seq), dropout, random) } } : {}),
    layerInputs: (loss) => {
      const g = graphs.get(loss);
      invariant(g, "layerInputs takes a loss that lossFor returned");
      return layerInputs(g, family, config.dims.layers);
    },
    inputs: (batch) => {
      invariant(!batch.segments?.some((s) => s > 1), "the family graphs train unpacked rows (packing is refused before training)");
      const feeds = familyFeeds(family, config, graphRows(batch));
      invariant(feeds.ok, `family inputs: ${feeds.ok || feeds.diagnostics.map((d) => d.message).join("; ")}`);
      return feeds.value;
    },
  });
}

/** Inverted dropout masks for `inputs`, in order, element by element: 0 with probability p, else 1 / (1 - p). */
function dropoutMasks(inputs: readonly Node[], p: number, random: Random): Map<string, Float64Array> {
  const kept = 1 / (1 - p);
  return new Map(inputs.map((mask) => [mask.attrs.name!, Float64Array.from({ length: numel(mask.shape) }, () => (random.uniform() < p ? 0 : kept))]));
}

/**
 * The batch as the family graph reads it: its loss shifts (logits[t] against labels[t + 1]), the
 * loop's batches carry next-token labels, so each row's labels move one place right.
 */
function graphRows(batch: Batch): { ids: number[][]; labels: number[][] } {
  const ids: number[][] = [];
  const labels: number[][] = [];
  for (let r = 0; r < batch.rows; r++) {
    const at = r * batch.seq;
    ids.push(Array.from(batch.ids.subarray(at, at + batch.seq)));
    labels.push([IGNORE_INDEX, ...batch.labels.subarray(at, at + batch.seq - 1)]);
  }
  return { ids, labels };
}

/** The base weights plus, for LoRA, adapters drawn from `seed`. */
export function initialWeights(family: Family, config: ModelConfig, method: TrainingMethod, base: ReadonlyMap<string, Float64Array>, seed: number): Result<Map<string, Float64Array>> {
  const weights = new Map(base);
  if (method.kind === "full") return ok(weights);
  const natives = loraNativeTargets(family, method.targets);
  if (!natives.ok) return natives;
  for (const m of initialAdapters(family, config, method.rank, natives.value, seed)) {
    weights.set(`${m.modulePath}.lora_A.weight`, Float64Array.from(m.a));
    weights.set(`${m.modulePath}.lora_B.weight`, Float64Array.from(m.b));
  }
  return ok(weights);
}
