// `train { ... }`: the optimisation loop. Steps count optimizer updates (one update every
// `grad_accum` micro-batches of `batch_size` examples).
import { block, boolean, integer, number, oneOf, path, string, typedObject, type Schema } from "./common.ts";

const warmupSteps = integer("Steps of linear warm-up from 0 to `lr`.", { min: 0, default: 0 });

export const trainSchema: Schema = block("Training loop settings.", {
  epochs: number("Passes over the training data. Give `epochs` or `max_steps`, not both; 1 epoch when neither is given.", { above: 0 }),
  max_steps: integer("Stop after this many optimizer steps.", { min: 1 }),
  batch_size: integer("Examples per micro-batch.", { min: 1, default: 1 }),
  grad_accum: integer("Micro-batches accumulated per optimizer step.", { min: 1, default: 1 }),
  lr: number("Peak learning rate.", { above: 0, max: 1, default: 1e-4 }),
  weight_decay: number("Decoupled weight decay (AdamW); not applied to norms and biases.", { min: 0, default: 0 }),
  optimizer: oneOf(["adamw", "sgd"], "The optimizer.", { default: "adamw" }),
  adam_beta1: number("AdamW first-moment decay.", { min: 0, below: 1, default: 0.9 }),
  adam_beta2: number("AdamW second-moment decay.", { min: 0, below: 1, default: 0.999 }),
  adam_eps: number("AdamW epsilon.", { above: 0, default: 1e-8 }),
  schedule: typedObject(
    "Learning-rate schedule: `constant`, `constant_with_warmup { warmup_steps = N }`, `linear { warmup_steps = N }` (decays to 0) or `cosine { warmup_steps = N, min_lr = X }`.",
    {
      constant: { description: "The same rate for every step.", properties: {} },
      constant_with_warmup: { description: "Linear warm-up, then constant.", properties: { warmup_steps: warmupSteps } },
      linear: { description: "Linear warm-up, then linear decay to 0 at the last step.", properties: { warmup_steps: warmupSteps } },
      cosine: {
        description: "Linear warm-up, then half a cosine down to `min_lr` at the last step.",
        properties: { warmup_steps: warmupSteps, min_lr: number("Rate at the last step.", { min: 0, default: 0 }) },
      },
    },
    { default: { type: "constant" } },
  ),
  max_grad_norm: number("Clip the global gradient norm to this value; 0 disables clipping.", { min: 0, default: 1 }),
  seed: integer("Seed of every random choice: initialisation, shuffling, dropout, sampling.", { min: 0, default: 42 }),
  gradient_checkpointing: boolean("Recompute activations in the backward pass instead of storing them (less memory, about 30% more compute).", { default: false }),
  packing: boolean("Concatenate short examples into full `max_length` rows (attention does not cross example boundaries).", { default: false }),
  eval_batch_size: integer("Examples per evaluation batch; defaults to `batch_size`.", { min: 1 }),
  log_every: integer("Print loss and throughput every N steps.", { min: 1, default: 10 }),
  eval_every: integer("Evaluate on the held-out split every N steps (needs a dataset with `eval_split`).", { min: 1 }),
  save_every: integer("Write a checkpoint every N steps (atomically; the last good one is never overwritten in place).", { min: 1, default: 500 }),
  keep_checkpoints: integer("Keep only the newest N checkpoints.", { min: 1 }),
  output: string("Run directory for checkpoints, adapters and the run manifest, relative to the `.sft` file. Defaults to `runs/<pipeline name>`."),
  resume_from: path("A checkpoint directory of an earlier run to continue from (weights, optimizer state, data position, random state).", "directory"),
});
