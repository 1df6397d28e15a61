// A tiny model and learnable token data for the training-loop tests: every row follows
// t[i+1] = (3 t[i] + 1) mod vocab from a random start, so the loss can fall fast.
import { IGNORE_INDEX, type Batch } from "../../runtime/train/backend.ts";
import { createCpuBackend, type CpuBackend, type TinyModelOptions } from "../../runtime/train/cpu-backend.ts";
import { MemoryData } from "../../runtime/train/data-source.ts";
import { TRAIN_DEFAULTS, type TrainSettings } from "../../runtime/train/settings.ts";
import { Random } from "../../runtime/random.ts";
import { expectOk } from "../support/result.ts";

export const TINY: TinyModelOptions = {
  vocab: 32,
  hidden: 16,
  layers: 1,
  heads: 2,
  kvHeads: 2,
  ffn: 32,
  norm: "rms",
  position: { kind: "rope", style: "half" },
  mlp: "swiglu",
  residual: "pre",
};

/** `count` batches of `rows` x `seq`; the last position of a row and ~10% of the others carry no loss. */
export function patternBatches(seed: number, count: number, rows: number, seq: number): Batch[] {
  const random = new Random(seed);
  return Array.from({ length: count }, () => {
    const ids = new Int32Array(rows * seq);
    const labels = new Int32Array(rows * seq);
    for (let r = 0; r < rows; r++) {
      let t = random.int(TINY.vocab);
      for (let i = 0; i < seq; i++) {
        ids[r * seq + i] = t;
        t = (3 * t + 1) % TINY.vocab;
        labels[r * seq + i] = i === seq - 1 || random.uniform() < 0.1 ? IGNORE_INDEX : t;
      }
    }
    return { rows, seq, ids, labels };
  });
}

/** Settings of a short run; `over` replaces any of them. */
export function settings(over: Partial<TrainSettings> = {}): TrainSettings {
  return { ...TRAIN_DEFAULTS, max_steps: 12, lr: 1e-2, schedule: { type: "cosine", warmup_steps: 2 }, weight_decay: 0.01, log_every: 1, save_every: 4, ...over };
}

export function tinyBackend(seed = 7): CpuBackend {
  return expectOk(createCpuBackend({ model: TINY, init: { seed } }));
}

/** 6 training batches of 2 x 8 (shuffled per epoch) and 2 held-out ones. */
export function tinyData(seed = 11): MemoryData {
  return new MemoryData(patternBatches(seed, 6, 2, 8), patternBatches(seed + 1, 2, 2, 8), { seed });
}
