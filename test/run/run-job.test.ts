// `sftc run` end to end through main(), in-process, on the WebGPU engine: the quickstart (LoRA,
// shortened) leaves a complete run directory with its PEFT adapter and samples; the memorize
// fixture (full fine-tuning) halves its loss and writes the trained weights; the memory plan's
// peak is compared with the bytes the engine holds.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { RunManifest } from "../../runtime/repo/run-record.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { metricsLosses, QUICKSTART, ROOT, runDirs, sandbox, sftc } from "./support.ts";

const MEMORIZE = join(ROOT, "test/run/fixtures/memorize.sft");

function manifestOf(runDir: string): RunManifest {
  return JSON.parse(readFileSync(join(runDir, "manifest.json"), "utf8")) as RunManifest;
}

test(
  "quickstart (4 steps): run directory with manifest, metrics, curves, checkpoints, PEFT adapter and samples",
  withGpu(async () => {
    const { dir, file } = sandbox(QUICKSTART);
    const r = await sftc(["run", file, "--set", "train.max_steps=4", "--set", "train.eval_every=2", "--set", "train.save_every=2"]);
    assert.is(r.exit, 0, r.err);
    assert.ok(existsSync(join(dir, "sft.lock")), "sft.lock written on the first run");
    const [runDir] = runDirs(join(dir, "runs/quickstart"));
    for (const name of ["manifest.json", "metrics.jsonl", "curves.html", "checkpoints", "adapter/adapter_config.json", "adapter/adapter_model.safetensors", "samples.jsonl"]) {
      assert.ok(existsSync(join(runDir, name)), `${name} in the run directory`);
    }
    const manifest = manifestOf(runDir);
    assert.is(manifest.status, "finished");
    assert.is(manifest.metrics.steps, 4);
    assert.ok(manifest.device.startsWith("webgpu"), manifest.device);
    assert.ok(manifest.lock, "the manifest records the lock");
    assert.is(metricsLosses(runDir).length, 4);
    const samples = readFileSync(join(runDir, "samples.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { prompt: string; ids: number[] });
    assert.is(samples.length, 1);
    assert.is(samples[0].prompt, "晚上睡不着怎么办");
    assert.ok(samples[0].ids.length > 0, "tokens generated");
    assert.ok(r.out.includes("» 晚上睡不着怎么办"), "samples printed");
    const config = JSON.parse(readFileSync(join(runDir, "adapter/adapter_config.json"), "utf8")) as { r: number; peft_type: string };
    assert.is(config.r, 4);
    assert.is(config.peft_type, "LORA");
    assert.match(r.err, /memory plan: peak/);
  }),
);

test(
  "the quickstart's own settings (modules_to_save = [lm_head], lr 1e-2), cut to 20 steps: the evaluation loss falls; the adapter saves ChatGLM2's output_layer",
  withGpu(async () => {
    const { dir, file } = sandbox(QUICKSTART);
    const r = await sftc(["run", file, "--set", "train.max_steps=20", "--set", "train.eval_every=10", "--set", "decode.max_new_tokens=4"]);
    assert.is(r.exit, 0, r.err);
    const [runDir] = runDirs(join(dir, "runs/quickstart"));
    const evals = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kind: string; eval_loss?: number }).filter((e) => e.kind === "eval").map((e) => e.eval_loss!);
    console.log(`    evaluation loss ${evals.map((l) => l.toFixed(4)).join(" -> ")}; training ${metricsLosses(runDir)[0].toFixed(4)} at step 1`);
    assert.is(evals.length, 2);
    assert.ok(evals[1] < metricsLosses(runDir)[0] - 0.5, "the evaluation loss ends well below the first step's loss");
    const config = JSON.parse(readFileSync(join(runDir, "adapter/adapter_config.json"), "utf8")) as { modules_to_save: string[] };
    assert.equal(config.modules_to_save, ["output_layer"]);
  }),
);

test(
  "memorize (full fine-tuning, 30 steps): the loss falls by more than half; trained weights and samples written; plan vs allocated reported",
  withGpu(async () => {
    const { dir, file } = sandbox(MEMORIZE);
    const r = await sftc(["run", file]);
    assert.is(r.exit, 0, r.err);
    const [runDir] = runDirs(join(dir, "runs/memorize"));
    const losses = metricsLosses(runDir);
    console.log(`    loss ${losses[0].toFixed(4)} -> ${losses.at(-1)!.toFixed(4)} over ${losses.length} steps`);
    assert.is(losses.length, 30);
    assert.ok(losses.at(-1)! < losses[0] / 2, `loss ${losses[0]} -> ${losses.at(-1)}`);
    assert.ok(existsSync(join(runDir, "model/model.safetensors")), "trained weights");
    assert.ok(existsSync(join(runDir, "samples.jsonl")), "samples");
    const { planned_peak_bytes: planned, allocated_bytes: allocated } = manifestOf(runDir).metrics;
    assert.ok(planned > 0 && allocated > 0, "both memory figures recorded");
    console.log(`    memory plan ${planned} B, engine allocated ${allocated} B: ratio ${(planned / allocated).toFixed(3)}`);
  }),
);

test(
  "--cpu trains on the float64 engine, with the same first losses as the GPU run within 1e-4",
  withGpu(async () => {
    const losses = async (extra: string[]) => {
      const { dir, file } = sandbox(QUICKSTART);
      const r = await sftc(["run", file, "--set", "train.max_steps=2", "--set", "decode.max_new_tokens=2", ...extra]);
      assert.is(r.exit, 0, r.err);
      const [runDir] = runDirs(join(dir, "runs/quickstart"));
      return { device: manifestOf(runDir).device, losses: metricsLosses(runDir) };
    };
    const cpu = await losses(["--cpu"]);
    const gpu = await losses([]);
    assert.ok(cpu.device.startsWith("cpu-float64"), cpu.device);
    assert.ok(gpu.device.startsWith("webgpu"), gpu.device);
    cpu.losses.forEach((l, i) => assert.ok(Math.abs(l - gpu.losses[i]) <= 1e-4 * Math.abs(l), `step ${i + 1}: cpu ${l}, gpu ${gpu.losses[i]}`));
  }),
);

test.run();
