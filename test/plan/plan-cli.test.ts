// `sftc plan` through main(), in-process: the table, JSON whose figures add up to the peak, the
// refusal over a device limit with advice (from --memory or SFT_DEVICE_MEMORY), usage mistakes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { families } from "../../stdlib/families/index.ts";
import { main } from "../../cli/main.ts";
import type { Io } from "../../cli/io.ts";

const quickstart = resolve(import.meta.dirname, "../../pipelines/quickstart.sft");

function capture(env: Record<string, string> = {}): Io & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", color: false, env, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

test("sftc plan prints each buffer class and the peak", async () => {
  const io = capture();
  assert.is(await main(["plan", quickstart], io), 0, io.stderr);
  for (const row of ["base weights", "LoRA adapters", "optimizer state", "activations (peak live)", "KV cache", "uniform arenas (runtime)"]) assert.ok(io.stdout.includes(row), row);
  assert.match(io.stdout, /^peak .* \(\d+ bytes\); planned over every layer of 2$/m);
  assert.match(io.stdout, /device memory not given/);
});

test("sftc plan --json: the training figures add up to the step's peak", async () => {
  const io = capture();
  // adapters only (no modules_to_save), so every accumulator is an adapter's
  assert.is(await main(["plan", quickstart, "--json", "--set", "train.grad_accum=2", "--set", "method.modules_to_save=[]"], io), 0, io.stderr);
  const plan = JSON.parse(io.stdout);
  const t = plan.training;
  const sum = t.weights + t.adapters + t.masterWeights + t.optimizerState + t.gradientAccumulators + t.inputs + t.arena + t.scratch + t.uniforms + t.staging;
  assert.is(t.peak, sum);
  assert.is(plan.peakBytes, Math.max(t.peak, plan.evaluation.peak, plan.generation.peak));
  assert.is(plan.evaluation.batch, 2, "eval_batch_size defaults to batch_size");
  assert.is(t.gradientAccumulators, t.adapters, "one f32 accumulator per adapter element");
  assert.is(plan.settings.batch, 2);
  assert.is(plan.settings.seq, 256, "the longest max_length of the datasets");
  assert.is(plan.model.family, "chatglm2");
  assert.is(plan.device, null);
});

test("a plan over --memory is refused with SFT3101 and the peak of each alternative", async () => {
  const io = capture();
  const fits = capture();
  assert.is(await main(["plan", quickstart, "--json"], fits), 0);
  const peak = JSON.parse(fits.stdout).peakBytes;
  assert.is(await main(["plan", quickstart, "--memory", `${peak - 1}`], io), 1);
  assert.match(io.stderr, /error SFT3101: pipeline quickstart needs/);
  for (const change of ["train.batch_size = 1, train.grad_accum = 2", "train.gradient_checkpointing = true", "method qlora", "max_length = 128 in every dataset", "all of these together"]) {
    assert.match(io.stderr, new RegExp(`- ${change.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*: peak (≈ )?\\d`), change);
  }
  assert.match(io.stderr, /\(fits\)/, "some change fits one byte below the peak");
  const exact = capture();
  assert.is(await main(["plan", quickstart, "--memory", `${peak}`], exact), 0, "a plan exactly at the limit fits");
});

test("SFT_DEVICE_MEMORY sets the limit; --memory wins over it; a bad size is a usage error", async () => {
  const env = capture({ SFT_DEVICE_MEMORY: "1KiB" });
  assert.is(await main(["plan", quickstart, "--json"], env), 1);
  const json = JSON.parse(env.stdout);
  assert.equal(json.device, { bytes: 1024, source: "SFT_DEVICE_MEMORY 1KiB", fits: false });
  const both = capture({ SFT_DEVICE_MEMORY: "1KiB" });
  assert.is(await main(["plan", quickstart, "--memory", "80GB"], both), 0, both.stderr);
  assert.match(both.stdout, /device memory 74\.5 GiB \(--memory 80GB\): fits/);
  const bad = capture();
  assert.is(await main(["plan", quickstart, "--memory", "lots"], bad), 2);
  assert.match(bad.stderr, /--memory takes a size such as 24GiB/);
});

test("a published-size pipeline is planned from the family preset when no config.json is there", async () => {
  const io = capture();
  const file = resolve(import.meta.dirname, "../../pipelines/chatglm2-qlora.sft");
  const settings = ["--set", "dataset.belle.max_length=128", "--set", "dataset.safety.max_length=128", "--set", "train.batch_size=1"];
  assert.is(await main(["plan", file, "--json", ...settings], io), 0, io.stderr);
  const plan = JSON.parse(io.stdout);
  assert.match(plan.model.source, /published 6b preset/);
  assert.is(plan.model.layers, 28);
  assert.is(plan.depth.layers, 28);
  assert.is(plan.depth.planned, "every layer");
  const fast = capture();
  assert.is(await main(["plan", file, "--json", "--estimate", ...settings], fast), 0, fast.stderr);
  const estimate = JSON.parse(fast.stdout);
  assert.is(estimate.depth.planned, "2 and 3 layers, extrapolated");
  assert.is(estimate.training.weights, plan.training.weights);
  assert.is(estimate.training.activations, plan.training.activations);
  const off = Math.abs(estimate.peakBytes - plan.peakBytes) / plan.peakBytes;
  console.log(`    chatglm2 qlora, 28 layers, sequence 128: estimated peak ${(100 * off).toFixed(2)}% from the full-depth plan (arena ${estimate.training.arena} vs ${plan.training.arena} bytes)`);
});

test("a checkpoint's config.json gives the dimensions; a broken one is an error naming the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-plan-"));
  mkdirSync(join(dir, "model"));
  writeFileSync(join(dir, "model", "config.json"), JSON.stringify({ ...families.chatglm2.tiny, num_layers: 5 }));
  const sft = ["sft 1", "pipeline p {", "  model chatglm2 {", '    path = "model"', "  }", "  method qlora {}", "  dataset belle {", '    path = "belle.json"', "    max_length = 32", "  }", "  train {", "    batch_size = 1", "  }", "}", ""];
  writeFileSync(join(dir, "p.sft"), sft.join("\n"));
  const io = capture();
  assert.is(await main(["plan", join(dir, "p.sft"), "--json"], io), 0, io.stderr);
  const plan = JSON.parse(io.stdout);
  assert.is(plan.model.source, join(dir, "model", "config.json"));
  assert.is(plan.model.layers, 5);
  assert.is(plan.model.hidden, families.chatglm2.tiny.hidden_size);
  writeFileSync(join(dir, "model", "config.json"), "{ not json");
  const broken = capture();
  assert.is(await main(["plan", join(dir, "p.sft")], broken), 1);
  assert.match(broken.stderr, /config\.json: error SFT5103: .*config\.json is not valid JSON/);
});

test.run();
