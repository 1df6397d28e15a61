// The dataset pipeline's batches (runtime/data/batches.ts) as the loop's data source. Its
// labels are the trained tokens themselves (Hugging Face convention: the loss shifts); the
// loop's batches carry the next-token label at each position, so each row's labels move one
// place left here. Its position (epoch, batch, seed, data fingerprint) is the checkpoint's
// data position; a position from other data is refused by the pipeline (SFT5322).
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { DataPosition, PositionedBatch, TrainingData as PipelineBatches } from "../data/batches.ts";
import type { Batch as PipelineBatch } from "../data/collate.ts";
import { IGNORE_INDEX, type Batch } from "./backend.ts";
import type { Json, TrainingData } from "./data-source.ts";

/** A pipeline batch with next-token labels: labels[b, t] = pipeline labels[b, t + 1]. */
export function nextTokenBatch(b: PipelineBatch): Batch {
  const T = b.length;
  const labels = new Int32Array(b.rows * T).fill(IGNORE_INDEX);
  for (let r = 0; r < b.rows; r++) {
    for (let t = 0; t + 1 < T; t++) {
      // a packed row's next token may start another example: that pair is not trained
      const sameExample = b.segmentIds[r * T + t] === b.segmentIds[r * T + t + 1];
      if (sameExample) labels[r * T + t] = b.labels[r * T + t + 1];
    }
  }
  const packed = b.examples > b.rows;
  return { rows: b.rows, seq: T, ids: b.inputIds, labels, positions: b.positions, ...(packed ? { segments: b.segmentIds } : {}) };
}

export class PipelineData implements TrainingData {
  private at: DataPosition;
  private stream?: Generator<PositionedBatch>;

  constructor(private readonly source: PipelineBatches) {
    this.at = source.start();
  }

  get batchesPerEpoch(): number {
    return this.source.epochLength(0);
  }

  next(): Batch {
    this.stream ??= this.source.batches(this.at);
    const item = this.stream.next().value as PositionedBatch; // the stream has no end
    this.at = item.next;
    return nextTokenBatch(item.batch);
  }

  position(): Json {
    return { ...this.at };
  }

  seek(position: Json): Result<unknown> {
    const accepted = this.source.resume(position as unknown as DataPosition);
    if (!accepted.ok) return accepted;
    this.at = accepted.value;
    this.stream = undefined;
    return ok(accepted.value);
  }

  evalBatches(): Batch[] {
    return this.source.evalBatches().map(nextTokenBatch);
  }
}
