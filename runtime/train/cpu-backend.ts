// The float64 CPU reference engine: a model's op graph (the tiny transformer here, any graph
// model elsewhere), differentiated by autodiff and run by the IR interpreter; clipping and AdamW
// through the CPU references beside their GPU kernels (stdlib/kernels/grad-clip.ts, adamw.ts).
// Slow and exact: it is what a GPU engine's training run is compared with, and what the loop's
// own tests run on.
import { GRAD_OUTPUT, trainingGraph } from "../../compiler/autodiff/grad.ts";
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { interpret, type Feeds } from "../../compiler/ir/interpret.ts";
import { graph, numel, topoSort, type Graph, type Node } from "../../compiler/ir/node.ts";
import { tinyTransformer, type TinyTransformerOptions } from "../../compiler/models/tiny-transformer.ts";
import { adamwRef } from "../../stdlib/kernels/adamw.ts";
import { gradNormRef } from "../../stdlib/kernels/grad-clip.ts";
import { Random } from "../random.ts";
import { appliesWeightDecay, labelTokens, matchStateTensors, type AdamWUpdate, type Batch, type LossSum, type StateTensor, type TrainingBackend } from "./backend.ts";

/**
 * A model the CPU engine can train: its forward graph for any batch shape (the loss being the
 * token mean of the batch, as the graph's cross-entropy computes it) and the graph inputs of a
 * batch. Weights are fed by parameter name.
 */
export interface GraphModel {
  /** Names the device line of the manifest. */
  readonly name: string;
  /** The parameters that train, with their shapes; every other parameter stays frozen. */
  readonly trainable: readonly { name: string; shape: readonly number[] }[];
  /** The token-mean loss of a batch of `rows` x `seq` tokens; `training`: the graph to differentiate (dropout masks as inputs). */
  lossFor(rows: number, seq: number, training?: boolean): Node;
  /** LoRA dropout: the `dropout` stream's seed, and fresh masks for the (rows, seq) training graph drawn from it. */
  readonly dropout?: { seed: number; masks(rows: number, seq: number, random: Random): Feeds };
  /** The graph's non-parameter inputs for `batch`, by input name. */
  inputs(batch: Batch): Feeds;
}

interface Graphs {
  training: Graph;
  evaluation: Graph;
}

interface Slot {
  name: string;
  shape: number[];
  weight: Float64Array;
  grad: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

const MOMENT_PREFIX = { m: "adamw.exp_avg.", v: "adamw.exp_avg_sq." };

/**
 * An engine's `dropout` random stream (models with LoRA dropout; empty otherwise): one fresh set
 * of masks per training micro-batch, and its state for checkpoints, so a resumed run draws on.
 */
export class DropoutStream {
  private readonly random: Random | undefined;

  constructor(private readonly model: GraphModel) {
    this.random = model.dropout && new Random(model.dropout.seed);
  }

  /** The masks of one training micro-batch of `batch`'s shape, by input name. */
  next(batch: Batch): Feeds {
    return this.random ? this.model.dropout!.masks(batch.rows, batch.seq, this.random) : new Map();
  }

  states(): Record<string, number> {
    return this.random ? { dropout: this.random.getState() } : {};
  }

  restore(states: Record<string, number>): void {
    if (this.random && states.dropout !== undefined) this.random.setState(states.dropout);
  }
}

export class CpuBackend implements TrainingBackend {
  readonly device: string;
  private readonly graphs = new Map<string, Graphs>();
  private readonly slots: Slot[];
  private readonly dropout: DropoutStream;

  private constructor(
    private readonly model: GraphModel,
    private readonly weights: Map<string, Float64Array>,
  ) {
    this.device = `cpu-float64 (${model.name}, op-graph interpreter)`;
    this.dropout = new DropoutStream(model);
    this.slots = model.trainable.map(({ name, shape }) => {
      const weight = weights.get(name)!;
      return { name, shape: [...shape], weight, grad: new Float64Array(weight.length), m: new Float64Array(weight.length), v: new Float64Array(weight.length) };
    });
  }

  /** The engine for `model` from its initial `weights` (copied); a missing or mis-sized trainable weight is SFT4002. */
  static create(model: GraphModel, weights: ReadonlyMap<string, ArrayLike<number>>): Result<CpuBackend> {
    for (const { name, shape } of model.trainable) {
      const given = weights.get(name);
      if (given?.length !== numel(shape)) {
        const problem = given ? `has ${given.length} values, expected ${numel(shape)}` : "is missing";
        return fail(diag("SFT4002", `The initial weight '${name}' ${problem}.`, { where: name, hint: `Give a value for every parameter, shape [${shape}].` }));
      }
    }
    return ok(new CpuBackend(model, new Map([...weights].map(([name, v]) => [name, Float64Array.from(v)]))));
  }

  private graphsFor(batch: Batch): Graphs {
    const key = `${batch.rows}x${batch.seq}`;
    let g = this.graphs.get(key);
    if (!g) {
      const loss = this.model.lossFor(batch.rows, batch.seq, true);
      const trained = new Set(this.slots.map((s) => s.name));
      const params = topoSort([loss]).filter((n) => n.op === "param" && trained.has(n.attrs.name!));
      const training = trainingGraph(loss, params);
      invariant(training.ok, `the training graph of ${this.model.name}: ${training.diagnostics.map((d) => d.message).join("; ")}`);
      // with dropout, evaluation reads a graph without masks; without, the same loss serves both
      const evaluation = this.model.dropout ? this.model.lossFor(batch.rows, batch.seq) : loss;
      g = { training: training.value.graph, evaluation: graph([["loss", evaluation]]) };
      this.graphs.set(key, g);
    }
    return g;
  }

  private run(g: Graph, batch: Batch, masks: Feeds = new Map()): Map<string, Float64Array> {
    const out = interpret(g, new Map([...this.weights, ...this.model.inputs(batch), ...masks]));
    invariant(out.ok, `${this.model.name}: ${out.ok || out.diagnostics.map((d) => d.message).join("; ")}`);
    return out.value;
  }

  forwardBackward(batch: Batch, gradScale: number): LossSum {
    const out = this.run(this.graphsFor(batch).training, batch, this.dropout.next(batch));
    const tokens = labelTokens(batch);
    // the graph's loss is the token mean of this micro-batch: scale its gradient to the sum
    const factor = tokens * gradScale;
    for (const s of this.slots) {
      const g = out.get(GRAD_OUTPUT + s.name)!;
      for (let i = 0; i < g.length; i++) s.grad[i] += g[i] * factor;
    }
    return { lossSum: out.get("loss")![0] * tokens, tokens };
  }

  zeroGradients(): void {
    for (const s of this.slots) s.grad.fill(0);
  }

  gradientNorm(): number {
    return gradNormRef(this.slots.map((s) => s.grad), 1)[0];
  }

  applyAdamW(u: AdamWUpdate): void {
    for (const s of this.slots) {
      const weightDecay = appliesWeightDecay(s.name) ? u.weightDecay : 0;
      adamwRef(s.weight, s.grad, s.m, s.v, u.step, { lr: u.lr, beta1: u.beta1, beta2: u.beta2, eps: u.eps, weightDecay }, u.gradScale);
    }
  }

  evaluate(batch: Batch): LossSum {
    const tokens = labelTokens(batch);
    return { lossSum: this.run(this.graphsFor(batch).evaluation, batch).get("loss")![0] * tokens, tokens };
  }

  saveState(): StateTensor[] {
    return this.slots.flatMap((s) => [
      { name: s.name, shape: s.shape, data: Float64Array.from(s.weight) },
      { name: MOMENT_PREFIX.m + s.name, shape: s.shape, data: Float64Array.from(s.m) },
      { name: MOMENT_PREFIX.v + s.name, shape: s.shape, data: Float64Array.from(s.v) },
    ]);
  }

  loadState(tensors: readonly StateTensor[]): string | undefined {
    const targets = this.slots.flatMap((s) => [
      [s.name, s.weight],
      [MOMENT_PREFIX.m + s.name, s.m],
      [MOMENT_PREFIX.v + s.name, s.v],
    ] as const);
    const found = matchStateTensors(tensors, targets.map(([name, target]) => [name, target.length] as const));
    if (typeof found === "string") return found;
    for (const [name, target] of targets) target.set(found.get(name)!);
    return undefined;
  }

  randomStates(): Record<string, number> {
    return this.dropout.states();
  }

  setRandomStates(states: Record<string, number>): void {
    this.dropout.restore(states);
  }

  memoryBytes(): number {
    let n = 0;
    for (const w of this.weights.values()) n += w.byteLength;
    return n + this.slots.reduce((sum, s) => sum + 3 * s.weight.byteLength, 0);
  }

  /** Current value of a weight (frozen or trainable), for inspection. */
  weight(name: string): Float64Array | undefined {
    return this.weights.get(name);
  }
}

/** The tiny transformer without its batch shape: each micro-batch shape gets its own graph. */
export type TinyModelOptions = Omit<TinyTransformerOptions, "batch" | "seq">;

export interface TinyBackendOptions {
  model: TinyModelOptions;
  /** Initial weights by parameter name, or a seed for N(0, 0.02) matrices, unit norm weights and zero biases. */
  init: { seed: number } | { weights: ReadonlyMap<string, Float64Array> };
  /** Which parameters train (default: all). */
  trainable?: (name: string) => boolean;
}

/** The tiny transformer (compiler/models) as a graph model; positions come from the batch or count 0..seq-1. */
export function tinyTransformerModel(o: TinyModelOptions, trainable: (name: string) => boolean = () => true): Result<GraphModel> {
  const probe = tinyTransformer({ ...o, batch: 1, seq: 1 });
  if (!probe.ok) return probe;
  const sections = o.position.kind === "rope" && o.position.glm2d ? 2 : 1;
  return ok({
    name: "tiny transformer",
    trainable: probe.value.params.filter((p) => trainable(p.attrs.name!)).map((p) => ({ name: p.attrs.name!, shape: p.shape })),
    lossFor: (rows, seq) => {
      const built = tinyTransformer({ ...o, batch: rows, seq });
      invariant(built.ok, "the dimensions were checked with the first batch shape");
      return built.value.loss;
    },
    inputs: (batch) => {
      invariant(!batch.segments?.some((s) => s > 1), "the tiny transformer has no packed-row attention; train it on unpacked batches");
      // positions (B, T, sections): the token's position, and 0 for the GLM block stream; no prefix
      const positions = new Float64Array(batch.rows * batch.seq * sections);
      for (let i = 0; i < batch.rows * batch.seq; i++) positions[i * sections] = batch.positions ? batch.positions[i] : i % batch.seq;
      return new Map([
        ["ids", Float64Array.from(batch.ids)],
        ["labels", Float64Array.from(batch.labels)],
        ["positions", positions],
        ["prefix_len", new Float64Array(batch.rows)],
      ]);
    },
  });
}

/** The CPU reference engine on the tiny transformer; bad dimensions or initial weights are diagnostics. */
export function createCpuBackend(o: TinyBackendOptions): Result<CpuBackend> {
  const model = tinyTransformerModel(o.model, o.trainable);
  if (!model.ok) return model;
  if ("weights" in o.init) return CpuBackend.create(model.value, o.init.weights);
  const random = new Random(o.init.seed);
  const params = topoSort([model.value.lossFor(1, 1)]).filter((n) => n.op === "param"); // frozen ones too
  return CpuBackend.create(model.value, new Map(params.map((p) => [p.attrs.name!, initialWeight(p.attrs.name!, numel(p.shape), random)])));
}

/** Norm weights 1, biases 0, everything else N(0, 0.02^2) (Hugging Face's initializer_range). */
function initialWeight(name: string, n: number, random: Random): Float64Array {
  if (!appliesWeightDecay(name)) return new Float64Array(n).fill(name.endsWith(".bias") ? 0 : 1);
  return Float64Array.from({ length: n }, () => 0.02 * random.normal());
}
