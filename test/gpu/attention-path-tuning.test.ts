// The attention path's tuning (runtime/gpu/attention-path-tuning.ts), on this machine's adapter:
// the score-matrix probe passes forward and backward on the engine's matmul kernels and fails on
// a wrong one; the path job's two candidates (the fused kernels, the score-matrix sequence) are
// each checked and timed as one run of their kernels; SFT_ATTENTION decides the engine's path
// where it is set; and a device without subgroup matrices tunes no path (its fused kernels stay).
// Which path wins is not asserted: speed is the bench's business.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { attentionPathJob, engineAttentionScores, tuneAttentionPaths } from "../../runtime/gpu/attention-path-tuning.ts";
import { scoresAttentionProbe, type MatmulKernel } from "../../runtime/gpu/kernel-probe-cases.ts";
import { checkKernel } from "../../runtime/gpu/kernel-probe.ts";
import { tuneChoice } from "../../runtime/gpu/kernel-tuning.ts";
import { attentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { matmulKernel, matmulStrategyFor } from "../../stdlib/kernels/matmul.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { doubledAlpha } from "../support/matmul-candidates.ts";

const FAST = { rounds: 2, dispatches: 2, warmupMs: 0 };

/** The matmul kernels of the strategy the engine takes on `gpu`. */
function engineMatmul(gpu: GpuDevice): MatmulKernel {
  const strategy = matmulStrategyFor(gpu.adapter, {});
  assert.ok(strategy.ok);
  return (o, s) => matmulKernel(o, s, strategy.value);
}

test(
  "the score-matrix probe passes on the engine's matmul kernels, forward and backward, and fails on a wrong matmul",
  withGpu(async (gpu) => {
    const matmul = engineMatmul(gpu);
    for (const direction of ["forward", "backward"] as const) {
      const check = await checkKernel(gpu, scoresAttentionProbe(matmul, 64, direction, "f32", 1e-4));
      assert.ok(check.verified, `${direction}: ${check.failure}`);
      assert.ok(check.relativeError! < 1e-5, `${direction}: relative error ${check.relativeError}`);
      const wrong = await checkKernel(gpu, scoresAttentionProbe(doubledAlpha, 64, direction, "f32", 1e-4));
      assert.not.ok(wrong.verified, `${direction}: a matmul that doubles its products fails`);
    }
  }),
);

test(
  "the path job checks and times the fused kernels and the score-matrix sequence, each as one run",
  withGpu(async (gpu) => {
    const matmul = engineMatmul(gpu);
    const fused = { forward: attentionForwardKernel, backward: attentionBackwardKernels };
    for (const direction of ["forward", "backward"] as const) {
      // head dim 512: 8 heads of 64 tokens keep the timed problem small here
      const job = attentionPathJob(direction, 512, fused, matmul, 64);
      assert.ok(job, `${direction}: the problem fits one chunk`);
      assert.equal(job.candidates.map((c) => c.choice), [false, true]);
      const kernels = job.candidates.map((c) => ("kernels" in c ? c.kernels.length : 1));
      assert.equal(kernels, direction === "forward" ? [1, 3] : [3, 8], `${direction}: kernels a run`);
      const tuned = await tuneChoice(gpu, `test attention ${direction} path`, job, FAST);
      assert.ok(tuned, `${direction}: a choice`);
      assert.equal(tuned.outcome.rejected, [], `${direction}: both candidates pass their checks`);
      assert.equal(tuned.outcome.timings.map((t) => t.name).sort(), ["fused kernels", "score matrix on the matmul kernels"]);
      assert.ok(tuned.outcome.timings.every((t) => t.ms > 0), `${direction}: timed`);
      assert.is(tuned.choice, tuned.outcome.chosen === "score matrix on the matmul kernels");
    }
  }),
);

test(
  "SFT_ATTENTION decides the engine's path where set; a device without subgroup matrices tunes none",
  withGpu(async (gpu) => {
    assert.equal(engineAttentionScores(gpu, { SFT_ATTENTION: "scores" }), { forward: true, backward: true });
    assert.equal(engineAttentionScores(gpu, { SFT_ATTENTION: "scalar" }), { forward: false, backward: false });
    const dir = mkdtempSync(join(tmpdir(), "sftc-path-tuning-"));
    try {
      const outcomes = await tuneAttentionPaths(gpu, {}, { ...FAST, file: join(dir, "tuning.json") });
      if (gpu.adapter.subgroupMatrixConfigs.length === 0) {
        assert.equal(outcomes, [], "no subgroup matrices: the fused kernels stay");
        assert.equal(engineAttentionScores(gpu, {}), { forward: [], backward: [] });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }),
);

test.run();
