// The dataset pipeline's batches as the loop's data: next-token labels, training on the CPU
// engine, and exact resume through the pipeline's data position.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TrainingData as PipelineBatches, type BatchOptions } from "../../runtime/data/batches.ts";
import type { PreparedDataset } from "../../runtime/data/prepare.ts";
import { ChunkBuilder, TokenStore } from "../../runtime/data/token-store.ts";
import { Random } from "../../runtime/random.ts";
import type { MetricsRecord } from "../../runtime/train/metrics.ts";
import { nextTokenBatch, PipelineData } from "../../runtime/train/pipeline-data.ts";
import { runTraining } from "../../runtime/train/run-training.ts";
import { expectError, expectOk } from "../support/result.ts";
import { settings, TINY, tinyBackend } from "./support.ts";

/** A tokenized dataset of `count` examples of 4..10 tokens following the test pattern; the first 2 tokens are the untrained prompt. */
function dataset(name: string, count: number, seed: number): PreparedDataset {
  const random = new Random(seed);
  const builder = new ChunkBuilder();
  for (let i = 0; i < count; i++) {
    const ids = [random.int(TINY.vocab)];
    const n = 4 + random.int(7);
    while (ids.length < n) ids.push((3 * ids.at(-1)! + 1) % TINY.vocab);
    builder.add({ inputIds: ids, labels: ids.map((id, t) => (t < 2 ? -100 : id)), fullLength: n }, i);
  }
  const encoder = { tokenizerDir: "", tokenizerKind: "chatglm2" as const, template: "chatglm2" as const, trainOnPrompt: false, maxLength: 16 };
  return {
    plan: { name, reader: { format: "belle", path: `${name}.json` }, evalSplit: 0.2, weight: 1, shuffle: true, encoder, tokenizerFiles: [] },
    store: new TokenStore(builder.finish()),
    report: { file: `${name}.json`, records: 0, accepted: 0, blankLines: 0, bad: 0, badByReason: {}, filtered: 0, filteredByReason: {}, diagnostics: [], failed: false },
    conversations: count,
    dropped: 0,
    fromCache: false,
  };
}

function pipeline(over: Partial<BatchOptions> = {}): PipelineData {
  const options: BatchOptions = { seed: 42, batchSize: 2, evalBatchSize: 4, packing: false, rowLength: 16, padId: 0, ...over };
  return new PipelineData(expectOk(PipelineBatches.create([dataset("a", 20, 1), dataset("b", 10, 2)], options)));
}

test("labels move one place left within a row; padding and example boundaries carry no loss", () => {
  for (const packing of [false, true]) {
    const data = pipeline({ packing });
    const b = data.next();
    assert.is(b.segments !== undefined, packing, "packed batches name their segments");
    for (let i = 0; i < b.rows * b.seq; i++) {
      const t = i % b.seq;
      if (b.labels[i] === -100) continue;
      assert.ok(t + 1 < b.seq, "the last position of a row has no next token");
      assert.is(b.labels[i], b.ids[i + 1], "the label is the next input token");
      assert.is(b.positions![i + 1], b.positions![i] + 1, "within one example");
    }
    const trained = b.labels.filter((l) => l !== -100).length;
    assert.ok(trained > 0);
  }
});

test("the shift keeps every trained token that has a predecessor in its example", () => {
  const data = pipeline();
  const source = expectOk(PipelineBatches.create([dataset("a", 20, 1), dataset("b", 10, 2)], { seed: 42, batchSize: 2, evalBatchSize: 4, packing: false, rowLength: 16, padId: 0 }));
  const first = source.batches().next().value!.batch;
  assert.is(nextTokenBatch(first).labels.filter((l) => l !== -100).length, first.trainedTokens, "the first two tokens are never trained, so none is lost");
  assert.equal(Array.from(data.next().labels), Array.from(nextTokenBatch(first).labels));
});

const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as MetricsRecord).map((r) => (r.kind === "train" ? r.loss : r.eval_loss));

test("training on pipeline batches resumes exactly from a checkpoint's data position", async () => {
  const s = settings({ max_steps: 10, save_every: 4, eval_every: 5, keep_checkpoints: 3 });
  const full = mkdtempSync(join(tmpdir(), "sftc-train-pipe-"));
  const outcome = expectOk(await runTraining({ runDir: full, settings: s, backend: tinyBackend(), data: pipeline(), progress: false, handleSignals: false }));
  assert.ok(outcome.metrics.loss < losses(full)[0], "the loss falls");
  const resumed = mkdtempSync(join(tmpdir(), "sftc-train-pipe-"));
  expectOk(await runTraining({ runDir: resumed, settings: s, backend: tinyBackend(3), data: pipeline(), resume: join(full, "checkpoints", "step-00000004"), progress: false, handleSignals: false }));
  assert.equal(losses(resumed), losses(full).slice(-losses(resumed).length));
  assert.is(losses(resumed).length, 6 + 2, "steps 5-10 and the evaluations at 5 and 10");

  const other = mkdtempSync(join(tmpdir(), "sftc-train-pipe-"));
  const e = expectError(await runTraining({ runDir: other, settings: s, backend: tinyBackend(), data: pipeline({ seed: 7 }), resume: join(full, "checkpoints", "step-00000004"), progress: false, handleSignals: false }));
  assert.is(e.code, "SFT5322");
});

test.run();
