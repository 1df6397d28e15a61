// Kernel tuning at device start (runtime/gpu/kernel-tuning.ts, matmul-tuning.ts), on this
// machine's adapter with kernels that run anywhere (the tiled and registers matmuls, a wrong one,
// one that does not compile): candidates are checked before they are timed and the chosen one is
// the fastest timed; the tuning file keeps outcomes by adapter and kernel source, survives
// being corrupt or unwritable, and is parsed again only when it changed; the matmul tiling job covers every preset, stands aside for
// SFT_MATMUL_TILING and SFT_TUNE=off, and its cached choice is the tiling the engine and the
// self-check then use; the gemv job's variants (subgroup sums on this adapter's real subgroups)
// all pass and are timed, it runs only where launches take the gemv kernel, and the executors
// take its choice; the attention forward's layouts (H200's, and an H200-like summary here) are
// each a candidate, and a cached choice is the layout of every forward at that head dim.
// Which candidate wins is not asserted: speed is the bench's business.
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { selfCheckKernels } from "../../runtime/gpu/kernel-self-check.ts";
import { tuneChoice, tuningFile, tuningKey, type KernelCandidate, type TuningCandidate, type TuningOptions, type TuningProblem } from "../../runtime/gpu/kernel-tuning.ts";
import { matmulTilingJob, tunedMatmulTiling, tuneMatmulTiling } from "../../runtime/gpu/matmul-tuning.ts";
import { engineGemv, gemvJob, gemvVariantName, gemvVariants, nf4StepsJob, tunedGemv, tuneGemv } from "../../runtime/gpu/gemv-tuning.ts";
import { nf4MatmulKernel } from "../../stdlib/kernels/nf4-matmul.ts";
import { scheduleWgsl } from "../../runtime/execute/emit-wgsl.ts";
import { attentionAdapter, attentionLayoutJob, attentionLayoutName, attentionLayouts, tuneAttentionLayouts, tunedAttentionLayout, tunedBackwardLayouts } from "../../runtime/gpu/attention-tuning.ts";
import { attentionBackwardKernelsFor } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { causalVariant } from "../../runtime/gpu/kernel-probe-cases.ts";
import { attentionForwardKernelFor } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { subgroupAttentionLayout, subgroupAttentionLayouts, workgroupBytes } from "../../stdlib/kernels/attention-subgroup-layout.ts";
import { kernelKey } from "../../stdlib/kernels/kernel.ts";
import * as b from "../../compiler/ir/build.ts";
import { graph } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { SUBGROUP_TILINGS } from "../../stdlib/kernels/matmul-subgroup.ts";
import { matmulKernelsOf, matmulUniforms, type MatmulKernel, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { matmulStrategyFor } from "../../stdlib/kernels/matmul-strategy.ts";
import { WEIGHTS, weightProductProblem } from "../../runtime/gpu/kernel-probe-cases.ts";
import { withF16Gpu, withGpu } from "../kernels/gpu-harness.ts";
import { H200, h200Like } from "../support/h200-adapter.ts";
import { broken, doubledAlpha, matmulCandidate, registers, tiled } from "../support/matmul-candidates.ts";

const test = suite("kernel tuning");

const SHAPE: MatmulShape = { batch: 1, m: 96, n: 128, k: 160 };
const PROBLEM = weightProductProblem(SHAPE); // "96x160 times (128, 160)ᵀ, f32"
const FAST = { rounds: 2, dispatches: 3, warmupMs: 0 };

/** A candidate of `kernel` (its choice), counting how often its probe builds its cases (once per check). */
function candidate(name: string, kernel: MatmulKernel, checks = { count: 0 }): KernelCandidate<MatmulKernel> {
  const probe = matmulCandidate(kernel, name);
  return { name, choice: kernel, probe: { ...probe, cases: () => (checks.count++, probe.cases()) }, spec: kernel(WEIGHTS, SHAPE), uniforms: matmulUniforms(SHAPE, WEIGHTS) };
}

/** The test matmul's tuning over `candidates` on PROBLEM, in FAST rounds. */
const tuneTestMatmul = (gpu: GpuDevice, candidates: TuningCandidate<MatmulKernel>[], options: TuningOptions) => tuneChoice(gpu, "test matmul", { candidates, problem: PROBLEM }, { ...FAST, ...options });

/** An H200-like summary over `real` and the matmul tiling job its subgroup-matrix strategy gives (at `shape`). */
function h200TilingJob(real: GpuDevice, shape?: MatmulShape) {
  const gpu = h200Like(real);
  const strategy = matmulStrategyFor(gpu.adapter, {});
  assert.ok(strategy.ok && typeof strategy.value === "object");
  return { gpu, job: matmulTilingJob(strategy.value, "tiled", shape) };
}

/** One job's choice to plant in a tuning file, as if a start had timed it. */
interface Planted {
  job: string;
  candidates: readonly TuningCandidate<unknown>[];
  problem: TuningProblem;
  chosen: string;
}

/** Writes `file` with the planted choices, keyed as tuneChoice keys them; returns their entries as the file holds them. */
function plantTunings(gpu: GpuDevice, file: string, plants: readonly Planted[]) {
  const entries = plants.map((p) => ({ job: p.job, chosen: p.chosen, at: "2026-11-26T00:00:00.000Z", problem: p.problem.label, timings: [{ name: p.chosen, ms: 1 }], rejected: [] }));
  writeFileSync(file, JSON.stringify({ tunings: Object.fromEntries(plants.map((p, i) => [tuningKey(gpu, p.job, p.candidates, p.problem), entries[i]])) }));
  return entries;
}

/** `body` on the test device with a scratch directory and a tuning file in a folder not yet made there. */
function withScratch(body: (gpu: GpuDevice, scratch: { dir: string; file: string }) => Promise<void>, harness = withGpu): () => Promise<void> {
  return harness(async (gpu) => {
    const dir = mkdtempSync(join(tmpdir(), "sftc-tuning-"));
    try {
      await body(gpu, { dir, file: join(dir, "nested", "kernel-tuning.json") });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// Skips where this adapter has subgroup matrices: the tests need an H200-like summary whose kernels fail here.
const withoutSubgroupMatrices = (body: (gpu: GpuDevice) => Promise<void>) =>
  withF16Gpu(async (real) => (real.adapter.features.includes("chromium-experimental-subgroup-matrix") ? console.log("    skipped: this adapter has subgroup matrices, which compile") : body(real)));

test(
  "every candidate is checked before it is timed: a wrong one and one that does not compile are rejected with the reason; the chosen one is the fastest timed",
  withScratch(async (gpu, scratch) => {
    const candidates = [candidate("tiled", tiled), candidate("doubled", doubledAlpha), candidate("registers", registers), candidate("broken", broken)];
    const told: string[] = [];
    const tuning = await tuneTestMatmul(gpu, candidates, { file: scratch.file, log: (line) => told.push(line) });
    assert.equal(told, [`sftc: timing 2 candidates for the test matmul on '${gpu.adapter.name}' (once per card; SFT_TUNE=off skips it)`], "one line before the timing");
    assert.ok(tuning, "two candidates pass");
    const { outcome, choice } = tuning;
    console.log(`    ${outcome.timings.map((t) => `${t.name} ${t.ms.toFixed(3)} ms`).join(", ")}: chose ${outcome.chosen}`);
    assert.is(outcome.source, "measured");
    assert.is(outcome.problem, PROBLEM.label);
    assert.equal(outcome.timings.map((t) => t.name).sort(), ["registers", "tiled"]);
    assert.ok(outcome.timings.every((t) => Number.isFinite(t.ms) && t.ms > 0), "a positive time per dispatch");
    assert.ok(outcome.timings[0].ms <= outcome.timings[1].ms, "fastest first");
    assert.is(outcome.chosen, outcome.timings[0].name);
    assert.is(choice, outcome.chosen === "tiled" ? tiled : registers, "the choice of the chosen candidate");
    assert.ok(outcome.check?.verified && outcome.check.kernel === outcome.chosen, "with the check it passed");
    assert.equal(outcome.rejected.map((r) => r.name), ["doubled", "broken"]);
    assert.match(outcome.rejected[0].why, "relative error");
    assert.match(outcome.rejected[1].why, "failed to compile");
    const saved: Record<string, object> = JSON.parse(readFileSync(scratch.file, "utf8")).tunings;
    assert.equal(Object.keys(saved), [tuningKey(gpu, "test matmul", candidates, PROBLEM)]);
    assert.not.ok("source" in Object.values(saved)[0] || "check" in Object.values(saved)[0], "the file keeps the outcome, not where this call got it nor this start's check");
  }),
);

test(
  "the file keeps outcomes by adapter and kernel source: tuning again reads it and checks only the choice, without timing; a changed kernel is tuned anew",
  withScratch(async (gpu, scratch) => {
    const checks = { count: 0 };
    const candidates = [candidate("tiled", tiled, checks), candidate("registers", registers, checks)];
    const first = (await tuneTestMatmul(gpu, candidates, { file: scratch.file }))?.outcome;
    assert.is(checks.count, 2);
    const told: string[] = [];
    const again = (await tuneTestMatmul(gpu, candidates, { file: scratch.file, log: (line) => told.push(line) }))?.outcome;
    assert.equal(told, [], "a choice read from the file is not timed, nor told");
    assert.is(checks.count, 3, "only the choice was checked again");
    const { savedTo, check: _firstCheck, ...kept } = first!;
    assert.is(savedTo, scratch.file, "the measured outcome says where it was written");
    const { check: recheck, ...read } = again!;
    assert.equal(read, { ...kept, source: "cached" });
    assert.ok(recheck?.verified && recheck.kernel === kept.chosen, "the outcome carries the check it passed again");

    const changed = { ...candidates[1], spec: { ...candidates[1].spec, body: `${candidates[1].spec.body}\n  // changed` } };
    const retuned = await tuneTestMatmul(gpu, [candidates[0], changed], { file: scratch.file });
    assert.is(retuned?.outcome.source, "measured");
    assert.is(checks.count, 5);
    assert.is(Object.keys(JSON.parse(readFileSync(scratch.file, "utf8")).tunings).length, 2, "both outcomes kept");
  }),
);

test(
  "a choice read from the file that fails its check again (here a wrong kernel the file names) is tuned anew, and the wrong one rejected",
  withScratch(async (gpu, scratch) => {
    const candidates = [candidate("tiled", tiled), candidate("doubled", doubledAlpha), candidate("registers", registers)];
    plantTunings(gpu, join(scratch.dir, "planted.json"), [{ job: "test matmul", candidates, problem: PROBLEM, chosen: "doubled" }]);
    const outcome = (await tuneTestMatmul(gpu, candidates, { file: join(scratch.dir, "planted.json") }))?.outcome;
    assert.ok(outcome);
    assert.is(outcome.source, "measured");
    assert.ok(outcome.chosen === "tiled" || outcome.chosen === "registers", outcome.chosen);
    assert.equal(outcome.rejected.map((r) => r.name), ["doubled"]);
  }),
);

test(
  "a corrupt tuning file is replaced, an unwritable one costs only the timing; with no candidate passing there is no outcome and nothing is written",
  withScratch(async (gpu, scratch) => {
    const corrupt = join(scratch.dir, "corrupt.json");
    writeFileSync(corrupt, "{ not json");
    const candidates = [candidate("registers", registers)];
    const replaced = await tuneTestMatmul(gpu, candidates, { file: corrupt });
    assert.is(replaced?.outcome.chosen, "registers");
    assert.equal(Object.keys(JSON.parse(readFileSync(corrupt, "utf8")).tunings), [tuningKey(gpu, "test matmul", candidates, PROBLEM)]);

    const unwritable = join(corrupt, "below-a-file.json"); // a directory that is a file
    const measured = (await tuneTestMatmul(gpu, candidates, { file: unwritable }))?.outcome;
    assert.is(measured?.source, "measured");
    assert.is(measured?.savedTo, undefined, "not written");

    const none = await tuneTestMatmul(gpu, [candidate("doubled", doubledAlpha), candidate("broken", broken)], { file: scratch.file });
    assert.is(none, undefined);
    assert.not.ok(existsSync(scratch.file));
  }),
);

test(
  "the tuning file is parsed once while it is unchanged; a file another process renamed over it is read again",
  withScratch(async (gpu, scratch) => {
    const candidates = [candidate("tiled", tiled), candidate("registers", registers)];
    const file = join(scratch.dir, "kernel-tuning.json");
    const plant = (into: string, chosen: string) => plantTunings(gpu, into, [{ job: "test matmul", candidates, problem: PROBLEM, chosen }]);
    const read = async () => (await tuneTestMatmul(gpu, candidates, { file }))?.outcome;
    const when = new Date("2026-11-26T00:00:00Z");
    plant(file, "tiled");
    utimesSync(file, when, when);
    assert.is((await read())?.chosen, "tiled");
    // other contents in the same file, of the same size and time (writers rename a new file instead)
    writeFileSync(file, " ".repeat(statSync(file).size));
    utimesSync(file, when, when);
    const again = await read();
    assert.equal([again?.source, again?.chosen], ["cached", "tiled"], "the file as parsed before");
    const other = join(scratch.dir, "other.json");
    plant(other, "registers");
    renameSync(other, file);
    assert.is((await read())?.chosen, "registers", "the new file");
  }),
);

test("the tuning file: SFT_TUNING_CACHE, else under XDG_CACHE_HOME, else under ~/.cache", () => {
  assert.is(tuningFile({ SFT_TUNING_CACHE: "/x/t.json", XDG_CACHE_HOME: "/y" }), "/x/t.json");
  assert.is(tuningFile({ XDG_CACHE_HOME: "/y" }), "/y/sftc/kernel-tuning.json");
  assert.is(tuningFile({}), join(homedir(), ".cache", "sftc", "kernel-tuning.json"));
});

test(
  "the matmul tiling job: every preset a candidate; none tuned under SFT_TUNE=off or SFT_MATMUL_TILING, or where every preset fails to compile",
  withScratch(async (real, scratch) => {
    const { gpu, job } = h200TilingJob(real, SHAPE);
    assert.equal(job.candidates.map((c) => c.name), Object.keys(SUBGROUP_TILINGS));
    assert.ok(job.candidates.every((c) => c.spec.enables?.includes("chromium_experimental_subgroup_matrix")), "subgroup-matrix kernels");
    const file = { SFT_TUNING_CACHE: scratch.file };
    assert.is(await tuneMatmulTiling(gpu, { ...file, SFT_TUNE: "off" }), undefined);
    assert.is(await tuneMatmulTiling(gpu, { ...file, SFT_MATMUL_TILING: "wg64" }), undefined);
    assert.is(await tuneMatmulTiling(gpu, file, { ...FAST, file: scratch.file, shape: SHAPE }), undefined, "no preset compiles on this adapter");
    assert.is(tunedMatmulTiling(gpu), undefined);
    assert.not.ok(existsSync(scratch.file));
    assert.is(await tuneMatmulTiling(real, file), undefined, "this adapter's own strategy is not on subgroup matrices");
  }, withoutSubgroupMatrices),
);

test(
  "a tuned tiling (here read from the file) is the one the engine's strategy and the self-check's matmul probe take; SFT_MATMUL_TILING still wins",
  withScratch(async (real, scratch) => {
    const { gpu, job } = h200TilingJob(real);
    const file = join(scratch.dir, "kernel-tuning.json");
    const [entry] = plantTunings(gpu, file, [{ job: "matmul tiling", ...job, chosen: "wg256-4x2" }]);
    const env = { SFT_TUNING_CACHE: file };

    // the matmul's tuning alone: the gemv's would time its variants on this adapter at full size
    // taken as read: its kernels cannot run here, so a recheck would tune again (and find none)
    const outcome = await selfCheckKernels(gpu, env, undefined, async (g, e) => [(await tuneMatmulTiling(g, e, { file, recheck: false }))!]);
    assert.equal(outcome.tunings, [{ ...entry, source: "cached" }]);
    assert.is(tunedMatmulTiling(gpu), "wg256-4x2");
    const chosen = matmulStrategyFor(gpu.adapter, {}, tunedMatmulTiling(gpu));
    assert.ok(chosen.ok && typeof chosen.value === "object" && chosen.value.tiling === "wg256-4x2");
    assert.match(outcome.checks.matmul!.kernel, "4x2 of 32x32", "the probe checks the tuned tiling");
    assert.not.ok(outcome.warnings.some((w) => w.code === "SFT5012"), "a choice read from the file is not news");
    const named = matmulStrategyFor(gpu.adapter, { SFT_MATMUL_TILING: "wg64" }, "wg256-4x2");
    assert.ok(named.ok && typeof named.value === "object" && named.value.tiling === "wg64");
  }, withoutSubgroupMatrices),
);

test(
  "the gemv job on this device: 64, 128 and 256 invocations, with subgroup sums where its subgroups have one size, one or two K steps an iteration; each checked and timed",
  withScratch(async (gpu, scratch) => {
    const variants = gemvVariants(gpu);
    const lanes = gpu.hasSubgroups && gpu.adapter.subgroupMinSize === gpu.adapter.subgroupMaxSize ? gpu.adapter.subgroupMaxSize : 0;
    const perSize = (lanes ? 2 : 1) * 2; // tree (and subgroup) sums, one and two steps an iteration
    assert.equal(variants.map((v) => v.invocations), [64, 128, 256].flatMap((n) => Array<number>(perSize).fill(n)));
    assert.equal(new Set(variants.map(gemvVariantName)).size, variants.length, "each named apart");
    const tuning = await tuneChoice(gpu, "gemv workgroup", gemvJob(gpu, { batch: 1, m: 1, n: 256, k: 1024 }), { ...FAST, file: scratch.file });
    assert.ok(tuning);
    const { outcome, choice } = tuning;
    assert.is(gemvVariantName(choice), outcome.chosen, "the chosen name's variant");
    console.log(`    ${outcome.timings.map((t) => `${t.name} ${t.ms.toFixed(3)} ms`).join("; ")}`);
    assert.equal(outcome.rejected, [], "every variant passes its check here (the subgroup sums on real subgroups)");
    assert.equal(outcome.timings.map((t) => t.name).sort(), variants.map(gemvVariantName).sort());
  }),
);

test(
  "the NF4 steps job: the workgroup reading an NF4 W 32 weights a step and four, each checked against the dequantized weight's float64 product and timed",
  withScratch(async (gpu, scratch) => {
    const base = gemvVariants(gpu).at(-1)!;
    const job = nf4StepsJob(base, { batch: 1, m: 1, n: 256, k: 1024 });
    assert.equal(
      job.candidates.map((c) => [c.name, c.choice, c.spec.variant.b32]),
      [
        ["32 weights a step", { ...base, wideSteps: true }, true],
        ["four weights a step", { ...base, wideSteps: false }, false],
      ],
    );
    const tuning = await tuneChoice(gpu, "NF4 gemv steps", job, { ...FAST, file: scratch.file });
    assert.ok(tuning);
    console.log(`    ${tuning.outcome.timings.map((t) => `${t.name} ${t.ms.toFixed(3)} ms`).join("; ")}`);
    assert.equal(tuning.outcome.rejected, []);
    assert.equal(tuning.outcome.timings.map((t) => t.name).sort(), ["32 weights a step", "four weights a step"]);
    assert.ok(tuning.outcome.check!.relativeError! < 1e-5);
  }),
);

test(
  "gemv tuning runs where launches take the gemv kernel (not under the registers strategy, nor SFT_TUNE=off), and the device's executors then take the chosen workgroup",
  withScratch(async (real, scratch) => {
    const gpu = Object.create(real) as GpuDevice; // its own tuning, apart from the shared device's
    const file = join(scratch.dir, "kernel-tuning.json");
    assert.equal(await tuneGemv(gpu, { SFT_MATMUL: "registers", SFT_TUNING_CACHE: file }), []);
    assert.equal(await tuneGemv(gpu, { SFT_MATMUL: "tiled", SFT_TUNE: "off", SFT_TUNING_CACHE: file }), []);
    assert.is(tunedGemv(gpu), undefined);

    // chosen variants as the tuning file would give them, so the check does not depend on which is fastest here
    const wanted = gemvVariants(gpu).at(-1)!;
    plantTunings(gpu, file, [
      { job: "gemv workgroup", ...gemvJob(gpu), chosen: gemvVariantName(wanted) },
      { job: "NF4 gemv steps", ...nf4StepsJob(wanted), chosen: "four weights a step" },
    ]);
    const outcomes = await tuneGemv(gpu, { SFT_MATMUL: "tiled", SFT_TUNING_CACHE: file });
    assert.equal(
      outcomes.map((o) => [o.job, o.source]),
      [
        ["gemv workgroup", "cached"],
        ["NF4 gemv steps", "cached"],
      ],
    );
    assert.equal(tunedGemv(gpu), { ...wanted, wideSteps: false });
    // the engine's NF4 decode product reads four weights a step, its dense one is the workgroup's
    const nf4 = nf4MatmulKernel(WEIGHTS, { batch: 1, m: 1, n: 96, k: 64 }, matmulKernelsOf("tiled", engineGemv(gpu)));
    assert.equal([nf4.name, nf4.variant.b32, nf4.workgroupSize[0]], ["matmul_gemv_nf4", false, wanted.invocations]);

    const decode = graph([["y", b.matmul(b.input("x", [1, 64]), b.param("w", [96, 64]), { transB: true })]]);
    const compiled = compileGraph(decode);
    assert.ok(compiled.ok);
    const saved = process.env.SFT_MATMUL;
    process.env.SFT_MATMUL = "tiled"; // the executor reads the strategy from the environment
    try {
      const wgsl = scheduleWgsl(gpu, compiled.value.schedule);
      assert.ok(wgsl.ok, wgsl.ok ? "" : wgsl.diagnostics[0].message);
      assert.match(wgsl.value, `@workgroup_size(${wanted.invocations}`);
      if (wanted.subgroupSize) assert.match(wgsl.value, "subgroupAdd(");
    } finally {
      if (saved === undefined) delete process.env.SFT_MATMUL;
      else process.env.SFT_MATMUL = saved;
    }
  }),
);

test("the attention layout job: every layout that fits the H200's workgroup memory, largest (the untuned choice) first, each its own kernel", () => {
  const layouts = subgroupAttentionLayouts(H200, 128);
  assert.ok(layouts.length > 1, "several layouts fit");
  assert.equal(layouts[0], subgroupAttentionLayout(H200, 128));
  assert.ok(layouts.every((l) => workgroupBytes(l, 128) <= H200.workgroupStorageBytes));
  const rows = layouts.map((l) => l.subgroups * 1024 + l.blockK);
  assert.equal(rows, [...rows].sort((x, y) => y - x), "largest first: most rows, then most keys");
  const job = attentionLayoutJob(layouts, 128);
  assert.equal(job.candidates.map((c) => c.name), layouts.map(attentionLayoutName));
  assert.equal(new Set(job.candidates.map((c) => kernelKey(c.spec))).size, layouts.length, "one kernel per layout");
  assert.is(job.problem.label, "causal attention, 1024 tokens, 32 heads of 128, f32");
});

test(
  "attention tuning on an H200-like summary: none under SFT_TUNE=off or SFT_ATTENTION=scalar, or where no layout compiles; a cached choice is the layout of that kernel's launches at its head dim",
  withScratch(async (real, scratch) => {
    const gpu = h200Like(real);
    const file = join(scratch.dir, "kernel-tuning.json");
    assert.equal(await tuneAttentionLayouts(gpu, { SFT_TUNE: "off", SFT_TUNING_CACHE: file }), []);
    assert.equal(await tuneAttentionLayouts(gpu, { SFT_ATTENTION: "scalar", SFT_TUNING_CACHE: file }), []);
    assert.equal(await tuneAttentionLayouts(gpu, {}, { ...FAST, file, tokens: 64 }), [], "no layout compiles on this adapter");
    assert.not.ok(existsSync(file));

    // choices as the tuning file would give them (the smallest layouts), so the check does not depend on timing here
    const adapter = attentionAdapter(gpu);
    const [forward, dq] = (["forward", "dq"] as const).map((kernel) => attentionLayouts(adapter, 128, kernel).at(-1)!);
    const entries = plantTunings(gpu, file, [
      { job: "attention forward layout, head dim 128", ...attentionLayoutJob(attentionLayouts(adapter, 128, "forward"), 128, "forward"), chosen: attentionLayoutName(forward) },
      { job: "attention backward dQ layout, head dim 128", ...attentionLayoutJob(attentionLayouts(adapter, 128, "dq"), 128, "dq"), chosen: attentionLayoutName(dq) },
    ]);
    const outcomes = await tuneAttentionLayouts(gpu, {}, { file, recheck: false }); // taken as read: these kernels cannot run here
    assert.equal(outcomes, entries.map((e) => ({ ...e, source: "cached" })), "forward and dQ at 128 from the file; the others timed, and no layout compiles here");
    assert.equal(tunedAttentionLayout(gpu, 128), forward);
    assert.equal(tunedBackwardLayouts(gpu, 128), { dq });
    assert.is(tunedAttentionLayout(gpu, 256), undefined);
    const variant = { ...causalVariant(128, "f32"), padding: true };
    const spec = attentionForwardKernelFor(adapter, variant, {}, tunedAttentionLayout(gpu, 128));
    assert.ok(spec.ok && spec.value.variant.subgroups === forward.subgroups && spec.value.variant.padding === true, "a masked variant takes the tuned layout too");
    const backward = attentionBackwardKernelsFor(adapter, variant, {}, tunedBackwardLayouts(gpu, 128));
    assert.ok(backward.ok && backward.value.dq.variant.subgroups === dq.subgroups, "dQ takes its tuned layout");
    assert.ok(backward.ok && backward.value.dkdv.variant.subgroups === attentionLayouts(adapter, 128, "dkdv")[0].subgroups, "dK/dV, untuned, the largest");
  }, withoutSubgroupMatrices),
);

test(
  "a start that timed kernel choices says so once (SFT5012, an info: how long, what it chose, where it is kept)",
  withScratch(async (real, scratch) => {
    const gpu = Object.create(real) as GpuDevice; // a device of its own: the self-check runs once per device
    const env = { SFT_TUNING_CACHE: scratch.file };
    const tune = async () => [(await tuneTestMatmul(gpu, [candidate("tiled", tiled), candidate("registers", registers)], { file: scratch.file }))!.outcome];
    const outcome = await selfCheckKernels(gpu, env, () => [], tune);
    const notes = outcome.warnings.filter((w) => w.code === "SFT5012");
    assert.is(notes.length, 1);
    assert.is(notes[0].severity, "info");
    assert.ok(notes[0].message.startsWith(`timed kernel choices on '${real.adapter.name}' in `), notes[0].message);
    assert.match(notes[0].message, /in \d+\.\d s \(test matmul: (tiled|registers)\)$/);
    assert.match(notes[0].hint!, `Kept in ${scratch.file}`);
  }),
);

test.run();
