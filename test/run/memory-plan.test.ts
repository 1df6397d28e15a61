// `sftc run`'s memory comparison on lavapipe: the plan of what the GPU engine holds at the end of
// a run (weights and trained state once, each compiled program it keeps at its batch shape, with
// the launches' host-written tables and shared workspace) against the bytes the engine allocated,
// within 5%: the quickstart (LoRA, several shapes and an evaluation program held), the same as
// QLoRA, the memorize fixture (full fine-tuning) and memorize with gradient checkpointing.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { runJob } from "../../runtime/pipeline/run-job.ts";
import type { RunManifest } from "../../runtime/repo/run-record.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { expectOk } from "../support/result.ts";
import { QUICKSTART, resolvedPipeline, ROOT, sandbox } from "./support.ts";

const MEMORIZE = join(ROOT, "test/run/fixtures/memorize.sft");

/** Runs `sft` with `overrides` as `sftc run` does (without the samples after it) and returns the printed comparison and the manifest's figures. */
async function planVsAllocated(gpu: GpuDevice, sft: string, overrides: string[], edit?: (text: string) => string): Promise<Figures> {
  const { file } = sandbox(sft);
  if (edit) writeFileSync(file, edit(readFileSync(file, "utf8")));
  let log = "";
  // the device's high-water mark over the run, for the record: a new batch shape is compiled
  // before the least recently used program is freed, and reads go through staging buffers
  const before = gpu.memory.liveBytes;
  gpu.memory.peakBytes = before;
  const job = expectOk(await runJob({ pipeline: resolvedPipeline(file, overrides), gpu, log: (text) => void (log += text), progress: false }));
  const highWater = gpu.memory.peakBytes - before;
  assert.ok(job.memory, "a GPU run compares its memory");
  const { metrics } = JSON.parse(readFileSync(join(job.runDir, "manifest.json"), "utf8")) as RunManifest;
  assert.match(log, /memory plan: peak .* per training step at \d+ x \d+ tokens/);
  return { log, line: job.memory.summary, planned: metrics.planned_engine_bytes, allocated: metrics.allocated_bytes, step: metrics.planned_peak_bytes, highWater };
}

interface Figures {
  /** What the run logged. */
  log: string;
  line: string;
  planned: number;
  allocated: number;
  /** `sftc plan`'s figure: one step at the pipeline's batch × longest max_length. */
  step: number;
  /** The device's most bytes live during the run. */
  highWater: number;
}

function check(label: string, m: Figures): void {
  console.log(`    ${label}: ${m.line} (${m.planned} B planned, ${m.allocated} B allocated; one step at the pipeline's shape: ${m.step} B; device high-water mark during the run ${m.highWater} B)`);
  assert.ok(m.planned > 0 && m.allocated > 0, "both figures recorded");
  const error = Math.abs(m.planned - m.allocated) / m.allocated;
  assert.ok(error <= 0.05, `${label}: planned ${m.planned} B, allocated ${m.allocated} B (${(100 * error).toFixed(2)}%)`);
  assert.ok(m.line.includes("within 5%"), m.line);
}

test(
  "quickstart (6 steps, evaluation every 3): the plan of the programs the engine holds is within 5% of what it allocated",
  withGpu(async (gpu) => {
    const m = await planVsAllocated(gpu, QUICKSTART, ["train.max_steps=6", "train.eval_every=3", "train.save_every=100"]);
    assert.match(m.line, /training .*evaluation/, "several shapes held, evaluation among them");
    check("quickstart", m);
  }),
);

test(
  "quickstart as QLoRA over f16 weights (4 steps): NF4 base linears and f32 dense weights planned as the engine stores them, within 5%",
  withGpu(async (gpu) => {
    const qlora = (text: string) => text.replace("method lora {", "method qlora {").replace(/dtype\s+= f32/, "dtype = f16");
    const m = await planVsAllocated(gpu, QUICKSTART, ["train.max_steps=4", "train.eval_every=2", "train.save_every=100"], qlora);
    check("quickstart, QLoRA", m);
    assert.match(m.log, /training on .*; chatglm2 qlora\)/, "the run is named by its method");
  }),
);

test(
  "quickstart as LoRA over bf16 weights (4 steps): the frozen block linears planned and allocated in bf16, within 5%, below the f32 run",
  withGpu(async (gpu) => {
    const overrides = ["train.max_steps=4", "train.eval_every=2", "train.save_every=100"];
    const bf16 = await planVsAllocated(gpu, QUICKSTART, overrides, (text) => text.replace(/dtype\s+= f32/, "dtype = bf16"));
    check("quickstart, LoRA over bf16", bf16);
    const f32 = await planVsAllocated(gpu, QUICKSTART, overrides);
    assert.ok(bf16.planned < f32.planned && bf16.allocated < f32.allocated, `bf16 ${bf16.allocated} B against f32 ${f32.allocated} B allocated`);
  }),
);

test(
  "memorize (full fine-tuning, 3 steps): planned within 5% of allocated",
  withGpu(async (gpu) => {
    check("memorize", await planVsAllocated(gpu, MEMORIZE, ["train.max_steps=3"]));
  }),
);

test(
  "memorize with gradient checkpointing (3 steps): planned within 5% of allocated, recomputed norms included",
  withGpu(async (gpu) => {
    check("memorize, checkpointed", await planVsAllocated(gpu, MEMORIZE, ["train.max_steps=3", "train.gradient_checkpointing=true"]));
  }),
);

test.run();
