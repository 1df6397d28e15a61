// The benchmark harness at its smallest sizes, in-process on the shared device (lavapipe in
// CI): every section is produced and every kernel matches its float64 reference. Speed is
// reported by the harness and never asserted here.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { reportPassed, runBench } from "../../bench/harness.ts";
import { kernelCases } from "../../bench/kernel-cases.ts";
import { matmulShapes } from "../../bench/matmul-cases.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { gemvVariantName, tuneGemv, tunedGemv } from "../../runtime/gpu/gemv-tuning.ts";
import { kernelSource } from "../../stdlib/kernels/kernel.ts";
import { runKernels } from "../../runtime/gpu/kernel-probe.ts";
import { benchKernels } from "../../bench/kernels.ts";
import { reportMarkdown, SECTIONS } from "../../bench/report.ts";
import { SHAPES } from "../../bench/sizes.ts";
import { benchTrainingStep, FIRST_LOSS_TOLERANCE } from "../../bench/train-step.ts";
import { assertClose } from "../support/numeric.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("bench smoke");
const root = resolve(import.meta.dirname, "../..");

// the decode rows' labels, in order, with the gemv workgroup they name
function decodeLabels(workgroup: string): string[] {
  const row = (weight: string, note = "") => `matmul gemv f32 x ${weight} (B^T), decode${note}, ${workgroup}`;
  return [row("f32"), row("f32"), row("bf16"), row("bf16"), row("nf4", ", 32 weights a step"), row("nf4", ", four weights a step")];
}

test(
  "smoke run: adapter, ceilings, kernels within tolerance, training step (sftc and PyTorch), generation, machine; markdown and JSON",
  withGpu(async (gpu) => {
    const report = await runBench(gpu, { size: "smoke", command: "smoke test" });

    // (a) adapter
    assert.ok(report.adapter.name.length > 0, "adapter name");
    assert.ok(report.adapter.backend.length > 0, "backend");
    assert.ok(report.adapter.features.length > 0, "features");
    assert.ok(report.adapter.limits.maxStorageBufferBindingSize > 0, "limits");
    assert.ok(report.adapter.subgroupMaxSize >= report.adapter.subgroupMinSize, "subgroup sizes");
    assert.ok(Array.isArray(report.adapter.subgroupMatrixConfigs), "subgroup-matrix configs");
    assert.equal(
      report.toggles.map((t) => t.toggle.split(" ")[0]),
      ["allow_unsafe_apis", "vulkan_enable_f16_on_nvidia", "timestamp_quantization"],
    );

    // (b) ceilings: measured, whatever their value
    const b = report.bandwidth;
    assert.ok(Number.isFinite(b.gbs) && b.gbs > 0, `bandwidth ${b.gbs}`);
    assert.is(b.bytes, SHAPES.smoke.copyBytes);
    const t = report.matmulReference;
    if (t.available) {
      for (const [m, n, k] of matmulShapes(SHAPES.smoke))
        assert.ok(t.results.some((r) => r.m === m && r.n === n && r.k === k && r.dtype === "f32" && r.ns > 0), `PyTorch f32 ${m}x${n}x${k}`);
    } else {
      console.log(`    no PyTorch reference: ${t.why}`);
      assert.ok(t.why.length > 0);
    }

    // (c) kernels: every one checked on all its rows, within tolerance
    assert.is(report.kernels.length, gpu.hasF16 ? 26 : 25);
    // attention through the score matrix, forward and backward: sequences of the engine's kernels
    assert.equal(report.kernels.filter((k) => k.label.includes("score matrix on the")).map((k) => k.kernel.split("+").length > 1), [true, true]);
    // the decode rows (f32, bf16 and NF4 W, NF4 twice) run the gemv kernel and count as memory-bound
    assert.is(report.kernels.filter((k) => k.kernel.startsWith("matmul_gemv") && k.bound === "memory").length, 6);
    for (const k of report.kernels) {
      console.log(`    ${k.label} ${k.shape}: relative error ${k.check.relativeError.toExponential(2)}`);
      assert.is(k.check.tolerance, 1e-5, k.label);
      assert.ok(k.check.relativeError < k.check.tolerance, `${k.label}: ${k.check.relativeError}`);
      assert.ok(k.passed, k.label);
      assert.ok(k.check.rows.startsWith("all "), `${k.label}: ${k.check.rows}`);
      assert.ok(k.nsPerDispatch > 0, `${k.label} timed`);
      assert.ok(k.wallNsPerDispatch > 0, `${k.label}: wall time recorded`);
      if (k.bound === "memory") assert.ok(k.fraction !== undefined && k.ceiling.startsWith("copy bandwidth"), k.label);
      else if (t.available) assert.ok(k.fraction !== undefined && k.ceiling.startsWith("PyTorch"), k.label);
    }
    assert.equal(report.gpuErrors, []);

    // (d) training step: every step timed; PyTorch ran the same model and optimizer (same losses) or says why not
    const step = report.trainingStep;
    assert.ok(step, "the training step ran");
    const sizes = SHAPES.smoke.step;
    assert.is(step.sftc.samplesNs.length, sizes.steps);
    assert.is(step.sftc.losses.length, sizes.warmup + sizes.steps);
    assert.ok(step.sftc.samplesNs.every((ns) => ns > 0) && step.sftc.tokensPerSecond > 0, "sftc timed");
    assert.is(step.rows * step.seq, sizes.rows * sizes.seq);
    if (step.torch.available) {
      assert.is(step.torch.samplesNs.length, sizes.steps);
      assert.ok(step.ratio !== undefined && step.ratio > 0, "ratio");
      assert.ok(step.firstLossDifference! < FIRST_LOSS_TOLERANCE, `first loss ${step.sftc.losses[0]} vs ${step.torch.losses[0]}`);
      // the later losses agree too: both took the same AdamW steps on the same tensors
      assertClose(step.sftc.losses, step.torch.losses, 1e-4, "sftc vs PyTorch losses over the steps");
      assert.ok(step.sftc.losses.at(-1)! < step.sftc.losses[0], "the loss falls");
    } else {
      console.log(`    no PyTorch training step: ${step.torch.why}`);
      assert.ok(step.torch.why.length > 0);
    }

    // (e) generation: the tiny model measured; the 7B-sized one (f32 and bf16) not at this size, with the reason
    const [tiny, ...large] = report.generation;
    assert.ok(tiny.measured, "tiny model generation");
    if (tiny.measured) {
      assert.is(tiny.promptTokens, SHAPES.smoke.generation.promptTokens);
      assert.is(tiny.decodeSamplesNs.length, SHAPES.smoke.generation.newTokens);
      assert.ok(tiny.prefillTokensPerSecond > 0 && tiny.decodeTokensPerSecond > 0, "generation timed");
    }
    assert.equal(large, [
      { measured: false, model: "baichuan7b 7b preset, random init, f32 weights", weightDtype: "f32", why: "run only with --size full" },
      { measured: false, model: "baichuan7b 7b preset, random init, bf16 weights", weightDtype: "bf16", why: "run only with --size full" },
    ]);
    assert.equal(report.generationReference, { available: false, why: "run only with --size full" });

    // (f) machine and run
    assert.ok(report.machine.nproc >= 1 && report.machine.cpuModel.length > 0);
    assert.is(report.loadAtStart.length, 3);
    assert.ok(!Number.isNaN(Date.parse(report.date)), report.date);

    const markdown = reportMarkdown(report);
    for (const s of SECTIONS) assert.ok(markdown.includes(`\n## ${s}\n`), `section ${s}`);
    for (const k of report.kernels) assert.ok(markdown.includes(`| ${k.label} |`), `row ${k.label}`);
    assert.equal(JSON.parse(JSON.stringify(report)).kernels.length, report.kernels.length);
  }),
);

test(
  "with a row sample (as at full size) every kernel compares evenly spaced rows, within tolerance",
  withGpu(async (gpu) => {
    const results = await benchKernels(gpu, { ...SHAPES.smoke, reps: 1, checkedRows: 5 });
    for (const k of results) {
      assert.match(k.check.rows, /^5 of \d+ .*\(evenly spaced\)$|^all [1-5] /, `${k.label}: ${k.check.rows}`);
      assert.ok(k.check.relativeError < k.check.tolerance, `${k.label}: ${k.check.relativeError}`);
    }
  }),
);

test(
  "a Python without torch: the training step is timed on the adapter and the PyTorch column says why it is missing",
  withGpu(async (gpu) => {
    const python = "python3"; // the one on PATH, which has no torch here
    if (spawnSync(python, ["-c", "import torch"]).status === 0) {
      console.log(`    skipped: ${python} on PATH has torch, so the missing-torch path cannot be shown`);
      return;
    }
    const step = await benchTrainingStep(gpu, SHAPES.smoke.step, python);
    assert.is(step.sftc.samplesNs.length, SHAPES.smoke.step.steps);
    assert.is(step.torch.available, false);
    if (!step.torch.available) assert.match(step.torch.why, /No module named 'torch'/);
    assert.is(step.ratio, undefined);
    assert.is(step.firstLossDifference, undefined);
  }),
);

test(
  "--sections and --kernels: only the chosen sections and kernel cases run; the report says what did not",
  withGpu(async (gpu) => {
    const report = await runBench(gpu, { size: "smoke", command: "test", sections: ["kernels"], kernelFilter: /^matmul gemv/ });
    assert.equal(report.sections, ["kernels"]);
    // each names the engine's gemv workgroup: the tuned one, else the default (64 invocations, tree sums)
    const tuned = tunedGemv(gpu);
    const workgroup = tuned ? `${gemvVariantName(tuned)} (tuned)` : "64 invocations, tree sums (default)";
    assert.equal(report.kernels.map((k) => k.label), decodeLabels(workgroup));
    assert.is(report.trainingStep, undefined);
    assert.equal(report.generation, []);
    assert.equal(report.matmulReference, { available: false, why: "not run (--sections)" });
    const markdown = reportMarkdown(report);
    for (const s of SECTIONS) assert.ok(markdown.includes(`\n## ${s}\n`), `section ${s}`);
    assert.match(markdown, "## Training step\n\nNot run in this invocation (`--sections kernels`).");
    assert.match(markdown, "## Generation\n\nNot run in this invocation");
    assert.ok(reportPassed(report));
  }),
);

test(
  "on a device that tuned its gemv workgroup, the decode rows run that workgroup and name it",
  withGpu(async (real) => {
    const gpu = Object.create(real) as GpuDevice; // its own tuning, apart from the shared device's
    const [outcome, nf4] = await tuneGemv(gpu, { SFT_MATMUL: "tiled" }, { rounds: 1, dispatches: 2, warmupMs: 0, shape: { batch: 1, m: 1, n: 256, k: 1024 } });
    const tuned = tunedGemv(gpu);
    assert.ok(outcome && nf4 && tuned, "the gemv workgroup and its NF4 steps were tuned");
    const rows: { label: string; invocations: number; subgroupSums: boolean; b32: unknown }[] = [];
    for (const c of kernelCases(gpu, SHAPES.smoke)) {
      if (c.label.startsWith("matmul gemv")) {
        const [{ spec }] = runKernels(c);
        rows.push({ label: c.label, invocations: spec.workgroupSize[0], subgroupSums: kernelSource(spec).includes("subgroupAdd("), b32: spec.variant.b32 });
      }
      for (const t of Object.values(c.tensors)) t.destroy();
    }
    assert.equal(rows.map((r) => r.label), decodeLabels(`${outcome.chosen} (tuned)`));
    // the NF4 rows take 32 weights a step and four, whichever the tuning chose for the engine
    assert.equal(rows.filter((r) => r.label.includes("nf4")).map((r) => r.b32), [true, false]);
    assert.ok(rows.every((r) => r.invocations === tuned.invocations && r.subgroupSums === !!tuned.subgroupSize), `the kernels of ${outcome.chosen}`);
  }),
);

test("an unknown --size or --sections is a usage error, before any device is opened", () => {
  const sections = spawnSync(process.execPath, ["bin/run-ts.js", "bench/main.ts", "--sections", "kernels,speed"], { cwd: root, encoding: "utf8" });
  assert.is(sections.status, 2);
  assert.match(sections.stderr, "--sections takes kernels, ceilings, step, generation (got 'speed')");
  const filter = spawnSync(process.execPath, ["bin/run-ts.js", "bench/main.ts", "--kernels", "matmul ("], { cwd: root, encoding: "utf8" });
  assert.is(filter.status, 2);
  assert.match(filter.stderr, "--kernels is not a regular expression");
  const run = spawnSync(process.execPath, ["bin/run-ts.js", "bench/main.ts", "--size", "huge"], { cwd: root, encoding: "utf8" });
  assert.is(run.status, 2);
  assert.match(run.stderr, "--size must be one of smoke, small, full (got 'huge')");
  assert.match(run.stderr, "usage: npm run bench");
});

test.run();
