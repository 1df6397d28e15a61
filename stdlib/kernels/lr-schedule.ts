// Learning-rate schedules as host functions, matching Hugging Face transformers'
// get_constant_schedule, get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup (num_cycles = 0.5): lr(step) = base_lr * lambda(step), where
// step is the number of optimizer steps already taken (LambdaLR's last_epoch).

export type ScheduleKind = "constant" | "constant_with_warmup" | "linear" | "cosine";

export interface Schedule {
  kind: ScheduleKind;
  warmupSteps: number;
  /** Total optimizer steps (linear and cosine decay to 0 at this step). */
  totalSteps: number;
}

/** The multiplier applied to the base learning rate at `step`. */
export function scheduleFactor(s: Schedule, step: number): number {
  if (s.kind === "constant") return 1;
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  if (s.kind === "constant_with_warmup") return 1;
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  if (s.kind === "linear") return Math.max(0, (s.totalSteps - step) / Math.max(1, s.totalSteps - s.warmupSteps));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
}

/** The learning rate at `step` for base rate `lr`. */
export function learningRate(s: Schedule, lr: number, step: number): number {
  return lr * scheduleFactor(s, step);
}
