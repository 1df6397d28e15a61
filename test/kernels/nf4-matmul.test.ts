// The NF4 matmul (B decoded from 4-bit codes and double-quantized absmax inside the kernel)
// against its float64 reference: forward (x Wᵀ) and input-gradient (dY W) layouts, weights
// whose size is no multiple of 64 and that span several absmax scale blocks, both strategies;
// and the kernel's decoded weight equals the host dequantization within one f32 rounding.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { nf4Bindings, uploadNf4Tables, uploadNf4Weight, type Nf4Weight } from "../../runtime/execute/nf4-weights.ts";
import { dequantizeNf4 } from "../../stdlib/quant/nf4.ts";
import { Random } from "../../runtime/random.ts";
import { matmulKernelsOf, matmulUniforms, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import type { MatmulStrategy } from "../../stdlib/kernels/matmul-strategy.ts";
import { nf4MatmulKernel, nf4MatmulRef } from "../../stdlib/kernels/nf4-matmul.ts";
import { assertClose } from "../support/numeric.ts";
import { randomValues, withGpu } from "./gpu-harness.ts";

const test = suite("nf4 matmul");

// (rows, cols) of the stored weight: 37·70 = 2590 weights (41 blocks, the last partial);
// 150·130 = 19500 weights (305 blocks: two absmax scale blocks); 64·64 aligned (vec4 loads).
const WEIGHTS: [number, number][] = [
  [37, 70],
  [150, 130],
  [64, 64],
];

async function check(gpu: GpuDevice, w: Nf4Weight, tables: ReturnType<typeof uploadNf4Tables>, rows: number, cols: number, transB: boolean, strategy: MatmulStrategy, rng: Random): Promise<number> {
  // transB: C (M, rows) = X (M, cols) Wᵀ; else C (M, cols) = dY (M, rows) W
  const m = 9;
  const [n, k] = transB ? [rows, cols] : [cols, rows];
  const s: MatmulShape = { batch: 1, m, n, k, strideB: 0 };
  const o = { transA: false, transB };
  const a = randomValues(rng, m * k);
  const ta = uploadTensor(gpu, "f32", [m, k], a, "a");
  const tc = createTensor(gpu, "f32", [m, n], "c");
  const spec = nf4MatmulKernel({ a: "f32", b: "f32", out: "f32", ...o }, s, matmulKernelsOf(strategy));
  await runKernel(gpu, spec, matmulUniforms(s, o), { a: ta, c: tc, ...nf4Bindings(w, tables) });
  const out = await readFloats(gpu, tc);
  ta.destroy();
  tc.destroy();
  return assertClose(out, nf4MatmulRef(a, w.host, o, s), 1e-5, `${rows}x${cols} ${transB ? "x Wᵀ" : "dY W"} ${strategy}`);
}

test(
  "x Wᵀ and dY W with W in NF4 match the float64 reference (registers and tiled strategies)",
  withGpu(async (gpu) => {
    const rng = new Random(11);
    const tables = uploadNf4Tables(gpu);
    for (const [rows, cols] of WEIGHTS) {
      const w = uploadNf4Weight(gpu, randomValues(rng, rows * cols, "f32", 0.05), `w ${rows}x${cols}`);
      for (const strategy of ["registers", "tiled"] as const) {
        for (const transB of [true, false]) await check(gpu, w, tables, rows, cols, transB, strategy, rng);
      }
      for (const t of [w.codes, w.absmax, w.scales, w.offset]) t.destroy();
    }
    tables.destroy();
  }),
);

test(
  "the kernel decodes every weight to the host dequantization within one f32 rounding (identity times W)",
  withGpu(async (gpu) => {
    const rng = new Random(12);
    const tables = uploadNf4Tables(gpu);
    const [rows, cols] = [150, 130];
    const w = uploadNf4Weight(gpu, randomValues(rng, rows * cols, "f32", 0.05), "w");
    const identity = new Float64Array(rows * rows);
    for (let i = 0; i < rows; i++) identity[i * rows + i] = 1;
    const s: MatmulShape = { batch: 1, m: rows, n: cols, k: rows, strideB: 0 };
    const o = { transA: false, transB: false };
    const ta = uploadTensor(gpu, "f32", [rows, rows], identity, "identity");
    const tc = createTensor(gpu, "f32", [rows, cols], "c");
    await runKernel(gpu, nf4MatmulKernel({ a: "f32", b: "f32", out: "f32", ...o }, s, matmulKernelsOf("registers")), matmulUniforms(s, o), { a: ta, c: tc, ...nf4Bindings(w, tables) });
    const decoded = await readFloats(gpu, tc);
    const host = dequantizeNf4(w.host);
    let worst = 0;
    for (let i = 0; i < host.length; i++) {
      // the absmax is a*scale + offset: a fused multiply-add may skip one rounding of the product
      const ulp = Math.abs(host[i]) * 2 ** -23 * 2;
      const error = Math.abs(decoded[i] - host[i]);
      assert.ok(error <= ulp, `weight ${i}: kernel ${decoded[i]}, host ${host[i]}`);
      worst = Math.max(worst, host[i] === 0 ? 0 : error / Math.abs(host[i]));
    }
    console.log(`    ${host.length} weights, largest relative difference ${worst.toExponential(2)}`);
    for (const t of [ta, tc, w.codes, w.absmax, w.scales, w.offset, tables]) t.destroy();
  }),
);

test.run();
