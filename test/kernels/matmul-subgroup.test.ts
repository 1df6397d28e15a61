// The subgroup-matrix matmul where no adapter here runs it (lavapipe has no subgroup matrices):
// the choice of configuration and strategy (SFT_MATMUL included), the dispatch grid against the
// tile, the generated WGSL through Dawn's null backend (parsing, types, the uniformity rules and
// pipeline validation, which checks the workgroup size against the subgroup size), and the f16
// rounding of the reference the benchmark compares the kernel with.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Random } from "../../runtime/random.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { matmulKernelsOf, matmulRef, matmulUniforms, matmulVec4, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { matmulStrategyFor, type MatmulAdapter } from "../../stdlib/kernels/matmul-strategy.ts";
import { DEFAULT_SUBGROUP_TILING, SUBGROUP_TILINGS, subgroupMatrixConfigFor, subgroupMatrixSpec, subgroupMatrixWorkgroupBytes, type SubgroupMatrixConfig, type SubgroupMatrixStrategy, type SubgroupTilingName } from "../../stdlib/kernels/matmul-subgroup.ts";
import { nf4MatmulKernel } from "../../stdlib/kernels/nf4-matmul.ts";
import { kernelErrors, openNullDevice } from "../support/null-device.ts";

const test = suite("matmul subgroup-matrix");

const config = (componentType: string, resultComponentType: string, M: number, N: number, K: number): SubgroupMatrixConfig => ({ componentType, resultComponentType, M, N, K });

const F16_F32_16 = config("f16", "f32", 16, 16, 16);
const F16_F16_16 = config("f16", "f16", 16, 16, 16);
const F16_F32_16x8 = config("f16", "f32", 16, 8, 16);
const I8_I32 = config("i8", "i32", 16, 16, 32);

function adapter(configs: SubgroupMatrixConfig[], over: Partial<MatmulAdapter> = {}): MatmulAdapter {
  return {
    architecture: "hopper",
    features: ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"],
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    subgroupMatrixConfigs: configs,
    ...over,
  };
}

test("config choice: f16 inputs, f32 results first, 16x16x16 first, only shapes that fit the tiles", () => {
  assert.equal(subgroupMatrixConfigFor([I8_I32, F16_F16_16, F16_F32_16x8, F16_F32_16]), F16_F32_16);
  assert.equal(subgroupMatrixConfigFor([F16_F16_16, F16_F32_16x8]), F16_F32_16x8, "f32 results beat the 16x16x16 shape");
  assert.equal(subgroupMatrixConfigFor([F16_F16_16, config("f16", "f16", 8, 8, 8)]), F16_F16_16);
  assert.equal(subgroupMatrixConfigFor([config("f16", "f32", 8, 8, 8), config("f16", "f32", 16, 8, 8)]), config("f16", "f32", 16, 8, 8), "then the larger shape");
  assert.is(subgroupMatrixConfigFor([I8_I32, config("f32", "f32", 16, 16, 8)]), undefined, "no f16 inputs");
  assert.is(subgroupMatrixConfigFor([]), undefined);
  // sides must divide the 32x32 subgroup tile and the K step of 32
  assert.is(subgroupMatrixConfigFor([config("f16", "f32", 64, 16, 16), config("f16", "f32", 16, 16, 64), config("f16", "f32", 16, 24, 16)]), undefined);
  // an 8x8 result has 64 values: it cannot be split over subgroups of 128 lanes
  assert.is(subgroupMatrixConfigFor([config("f16", "f32", 8, 8, 8)], 128), undefined);
  assert.equal(subgroupMatrixConfigFor([config("f16", "f32", 8, 8, 8)], 32), config("f16", "f32", 8, 8, 8));
});

test("strategy at device start: subgroup matrices where offered, else tiled (registers on CPU adapters); SFT_MATMUL overrides", () => {
  const none = {};
  const chosen = matmulStrategyFor(adapter([F16_F16_16, F16_F32_16]), none);
  assert.ok(chosen.ok);
  assert.equal(chosen.value, { kind: "subgroup-matrix", config: F16_F32_16, subgroupSize: 32 });
  for (const [label, a] of [
    ["no configs", adapter([])],
    ["int8 configs only", adapter([I8_I32])],
    ["no subgroup-matrix feature", adapter([F16_F32_16], { features: ["shader-f16", "subgroups"] })],
    ["no shader-f16", adapter([F16_F32_16], { features: ["subgroups", "chromium-experimental-subgroup-matrix"] })],
    ["subgroup size varies", adapter([F16_F32_16], { subgroupMinSize: 16, subgroupMaxSize: 64 })],
  ] as const) {
    const r = matmulStrategyFor(a, none);
    assert.ok(r.ok && r.value === "tiled", label);
  }
  const cpu = matmulStrategyFor(adapter([], { architecture: "software" }), none);
  assert.ok(cpu.ok && cpu.value === "registers");

  const tiled = matmulStrategyFor(adapter([F16_F32_16]), { SFT_MATMUL: "tiled" });
  assert.ok(tiled.ok && tiled.value === "tiled", "SFT_MATMUL=tiled keeps f32 products");
  const registers = matmulStrategyFor(adapter([F16_F32_16]), { SFT_MATMUL: " registers " });
  assert.ok(registers.ok && registers.value === "registers");
  const forced = matmulStrategyFor(adapter([F16_F16_16]), { SFT_MATMUL: "subgroup-matrix" });
  assert.ok(forced.ok && typeof forced.value === "object" && forced.value.config === F16_F16_16);

  const missing = matmulStrategyFor(adapter([]), { SFT_MATMUL: "subgroup-matrix" });
  assert.ok(!missing.ok);
  assert.is(missing.diagnostics[0].code, "SFT5009");
  assert.is(missing.diagnostics[0].where, "SFT_MATMUL");
  const unknown = matmulStrategyFor(adapter([F16_F32_16]), { SFT_MATMUL: "tensor-cores" });
  assert.ok(!unknown.ok);
  assert.is(unknown.diagnostics[0].code, "SFT2018");
  assert.match(unknown.diagnostics[0].message, "tensor-cores");

  const preset = matmulStrategyFor(adapter([F16_F32_16]), { SFT_MATMUL_TILING: "wg128-8sg-nk" });
  assert.ok(preset.ok && typeof preset.value === "object" && preset.value.tiling === "wg128-8sg-nk", "SFT_MATMUL_TILING picks the preset");
  const plain = matmulStrategyFor(adapter([F16_F32_16]), { SFT_MATMUL: "tiled", SFT_MATMUL_TILING: "wg64" });
  assert.ok(plain.ok && plain.value === "tiled", "a tiling does not bring subgroup matrices back");
  const badTiling = matmulStrategyFor(adapter([F16_F32_16]), { SFT_MATMUL_TILING: "huge" });
  assert.ok(!badTiling.ok);
  assert.is(badTiling.diagnostics[0].code, "SFT2018");
  assert.is(badTiling.diagnostics[0].where, "SFT_MATMUL_TILING");
  assert.match(badTiling.diagnostics[0].hint ?? "", "wg128-8sg-nk");
});

const strategy = (c: SubgroupMatrixConfig, subgroupSize: number, tiling: SubgroupTilingName): SubgroupMatrixStrategy => ({ kind: "subgroup-matrix", config: c, subgroupSize, tiling });
const F32_NT: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true };
const TILINGS = Object.keys(SUBGROUP_TILINGS) as SubgroupTilingName[];

// the kernel itself: matmulKernel gives calls of a few rows to gemv whatever the strategy
function subgroupKernel(o: MatmulOptions, shape: MatmulShape, s: SubgroupMatrixStrategy): KernelSpec {
  const { vecA, vecB } = matmulVec4(o, shape);
  return subgroupMatrixSpec(o, s, vecA, vecB);
}

test("the grid covers every output once: one workgroup per tile of the tiling, a whole number of subgroups", () => {
  assert.ok(TILINGS.includes(DEFAULT_SUBGROUP_TILING));
  for (const tiling of TILINGS)
    for (const c of [F16_F32_16, F16_F32_16x8, config("f16", "f16", 8, 8, 8)])
      for (const s of [
        { batch: 1, m: 1, n: 1, k: 1 },
        { batch: 3, m: 64, n: 64, k: 64 },
        { batch: 1, m: 65, n: 127, k: 33 },
        { batch: 2, m: 251, n: 253, k: 255 },
      ]) {
        const spec = subgroupKernel(F32_NT, s, strategy(c, 32, tiling));
        const t = SUBGROUP_TILINGS[tiling];
        const [tileM, tileN] = [t.grid[0] * t.perSubgroup[0], t.grid[1] * t.perSubgroup[1]];
        const [x, y, z] = spec.dispatch(matmulUniforms(s, F32_NT));
        const label = `${c.M}x${c.N}x${c.K} ${tiling} ${s.m}x${s.n}`;
        assert.ok(x * tileN >= s.n && (x - 1) * tileN < s.n, `${label}: columns`);
        assert.ok(y * tileM >= s.m && (y - 1) * tileM < s.m, `${label}: rows`);
        assert.is(z, s.batch, label);
        assert.equal(spec.workgroupSize, [t.grid[0] * t.grid[1] * 32, 1, 1], label);
      }
});

test("vec4 fills only where the tiling asks and the operand's dtype, layout and strides allow", () => {
  const aligned = { batch: 1, m: 64, n: 64, k: 64 };
  const vec = (o: MatmulOptions, shape: typeof aligned, tiling: SubgroupTilingName) => {
    const v = subgroupKernel(o, shape, strategy(F16_F32_16, 32, tiling)).variant;
    return [v.vecA, v.vecB];
  };
  assert.equal(vec(F32_NT, aligned, "wg64-vec4-pad"), [true, true]);
  assert.equal(vec(F32_NT, aligned, "wg64"), [false, false], "the scalar tiling");
  assert.equal(vec({ ...F32_NT, b: "bf16" }, aligned, "wg128-8sg"), [true, true], "bf16: four values in two words");
  assert.equal(vec({ ...F32_NT, b: "bf16" }, { ...aligned, k: 62 }, "wg128-8sg"), [false, false], "bf16 rows off four values");
  assert.equal(vec(F32_NT, { ...aligned, k: 63 }, "wg128-8sg"), [false, false], "K is both operands' contiguous side");
  assert.equal(vec({ ...F32_NT, transB: false }, { ...aligned, n: 62 }, "wg128-8sg"), [true, false], "B stored (K, N) with N = 62");
});

// The workgroup memory a tiling may use: 32 KiB, assumed granted on the H200 (NVIDIA's Vulkan
// drivers report 48 KiB of shared memory; this limit was not read on the device).
const TARGET_WORKGROUP_BYTES = 32768;

test("the WGSL compiles and validates (Dawn null backend): every tiling, dtypes, transposes, bias, accumulation, vec4 and scalar fills, f16 and f32 results, NF4", async () => {
  const opened = await openNullDevice();
  if (!opened) {
    console.log("    skipped: Dawn's null backend is not available");
    return;
  }
  const { device, subgroupSize } = opened;
  const limit = device.limits.maxComputeWorkgroupStorageSize;
  // aligned: vec4 fills where the dtype allows; ragged: K = 7 leaves only the 4-scalar fills
  // (M > 8: fewer rows with B^T go to gemv)
  const shapes = [
    { batch: 1, m: 16, n: 8, k: 8 },
    { batch: 1, m: 18, n: 5, k: 7 },
  ];
  const options: MatmulOptions[] = [
    F32_NT,
    { a: "f16", b: "f16", out: "f32", transA: false, transB: false },
    { a: "f16", b: "bf16", out: "f16", transA: true, transB: false, bias: "f32", accumulate: true },
    { a: "bf16", b: "f16", out: "f32", transA: true, transB: true, bias: "bf16" },
  ];
  let validated = 0;
  let compiledOnly = 0;
  for (const tiling of TILINGS)
    for (const c of [F16_F32_16, F16_F16_16]) {
      const t = SUBGROUP_TILINGS[tiling];
      // the null adapter's subgroup size is 128 and its workgroups hold at most 256 invocations:
      // several subgroups are generated for subgroups of 32 (workgroups of 128 or 256, multiples of 128)
      const s = strategy(c, t.grid[0] * t.grid[1] === 1 ? subgroupSize : 32, tiling);
      const bytes = subgroupMatrixWorkgroupBytes(c, t);
      assert.ok(bytes <= TARGET_WORKGROUP_BYTES, `${tiling}: ${bytes} bytes of workgroup memory`);
      const check = async (spec: KernelSpec, transB: boolean) => {
        const bytes = subgroupMatrixWorkgroupBytes(c, t, transB);
        const errors = await kernelErrors(device, spec, true);
        // Dawn: "The total use of workgroup storage (N bytes) is larger than the maximum allowed (L bytes)"
        const storage = errors.flatMap((m) => [...m.matchAll(/use of workgroup storage \((\d+) bytes\)/g)].map((x) => Number(x[1])));
        const others = errors.filter((m) => !/use of workgroup storage/.test(m));
        assert.equal(others, [], `${spec.name} ${JSON.stringify(spec.variant)}`);
        // within the null device's limit the pipeline is valid; beyond it, refused for its size alone (as computed)
        assert.equal(storage, bytes <= limit ? [] : [bytes], `${spec.name} ${tiling}: workgroup storage`);
        if (bytes <= limit) validated++;
        else compiledOnly++;
      };
      for (const shape of shapes) {
        for (const o of options) await check(subgroupKernel(o, shape, s), o.transB);
        await check(nf4MatmulKernel(F32_NT, shape, matmulKernelsOf(s)), true);
        // a LoRA linear's forward: bias and the low-rank epilogue (bf16 L); with NF4 as well it
        // binds 10 storage buffers, past this null device's 8 (lavapipe's emulated run has it)
        await check(subgroupKernel({ ...F32_NT, bias: "f32", lowRank: { t: "f32", l: "bf16" } }, shape, s), true);
      }
    }
  console.log(`    ${validated} kernels validated as pipelines, ${compiledOnly} compiled with only the null device's ${limit}-byte workgroup storage limit refusing the pipeline`);
  // the check is real: a workgroup narrower than the subgroup size is refused
  const narrow = subgroupKernel(F32_NT, shapes[0], strategy(F16_F32_16, subgroupSize / 8, "one-subgroup"));
  assert.ok((await kernelErrors(device, narrow, true)).some((m) => m.includes("multiple of the device maxSubgroupSize")));
  device.destroy();
});

// f16 rounding written independently of dtype.ts's bit manipulation: 11 significant bits (fewer
// below 2^-14, where f16 is subnormal with a fixed step of 2^-24), ties to even.
function f16Round(x: number): number {
  if (x === 0) return 0;
  const step = 2 ** Math.max(Math.floor(Math.log2(Math.abs(x))) - 10, -24);
  const q = x / step;
  const down = Math.floor(q);
  const r = q - down === 0.5 ? (down % 2 === 0 ? down : down + 1) : Math.round(q);
  return r * step;
}

test("the reference of subgroup-matrix rows: matmulRef on f16-rounded inputs equals a direct sum of f16-rounded products", () => {
  // 1 + 2^-12 rounds to 1; 2049 is a tie between 2048 and 2050 and goes to even 2048
  const tie = matmulRef(roundToDType("f16", [1 + 2 ** -12, 2049]), roundToDType("f16", [1, 1]), { transA: false, transB: false }, { batch: 1, m: 1, n: 1, k: 2 });
  assert.equal(Array.from(tie), [2049]);

  const rng = new Random(5);
  const [m, n, k] = [7, 5, 33];
  const a = Array.from({ length: m * k }, () => rng.normal() * 3);
  const b = Array.from({ length: n * k }, () => rng.normal() * 0.02); // stored (N, K)
  const ref = matmulRef(roundToDType("f16", a), roundToDType("f16", b), { transA: false, transB: true }, { batch: 1, m, n, k });
  let compared = 0;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += f16Round(a[i * k + p]) * f16Round(b[j * k + p]);
      assert.ok(Math.abs(ref[i * n + j] - sum) <= 1e-12 * Math.abs(sum) + 1e-300, `(${i}, ${j}): ${ref[i * n + j]} vs ${sum}`);
      compared++;
    }
  assert.is(compared, m * n);
  // and the rounding matters at this tolerance: unrounded inputs give a different product
  const unrounded = matmulRef(Float64Array.from(a), Float64Array.from(b), { transA: false, transB: true }, { batch: 1, m, n, k });
  assert.ok(Math.abs(unrounded[0] - ref[0]) > 1e-6 * Math.abs(ref[0]));
});

test.run();
