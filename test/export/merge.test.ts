// `mergeLora` on every family's fixture checkpoint: merged weights against base + scale·B·A
// recomputed here in float64, shards and index readable by our own checkpoint reader, side files
// copied, B = 0 reproducing the base bit for bit, and refusals as diagnostics.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { numel } from "../../compiler/ir/node.ts";
import type { Result } from "../../compiler/diagnostics.ts";
import { openCheckpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { decodeElements } from "../../runtime/checkpoint/dtype.ts";
import { mergeLora } from "../../runtime/export/merge.ts";
import { exportPeftAdapter, loraModuleShapes, type LoraExportSettings } from "../../runtime/export/peft-family.ts";
import { writePeftAdapter } from "../../runtime/export/peft.ts";
import { Random } from "../../runtime/random.ts";
import { families, familyNames, type FamilyName } from "../../stdlib/families/index.ts";
import { relativeError } from "../support/numeric.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const SIDE_FILES: Record<FamilyName, Record<string, string>> = {
  baichuan7b: { "tokenizer.model": "tokenizers/bpe.model" },
  baichuan13b: { "tokenizer.model": "tokenizers/bpe.model" },
  chatglm: { "ice_text.model": "tokenizers/glm6.model" },
  chatglm2: { "tokenizer.model": "tokenizers/unigram.model" },
  moss: { "vocab.json": "tokenizers/gpt2/vocab.json", "merges.txt": "tokenizers/gpt2/merges.txt", "added_tokens.json": "tokenizers/gpt2/added_tokens.json" },
};

function scratch(label: string): string {
  return mkdtempSync(join(tmpdir(), `sftc-merge-${label}-`));
}

/** The family's fixture checkpoint with tokenizer files, model code and a generation config beside it. */
function baseModel(name: FamilyName, checkpoint: string = name): string {
  const dir = join(scratch(name), "base");
  mkdirSync(dir);
  for (const file of readdirSync(join(FIXTURES, "checkpoints", checkpoint))) {
    if (file !== "manifest.json" && file !== "golden.json") copyFileSync(join(FIXTURES, "checkpoints", checkpoint, file), join(dir, file));
  }
  for (const [file, source] of Object.entries(SIDE_FILES[name])) copyFileSync(join(FIXTURES, source), join(dir, file));
  writeFileSync(join(dir, "modeling_tiny.py"), "# model code, loaded with trust_remote_code\n");
  writeFileSync(join(dir, "generation_config.json"), '{"do_sample": false}\n');
  writeFileSync(join(dir, "README.md"), "not part of the model\n");
  return dir;
}

/** A random adapter for `name` through the family graph and the PEFT exporter; B = 0 when `zeroB`. */
async function adapterFor(name: FamilyName, base: string, method: LoraExportSettings, zeroB = false): Promise<{ dir: string; weights: Map<string, Float32Array> }> {
  const family = families[name];
  const config = await loadModelConfig(base, name);
  assert.ok(config.ok);
  const graph = buildFamilyGraph(family, config.value, { batch: 1, seq: 2, method: { kind: "lora", rank: method.rank, alpha: method.alpha, targets: method.targets } });
  assert.ok(graph.ok);
  const random = new Random(5);
  const weights = new Map<string, Float32Array>();
  for (const [param, node] of graph.value.adapters) {
    const values = random.normalArray(numel(node.shape), 0.5);
    weights.set(param, zeroB && param.endsWith(".lora_B.weight") ? values.fill(0) : values);
  }
  const dir = join(scratch(`${name}-adapter`), "adapter");
  const written = await exportPeftAdapter(dir, { family, config: config.value, method, baseModel: base, weights });
  assert.ok(written.ok, JSON.stringify(written.diagnostics));
  return { dir, weights };
}

async function tensorsOf(dir: string): Promise<Map<string, { dtype: string; shape: number[]; data: Uint8Array }>> {
  const opened = await openCheckpoint(dir);
  assert.ok(opened.ok, JSON.stringify(opened.diagnostics));
  const out = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  for await (const t of opened.value.stream()) {
    assert.ok(t.ok);
    out.set(t.value.name, { dtype: t.value.dtype, shape: t.value.shape, data: t.value.data.slice() });
  }
  return out;
}

/** base + scale · B A in float64, by the textbook triple loop. */
function expectedMerge(base: Float64Array, a: Float32Array, b: Float32Array, out: number, inFeatures: number, rank: number, scale: number): Float64Array {
  const merged = Float64Array.from(base);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inFeatures; i++) {
      let sum = 0;
      for (let r = 0; r < rank; r++) sum += b[o * rank + r] * a[r * inFeatures + i];
      merged[o * inFeatures + i] += scale * sum;
    }
  }
  return merged;
}

/** Stores -0 as the first element of an f16 tensor of a safetensors base, whose bits a merge must keep. */
function setNegativeZero(dir: string, tensor: string): void {
  const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
  const path = join(dir, index.weight_map[tensor]);
  const bytes = readFileSync(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const entry = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"))[tensor];
  assert.is(entry.dtype, "F16");
  bytes.writeUInt16LE(0x8000, 8 + headerLength + entry.data_offsets[0]);
  writeFileSync(path, bytes);
}

function codes<T>(result: Result<T>): string[] {
  return result.diagnostics.map((d) => d.code);
}

const merge = suite("merge");
const METHOD: LoraExportSettings = { rank: 4, alpha: 8, dropout: 0.05, targets: ["attn.qkv", "mlp.down"] };

for (const name of familyNames) {
  merge(`${name}: merged weights equal base + (alpha/r)·B·A; shards, index and side files`, async () => {
    const base = baseModel(name);
    const { dir: adapter, weights } = await adapterFor(name, base, METHOD);
    const out = join(scratch(name), "merged");
    const merged = await mergeLora(base, name, adapter, out, { shardBytes: 64 * 1024, dtype: "f32" });
    assert.ok(merged.ok, JSON.stringify(merged.diagnostics));
    assert.is(merged.value.merged, weights.size / 2);
    assert.ok(merged.value.shards.length > 1, "small shards force several files");
    assert.not.ok(readdirSync(dirname(out)).some((f) => f.includes(".tmp-")), "no staging directory left");

    const index = JSON.parse(readFileSync(join(out, "model.safetensors.index.json"), "utf8"));
    const before = await tensorsOf(base);
    const after = await tensorsOf(out);
    assert.equal([...after.keys()].sort(), [...before.keys()].sort(), "every base tensor is in the merged model");
    assert.equal(Object.keys(index.weight_map).sort(), [...after.keys()].sort());
    assert.equal(Object.keys(index.weight_map), Object.keys(index.weight_map).sort(), "weight_map keys sorted");
    assert.equal([...new Set(Object.values(index.weight_map))].sort(), merged.value.shards);
    assert.is(index.metadata.total_size, [...after.values()].reduce((n, t) => n + t.data.byteLength, 0));
    const count = String(merged.value.shards.length).padStart(5, "0");
    merged.value.shards.forEach((file, i) => assert.is(file, `model-${String(i + 1).padStart(5, "0")}-of-${count}.safetensors`));

    const scale = METHOD.alpha / METHOD.rank;
    for (const [tensor, t] of after) {
      const original = before.get(tensor)!;
      const baseValues = decodeElements(original.dtype as never, original.data);
      const isFloat = ["f16", "bf16", "f32"].includes(original.dtype);
      assert.is(t.dtype, isFloat ? "f32" : original.dtype, `${tensor} dtype`);
      const module = tensor.replace(/\.weight$/, "");
      const a = weights.get(`${module}.lora_A.weight`);
      if (!a) {
        assert.equal(Array.from(decodeElements(t.dtype as never, t.data)), Array.from(baseValues), `${tensor} unchanged`);
        continue;
      }
      const [out, inFeatures] = original.shape;
      const reference = expectedMerge(baseValues, a, weights.get(`${module}.lora_B.weight`)!, out, inFeatures, METHOD.rank, scale);
      const error = relativeError(decodeElements("f32", t.data), reference);
      assert.ok(error < 1e-6, `${tensor}: relative error ${error}`);
      assert.ok(relativeError(baseValues, reference) > 1e-3, `${tensor} did change`);
    }

    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.is(config.torch_dtype, "float32");
    assert.equal({ ...config, torch_dtype: null }, { ...JSON.parse(readFileSync(join(base, "config.json"), "utf8")), torch_dtype: null });
    for (const file of [...Object.keys(SIDE_FILES[name]), "modeling_tiny.py", "generation_config.json"]) {
      assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(base, file))), `${file} copied`);
    }
    assert.not.ok(existsSync(join(out, "README.md")), "only model files are copied");
    assert.not.ok(existsSync(join(out, "pytorch_model.bin.index.json")));
  });
}

merge("merged in the stored dtype: one file without index, within the dtype's rounding", async () => {
  const base = baseModel("baichuan7b");
  const method: LoraExportSettings = { ...METHOD, targets: ["W_pack"], rslora: true };
  const { dir: adapter, weights } = await adapterFor("baichuan7b", base, method);
  const out = join(scratch("bf16"), "merged");
  const merged = await mergeLora(base, "baichuan7b", adapter, out);
  assert.ok(merged.ok, JSON.stringify(merged.diagnostics));
  assert.equal(merged.value.shards, ["model.safetensors"]);
  assert.not.ok(existsSync(join(out, "model.safetensors.index.json")));
  assert.ok(readFileSync(join(out, "config.json")).equals(readFileSync(join(base, "config.json"))), "config.json copied as is");
  const before = await tensorsOf(base);
  const after = await tensorsOf(out);
  const tensor = "model.layers.1.self_attn.W_pack.weight";
  const t = after.get(tensor)!;
  assert.is(t.dtype, "bf16");
  const [rows, cols] = t.shape;
  const scale = method.alpha / Math.sqrt(method.rank);
  const reference = expectedMerge(decodeElements("bf16", before.get(tensor)!.data), weights.get("model.layers.1.self_attn.W_pack.lora_A.weight")!, weights.get("model.layers.1.self_attn.W_pack.lora_B.weight")!, rows, cols, method.rank, scale);
  const error = relativeError(decodeElements("bf16", t.data), reference);
  assert.ok(error < 2 ** -8, `bf16 rounding only: ${error}`);
});

merge("modules_to_save tensors replace the base ones (moss lm_head weight and bias)", async () => {
  const family = families.moss;
  const base = baseModel("moss");
  const config = await loadModelConfig(base, "moss");
  assert.ok(config.ok);
  const random = new Random(8);
  const weights = new Map<string, Float32Array>();
  for (const m of loraModuleShapes(family, config.value, ["qkv_proj"])) {
    weights.set(`${m.modulePath}.lora_A.weight`, random.normalArray(2 * m.inFeatures));
    weights.set(`${m.modulePath}.lora_B.weight`, random.normalArray(m.outFeatures * 2));
  }
  const saved = new Map([["lm_head.weight", random.normalArray(512 * 64)], ["lm_head.bias", random.normalArray(512)]]);
  const adapter = join(scratch("saved"), "adapter");
  const method = { rank: 2, alpha: 2, dropout: 0, targets: ["qkv_proj"], modulesToSave: ["lm_head"] };
  assert.ok((await exportPeftAdapter(adapter, { family, config: config.value, method, baseModel: base, weights, saved })).ok);
  const out = join(scratch("saved"), "merged");
  const merged = await mergeLora(base, "moss", adapter, out, { dtype: "f32" });
  assert.ok(merged.ok, JSON.stringify(merged.diagnostics));
  assert.is(merged.value.replaced, 2);
  const after = await tensorsOf(out);
  for (const [name, values] of saved) assert.equal(Array.from(decodeElements("f32", after.get(name)!.data)), Array.from(values), name);
});

merge("B = 0 reproduces the base model bit for bit (chatglm2, safetensors base)", async () => {
  const base = baseModel("chatglm2", "chatglm2-safetensors");
  setNegativeZero(base, "transformer.encoder.layers.0.self_attention.query_key_value.weight");
  const { dir: adapter } = await adapterFor("chatglm2", base, { ...METHOD, targets: ["all"] }, true);
  const out = join(scratch("zero"), "merged");
  const merged = await mergeLora(base, "chatglm2", adapter, out, { shardBytes: 100 * 1024 });
  assert.ok(merged.ok, JSON.stringify(merged.diagnostics));
  assert.ok(merged.value.merged > 0);
  const before = await tensorsOf(base);
  const after = await tensorsOf(out);
  assert.is(after.size, before.size);
  for (const [tensor, t] of before) {
    assert.is(after.get(tensor)!.dtype, t.dtype, tensor);
    assert.ok(Buffer.from(after.get(tensor)!.data).equals(Buffer.from(t.data)), `${tensor} bit for bit`);
  }
});

merge("an adapter of another family is refused, naming the tensor and the model", async () => {
  const base = baseModel("baichuan7b");
  const glm = baseModel("chatglm2");
  const { dir: adapter } = await adapterFor("chatglm2", glm, METHOD);
  const out = join(scratch("wrong"), "merged");
  const merged = await mergeLora(base, "baichuan7b", adapter, out);
  assert.not.ok(merged.ok);
  assert.ok(codes(merged).every((c) => c === "SFT5803"));
  const first = merged.diagnostics[0];
  assert.match(first.message, /base_model\.model\.transformer\.encoder\.layers\.\d\.\S+ adapts \S+\.weight, which the Baichuan-7B model in .* does not have/);
  assert.match(first.hint ?? "", /chatglm2/, "the hint names the adapter's own base model");
  assert.not.ok(existsSync(out), "nothing written");
});

merge("an adapter with wrong shapes is refused", async () => {
  const base = baseModel("baichuan7b");
  const adapter = join(scratch("shape"), "adapter");
  const rank = 2;
  await writePeftAdapter(adapter, { baseModel: "x", rank, alpha: 4, dropout: 0, targetModules: ["W_pack"], dtype: "F32" }, [
    { modulePath: "model.layers.0.self_attn.W_pack", inFeatures: 32, outFeatures: 192, a: new Float32Array(rank * 32), b: new Float32Array(192 * rank) },
  ]);
  const merged = await mergeLora(base, "baichuan7b", adapter, join(scratch("shape"), "merged"));
  assert.not.ok(merged.ok);
  assert.equal(codes(merged), ["SFT5803"]);
  assert.match(merged.diagnostics[0].message, /lora_A\.weight has shape \[2,32\], but model\.layers\.0\.self_attn\.W_pack\.weight of the Baichuan-7B model .* takes 64 inputs/);
});

merge("unusable adapter directories and options are refused before anything is written", async () => {
  const base = baseModel("moss");
  const out = join(scratch("refuse"), "merged");
  const missing = await mergeLora(base, "moss", join(scratch("none"), "adapter"), out);
  assert.equal(codes(missing), ["SFT5801"]);

  const { dir: adapter } = await adapterFor("moss", base, METHOD);
  const config = JSON.parse(readFileSync(join(adapter, "adapter_config.json"), "utf8"));
  writeFileSync(join(adapter, "adapter_config.json"), JSON.stringify({ ...config, peft_type: "PREFIX_TUNING" }));
  const prefix = await mergeLora(base, "moss", adapter, out);
  assert.equal(codes(prefix), ["SFT5802"]);
  assert.match(prefix.diagnostics[0].message, /adapter_config\.json: peft_type is "PREFIX_TUNING"/);
  writeFileSync(join(adapter, "adapter_config.json"), JSON.stringify({ ...config, use_dora: true }));
  assert.equal(codes(await mergeLora(base, "moss", adapter, out)), ["SFT5802"]);
  writeFileSync(join(adapter, "adapter_config.json"), JSON.stringify(config));

  assert.equal(codes(await mergeLora(base, "moss", adapter, out, { shardBytes: 0 })), ["SFT5806"]);
  assert.equal(codes(await mergeLora(base, "moss", adapter, out, { dtype: "f8" as never })), ["SFT5806"]);
  const wrongFamily = await mergeLora(base, "chatglm", adapter, out);
  assert.ok(!wrongFamily.ok && codes(wrongFamily).every((c) => c === "SFT5104"), "the base directory is checked against the family");
  assert.not.ok(existsSync(out));
});

merge("an existing output directory is replaced only on request", async () => {
  const base = baseModel("chatglm");
  const { dir: adapter } = await adapterFor("chatglm", base, METHOD);
  const out = join(scratch("existing"), "merged");
  mkdirSync(out);
  writeFileSync(join(out, "keep.txt"), "old\n");
  const refused = await mergeLora(base, "chatglm", adapter, out);
  assert.equal(codes(refused), ["SFT5804"]);
  assert.equal(readdirSync(out), ["keep.txt"]);
  const replaced = await mergeLora(base, "chatglm", adapter, out, { overwrite: true });
  assert.ok(replaced.ok, JSON.stringify(replaced.diagnostics));
  assert.not.ok(existsSync(join(out, "keep.txt")));
  assert.ok(existsSync(join(out, "model.safetensors")));
  assert.equal(readdirSync(dirname(out)), ["merged"], "no staging or old directory left");
});

merge("missing parent directories of the output are made; a file in the way is refused", async () => {
  const base = baseModel("baichuan13b");
  const { dir: adapter } = await adapterFor("baichuan13b", base, METHOD);
  const root = scratch("parents");
  const merged = await mergeLora(base, "baichuan13b", adapter, join(root, "runs", "b13", "merged"));
  assert.ok(merged.ok, JSON.stringify(merged.diagnostics));
  assert.ok(existsSync(join(root, "runs", "b13", "merged", "model.safetensors")));
  writeFileSync(join(root, "file"), "");
  const blocked = await mergeLora(base, "baichuan13b", adapter, join(root, "file"));
  assert.equal(codes(blocked), ["SFT5805"]);
  assert.match(blocked.diagnostics[0].message, /exists and is not a directory/);
});

merge.run();
