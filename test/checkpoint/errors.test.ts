// Hostile, truncated and inconsistent checkpoints give SFT51xx error values, never a crash.
import { cpSync, mkdtempSync, readFileSync, truncateSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unzipSync, zipSync } from "fflate";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Result } from "../../compiler/diagnostics.ts";
import { openCheckpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { bindTensors } from "../../runtime/checkpoint/family-check.ts";
import { captureFaults } from "../../runtime/checkpoint/fault.ts";
import { unpickle } from "../../runtime/checkpoint/pickle.ts";
import { resolveModelConfig } from "../../stdlib/families/config.ts";
import { families } from "../../stdlib/families/index.ts";
import { FIXTURES } from "./support.ts";
import { expectOk, expectError } from "../support/result.ts";

function copyFixture(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), "sftc-ckpt-"));
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

/** A directory holding `bytes` as its pytorch_model.bin. */
function dirWithBin(bytes: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), "sftc-zip-"));
  writeFileSync(join(dir, "pytorch_model.bin"), bytes);
  return dir;
}

/** A directory with one pytorch_model.bin made of `entries` (stored unless `level` says otherwise). */
function zipDir(entries: Record<string, Uint8Array>, level: 0 | 6 = 0): string {
  return dirWithBin(zipSync(entries, { level }));
}

function viewsEntries(): Record<string, Uint8Array> {
  return unzipSync(readFileSync(join(FIXTURES, "special", "views", "pytorch_model.bin")));
}

test("a pickle that references os.system is refused before anything runs (SFT5109)", async () => {
  const d = expectError(await openCheckpoint(join(FIXTURES, "special", "evil-global")));
  assert.is(d.code, "SFT5109");
  assert.ok(d.message.includes("refused to load global os.system: checkpoint loading never executes code"), d.message);
});

test("protocol 4 STACK_GLOBAL of builtins.eval is refused too (SFT5109)", async () => {
  const text = (s: string) => [0x8c, s.length, ...new TextEncoder().encode(s)];
  const bytes = new Uint8Array([0x80, 4, ...text("builtins"), 0x94, ...text("eval"), 0x94, 0x93, ...text("1+1"), 0x85, 0x52, 0x2e]);
  const d = expectError(await captureFaults("evil.pkl", async () => unpickle(bytes, "evil.pkl")));
  assert.is(d.code, "SFT5109");
  assert.ok(d.message.includes("builtins.eval"), d.message);
});

test("a zip entry escaping the archive's folder is refused (SFT5107)", async () => {
  const d = expectError(await openCheckpoint(join(FIXTURES, "special", "evil-path")));
  assert.is(d.code, "SFT5107");
  assert.ok(d.message.includes('"plain/../../evil"'), d.message);
  for (const name of ["/etc/passwd", "other/file"]) {
    const e = expectError(await openCheckpoint(zipDir({ ...viewsEntries(), [name]: new Uint8Array(1) })));
    assert.is(e.code, "SFT5107", name);
    assert.ok(e.message.includes(name), e.message);
  }
});

test("a truncated data.pkl is a malformed pickle (SFT5110)", async () => {
  const d = expectError(await openCheckpoint(join(FIXTURES, "special", "bad-pickle")));
  assert.is(d.code, "SFT5110");
});

test("a shard cut short loses its zip directory (SFT5106) and names the shard", async () => {
  const dir = copyFixture("chatglm");
  const shard = join(dir, "pytorch_model-00002-of-00002.bin");
  truncateSync(shard, Math.floor(statSync(shard).size / 2));
  const d = expectError(await openCheckpoint(dir));
  assert.is(d.code, "SFT5106");
  assert.ok(d.message.includes(shard), d.message);
});

test("a storage entry shorter than its tensor needs (SFT5111) names the tensor", async () => {
  const entries = viewsEntries();
  const key = "pytorch_model/data/2"; // the bf16 block's storage (18 elements)
  entries[key] = entries[key].subarray(0, 10);
  const d = expectError(await openCheckpoint(zipDir(entries)));
  assert.is(d.code, "SFT5111");
  assert.ok(d.message.includes("bf16_block"), d.message);
});

test("a compressed entry is reported, not misread (SFT5108)", async () => {
  const d = expectError(await openCheckpoint(zipDir(viewsEntries(), 6)));
  assert.is(d.code, "SFT5108");
});

test("a file that is not a zip is SFT5106", async () => {
  const d = expectError(await openCheckpoint(dirWithBin(new TextEncoder().encode("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n"))));
  assert.is(d.code, "SFT5106");
});

test("a truncated safetensors shard names the first tensor past the end (SFT5111)", async () => {
  const dir = copyFixture("chatglm2-safetensors");
  const shard = join(dir, "model-00002-of-00002.safetensors");
  truncateSync(shard, statSync(shard).size - 100);
  const d = expectError(await openCheckpoint(dir));
  assert.is(d.code, "SFT5111");
  assert.ok(d.message.includes("transformer.output_layer.weight"), d.message);
});

test("a shard truncated after opening ends the stream with an error value", async () => {
  const dir = copyFixture("chatglm2-safetensors");
  const checkpoint = expectOk(await openCheckpoint(dir));
  truncateSync(join(dir, "model-00002-of-00002.safetensors"), 4096);
  const results: Result<unknown>[] = [];
  for await (const r of checkpoint.stream()) results.push(r);
  const last = results[results.length - 1];
  assert.ok(results.slice(0, -1).every((r) => r.ok));
  assert.is(expectError(last).code, "SFT5111");
});

test("an index naming a shard outside the directory, or a tensor its shard lacks, is SFT5113", async () => {
  const dir = copyFixture("chatglm2");
  const indexPath = join(dir, "pytorch_model.bin.index.json");
  const index = JSON.parse(readFileSync(indexPath, "utf8"));
  writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, "transformer.output_layer.weight": "../pytorch_model-00002-of-00002.bin" } }));
  const outside = expectError(await openCheckpoint(dir));
  assert.is(outside.code, "SFT5113");
  assert.ok(outside.message.includes("../pytorch_model-00002-of-00002.bin"), outside.message);
  writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, "transformer.output_layer.weight": "pytorch_model-00001-of-00002.bin" } }));
  const misplaced = expectError(await openCheckpoint(dir));
  assert.is(misplaced.code, "SFT5113");
  assert.ok(misplaced.message.includes("transformer.output_layer.weight"), misplaced.message);
});

test("a directory without weights is SFT5105", async () => {
  const d = expectError(await openCheckpoint(mkdtempSync(join(tmpdir(), "sftc-empty-"))));
  assert.is(d.code, "SFT5105");
});

test("tensors against a config they do not fit: wrong shape, missing, unexpected (SFT5114-5116)", async () => {
  const { tensors } = expectOk(await openCheckpoint(join(FIXTURES, "chatglm2")));
  const dimsWith = (change: Record<string, unknown>) => expectOk(resolveModelConfig({ ...families.chatglm2.tiny, ...change }, families.chatglm2, "config.json")).dims;
  const wrong = bindTensors(tensors, families.chatglm2, dimsWith({ ffn_hidden_size: 100 }), "dir");
  assert.is(wrong.ok, false);
  const shape = wrong.diagnostics.find((d) => d.message.includes("layers.0.mlp.dense_h_to_4h.weight"));
  assert.is(shape?.code, "SFT5114");
  assert.ok(shape!.message.includes("[344,64]") && shape!.message.includes("[200,64]"), shape!.message);

  const missing = expectError(bindTensors(tensors.filter((t) => !t.name.endsWith("final_layernorm.weight")), families.chatglm2, dimsWith({}), "dir"));
  assert.is(missing.code, "SFT5115");
  assert.ok(missing.message.includes("transformer.encoder.final_layernorm.weight"), missing.message);

  const extra = bindTensors(tensors, families.chatglm2, dimsWith({ num_layers: 1 }), "dir");
  assert.is(extra.ok, false);
  assert.ok(extra.diagnostics.every((d) => d.code === "SFT5116" && d.message.includes("layers.1.")), extra.diagnostics.map((d) => d.message).join("\n"));
  assert.is(extra.diagnostics.length, 7);
});

test("a Baichuan-7B checkpoint bound as ChatGLM2 fails on names, not a crash", async () => {
  const { tensors } = expectOk(await openCheckpoint(join(FIXTURES, "baichuan7b")));
  const { dims } = expectOk(resolveModelConfig(families.chatglm2.tiny, families.chatglm2, "config.json"));
  const result = bindTensors(tensors, families.chatglm2, dims, "dir");
  assert.is(result.ok, false);
  assert.ok(result.diagnostics.some((d) => d.code === "SFT5115") && result.diagnostics.some((d) => d.code === "SFT5116"));
});

test.run();
