// `sftc export --target torchrun` jobs run by Debian's PyTorch (1.13, CPU, gloo): the generated
// model reproduces each family's golden logits; two DDP processes (torch.multiprocessing) train
// the same loss sequence as one process and as sftc's own float64 run; a run resumed from its
// checkpoint continues the same sequence; LoRA jobs write PEFT adapters.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { familyNames, type FamilyName } from "../../stdlib/families/index.ts";
import type { JobMethod } from "../../runtime/export/torch/write-job.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { loadFixture } from "../models/support.ts";
import { openModelDir } from "../../runtime/checkpoint/model-dir.ts";
import { checkAdapterFits, readPeftAdapter } from "../../runtime/export/peft-reader.ts";
import { expandTemplate } from "../../stdlib/families/family.ts";
import { hasTorch, PYTHON, reportSkippedWithoutTorch } from "../support/python.ts";
import { exportJob, runJob, sftcLosses } from "./support.ts";
import { getSharedDevice } from "../../runtime/gpu/device.ts";

const CHECK_LOGITS = join(import.meta.dirname, "..", "..", "spec", "torch-export", "check_logits.py");
const scratch = mkdtempSync(join(tmpdir(), "sftc-torch-export-"));

/**
 * Trains `name` with `method` on two DDP processes, stopped after step 2 and resumed from its
 * checkpoint, on one process without a stop, and with sftc's own float64 run.
 */
async function trainingAgrees(name: FamilyName, method: JobMethod): Promise<string> {
  const dir = join(scratch, `${name}-${method.kind}`);
  const job = await exportJob(name, dir, method);
  const ddp = join(dir, "run-ddp");
  const stopped = runJob(dir, ddp, ["--spawn", "2", "--dtype", "float64", "--stop-after", "2"]);
  assert.equal(stopped.map((r) => r.step), [1, 2], `${name}: the interrupted run stops after step 2`);
  const resumed = runJob(dir, ddp, ["--spawn", "2", "--dtype", "float64", "--resume", "latest"]);
  assert.equal(resumed.map((r) => r.step), [1, 2, 3, 4], `${name}: steps of the resumed run`);
  const single = runJob(dir, join(dir, "run-single"), ["--spawn", "1", "--dtype", "float64"]);
  const losses = resumed.map((r) => r.loss);
  const label = `${name} ${method.kind}`;
  assertClose(losses, single.map((r) => r.loss), 1e-6, `${label}: 2 DDP processes, resumed at step 2, vs 1 process uninterrupted`);
  assertClose(resumed.map((r) => r.grad_norm), single.map((r) => r.grad_norm), 1e-6, `${label}: gradient norms, 2 processes vs 1`);
  const reference = await sftcLosses(job, join(dir, "sftc-run"));
  assertClose(losses, reference, 1e-3, `${label}: DDP vs sftc's float64 run`);
  const gpu = await getSharedDevice();
  if (gpu.ok) assertClose(losses, await sftcLosses(job, join(dir, "sftc-webgpu-run"), gpu.value), 1e-3, `${label}: DDP vs sftc's WebGPU run`);
  else console.log(`    ${label}: no WebGPU adapter, the WebGPU run is not compared`);
  const float32 = runJob(dir, join(dir, "run-float32"), ["--spawn", "2"]);
  assertClose(float32.map((r) => r.loss), reference, 1e-3, `${label}: DDP in float32 (the default) vs sftc's float64 run`);
  assert.ok(losses[losses.length - 1] < losses[0], `${name}: the loss falls (${losses.join(", ")})`);
  return dir;
}

if (!hasTorch()) {
  reportSkippedWithoutTorch("the exported jobs against golden logits and sftc's run");
} else {
  for (const name of familyNames) {
    test(`${name}: the generated model.py reproduces the golden logits in float64`, async () => {
      const dir = join(scratch, `${name}-logits`);
      await exportJob(name, dir, { kind: "full" });
      const run = spawnSync(PYTHON, [CHECK_LOGITS, dir, join(FIXTURES, name), join(FIXTURES, name, "golden.json")], { encoding: "utf8" });
      assert.is(run.status, 0, run.stderr);
      const golden = JSON.parse(readFileSync(join(FIXTURES, name, "golden.json"), "utf8"));
      assertClose(JSON.parse(run.stdout).logits.flat(2), golden.logits.flat(2), 1e-6, `${name} model.py logits`);
    });

    test(`${name} full: 2 DDP processes (stopped and resumed) = 1 process = sftc's run`, async () => {
      const dir = await trainingAgrees(name, { kind: "full" });
      // sftc opens the trained model as it opens a published checkpoint
      const final = expectOk(await openModelDir(join(dir, "run-ddp", "final"), name));
      let tensors = 0;
      for await (const t of final.weights()) tensors += expectOk(t).name ? 1 : 0;
      const fixture = expectOk(await openModelDir(join(FIXTURES, name), name));
      assert.is(tensors, fixture.bindings.size - (fixture.config.tiedHead ? 1 : 0), `${name}: tensors of the exported model`);
    });
  }

  test("chatglm2 lora: DDP = sftc's run with the same initial adapters; checkpoints are PEFT directories", async () => {
    const dir = await trainingAgrees("chatglm2", { kind: "lora", rank: 4, alpha: 8, dropout: 0, targets: ["attn.qkv", "mlp.down"] });
    const adapter = join(dir, "run-ddp", "final", "adapter");
    const read = expectOk(await readPeftAdapter(adapter));
    const fixture = await loadFixture("chatglm2");
    const shapes = new Map(fixture.family.tensors.flatMap((t) => expandTemplate(t.name, fixture.config.dims.layers).map((n) => [n, t.shape(fixture.config.dims)] as const)));
    expectOk(checkAdapterFits(read, shapes, "the chatglm2 fixture"));
    const config = JSON.parse(readFileSync(join(adapter, "adapter_config.json"), "utf8"));
    assert.equal(config.target_modules, ["query_key_value", "dense_4h_to_h"]);
    assert.is(config.r, 4);
    const header = readFileSync(join(adapter, "adapter_model.safetensors"));
    const keys = Object.keys(JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString())).filter((k) => k !== "__metadata__");
    assert.is(keys.length, 2 * 2 * 2, "A and B of 2 modules in 2 layers");
    assert.ok(keys.includes("base_model.model.transformer.encoder.layers.1.self_attention.query_key_value.lora_B.weight"), keys.join(", "));
  });
}

test.after(() => rmSync(scratch, { recursive: true, force: true }));
test.run();
