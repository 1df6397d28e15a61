// The resolved pipeline's `train` block as the loop reads it (the keys and defaults of
// stdlib/schemas/train.ts), and what follows from it: the number of optimizer steps and the
// learning rate at each of them.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { learningRate, type Schedule } from "../../stdlib/kernels/lr-schedule.ts";

export interface ScheduleSetting {
  type: "constant" | "constant_with_warmup" | "linear" | "cosine";
  warmup_steps?: number;
  /** Cosine only: the rate reached at the last step. */
  min_lr?: number;
}

/** The `train` block, snake_case as `sftc explain` prints it. */
export interface TrainSettings {
  epochs?: number;
  max_steps?: number;
  grad_accum: number;
  lr: number;
  weight_decay: number;
  optimizer: "adamw" | "sgd";
  adam_beta1: number;
  adam_beta2: number;
  adam_eps: number;
  schedule: ScheduleSetting;
  /** 0 disables clipping. */
  max_grad_norm: number;
  seed: number;
  log_every: number;
  eval_every?: number;
  save_every: number;
  keep_checkpoints?: number;
}

/** The schema's defaults, for callers that build settings by hand (tests, benchmarks). */
export const TRAIN_DEFAULTS: TrainSettings = {
  grad_accum: 1,
  lr: 1e-4,
  weight_decay: 0,
  optimizer: "adamw",
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_eps: 1e-8,
  schedule: { type: "constant" },
  max_grad_norm: 1,
  seed: 42,
  log_every: 10,
  save_every: 500,
};

/** The loop's settings from a resolved pipeline's `train` block (already checked by its schema). */
export function trainSettings(train: Readonly<Record<string, unknown>>): TrainSettings {
  return { ...TRAIN_DEFAULTS, ...(train as Partial<TrainSettings>) };
}

/** Settings this loop cannot run, as diagnostics (the schema has checked types and ranges). */
export function checkSettings(s: TrainSettings, batchesPerEpoch: number): Result<TrainSettings> {
  if (s.optimizer !== "adamw") {
    return fail(diag("SFT5402", `train.optimizer = ${s.optimizer} is not implemented by the training loop`, { where: "train.optimizer", hint: "use optimizer = adamw" }));
  }
  if (s.max_steps === undefined && batchesPerEpoch < s.grad_accum) {
    const what = `one epoch has ${batchesPerEpoch} micro-batches, fewer than grad_accum = ${s.grad_accum}`;
    return fail(diag("SFT5402", `the training data is too small for a single optimizer step: ${what}`, { where: "train.epochs", hint: "add data, lower grad_accum or batch_size, or set max_steps" }));
  }
  return ok(s);
}

/**
 * Optimizer steps of the run: `max_steps`, or `epochs` (1 by default) passes over the data, an
 * epoch counting floor(batchesPerEpoch / grad_accum) steps (Hugging Face Trainer's rule).
 */
export function totalSteps(s: TrainSettings, batchesPerEpoch: number): number {
  if (s.max_steps !== undefined) return s.max_steps;
  return Math.ceil((s.epochs ?? 1) * Math.floor(batchesPerEpoch / s.grad_accum));
}

/**
 * The rate of the update made after `done` updates (LambdaLR semantics, as the Trainer steps it:
 * the first update uses lambda(0), which is 0 during warm-up). Cosine with `min_lr` follows
 * get_cosine_with_min_lr_schedule_with_warmup: the decay goes to min_lr instead of 0.
 */
export function learningRateAt(s: TrainSettings, done: number, total: number): number {
  const schedule: Schedule = { kind: s.schedule.type, warmupSteps: s.schedule.warmup_steps ?? 0, totalSteps: total };
  const minRate = s.schedule.type === "cosine" ? (s.schedule.min_lr ?? 0) / s.lr : 0;
  if (minRate === 0 || done < schedule.warmupSteps) return learningRate(schedule, s.lr, done);
  const factor = learningRate(schedule, 1, done);
  return s.lr * (factor * (1 - minRate) + minRate);
}
