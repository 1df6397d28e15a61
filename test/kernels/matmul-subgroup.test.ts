// The subgroup-matrix matmul where no adapter here runs it (lavapipe has no subgroup matrices):
// the choice of configuration and strategy (SFT_MATMUL included), the dispatch grid against the
// tile, the generated WGSL through Dawn's null backend (parsing, types, the uniformity rules and
// pipeline validation, which checks the workgroup size against the subgroup size), and the f16
// rounding of the reference the benchmark compares the kernel with.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { create } from "webgpu";
import "../../runtime/gpu/device.ts"; // installs the WebGPU globals
import { Random } from "../../runtime/random.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { kernelSource } from "../../stdlib/kernels/kernel.ts";
import { matmulKernel, matmulRef, matmulStrategyFor, matmulUniforms, type MatmulAdapter, type MatmulOptions } from "../../stdlib/kernels/matmul.ts";
import { subgroupMatrixConfigFor, type SubgroupMatrixConfig, type SubgroupMatrixStrategy } from "../../stdlib/kernels/matmul-subgroup.ts";
import { nf4MatmulKernel } from "../../stdlib/kernels/nf4-matmul.ts";

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
});

const strategy = (c: SubgroupMatrixConfig, subgroupSize: number, grid: 1 | 2): SubgroupMatrixStrategy => ({ kind: "subgroup-matrix", config: c, subgroupSize, grid });
const F32_NT: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true };

test("the grid covers every output once: one workgroup per tile of 32 x grid, a whole number of subgroups", () => {
  for (const grid of [1, 2] as const)
    for (const c of [F16_F32_16, F16_F32_16x8, config("f16", "f16", 8, 8, 8)])
      for (const s of [
        { batch: 1, m: 1, n: 1, k: 1 },
        { batch: 3, m: 64, n: 64, k: 64 },
        { batch: 1, m: 65, n: 127, k: 33 },
        { batch: 2, m: 251, n: 253, k: 255 },
      ]) {
        const spec = matmulKernel(F32_NT, s, strategy(c, 32, grid));
        const tile = 32 * grid;
        const [x, y, z] = spec.dispatch(matmulUniforms(s, F32_NT));
        const label = `${c.M}x${c.N}x${c.K} grid ${grid} ${s.m}x${s.n}`;
        assert.ok(x * tile >= s.n && (x - 1) * tile < s.n, `${label}: columns`);
        assert.ok(y * tile >= s.m && (y - 1) * tile < s.m, `${label}: rows`);
        assert.is(z, s.batch, label);
        assert.equal(spec.workgroupSize, [grid * grid * 32, 1, 1], label);
      }
});

// Dawn's null backend lists every feature (no subgroup-matrix configs): it compiles WGSL through
// Tint and validates pipelines, but runs nothing.
async function nullDevice(): Promise<{ gpu: GPU; device: GPUDevice; subgroupSize: number } | undefined> {
  const gpu = create(["backend=null", "enable-dawn-features=allow_unsafe_apis"]); // held as long as the device
  const adapter = await gpu.requestAdapter();
  if (!adapter?.features.has("chromium-experimental-subgroup-matrix")) return undefined;
  const requiredFeatures = ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"] as GPUFeatureName[];
  const device = await adapter.requestDevice({ requiredFeatures });
  return { gpu, device, subgroupSize: (adapter.info as GPUAdapterInfo & { subgroupMaxSize: number }).subgroupMaxSize };
}

async function compileErrors(device: GPUDevice, code: string): Promise<string[]> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  // errors only: the subgroup-matrix loads and stores draw "deprecated builtin" warnings
  const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === "error").map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
  try {
    await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
  } catch (e) {
    messages.push(e instanceof Error ? e.message : String(e));
  }
  const scoped = await device.popErrorScope();
  if (scoped) messages.push(scoped.message);
  return messages;
}

test("the WGSL compiles and validates (Dawn null backend): dtypes, transposes, bias, accumulation, f16 and f32 results, both grids, NF4", async () => {
  const opened = await nullDevice();
  if (!opened) {
    console.log("    skipped: Dawn's null backend is not available");
    return;
  }
  const { device, subgroupSize } = opened;
  const shape = { batch: 1, m: 8, n: 8, k: 8 };
  const options: MatmulOptions[] = [
    F32_NT,
    { a: "f16", b: "bf16", out: "f16", transA: true, transB: false, bias: "f32", accumulate: true },
    { a: "bf16", b: "f16", out: "f32", transA: true, transB: true, bias: "bf16" },
  ];
  // the null adapter's subgroup size is 128 and its workgroups hold at most 256 invocations: the
  // 2x2 grid is generated for subgroups of 32 (a workgroup of 128, still a multiple of 128)
  for (const c of [F16_F32_16, F16_F16_16])
    for (const grid of [1, 2] as const) {
      const s = strategy(c, grid === 1 ? subgroupSize : subgroupSize / 4, grid);
      for (const o of options) {
        const spec = matmulKernel(o, shape, s);
        assert.equal(await compileErrors(device, kernelSource(spec)), [], `${spec.name} ${JSON.stringify(spec.variant)}`);
      }
      const nf4 = nf4MatmulKernel(F32_NT, shape, s);
      assert.equal(await compileErrors(device, kernelSource(nf4)), [], `${nf4.name} ${JSON.stringify(nf4.variant)}`);
    }
  // the check is real: a workgroup narrower than the subgroup size is refused
  const narrow = matmulKernel(F32_NT, shape, strategy(F16_F32_16, subgroupSize / 8, 1));
  assert.ok((await compileErrors(device, kernelSource(narrow))).some((m) => m.includes("multiple of the device maxSubgroupSize")));
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
