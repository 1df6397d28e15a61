// `sftc export --merge` through the CLI: the pipeline's base checkpoint plus a PEFT adapter
// become a Hugging Face directory that our own reader loads; bad flags are usage errors.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../cli/main.ts";
import type { Io } from "../../cli/io.ts";
import { numel } from "../../compiler/ir/node.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { openCheckpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { exportPeftAdapter } from "../../runtime/export/peft-family.ts";
import { Random } from "../../runtime/random.ts";
import { families } from "../../stdlib/families/index.ts";
import { expectOk } from "../support/result.ts";

const root = join(import.meta.dirname, "..", "..");

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", color: false, env: {}, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

async function project() {
  const dir = mkdtempSync(join(tmpdir(), "sftc-export-merge-"));
  const model = join(dir, "models", "chatglm2-tiny");
  mkdirSync(model, { recursive: true });
  const fixture = join(root, "test", "fixtures", "checkpoints", "chatglm2");
  for (const f of readdirSync(fixture)) if (f !== "manifest.json" && f !== "golden.json") copyFileSync(join(fixture, f), join(model, f));
  copyFileSync(join(root, "test", "fixtures", "tokenizers", "unigram.model"), join(model, "tokenizer.model"));
  writeFileSync(join(dir, "belle.json"), '{"instruction":"你好","input":"","output":"你好！"}\n');
  writeFileSync(
    join(dir, "p.sft"),
    'sft 1\npipeline p {\n  model chatglm2 {\n    path = "models/chatglm2-tiny"\n  }\n  method lora {\n    rank    = 2\n    targets = [query_key_value]\n  }\n  dataset belle {\n    path = "belle.json"\n  }\n  train {\n    lr = 1e-4\n  }\n}\n',
  );
  const family = families.chatglm2;
  const config = expectOk(await loadModelConfig(model, "chatglm2"));
  const graph = expectOk(buildFamilyGraph(family, config, { batch: 1, seq: 2, method: { kind: "lora", rank: 2, alpha: 16, targets: ["query_key_value"] } }));
  const random = new Random(9);
  const weights = new Map([...graph.adapters].map(([name, node]) => [name, random.normalArray(numel(node.shape), 0.1)]));
  const adapter = join(dir, "adapter");
  expectOk(await exportPeftAdapter(adapter, { family, config, method: { rank: 2, alpha: 16, dropout: 0, targets: ["query_key_value"] }, baseModel: model, weights }));
  return { dir, adapter };
}

test("sftc export --merge writes a Hugging Face model that loads", async () => {
  const { dir, adapter } = await project();
  const out = join(dir, "merged");
  const io = capture();
  const code = await main(["export", join(dir, "p.sft"), "--merge", "--adapter", adapter, "--out", out], io);
  assert.is(code, 0, io.stderr);
  assert.match(io.stdout, /merged with the adapter/);
  assert.ok(existsSync(join(out, "config.json")) && existsSync(join(out, "tokenizer.model")));
  const merged = expectOk(await openCheckpoint(out));
  let tensors = 0;
  for await (const t of merged.stream()) {
    expectOk(t);
    tensors++;
  }
  assert.ok(tensors > 0);
});

test("sftc export --merge without --adapter, or with a bad --dtype, is a usage error", async () => {
  const { dir, adapter } = await project();
  const missing = capture();
  assert.is(await main(["export", join(dir, "p.sft"), "--merge", "--out", join(dir, "m")], missing), 2);
  assert.match(missing.stderr, /--adapter/);
  const badDtype = capture();
  assert.is(await main(["export", join(dir, "p.sft"), "--merge", "--adapter", adapter, "--out", join(dir, "m"), "--dtype", "f8"], badDtype), 2);
});

test.run();
