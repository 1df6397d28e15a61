// Batch shapes of the GPU training engine (gpu-backend.ts): the sequence length is right-padded
// to a multiple of SEQ_BUCKET (ids 0, labels ignored; causal attention never looks ahead, so the
// loss is unchanged), so that each (rows, padded length) pair is compiled once for many lengths.
// Dropout masks are drawn for the batch as given and padded the same way.
import { IGNORE_INDEX, type Batch } from "./backend.ts";

/** Sequence lengths are padded up to a multiple of this before compiling. */
export const SEQ_BUCKET = 16;

/** `batch` right-padded to the next multiple of SEQ_BUCKET: ids 0, no labels, positions counting on. */
export function padToBucket(batch: Batch): Batch {
  const seq = Math.ceil(batch.seq / SEQ_BUCKET) * SEQ_BUCKET;
  if (seq === batch.seq) return batch;
  const pad = (values: Int32Array, fill: number | ((t: number) => number)) => {
    const out = new Int32Array(batch.rows * seq);
    for (let r = 0; r < batch.rows; r++) {
      out.set(values.subarray(r * batch.seq, (r + 1) * batch.seq), r * seq);
      for (let t = batch.seq; t < seq; t++) out[r * seq + t] = typeof fill === "number" ? fill : fill(t);
    }
    return out;
  };
  return {
    rows: batch.rows,
    seq,
    ids: pad(batch.ids, 0),
    labels: pad(batch.labels, IGNORE_INDEX),
    ...(batch.positions ? { positions: pad(batch.positions, (t) => t) } : {}),
    ...(batch.segments ? { segments: pad(batch.segments, 0) } : {}),
  };
}

/** A dropout mask of `batch` (rows blocks of seq · width values) padded to `seq` per row; padding keeps everything (1). */
export function padMask(mask: Float64Array, batch: Batch, seq: number): Float64Array {
  if (seq === batch.seq) return mask;
  const block = mask.length / batch.rows; // seq · width
  const padded = (block / batch.seq) * seq;
  const out = new Float64Array(batch.rows * padded).fill(1);
  for (let r = 0; r < batch.rows; r++) out.set(mask.subarray(r * block, (r + 1) * block), r * padded);
  return out;
}
