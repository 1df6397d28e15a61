// SiLU, GELU (tanh) and SwiGLU kernels against their float64 references, forward and backward.
import { suite } from "uvu";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import {
  activationBackward,
  activationBackwardRef,
  activationForward,
  activationForwardRef,
  joinHalves,
  splitHalves,
  swigluBackward,
  swigluBackwardRef,
  swigluForward,
  swigluForwardRef,
  type Activation,
} from "../../stdlib/kernels/activations.ts";
import { assertClose } from "../support/numeric.ts";
import { floatDTypes, randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";

const test = suite("activations");
const SIZES = [1, 7, 256, 1000];

for (const act of ["silu", "gelu_tanh"] as Activation[]) {
  test(
    `${act} forward and backward`,
    withGpu(async (gpu) => {
      const rng = new Random(11);
      for (const dtype of floatDTypes(gpu)) {
        for (const n of SIZES) {
          const xs = randomValues(rng, n, dtype, 3);
          const dys = randomValues(rng, n);
          const x = uploadTensor(gpu, dtype, [n], xs);
          const dy = uploadTensor(gpu, "f32", [n], dys);
          const y = createTensor(gpu, "f32", [n]);
          const dx = createTensor(gpu, "f32", [n]);
          await runKernel(gpu, activationForward(act, dtype), { n }, { x, y });
          await runKernel(gpu, activationBackward(act, dtype), { n }, { x, dy, dx });
          const tol = toleranceFor("f32"); // the reference sees the same rounded inputs; math is f32
          assertClose(await readFloats(gpu, y), activationForwardRef(act, xs), tol, `${act} y ${dtype} n=${n}`);
          assertClose(await readFloats(gpu, dx), activationBackwardRef(act, xs, dys), tol, `${act} dx ${dtype} n=${n}`);
        }
      }
    }),
  );
}

test(
  "activation f16 output",
  withGpu(async (gpu) => {
    if (!gpu.hasF16) return;
    const n = 300;
    const xs = randomValues(new Random(3), n);
    const x = uploadTensor(gpu, "f32", [n], xs);
    const y = createTensor(gpu, "f16", [n]);
    await runKernel(gpu, activationForward("silu", "f32", "f16"), { n }, { x, y });
    assertClose(await readFloats(gpu, y), activationForwardRef("silu", xs), toleranceFor("f16"), "silu y f16 out");
  }),
);

test(
  "swiglu separate and fused forms",
  withGpu(async (gpu) => {
    const rng = new Random(12);
    for (const dtype of floatDTypes(gpu)) {
      for (const [rows, cols] of [[1, 1], [3, 5], [4, 64]]) {
        const n = rows * cols;
        const as = randomValues(rng, n, dtype, 2);
        const bs = randomValues(rng, n, dtype);
        const dys = randomValues(rng, n);
        const ref = swigluForwardRef(as, bs);
        const grads = swigluBackwardRef(as, bs, dys);
        const tol = toleranceFor("f32");
        const dy = uploadTensor(gpu, "f32", [rows, cols], dys);

        const a = uploadTensor(gpu, dtype, [rows, cols], as);
        const b = uploadTensor(gpu, dtype, [rows, cols], bs);
        const y = createTensor(gpu, "f32", [rows, cols]);
        const da = createTensor(gpu, "f32", [rows, cols]);
        const db = createTensor(gpu, "f32", [rows, cols]);
        await runKernel(gpu, swigluForward(dtype, false), { n }, { a, b, y });
        await runKernel(gpu, swigluBackward(dtype, false), { n }, { a, b, dy, da, db });
        assertClose(await readFloats(gpu, y), ref, tol, `swiglu y ${dtype} ${rows}x${cols}`);
        assertClose(await readFloats(gpu, da), grads.da, tol, `swiglu da ${dtype} ${rows}x${cols}`);
        assertClose(await readFloats(gpu, db), grads.db, tol, `swiglu db ${dtype} ${rows}x${cols}`);

        const x = uploadTensor(gpu, dtype, [rows, 2 * cols], joinHalves(as, bs, rows, cols));
        const yf = createTensor(gpu, "f32", [rows, cols]);
        const dx = createTensor(gpu, "f32", [rows, 2 * cols]);
        await runKernel(gpu, swigluForward(dtype, true), { n, cols }, { x, y: yf });
        await runKernel(gpu, swigluBackward(dtype, true), { n, cols }, { x, dy, dx });
        assertClose(await readFloats(gpu, yf), ref, tol, `swiglu fused y ${dtype} ${rows}x${cols}`);
        const halves = splitHalves(Float64Array.from(await readFloats(gpu, dx)), rows, cols);
        assertClose(halves.a, grads.da, tol, `swiglu fused da ${dtype} ${rows}x${cols}`);
        assertClose(halves.b, grads.db, tol, `swiglu fused db ${dtype} ${rows}x${cols}`);
      }
    }
  }),
);

test.run();
