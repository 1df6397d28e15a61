// The subgroup-matrix matmul run on lavapipe, which has no subgroup matrices: the kernel's own
// WGSL, generated for subgroups of one invocation, with each matrix builtin replaced by plain WGSL
// of the documented meaning (test/support/subgroup-matrix-emulation.ts). Everything but the matrix
// hardware is the kernel's code: tile fills (16-byte and scalar, zeros past M/N/K, padded rows,
// double buffering), each subgroup's offsets, the K steps, and the epilogue through workgroup
// scratch (alpha, bias, beta, edges, ldc). Checked for every tiling preset against the float64
// reference on f16-rounded inputs. Each case is its own pipeline, which lavapipe compiles for
// seconds: shapes are small and the cases few. Lavapipe runs the few invocations of these
// workgroups together, so races between subgroups (e.g. over the double-buffered tiles) are
// unlikely to show here: their absence rests on the barriers' reasoning in the kernel.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { readFloats, uploadTensor, type GpuTensor } from "../../runtime/gpu/tensor.ts";
import { nf4Bindings, uploadNf4Tables, uploadNf4Weight } from "../../runtime/execute/nf4-weights.ts";
import { Random } from "../../runtime/random.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { matmulKernelsOf, matmulRef, matmulUniforms, matmulVec4, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import {
  DEFAULT_SUBGROUP_TILING,
  SUBGROUP_TILINGS,
  subgroupMatrixSpec,
  subgroupMatrixTolerance,
  subgroupMatrixWorkgroupBytes,
  type SubgroupMatrixConfig,
  type SubgroupTilingName,
} from "../../stdlib/kernels/matmul-subgroup.ts";
import { nf4MatmulKernel } from "../../stdlib/kernels/nf4-matmul.ts";
import { dequantizeNf4 } from "../../stdlib/quant/nf4.ts";
import { assertClose } from "../support/numeric.ts";
import { emulateSubgroupMatrices } from "../support/subgroup-matrix-emulation.ts";
import { randomValues, withF16Gpu } from "./gpu-harness.ts";

const test = suite("matmul on emulated subgroup matrices");

const config = (resultComponentType: string, M: number, N: number, K: number): SubgroupMatrixConfig => ({ componentType: "f16", resultComponentType, M, N, K });
// the configuration the engine picks on the H200
const F16_F32_16 = config("f32", 16, 16, 16);

interface Case {
  label: string;
  o: MatmulOptions;
  s: MatmulShape;
  /** B is an NF4 weight (stored (N, K) with transB, else (K, N)). */
  nf4?: boolean;
  config: SubgroupMatrixConfig;
}

// Elements a stored operand spans: `rows` rows `ld` apart per batch item, items `stride` apart (0: one shared).
const span = (batch: number, rows: number, ld: number, stride: number) => (stride === 0 ? rows * ld : (batch - 1) * stride + rows * ld);

async function check(gpu: GpuDevice, rng: Random, tiling: SubgroupTilingName, { label, o, s, nf4, config: c }: Case): Promise<void> {
  const u = matmulUniforms(s, o);
  const as = randomValues(rng, span(s.batch, o.transA ? s.k : s.m, u.lda, u.strideA), o.a);
  const bs = randomValues(rng, span(s.batch, o.transB ? s.n : s.k, u.ldb, u.strideB), o.b, nf4 ? 0.05 : 1);
  const bias = o.bias ? randomValues(rng, s.n, o.bias) : undefined;
  // the low-rank epilogue's T (batch, M, r) and L (N, r), added in f32 as each output is stored
  const lr = s.lowRank;
  const lowRank = lr && { t: randomValues(rng, s.batch * s.m * lr.rank, "f32"), l: randomValues(rng, s.n * lr.rank, "f32"), layout: lr };
  const cLength = span(s.batch, s.m, u.ldc, u.strideC);
  // without accumulation C starts as NaN, so an output the kernel does not write fails
  const c0 = o.accumulate ? randomValues(rng, cLength, o.out) : new Float64Array(cLength).fill(NaN);
  assert.ok(subgroupMatrixWorkgroupBytes(c, SUBGROUP_TILINGS[tiling]) <= gpu.limits.maxComputeWorkgroupStorageSize, `${tiling} ${c.M}x${c.N}x${c.K} fits the workgroup memory`);
  const strategy = { kind: "subgroup-matrix", config: c, subgroupSize: 1, tiling } as const;
  const { vecA, vecB } = matmulVec4(o, s);
  const weight = nf4 ? uploadNf4Weight(gpu, bs, "b (NF4)") : undefined;
  const kernel = emulateSubgroupMatrices(nf4 ? nf4MatmulKernel(o, s, matmulKernelsOf(strategy)) : subgroupMatrixSpec(o, strategy, vecA, vecB), c, "u.batch");
  const tensors: Record<string, GpuTensor> = {
    a: uploadTensor(gpu, o.a, [as.length], as, "a"),
    c: uploadTensor(gpu, o.out, [cLength], c0, "c"),
    emu_values: kernel.values(gpu, u),
    ...(weight ? nf4Bindings(weight, uploadNf4Tables(gpu)) : { b: uploadTensor(gpu, o.b, [bs.length], bs, "b") }),
    ...(bias ? { bias: uploadTensor(gpu, o.bias!, [s.n], bias, "bias") } : {}),
    ...(lowRank ? { lora_t: uploadTensor(gpu, "f32", [lowRank.t.length], lowRank.t, "T"), lora_l: uploadTensor(gpu, "f32", [lowRank.l.length], lowRank.l, "L") } : {}),
  };
  await runKernel(gpu, kernel.spec, u, tensors);
  const out = await readFloats(gpu, tensors.c);
  for (const t of Object.values(tensors)) t.destroy();

  // the kernel rounds every operand value to f16 as it enters workgroup memory
  const bValues = weight ? Float64Array.from(dequantizeNf4(weight.host)) : bs;
  const ref = matmulRef(roundToDType("f16", as), roundToDType("f16", bValues), o, s, { bias, c0: o.accumulate ? c0 : undefined, lowRank });
  const inView = new Set<number>();
  for (let z = 0; z < s.batch; z++) for (let m = 0; m < s.m; m++) for (let n = 0; n < s.n; n++) inView.add(z * u.strideC + m * u.ldc + n);
  const view = [...inView];
  const [got, want] = [out, ref].map((x) => Float64Array.from(view, (i) => x[i]));
  const name = `${tiling} ${c.M}x${c.N}x${c.K}>${c.resultComponentType} ${label} vec=${+!!kernel.spec.variant.vecA}${+!!kernel.spec.variant.vecB}`;
  // an f16 output adds its own rounding
  const tol = subgroupMatrixTolerance(c) + (o.out === "f16" ? 2 ** -11 : 0);
  assertClose(got, want, tol, name);
  // and no single output is far off (a norm over thousands can hide a few wrong ones)
  const scale = want.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
  want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) <= 4 * tol * scale, `${name}: output ${view[i]} is ${got[i]}, reference ${v}`));
  // outside the view C keeps what it held
  for (let i = 0; i < cLength; i++)
    if (!inView.has(i)) assert.ok(Object.is(out[i], Math.fround(c0[i])) || (Number.isNaN(out[i]) && Number.isNaN(c0[i])), `${name}: C[${i}] outside the view was written`);
}

// Per tiling (tile tm x tn, K step bk), operands chosen so that each of A and B is read along K
// and across it, with 16-byte loads and with scalar ones where the tiling fills with vec4. The
// first case runs the H200's 16x16x16 configuration: several result matrices per subgroup and
// several K slices per step. Lavapipe compiles each matrix call of the unrolled steps for
// seconds, so the other cases run one matrix per subgroup and step (M, N = the subgroup's
// outputs, K = the step; f16 results for one of them), which leaves the fills and the epilogue
// for them to check.
function casesFor(tiling: SubgroupTilingName, workgroupBytes: number): Case[] {
  const t = SUBGROUP_TILINGS[tiling];
  const [tm, tn] = [t.grid[0] * t.perSubgroup[0], t.grid[1] * t.perSubgroup[1]];
  // the scratch holds one result matrix per subgroup: halve the larger side until it fits the device
  const whole = (result: string) => {
    let c = config(result, t.perSubgroup[0], t.perSubgroup[1], t.bk);
    while (subgroupMatrixWorkgroupBytes(c, t) > workgroupBytes) c = c.M >= c.N ? { ...c, M: c.M / 2 } : { ...c, N: c.N / 2 };
    return c;
  };
  const f32 = { a: "f32", b: "f32", out: "f32" } as const;
  return [
    // 2 x 2 workgroups, the last ones ragged; A (M, K) vec4, B (K, N) with N = tn + 26 scalar
    { label: "ragged A B f32", o: { ...f32, transA: false, transB: false }, s: { batch: 1, m: tm + 6, n: tn + 26, k: 100 }, config: F16_F32_16 },
    // whole tiles, 3 K steps (the double-buffered sets alternate and come back), batch 2 with
    // padded rows and items, one B for both, alpha, bias and accumulation: Aᵀ (K, M) f16 and Bᵀ
    // (N, K) bf16 (a frozen base weight as pipelines store it), both four values a load
    {
      label: "tiles Aᵀ f16 Bᵀ bf16 strided batch, bias, alpha, accumulate",
      o: { a: "f16", b: "bf16", out: "f32", transA: true, transB: true, bias: "f32", accumulate: true },
      s: { batch: 2, m: tm, n: tn, k: 3 * t.bk, lda: tm + 8, ldb: 3 * t.bk + 4, ldc: tn + 4, strideA: 3 * t.bk * (tm + 8) + 8, strideB: 0, strideC: tm * (tn + 4) + 12, alpha: 0.5, beta: 1 },
      config: whole("f32"),
    },
    // Aᵀ (K, M) bf16 scalar, B (K, N) f16 vec4, f16 output, K = 57 not a multiple of anything
    { label: "ragged Aᵀ bf16 B f16 -> f16", o: { a: "bf16", b: "f16", out: "f16", transA: true, transB: false }, s: { batch: 1, m: 37, n: tn + 20, k: 57 }, config: whole("f16") },
    // QLoRA's forward x Wᵀ + T Bᵀ with W in NF4 and a rank-3 adapter in the low-rank epilogue: A
    // (M, K) and W (N, K) along K, scalar (K = 99) or vec4 (K = 100) by tiling
    {
      label: "ragged A Wᵀ NF4 + low-rank",
      o: { ...f32, transA: false, transB: true, lowRank: { t: "f32", l: "f32" } },
      s: { batch: 1, m: 21, n: 45, k: 99 + (TILINGS.indexOf(tiling) % 2), strideB: 0, lowRank: { rank: 3, transT: false, ldt: 3, strideT: 63, transL: true, ldl: 3, strideL: 0 } },
      nf4: true,
      config: whole("f32"),
    },
  ];
}

const TILINGS = Object.keys(SUBGROUP_TILINGS) as SubgroupTilingName[];

for (const tiling of TILINGS)
  test(
    `tiling ${tiling}${tiling === DEFAULT_SUBGROUP_TILING ? " (the default)" : ""}: the kernel's code matches the float64 reference on f16-rounded inputs`,
    withF16Gpu(async (gpu) => {
      const rng = new Random(400 + TILINGS.indexOf(tiling));
      for (const c of casesFor(tiling, gpu.limits.maxComputeWorkgroupStorageSize)) await check(gpu, rng, tiling, c);
    }),
  );

test("the default tiling is one of the presets", () => {
  assert.ok(TILINGS.includes(DEFAULT_SUBGROUP_TILING));
});

test.run();
