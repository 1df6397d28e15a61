// Shared by the torchrun export tests: synthetic SFT examples for a fixture family, a job exported
// for them, running the job's train.py with Debian's PyTorch, and sftc's own float64 run of the
// same pipeline (runtime/train's loop and float64 CPU engine over runtime/pipeline's family model).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { writeTorchJob, type JobData, type JobExample, type JobMethod } from "../../runtime/export/torch/write-job.ts";
import { familyGraphModel, initialWeights } from "../../runtime/pipeline/family-model.ts";
import { Random } from "../../runtime/random.ts";
import type { Batch } from "../../runtime/train/backend.ts";
import { CpuBackend } from "../../runtime/train/cpu-backend.ts";
import type { Json, TrainingData } from "../../runtime/train/data-source.ts";
import { trainLoop } from "../../runtime/train/loop.ts";
import { TRAIN_DEFAULTS, type TrainSettings } from "../../runtime/train/settings.ts";
import type { FamilyName } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { loadFixture, type Fixture } from "../models/support.ts";
import { PYTHON } from "../support/python.ts";
import { expectOk } from "../support/result.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { GpuBackend } from "../../runtime/train/gpu-backend.ts";

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
export async function sftcLosses(job: ExportedJob, runDir: string, gpu?: GpuDevice): Promise<number[]> {
  await mkdir(runDir, { recursive: true });
  const { family, config, weights } = job.fixture;
  const method = trainingMethod(job.method);
  const model = expectOk(familyGraphModel(family, config, method));
  const initial = expectOk(initialWeights(family, config, method, weights, SETTINGS.seed));
  // the float64 reference engine, or sftc's WebGPU engine on `gpu`
  const backend = gpu ? expectOk(GpuBackend.create(gpu, model, initial)) : expectOk(CpuBackend.create(model, initial));
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

/** The job's micro-batches in its order, as the loop's data source (labels of the next token). */
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
      labels.set(Array.from(r.labels).slice(1), b * seq); // the next token's label at each position
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

/** The graph method of the job's method. */
function trainingMethod(method: JobMethod): TrainingMethod {
  return method.kind === "full" ? { kind: "full" } : { kind: "lora", rank: method.rank, alpha: method.alpha, targets: method.targets };
}
