// The decode matmul (few rows times W stored (N, K)) against the float64 reference: M 1, 3 and 8,
// N off the workgroup's 4 columns, K off 4 (scalar loads) and a multiple (vec4 loads), f32/f16/bf16
// W, transposed A, bias, accumulation, strided batches, an NF4 W, 256 invocations a workgroup; and
// which launches choose it.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { nf4Bindings, uploadNf4Tables, uploadNf4Weight } from "../../runtime/execute/nf4-weights.ts";
import { Random } from "../../runtime/random.ts";
import { DEFAULT_GEMV, gemvFits, gemvSpec, type GemvVariant } from "../../stdlib/kernels/matmul-gemv.ts";
import { fixedSubgroupSize } from "../../runtime/gpu/gemv-tuning.ts";
import { matmulKernel, matmulKernelsOf, matmulRef, matmulUniforms, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { nf4MatmulKernel, nf4MatmulRef } from "../../stdlib/kernels/nf4-matmul.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { assertClose } from "../support/numeric.ts";
import { randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";

const test = suite("matmul gemv");

// Sizes of A, B and C as the shape's strides and leading dimensions lay them out.
function extent(batchStride: number, batch: number, rows: number, ld: number, cols: number): number {
  return (batch - 1) * batchStride + (rows - 1) * ld + cols;
}

async function check(gpu: GpuDevice, rng: Random, o: MatmulOptions, s: MatmulShape, tol: number, variant?: GemvVariant): Promise<void> {
  const u = matmulUniforms(s, o);
  const sizeA = o.transA ? extent(u.strideA, s.batch, s.k, u.lda, s.m) : extent(u.strideA, s.batch, s.m, u.lda, s.k);
  const sizeB = extent(u.strideB, s.batch, s.n, u.ldb, s.k);
  const sizeC = extent(u.strideC, s.batch, s.m, u.ldc, s.n);
  const as = randomValues(rng, sizeA, o.a);
  const bs = randomValues(rng, sizeB, o.b);
  const bias = o.bias ? randomValues(rng, s.n, o.bias) : undefined;
  const c0 = o.accumulate ? randomValues(rng, sizeC, o.out) : undefined;
  const spec = variant ? gemvSpec(o, s, variant) : matmulKernel(o, s, "tiled");
  assert.is(spec.name, "matmul_gemv");
  const c = c0 ? uploadTensor(gpu, o.out, [sizeC], c0) : createTensor(gpu, o.out, [sizeC]);
  const tensors = { a: uploadTensor(gpu, o.a, [sizeA], as), b: uploadTensor(gpu, o.b, [sizeB], bs), c, ...(bias ? { bias: uploadTensor(gpu, o.bias!, [s.n], bias) } : {}) };
  await runKernel(gpu, spec, u, tensors);
  const out = await readFloats(gpu, c);
  for (const t of Object.values(tensors)) t.destroy();
  const label = `gemv ${spec.workgroupSize[0]} invocations${variant?.subgroupSize ? ` (subgroups of ${variant.subgroupSize})` : ""}${variant?.unroll === 2 ? ", 2 steps" : ""} ${o.a}x${o.b} tA=${+o.transA} vec=${+!!spec.variant.vecA}${+!!spec.variant.vecB} ${s.batch}x${s.m}x${s.n}x${s.k}${o.bias ? " bias" : ""}${c0 ? " acc" : ""}`;
  const ref = matmulRef(as, bs, o, s, { bias, c0 });
  // entries of C outside the strided outputs are zero in both (or c0, untouched)
  assertClose(out.subarray(0, ref.length), ref, tol, label);
}

const f32: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true };

test(
  "f32: M 1, 3, 8; N off 4 columns; K off 4 (scalar) and a multiple (vec4); transposed A",
  withGpu(async (gpu) => {
    const rng = new Random(31);
    for (const m of [1, 3, 8])
      for (const [n, k] of [
        [37, 128],
        [37, 131],
      ])
        await check(gpu, rng, f32, { batch: 1, m, n, k }, toleranceFor("f32"));
    await check(gpu, rng, { ...f32, transA: true }, { batch: 1, m: 3, n: 9, k: 64 }, toleranceFor("f32"));
  }),
);

test(
  "f16 and bf16 W (and A) accumulate in f32",
  withGpu(async (gpu) => {
    const rng = new Random(32);
    const pairs: [StorageDType, StorageDType][] = gpu.hasF16 ? [["f32", "f16"], ["f32", "bf16"], ["bf16", "f16"]] : [["f32", "bf16"]];
    for (const [a, b] of pairs) await check(gpu, rng, { ...f32, a, b }, { batch: 1, m: 3, n: 21, k: 96 }, toleranceFor("f32"));
  }),
);

test(
  "256 invocations per workgroup (a tuning candidate): f32 and bf16 W, M 1 and 3, K over several steps, off 4 and a multiple",
  withGpu(async (gpu) => {
    const rng = new Random(35);
    for (const b of ["f32", "bf16"] as const)
      for (const m of [1, 3])
        for (const k of [2100, 2101]) await check(gpu, rng, { ...f32, b }, { batch: 1, m, n: 9, k }, toleranceFor("f32"), { invocations: 256 });
  }),
);

test(
  "sums within subgroups first (subgroupAdd, then one barrier): 64 and 256 invocations, M 1, 3 and 8, K off 4 and a multiple, f32 and bf16 W",
  withGpu(async (gpu) => {
    const lanes = fixedSubgroupSize(gpu);
    if (!lanes) return console.log("    skipped: no subgroups of one fixed size");
    const rng = new Random(36);
    for (const invocations of [64, 256])
      for (const b of ["f32", "bf16"] as const)
        for (const m of [1, 3, 8])
          for (const k of [2100, 2101]) await check(gpu, rng, { ...f32, b }, { batch: 1, m, n: 9, k }, toleranceFor("f32"), { invocations, subgroupSize: lanes });
  }),
);

test(
  "two K steps an iteration (an odd or even number of steps per invocation, then the single step): tree and subgroup sums, f32 and bf16 W, M 1, 3 and 8, K off 4 and a multiple",
  withGpu(async (gpu) => {
    const lanes = fixedSubgroupSize(gpu);
    const rng = new Random(37);
    const variants: GemvVariant[] = [{ invocations: 64, unroll: 2 }, ...(lanes ? [{ invocations: 128, subgroupSize: lanes, unroll: 2 as const }] : [])];
    for (const variant of variants)
      for (const b of ["f32", "bf16"] as const)
        for (const m of [1, 3, 8])
          for (const k of [2100, 2101, 260]) await check(gpu, rng, { ...f32, b }, { batch: 1, m, n: 9, k }, toleranceFor("f32"), variant);
  }),
);

test(
  "bias, alpha, accumulation (beta) and strided batches",
  withGpu(async (gpu) => {
    const rng = new Random(33);
    await check(gpu, rng, { ...f32, bias: "f32", accumulate: true }, { batch: 1, m: 8, n: 13, k: 64, alpha: 0.5, beta: 2 }, toleranceFor("f32"));
    // strided views: rows of A, W and C further apart than they are wide, batch strides beyond that
    await check(gpu, rng, f32, { batch: 3, m: 2, n: 10, k: 24, lda: 28, ldb: 32, ldc: 12, strideA: 60, strideB: 324, strideC: 30 }, toleranceFor("f32"));
    await check(gpu, rng, { ...f32, bias: "f32" }, { batch: 2, m: 1, n: 6, k: 11, strideB: 0 }, toleranceFor("f32"));
  }),
);

test(
  "NF4 W: 4-bit codes decoded by the B accessor, 32 a step where K is a multiple of 32 and M at most 2 (one to several steps an invocation), else the vec4 and scalar paths; tree sums, and subgroup sums where the adapter's subgroups have one size",
  withGpu(async (gpu) => {
    const rng = new Random(34);
    const tables = uploadNf4Tables(gpu);
    const lanes = fixedSubgroupSize(gpu);
    const variants: GemvVariant[] = [DEFAULT_GEMV, ...(lanes ? [{ invocations: 128, subgroupSize: lanes }] : [])];
    for (const variant of variants)
      for (const [m, n, k, step] of [
        [1, 150, 128, 32],
        [2, 9, 4160, 32],
        [8, 9, 4160, 4],
        [3, 37, 70, 4],
        [1, 5, 100, 4],
      ]) {
        const w = uploadNf4Weight(gpu, randomValues(rng, n * k, "f32", 0.05), `w ${n}x${k}`);
        const s: MatmulShape = { batch: 1, m, n, k, strideB: 0 };
        const a = randomValues(rng, m * k);
        const ta = uploadTensor(gpu, "f32", [m, k], a, "a");
        const tc = createTensor(gpu, "f32", [m, n], "c");
        const spec = nf4MatmulKernel(f32, s, matmulKernelsOf("tiled", variant));
        assert.is(spec.name, "matmul_gemv_nf4");
        assert.is(spec.variant.b32, step === 32, `gemv nf4 ${m}x${n}x${k}: ${step} elements a step`);
        await runKernel(gpu, spec, matmulUniforms(s, f32), { a: ta, c: tc, ...nf4Bindings(w, tables) });
        const out = await readFloats(gpu, tc);
        const label = `gemv nf4 ${m}x${n}x${k} ${step} a step, vecB=${+!!spec.variant.vecB} ${variant.invocations} invocations${variant.subgroupSize ? ", subgroup sums" : ""}`;
        assertClose(out, nf4MatmulRef(a, w.host, f32, s), 1e-5, label);
        for (const t of [ta, tc, w.codes, w.absmax, w.scales, w.offset]) t.destroy();
      }
    tables.destroy();
  }),
);

test("chosen on GPUs for W stored (N, K) and at most 8 rows, unless a shared W would be read by many rows", () => {
  const shape = (m: number, extra: Partial<MatmulShape> = {}): MatmulShape => ({ batch: 1, m, n: 64, k: 64, ...extra });
  assert.ok(gemvFits({ transB: true }, shape(1)));
  assert.ok(gemvFits({ transB: true }, shape(8)));
  assert.not.ok(gemvFits({ transB: true }, shape(9)));
  assert.not.ok(gemvFits({ transB: false }, shape(1)));
  assert.ok(gemvFits({ transB: true }, shape(1, { batch: 32 })), "a W per batch item (attention heads)");
  assert.not.ok(gemvFits({ transB: true }, shape(4, { batch: 4, strideB: 0 })), "one W for 16 rows");
  assert.is(matmulKernel(f32, shape(1), "tiled").name, "matmul_gemv");
  assert.is.not(matmulKernel(f32, shape(9), "tiled").name, "matmul_gemv");
  // CPU adapters keep the registers kernel: lavapipe decodes the quickstart model faster with it
  assert.is(matmulKernel(f32, shape(1), "registers").name, "matmul_registers");
});

test.run();
