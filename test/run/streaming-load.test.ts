// Checkpoint weights streamed to the GPU engine one tensor at a time: `sftc run` from a small
// ChatGLM2 checkpoint gives the losses of the engine made from a whole host map (LoRA, QLoRA and
// full fine-tuning), and loading a ~95 MB checkpoint grows held memory by a few tensors only.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { writeSafetensors } from "../../runtime/export/safetensors-writer.ts";
import { loadEngine } from "../../runtime/pipeline/run-job.ts";
import { prepareTraining, type TrainingSetup } from "../../runtime/pipeline/training-setup.ts";
import { GpuBackend } from "../../runtime/train/gpu-backend.ts";
import type { WeightSource } from "../../runtime/train/gpu-weights.ts";
import { resolveModelConfig } from "../../stdlib/families/config.ts";
import { expandTemplate } from "../../stdlib/families/family.ts";
import { families } from "../../stdlib/families/index.ts";
import { Random } from "../../runtime/random.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { heldBytes } from "../support/memory.ts";
import { expectOk } from "../support/result.ts";
import { loadingProgress } from "../../runtime/pipeline/loading-progress.ts";
import { metricsLosses, resolvedPipeline, ROOT, runDirs, sftc, stepLosses, tempDir } from "./support.ts";

const METHODS: Record<string, string> = {
  lora: "method lora {\n    rank    = 2\n    targets = [query_key_value]\n  }",
  qlora: "method qlora {\n    rank    = 2\n    targets = [query_key_value]\n  }",
  full: "method full {}",
};

const family = families.chatglm2;

/**
 * A ChatGLM2 checkpoint in `dir`: `config` over the tiny one (a vocabulary the bundled tokenizer
 * fits), each tensor's values from `values`; its size in bytes and its largest tensor's element count.
 */
async function writeModel(dir: string, config: Record<string, unknown>, values: (name: string, n: number) => Float32Array): Promise<{ bytes: number; largest: number }> {
  const raw = { ...family.tiny, padded_vocab_size: 2048, vocab_size: 2048, ...config };
  const dims = expectOk(resolveModelConfig(raw, family, "config.json")).dims;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(raw));
  const tensors = family.tensors.flatMap((decl) => expandTemplate(decl.name, dims.layers).map((name) => ({ name, shape: decl.shape(dims) })));
  const numels = tensors.map((t) => t.shape.reduce((a, b) => a * b, 1));
  const written = tensors.map((t, i) => ({ name: t.name, dtype: "F32" as const, shape: t.shape, bytes: () => new Uint8Array(values(t.name, numels[i]).buffer) }));
  await writeSafetensors(join(dir, "model.safetensors"), written);
  return { bytes: 4 * numels.reduce((a, b) => a + b, 0), largest: Math.max(...numels) };
}

/** A project whose pipeline trains the model in `model` with `method`. */
function project(model: string, method: string, dtype = ""): ResolvedPipeline {
  const dir = tempDir("streaming-load");
  copyFileSync(join(ROOT, "pipelines", "models", "tiny", "tokenizer.model"), join(model, "tokenizer.model"));
  const samples = ["你好", "晚上睡不着怎么办", "写一首诗", "今天天气怎么样"].map((q, i) => JSON.stringify({ instruction: q, input: "", output: `回答${i}：好的。` }));
  writeFileSync(join(dir, "belle.json"), samples.join("\n") + "\n");
  const sft = `sft 1\npipeline p {\n  model chatglm2 {\n    path = "${model}"${dtype}\n  }\n  ${method}\n  dataset belle {\n    path = "belle.json"\n    max_length = 32\n  }\n  train {\n    lr = 1e-2\n    max_steps = 3\n    batch_size = 2\n    seed = 7\n    eval_every = 100\n    save_every = 100\n    output = "runs"\n  }\n}\n`;
  writeFileSync(join(dir, "p.sft"), sft);
  return resolvedPipeline(join(dir, "p.sft"), []);
}

/** A tiny ChatGLM2 checkpoint: norm weights 1, every other value N(0, 0.02²). */
async function tinyModel(): Promise<string> {
  const dir = join(tempDir("streaming-tiny"), "model");
  const random = new Random(11);
  await writeModel(dir, {}, (name, n) => (name.includes("norm") ? new Float32Array(n).fill(1) : random.normalArray(n, 0.02)));
  return dir;
}

const tiny = tinyModel();

for (const [name, method] of Object.entries(METHODS)) {
  test(
    `chatglm2, ${name}: sftc run streams the checkpoint to the device, with a few plain progress lines off a terminal, and its losses equal the host-map engine's`,
    withGpu(async (gpu) => {
      const pipeline = project(await tiny, method, name === "full" ? "\n    dtype = f32" : "");
      const run = await sftc(["run", pipeline.file]);
      assert.is(run.exit, 0, run.err);
      assert.match(run.err, "training on webgpu");
      const lines = run.err.split("\n").filter((l) => l.startsWith("loading "));
      // a line at each quarter crossed: a large tensor may cross two at once
      assert.ok(lines.length >= 1 && lines.length <= 4, `${lines.length} lines`);
      assert.match(lines.at(-1)!, /\(100%\)$/);
      const [runDir] = runDirs(join(dirname(pipeline.file), "runs"));
      const streamed = metricsLosses(runDir);
      const hosted = await stepLosses(pipeline, gpu);
      console.log(`    ${lines.at(-1)}\n    host map ${hosted.map((l) => l.toFixed(6)).join(" ")}\n    streamed ${streamed.map((l) => l.toFixed(6)).join(" ")}`);
      assert.is(streamed.length, 3);
      assert.equal(streamed, hosted);
    }),
  );
}

test("the loading bar is redrawn in place on a terminal, bytes read of all", () => {
  let text = "";
  const progress = loadingProgress({ isTTY: true, write: (t) => void (text += t) }, "models/m");
  progress.report(512, 2048);
  progress.report(2048, 2048);
  progress.finish();
  const draws = text.split("\r\x1b[2K").filter(Boolean);
  assert.equal(draws, [`loading models/m [${"#".repeat(8)}${"-".repeat(22)}] 512 B / 2.0 KiB`, `loading models/m [${"#".repeat(30)}] 2.0 KiB / 2.0 KiB\n`]);
});

test(
  "the streaming setup holds only the adapters on the host; the CPU path keeps every weight",
  async () => {
    const pipeline = project(await tiny, METHODS.lora);
    const streamed = expectOk(await prepareTraining(pipeline, { stream: true }));
    const hosted = expectOk(await prepareTraining(pipeline));
    assert.ok([...streamed.weights.keys()].every((name) => /\.lora_[AB]\.weight$/.test(name)));
    assert.ok(streamed.weights.size > 0);
    assert.ok(hosted.weights.size > streamed.weights.size);
    assert.is(hosted.baseWeights, undefined);
  },
);

test(
  "loading a ~95 MB checkpoint onto the GPU grows held memory by a few tensors, never by the model",
  withGpu(async (gpu) => {
    const source = join(tempDir("streaming-large"), "model");
    // small values that differ along a row: cheap to make
    const values = (_: string, n: number) => Float32Array.from({ length: n }, (_, i) => ((i % 97) - 48) * 1e-3);
    const written = await writeModel(source, { hidden_size: 256, num_layers: 40, num_attention_heads: 4, kv_channels: 64, ffn_hidden_size: 512 }, values);
    const modelBytes = written.bytes;
    // a streamed tensor is widened to float64 on its way to the device
    const largest = 8 * written.largest;

    const pipeline = project(source, METHODS.lora);
    const setup = expectOk(await prepareTraining(pipeline, { stream: true }));
    // ArrayBuffers freed by one collection are released by the next: settle before the baseline
    heldBytes();
    const baseline = heldBytes();
    let peak = 0;
    const sampled = async function* (weights: WeightSource): WeightSource {
      for await (const tensor of weights) {
        peak = Math.max(peak, heldBytes() - baseline);
        yield tensor;
      }
    };
    const measured: TrainingSetup = { ...setup, baseWeights: (onProgress) => sampled(setup.baseWeights!(onProgress)) };
    let read = 0;
    const backend = expectOk(await loadEngine(measured, gpu, false, (done) => (read = done)));
    (backend as GpuBackend).destroy();
    console.log(`    ${(modelBytes / 2 ** 20).toFixed(0)} MiB model: peak held-memory growth ${(peak / 2 ** 20).toFixed(1)} MiB (largest tensor as float64 ${(largest / 2 ** 20).toFixed(1)} MiB)`);
    assert.is(read, modelBytes, "every byte of the checkpoint was read");
    assert.ok(peak < 4 * largest, `held memory grew by ${peak} bytes`);
    assert.ok(4 * largest < modelBytes / 4, "the bound is far below the model's size");
    // the same measure sees the host-map path hold the whole model (as float64)
    const before = heldBytes();
    const hosted = expectOk(await prepareTraining(pipeline));
    const hostedGrowth = heldBytes() - before;
    console.log(`    the host-map setup holds ${(hostedGrowth / 2 ** 20).toFixed(1)} MiB (${hosted.weights.size} tensors)`);
    assert.ok(hostedGrowth > modelBytes, `the host map grew held memory by ${hostedGrowth} bytes only`);
  }),
);

test(
  "sftc generate --gpu on a checkpoint shows the same loading progress as training",
  withGpu(async () => {
    const pipeline = project(await tiny, "method lora {\n    rank = 2\n  }");
    const r = await sftc(["generate", pipeline.file, "--gpu", "--prompt", "你好"]);
    assert.is(r.exit, 0, r.err);
    const lines = r.err.split("\n").filter((l) => l.startsWith("loading "));
    assert.ok(lines.length >= 1 && lines.length <= 4, `${lines.length} lines`);
    assert.match(lines.at(-1)!, /\(100%\)$/);
  }),
);

test.run();
