// From a pipeline to tokenized datasets: worker threads give the same tokens in the same order
// as the calling thread, the disk cache is read on a rerun and invalidated by a changed byte or
// setting, drops are counted and reported, and the quickstart pipeline yields batches.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkFile } from "../../compiler/check/check.ts";
import { loadTrainingData } from "../../runtime/data/batches.ts";
import { prepareData } from "../../runtime/data/prepare.ts";
import { collectDataset } from "../../runtime/data/read-dataset.ts";
import { renderConversation } from "../../runtime/data/render.ts";
import { openEncoder } from "../../runtime/data/tokenize-chunk.ts";
import { tokenizeExample } from "../../runtime/data/tokenize-example.ts";
import { expectOk } from "../support/result.ts";

const root = join(import.meta.dirname, "..", "..");

function project(options: { maxLength?: number; limit?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "sftc-prepare-"));
  copyFileSync(join(root, "pipelines", "models", "tiny", "tokenizer.model"), join(dir, "tokenizer.model"));
  const samples = readFileSync(join(root, "pipelines", "data", "samples", "belle.json"), "utf8").trimEnd().split("\n");
  // A prompt far longer than max_length leaves no answer token: that example is dropped.
  const long = JSON.stringify({ instruction: "请把下面这段话翻译成英文。".repeat(40), input: "", output: "好的。" });
  writeFileSync(join(dir, "belle.json"), [...samples, long, "{not json"].join("\n") + "\n");
  const pipeline = [
    "sft 1",
    "pipeline p {",
    "  model chatglm2 {",
    "    init = random",
    "    size = tiny",
    '    tokenizer = "tokenizer.model"',
    "  }",
    "  method lora {",
    "    rank = 4",
    "  }",
    "  dataset belle {",
    '    path = "belle.json"',
    `    max_length = ${options.maxLength ?? 128}`,
    "    eval_split = 0.1",
    "    max_bad_fraction = 0.5",
    ...(options.limit ? [`    limit = ${options.limit}`] : []),
    "  }",
    "  train {",
    "    batch_size = 4",
    "  }",
    "}",
    "",
  ].join("\n");
  writeFileSync(join(dir, "p.sft"), pipeline);
  const checked = checkFile(join(dir, "p.sft"));
  assert.equal(checked.diagnostics.filter((d) => d.severity === "error"), []);
  return { dir, pipeline: checked.pipelines[0] };
}

const arrays = (d: { store: { chunk: { ids: Int32Array; trained: Uint8Array; lengths: Int32Array; records: Int32Array; fullLengths: Int32Array } } }) => {
  const c = d.store.chunk;
  return [c.ids, c.trained, c.lengths, c.records, c.fullLengths].map((a) => Array.from(a));
};

test("worker threads give the same examples in the same order as the calling thread", async () => {
  const { pipeline } = project();
  const here = expectOk(await prepareData(pipeline, { workers: 0, cacheDir: null }));
  const pooled = expectOk(await prepareData(pipeline, { workers: 2, cacheDir: null, chunkSize: 3 }));
  assert.equal(arrays(pooled[0]), arrays(here[0]));
  assert.is(here[0].store.size, 30);
});

test("the store gives back each example as tokenizing its conversation directly does", async () => {
  const { pipeline } = project();
  const [belle] = expectOk(await prepareData(pipeline, { workers: 0, cacheDir: null }));
  const open = expectOk(await openEncoder(belle.plan.encoder));
  const read = expectOk(await collectDataset(belle.plan.reader));
  const direct = read.conversations.flatMap((c) => renderConversation(c, open.choice).map((e) => tokenizeExample(e, open.encoder)));
  const kept = direct.flatMap((o) => (o.kind === "ok" ? [{ inputIds: o.example.inputIds, labels: o.example.labels }] : []));
  assert.equal(Array.from({ length: belle.store.size }, (_, i) => belle.store.example(i)), kept);
});

test("bad records and dropped examples are counted and reported (SFT5313, SFT5319)", async () => {
  const { pipeline } = project();
  const result = await prepareData(pipeline, { workers: 0, cacheDir: null });
  const [belle] = expectOk(result);
  assert.equal([belle.report.records, belle.report.accepted, belle.report.bad, belle.conversations, belle.dropped, belle.store.size], [32, 31, 1, 31, 1, 30]);
  const codes = result.diagnostics.map((d) => d.code);
  assert.ok(codes.includes("SFT5313") && codes.includes("SFT5319"), codes.join(", "));
  const dropped = result.diagnostics.find((d) => d.code === "SFT5319")!;
  assert.match(dropped.message, "dropped 1 of 31 examples with no answer token within max_length = 128 (record at line 31)");
  for (let i = 0; i < belle.store.size; i++) assert.ok(belle.store.length(i) <= 128);
});

test("limit keeps the first conversations in file order", async () => {
  const { pipeline } = project({ limit: 5 });
  const [belle] = expectOk(await prepareData(pipeline, { workers: 0, cacheDir: null }));
  assert.is(belle.conversations, 5);
  assert.ok(belle.store.chunk.records.every((r) => r < 5));
});

test("cache: a rerun reads the tokens back; one changed byte of the dataset or another max_length tokenizes again", async () => {
  const { dir, pipeline } = project();
  const cacheDir = join(dir, ".sftc-cache");
  const firstRun = await prepareData(pipeline, { workers: 0, cacheDir });
  const first = expectOk(firstRun);
  assert.is(first[0].fromCache, false);
  const secondRun = await prepareData(pipeline, { workers: 0, cacheDir });
  const second = expectOk(secondRun);
  assert.is(second[0].fromCache, true, "second run reads the cache");
  assert.equal(secondRun.diagnostics, firstRun.diagnostics, "the same bad-record and drop reports");
  assert.equal(arrays(second[0]), arrays(first[0]));
  assert.equal(second[0].report, first[0].report);
  assert.equal([second[0].conversations, second[0].dropped], [first[0].conversations, first[0].dropped]);

  const path = join(dir, "belle.json");
  const text = readFileSync(path, "utf8");
  writeFileSync(path, text.replace("图书馆", "阅览室"));
  const changed = expectOk(await prepareData(pipeline, { workers: 0, cacheDir }));
  assert.is(changed[0].fromCache, false, "a changed byte invalidates the cache");
  assert.not.equal(arrays(changed[0])[0], arrays(first[0])[0]);

  const longer = { ...pipeline, datasets: pipeline.datasets.map((d) => ({ ...d, max_length: 160 })) };
  assert.is(expectOk(await prepareData(longer, { workers: 0, cacheDir }))[0].fromCache, false, "another max_length is another entry");
  assert.is(expectOk(await prepareData(longer, { workers: 0, cacheDir }))[0].fromCache, true);

  // A damaged entry (a .bin cut short) is not used: the dataset is tokenized and the entry rewritten.
  for (const name of readdirSync(cacheDir).filter((n) => n.endsWith(".bin"))) truncateSync(join(cacheDir, name), 100);
  const damaged = expectOk(await prepareData(longer, { workers: 0, cacheDir }));
  assert.is(damaged[0].fromCache, false);
  assert.is(expectOk(await prepareData(longer, { workers: 0, cacheDir }))[0].fromCache, true);
});

test("a cache directory that cannot be created only costs the cache", async () => {
  const { dir, pipeline } = project();
  const cacheDir = join(dir, "belle.json", "cache");
  for (let run = 0; run < 2; run++) {
    const [belle] = expectOk(await prepareData(pipeline, { workers: 0, cacheDir }));
    assert.equal([belle.fromCache, belle.store.size], [false, 30]);
  }
});

test("the quickstart pipeline loads into batches: four datasets mixed, chatglm2 pad id 0, eval split of belle", async () => {
  const checked = checkFile(join(root, "pipelines", "quickstart.sft"));
  const data = expectOk(await loadTrainingData(checked.pipelines[0], { workers: 0, cacheDir: null }));
  assert.equal(data.datasets.map((d) => d.plan.name), ["belle", "firefly", "moss003", "safety"]);
  assert.equal(data.splits.map((s) => s.eval.length), [3, 0, 0, 0]);
  assert.is(data.options.padId, 0);
  const [first] = data.batches();
  assert.is(first.batch.rows, 2);
  assert.ok(first.batch.trainedTokens > 0);
  const evalBatches = data.evalBatches();
  assert.is(evalBatches.reduce((n, b) => n + b.examples, 0), 3);
});

test.run();
