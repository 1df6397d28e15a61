// Training and eval batches from prepared datasets, with a position that a checkpoint stores
// and a resumed run restores exactly.
//
// Per epoch (mix.ts gives the mixed, shuffled example order):
//   - without packing, examples are grouped by length: the order is cut into mega-batches of
//     64 batches, each sorted by length (longest first) and cut into batches, and the batches
//     are then shuffled (Hugging Face's group_by_length does the same), so a batch pads little;
//   - with packing, examples fill rows of up to `rowLength` tokens in order (next fit: a row is
//     closed when the next example does not fit), `batchSize` rows a batch.
// The last batch of an epoch may be smaller. Eval batches take each dataset's held-out
// examples in file order, unpacked.
//
// A position is (epoch, batch) plus the seed and a fingerprint of the data and batch settings.
// All randomness is derived from (seed, epoch), so the position is the whole state: no
// generator state needs saving, and a position taken with other data is refused (SFT5322).
import { createHash } from "node:crypto";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { Random } from "../random.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { collate, type Batch } from "./collate.ts";
import { epochExamples, epochQuotas, type ExampleRef, type MixInput } from "./mix.ts";
import { prepareData, type PreparedDataset, type PrepareOptions } from "./prepare.ts";
import { seedFor, splitExamples, type Split } from "./split.ts";
import { openEncoder } from "./tokenize-chunk.ts";

export interface BatchOptions {
  seed: number;
  batchSize: number;
  evalBatchSize: number;
  packing: boolean;
  /** Longest packed row: the largest max_length of the datasets. */
  rowLength: number;
  padId: number;
}

/** Where the next batch comes from. Plain JSON, for checkpoints. */
export interface DataPosition {
  epoch: number;
  /** Index of the next batch within the epoch. */
  batch: number;
  seed: number;
  fingerprint: string;
}

export interface PositionedBatch {
  batch: Batch;
  /** The position of this batch. */
  position: DataPosition;
  /** The position of the batch after it (store this in a checkpoint taken after the step). */
  next: DataPosition;
}

const megaBatches = 64;

/** The pad id: the tokenizer's pad, else its eos (MOSS pads with <eom>, models.md §3.4), else 0. */
export function padIdOf(tokenizer: Tokenizer): number {
  return tokenizer.special.pad ?? tokenizer.special.eos ?? 0;
}

export class TrainingData {
  readonly splits: Split[];
  readonly fingerprint: string;
  private readonly mix: MixInput[];
  private cached?: { epoch: number; batches: ExampleRef[][][] };

  private constructor(
    readonly datasets: PreparedDataset[],
    readonly options: BatchOptions,
  ) {
    this.splits = datasets.map((d) => splitExamples(d.store, d.conversations, d.plan.evalSplit, options.seed, d.plan.name));
    this.mix = datasets.map((d, i) => ({ name: d.plan.name, weight: d.plan.weight, shuffle: d.plan.shuffle, train: this.splits[i].train }));
    // The eval batch size does not change the training order, so it may change on resume.
    const { evalBatchSize: _, ...order } = options;
    const shape = { order, datasets: datasets.map((d, i) => ({ name: d.plan.name, weight: d.plan.weight, shuffle: d.plan.shuffle, train: this.splits[i].train.length, tokens: d.store.chunk.ids.length })) };
    this.fingerprint = createHash("sha256").update(JSON.stringify(shape)).digest("hex").slice(0, 16);
  }

  /** Splits and schedules prepared datasets; refuses what cannot be trained. */
  static create(datasets: PreparedDataset[], options: BatchOptions): Result<TrainingData> {
    if (options.packing) {
      const prefixed = datasets.find((d) => d.plan.encoder.template === "chatglm");
      if (prefixed) {
        return fail(
          diag("SFT5320", `dataset ${prefixed.plan.name}: packing is not possible with the chatglm template`, {
            hint: "ChatGLM-6B attends each prompt in both directions (a prefix mask per example); set train.packing = false",
          }),
        );
      }
    }
    const data = new TrainingData(datasets, options);
    if (data.mix.every((d) => d.train.length === 0)) {
      return fail(diag("SFT5321", "no training examples: every dataset is empty after filters, drops and the eval split", { hint: "check the datasets' filters, max_length and eval_split" }));
    }
    return ok(data);
  }

  /** The position of the first batch. */
  start(): DataPosition {
    return { epoch: 0, batch: 0, seed: this.options.seed, fingerprint: this.fingerprint };
  }

  /** Accepts a stored position only for the same data, seed and batch settings. */
  resume(position: DataPosition): Result<DataPosition> {
    if (position.seed !== this.options.seed || position.fingerprint !== this.fingerprint) {
      const what = position.seed !== this.options.seed ? `seed ${position.seed}, not ${this.options.seed}` : "other datasets or batch settings";
      return fail(diag("SFT5322", `the saved data position was taken with ${what}`, { hint: "resume with the pipeline and data of the checkpoint's run, or start a new run" }));
    }
    return ok(position);
  }

  /** Examples each dataset contributes to every epoch (mix.ts). */
  epochQuotas(): number[] {
    return epochQuotas(this.mix);
  }

  /** Batches in epoch `epoch`. */
  epochLength(epoch: number): number {
    return this.epochBatches(epoch).length;
  }

  /** Batches from `from` on, across epochs, without end; the caller stops at its step count. */
  *batches(from: DataPosition = this.start()): Generator<PositionedBatch> {
    let { epoch, batch } = from;
    const stores = this.datasets.map((d) => d.store);
    for (;;) {
      const plan = this.epochBatches(epoch);
      if (batch >= plan.length) {
        epoch++;
        batch = 0;
        continue;
      }
      const position = { ...from, epoch, batch };
      const next = batch + 1 < plan.length ? { ...from, epoch, batch: batch + 1 } : { ...from, epoch: epoch + 1, batch: 0 };
      yield { batch: collate(plan[batch], stores, this.options.padId), position, next };
      ({ epoch, batch } = next);
    }
  }

  /** The held-out examples, dataset by dataset in file order. */
  evalBatches(): Batch[] {
    const refs = this.splits.flatMap((s, dataset) => Array.from(s.eval, (index) => [{ dataset, index }]));
    const stores = this.datasets.map((d) => d.store);
    const out: Batch[] = [];
    for (let i = 0; i < refs.length; i += this.options.evalBatchSize) out.push(collate(refs.slice(i, i + this.options.evalBatchSize), stores, this.options.padId));
    return out;
  }

  /** Rows of each batch of an epoch (each row one example unless packing). */
  epochBatches(epoch: number): ExampleRef[][][] {
    if (this.cached?.epoch === epoch) return this.cached.batches;
    const order = epochExamples(this.mix, this.options.seed, epoch);
    const batches = this.options.packing ? this.packed(order) : this.grouped(order, epoch);
    this.cached = { epoch, batches };
    return batches;
  }

  private length(ref: ExampleRef): number {
    return this.datasets[ref.dataset].store.length(ref.index);
  }

  private grouped(order: ExampleRef[], epoch: number): ExampleRef[][][] {
    const { batchSize } = this.options;
    const batches: ExampleRef[][][] = [];
    const group = this.mix.some((d) => d.shuffle);
    const span = group ? megaBatches * batchSize : batchSize;
    for (let m = 0; m < order.length; m += span) {
      const mega = order.slice(m, m + span);
      if (group) mega.sort((a, b) => this.length(b) - this.length(a));
      for (let i = 0; i < mega.length; i += batchSize) batches.push(mega.slice(i, i + batchSize).map((ref) => [ref]));
    }
    if (group) new Random(seedFor(this.options.seed, "batches", epoch)).shuffle(batches);
    return batches;
  }

  private packed(order: ExampleRef[]): ExampleRef[][][] {
    const rows: ExampleRef[][] = [];
    let row: ExampleRef[] = [];
    let fill = 0;
    for (const ref of order) {
      const n = this.length(ref);
      if (row.length > 0 && fill + n > this.options.rowLength) {
        rows.push(row);
        row = [];
        fill = 0;
      }
      row.push(ref);
      fill += n;
    }
    if (row.length > 0) rows.push(row);
    const batches: ExampleRef[][][] = [];
    for (let i = 0; i < rows.length; i += this.options.batchSize) batches.push(rows.slice(i, i + this.options.batchSize));
    return batches;
  }
}

/** Prepares a pipeline's datasets and schedules them with its `train` settings. */
export async function loadTrainingData(pipeline: ResolvedPipeline, options: PrepareOptions = {}): Promise<Result<TrainingData>> {
  const prepared = await prepareData(pipeline, options);
  if (!prepared.ok) return prepared;
  const diagnostics: Diagnostic[] = prepared.diagnostics;
  const first = prepared.value[0];
  if (!first) return fail(diag("SFT5321", "no training examples: the pipeline has no dataset", { hint: "add a dataset block" }));
  const open = await openEncoder(first.plan.encoder);
  if (!open.ok) return fail(...diagnostics, ...open.diagnostics);
  const train = pipeline.train;
  const batchSize = Number(train.batch_size ?? 1);
  const data = TrainingData.create(prepared.value, {
    seed: Number(train.seed ?? 42),
    batchSize,
    evalBatchSize: Number(train.eval_batch_size ?? batchSize),
    packing: train.packing === true,
    rowLength: Math.max(...prepared.value.map((d) => d.plan.encoder.maxLength)),
    padId: padIdOf(open.value.encoder.tokenizer),
  });
  return data.ok ? ok(data.value, [...diagnostics, ...data.diagnostics]) : fail(...diagnostics, ...data.diagnostics);
}
