// The float64 CPU reference engine: the tiny transformer's op graph, differentiated by autodiff
// and run by the IR interpreter; clipping and AdamW through the CPU references beside their GPU
// kernels (stdlib/kernels/grad-clip.ts, adamw.ts). Slow and exact: it is what a GPU engine's
// training run is compared with, and what the loop's own tests run on.
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { interpret, type Feeds } from "../../compiler/ir/interpret.ts";
import { graph, numel, type Graph } from "../../compiler/ir/node.ts";
import { tinyTransformer, type TinyTransformerOptions } from "../../compiler/models/tiny-transformer.ts";
import { adamwRef } from "../../stdlib/kernels/adamw.ts";
import { gradNormRef } from "../../stdlib/kernels/grad-clip.ts";
import { Random } from "../random.ts";
import { appliesWeightDecay, labelTokens, type AdamWUpdate, type Batch, type LossSum, type StateTensor, type TrainingBackend } from "./backend.ts";

/** The model without its batch shape: each micro-batch shape gets its own graph. */
export type CpuModelOptions = Omit<TinyTransformerOptions, "batch" | "seq">;

export interface CpuBackendOptions {
  model: CpuModelOptions;
  /** Initial weights by parameter name, or a seed for N(0, 0.02) matrices, unit norm weights and zero biases. */
  init: { seed: number } | { weights: ReadonlyMap<string, Float64Array> };
  /** Which parameters train (default: all); the others stay frozen and are not checkpointed. */
  trainable?: (name: string) => boolean;
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

export class CpuBackend implements TrainingBackend {
  readonly device = "cpu-float64 (op-graph interpreter)";
  private readonly graphs = new Map<string, Graphs>();

  constructor(
    private readonly model: CpuModelOptions,
    private readonly weights: Map<string, Float64Array>,
    private readonly slots: Slot[],
  ) {}

  private graphsFor(batch: Batch): Graphs {
    const key = `${batch.rows}x${batch.seq}`;
    let g = this.graphs.get(key);
    if (!g) {
      const built = tinyTransformer({ ...this.model, batch: batch.rows, seq: batch.seq });
      if (!built.ok) throw new Error(`sftc internal error: the model was checked at creation: ${built.diagnostics[0].message}`);
      const trained = new Set(this.slots.map((s) => s.name));
      const params = built.value.params.filter((p) => trained.has(p.attrs.name!));
      const training = trainingGraph(built.value.loss, params);
      if (!training.ok) throw new Error(`sftc internal error: ${training.diagnostics[0].message}`);
      g = { training: training.value.graph, evaluation: graph([["loss", built.value.loss]]) };
      this.graphs.set(key, g);
    }
    return g;
  }

  private feeds(batch: Batch): Feeds {
    invariant(!batch.segments?.some((s) => s > 1), "the CPU reference engine has no packed-row attention; train it on unpacked batches");
    const sections = this.model.position.kind === "rope" && this.model.position.glm2d ? 2 : 1;
    // positions (B, T, sections): the token's position, and 0 for the GLM block stream; no prefix
    const positions = new Float64Array(batch.rows * batch.seq * sections);
    for (let i = 0; i < batch.rows * batch.seq; i++) positions[i * sections] = batch.positions ? batch.positions[i] : i % batch.seq;
    return new Map([
      ...this.weights,
      ["ids", Float64Array.from(batch.ids)],
      ["labels", Float64Array.from(batch.labels)],
      ["positions", positions],
      ["prefix_len", new Float64Array(batch.rows)],
    ]);
  }

  private run(g: Graph, batch: Batch): Map<string, Float64Array> {
    const out = interpret(g, this.feeds(batch));
    if (!out.ok) throw new Error(`sftc internal error: ${out.diagnostics[0].message}`);
    return out.value;
  }

  forwardBackward(batch: Batch, gradScale: number): LossSum {
    const out = this.run(this.graphsFor(batch).training, batch);
    const tokens = labelTokens(batch);
    // the graph's loss is the token mean of this micro-batch: scale its gradient to the sum
    const factor = tokens * gradScale;
    for (const s of this.slots) {
      const g = out.get(`grad.${s.name}`)!;
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
    const byName = new Map(tensors.map((t) => [t.name, t]));
    const targets = this.slots.flatMap((s) => [
      [s.name, s.weight],
      [MOMENT_PREFIX.m + s.name, s.m],
      [MOMENT_PREFIX.v + s.name, s.v],
    ] as const);
    for (const [name, target] of targets) {
      const t = byName.get(name);
      if (!t) return `the checkpoint has no tensor ${name}`;
      if (t.data.length !== target.length) return `tensor ${name} has ${t.data.length} values in the checkpoint, the model needs ${target.length}`;
    }
    for (const [name, target] of targets) target.set(byName.get(name)!.data);
    return undefined;
  }

  randomStates(): Record<string, number> {
    return {}; // the reference model has no dropout
  }

  setRandomStates(): void {}

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

/** The CPU reference engine for `model`; bad dimensions or missing initial weights are diagnostics. */
export function createCpuBackend(o: CpuBackendOptions): Result<CpuBackend> {
  const built = tinyTransformer({ ...o.model, batch: 1, seq: 1 });
  if (!built.ok) return built;
  const weights = new Map<string, Float64Array>();
  const random = "seed" in o.init ? new Random(o.init.seed) : undefined;
  for (const p of built.value.params) {
    const name = p.attrs.name!;
    const n = numel(p.shape);
    if ("weights" in o.init) {
      const given = o.init.weights.get(name);
      if (given?.length !== n) {
        const problem = given ? `has ${given.length} values, expected ${n}` : "is missing";
        return fail(diag("SFT4002", `The initial weight '${name}' ${problem}.`, { where: name, hint: `Give a Float64Array of shape [${p.shape}] for every parameter.` }));
      }
      weights.set(name, Float64Array.from(given));
    } else weights.set(name, initialWeight(name, n, random!));
  }
  const trainable = o.trainable ?? (() => true);
  const slots = built.value.params
    .filter((p) => trainable(p.attrs.name!))
    .map((p) => {
      const n = numel(p.shape);
      const name = p.attrs.name!;
      return { name, shape: [...p.shape], weight: weights.get(name)!, grad: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
    });
  return ok(new CpuBackend(o.model, weights, slots));
}

/** Norm weights 1, biases 0, everything else N(0, 0.02^2) (Hugging Face's initializer_range). */
function initialWeight(name: string, n: number, random: Random): Float64Array {
  if (!appliesWeightDecay(name)) return new Float64Array(n).fill(name.endsWith(".bias") ? 0 : 1);
  return Float64Array.from({ length: n }, () => 0.02 * random.normal());
}
