// What generation needs from a model, whatever runs it: start sequences from prompts, append one
// token to each, and reorder the sequences for beam search. A backend with a KV cache keeps the
// keys and values per sequence and reorders them in place (gathering rows by `sources`, never
// copying the whole cache per beam); a backend without one keeps the token ids and recomputes.
import type { Result } from "../../compiler/diagnostics.ts";

/** Running sequences, each with its cache; rows are in the order the caller last set. */
export interface GenerationSession {
  /** How many sequences run. */
  readonly size: number;
  /** Appends `tokens[i]` to sequence i; returns each sequence's next-token logits (vocab). */
  append(tokens: readonly number[]): Promise<Float32Array[]>;
  /**
   * Sequence i becomes a continuation of old sequence `sources[i]`; a source may repeat (a beam
   * forks) or be left out (freed). `sources.length` is the new size.
   */
  reorder(sources: readonly number[]): Promise<void>;
  /** Releases the caches. */
  free(): void;
}

/** A model that generates: one per loaded set of weights. */
export interface GenerationModel {
  /** Where it runs, for messages (`CPU reference (float64)`, `GPU`). */
  readonly backend: string;
  readonly vocabSize: number;
  /** The longest sequence (prompt and generated) it can run. */
  readonly maxPositions: number;
  /** Whether `prompt` can run: non-empty, shorter than the positions, ids in the vocabulary, the family's required tokens. */
  check(prompt: readonly number[]): Result<void>;
  /** Runs the prompts (each checked); returns the session and each prompt's last-position logits. */
  start(prompts: readonly (readonly number[])[]): Promise<{ session: GenerationSession; logits: Float32Array[] }>;
}
