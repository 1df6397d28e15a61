// Rows of examples to one padded batch. Each row holds one example, or several when packing;
// rows are right-padded to the longest row of the batch (not to max_length: Firefly's
// collator and HF DataCollatorForSeq2Seq, datasets.md B.5), with the tokenizer's pad id and
// label -100. Segment ids number the examples of a row from 1 (0 is padding), so attention
// can be block-diagonal, and positions restart at 0 in every segment.
import { ignoreIndex } from "./tokenize-example.ts";
import type { ExampleRef } from "./mix.ts";
import type { TokenStore } from "./token-store.ts";

/** One micro-batch, row-major (B, T). */
export interface Batch {
  /** B */
  rows: number;
  /** T: the longest row. */
  length: number;
  /** (B, T) */
  inputIds: Int32Array;
  /** (B, T) the token where it is trained, else -100 (padding included); the loss shifts. */
  labels: Int32Array;
  /** (B, T) 1 on tokens, 0 on padding. */
  attentionMask: Uint8Array;
  /** (B, T) 1.. per example within the row, 0 on padding. */
  segmentIds: Int32Array;
  /** (B, T) position of each token within its example. */
  positions: Int32Array;
  /** (B,) tokens per row (the valid prefix). */
  lengths: Int32Array;
  /** Examples in the batch. */
  examples: number;
  /** Labels that are not -100. */
  trainedTokens: number;
}

/** Pads rows of examples (`stores[ref.dataset]`) into a batch. */
export function collate(rows: readonly (readonly ExampleRef[])[], stores: readonly TokenStore[], padId: number): Batch {
  const lengths = Int32Array.from(rows.map((row) => row.reduce((n, ref) => n + stores[ref.dataset].length(ref.index), 0)));
  const B = rows.length;
  const T = Math.max(0, ...lengths);
  const inputIds = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(ignoreIndex);
  const attentionMask = new Uint8Array(B * T);
  const segmentIds = new Int32Array(B * T);
  const positions = new Int32Array(B * T);
  let trainedTokens = 0;
  rows.forEach((row, b) => {
    let at = b * T;
    row.forEach((ref, s) => {
      const store = stores[ref.dataset];
      const ids = store.ids(ref.index);
      const trained = store.trained(ref.index);
      inputIds.set(ids, at);
      for (let t = 0; t < ids.length; t++) {
        if (trained[t]) {
          labels[at + t] = ids[t];
          trainedTokens++;
        }
        attentionMask[at + t] = 1;
        segmentIds[at + t] = s + 1;
        positions[at + t] = t;
      }
      at += ids.length;
    });
  });
  const examples = rows.reduce((n, row) => n + row.length, 0);
  return { rows: B, length: T, inputIds, labels, attentionMask, segmentIds, positions, lengths, examples, trainedTokens };
}
