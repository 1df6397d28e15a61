// Shared by the torchrun export tests: synthetic SFT examples for a fixture family, a job exported
// for them, running the job's train.py with Debian's PyTorch, and sftc's own float64 run of the
// same pipeline (runtime/train's loop over the family graph, differentiated and interpreted).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { ok, type Result } from "../../compiler/diagnostics.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { buildFamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { familyFeeds } from "../../compiler/models/family-inputs.ts";
import type { Graph } from "../../compiler/ir/node.ts";
import { writeTorchJob, initialAdapters, type JobData, type JobExample, type JobMethod } from "../../compiler/targets/torch/write-job.ts";
import { loraNativeTargets } from "../../compiler/targets/torch/model-py.ts";
import { Random } from "../../runtime/random.ts";
import { appliesWeightDecay, labelTokens, type AdamWUpdate, type Batch, type LossSum, type StateTensor, type TrainingBackend } from "../../runtime/train/backend.ts";
import type { Json, TrainingData } from "../../runtime/train/data-source.ts";
import { trainLoop } from "../../runtime/train/loop.ts";
import { TRAIN_DEFAULTS, type TrainSettings } from "../../runtime/train/settings.ts";
import { adamwRef } from "../../stdlib/kernels/adamw.ts";
import { gradNormRef } from "../../stdlib/kernels/grad-clip.ts";
import type { FamilyName } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { loadFixture, type Fixture } from "../models/support.ts";
import { expectOk } from "../support/result.ts";

export const PYTHON = "/usr/bin/python3";

/** Whether Debian's PyTorch is there (the tests that need it register only then). */
export function hasTorch(): boolean {
  return spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" }).status === 0;
}

/** The settings of the test pipelines: 4 steps of 2 micro-batches of 2 rows, clipping and decay on. */
export const SETTINGS: TrainSettings = {
  ...TRAIN_DEFAULTS,
  max_steps: 4,
  grad_accum: 2,
  lr: 2e-2,
  weight_decay: 0.01,
  schedule: { type: "linear", warmup_steps: 1 },
  max_grad_norm: 1,
  seed: 7,
  save_every: 2,
};
const BATCH_SIZE = 2;
const EXAMPLES = 8;

/**
 * Prompt + answer + eos examples of 5 to 12 tokens with labels on the answer; GLM families end
 * the prompt with their mask and start tokens, and train from the start token (models.md 4.4).
 */
export function syntheticExamples(f: Fixture, seed: number): JobExample[] {
  const random = new Random(seed);
  const mask = f.family.attention.mask;
  const eos = f.config.tokens.eos[0] % f.config.dims.vocab;
  return Array.from({ length: EXAMPLES }, () => {
    const prompt = Array.from({ length: 2 + random.int(4) }, () => 5 + random.int(395));
    const answer = Array.from({ length: 2 + random.int(5) }, () => 5 + random.int(395));
    if (mask.kind === "glm_prefix") {
      const start = f.config.tokens.specials[mask.startToken];
      const ids = [...prompt, f.config.tokens.specials[mask.maskToken], start, ...answer, eos];
      return { inputIds: ids, labels: ids.map((id, t) => (t <= prompt.length ? -100 : id)) };
    }
    const ids = [...prompt, ...answer, eos];
    return { inputIds: ids, labels: ids.map((id, t) => (t < prompt.length ? -100 : id)) };
  });
}

/** Consecutive micro-batches of BATCH_SIZE examples, their order reshuffled every epoch. */
function batchOrder(seed: number): (epoch: number) => number[][] {
  return (epoch) => {
    const batches = Array.from({ length: EXAMPLES / BATCH_SIZE }, (_, i) => Array.from({ length: BATCH_SIZE }, (_, j) => i * BATCH_SIZE + j));
    return new Random(seed + epoch).shuffle(batches);
  };
}

export interface ExportedJob {
  fixture: Fixture;
  data: JobData;
  method: JobMethod;
}

/** Exports a job for the fixture checkpoint of `name` into `dir`. */
export async function exportJob(name: FamilyName, dir: string, method: JobMethod): Promise<ExportedJob> {
  const fixture = await loadFixture(name);
  const data: JobData = { examples: syntheticExamples(fixture, 11), epochBatches: batchOrder(SETTINGS.seed), padId: fixture.config.tokens.pad ?? 0 };
  expectOk(
    await writeTorchJob(dir, {
      pipeline: { name: `${name}_test`, resolved: { model: { family: name } } },
      family: fixture.family,
      config: fixture.config,
      modelDir: join(FIXTURES, name),
      method,
      train: SETTINGS,
      data,
    }),
  );
  return { fixture, data, method };
}

export interface StepRecord {
  step: number;
  loss: number;
  grad_norm: number;
}

/** Runs the job's train.py; returns the steps of run/metrics.jsonl. */
export function runJob(dir: string, run: string, args: string[]): StepRecord[] {
  const result = spawnSync(PYTHON, [join(dir, "train.py"), "--device", "cpu", "--run", run, ...args], { encoding: "utf8", timeout: 120_000 });
  if (result.status !== 0) throw new Error(`train.py ${args.join(" ")} failed (${result.status}):\n${result.stderr.slice(-3000)}`);
  return readFileSync(join(run, "metrics.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line) as StepRecord);
}

/** sftc's own float64 run of the job's pipeline: the loss of every step. */
export async function sftcLosses(job: ExportedJob, runDir: string): Promise<number[]> {
  await mkdir(runDir, { recursive: true });
  const backend = new FamilyGraphBackend(job);
  const losses: number[] = [];
  const result = await trainLoop({
    settings: SETTINGS,
    backend,
    data: new OrderedData(job.data, BATCH_SIZE),
    runDir,
    title: "torch export reference",
    onRecord: (r) => {
      if (r.kind === "train") losses.push(r.loss);
    },
  });
  expectOk(result);
  return losses;
}

/** The job's micro-batches in its order, as the loop's data source. */
class OrderedData implements TrainingData {
  private at = 0;
  private readonly stream: Batch[] = [];

  constructor(
    private readonly data: JobData,
    private readonly batchSize: number,
  ) {}

  get batchesPerEpoch(): number {
    return this.data.examples.length / this.batchSize;
  }

  next(): Batch {
    while (this.stream.length <= this.at) {
      const epoch = this.stream.length / this.batchesPerEpoch;
      for (const mb of this.data.epochBatches(epoch)) this.stream.push(this.collate(mb));
    }
    return this.stream[this.at++];
  }

  private collate(indices: readonly number[]): Batch {
    const rows = indices.map((i) => this.data.examples[i]);
    const seq = Math.max(...rows.map((r) => r.inputIds.length));
    const ids = new Int32Array(rows.length * seq).fill(this.data.padId);
    const labels = new Int32Array(rows.length * seq).fill(-100);
    rows.forEach((r, b) => {
      ids.set(Array.from(r.inputIds), b * seq);
      labels.set(Array.from(r.labels), b * seq);
    });
    return { rows: rows.length, seq, ids, labels };
  }

  position(): Json {
    return this.at;
  }

  seek(position: Json): Result<number> {
    return ok((this.at = position as number));
  }

  evalBatches(): Batch[] {
    return [];
  }
}

interface Slot {
  name: string;
  value: Float64Array;
  grad: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** The family graph as a float64 training engine: full fine-tuning or LoRA. */
class FamilyGraphBackend implements TrainingBackend {
  readonly device = "cpu-float64 (family graph)";
  private readonly values: Map<string, Float64Array>;
  private readonly slots: Slot[];
  private readonly graphs = new Map<string, Graph>();
  private readonly method: TrainingMethod;

  constructor(private readonly job: ExportedJob) {
    const { fixture, method } = job;
    this.values = new Map([...fixture.weights].map(([k, v]) => [k, Float64Array.from(v)]));
    this.method = method.kind === "full" ? { kind: "full" } : { kind: "lora", rank: method.rank, alpha: method.alpha, targets: method.targets };
    if (method.kind !== "full") {
      const natives = expectOk(loraNativeTargets(fixture.family, method.targets));
      for (const m of initialAdapters(fixture.family, fixture.config, method.rank, natives, SETTINGS.seed)) {
        this.values.set(`${m.modulePath}.lora_A.weight`, Float64Array.from(m.a));
        this.values.set(`${m.modulePath}.lora_B.weight`, Float64Array.from(m.b));
      }
    }
    const g = expectOk(buildFamilyGraph(fixture.family, fixture.config, { batch: 1, seq: 2, method: this.method }));
    this.slots = g.trainable.map((p) => {
      const value = this.values.get(p.attrs.name!)!;
      return { name: p.attrs.name!, value, grad: new Float64Array(value.length), m: new Float64Array(value.length), v: new Float64Array(value.length) };
    });
  }

  private run(batch: Batch, withGradients: boolean): Map<string, Float64Array> {
    const key = `${batch.rows}x${batch.seq}:${withGradients}`;
    let graph = this.graphs.get(key);
    if (!graph) {
      const g = expectOk(buildFamilyGraph(this.job.fixture.family, this.job.fixture.config, { batch: batch.rows, seq: batch.seq, method: this.method }));
      graph = withGradients ? expectOk(trainingGraph(g.loss, g.trainable)).graph : g.graph;
      this.graphs.set(key, graph);
    }
    const rows = (a: Int32Array) => Array.from({ length: batch.rows }, (_, b) => Array.from(a.subarray(b * batch.seq, (b + 1) * batch.seq)));
    const inputs = expectOk(familyFeeds(this.job.fixture.family, this.job.fixture.config, { ids: rows(batch.ids), labels: rows(batch.labels) }));
    return expectOk(interpret(graph, new Map([...this.values, ...inputs])));
  }

  forwardBackward(batch: Batch, gradScale: number): LossSum {
    const out = this.run(batch, true);
    const tokens = labelTokens(batch);
    for (const s of this.slots) {
      const g = out.get(`grad.${s.name}`)!;
      for (let i = 0; i < g.length; i++) s.grad[i] += g[i] * tokens * gradScale; // the graph's loss is this batch's token mean
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
      adamwRef(s.value, s.grad, s.m, s.v, u.step, { lr: u.lr, beta1: u.beta1, beta2: u.beta2, eps: u.eps, weightDecay }, u.gradScale);
    }
  }

  evaluate(batch: Batch): LossSum {
    const tokens = labelTokens(batch);
    return { lossSum: this.run(batch, false).get("loss")![0] * tokens, tokens };
  }

  saveState(): StateTensor[] {
    return this.slots.map((s) => ({ name: s.name, shape: [s.value.length], data: Float64Array.from(s.value) }));
  }

  loadState(): string {
    return "the reference engine does not resume";
  }

  randomStates(): Record<string, number> {
    return {};
  }

  setRandomStates(): void {}
}
