// Adapters that cannot be exported or read are refused with diagnostics naming the tensor or
// field: weights that do not match the method's targets and rank, and adapter files whose keys
// or shapes are not PEFT's LoRA layout.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Result } from "../../compiler/diagnostics.ts";
import { resolveModelConfig } from "../../stdlib/families/config.ts";
import { families } from "../../stdlib/families/index.ts";
import { exportPeftAdapter, type LoraExportSettings } from "../../runtime/export/peft-family.ts";
import { readPeftAdapter } from "../../runtime/export/peft-reader.ts";
import { adapterConfigJson } from "../../runtime/export/peft.ts";
import { writeSafetensors } from "../../runtime/export/safetensors-writer.ts";

const family = families.chatglm2;
const resolved = resolveModelConfig(family.tiny, family, "tiny config");
if (!resolved.ok) throw new Error("the tiny chatglm2 config resolves");
const config = resolved.value;
const method: LoraExportSettings = { rank: 2, alpha: 4, dropout: 0, targets: ["query_key_value"] };
const QKV = (layer: number) => `transformer.encoder.layers.${layer}.self_attention.query_key_value`;

/** Correct adapters for both layers: A (2, 64), B (128, 2). */
function adapterWeights(): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const layer of [0, 1]) {
    weights.set(`${QKV(layer)}.lora_A.weight`, new Float32Array(2 * 64));
    weights.set(`${QKV(layer)}.lora_B.weight`, new Float32Array(128 * 2));
  }
  return weights;
}

function scratch(): string {
  return join(mkdtempSync(join(tmpdir(), "sftc-peft-refusal-")), "adapter");
}

function messages<T>(result: Result<T>, code: string): string[] {
  assert.not.ok(result.ok);
  assert.ok(result.diagnostics.every((d) => d.code === code), JSON.stringify(result.diagnostics));
  return result.diagnostics.map((d) => d.message);
}

const exporting = suite("exportPeftAdapter refusals");

exporting("a complete adapter exports", async () => {
  const done = await exportPeftAdapter(scratch(), { family, config, method, baseModel: "m", weights: adapterWeights() });
  assert.ok(done.ok, JSON.stringify(done.diagnostics));
  assert.equal(done.value, { modules: 2, saved: 0 });
});

exporting("a target the family lacks", async () => {
  const [message] = messages(await exportPeftAdapter(scratch(), { family, config, method: { ...method, targets: ["W_pack"] }, baseModel: "m", weights: adapterWeights() }), "SFT5807");
  assert.match(message, /ChatGLM2-6B has no layer 'W_pack'/);
});

exporting("missing, misshapen and unexpected weights are each named", async () => {
  const weights = adapterWeights();
  weights.delete(`${QKV(1)}.lora_B.weight`);
  weights.set(`${QKV(0)}.lora_A.weight`, new Float32Array(3 * 64));
  weights.set("transformer.encoder.layers.0.mlp.dense_4h_to_h.lora_A.weight", new Float32Array(2 * 172));
  const found = messages(await exportPeftAdapter(scratch(), { family, config, method, baseModel: "m", weights }), "SFT5807");
  assert.is(found.length, 3);
  assert.match(found.join("\n"), /layers\.0\.self_attention\.query_key_value\.lora_A\.weight has 192 values; its module and rank need \[2, 64\]/);
  assert.match(found.join("\n"), /layers\.1\.self_attention\.query_key_value\.lora_B\.weight \[128, 2\] is missing/);
  assert.match(found.join("\n"), /dense_4h_to_h\.lora_A\.weight is not an adapter of the targets query_key_value/);
});

exporting("modules_to_save needs the module's tensors; a bias is saved only when biases train", async () => {
  const saveHead = { ...method, modulesToSave: ["lm_head"] };
  const [missing] = messages(await exportPeftAdapter(scratch(), { family, config, method: saveHead, baseModel: "m", weights: adapterWeights() }), "SFT5807");
  assert.match(missing, /saved tensor transformer\.output_layer\.weight \[512,64\] is missing/);
  const bias = new Map([[`${QKV(0)}.bias`, new Float32Array(128)]]);
  const [refused] = messages(await exportPeftAdapter(scratch(), { family, config, method, baseModel: "m", weights: adapterWeights(), saved: bias }), "SFT5807");
  assert.match(refused, /query_key_value\.bias is neither an adapter nor part of modules_to_save or a trained bias/);
  const withBias = await exportPeftAdapter(scratch(), { family, config, method: { ...method, bias: "lora_only" }, baseModel: "m", weights: adapterWeights(), saved: bias });
  assert.ok(withBias.ok, JSON.stringify(withBias.diagnostics));
  assert.is(withBias.value.saved, 1);
});

exporting.run();

const reading = suite("readPeftAdapter refusals");

/** An adapter directory with `tensors` (name -> shape, zeros) and a rank-2 config. */
async function adapterDir(tensors: Record<string, number[]>, extraConfig: Record<string, unknown> = {}): Promise<string> {
  const dir = scratch();
  mkdirSync(dir);
  const json = { ...adapterConfigJson({ baseModel: "m", rank: 2, alpha: 4, dropout: 0, targetModules: ["query_key_value"], dtype: "F32" }), ...extraConfig };
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(json));
  await writeSafetensors(
    join(dir, "adapter_model.safetensors"),
    Object.entries(tensors).map(([name, shape]) => ({ name, dtype: "F32", shape, bytes: () => new Uint8Array(shape.reduce((a, b) => a * b, 4)) })),
  );
  return dir;
}

reading("a pair without its partner, a wrong rank, a foreign key and an embedding adapter", async () => {
  const dir = await adapterDir({
    [`base_model.model.${QKV(0)}.lora_A.weight`]: [2, 64],
    [`base_model.model.${QKV(1)}.lora_A.weight`]: [3, 64],
    [`base_model.model.${QKV(1)}.lora_B.weight`]: [128, 2],
    [`${QKV(0)}.lora_B.weight`]: [128, 2],
    "base_model.model.transformer.embedding.word_embeddings.lora_embedding_A": [2, 512],
  });
  const found = messages(await readPeftAdapter(dir), "SFT5802").join("\n");
  assert.match(found, /layers\.1\.self_attention\.query_key_value\.lora_A\.weight has shape \[3,64\], but lora_A of rank 2 must be \[2, in\]/);
  assert.match(found, /tensor transformer\.encoder\.layers\.0\.self_attention\.query_key_value\.lora_B\.weight does not start with base_model\.model\./);
  assert.match(found, /lora_embedding_A is a kind of adapter tensor sftc does not apply/);
  assert.match(found, /layers\.0\.self_attention\.query_key_value\.lora_A\.weight has no partner/);
});

reading("config fields sftc cannot apply", async () => {
  const tensors = { [`base_model.model.${QKV(0)}.lora_A.weight`]: [2, 64], [`base_model.model.${QKV(0)}.lora_B.weight`]: [128, 2] };
  for (const [field, value, pattern] of [
    ["fan_in_fan_out", true, /fan_in_fan_out is true/],
    ["rank_pattern", { query_key_value: 8 }, /rank_pattern sets per-module values/],
    ["r", 0, /r must be an integer >= 1, got 0/],
    ["target_modules", 3, /target_modules must be a list of module names or a regular expression/],
  ] as const) {
    const [message] = messages(await readPeftAdapter(await adapterDir(tensors, { [field]: value })), "SFT5802");
    assert.match(message, pattern);
  }
  const ok = await readPeftAdapter(await adapterDir(tensors, { rank_pattern: {}, use_rslora: false, target_modules: ".*query_key_value" }));
  assert.ok(ok.ok, JSON.stringify(ok.diagnostics));
  assert.is(ok.value.config.targetModules, ".*query_key_value");
});

reading("a pickled adapter_model.bin is pointed out", async () => {
  const dir = scratch();
  mkdirSync(dir);
  writeFileSync(join(dir, "adapter_config.json"), "{}");
  writeFileSync(join(dir, "adapter_model.bin"), "");
  const [message] = messages(await readPeftAdapter(dir), "SFT5801");
  assert.match(message, /adapter_model\.safetensors does not exist \(this directory has adapter_model\.bin: save the adapter with safe_serialization=True\)/);
});

reading.run();
