// A checkpoint streamed to the GPU for generation one tensor at a time: a small ChatGLM2
// checkpoint, with and without a PEFT adapter (streamed after it, applied unmerged), generates the tokens
// (and logits) of the runner fed the whole host map, both storing the weights in the pipeline's
// model.dtype (chatglm2: f16), and loading a ~95 MB checkpoint grows held
// memory by a few tensors only. Skips without a GPU adapter.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
import { generateBatch } from "../../runtime/generate/engine.ts";
import { loadPipelineGenerator, pipelineGpuRunner } from "../../runtime/generate/pipeline-model.ts";
import { blockLinearNames } from "../../compiler/plan/storage.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import { checkpointWeights, readPeftAdapter } from "../../runtime/generate/weights.ts";
import { writePeftAdapter } from "../../runtime/export/peft.ts";
import { writeSafetensors } from "../../runtime/export/safetensors-writer.ts";
import { Random } from "../../runtime/random.ts";
import { resolveModelConfig } from "../../stdlib/families/config.ts";
import { expandTemplate } from "../../stdlib/families/family.ts";
import { families } from "../../stdlib/families/index.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { heldBytes } from "../support/memory.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { resolvedPipeline, ROOT, tempDir } from "../run/support.ts";
import { greedySettings } from "./gpu-support.ts";

const family = families.chatglm2;

/** A ChatGLM2 checkpoint of `config` over the tiny one in a new directory, with the bundled tokenizer; its bytes and largest tensor's size. */
async function checkpoint(config: Record<string, unknown>, values: (name: string, n: number) => Float32Array): Promise<{ dir: string; bytes: number; largest: number }> {
  const dir = join(tempDir("generate-streaming"), "model");
  const raw = { ...family.tiny, padded_vocab_size: 2048, vocab_size: 2048, ...config };
  const dims = expectOk(resolveModelConfig(raw, family, "config.json")).dims;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(raw));
  copyFileSync(join(ROOT, "pipelines", "models", "tiny", "tokenizer.model"), join(dir, "tokenizer.model"));
  const tensors = family.tensors.flatMap((decl) => expandTemplate(decl.name, dims.layers).map((name) => ({ name, shape: decl.shape(dims) })));
  const sizes = tensors.map((t) => t.shape.reduce((a, b) => a * b, 1));
  await writeSafetensors(
    join(dir, "model.safetensors"),
    tensors.map((t, i) => ({ name: t.name, dtype: "F32" as const, shape: t.shape, bytes: () => new Uint8Array(values(t.name, sizes[i]).buffer) })),
  );
  return { dir, bytes: 4 * sizes.reduce((a, b) => a + b, 0), largest: Math.max(...sizes) };
}

/** The one pipeline of a project over the model in `dir`, with `method` (lora or qlora). */
function pipelineFor(dir: string, method = "lora") {
  const project = tempDir("generate-streaming-project");
  writeFileSync(join(project, "belle.json"), `${JSON.stringify({ instruction: "你好", input: "", output: "好的。" })}\n`);
  const sft = `sft 1\npipeline p {\n  model chatglm2 {\n    path = "${dir}"\n  }\n  method ${method} {\n    rank    = 2\n    targets = [query_key_value]\n  }\n  dataset belle {\n    path = "belle.json"\n    max_length = 32\n  }\n  train {\n    max_steps = 1\n    output = "runs"\n  }\n}\n`;
  writeFileSync(join(project, "p.sft"), sft);
  return resolvedPipeline(join(project, "p.sft"), []);
}

const random = new Random(11);
const tiny = checkpoint({}, (name, n) => (name.includes("norm") ? new Float32Array(n).fill(1) : random.normalArray(n, 0.02)));

/** A rank-2 PEFT adapter on every query_key_value of the model in `dir`, in a new directory. */
async function adapterFor(dir: string): Promise<string> {
  const { config, weights } = expectOk(await checkpointWeights(dir, family));
  const rank = 2;
  const modules = [...weights.entries()]
    .filter(([name]) => name.endsWith(".query_key_value.weight"))
    .map(([name, w]) => {
      const inFeatures = config.dims.hidden;
      const outFeatures = w.length / inFeatures;
      return { modulePath: name.replace(/\.weight$/, ""), a: random.normalArray(rank * inFeatures, 0.5), b: random.normalArray(outFeatures * rank, 0.5), inFeatures, outFeatures };
    });
  assert.is(modules.length, config.dims.layers);
  const out = tempDir("generate-streaming-adapter");
  await writePeftAdapter(out, { baseModel: dir, rank, alpha: 4, dropout: 0, targetModules: ["query_key_value"], dtype: "F32" }, modules);
  return out;
}

for (const adapted of [false, true]) {
  test(
    `chatglm2${adapted ? " with an adapter" : ""}: generation streamed to the GPU gives the host-map runner's tokens and logits, every byte read once`,
    withGpu(async (gpu) => {
      const { dir, bytes } = await tiny;
      const adapterDir = adapted ? await adapterFor(dir) : undefined;
      let read = 0;
      let reports = 0;
      const pipeline = pipelineFor(dir);
      const streamed = expectOk(await loadPipelineGenerator(pipeline, { gpu, adapterDir, onProgress: (done) => ((read = done), reports++) }));
      assert.is(read, bytes, "every byte of the checkpoint was read");
      assert.ok(reports > 1, "progress after each tensor");
      assert.is(streamed.weights.size, 0, "no weight is held on the host");
      assert.match(streamed.model.backend, "GPU");
      assert.match(streamed.model.backend, "f16 linears, table and head");

      const { config, weights } = expectOk(await checkpointWeights(dir, family));
      const adapter = adapterDir ? expectOk(await readPeftAdapter(adapterDir, family, config)) : undefined;
      const onGpu = () => expectOk(pipelineGpuRunner(pipeline, family, config, gpu));
      const withAdapter = new Map([...weights, ...(adapter?.saved ?? []), ...(adapter?.weights ?? [])]);
      const hosted = new CachedGenerationModel({ family, config, weights: withAdapter, method: adapter?.method }, onGpu());
      const prompts = [streamed.tokenizer.withSpecialTokens(streamed.tokenizer.encode("晚上睡不着怎么办"))];
      const [a, b] = [await hosted.start(prompts), await streamed.model.start(prompts)];
      const error = relativeError(b.logits[0], a.logits[0]);
      console.log(`    prefill logits, streamed vs host map: relative error ${error}`);
      assert.ok(error < 1e-6, `relative error ${error}`);
      if (adapter) {
        const base = new CachedGenerationModel({ family, config, weights }, onGpu());
        assert.ok(relativeError((await base.start(prompts)).logits[0], a.logits[0]) > 1e-3, "the adapter changes the logits");
      }
      const settings = greedySettings(4);
      const want = expectOk(await generateBatch(hosted, prompts, settings, new Random(0)));
      const got = expectOk(await generateBatch(streamed.model, prompts, settings, new Random(0)));
      assert.equal(got[0][0].tokens, want[0][0].tokens);
    }),
  );
}

test(
  "a QLoRA pipeline's generation streams its block linears into NF4, as the host-map runner of the same pipeline stores them, and the CPU computes over their round trip",
  withGpu(async (gpu) => {
    const { dir, bytes } = await tiny;
    const pipeline = pipelineFor(dir, "qlora");
    const streamed = expectOk(await loadPipelineGenerator(pipeline, { gpu }));
    assert.match(streamed.model.backend, "NF4 block linears, f16 table and head");
    const { config, weights } = expectOk(await checkpointWeights(dir, family));
    const runner = expectOk(pipelineGpuRunner(pipeline, family, config, gpu));
    const hosted = new CachedGenerationModel({ family, config, weights }, runner);
    const prompts = [streamed.tokenizer.withSpecialTokens(streamed.tokenizer.encode("晚上睡不着怎么办"))];
    const [a, b] = [await hosted.start(prompts), await streamed.model.start(prompts)];
    assert.is(relativeError(b.logits[0], a.logits[0]), 0);
    // the LoRA pipeline over the same checkpoint keeps its linears in f16
    const f16 = expectOk(pipelineGpuRunner(pipelineFor(dir), family, config, gpu));
    await new CachedGenerationModel({ family, config, weights }, f16).start(prompts);
    console.log(`    NF4 linears: ${runner.stats.weightBytes} bytes; f16 linears: ${f16.stats.weightBytes}; the checkpoint in f32: ${bytes}`);
    assert.ok(runner.stats.weightBytes < f16.stats.weightBytes, "the linears are stored in 4 bits");

    // the CPU model of the same pipeline: the NF4 round trip of the block linears, in float64
    const cpu = expectOk(await loadPipelineGenerator(pipeline));
    const roundTrip = new CachedGenerationModel({ family, config, weights: nf4RoundTrip(weights, blockLinearNames(family, config.dims.layers)) });
    const [c, r] = [await cpu.model.start(prompts), await roundTrip.start(prompts)];
    assert.is(relativeError(c.logits[0], r.logits[0]), 0);
    assert.ok(relativeError(c.logits[0], a.logits[0]) < 1e-3, "the GPU's NF4 model is the CPU's within f16 table rounding");
  }),
);

test(
  "loading a ~95 MB checkpoint onto the GPU for generation grows held memory by a few tensors, never by the model",
  withGpu(async (gpu) => {
    // small values that differ along a row: cheap to make
    const values = (_: string, n: number) => Float32Array.from({ length: n }, (_, i) => ((i % 97) - 48) * 1e-3);
    const written = await checkpoint({ hidden_size: 256, num_layers: 40, num_attention_heads: 4, kv_channels: 64, ffn_hidden_size: 512 }, values);
    // a streamed tensor is widened to float64 on its way to the device
    const largest = 8 * written.largest;
    const pipeline = pipelineFor(written.dir);
    // ArrayBuffers freed by one collection are released by the next: settle before the baseline
    heldBytes();
    const baseline = heldBytes();
    let peak = 0;
    let read = 0;
    const sample = (done: number) => {
      read = done;
      peak = Math.max(peak, heldBytes() - baseline);
    };
    expectOk(await loadPipelineGenerator(pipeline, { gpu, onProgress: sample }));
    console.log(`    ${(written.bytes / 2 ** 20).toFixed(0)} MiB model: peak held-memory growth ${(peak / 2 ** 20).toFixed(1)} MiB (largest tensor as float64 ${(largest / 2 ** 20).toFixed(1)} MiB)`);
    assert.is(read, written.bytes, "every byte of the checkpoint was read");
    assert.ok(peak < 4 * largest, `held memory grew by ${peak} bytes`);
    assert.ok(4 * largest < written.bytes / 4, "the bound is far below the model's size");
    // the same measure sees the host path hold the whole model (as float64)
    const before = heldBytes();
    const hosted = expectOk(await loadPipelineGenerator(pipeline));
    const growth = heldBytes() - before;
    console.log(`    the host-map generator holds ${(growth / 2 ** 20).toFixed(1)} MiB (${hosted.weights.size} tensors)`);
    assert.ok(growth > written.bytes, `the host map grew held memory by ${growth} bytes only`);
  }),
);

test.run();
