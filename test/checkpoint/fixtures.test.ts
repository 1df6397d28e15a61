// Each family's tiny fixture (written by PyTorch in the published format) loads with the names,
// shapes, dtypes and values PyTorch recorded; so do the safetensors variant and the views.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { openCheckpoint, type Checkpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { bindTensors } from "../../runtime/checkpoint/family-check.ts";
import { decodeElements } from "../../runtime/checkpoint/dtype.ts";
import { openModelDir } from "../../runtime/checkpoint/model-dir.ts";
import { families, familyNames } from "../../stdlib/families/index.ts";
import { FIXTURES, assertMatchesManifest, readManifest } from "./support.ts";
import { expectOk as value } from "../support/result.ts";

for (const name of familyNames) {
  test(`${name}: the fixture's config, tensor bindings and every tensor match the manifest`, async () => {
    const dir = join(FIXTURES, name);
    const config = value(await loadModelConfig(dir, name));
    const checkpoint = value(await openCheckpoint(dir));
    assert.is(checkpoint.format, "torch");
    assert.is(checkpoint.files.length, 2);
    const bindings = value(bindTensors(checkpoint.tensors, families[name], config.dims, dir));
    const skipped = checkpoint.tensors.filter((t) => !bindings.has(t.name)).map((t) => t.name);
    assert.ok(skipped.every((n) => /inv_freq|causal_mask|masked_bias|^lm_head\.weight$/.test(n) === true), `skipped ${skipped}`);
    const count = await assertMatchesManifest(checkpoint, readManifest(dir));
    assert.is(count, checkpoint.tensors.length);
    for (const t of checkpoint.tensors) assert.is(t.dtype === families[name].publishedDtype || !bindings.has(t.name), true, `${t.name} dtype`);
  });

  test(`${name}: the family's tiny config is the fixture's config.json`, () => {
    const written = JSON.parse(readFileSync(join(FIXTURES, name, "config.json"), "utf8"));
    assert.equal(written, families[name].tiny);
  });
}

test("chatglm: the stored lm_head equals the embedding it is tied to", async () => {
  const dir = join(FIXTURES, "chatglm");
  const config = value(await loadModelConfig(dir, "chatglm"));
  assert.is(config.tiedHead, true);
  const checkpoint = value(await openCheckpoint(dir));
  const wanted = new Set(["lm_head.weight", "transformer.word_embeddings.weight"]);
  const loaded: Uint8Array[] = [];
  for await (const r of checkpoint.stream({ include: (t) => wanted.has(t.name) })) loaded.push(value(r).data);
  assert.is(loaded.length, 2);
  assert.equal(loaded[0], loaded[1]);
});

test("openModelDir streams only the weights a model uses, each with its role and layer", async () => {
  const model = value(await openModelDir(join(FIXTURES, "chatglm"), "chatglm"));
  const seen: string[] = [];
  for await (const r of model.weights()) {
    const t = value(r);
    seen.push(`${t.role}@${t.layer}`);
  }
  assert.is(seen.length, 27, "30 stored - 2 inv_freq buffers - the tied lm_head copy");
  assert.ok(seen.includes("attn.qkv.weight@1") && seen.includes("embed.weight@null") && !seen.includes("head.weight@null"));
  const mismatch = await openModelDir(join(FIXTURES, "chatglm"), "chatglm2");
  assert.is(mismatch.ok, false);
  assert.is(mismatch.diagnostics[0].code, "SFT5104");
});

test("chatglm2 as sharded safetensors matches its manifest", async () => {
  const dir = join(FIXTURES, "chatglm2-safetensors");
  const checkpoint = value(await openCheckpoint(dir));
  assert.is(checkpoint.format, "safetensors");
  const config = value(await loadModelConfig(dir, "chatglm2"));
  value(bindTensors(checkpoint.tensors, families.chatglm2, config.dims, dir));
  assert.is(await assertMatchesManifest(checkpoint, readManifest(dir)), 18);
});

for (const variant of ["views", "views-protocol4"]) {
  test(`${variant}: transposed, strided and storage-sharing tensors load contiguous with the right values`, async () => {
    const dir = join(FIXTURES, "special", variant);
    const checkpoint = value(await openCheckpoint(dir));
    const byName = new Map(checkpoint.tensors.map((t) => [t.name, t]));
    assert.equal(byName.get("transposed")!.stride, [1, 10], "a transposed view is stored with its strides");
    assert.is(byName.get("shared_tail")!.offset, 20);
    assert.is(byName.get("shared_head")!.storageStart, byName.get("shared_tail")!.storageStart, "one storage, two tensors");
    assert.is(await assertMatchesManifest(checkpoint, readManifest(dir)), 7);
  });
}

test("views: int64 ids and a 0-d float64 scalar decode exactly", async () => {
  const checkpoint = value(await openCheckpoint(join(FIXTURES, "special", "views")));
  const tensors = new Map<string, Float64Array>();
  for await (const r of checkpoint.stream()) tensors.set(value(r).name, decodeElements(value(r).dtype, value(r).data));
  assert.equal(Array.from(tensors.get("int64_ids")!), [0, 1000003, 2000006, 3000009, 4000012]);
  assert.equal(Array.from(tensors.get("scalar")!), [2.5]);
});

test("progress reports bytes done up to the total of the selected tensors", async () => {
  const checkpoint: Checkpoint = value(await openCheckpoint(join(FIXTURES, "moss")));
  const reports: [number, number][] = [];
  const include = (t: { name: string }) => !t.name.includes("causal_mask");
  for await (const r of checkpoint.stream({ include, onProgress: (done, total) => reports.push([done, total]) })) value(r);
  const total = checkpoint.tensors.filter(include).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "u8" ? 1 : t.dtype === "f32" ? 4 : 2), 0);
  assert.is(reports.length, checkpoint.tensors.filter(include).length);
  assert.ok(reports.every(([done], i) => i === 0 || done > reports[i - 1][0]), "monotonic");
  assert.equal(reports[reports.length - 1], [total, total]);
});

test.run();
