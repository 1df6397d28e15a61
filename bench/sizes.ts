// Problem sizes of one benchmark run. "full" uses the shapes of one Baichuan-7B / LLaMA-7B layer
// (hidden 4096, FFN 11008, vocabulary 64000) over 2048 tokens and a 4096^3 matmul, for a real
// GPU; "small" is what a CPU adapter (lavapipe) runs in seconds; "smoke" is the smallest that
// still exercises every code path (the CI test). The training step and generation sections run
// the quickstart's tiny model at every size; only "full" adds the 7B-sized generation.

export type BenchSize = "smoke" | "small" | "full";

/** The start of the 7B-sized generation model's label (bench/generation.ts; bench/report.ts finds its rows by it). */
export const SEVEN_B = "baichuan7b 7b preset, random init";

export const BENCH_SIZES: readonly BenchSize[] = ["smoke", "small", "full"];

export interface BenchShapes {
  /** Side of the square matmuls. */
  square: number;
  /** Tokens of one step (rows of activations, logits and embeddings). */
  tokens: number;
  hidden: number;
  /** Attention head size; heads = hidden / headDim. */
  headDim: number;
  ffn: number;
  vocab: number;
  /** Bytes of the buffer copied to measure memory bandwidth. */
  copyBytes: number;
  /** Timed repetitions of each kernel and of the copy. */
  reps: number;
  /** Untimed work before each kernel case and the copy (bench/warm-up.ts). */
  warmUpMs: number;
  /** Output rows compared with the float64 reference per kernel; Infinity = every row. */
  checkedRows: number;
  /** The quickstart model's training step. */
  step: StepSizes;
  /** The quickstart model's generation. */
  generation: GenerationSizes;
  /** The 7B-sized random model's generation; absent: not run. */
  largeGeneration?: GenerationSizes;
}

/** The training step benchmark: one batch of `rows` x `seq` tokens, `warmup` untimed steps, then `steps` timed. */
export interface StepSizes {
  rows: number;
  seq: number;
  warmup: number;
  steps: number;
}

/** The generation benchmark: a prompt of `promptTokens`, then `newTokens` greedy steps. */
export interface GenerationSizes {
  promptTokens: number;
  newTokens: number;
}

const MiB = 1 << 20;

export const SHAPES: Record<BenchSize, BenchShapes> = {
  smoke: { square: 64, tokens: 16, hidden: 64, headDim: 32, ffn: 172, vocab: 1000, copyBytes: 16 * MiB, reps: 2, warmUpMs: 0, checkedRows: Infinity,
    step: { rows: 1, seq: 16, warmup: 1, steps: 2 }, generation: { promptTokens: 8, newTokens: 3 } },
  small: { square: 256, tokens: 128, hidden: 512, headDim: 64, ffn: 1376, vocab: 8000, copyBytes: 128 * MiB, reps: 5, warmUpMs: 600, checkedRows: Infinity,
    step: { rows: 2, seq: 128, warmup: 2, steps: 10 }, generation: { promptTokens: 64, newTokens: 32 } },
  // The float64 reference of every output row would take minutes here: a sample is checked.
  full: { square: 4096, tokens: 2048, hidden: 4096, headDim: 128, ffn: 11008, vocab: 64000, copyBytes: 1024 * MiB, reps: 20, warmUpMs: 600, checkedRows: 32,
    step: { rows: 4, seq: 256, warmup: 3, steps: 20 }, generation: { promptTokens: 128, newTokens: 64 }, largeGeneration: { promptTokens: 128, newTokens: 64 } },
};
