// config.json problems are SFT51xx error values that name the file and the key.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Diagnostic, Result } from "../../compiler/diagnostics.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { families } from "../../stdlib/families/index.ts";
import { FIXTURES } from "./support.ts";

function errors<T>(result: Result<T>): Diagnostic[] {
  assert.is(result.ok, false, "expected an error");
  return result.diagnostics;
}

function dirWithConfig(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "sftc-config-"));
  writeFileSync(join(dir, "config.json"), text);
  return dir;
}

test("a missing config.json is SFT5101 naming the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-config-"));
  const [d] = errors(await loadModelConfig(dir, "moss"));
  assert.is(d.code, "SFT5101");
  assert.ok(d.message.includes(join(dir, "config.json")), d.message);
});

test("invalid JSON is SFT5102 with the line and column", async () => {
  const dir = dirWithConfig('{\n  "model_type": "moss",\n  "n_embd": 64,,\n}\n');
  const [d] = errors(await loadModelConfig(dir, "moss"));
  assert.is(d.code, "SFT5102");
  assert.ok(d.where?.endsWith("config.json:3:16"), `${d.where} / ${d.message}`);
});

test("a missing required key is SFT5103 naming the key", async () => {
  const { n_head: _dropped, ...rest } = families.moss.tiny;
  const [d, ...more] = errors(await loadModelConfig(dirWithConfig(JSON.stringify(rest)), "moss"));
  assert.is(more.length, 0);
  assert.is(d.code, "SFT5103");
  assert.ok(d.message.includes('"n_head"'), d.message);
});

test("a value of the wrong type is SFT5103 naming the key and the value", async () => {
  const [d] = errors(await loadModelConfig(dirWithConfig(JSON.stringify({ ...families.chatglm2.tiny, kv_channels: "16" })), "chatglm2"));
  assert.is(d.code, "SFT5103");
  assert.ok(d.message.includes('"kv_channels"') && d.message.includes('"16"'), d.message);
});

test("a Baichuan-13B config given to baichuan7b is SFT5104 naming the keys, suggesting baichuan13b", async () => {
  const diagnostics = errors(await loadModelConfig(join(FIXTURES, "baichuan13b"), "baichuan7b"));
  assert.equal(diagnostics.map((d) => d.code), ["SFT5104", "SFT5104"]);
  assert.ok(diagnostics[0].message.includes('"architectures"'), diagnostics[0].message);
  assert.ok(diagnostics[1].message.includes('"model_max_length"') && diagnostics[1].message.includes("ALiBi"), diagnostics[1].message);
  assert.ok(diagnostics[0].hint?.includes("use family baichuan13b"), diagnostics[0].hint);
});

test("ChatGLM-6B and ChatGLM2-6B (both model_type chatglm) are told apart by their keys", async () => {
  const [d] = errors(await loadModelConfig(join(FIXTURES, "chatglm"), "chatglm2"));
  assert.is(d.code, "SFT5104");
  assert.ok(d.message.includes('"multi_query_attention" is missing'), d.message);
  assert.ok(d.hint?.includes("use family chatglm"), d.hint);
  const back = errors(await loadModelConfig(join(FIXTURES, "chatglm2"), "chatglm"));
  assert.ok(back.some((e) => e.message.includes('"position_encoding_2d" is missing')), back.map((e) => e.message).join("\n"));
});

test("a model_type of another family is SFT5104 naming model_type", async () => {
  const [d] = errors(await loadModelConfig(join(FIXTURES, "moss"), "baichuan13b"));
  assert.is(d.code, "SFT5104");
  assert.ok(d.message.includes('"model_type" is "moss"'), d.message);
  assert.ok(d.hint?.includes("use family moss"), d.hint);
});

test("dimensions that cannot split into heads are SFT5104", async () => {
  const [d] = errors(await loadModelConfig(dirWithConfig(JSON.stringify({ ...families.baichuan7b.tiny, num_attention_heads: 5 })), "baichuan7b"));
  assert.is(d.code, "SFT5104");
  assert.ok(d.message.includes("head count 5"), d.message);
  const [mqa] = errors(await loadModelConfig(dirWithConfig(JSON.stringify({ ...families.chatglm2.tiny, multi_query_group_num: 3 })), "chatglm2"));
  assert.ok(mqa.message.includes("3 key/value heads"), mqa.message);
});

test.run();
