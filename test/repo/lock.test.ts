// Lock files: one changed byte in a dataset, an imported .sft file or a model shard is named
// as drift; an updated lock accepts it again. Run records and configuration diffs.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HashCache, sha256File } from "../../runtime/repo/file-hash.ts";
import { compareLocks, computeLock, mergeLocks, readLock, writeLock, type LockInputs } from "../../runtime/repo/lock.ts";
import { expectOk } from "../support/result.ts";
import { diffJson, gitState, listRuns, newRunId, writeManifest } from "../../runtime/repo/run-record.ts";

function fixture() {
  const dir = mkdtempSync(join(tmpdir(), "sftc-lock-"));
  mkdirSync(join(dir, "data"));
  mkdirSync(join(dir, "models", "tiny"), { recursive: true });
  writeFileSync(join(dir, "base.sft"), "sft 1\npipeline base { train { lr = 1e-4 } }\n");
  writeFileSync(join(dir, "main.sft"), 'sft 1\nimport "./base.sft"\npipeline main extends base { }\n');
  writeFileSync(join(dir, "data", "belle.json"), '{"instruction":"a","input":"","output":"b"}\n');
  writeFileSync(join(dir, "models", "tiny", "config.json"), '{"hidden_size": 8}');
  writeFileSync(join(dir, "models", "tiny", "pytorch_model.bin"), Buffer.alloc(4096, 7));
  const inputs: LockInputs = {
    pipeline: "main.sft#main",
    sourceFiles: [join(dir, "main.sft"), join(dir, "base.sft")],
    modelDir: join(dir, "models", "tiny"),
    datasetFiles: [join(dir, "data", "belle.json")],
    otherFiles: [],
  };
  return { dir, inputs };
}

/** Flips one byte in place, keeping the size. */
function flipByte(path: string, at: number) {
  const bytes = readFileSync(path);
  bytes[at] ^= 1;
  writeFileSync(path, bytes);
}

async function lockNow(dir: string, inputs: LockInputs, cache?: HashCache) {
  return expectOk(await computeLock(inputs, dir, cache ?? (await HashCache.open())));
}

test("a fresh lock has no drift and lists every input with size and sha256", async () => {
  const { dir, inputs } = fixture();
  const lock = await lockNow(dir, inputs);
  const entry = lock.pipelines["main.sft#main"];
  assert.equal(Object.keys(entry.sources), ["base.sft", "main.sft"]);
  assert.equal(Object.keys(entry.datasets), ["data/belle.json"]);
  assert.equal(Object.keys(entry.model!.files), ["config.json", "pytorch_model.bin"]);
  assert.is(entry.model!.files["pytorch_model.bin"].size, 4096);
  assert.is(entry.datasets["data/belle.json"].sha256, await sha256File(join(dir, "data", "belle.json")));
  assert.equal(compareLocks(lock, await lockNow(dir, inputs)), []);
});

for (const [what, file, at] of [
  ["dataset", "data/belle.json", 3],
  ["source", "base.sft", 10],
  ["model", "models/tiny/pytorch_model.bin", 2000],
] as const) {
  test(`one changed byte in a ${what} file is named as drift; an updated lock accepts it`, async () => {
    const { dir, inputs } = fixture();
    const cache = await HashCache.open(join(dir, ".sftc-cache", "hashes.json"));
    const locked = await lockNow(dir, inputs, cache);
    await writeLock(join(dir, "sft.lock"), locked);
    flipByte(join(dir, file), at);
    const drifts = compareLocks(locked, await lockNow(dir, inputs, await HashCache.open(join(dir, ".sftc-cache", "hashes.json"))));
    assert.is(drifts.length, 1, JSON.stringify(drifts));
    assert.is(drifts[0].what, what);
    assert.is(drifts[0].path, file);
    assert.ok(drifts[0].detail.includes("same size"), drifts[0].detail);
    const updated = mergeLocks(locked, await lockNow(dir, inputs));
    await writeLock(join(dir, "sft.lock"), updated);
    const reread = await readLock(join(dir, "sft.lock"));
    assert.ok(reread.ok && reread.value);
    assert.equal(compareLocks(reread.ok ? reread.value! : updated, await lockNow(dir, inputs)), []);
  });
}

test("the hash cache never hides a change, even when the modification time is put back", async () => {
  const { dir } = fixture();
  const file = join(dir, "data", "belle.json");
  const cache = await HashCache.open();
  const before = await cache.fingerprint(file);
  const { atime, mtime } = statSync(file);
  flipByte(file, 0);
  utimesSync(file, atime, mtime);
  assert.is.not((await cache.fingerprint(file)).sha256, before.sha256);
});

test("a missing dataset file is an error naming it; a malformed lock is an error", async () => {
  const { dir, inputs } = fixture();
  const result = await computeLock({ ...inputs, datasetFiles: [join(dir, "data", "gone.json")] }, dir, await HashCache.open());
  assert.ok(!result.ok);
  assert.is(result.diagnostics[0].code, "SFT5603");
  assert.ok(result.diagnostics[0].message.includes("gone.json"));
  writeFileSync(join(dir, "sft.lock"), "{not json");
  const bad = await readLock(join(dir, "sft.lock"));
  assert.ok(!bad.ok && bad.diagnostics[0].code === "SFT5601");
  const none = await readLock(join(dir, "absent.lock"));
  assert.ok(none.ok && none.value === undefined);
});

test("run manifests are written and listed; diffs of resolved configurations name each leaf", async () => {
  const { dir } = fixture();
  const runs = join(dir, "runs");
  for (const seed of [1, 2]) {
    const runId = newRunId(new Date(Date.UTC(2026, 0, seed)));
    await writeManifest(join(runs, "main", runId), {
      runId, pipeline: "main", startedAt: new Date(Date.UTC(2026, 0, seed)).toISOString(), status: "finished",
      resolved: { train: { lr: seed * 1e-4 } }, git: await gitState(dir), seed, device: "test", metrics: { loss: 1 / seed },
    });
  }
  const listed = await listRuns(runs);
  assert.equal(listed.map((r) => r.manifest.seed), [1, 2]);
  assert.is(listed[0].manifest.git, null, "a temp dir is not inside a git repository");
  assert.equal(diffJson(listed[0].manifest.resolved, listed[1].manifest.resolved), [{ path: "train.lr", before: 1e-4, after: 2e-4 }]);
  assert.equal(diffJson({ a: [1, 2] }, { a: [1, 3, 4] }), [{ path: "a[1]", before: 2, after: 3 }, { path: "a[2]", before: undefined, after: 4 }]);
});

test("gitState reports the commit and dirty state of this repository", async () => {
  const state = await gitState(import.meta.dirname);
  assert.ok(state && /^[0-9a-f]{40}$/.test(state.commit));
});

test.run();
