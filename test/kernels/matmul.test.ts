// Tiled matmul against the float64 reference: every transpose combination, vec4 and scalar
// paths, sizes off the 64x64 tile, batches with broadcast operands, bias and accumulation.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { matmulKernel, matmulRef, matmulUniforms, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import type { MatmulStrategy } from "../../stdlib/kernels/matmul-strategy.ts";
import { assertClose } from "../support/numeric.ts";
import { assertBitwiseEqual, randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";

const test = suite("matmul");

// Odd shapes take the scalar path, aligned ones the vec4 path (each a pipeline: lavapipe takes
// seconds to compile one cold, so the set is small). None is a multiple of the 64x64 tile but one.
const SCALAR_SHAPES: MatmulShape[] = [
  { batch: 1, m: 1, n: 1, k: 1 },
  { batch: 1, m: 5, n: 7, k: 3 },
  { batch: 1, m: 70, n: 33, k: 19 },
];
const ALIGNED_SHAPES: MatmulShape[] = [
  { batch: 2, m: 64, n: 64, k: 32 },
  { batch: 3, m: 68, n: 36, k: 40, strideB: 0 }, // one B for every batch item (a shared weight)
];
const SHAPES = [...SCALAR_SHAPES, ...ALIGNED_SHAPES];

async function check(
  gpu: GpuDevice,
  rng: Random,
  o: MatmulOptions,
  s: MatmulShape,
  tol: number,
  strategy: MatmulStrategy = "tiled",
): Promise<{ spec: string; out: Float32Array }> {
  const sizeA = s.strideA === 0 ? s.m * s.k : s.batch * s.m * s.k;
  const sizeB = s.strideB === 0 ? s.k * s.n : s.batch * s.k * s.n;
  const as = randomValues(rng, sizeA, o.a);
  const bs = randomValues(rng, sizeB, o.b);
  const bias = o.bias ? randomValues(rng, s.n, o.bias) : undefined;
  const c0 = o.accumulate ? randomValues(rng, s.batch * s.m * s.n, o.out) : undefined;
  // the low-rank epilogue's T and L, as large as their layout reaches
  const lr = s.lowRank;
  const lowRank = o.lowRank && lr && {
    t: randomValues(rng, (s.batch - 1) * lr.strideT + (lr.transT ? lr.rank : s.m) * lr.ldt, o.lowRank.t),
    l: randomValues(rng, (s.batch - 1) * lr.strideL + (lr.transL ? s.n : lr.rank) * lr.ldl, o.lowRank.l),
    layout: lr,
  };
  const spec = matmulKernel(o, s, strategy);
  const c = c0 ? uploadTensor(gpu, o.out, [s.batch, s.m, s.n], c0) : createTensor(gpu, o.out, [s.batch, s.m, s.n]);
  const tensors = {
    a: uploadTensor(gpu, o.a, [sizeA], as),
    b: uploadTensor(gpu, o.b, [sizeB], bs),
    c,
    ...(bias ? { bias: uploadTensor(gpu, o.bias!, [s.n], bias) } : {}),
    ...(lowRank ? { lora_t: uploadTensor(gpu, o.lowRank!.t, [lowRank.t.length], lowRank.t), lora_l: uploadTensor(gpu, o.lowRank!.l, [lowRank.l.length], lowRank.l) } : {}),
  };
  await runKernel(gpu, spec, matmulUniforms(s, o), tensors);
  const out = await readFloats(gpu, c);
  const label = `${strategy} ${o.a}x${o.b}->${o.out} tA=${+o.transA} tB=${+o.transB} vec=${+!!spec.variant.vecA}${+!!spec.variant.vecB} ${s.batch}x${s.m}x${s.n}x${s.k}${o.bias ? " bias" : ""}${lowRank ? ` low-rank ${lr!.rank}` : ""}${c0 ? " acc" : ""}`;
  assertClose(out, matmulRef(as, bs, o, s, { bias, c0, lowRank }), tol, label);
  return { spec: label, out };
}

test(
  "f32, every transpose combination and shape",
  withGpu(async (gpu) => {
    const rng = new Random(21);
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const s of SHAPES) await check(gpu, rng, { a: "f32", b: "f32", out: "f32", transA, transB }, s, toleranceFor("f32"));
  }),
);

test(
  "f16 and bf16 inputs accumulate in f32; f16 output",
  withGpu(async (gpu) => {
    const rng = new Random(22);
    // Each dtype pair is its own pipeline, and lavapipe compiles each for a second or two: pairs
    // chosen so every dtype is an A and a B operand, on the vec4 (aligned) and scalar paths.
    const pairs = gpu.hasF16 ? [["f16", "f16"], ["bf16", "bf16"], ["f32", "bf16"], ["bf16", "f16"]] : [["bf16", "bf16"], ["f32", "bf16"]];
    for (const [a, b] of pairs as [StorageDType, StorageDType][])
      // inputs are rounded before the reference sees them, so only f32 accumulation error remains
      await check(gpu, rng, { a, b, out: "f32", transA: false, transB: true }, ALIGNED_SHAPES[1], toleranceFor("f32"));
    if (gpu.hasF16) await check(gpu, rng, { a: "f16", b: "f16", out: "f16", transA: false, transB: false }, ALIGNED_SHAPES[0], toleranceFor("f16"));
    // bf16 B stored (K, N): its four-value loads run along N
    await check(gpu, rng, { a: "f32", b: "bf16", out: "f32", transA: false, transB: false }, ALIGNED_SHAPES[0], toleranceFor("f32"));
  }),
);

test(
  "bias, alpha and accumulation into C (beta)",
  withGpu(async (gpu) => {
    const rng = new Random(23);
    await check(gpu, rng, { a: "f32", b: "bf16", out: "f32", transA: false, transB: true, bias: "bf16" }, SCALAR_SHAPES[2], toleranceFor("f32"));
    const s = { ...ALIGNED_SHAPES[1], alpha: 0.5, beta: 1 };
    await check(gpu, rng, { a: "f32", b: "f32", out: "f32", transA: true, transB: false, accumulate: true }, s, toleranceFor("f32"));
  }),
);

test(
  "registers strategy: transposes, odd and aligned shapes, broadcast batch, bias, accumulation, bf16",
  withGpu(async (gpu) => {
    const rng = new Random(24);
    const f32 = { a: "f32", b: "f32", out: "f32" } as const;
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const s of [SCALAR_SHAPES[0], SCALAR_SHAPES[2], ALIGNED_SHAPES[1]]) await check(gpu, rng, { ...f32, transA, transB }, s, toleranceFor("f32"), "registers");
    await check(gpu, rng, { a: "f32", b: "bf16", out: "f32", transA: false, transB: true, bias: "bf16" }, SCALAR_SHAPES[2], toleranceFor("f32"), "registers");
    const s = { ...ALIGNED_SHAPES[1], alpha: 0.5, beta: 1 };
    await check(gpu, rng, { ...f32, transA: true, transB: false, accumulate: true }, s, toleranceFor("f32"), "registers");
  }),
);

test(
  "strided row layouts (lda, ldb, ldc): operands and result as views into wider matrices",
  withGpu(async (gpu) => {
    const rng = new Random(25);
    for (const strategy of ["tiled", "registers"] as MatmulStrategy[])
      for (const [transA, transB] of [[false, true], [true, false]]) {
        // A's rows hold K (or M) elements among 12, B's among 24, C's among 40; A's batch items 2
        // rows apart (overlapping reads), C's one row past the first item's last (the items' outputs
        // must not overlap: the order in which workgroups write them is not defined)
        const [m, n, k] = [6, 20, 8];
        const o: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA, transB };
        const s: MatmulShape = { batch: 2, m, n, k, lda: 12, ldb: 24, ldc: 40, strideA: 24, strideB: 0, strideC: (m + 1) * 40 };
        const as = randomValues(rng, 24 + (transA ? k : m) * 12);
        const bs = randomValues(rng, (transB ? n : k) * 24);
        const c0 = randomValues(rng, (m + 1) * 40 + m * 40);
        const c = uploadTensor(gpu, "f32", [c0.length], c0);
        const spec = matmulKernel(o, s, strategy);
        await runKernel(gpu, spec, matmulUniforms(s, o), { a: uploadTensor(gpu, "f32", [as.length], as), b: uploadTensor(gpu, "f32", [bs.length], bs), c });
        const label = `${strategy} strided tA=${+transA} tB=${+transB} vec=${+!!spec.variant.vecA}${+!!spec.variant.vecB}`;
        // the reference starts from c0 (beta 0), so C outside the view must keep its old values
        assertClose(await readFloats(gpu, c), matmulRef(as, bs, o, s, { c0 }), toleranceFor("f32"), label);
      }
  }),
);

test(
  "low-rank epilogue (+ T·op(L), a LoRA up-projection): T and L in either layout, shared or per batch item, with bias and accumulation; tiled, registers and gemv",
  withGpu(async (gpu) => {
    const rng = new Random(31);
    const o: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true, lowRank: { t: "f32", l: "f32" } };
    const r = 5;
    // T (M, r) per item, L stored (N, r) shared (x Wᵀ + T Bᵀ); ragged sizes, scalar path, bias
    const ragged: MatmulShape = { batch: 2, m: 70, n: 33, k: 19, lowRank: { rank: r, transT: false, ldt: r, strideT: 70 * r, transL: true, ldl: r, strideL: 0 } };
    await check(gpu, rng, { ...o, bias: "f32" }, ragged, toleranceFor("f32"));
    // T stored (r, M), L stored (r, N) per item, bf16 L, accumulating, vec4 path
    const aligned: MatmulShape = { batch: 2, m: 64, n: 64, k: 32, beta: 1, lowRank: { rank: r, transT: true, ldt: 64, strideT: r * 64, transL: false, ldl: 64, strideL: r * 64 } };
    for (const strategy of ["tiled", "registers"] as const) await check(gpu, rng, { ...o, accumulate: true, lowRank: { t: "f32", l: "bf16" } }, aligned, toleranceFor("bf16"), strategy);
    // one row (decode): the gemv kernel
    const row: MatmulShape = { batch: 1, m: 1, n: 40, k: 32, lowRank: { rank: r, transT: false, ldt: r, strideT: r, transL: true, ldl: r, strideL: 0 } };
    assert.is(matmulKernel(o, row).name, "matmul_gemv");
    await check(gpu, rng, o, row, toleranceFor("f32"));
  }),
);

test(
  "vec4 and scalar paths are both exercised",
  withGpu(async () => {
    const o: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: false };
    assert.is(matmulKernel(o, { batch: 1, m: 8, n: 8, k: 8 }).variant.vecA, true);
    assert.is(matmulKernel(o, { batch: 1, m: 8, n: 7, k: 8 }).variant.vecB, false);
    // bf16: four packed values in two words where the rows allow, scalar where they do not
    assert.is(matmulKernel({ ...o, a: "bf16" }, { batch: 1, m: 8, n: 8, k: 8 }).variant.vecA, true);
    assert.is(matmulKernel({ ...o, a: "bf16" }, { batch: 1, m: 8, n: 8, k: 6 }).variant.vecA, false);
  }),
);

test(
  "deterministic: the same inputs twice give bitwise-identical outputs",
  withGpu(async (gpu) => {
    const o: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: true, transB: false };
    const first = await check(gpu, new Random(99), o, SCALAR_SHAPES[2], toleranceFor("f32"));
    const second = await check(gpu, new Random(99), o, SCALAR_SHAPES[2], toleranceFor("f32"));
    assertBitwiseEqual(first.out, second.out, "matmul");
  }),
);

test.run();
