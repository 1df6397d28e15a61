// The tokenized examples of one dataset, packed flat: one Int32Array of all token ids, one
// byte per token saying whether it is trained (a label is the token itself or -100, so a bit
// is all a label needs), and per-example lengths. About 5 bytes a token, no object per
// example; the same arrays go through worker messages and into the disk cache unchanged.
import { invariant } from "../../compiler/diagnostics.ts";
import { ignoreIndex, type TokenizedExample } from "./tokenize-example.ts";

/** A run of tokenized examples (one worker chunk, or a whole dataset). */
export interface TokenChunk {
  /** (tokens,) every example's ids, one after another. */
  ids: Int32Array;
  /** (tokens,) 1 where the token carries loss. */
  trained: Uint8Array;
  /** (examples,) tokens per example. */
  lengths: Int32Array;
  /** (examples,) the index of the conversation each example came from (ChatGLM-6B makes several per conversation). */
  records: Int32Array;
  /** (examples,) tokens before truncation. */
  fullLengths: Int32Array;
  /** Examples dropped: no answer token within max_length. */
  dropped: number;
  /** File lines of the first dropped examples' records (at most `listedDrops`), for messages. */
  droppedLines: number[];
}

export const listedDrops = 10;

/** Builds a chunk one example at a time, in typed arrays that double when full. */
export class ChunkBuilder {
  private ids = new Int32Array(1024);
  private trained = new Uint8Array(1024);
  private tokens = 0;
  private lengths: number[] = [];
  private records: number[] = [];
  private fullLengths: number[] = [];
  private dropped = 0;
  private droppedLines: number[] = [];

  add(example: TokenizedExample, record: number): void {
    const n = example.inputIds.length;
    if (this.tokens + n > this.ids.length) {
      const size = Math.max(2 * this.ids.length, this.tokens + n);
      const ids = new Int32Array(size);
      ids.set(this.ids.subarray(0, this.tokens));
      const trained = new Uint8Array(size);
      trained.set(this.trained.subarray(0, this.tokens));
      [this.ids, this.trained] = [ids, trained];
    }
    for (let t = 0; t < n; t++) {
      this.ids[this.tokens + t] = example.inputIds[t];
      this.trained[this.tokens + t] = example.labels[t] === ignoreIndex ? 0 : 1;
    }
    this.tokens += n;
    this.lengths.push(n);
    this.records.push(record);
    this.fullLengths.push(example.fullLength);
  }

  drop(line: number): void {
    this.dropped++;
    if (this.droppedLines.length < listedDrops) this.droppedLines.push(line);
  }

  finish(): TokenChunk {
    return {
      ids: this.ids.slice(0, this.tokens),
      trained: this.trained.slice(0, this.tokens),
      lengths: Int32Array.from(this.lengths),
      records: Int32Array.from(this.records),
      fullLengths: Int32Array.from(this.fullLengths),
      dropped: this.dropped,
      droppedLines: this.droppedLines,
    };
  }
}

/** Joins chunks in order. */
export function concatChunks(chunks: readonly TokenChunk[]): TokenChunk {
  const join = <A extends Int32Array | Uint8Array>(make: (n: number) => A, pick: (c: TokenChunk) => A): A => {
    const out = make(chunks.reduce((n, c) => n + pick(c).length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(pick(c), at);
      at += pick(c).length;
    }
    return out;
  };
  return {
    ids: join((n) => new Int32Array(n), (c) => c.ids),
    trained: join((n) => new Uint8Array(n), (c) => c.trained),
    lengths: join((n) => new Int32Array(n), (c) => c.lengths),
    records: join((n) => new Int32Array(n), (c) => c.records),
    fullLengths: join((n) => new Int32Array(n), (c) => c.fullLengths),
    dropped: chunks.reduce((n, c) => n + c.dropped, 0),
    droppedLines: chunks.flatMap((c) => c.droppedLines).slice(0, listedDrops),
  };
}

/** Random access to the examples of a dataset. */
export class TokenStore {
  // (examples + 1,) start of each example in `ids`.
  private readonly starts: Float64Array;

  constructor(readonly chunk: TokenChunk) {
    this.starts = new Float64Array(chunk.lengths.length + 1);
    for (let i = 0; i < chunk.lengths.length; i++) this.starts[i + 1] = this.starts[i] + chunk.lengths[i];
    invariant(this.starts[chunk.lengths.length] === chunk.ids.length && chunk.ids.length === chunk.trained.length, "token store lengths disagree with its ids");
  }

  get size(): number {
    return this.chunk.lengths.length;
  }

  length(i: number): number {
    return this.chunk.lengths[i];
  }

  /** Ids of example `i` (a view, not a copy). */
  ids(i: number): Int32Array {
    return this.chunk.ids.subarray(this.starts[i], this.starts[i + 1]);
  }

  /** Trained flags of example `i` (a view). */
  trained(i: number): Uint8Array {
    return this.chunk.trained.subarray(this.starts[i], this.starts[i + 1]);
  }

  /** Example `i` as Hugging Face ids and labels. */
  example(i: number): { inputIds: number[]; labels: number[] } {
    const ids = Array.from(this.ids(i));
    const trained = this.trained(i);
    return { inputIds: ids, labels: ids.map((id, t) => (trained[t] ? id : ignoreIndex)) };
  }
}
