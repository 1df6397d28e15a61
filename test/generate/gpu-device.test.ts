// Generation on the GPU keeps the weights and the KV cache on the device: for every family's
// fixture model, long prompts give the CPU reference's greedy and beam outputs while the cache
// crosses buckets and beams reorder it; no cache byte is written from the host, and no weight
// byte after the prompt; a step graph compiles once per bucket, not per step; a decode step
// records cache copies only when the rows move to the next bucket. Skips without a GPU adapter.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
import { generate, generateBatch } from "../../runtime/generate/engine.ts";
import { cacheCapacity } from "../../compiler/models/cached-graph.ts";
import { gpuRunner } from "../../runtime/generate/gpu-runner.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { Random } from "../../runtime/random.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { expectOk } from "../support/result.ts";
import { greedySettings } from "./gpu-support.ts";

/** A prompt of `n` ids; ChatGLM-6B's end with [gMASK] <sop> (its 2D positions and prefix mask). */
function longPrompt(name: FamilyName, specials: Record<string, number>, n: number): number[] {
  const random = new Random(n);
  const ids = Array.from({ length: n }, () => 5 + random.int(390));
  return name === "chatglm" ? [...ids.slice(0, -2), specials["[gMASK]"], specials["<sop>"]] : ids;
}

const BUCKET = 16;
const greedy = greedySettings(6);
const beam = { ...greedy, strategy: "beam" as const, numBeams: 3, numReturnSequences: 2, maxNewTokens: 5 };

for (const name of Object.keys(families) as FamilyName[]) {
  test(
    `${name}: GPU generation with the device cache gives the CPU reference's greedy and beam outputs on long prompts`,
    withGpu(async (gpu) => {
      const family = families[name];
      const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
      const cpu = new CachedGenerationModel({ family, config, weights });
      const runner = gpuRunner(gpu, { bucket: BUCKET });
      const onGpu = new CachedGenerationModel({ family, config, weights }, runner);
      try {
        // 46..52 cached positions cross the bucket boundary at 48
        const prompt = longPrompt(name, config.tokens.specials, 46);
        for (const settings of [greedy, beam]) {
          const want = expectOk(await generate(cpu, prompt, settings, new Random(0)));
          const got = expectOk(await generate(onGpu, prompt, settings, new Random(0)));
          assert.equal(got.map((g) => g.tokens), want.map((g) => g.tokens), settings.strategy);
        }
        // a left-padded batch whose rows stop early: the cache drops them by a gather
        const prompts = [13, 4, 30].map((n) => longPrompt(name, config.tokens.specials, n));
        const first = expectOk(await generateBatch(cpu, prompts, greedy, new Random(0)))[1][0].tokens[0];
        const stopping = { ...greedy, eosTokenIds: [first] };
        const want = expectOk(await generateBatch(cpu, prompts, stopping, new Random(0)));
        const got = expectOk(await generateBatch(onGpu, prompts, stopping, new Random(0)));
        assert.equal(got.map((p) => p[0].tokens), want.map((p) => p[0].tokens), "batch");
      } finally {
        runner.destroy();
      }
    }),
  );
}

/** The Baichuan-13B fixture generating with the device cache on `gpu` (buckets of BUCKET); the runner is the caller's to destroy. */
async function baichuanOnDevice(gpu: GpuDevice) {
  const family = families.baichuan13b;
  const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, "baichuan13b"), family));
  const runner = gpuRunner(gpu, { bucket: BUCKET });
  return { config, weights, runner, model: new CachedGenerationModel({ family, config, weights }, runner) };
}

test(
  "no cache byte is written from the host, no weight byte after the prompt, and decoding compiles once per bucket",
  withGpu(async (gpu) => {
    const { config, weights, runner, model } = await baichuanOnDevice(gpu);
    const prompt = longPrompt("baichuan13b", config.tokens.specials, 40);
    const written: { label: string; afterPrompt: boolean }[] = [];
    let afterPrompt = false;
    const writeBuffer = gpu.queue.writeBuffer;
    gpu.queue.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, ...rest: unknown[]) {
      written.push({ label: buffer.label, afterPrompt });
      return (writeBuffer as (...args: unknown[]) => undefined).call(this, buffer, ...rest);
    } as typeof writeBuffer;
    try {
      const { session } = await model.start([prompt]);
      const atPrompt = { ...runner.stats };
      afterPrompt = true;
      const steps = 30; // 40 -> 70 cached positions: buckets 48, 64, 80
      await session.reorder([0, 0]);
      for (let i = 0; i < steps; i++) {
        await session.append([5 + i, 7 + i]);
        if (i % 7 === 3) await session.reorder([1, 0]);
      }
      session.free();

      const weightNames = new Set(weights.keys());
      assert.ok(written.some((w) => !w.afterPrompt && weightNames.has(w.label)), "the prompt uploads the weights");
      assert.ok(written.some((w) => w.afterPrompt), "the steps write their ids and positions");
      const offending = written.filter((w) => (w.afterPrompt && weightNames.has(w.label)) || w.label.includes("cache") || w.label.startsWith("past_"));
      assert.equal(offending, [], "no weight buffer written after the prompt, no cache buffer ever");
      assert.is(runner.stats.weightBytes, atPrompt.weightBytes);
      // one decode graph per bucket of the past (48, 64, 80), for the 2 rows
      assert.is(runner.stats.compiles - atPrompt.compiles, 3, `compiles after the prompt: ${runner.stats.compiles - atPrompt.compiles}`);
    } finally {
      gpu.queue.writeBuffer = writeBuffer;
      runner.destroy();
    }
  }),
);

test(
  "the cache creates command encoders in a decode step only to move the rows to the next bucket, one per buffer, and submits them",
  withGpu(async (gpu) => {
    const { config, runner, model } = await baichuanOnDevice(gpu);
    const create = gpu.device.createCommandEncoder;
    let [created, finished] = [0, 0];
    gpu.device.createCommandEncoder = function (this: GPUDevice, ...args: unknown[]) {
      const encoder = (create as (...a: unknown[]) => GPUCommandEncoder).apply(this, args);
      created++;
      const finish = encoder.finish;
      encoder.finish = function (this: GPUCommandEncoder, ...rest: unknown[]) {
        finished++;
        return (finish as (...a: unknown[]) => GPUCommandBuffer).apply(this, rest);
      } as typeof finish;
      return encoder;
    } as typeof create;
    try {
      const prompt = 12;
      const { session } = await model.start([longPrompt("baichuan13b", config.tokens.specials, prompt)]);
      // 12 -> 22 cached positions: the step that adds position 17 moves the rows past the first bucket
      const moving = cacheCapacity(prompt, BUCKET) - prompt;
      const perStep: { created: number; unfinished: number }[] = [];
      for (let i = 0; i < 10; i++) {
        const before = { created, unfinished: created - finished };
        await session.append([5 + i]);
        perStep.push({ created: created - before.created, unfinished: created - finished - before.unfinished });
      }
      session.free();
      const extra = perStep.map((s) => s.created - perStep[0].created);
      // a move copies one buffer (a layer's keys or values) at a time, freeing each old one after its copy
      assert.equal(extra, extra.map((_, i) => (i === moving ? 2 * config.dims.layers : 0)), `encoders created per step: ${perStep.map((s) => s.created)}`);
      // the steps' command batches each keep one encoder open for their next commands; the cache's is finished
      assert.equal(new Set(perStep.map((s) => s.unfinished)).size, 1, `encoders left open per step: ${perStep.map((s) => s.unfinished)}`);
    } finally {
      gpu.device.createCommandEncoder = create;
      runner.destroy();
    }
  }),
);

test(
  "a profiled step times each of its dispatches; steps after the profile is switched off add none",
  withGpu(async (gpu) => {
    if (!gpu.hasTimestamps) return console.log("    skipped: the adapter has no timestamp-query");
    const { config, runner, model } = await baichuanOnDevice(gpu);
    try {
      const { session } = await model.start([longPrompt("baichuan13b", config.tokens.specials, 8)]);
      runner.profile.enabled = true;
      await session.append([5]);
      runner.profile.enabled = false;
      const timed = runner.profile.timings.length;
      await session.append([6]);
      session.free();
      const names = runner.profile.timings.map((t) => t.name);
      assert.ok(names.some((n) => n.startsWith("matmul")) && names.some((n) => n.startsWith("attention")), `profiled kernels: ${[...new Set(names)]}`);
      assert.ok(runner.profile.timings.every((t) => t.ns > 0), "every dispatch took time");
      assert.is(runner.profile.timings.length, timed, "the unprofiled step added no timings");
    } finally {
      runner.destroy();
    }
  }),
);

test.run();
