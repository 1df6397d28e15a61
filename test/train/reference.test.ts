// The loop on the CPU engine against PyTorch (spec/golden/make_training_steps.py): 5 AdamW steps
// of the tiny model per case, with warm-up schedules, clipping, weight decay groups and gradient
// accumulation; losses, rates, gradient norms, held-out loss and final weights within 1e-6.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Batch } from "../../runtime/train/backend.ts";
import { createCpuBackend } from "../../runtime/train/cpu-backend.ts";
import { MemoryData } from "../../runtime/train/data-source.ts";
import type { StepRecord } from "../../runtime/train/metrics.ts";
import { runTraining } from "../../runtime/train/run-training.ts";
import { TRAIN_DEFAULTS, type TrainSettings } from "../../runtime/train/settings.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { TINY } from "./support.ts";

interface Golden {
  model: { rows: number; seq: number; vocab: number; hidden: number; ffn: number };
  init: Record<string, number[]>;
  batches: { ids: number[]; labels: number[] }[];
  eval_batch: { ids: number[]; labels: number[] };
  cases: {
    name: string;
    settings: Partial<TrainSettings>;
    steps: { loss: number; lr: number; grad_norm: number }[];
    eval_loss: number;
    final_weights: Record<string, { sum: number; l2: number; weighted_sum: number }>;
  }[];
}

const golden: Golden = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "spec", "golden", "training_steps.json"), "utf8"));
const batch = (b: { ids: number[]; labels: number[] }): Batch => ({ rows: golden.model.rows, seq: golden.model.seq, ids: Int32Array.from(b.ids), labels: Int32Array.from(b.labels) });

test("the golden file describes the test model", () => {
  assert.equal([golden.model.vocab, golden.model.hidden, golden.model.ffn], [TINY.vocab, TINY.hidden, TINY.ffn]);
});

for (const c of golden.cases) {
  test(`matches PyTorch: ${c.name}`, async () => {
    const backend = expectOk(createCpuBackend({ model: TINY, init: { weights: new Map(Object.entries(golden.init).map(([n, v]) => [n, Float64Array.from(v)])) } }));
    const data = new MemoryData(golden.batches.map(batch), [batch(golden.eval_batch)], { shuffle: false });
    const steps: StepRecord[] = [];
    const settings: TrainSettings = { ...TRAIN_DEFAULTS, ...c.settings, eval_every: c.steps.length, save_every: 1000 };
    const outcome = expectOk(
      await runTraining({ runDir: mkdtempSync(join(tmpdir(), "sftc-train-ref-")), settings, backend, data, progress: false, handleSignals: false, onProgress: (r) => r.kind === "train" && steps.push(r) }),
    );
    assert.is(steps.length, c.steps.length);
    assertClose(steps.map((s) => s.loss), c.steps.map((s) => s.loss), 1e-6, "losses");
    assertClose(steps.map((s) => s.lr), c.steps.map((s) => s.lr), 1e-12, "learning rates");
    assertClose(steps.map((s) => s.grad_norm), c.steps.map((s) => s.grad_norm), 1e-6, "gradient norms");
    assertClose([outcome.metrics.eval_loss], [c.eval_loss], 1e-6, "held-out loss after training");
    for (const [name, ref] of Object.entries(c.final_weights)) {
      const w = backend.weight(name)!;
      const summary = [w.reduce((a, v) => a + v, 0), Math.hypot(...w), w.reduce((a, v, i) => a + v * (1 + (i % 7)), 0)];
      assertClose(summary, [ref.sum, ref.l2, ref.weighted_sum], 1e-6, `final ${name}`);
    }
  });
}

test.run();
