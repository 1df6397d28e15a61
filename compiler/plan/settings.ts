// What a memory plan depends on, read from a resolved pipeline: the step's shape (micro-batch,
// longest sequence), the method with its storage choices, checkpointing, accumulation, the
// optimizer and the decoding that follows training. Plans for the advice vary these fields.
import type { ResolvedPipeline } from "../check/resolve.ts";
import type { Nf4Layout } from "./storage.ts";

export type WeightDType = "f32" | "f16" | "bf16";

export type PlanMethod =
  | { kind: "full"; freezeEmbeddings: boolean; freezeLayers: number }
  | {
      kind: "lora" | "qlora";
      rank: number;
      alpha: number;
      /** Model-native or canonical target names, as the family graph takes them. */
      targets: readonly string[];
      /** Which biases train: none, those of adapted layers, or all. */
      bias: "none" | "lora_only" | "all";
      /** Base modules trained in full beside the adapters. */
      modulesToSave: readonly ("embeddings" | "lm_head")[];
      /** QLoRA only: the storage of the quantized base weights. */
      nf4?: Nf4Layout;
    };

export interface PlanSettings {
  /** Storage type of the base weights. */
  dtype: WeightDType;
  method: PlanMethod;
  /** Examples per micro-batch. */
  batch: number;
  /** Tokens per example: the longest `max_length` of the pipeline's datasets. */
  seq: number;
  gradientCheckpointing: boolean;
  gradAccum: number;
  optimizer: "adamw" | "sgd";
  /** Evaluation during training, forward only (null: no dataset holds out an eval split). */
  evaluation: { batch: number } | null;
  /** Decoding after training (null: none planned). */
  generation: { strategy: string; sequences: number; maxNewTokens: number } | null;
}

/** The modules a method trains in full beside its adapters: none for full fine-tuning, which trains every weight. */
export function savedModules(m: PlanMethod): readonly string[] {
  return m.kind === "full" ? [] : m.modulesToSave;
}

const num = (v: unknown, fallback: number) => (typeof v === "number" ? v : fallback);

/** The settings of `pipeline` as written. */
export function planSettings(pipeline: ResolvedPipeline): PlanSettings {
  const { model, method, train, decode, datasets } = pipeline;
  const seq = Math.max(...datasets.map((d) => num(d.max_length, 0)));
  return {
    dtype: (model.dtype ?? "f32") as WeightDType,
    method: planMethod(method),
    batch: num(train.batch_size, 1),
    seq,
    gradientCheckpointing: train.gradient_checkpointing === true,
    gradAccum: num(train.grad_accum, 1),
    optimizer: train.optimizer === "sgd" ? "sgd" : "adamw",
    evaluation: datasets.some((d) => num(d.eval_split, 0) > 0) ? { batch: num(train.eval_batch_size, num(train.batch_size, 1)) } : null,
    generation: {
      strategy: decode.strategy,
      // beam search decodes its beams together, sampling its return sequences
      sequences: decode.strategy === "beam" ? num(decode.num_beams, 4) : num(decode.num_return_sequences, 1),
      maxNewTokens: num(decode.max_new_tokens, 0),
    },
  };
}

/** The resolved method block as the plan reads it. */
export function planMethod(method: ResolvedPipeline["method"]): PlanMethod {
  if (method.kind === "full") return { kind: "full", freezeEmbeddings: method.freeze_embeddings === true, freezeLayers: num(method.freeze_layers, 0) };
  const kind = method.kind === "qlora" ? "qlora" : "lora";
  return {
    kind,
    rank: num(method.rank, 8),
    alpha: num(method.alpha, 16),
    targets: (method.target_modules ?? method.targets ?? []) as string[],
    bias: (method.bias ?? "none") as "none" | "lora_only" | "all",
    modulesToSave: (method.modules_to_save ?? []) as ("embeddings" | "lm_head")[],
    nf4:
      kind === "qlora"
        ? { blockSize: num(method.block_size, 64), doubleQuant: method.double_quant !== false, doubleQuantBlockSize: num(method.double_quant_block_size, 256) }
        : undefined,
  };
}

/** A short description of the method, e.g. `qlora r64 (7 modules)`. */
export function describeMethod(m: PlanMethod): string {
  if (m.kind === "full") return `full${m.freezeEmbeddings ? ", embeddings frozen" : ""}${m.freezeLayers ? `, first ${m.freezeLayers} layers frozen` : ""}`;
  return `${m.kind} rank ${m.rank} on ${m.targets.join(", ")}`;
}
