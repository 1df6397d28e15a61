// Generation on the GPU (WebGPU; lavapipe in CI): the cached step graphs compiled and run by the
// executor give the CPU reference's logits within float32 error, and the same tokens, for every
// family's fixture model, including a left-padded batch, with f32 weights and with the linears,
// table and head stored in bf16 or f16 (an adapter over them unmerged; f16 refused without
// shader-f16), and with a QLoRA pipeline's block linears in NF4; with an f16 KV cache, against the
// CPU reference that rounds its cache the same way; a prompt's step in the memory plan's shared
// buffers; and `sftc generate --gpu`. Skips without a GPU adapter.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CachedGenerationModel, interpreterRunnerOf } from "../../runtime/generate/cached-model.ts";
import { generateBatch } from "../../runtime/generate/engine.ts";
import { gpuRunner } from "../../runtime/generate/gpu-runner.ts";
import { buildCachedStep, copiedOutputs, PROMPT_PLACEHOLDER_KEYS } from "../../compiler/models/cached-graph.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { pipelineCacheDtype, pipelineGpuRunner } from "../../runtime/generate/pipeline-model.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { QUICKSTART, resolvedPipeline } from "../run/support.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { blockLinearNames, generationWeightDtypes, roundToStorage } from "../../compiler/plan/storage.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import { loraParamNames } from "../../compiler/models/lora-linear.ts";
import { Random } from "../../runtime/random.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { sftc } from "../cli/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { greedySettings } from "./gpu-support.ts";

const settings = greedySettings(3);

/** The prompts' prefill and one decode step give logits within 1e-4 of the CPU's, and greedy generation the same tokens. */
async function assertSameGeneration(cpu: CachedGenerationModel, onGpu: CachedGenerationModel, prompts: number[][]): Promise<void> {
  const [a, b] = [await cpu.start(prompts), await onGpu.start(prompts)];
  const worst = Math.max(...a.logits.map((row, i) => relativeError(b.logits[i], row)));
  assert.ok(worst < 1e-4, `prefill logits: relative error ${worst}`);
  const [x, y] = [await a.session.append([3, 5]), await b.session.append([3, 5])];
  const step = Math.max(...x.map((row, i) => relativeError(y[i], row)));
  assert.ok(step < 1e-4, `decode-step logits: relative error ${step}`);
  const want = expectOk(await generateBatch(cpu, prompts, settings, new Random(0)));
  const got = expectOk(await generateBatch(onGpu, prompts, settings, new Random(0)));
  assert.equal(got.map((p) => p[0].tokens), want.map((p) => p[0].tokens));
}

/** Two prompts of different lengths (a left-padded batch); ChatGLM's end in [gMASK] <sop>. */
function twoPrompts(name: FamilyName, config: ModelConfig): number[][] {
  const glm = (ids: number[]) => (name === "chatglm" ? [...ids, config.tokens.specials["[gMASK]"], config.tokens.specials["<sop>"]] : ids);
  return [glm([17, 250, 31, 99, 4, 8]), glm([60, 7])];
}

for (const name of Object.keys(families) as FamilyName[]) {
  test(
    `${name}: GPU generation equals the CPU reference (logits within 1e-4, same tokens)`,
    withGpu(async (gpu) => {
      const family = families[name];
      const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
      const cpu = new CachedGenerationModel({ family, config, weights });
      const onGpu = new CachedGenerationModel({ family, config, weights }, gpuRunner(gpu));
      await assertSameGeneration(cpu, onGpu, twoPrompts(name, config));
    }),
  );
}

for (const [name, dtype] of [["baichuan7b", "bf16"], ["moss", "f16"], ["chatglm", "bf16"], ["chatglm2", "f16"], ["baichuan13b", "bf16"]] as const) {
  test(
    `${name}: GPU generation over ${dtype} linears, table and head equals the CPU reference over the same rounded weights, in about half the bytes`,
    withGpu(async (gpu) => {
      const family = families[name];
      const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
      const weightDtypes = generationWeightDtypes(family, config, dtype);
      const rounded = new Map(weights);
      roundToStorage(rounded, weightDtypes);
      const cpu = new CachedGenerationModel({ family, config, weights: rounded });
      const wide = gpuRunner(gpu);
      const narrow = gpuRunner(gpu, { weightDtypes });
      const onGpu = new CachedGenerationModel({ family, config, weights }, narrow);
      await assertSameGeneration(cpu, onGpu, twoPrompts(name, config));

      // the same steps over f32 weights upload twice the bytes of the narrow ones, less norms and biases
      await (await new CachedGenerationModel({ family, config, weights }, wide).start(twoPrompts(name, config))).session.append([3, 5]);
      const ratio = narrow.stats.weightBytes / wide.stats.weightBytes;
      console.log(`    ${name} ${dtype}: ${narrow.stats.weightBytes} of ${wide.stats.weightBytes} bytes (${ratio.toFixed(3)})`);
      assert.ok(ratio > 0.5 && ratio < 0.56, `stored bytes ratio ${ratio}`);
      narrow.destroy();
      wide.destroy();
    }),
  );
}

for (const name of Object.keys(families) as FamilyName[]) {
  test(
    `${name}: GPU generation over NF4 block linears (a QLoRA pipeline's) equals the CPU reference over their NF4 round trip, in fewer bytes than bf16`,
    withGpu(async (gpu) => {
      const family = families[name];
      const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
      const nf4 = blockLinearNames(family, config.dims.layers);
      const weightDtypes = generationWeightDtypes(family, config, "bf16", [], true);
      assert.ok(nf4.every((n) => !weightDtypes.has(n)), "the NF4 linears have no dense dtype");
      const rounded = new Map(weights);
      roundToStorage(rounded, weightDtypes);
      const cpu = new CachedGenerationModel({ family, config, weights: nf4RoundTrip(rounded, nf4) });
      const quantized = gpuRunner(gpu, { weightDtypes, nf4 });
      await assertSameGeneration(cpu, new CachedGenerationModel({ family, config, weights }, quantized), twoPrompts(name, config));
      assert.match(quantized.backend, "NF4 block linears");

      const bf16 = gpuRunner(gpu, { weightDtypes: generationWeightDtypes(family, config, "bf16") });
      await new CachedGenerationModel({ family, config, weights }, bf16).start(twoPrompts(name, config));
      console.log(`    ${name}: NF4 ${quantized.stats.weightBytes} bytes, bf16 ${bf16.stats.weightBytes}`);
      assert.ok(quantized.stats.weightBytes < bf16.stats.weightBytes);
      quantized.destroy();
      bf16.destroy();
    }),
  );
}

for (const name of Object.keys(families) as FamilyName[]) {
  test(
    `${name}: GPU generation over an f16 KV cache equals the CPU reference whose cache rounds to f16, and not the unrounded one as closely`,
    withGpu(async (gpu) => {
      const family = families[name];
      const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
      const prompts = twoPrompts(name, config);
      const onGpu = new CachedGenerationModel({ family, config, weights }, gpuRunner(gpu, { cacheDtype: "f16" }));
      await assertSameGeneration(new CachedGenerationModel({ family, config, weights }, interpreterRunnerOf("f16")), onGpu, prompts);
      // the rounding is there: a decode step's logits move off the float64 cache's by more than the
      // GPU's own error (the prompt's attend to its unrounded keys)
      const stepError = async (cpu: CachedGenerationModel) => {
        const [a, b] = [await cpu.start(prompts), await onGpu.start(prompts)];
        const [x, y] = [await a.session.append([3, 5]), await b.session.append([3, 5])];
        return Math.max(...x.map((row, i) => relativeError(y[i], row)));
      };
      const rounded = await stepError(new CachedGenerationModel({ family, config, weights }, interpreterRunnerOf("f16")));
      const unrounded = await stepError(new CachedGenerationModel({ family, config, weights }));
      console.log(`    ${name}: decode-step logits against the f16-cache reference ${rounded.toExponential(2)}, against the float64 cache ${unrounded.toExponential(2)}`);
      assert.ok(unrounded > 4 * rounded, `${unrounded} against ${rounded}`);
    }),
  );
}

test(
  "an adapter over bf16 weights runs unmerged: its small update survives, as the CPU reference over the rounded base computes it",
  withGpu(async (gpu) => {
    const name = "chatglm2";
    const family = families[name];
    const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
    const weightDtypes = generationWeightDtypes(family, config, "bf16");
    const rounded = new Map(weights);
    roundToStorage(rounded, weightDtypes);
    // rank 2 on every query_key_value, B small: the update is below a bf16 step of most weights
    const rank = 2;
    const method = { kind: "lora" as const, rank, alpha: 2 * rank, targets: ["query_key_value"] };
    const random = new Random(5);
    const adapter = new Map<string, Float64Array>();
    for (const [weight, w] of weights) {
      if (!weight.endsWith(".query_key_value.weight")) continue;
      const inFeatures = config.dims.hidden;
      const names = loraParamNames(weight);
      adapter.set(names.a, Float64Array.from(random.normalArray(rank * inFeatures, 1)));
      adapter.set(names.b, Float64Array.from(random.normalArray((w.length / inFeatures) * rank, 2e-4)));
    }
    const prompts = twoPrompts(name, config);
    const logits = async (model: CachedGenerationModel) => (await model.start(prompts)).logits;
    const [onGpu, cpu, cpuBase] = await Promise.all([
      logits(new CachedGenerationModel({ family, config, weights: new Map([...weights, ...adapter]), method }, gpuRunner(gpu, { weightDtypes }))),
      logits(new CachedGenerationModel({ family, config, weights: new Map([...rounded, ...adapter]), method })),
      logits(new CachedGenerationModel({ family, config, weights: rounded })),
    ]);
    const error = Math.max(...cpu.map((row, i) => relativeError(onGpu[i], row)));
    const effect = Math.max(...cpu.map((row, i) => relativeError(cpuBase[i], row)));
    console.log(`    GPU vs CPU reference ${error.toExponential(2)}; the adapter moves the logits by ${effect.toExponential(2)}`);
    assert.ok(error < 1e-5, `relative error ${error}`);
    assert.ok(effect > 20 * error, "the adapter's effect stands well above the GPU's error");
  }),
);

test(
  "a prompt's step holds its activations in the memory plan's shared buffers: it grows the device by less than one buffer per node",
  withGpu(async (gpu) => {
    const family = families.baichuan7b;
    const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, "baichuan7b"), family));
    const model = new CachedGenerationModel({ family, config, weights }, gpuRunner(gpu));
    const prompt = Array.from({ length: 100 }, (_, i) => ((i * 7) % 500) + 3);
    (await model.start([prompt])).session.free(); // uploads the weights
    const before = gpu.memory.liveBytes;
    gpu.memory.peakBytes = before;
    (await model.start([prompt])).session.free();
    const growth = gpu.memory.peakBytes - before;
    // planned as the runner compiles it: each layer's keys and values leave the arena once copied into the cache
    const step = expectOk(buildCachedStep(family, config, { batch: 1, past: PROMPT_PLACEHOLDER_KEYS, fresh: prompt.length }));
    const { plan } = expectOk(compileGraph(step, { copiedOut: copiedOutputs(step) }));
    console.log(`    100-token prompt: the device grew by ${growth} B; planned arena ${plan.arenaBytes} B, ${plan.noReuseArenaBytes} B with a buffer per node`);
    assert.ok(growth >= plan.arenaBytes && growth < plan.noReuseArenaBytes, `${growth} B`);
  }),
);

test(
  "generation weights in f16 on a device without shader-f16: SFT5009 naming model.dtype; bf16 needs no device feature, its cache then f32 (and f32 for keys of an odd width)",
  withGpu(async (gpu) => {
    const family = families.chatglm2; // the quickstart's family
    const { config } = expectOk(await checkpointWeights(join(FIXTURES, "chatglm2"), family));
    const withoutF16 = Object.create(gpu, { hasF16: { value: false } }) as GpuDevice;
    const runner = (dtype: string) => pipelineGpuRunner(resolvedPipeline(QUICKSTART, [`model.dtype=${dtype}`]), family, config, withoutF16);
    const refused = runner("f16");
    assert.ok(!refused.ok && refused.diagnostics[0].code === "SFT5009" && refused.diagnostics[0].where === "model.dtype", JSON.stringify(refused));
    assert.match(refused.ok ? "" : refused.diagnostics[0].message, "the weights of this chatglm2 model are kept in f16");
    const bf16 = runner("bf16");
    assert.ok(bf16.ok);
    assert.is(bf16.value.cacheDtype, "f32", "a 16-bit model's KV cache stays f32 without shader-f16");
    // with it, f16, unless a position's keys are an odd number of values (rows are copied in whole words)
    const pipeline = resolvedPipeline(QUICKSTART, ["model.dtype=bf16"]);
    assert.is(pipelineCacheDtype(pipeline, config, gpu), gpu.hasF16 ? "f16" : "f32");
    assert.is(pipelineCacheDtype(pipeline, { ...config, dims: { ...config.dims, kvHeads: 3, headDim: 5 } }, gpu), "f32");
  }),
);

test(
  "sftc generate --gpu prints what the CPU backend prints, its weights stored in model.dtype",
  withGpu(async () => {
    const quickstart = join(import.meta.dirname, "..", "..", "pipelines", "quickstart.sft");
    const args = ["generate", quickstart, "--prompt", "晚上睡不着怎么办", "--set", "decode.max_new_tokens=4", "--json"];
    const [cpu, gpu] = [await sftc(args), await sftc([...args, "--gpu"])];
    assert.is(gpu.code, 0, gpu.err);
    assert.match(gpu.err, "running on the GPU");
    assert.match(gpu.err, "weights and f32 KV cache on the device", "the quickstart's model.dtype = f32 stores every weight and the cache in f32");
    const narrow = await sftc([...args, "--gpu", "--set", "model.dtype=bf16"]);
    assert.is(narrow.code, 0, narrow.err);
    assert.match(narrow.err, "weights (bf16 linears, table and head) and f16 KV cache on the device");
    assert.equal(JSON.parse(gpu.out).sequences.map((s: { ids: number[] }) => s.ids), JSON.parse(cpu.out).sequences.map((s: { ids: number[] }) => s.ids));
    assert.is((await sftc([...args, "--gpu", "--no-cache"])).code, 2);
  }),
);

test.run();
