// Eval split, weighted mixing, shuffling, length grouping, padding, packing and the resume
// position, on synthetic tokenized datasets (token ids encode dataset, example and position,
// so every check can see where a token came from).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { TrainingData, type BatchOptions } from "../../runtime/data/batches.ts";
import type { Batch } from "../../runtime/data/collate.ts";
import { epochExamples, epochQuotas } from "../../runtime/data/mix.ts";
import type { PreparedDataset } from "../../runtime/data/prepare.ts";
import { ChunkBuilder, TokenStore } from "../../runtime/data/token-store.ts";
import { expectError, expectOk } from "../support/result.ts";

const pad = 7;

/** Token id of dataset d, example i, position t; the first token of every example is untrained. */
const tokenOf = (d: number, i: number, t: number) => 1_000_000 * (d + 1) + 1000 * i + t;

interface Fake {
  name: string;
  lengths: number[];
  /** Conversation of each example (default: one each). */
  records?: number[];
  evalSplit?: number;
  weight?: number;
  shuffle?: boolean;
  template?: "chatglm" | "chatglm2";
}

function dataset(d: number, fake: Fake): PreparedDataset {
  const builder = new ChunkBuilder();
  const records = fake.records ?? fake.lengths.map((_, i) => i);
  fake.lengths.forEach((n, i) => {
    const ids = Array.from({ length: n }, (_, t) => tokenOf(d, i, t));
    builder.add({ inputIds: ids, labels: ids.map((id, t) => (t === 0 ? -100 : id)), fullLength: n }, records[i]);
  });
  const encoder = { tokenizerDir: "", tokenizerKind: "chatglm2" as const, template: fake.template ?? "chatglm2", trainOnPrompt: false, maxLength: 64 };
  return {
    plan: { name: fake.name, reader: { format: "belle", path: `${fake.name}.json` }, evalSplit: fake.evalSplit ?? 0, weight: fake.weight ?? 1, shuffle: fake.shuffle ?? true, encoder, tokenizerFiles: [] },
    store: new TokenStore(builder.finish()),
    report: { file: `${fake.name}.json`, records: 0, accepted: 0, blankLines: 0, bad: 0, badByReason: {}, filtered: 0, filteredByReason: {}, diagnostics: [], failed: false },
    conversations: Math.max(0, ...records) + 1,
    dropped: 0,
    fromCache: false,
  };
}

const lengthsOf = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 11) % 29));
const options = (over: Partial<BatchOptions> = {}): BatchOptions => ({ seed: 42, batchSize: 4, evalBatchSize: 4, packing: false, rowLength: 64, padId: pad, ...over });

function make(fakes: Fake[], over: Partial<BatchOptions> = {}): TrainingData {
  return expectOk(TrainingData.create(fakes.map((f, d) => dataset(d, f)), options(over)));
}

function take(data: TrainingData, count: number, from = data.start()) {
  const out = [];
  for (const item of data.batches(from)) {
    out.push(item);
    if (out.length === count) break;
  }
  return out;
}

/** (dataset, example) of each example in a batch, decoded from its first token. */
function examplesIn(batch: Batch): string[] {
  const out: string[] = [];
  for (let b = 0; b < batch.rows; b++) {
    for (let t = 0; t < batch.length; t++) {
      const k = b * batch.length + t;
      if (batch.positions[k] === 0 && batch.attentionMask[k]) out.push(`${Math.floor(batch.inputIds[k] / 1_000_000) - 1}:${Math.floor((batch.inputIds[k] % 1_000_000) / 1000)}`);
    }
  }
  return out;
}

function epochOf(data: TrainingData, epoch: number): string[] {
  const from = { ...data.start(), epoch };
  return take(data, data.epochLength(epoch), from).flatMap((x) => examplesIn(x.batch));
}

test("one dataset: an epoch is one pass over the training split, shuffled by the seed", () => {
  const data = make([{ name: "a", lengths: lengthsOf(50) }]);
  const epoch0 = epochOf(data, 0);
  assert.equal([...epoch0].sort(), Array.from({ length: 50 }, (_, i) => `0:${i}`).sort());
  assert.equal(epochOf(make([{ name: "a", lengths: lengthsOf(50) }]), 0), epoch0, "same seed, same order");
  assert.not.equal(epochOf(make([{ name: "a", lengths: lengthsOf(50) }], { seed: 7 }), 0), epoch0, "another seed, another order");
  assert.not.equal(epochOf(data, 1), epoch0, "each epoch reshuffles");
});

test("shuffle = false keeps file order and does not group by length", () => {
  const data = make([{ name: "a", lengths: lengthsOf(10), shuffle: false }], { batchSize: 3 });
  assert.equal(epochOf(data, 0), Array.from({ length: 10 }, (_, i) => `0:${i}`));
  assert.equal(data.epochLength(0), 4, "the last batch of an epoch is smaller");
});

test("eval split: round(fraction × conversations) records, the same whatever the batch size or packing", () => {
  const fake: Fake = { name: "a", lengths: lengthsOf(200), evalSplit: 0.1 };
  const a = make([fake], { batchSize: 2 });
  const b = make([fake], { batchSize: 16, packing: true });
  assert.is(a.splits[0].eval.length, 20);
  assert.equal(Array.from(a.splits[0].eval), Array.from(b.splits[0].eval));
  const heldOut = new Set(Array.from(a.splits[0].eval, (i) => `0:${i}`));
  assert.ok(epochOf(a, 0).every((e) => !heldOut.has(e)), "no eval example is trained on");
  assert.equal(a.evalBatches().flatMap(examplesIn), Array.from(a.splits[0].eval, (i) => `0:${i}`), "eval batches in file order");
  assert.not.equal(Array.from(make([fake], { seed: 1 }).splits[0].eval), Array.from(a.splits[0].eval), "another seed holds out other records");
  const larger = new Set(make([{ ...fake, evalSplit: 0.2 }]).splits[0].eval);
  assert.ok(Array.from(a.splits[0].eval).every((i) => larger.has(i)), "a larger fraction keeps the records a smaller one held out");
});

test("eval split is per conversation: the examples of one conversation stay together", () => {
  const records = Array.from({ length: 60 }, (_, i) => Math.floor(i / 3));
  const data = make([{ name: "glm", lengths: lengthsOf(60), records, evalSplit: 0.25 }]);
  const held = new Set(Array.from(data.splits[0].eval, (i) => records[i]));
  assert.is(held.size, 5);
  assert.is(data.splits[0].eval.length, 15);
  for (const i of data.splits[0].train) assert.not.ok(held.has(records[i]));
});

test("mixing: quotas follow the weights (largest remainder, summing to all examples)", () => {
  const train = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
  const inputs = [
    { name: "a", weight: 1, shuffle: true, train: train(30) },
    { name: "b", weight: 0.5, shuffle: true, train: train(15) },
    { name: "c", weight: 0.25, shuffle: true, train: train(8) },
  ];
  // N = 53; shares 4/7, 2/7, 1/7 → 30.29, 15.14, 7.57 → 30, 15, 8.
  assert.equal(epochQuotas(inputs), [30, 15, 8]);
  assert.equal(epochQuotas([{ ...inputs[0], weight: 1 }, { ...inputs[1], weight: 3 }]), [11, 34]);
  const order = epochExamples([{ ...inputs[0], weight: 1 }, { ...inputs[1], weight: 3 }], 42, 0);
  const fromB = order.filter((r) => r.dataset === 1).map((r) => r.index);
  assert.is(fromB.length, 34);
  assert.equal([...fromB.slice(0, 15)].sort((x, y) => x - y), Array.from(train(15)), "every example of b once before any repeats");
  // a: 11 per epoch from a stream whose first cycle is its 30 examples: epochs 0, 1 and 8 of epoch 2.
  const fromA = (epoch: number) => epochExamples([{ ...inputs[0], weight: 1 }, { ...inputs[1], weight: 3 }], 42, epoch).filter((r) => r.dataset === 0).map((r) => r.index);
  const firstCycle = [...fromA(0), ...fromA(1), ...fromA(2).slice(0, 8)];
  assert.equal(firstCycle.sort((x, y) => x - y), Array.from(train(30)), "each epoch continues the stream where the previous one stopped");
});

test("mixed epoch batches hold the datasets in their weighted proportions", () => {
  const data = make([
    { name: "big", lengths: lengthsOf(80) },
    { name: "small", lengths: lengthsOf(20, 2), weight: 4 },
  ]);
  const seen = epochOf(data, 0);
  assert.is(seen.length, 100);
  assert.is(seen.filter((e) => e.startsWith("1:")).length, 80, "weight 4 of 5 → 80 of 100 slots");
});

test("length grouping pads less than random batches; padding is the pad id with label -100 and mask 0", () => {
  const fake: Fake = { name: "a", lengths: lengthsOf(256) };
  const grouped = take(make([fake]), 64).map((x) => x.batch);
  const padding = (batches: Batch[]) => batches.reduce((n, b) => n + b.rows * b.length - b.lengths.reduce((s, l) => s + l, 0), 0);
  const ungrouped = take(make([{ ...fake, shuffle: false }]), 64).map((x) => x.batch);
  assert.ok(padding(grouped) * 4 < padding(ungrouped), `grouped padding ${padding(grouped)} vs ${padding(ungrouped)}`);
  for (const batch of grouped) {
    assert.is(batch.length, Math.max(...batch.lengths), "padded to the batch's longest row");
    for (let b = 0; b < batch.rows; b++) {
      for (let t = 0; t < batch.length; t++) {
        const k = b * batch.length + t;
        const inside = t < batch.lengths[b];
        assert.is(batch.attentionMask[k], inside ? 1 : 0);
        if (!inside) assert.equal([batch.inputIds[k], batch.labels[k], batch.segmentIds[k]], [pad, -100, 0]);
        else assert.is(batch.labels[k], t === 0 ? -100 : batch.inputIds[k]);
      }
    }
  }
});

test("packing: rows up to rowLength, segment ids per example, positions restarting at 0, each example once", () => {
  const data = make([{ name: "a", lengths: lengthsOf(100) }], { packing: true, rowLength: 40, batchSize: 3 });
  const batches = take(data, data.epochLength(0)).map((x) => x.batch);
  assert.equal(batches.flatMap(examplesIn).sort(), Array.from({ length: 100 }, (_, i) => `0:${i}`).sort());
  for (const batch of batches) {
    assert.ok(batch.length <= 40);
    for (let b = 0; b < batch.rows; b++) {
      let segment = 0;
      for (let t = 0; t < batch.lengths[b]; t++) {
        const k = b * batch.length + t;
        if (batch.positions[k] === 0) segment++;
        assert.is(batch.segmentIds[k], segment);
        const id = batch.inputIds[k];
        assert.is(batch.positions[k], id % 1000, "position restarts per example");
      }
    }
  }
  const rows = batches.reduce((n, b) => n + b.rows, 0);
  const fill = lengthsOf(100).reduce((a, b) => a + b, 0) / (rows * 40);
  assert.ok(fill > 0.6, `${rows} rows of 40 for 100 examples: ${(100 * fill).toFixed(0)}% filled`);
});

test("packing is refused for ChatGLM-6B's template (SFT5320)", () => {
  const result = TrainingData.create([dataset(0, { name: "glm", lengths: [5, 6], template: "chatglm" })], options({ packing: true }));
  assert.is(expectError(result).code, "SFT5320");
});

test("no training examples at all is SFT5321", () => {
  const result = TrainingData.create([dataset(0, { name: "a", lengths: [] })], options());
  assert.is(expectError(result).code, "SFT5321");
});

test("resume: the batches after a stored position are the batches an uninterrupted run reads, across epochs", () => {
  const fakes: Fake[] = [
    { name: "a", lengths: lengthsOf(30), evalSplit: 0.1 },
    { name: "b", lengths: lengthsOf(9, 3), weight: 0.5 },
  ];
  const data = make(fakes, { batchSize: 5 });
  const perEpoch = data.epochLength(0);
  const straight = take(data, 3 * perEpoch);
  const stop = perEpoch + 2;
  const saved = JSON.parse(JSON.stringify(straight[stop - 1].next));
  assert.equal([saved.epoch, saved.batch], [1, 2]);
  const resumed = make(fakes, { batchSize: 5 });
  const from = expectOk(resumed.resume(saved));
  const again = take(resumed, straight.length - stop, from);
  assert.equal(
    again.map((x) => examplesIn(x.batch)),
    straight.slice(stop).map((x) => examplesIn(x.batch)),
  );
  assert.equal(again[0].position, straight[stop].position);
});

test("a position taken with another seed or other data is refused (SFT5322)", () => {
  const data = make([{ name: "a", lengths: lengthsOf(30) }]);
  const position = data.start();
  assert.is(expectError(make([{ name: "a", lengths: lengthsOf(30) }], { seed: 1 }).resume(position)).code, "SFT5322");
  assert.is(expectError(make([{ name: "a", lengths: lengthsOf(31) }]).resume(position)).code, "SFT5322");
  assert.is(expectError(make([{ name: "a", lengths: lengthsOf(30) }], { batchSize: 8 }).resume(position)).code, "SFT5322");
});

test.run();
