// Where the loop gets its micro-batches: an endless stream over epochs with a position that a
// checkpoint can store, plus an optional fixed evaluation set. `MemoryData` is the simple
// deterministic source used by tests and small demos; the dataset pipeline (runtime/data)
// provides the same interface over real files.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { Random } from "../random.ts";
import type { Batch } from "./backend.ts";

/** A JSON value: what a data position may hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface TrainingData {
  /** Micro-batches in one pass over the training split (sizes `epochs` into steps). */
  readonly batchesPerEpoch: number;
  /** The next micro-batch; after the last one of an epoch the next epoch begins. */
  next(): Promise<Batch> | Batch;
  /** Where the stream stands, including any shuffling state: resuming there continues exactly. */
  position(): Json;
  /** Moves to a stored position; a diagnostic when it does not belong to this data. */
  seek(position: Json): Promise<Result<unknown>> | Result<unknown>;
  /** The held-out batches, the same every time; empty when there is no evaluation split. */
  evalBatches(): Promise<readonly Batch[]> | readonly Batch[];
}

interface MemoryPosition {
  epoch: number;
  index: number;
  /** The shuffle generator's state at the start of `epoch`. */
  rng: number;
}

/**
 * Fixed in-memory micro-batches, reshuffled at every epoch from `seed` (or kept in order with
 * `shuffle: false`).
 */
export class MemoryData implements TrainingData {
  private readonly random: Random;
  private readonly shuffle: boolean;
  private order: number[] = [];
  private at: MemoryPosition;

  constructor(
    private readonly train: readonly Batch[],
    private readonly held: readonly Batch[] = [],
    options: { seed?: number; shuffle?: boolean } = {},
  ) {
    this.shuffle = options.shuffle ?? true;
    this.random = new Random(options.seed ?? 0);
    this.at = { epoch: 0, index: 0, rng: this.random.getState() };
    this.startEpoch();
  }

  get batchesPerEpoch(): number {
    return this.train.length;
  }

  private startEpoch(): void {
    this.at.rng = this.random.getState();
    this.order = this.train.map((_, i) => i);
    if (this.shuffle) this.random.shuffle(this.order);
  }

  next(): Batch {
    if (this.at.index === this.order.length) {
      this.at = { epoch: this.at.epoch + 1, index: 0, rng: 0 };
      this.startEpoch();
    }
    return this.train[this.order[this.at.index++]];
  }

  position(): Json {
    return { ...this.at };
  }

  seek(position: Json): Result<unknown> {
    const p = position as Partial<MemoryPosition> | null;
    const valid = p && [p.epoch, p.index, p.rng].every((v) => Number.isInteger(v) && (v as number) >= 0) && p.index! <= this.train.length;
    if (!valid) {
      const what = `data position ${JSON.stringify(position)} does not belong to this in-memory data (${this.train.length} batches)`;
      return fail(diag("SFT5403", what, { hint: "resume with the data of the checkpoint's run, or start a new run" }));
    }
    this.random.setState(p.rng!);
    this.at = { epoch: p.epoch!, index: 0, rng: 0 };
    this.startEpoch();
    this.at.index = p.index!;
    return ok(p);
  }

  evalBatches(): readonly Batch[] {
    return this.held;
  }
}
