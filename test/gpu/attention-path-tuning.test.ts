// The attention path's tuning (runtime/gpu/attention-path-tuning.ts), on this machine's adapter:
// the score-matrix probe passes forward and backward on the engine's matmul kernels (f32 and, with
// shader-f16, f16 storage) and fails on a wrong one; the path job's two candidates (the fused
// kernels, the score-matrix sequence) are each checked and timed as one run of their kernels;
// SFT_ATTENTION decides the engine's path where it is set, and a forced path is checked when the
// device opens; a device tunes the path where its fused kernels run on subgroup matrices, and the
// engine takes a tuned choice only on the matmul strategy it was timed on (checked on the tunings
// of an H200's strategy given directly, so on every adapter, and on this device's own tuning).
// Which path wins is not asserted: speed is the bench's business.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { attentionPathJob, chosenAttentionScores, engineAttentionScores, scoresPath, tuneAttentionPaths, type TunedPath } from "../../runtime/gpu/attention-path-tuning.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { scoresAttentionProbe, scoresPathProbe } from "../../runtime/gpu/kernel-probe-cases.ts";
import { checkKernel } from "../../runtime/gpu/kernel-probe.ts";
import { checkedAttentionScores, fastKernelProbes, selfCheckKernels } from "../../runtime/gpu/kernel-self-check.ts";
import { tuneChoice } from "../../runtime/gpu/kernel-tuning.ts";
import { attentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { matmulKernelsOf, type MatmulKernel } from "../../stdlib/kernels/matmul.ts";
import { matmulStrategyFor, type MatmulStrategy } from "../../stdlib/kernels/matmul-strategy.ts";
import { withF16Gpu, withGpu } from "../kernels/gpu-harness.ts";
import { H200, h200Like } from "../support/h200-adapter.ts";
import { ok } from "../../compiler/diagnostics.ts";
import { doubledAlpha } from "../support/matmul-candidates.ts";

const FAST = { rounds: 2, dispatches: 2, warmupMs: 0 };

/** The strategy the engine takes on `gpu` and its kernels. */
function engineMatmul(gpu: GpuDevice): { strategy: MatmulStrategy; matmul: MatmulKernel } {
  const strategy = matmulStrategyFor(gpu.adapter, {});
  assert.ok(strategy.ok);
  return { strategy: strategy.value, matmul: matmulKernelsOf(strategy.value) };
}

test(
  "the score-matrix probe passes on the engine's matmul kernels, forward and backward, and fails on a wrong matmul",
  withGpu(async (gpu) => {
    const { matmul } = engineMatmul(gpu);
    const storage = gpu.hasF16 ? (["f32", "f16"] as const) : (["f32"] as const);
    for (const direction of ["forward", "backward"] as const) {
      const check = await checkKernel(gpu, scoresAttentionProbe(matmul, 64, direction, storage));
      assert.ok(check.verified, `${direction}: ${check.failure}`);
      const wrong = await checkKernel(gpu, scoresAttentionProbe(doubledAlpha, 64, direction));
      assert.not.ok(wrong.verified, `${direction}: a matmul that doubles its products fails`);
    }
  }),
);

test(
  "the path job checks and times the fused kernels and the score-matrix sequence, each as one run",
  withGpu(async (gpu) => {
    const { matmul } = engineMatmul(gpu);
    const fused = { forward: attentionForwardKernel, backward: attentionBackwardKernels };
    for (const direction of ["forward", "backward"] as const) {
      // head dim 512: 8 heads of 64 tokens keep the timed problem small here
      const job = attentionPathJob(direction, 512, fused, scoresPath(matmul), { tokens: 64 });
      assert.ok(job, `${direction}: the problem fits one chunk`);
      assert.equal(job.candidates.map((c) => c.choice), [false, true]);
      const kernels = job.candidates.map((c) => ("kernels" in c ? c.kernels.length : 1));
      // two batch rows: the score matrix's launches are per row
      assert.equal(kernels, direction === "forward" ? [1, 6] : [3, 15], `${direction}: kernels a run`);
      const tuned = await tuneChoice(gpu, `test attention ${direction} path`, job, FAST);
      assert.ok(tuned, `${direction}: a choice`);
      assert.equal(tuned.outcome.rejected, [], `${direction}: both candidates pass their checks`);
      assert.equal(tuned.outcome.timings.map((t) => t.name).sort(), ["fused kernels", "score matrix on the matmul kernels"]);
      assert.ok(tuned.outcome.timings.every((t) => t.ms > 0), `${direction}: timed`);
      assert.is(tuned.choice, tuned.outcome.chosen === "score matrix on the matmul kernels");
    }
    // grouped queries (8 heads over 2): the score matrix adds dK and dV a head at a time
    const grouped = attentionPathJob("backward", 512, fused, scoresPath(matmul), { tokens: 64, kvHeads: 2 });
    assert.ok(grouped);
    assert.match(grouped.problem.label, "8 heads over 2 of 512");
    // delta, then per batch row and chunk (a group of 4 heads): S, softmax, dP, dS, dQ, and dK and dV for each head
    assert.equal(grouped.candidates.map((c) => ("kernels" in c ? c.kernels.length : 1)), [3, 1 + 2 * 2 * (5 + 2 * 4)]);
    const tuned = await tuneChoice(gpu, "test attention backward path, grouped queries", grouped, FAST);
    assert.equal(tuned?.outcome.rejected, [], "both candidates pass their checks");
  }),
);

test(
  "SFT_ATTENTION decides the engine's path where set; a device tunes the path where its fused kernels run on subgroup matrices",
  withGpu(async (gpu) => {
    const { strategy } = engineMatmul(gpu);
    assert.equal(engineAttentionScores(gpu, strategy, { SFT_ATTENTION: "scores" }), { forward: true, backward: true });
    assert.equal(engineAttentionScores(gpu, strategy, { SFT_ATTENTION: "scalar" }), { forward: false, backward: false });
    const dir = mkdtempSync(join(tmpdir(), "sftc-path-tuning-"));
    try {
      const outcomes = await tuneAttentionPaths(gpu, {}, { ...FAST, file: join(dir, "tuning.json") });
      if (gpu.adapter.subgroupMatrixConfigs.length === 0) {
        assert.equal(outcomes, [], "no subgroup matrices: the fused kernels stay");
        assert.equal(engineAttentionScores(gpu, strategy, {}), { forward: [], backward: [], groupedBackward: [] });
      } else {
        // forward and backward at head dims 128 and 256, and the grouped backward at 128; the
        // engine takes what each chose, on the strategy timed only
        assert.is(outcomes.length, 5);
        const chosen = (job: string) => [128, 256].filter((d) => outcomes.some((o) => o.job === `attention ${job}, head dim ${d}` && o.chosen === "score matrix on the matmul kernels"));
        assert.equal(engineAttentionScores(gpu, strategy, {}), { forward: chosen("forward path"), backward: chosen("backward path"), groupedBackward: chosen("backward path, grouped queries") });
        assert.equal(engineAttentionScores(gpu, "tiled", {}), { forward: [], backward: [], groupedBackward: [] });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }),
);

test("a tuned path is the engine's only on the matmul strategy it was timed on; SFT_ATTENTION overrides it", () => {
  const timedOn = matmulStrategyFor(H200, {}, "wg64");
  const otherTiling = matmulStrategyFor(H200, {}, "wg256-4x2");
  assert.ok(timedOn.ok && typeof timedOn.value === "object" && otherTiling.ok);
  const path = (direction: TunedPath["direction"], grouped: boolean, headDim: number, scores: boolean): TunedPath => ({ direction, grouped, headDim, scores, strategy: timedOn.value });
  const tunings = [path("forward", false, 128, true), path("forward", false, 256, false), path("backward", false, 128, false), path("backward", false, 256, true), path("backward", true, 128, true)];
  assert.equal(chosenAttentionScores(tunings, timedOn.value, {}), { forward: [128], backward: [256], groupedBackward: [128] });
  const none = { forward: [], backward: [], groupedBackward: [] };
  assert.equal(chosenAttentionScores(tunings, "tiled", {}), none, "the plain matmul its self-check falls back to");
  assert.equal(chosenAttentionScores(tunings, otherTiling.value, {}), none, "another tiling of the same matrices");
  assert.equal(chosenAttentionScores([], timedOn.value, {}), none, "nothing tuned");
  assert.equal(chosenAttentionScores(tunings, timedOn.value, { SFT_ATTENTION: "scores" }), { forward: true, backward: true });
  assert.equal(chosenAttentionScores(tunings, timedOn.value, { SFT_ATTENTION: "subgroup-matrix" }), { forward: false, backward: false });
});

test(
  "a forced score-matrix path is checked when the device opens",
  withGpu(async (gpu) => {
    // the probes the device runs when it opens under SFT_ATTENTION=scores
    const probe = fastKernelProbes(gpu, { SFT_ATTENTION: "scores" }).find((p) => p.op === "attention scores");
    assert.ok(probe, "the path has a probe");
    assert.is(fastKernelProbes(gpu, {}).find((p) => p.op === "attention scores"), undefined, "only where asked for");
    assert.match(probe.kernel, "score-matrix attention, forward and backward (head dims 64, 128, 256)");
    const check = await checkKernel(gpu, probe);
    assert.ok(check.verified, check.failure);
  }),
);

test(
  "a forced score-matrix path whose check fails is SFT5011; on a device whose fast matmul fails, it is checked on the plain one",
  withF16Gpu(async (real) => {
    if (real.adapter.features.includes("chromium-experimental-subgroup-matrix")) return console.log("    skipped: this adapter has subgroup matrices, which compile");
    const env = { SFT_ATTENTION: "scores", SFT_TUNE: "off" };
    // a device whose score-matrix check fails (its matmul doubles the products)
    const broken = h200Like(real);
    await selfCheckKernels(broken, env, () => [scoresPathProbe(doubledAlpha, [64], ["f32"])], async () => []);
    const refused = checkedAttentionScores(broken, "tiled", env);
    assert.ok(!refused.ok && refused.diagnostics[0].code === "SFT5011", "an error at the choice");
    assert.match(refused.diagnostics[0].message, "SFT_ATTENTION=scores, but the score-matrix attention, forward and backward (head dims 64) failed its self-check");
    assert.equal(checkedAttentionScores(broken, "tiled", {}), ok({ forward: [], backward: [], groupedBackward: [] }), "not asked for: no check consulted");
    // an H200-like summary here: its subgroup-matrix matmul does not compile, so the engine takes the
    // tiled one, and the score matrix is checked on that
    const gpu = h200Like(real);
    const outcome = await selfCheckKernels(gpu, env);
    assert.not.ok(outcome.checks.matmul?.verified);
    const check = outcome.checks["attention scores"];
    assert.ok(check?.verified, check?.failure);
    assert.equal(checkedAttentionScores(gpu, "tiled", env), ok({ forward: true, backward: true }));
  }),
);

test.run();
