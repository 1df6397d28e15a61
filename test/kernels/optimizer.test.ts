// AdamW, gradient-norm clipping and learning-rate schedules: the float64 references against
// PyTorch goldens (spec/golden/make_optimizer.py), the kernels against the references.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CommandBatch, runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor, type GpuTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { adamwRef, adamwStep, adamwUniforms, type AdamWHyper } from "../../stdlib/kernels/adamw.ts";
import { gradNormFinalize, gradNormPartial, gradNormPartials, gradNormRef, gradScale } from "../../stdlib/kernels/grad-clip.ts";
import { learningRate, type ScheduleKind } from "../../stdlib/kernels/lr-schedule.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, randomValues, withGpu } from "./gpu-harness.ts";

const test = suite("optimizer");
const golden = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../spec/golden/optimizer.json"), "utf8"));

test("learning-rate schedules match LambdaLR with the Hugging Face lambdas", () => {
  for (const s of golden.schedules as { kind: ScheduleKind; warmup: number; total: number; base_lr: number; lrs: number[] }[]) {
    const ours = s.lrs.map((_, step) => learningRate({ kind: s.kind, warmupSteps: s.warmup, totalSteps: s.total }, s.base_lr, step));
    assertClose(ours, s.lrs, 1e-12, `schedule ${s.kind}`);
  }
});

const hyper: AdamWHyper = { lr: golden.adamw.lr, beta1: golden.adamw.beta1, beta2: golden.adamw.beta2, eps: golden.adamw.eps, weightDecay: golden.adamw.weight_decay };

test("AdamW reference matches torch.optim.AdamW over three steps", () => {
  const a = golden.adamw;
  const p = Float64Array.from(a.p0);
  const m = new Float64Array(p.length);
  const v = new Float64Array(p.length);
  a.grads.forEach((g: number[], k: number) => adamwRef(p, Float64Array.from(g), m, v, k + 1, hyper));
  assertClose(p, a.p, 1e-12, "adamw p ref");
  assertClose(m, a.m, 1e-12, "adamw m ref");
  assertClose(v, a.v, 1e-12, "adamw v ref");
});

test("clip reference matches torch.nn.utils.clip_grad_norm_", () => {
  const [norm, coef] = gradNormRef(golden.clip.grads, golden.clip.max_norm);
  assert.ok(Math.abs(norm - golden.clip.norm) < 1e-12 * golden.clip.norm, `norm ${norm} vs ${golden.clip.norm}`);
  golden.clip.grads.forEach((g: number[], i: number) => assertClose(g.map((x) => x * coef), golden.clip.clipped[i], 1e-12, `clipped ref ${i}`));
});

test(
  "AdamW kernel follows the reference over several steps, with a gradient scale",
  withGpu(async (gpu) => {
    const rng = new Random(60);
    for (const n of [1, 37, 5000]) {
      const p = randomValues(rng, n);
      const m = new Float64Array(n);
      const v = new Float64Array(n);
      const tp = uploadTensor(gpu, "f32", [n], p);
      const tm = createTensor(gpu, "f32", [n]);
      const tv = createTensor(gpu, "f32", [n]);
      for (let step = 1; step <= 3; step++) {
        const g = randomValues(rng, n);
        adamwRef(p, g, m, v, step, hyper, 0.5);
        await runKernel(gpu, adamwStep(false), adamwUniforms(n, step, hyper, 0.5), { p: tp, g: uploadTensor(gpu, "f32", [n], g), m: tm, v: tv });
      }
      assertClose(await readFloats(gpu, tp), p, 1e-5, `adamw p n=${n}`);
      assertClose(await readFloats(gpu, tm), m, 1e-5, `adamw m n=${n}`);
      assertClose(await readFloats(gpu, tv), v, 1e-5, `adamw v n=${n}`);
    }
  }),
);

/** Records stage 1 for every buffer and stage 2; returns the [norm, coefficient] tensor. */
function recordGradNorm(gpu: GpuDevice, batch: CommandBatch, grads: GpuTensor[], maxNorm: number): GpuTensor {
  const count = grads.reduce((a, g) => a + gradNormPartials(g.numel), 0);
  const partials = createTensor(gpu, "f32", [count]);
  let offset = 0;
  for (const g of grads) {
    batch.dispatch(gradNormPartial("f32"), { n: g.numel, offset }, { g, partials });
    offset += gradNormPartials(g.numel);
  }
  const clip = createTensor(gpu, "f32", [2]);
  batch.dispatch(gradNormFinalize(), { count, max_norm: maxNorm }, { partials, clip });
  return clip;
}

test(
  "global gradient norm over many buffers, clip scale, and AdamW reading the clip coefficient",
  withGpu(async (gpu) => {
    const rng = new Random(61);
    const sizes = [1, 5, 4096, 10000, 333];
    for (const maxNorm of [1.0, 1e4]) {
      const gs = sizes.map((n) => randomValues(rng, n, "f32", 2));
      const tensors = gs.map((g) => uploadTensor(gpu, "f32", [g.length], g));
      const batch = new CommandBatch(gpu);
      const clip = recordGradNorm(gpu, batch, tensors, maxNorm);
      for (const g of tensors) batch.dispatch(gradScale(), { n: g.numel }, { g, clip });
      await batch.submit();
      const [norm, coef] = gradNormRef(gs, maxNorm);
      assertClose(await readFloats(gpu, clip), [norm, coef], 1e-6, `norm and coefficient, max_norm=${maxNorm}`);
      for (let i = 0; i < gs.length; i++) assertClose(await readFloats(gpu, tensors[i]), gs[i].map((x) => x * coef), 1e-6, `clipped n=${sizes[i]}`);
    }

    const n = 300;
    const g = randomValues(rng, n, "f32", 5);
    const p = randomValues(rng, n);
    const [, coef] = gradNormRef([g], 0.3);
    const tg = uploadTensor(gpu, "f32", [n], g);
    const tp = uploadTensor(gpu, "f32", [n], p);
    const batch = new CommandBatch(gpu);
    const clip = recordGradNorm(gpu, batch, [tg], 0.3);
    batch.dispatch(adamwStep(true), adamwUniforms(n, 1, hyper), { p: tp, g: tg, m: createTensor(gpu, "f32", [n]), v: createTensor(gpu, "f32", [n]), clip });
    await batch.submit();
    adamwRef(p, g, new Float64Array(n), new Float64Array(n), 1, hyper, coef);
    assertClose(await readFloats(gpu, tp), p, 1e-5, "adamw with clip coefficient from the GPU");
  }),
);

test(
  "gradient norm is deterministic",
  withGpu(async (gpu) => {
    const gs = [5000, 77].map((n) => randomValues(new Random(62 + n), n));
    const once = async () => {
      const batch = new CommandBatch(gpu);
      const clip = recordGradNorm(gpu, batch, gs.map((g) => uploadTensor(gpu, "f32", [g.length], g)), 1);
      await batch.submit();
      return readFloats(gpu, clip);
    };
    assertBitwiseEqual(await once(), await once(), "grad norm");
  }),
);

test.run();
