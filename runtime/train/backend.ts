// What the training loop needs from an engine. The loop owns the schedule, accumulation,
// clipping decision, evaluation and checkpoints; an engine (the float64 CPU reference, the
// WebGPU executor) owns the tensors and the arithmetic on them.
//
// Loss normalization: the loop counts the label tokens of all micro-batches of an optimizer step
// up front (N) and asks for the gradient of sum(token losses) / N, micro-batch by micro-batch.
// The accumulated gradient is then that of the token mean over the whole step, whatever the
// split into micro-batches (Hugging Face Trainer's `num_items_in_batch` normalization): grad
// accumulation 2 x batch 2 equals batch 4.

/** One micro-batch of token rows, all of length `seq`. */
export interface Batch {
  rows: number;
  seq: number;
  /** (rows * seq) token ids. */
  ids: Int32Array;
  /** (rows * seq) next-token labels aligned with `ids`; IGNORE_INDEX where no loss is taken. */
  labels: Int32Array;
  /** (rows * seq) position of each token; absent: 0..seq-1 in every row. */
  positions?: Int32Array;
  /**
   * (rows * seq) packed rows: attention stays among tokens of equal id (0 is padding); absent:
   * one sequence per row. Right padding needs neither: causal attention never looks ahead.
   */
  segments?: Int32Array;
}

/** Label value without loss (PyTorch's cross-entropy default). */
export const IGNORE_INDEX = -100;

/** Positions of `batch` that carry a loss. */
export function labelTokens(batch: Batch): number {
  let n = 0;
  for (const l of batch.labels) if (l !== IGNORE_INDEX) n++;
  return n;
}

/** Summed token loss of a batch and how many tokens it sums. */
export interface LossSum {
  lossSum: number;
  tokens: number;
}

/** A tensor that travels through checkpoints: trainable weights and optimizer moments. */
export interface StateTensor {
  name: string;
  shape: number[];
  data: Float64Array | Float32Array;
}

export interface AdamWUpdate {
  /** 1-based count of updates including this one (AdamW's bias correction). */
  step: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay for the tensors `appliesWeightDecay` selects. */
  weightDecay: number;
  /** Multiplies the accumulated gradient first: the clipping coefficient (1 when not clipped). */
  gradScale: number;
}

/**
 * Hugging Face Trainer's grouping: norm weights and biases are not decayed (the `weight_decay`
 * key documents this), every other trainable tensor is.
 */
export function appliesWeightDecay(name: string): boolean {
  const parts = name.split(".");
  return !(parts.at(-1) === "bias" || parts.some((p) => p.includes("norm") || p.startsWith("ln_")));
}

/** A training engine. Every method may be asynchronous (a GPU engine awaits its queue). */
export interface TrainingBackend {
  /** Short description for the run manifest ("cpu-float64", the adapter name, ...). */
  readonly device: string;
  /**
   * Forward and backward of one micro-batch: adds `gradScale` * d(sum of token losses) to the
   * gradient accumulators and returns the summed loss and its label-token count.
   */
  forwardBackward(batch: Batch, gradScale: number): Promise<LossSum> | LossSum;
  zeroGradients(): Promise<void> | void;
  /** Euclidean norm of all accumulated gradients together. */
  gradientNorm(): Promise<number> | number;
  /** One AdamW update of every trainable tensor from the accumulated gradients. */
  applyAdamW(update: AdamWUpdate): Promise<void> | void;
  /** Summed loss without gradients (evaluation). */
  evaluate(batch: Batch): Promise<LossSum> | LossSum;
  /** Trainable weights and optimizer moments, copies, in a stable order. */
  saveState(): Promise<StateTensor[]> | StateTensor[];
  /** Restores what `saveState` returned; a missing or mis-shaped tensor is an error message. */
  loadState(tensors: readonly StateTensor[]): Promise<string | undefined> | string | undefined;
  /** States of the engine's own random streams (dropout), by name. */
  randomStates(): Record<string, number>;
  setRandomStates(states: Record<string, number>): void;
  /** Bytes the engine holds, for the progress line; undefined when unknown. */
  memoryBytes?(): number | undefined;
}

/**
 * The checkpoint's data for each state tensor an engine holds (`expected`: name and element
 * count), or the message naming the first one missing or mis-sized.
 */
export function matchStateTensors(tensors: readonly StateTensor[], expected: Iterable<readonly [string, number]>): Map<string, StateTensor["data"]> | string {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const out = new Map<string, StateTensor["data"]>();
  for (const [name, numel] of expected) {
    const t = byName.get(name);
    if (!t) return `the checkpoint has no tensor ${name}`;
    if (t.data.length !== numel) return `tensor ${name} has ${t.data.length} values in the checkpoint, the model needs ${numel}`;
    out.set(name, t.data);
  }
  return out;
}
