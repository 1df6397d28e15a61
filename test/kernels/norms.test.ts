// RMSNorm and LayerNorm kernels against float64 references, forward and backward; the
// backward references are themselves checked against finite differences of the forward.
import { suite } from "uvu";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { normBackwardInput, normBackwardRef, normBackwardWeight, normForward, normForwardRef, type NormKind } from "../../stdlib/kernels/norms.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, dot, floatDTypes, numericGradient, randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";

const test = suite("norms");
const KINDS: NormKind[] = ["rms", "layer"];
const SHAPES = [[1, 1], [3, 7], [4, 300], [2, 1000]];
const EPS = 1e-5;

test("backward references match finite differences of the forward references", () => {
  const rng = new Random(30);
  const [rows, cols] = [3, 5];
  for (const kind of KINDS) {
    const x = randomValues(rng, rows * cols, "f32", 2);
    const w = randomValues(rng, cols);
    const b = randomValues(rng, cols);
    const dy = randomValues(rng, rows * cols);
    const grads = normBackwardRef(kind, x, w, dy, rows, cols, EPS);
    const loss = (xx: Float64Array, ww: Float64Array, bb: Float64Array) => dot(normForwardRef(kind, xx, ww, kind === "layer" ? bb : undefined, rows, cols, EPS).y, dy);
    assertClose(grads.dx, numericGradient((v) => loss(v, w, b), x), 1e-6, `${kind} dx ref`);
    assertClose(grads.dw, numericGradient((v) => loss(x, v, b), w), 1e-6, `${kind} dw ref`);
    if (kind === "layer") assertClose(grads.db, numericGradient((v) => loss(x, w, v), b), 1e-6, `${kind} db ref`);
  }
});

async function runNorm(gpu: GpuDevice, kind: NormKind, dtype: StorageDType, rows: number, cols: number, seed: number) {
  const rng = new Random(seed);
  const layer = kind === "layer";
  const xs = randomValues(rng, rows * cols, dtype, 2);
  const ws = randomValues(rng, cols, dtype);
  const bs = randomValues(rng, cols, dtype);
  const dys = randomValues(rng, rows * cols);
  const x = uploadTensor(gpu, dtype, [rows, cols], xs);
  const w = uploadTensor(gpu, dtype, [cols], ws);
  const b = uploadTensor(gpu, dtype, [cols], bs);
  const dy = uploadTensor(gpu, "f32", [rows, cols], dys);
  const out = dtype === "bf16" ? "f32" : dtype;
  const y = createTensor(gpu, out, [rows, cols]);
  const mean = createTensor(gpu, "f32", [rows]);
  const rstd = createTensor(gpu, "f32", [rows]);
  const dx = createTensor(gpu, "f32", [rows, cols]);
  const dw = createTensor(gpu, "f32", [cols]);
  const db = createTensor(gpu, "f32", [cols]);
  const u = { rows, cols, eps: EPS };
  await runKernel(gpu, normForward(kind, dtype, dtype), u, layer ? { x, w, b, y, mean, rstd } : { x, w, y, rstd });
  await runKernel(gpu, normBackwardInput(kind, dtype, dtype), u, layer ? { x, w, dy, mean, rstd, dx } : { x, w, dy, rstd, dx });
  await runKernel(gpu, normBackwardWeight(kind, dtype), { rows, cols }, layer ? { x, dy, mean, rstd, dw, db } : { x, dy, rstd, dw });
  return {
    inputs: { xs, ws, bs, dys },
    y: await readFloats(gpu, y),
    rstd: await readFloats(gpu, rstd),
    dx: await readFloats(gpu, dx),
    dw: await readFloats(gpu, dw),
    db: await readFloats(gpu, db),
  };
}

for (const kind of KINDS) {
  test(
    `${kind}norm forward and backward`,
    withGpu(async (gpu) => {
      for (const dtype of floatDTypes(gpu)) {
        for (const [rows, cols] of SHAPES) {
          const got = await runNorm(gpu, kind, dtype, rows, cols, rows * 1000 + cols);
          const { xs, ws, bs, dys } = got.inputs;
          const ref = normForwardRef(kind, xs, ws, kind === "layer" ? bs : undefined, rows, cols, EPS);
          const grads = normBackwardRef(kind, xs, ws, dys, rows, cols, EPS);
          const label = `${kind} ${dtype} ${rows}x${cols}`;
          assertClose(got.y, ref.y, toleranceFor(dtype === "bf16" ? "f32" : dtype), `${label} y`); // only f16 output rounds
          assertClose(got.rstd, ref.rstd, 1e-5, `${label} rstd`);
          // cols = 1 is ill-conditioned: LayerNorm's xhat is 0 and RMSNorm's dx is g * r * eps / (x^2 + eps),
          // both pure cancellation in f32, so only a loose bound holds there
          const tol = cols === 1 ? 1e-3 : 1e-5;
          assertClose(got.dx, grads.dx, tol, `${label} dx`);
          assertClose(got.dw, grads.dw, tol, `${label} dw`);
          if (kind === "layer") assertClose(got.db, grads.db, 1e-5, `${label} db`);
        }
      }
    }),
  );
}

test(
  "norm weight gradient accumulates and is deterministic",
  withGpu(async (gpu) => {
    const first = await runNorm(gpu, "rms", "f32", 5, 37, 7);
    const second = await runNorm(gpu, "rms", "f32", 5, 37, 7);
    assertBitwiseEqual(first.dx, second.dx, "rms dx");
    assertBitwiseEqual(first.dw, second.dw, "rms dw");
    const { xs, dys } = first.inputs;
    const x = uploadTensor(gpu, "f32", [5, 37], xs);
    const dy = uploadTensor(gpu, "f32", [5, 37], dys);
    const rstd = uploadTensor(gpu, "f32", [5], first.rstd);
    const dw = uploadTensor(gpu, "f32", [37], first.dw);
    await runKernel(gpu, normBackwardWeight("rms", "f32", true), { rows: 5, cols: 37 }, { x, dy, rstd, dw });
    assertClose(await readFloats(gpu, dw), Float64Array.from(first.dw, (v) => 2 * v), 1e-6, "rms dw accumulated twice");
  }),
);

test.run();
