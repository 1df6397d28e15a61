// The PEFT adapter directory: config fields, key names, shapes, dtypes and bytes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writePeftAdapter } from "../../runtime/export/peft.ts";
import { Random } from "../../runtime/random.ts";

function parseSafetensors(bytes: Buffer) {
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"));
  return { header, data: bytes.subarray(8 + headerLength), headerLength };
}

test("a LoRA adapter is written as PEFT's directory layout with PEFT key names", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "sftc-peft-")), "adapter");
  const random = new Random(3);
  const rank = 4;
  const modules = [0, 1].map((layer) => ({
    modulePath: `transformer.encoder.layers.${layer}.self_attention.query_key_value`,
    inFeatures: 16,
    outFeatures: 24,
    a: random.normalArray(rank * 16),
    b: random.normalArray(24 * rank),
  }));
  await writePeftAdapter(dir, { baseModel: "THUDM/chatglm2-6b", rank, alpha: 16, dropout: 0.05, targetModules: ["query_key_value"], dtype: "F32" }, modules);
  assert.equal(readdirSync(dir).sort(), ["adapter_config.json", "adapter_model.safetensors"]);

  const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
  assert.is(config.peft_type, "LORA");
  assert.is(config.task_type, "CAUSAL_LM");
  assert.is(config.r, rank);
  assert.is(config.lora_alpha, 16);
  assert.equal(config.target_modules, ["query_key_value"]);
  assert.is(config.fan_in_fan_out, false);

  const { header, data, headerLength } = parseSafetensors(readFileSync(join(dir, "adapter_model.safetensors")));
  assert.is((8 + headerLength) % 8, 0, "data starts 8-byte aligned");
  assert.equal(header.__metadata__, { format: "pt" });
  const a0 = header["base_model.model.transformer.encoder.layers.0.self_attention.query_key_value.lora_A.weight"];
  const b1 = header["base_model.model.transformer.encoder.layers.1.self_attention.query_key_value.lora_B.weight"];
  assert.equal(a0, { dtype: "F32", shape: [rank, 16], data_offsets: [0, rank * 16 * 4] });
  assert.equal(b1.shape, [24, rank]);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  assert.is(names.length, 4);
  let end = 0;
  for (const name of names) {
    assert.is(header[name].data_offsets[0], end, `${name} follows the previous tensor`);
    end = header[name].data_offsets[1];
  }
  assert.is(end, data.length);
  const [begin, stop] = b1.data_offsets;
  const stored = new Float32Array(data.buffer.slice(data.byteOffset + begin, data.byteOffset + stop));
  assert.equal(Array.from(stored), Array.from(modules[1].b));
});

test("F16 adapters store IEEE halves", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "sftc-peft-")), "adapter");
  const a = Float32Array.from([1, -2, 0.5, 65504]);
  await writePeftAdapter(dir, { baseModel: "m", rank: 1, alpha: 2, dropout: 0, targetModules: ["W_pack"], dtype: "F16" }, [
    { modulePath: "model.layers.0.self_attn.W_pack", inFeatures: 4, outFeatures: 2, a, b: Float32Array.from([1, 1]) },
  ]);
  const { header, data } = parseSafetensors(readFileSync(join(dir, "adapter_model.safetensors")));
  const entry = header["base_model.model.model.layers.0.self_attn.W_pack.lora_A.weight"];
  assert.is(entry.dtype, "F16");
  const halves = new Uint16Array(data.buffer.slice(data.byteOffset + entry.data_offsets[0], data.byteOffset + entry.data_offsets[1]));
  assert.equal(Array.from(halves), [0x3c00, 0xc000, 0x3800, 0x7bff]);
});

test.run();
