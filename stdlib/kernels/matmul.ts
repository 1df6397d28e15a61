// Batched matmul C = alpha * op(A) op(B) [+ bias] [+ beta * C], op = identity or transpose.
// Three strategies, all with f32 accumulation and any size:
// - "tiled" (GPUs): a 64x64 output tile per 16x16 workgroup, 4x4 outputs per invocation in
//   registers, K in steps of 16 through workgroup memory; operands load as vec4 when their
//   contiguous dimension allows it, else as guarded scalars (bf16 included).
// - "registers" (CPU adapters such as lavapipe): 4x4 outputs per invocation of an 8x8
//   workgroup read straight from storage, no workgroup memory and no barriers; lavapipe runs
//   it several times faster than the tiled kernel, because its caches do the tiling.
// - "subgroup-matrix" (adapters with subgroup matrices, e.g. NVIDIA tensor cores through
//   Vulkan cooperative matrices): matmul-subgroup.ts; products take f16 inputs.
// - decode-shaped launches (W stored (N, K), at most 8 rows) take matmul-gemv.ts, which streams W
//   once, with every strategy but "registers": lavapipe decodes faster with the registers kernel.
// The environment variable SFT_MATMUL=tiled|registers|subgroup-matrix overrides the choice, and
// SFT_MATMUL_TILING=<preset of SUBGROUP_TILINGS> the subgroup-matrix kernel's tiling, which the
// device otherwise tunes at its start (runtime/gpu/matmul-tuning.ts).
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { FLOAT_DTYPES, type StorageDType } from "./dtype.ts";
import { ceilDiv, type KernelBinding, type KernelSpec, type UniformValues } from "./kernel.ts";
import { DEFAULT_GEMV, gemvFits, gemvSpec, type GemvVariant } from "./matmul-gemv.ts";
import { LOW_RANK_FUNCTION, LOW_RANK_UNIFORMS, lowRankBindings, lowRankProduct, lowRankUniforms, type LowRankLayout, type LowRankOperands } from "./matmul-low-rank.ts";
import { SUBGROUP_TILINGS, subgroupMatrixConfigFor, subgroupMatrixSpec, type SubgroupMatrixConfig, type SubgroupMatrixStrategy, type SubgroupTilingName } from "./matmul-subgroup.ts";

const TILE = 64; // tiled: output rows and columns per workgroup
const BK = 16; // tiled: K per step
const REGISTER_WG = 8; // registers: workgroup side; each invocation owns 4x4 outputs

export type MatmulStrategy = "tiled" | "registers" | SubgroupMatrixStrategy;

/** The strategy's name as SFT_MATMUL spells it. */
export function strategyName(strategy: MatmulStrategy): string {
  return typeof strategy === "string" ? strategy : strategy.kind;
}

/** What the strategy choice reads of an adapter (runtime/gpu/device.ts AdapterSummary has it). */
export interface MatmulAdapter {
  /** "software" for CPU rasterizers. */
  architecture: string;
  features: readonly string[];
  subgroupMinSize: number;
  subgroupMaxSize: number;
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
}

/**
 * The strategy for an adapter: subgroup matrices where the adapter has the feature, shader-f16,
 * a fixed subgroup size and an f16 configuration; "registers" on CPU adapters; else "tiled".
 * SFT_MATMUL in `env` overrides the choice; the subgroup-matrix tiling is SFT_MATMUL_TILING, else
 * `tuned` (the device's fastest, matmul-tuning.ts), else DEFAULT_SUBGROUP_TILING. An unknown
 * name, or subgroup matrices where the adapter has none, is a diagnostic.
 */
export function matmulStrategyFor(adapter: MatmulAdapter, env: Readonly<Record<string, string | undefined>> = process.env, tuned?: SubgroupTilingName): Result<MatmulStrategy> {
  const named = env.SFT_MATMUL_TILING?.trim();
  if (named && !Object.hasOwn(SUBGROUP_TILINGS, named))
    return fail(
      diag("SFT2018", `SFT_MATMUL_TILING='${named}' is not a tiling preset`, { where: "SFT_MATMUL_TILING", hint: `Use one of ${Object.keys(SUBGROUP_TILINGS).join(", ")}, or unset it.` }),
    );
  const tiling = (named as SubgroupTilingName | undefined) || tuned;
  const found = subgroupMatrixStrategyFor(adapter);
  const subgroup = found && tiling ? { ...found, tiling } : found;
  const fallback = plainMatmulStrategy(adapter.architecture);
  const wanted = env.SFT_MATMUL?.trim();
  if (!wanted) return ok(subgroup ?? fallback);
  if (wanted === "tiled" || wanted === "registers") return ok(wanted);
  if (wanted !== "subgroup-matrix")
    return fail(diag("SFT2018", `SFT_MATMUL='${wanted}' is not a matmul strategy`, { where: "SFT_MATMUL", hint: "Use tiled, registers or subgroup-matrix, or unset SFT_MATMUL." }));
  if (subgroup) return ok(subgroup);
  return fail(
    diag("SFT5009", "SFT_MATMUL=subgroup-matrix, but this adapter offers no subgroup matrix with f16 inputs (or its subgroup size varies)", {
      where: "SFT_MATMUL",
      hint: "Set SFT_MATMUL=tiled, or unset it to let sftc choose.",
    }),
  );
}

/** The strategy without subgroup matrices: "registers" on CPU adapters ("software"), else "tiled". */
export function plainMatmulStrategy(architecture: string): "tiled" | "registers" {
  return architecture === "software" ? "registers" : "tiled";
}

/** The subgroup-matrix strategy where the adapter supports it (see `matmulStrategyFor`), else undefined. */
export function subgroupMatrixStrategyFor(adapter: MatmulAdapter): SubgroupMatrixStrategy | undefined {
  const has = (f: string) => adapter.features.includes(f);
  if (!has("chromium-experimental-subgroup-matrix") || !has("shader-f16")) return undefined;
  // the kernel assigns output tiles by subgroup index = local index / subgroup size
  if (adapter.subgroupMinSize !== adapter.subgroupMaxSize || adapter.subgroupMaxSize <= 0) return undefined;
  const config = subgroupMatrixConfigFor(adapter.subgroupMatrixConfigs, adapter.subgroupMaxSize);
  return config ? { kind: "subgroup-matrix", config, subgroupSize: adapter.subgroupMaxSize } : undefined;
}

/** What varies between compiled matmul pipelines. */
export interface MatmulOptions {
  a: StorageDType;
  b: StorageDType;
  out: StorageDType;
  /** A is stored (K, M) instead of (M, K). */
  transA: boolean;
  /** B is stored (N, K) instead of (K, N). */
  transB: boolean;
  /** Adds bias[n] (dtype `biasDtype`). */
  bias?: StorageDType;
  /** C = ... + beta * C: reads C before writing it (gradient accumulation). */
  accumulate?: boolean;
  /** C = ... + T·op(L), a small-rank product added as each output is stored (matmul-low-rank.ts). */
  lowRank?: LowRankOperands;
}

/**
 * Sizes of one call: `batch` products of (M, K) x (K, N). Strides in elements: between batch
 * items (0 broadcasts one operand), and between stored rows (lda, ldb, ldc; default packed), so
 * operands can be strided views such as one head's columns of a fused projection.
 */
export interface MatmulShape {
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
  alpha?: number;
  beta?: number;
  /** Where the low-rank epilogue's T and L are (with `MatmulOptions.lowRank`). */
  lowRank?: LowRankLayout;
}

/**
 * Whether an operand whose stored rows hold `cols` elements `ld` apart can be read four elements
 * at a time (16-byte loads of f32, 8-byte loads of f16 and bf16).
 */
export function vec4Ok(dtype: StorageDType, cols: number, ld: number, stride: number): boolean {
  return FLOAT_DTYPES.includes(dtype) && cols % 4 === 0 && ld % 4 === 0 && stride % 4 === 0;
}

/** Whether A and B of a call can be read as vec4 (16-byte loads) given their dtypes, layouts and strides. */
export function matmulVec4(o: MatmulOptions, shape: MatmulShape): { vecA: boolean; vecB: boolean } {
  const st = strides(shape, o);
  return { vecA: vec4Ok(o.a, o.transA ? shape.m : shape.k, st.lda, st.strideA), vecB: vec4Ok(o.b, o.transB ? shape.k : shape.n, st.ldb, st.strideB) };
}

interface Strides {
  strideA: number;
  strideB: number;
  strideC: number;
  lda: number;
  ldb: number;
  ldc: number;
}

function strides(s: MatmulShape, o: { transA: boolean; transB: boolean }): Strides {
  const lda = s.lda ?? (o.transA ? s.m : s.k);
  const ldb = s.ldb ?? (o.transB ? s.k : s.n);
  const ldc = s.ldc ?? s.n;
  return { strideA: s.strideA ?? s.m * s.k, strideB: s.strideB ?? s.k * s.n, strideC: s.strideC ?? s.m * s.n, lda, ldb, ldc };
}

/** The uniforms of a matmul call with operand layouts `o`. */
export function matmulUniforms(s: MatmulShape, o: { transA: boolean; transB: boolean }): UniformValues {
  return { M: s.m, N: s.n, K: s.k, batch: s.batch, ...strides(s, o), alpha: s.alpha ?? 1, beta: s.beta ?? 0, ...(s.lowRank ? lowRankUniforms(s.lowRank) : {}) };
}

/** A matmul kernel builder: the kernel for options and shape (one strategy's, or a test's). */
export type MatmulKernel = (o: MatmulOptions, s: MatmulShape) => KernelSpec;

/** The kernels of `strategy`, decode-shaped launches on the gemv workgroup `gemv`. */
export function matmulKernelsOf(strategy: MatmulStrategy, gemv: GemvVariant = DEFAULT_GEMV): MatmulKernel {
  return (o, s) => matmulKernel(o, s, strategy, gemv);
}

/**
 * The matmul kernel for `o`; the tiled strategy uses vec4 loads where the shape's alignment
 * allows; decode-shaped launches take the gemv kernel with the workgroup `gemv`.
 */
export function matmulKernel(o: MatmulOptions, shape: MatmulShape, strategy: MatmulStrategy = "tiled", gemv: GemvVariant = DEFAULT_GEMV): KernelSpec {
  invariant(o.out !== "bf16", "matmul writes f32 or f16");
  if (gemvFits(o, shape) && strategy !== "registers") return gemvSpec(o, shape, gemv);
  if (strategy === "registers") return registersSpec(o);
  const { vecA, vecB } = matmulVec4(o, shape);
  if (typeof strategy === "object") return subgroupMatrixSpec(o, strategy, vecA, vecB);
  return tiledSpec(o, vecA, vecB);
}

/** The uniforms of every matmul kernel, in struct order (values from `matmulUniforms`). */
const MATMUL_UNIFORMS = {
  M: "u32",
  N: "u32",
  K: "u32",
  batch: "u32",
  strideA: "u32",
  strideB: "u32",
  strideC: "u32",
  lda: "u32",
  ldb: "u32",
  ldc: "u32",
  alpha: "f32",
  beta: "f32",
} as const;

/** The uniforms of a matmul kernel for `o`: MATMUL_UNIFORMS, then the low-rank epilogue's. */
export function matmulUniformTypes(o: MatmulOptions): KernelSpec["uniforms"] {
  return o.lowRank ? { ...MATMUL_UNIFORMS, ...LOW_RANK_UNIFORMS } : MATMUL_UNIFORMS;
}

/** The bindings of a matmul kernel: a, b, [bias], [lora_t, lora_l], c. */
export function matmulBindings(o: MatmulOptions, vecA: boolean, vecB: boolean): KernelBinding[] {
  const bindings: KernelBinding[] = [
    { name: "a", dtype: o.a, access: "read", vec4: vecA },
    { name: "b", dtype: o.b, access: "read", vec4: vecB },
  ];
  if (o.bias) bindings.push({ name: "bias", dtype: o.bias, access: "read" });
  if (o.lowRank) bindings.push(...lowRankBindings(o.lowRank));
  bindings.push({ name: "c", dtype: o.out, access: "read_write" });
  return bindings;
}

/**
 * WGSL store_one(base, m, n, v) and store_row(base, m, n, v: vec4) that write outputs (m, n) /
 * (m, n..n+3) through the epilogue (alpha, bias, beta), skipping those outside M x N.
 */
// Static component indices: dynamic indexing of private arrays compiles slowly on lavapipe.
export function matmulStoreFunctions(o: MatmulOptions): string {
  const epilogue = ["u.alpha * v", o.bias ? "load_bias(n)" : "", o.lowRank ? "low_rank(base, m, n)" : "", o.accumulate ? "u.beta * load_c(ci)" : ""].filter(Boolean);
  return `${o.lowRank ? `${LOW_RANK_FUNCTION}\n` : ""}fn store_one(base: u32, m: u32, n: u32, v: f32) {
  if (m >= u.M || n >= u.N) { return; }
  let ci = base + m * u.ldc + n;
  store_c(ci, ${epilogue.join(" + ")});
}
fn store_row(base: u32, m: u32, n: u32, v: vec4<f32>) {
  store_one(base, m, n, v.x);
  store_one(base, m, n + 1u, v.y);
  store_one(base, m, n + 2u, v.z);
  store_one(base, m, n + 3u, v.w);
}`;
}

/** The variant entries every matmul kernel shares. */
export function matmulVariant(o: MatmulOptions): Record<string, string | boolean> {
  const lowRank = o.lowRank ? `${o.lowRank.t}x${o.lowRank.l}` : "none";
  return { a: o.a, b: o.b, out: o.out, transA: o.transA, transB: o.transB, bias: o.bias ?? "none", accumulate: !!o.accumulate, lowRank };
}

function registersSpec(o: MatmulOptions): KernelSpec {
  // element (row, k) of op(A) sits at a_row + k * a_step; (k, col) of op(B) at b_col + k * b_step
  const aRow = (r: string) => (o.transA ? r : `${r} * u.lda`);
  const bCol = (c: string) => (o.transB ? `${c} * u.ldb` : c);
  const aStep = o.transA ? "u.lda" : "1u";
  const bStep = o.transB ? "1u" : "u.ldb";
  const rows = [0, 1, 2, 3].map((i) => `  let ar${i} = base_a + ${aRow(`min(m + ${i}u, u.M - 1u)`)};`).join("\n");
  const cols = [0, 1, 2, 3].map((j) => `  let bc${j} = base_b + ${bCol(`min(n + ${j}u, u.N - 1u)`)};`).join("\n");
  return {
    name: "matmul_registers",
    variant: matmulVariant(o),
    uniforms: matmulUniformTypes(o),
    bindings: matmulBindings(o, false, false),
    workgroupSize: [REGISTER_WG, REGISTER_WG, 1],
    dispatch: (u) => [ceilDiv(u.N, 4 * REGISTER_WG), ceilDiv(u.M, 4 * REGISTER_WG), u.batch],
    declarations: matmulStoreFunctions(o),
    body: `  let m = gid.y * 4u;
  let n = gid.x * 4u;
  if (m >= u.M || n >= u.N) { return; }
  let base_a = wid.z * u.strideA;
  let base_b = wid.z * u.strideB;
  // rows/columns past the edge are clamped so loads stay in bounds; store_row drops them
${rows}
${cols}
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k = 0u; k < u.K; k++) {
    let ka = k * ${aStep};
    let kb = k * ${bStep};
    let bv = vec4<f32>(load_b(bc0 + kb), load_b(bc1 + kb), load_b(bc2 + kb), load_b(bc3 + kb));
    acc0 = fma(vec4<f32>(load_a(ar0 + ka)), bv, acc0);
    acc1 = fma(vec4<f32>(load_a(ar1 + ka)), bv, acc1);
    acc2 = fma(vec4<f32>(load_a(ar2 + ka)), bv, acc2);
    acc3 = fma(vec4<f32>(load_a(ar3 + ka)), bv, acc3);
  }
  let base_c = wid.z * u.strideC;
  store_row(base_c, m, n, acc0);
  store_row(base_c, m + 1u, n, acc1);
  store_row(base_c, m + 2u, n, acc2);
  store_row(base_c, m + 3u, n, acc3);`,
  };
}

/**
 * WGSL tile4_NAME(base, row, col, rows, cols, ld) -> vec4<f32>: of a stored `rows` x `cols` matrix
 * (cols contiguous, rows `ld` apart), the 4 values at (row, col..col+3), 0 outside; one vec4 load
 * when `vec` (then cols, ld, base and col are multiples of 4), else 4 scalar loads.
 */
export function matmulTile4Function(name: string, vec: boolean): string {
  return vec
    ? `fn tile4_${name}(base: u32, row: u32, col: u32, rows: u32, cols: u32, ld: u32) -> vec4<f32> {
  if (row >= rows || col >= cols) { return vec4<f32>(0.0); }
  return load4_${name}((base + row * ld + col) / 4u);
}`
    : `fn tile4_${name}(base: u32, row: u32, col: u32, rows: u32, cols: u32, ld: u32) -> vec4<f32> {
  if (row >= rows) { return vec4<f32>(0.0); }
  let i = base + row * ld + col;
  return vec4<f32>(
    select(0.0, load_${name}(i), col < cols),
    select(0.0, load_${name}(i + 1u), col + 1u < cols),
    select(0.0, load_${name}(i + 2u), col + 2u < cols),
    select(0.0, load_${name}(i + 3u), col + 3u < cols));
}`;
}

// Fills tile[k][r] (vec4 over r) for k < BK, r < TILE from an operand whose tile dimension `r`
// is M (for A) or N (for B). `across` = the stored layout is (r, K): contiguous along K.
function fillTile(tile: string, name: string, across: boolean, rDim: string, base: string, r0: string): string {
  return across
    ? `  {
    let r = lidx / 4u;
    let kq = (lidx % 4u) * 4u;
    let v = tile4_${name}(${base}, ${r0} + r, k0 + kq, u.${rDim}, u.K, u.ld${name});
    let t = kq * 16u + r / 4u;
    let lane = r % 4u;
    ${tile}[t][lane] = v.x;
    ${tile}[t + 16u][lane] = v.y;
    ${tile}[t + 32u][lane] = v.z;
    ${tile}[t + 48u][lane] = v.w;
  }`
    : `  {
    let k = lidx / 16u;
    let rq = (lidx % 16u) * 4u;
    ${tile}[k * 16u + lidx % 16u] = tile4_${name}(${base}, k0 + k, ${r0} + rq, u.K, u.${rDim}, u.ld${name});
  }`;
}

function tiledSpec(o: MatmulOptions, vecA: boolean, vecB: boolean): KernelSpec {
  return {
    name: "matmul_tiled",
    variant: { ...matmulVariant(o), vecA, vecB },
    uniforms: matmulUniformTypes(o),
    bindings: matmulBindings(o, vecA, vecB),
    workgroupSize: [16, 16, 1],
    dispatch: (u) => [ceilDiv(u.N, TILE), ceilDiv(u.M, TILE), u.batch],
    declarations: `${matmulTile4Function("a", vecA)}
${matmulTile4Function("b", vecB)}
var<workgroup> tile_a: array<vec4<f32>, ${(BK * TILE) / 4}>; // [k][m / 4]
var<workgroup> tile_b: array<vec4<f32>, ${(BK * TILE) / 4}>; // [k][n / 4]
${matmulStoreFunctions(o)}`,
    body: `  let m0 = wid.y * ${TILE}u;
  let n0 = wid.x * ${TILE}u;
  let base_a = wid.z * u.strideA;
  let base_b = wid.z * u.strideB;
  var acc: array<vec4<f32>, 4>; // rows m0 + 4*lid.y + i, columns n0 + 4*lid.x .. +3
  for (var k0 = 0u; k0 < u.K; k0 += ${BK}u) {
${fillTile("tile_a", "a", !o.transA, "M", "base_a", "m0")}
${fillTile("tile_b", "b", o.transB, "N", "base_b", "n0")}
    workgroupBarrier();
    for (var k = 0u; k < ${BK}u; k++) {
      let av = tile_a[k * 16u + lid.y];
      let bv = tile_b[k * 16u + lid.x];
      acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
      acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
      acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
      acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
    }
    workgroupBarrier();
  }
  let row = m0 + lid.y * 4u;
  let col = n0 + lid.x * 4u;
  let base_c = wid.z * u.strideC;
  store_row(base_c, row, col, acc[0]);
  store_row(base_c, row + 1u, col, acc[1]);
  store_row(base_c, row + 2u, col, acc[2]);
  store_row(base_c, row + 3u, col, acc[3]);`,
  };
}

// ---- float64 CPU reference ----

/** C = alpha * op(A) op(B) + bias + beta * C0, per batch item; the same layouts as the kernel. */
export function matmulRef(
  a: Float64Array,
  b: Float64Array,
  o: { transA: boolean; transB: boolean },
  s: MatmulShape,
  extra: { bias?: Float64Array; c0?: Float64Array; lowRank?: { t: Float64Array; l: Float64Array; layout: LowRankLayout } } = {},
): Float64Array {
  const { strideA, strideB, strideC, lda, ldb, ldc } = strides(s, o);
  const alpha = s.alpha ?? 1;
  const beta = s.beta ?? 0;
  const c = new Float64Array(Math.max(extra.c0?.length ?? 0, (s.batch - 1) * strideC + (s.m - 1) * ldc + s.n));
  if (extra.c0) c.set(extra.c0);
  const product = extra.lowRank && lowRankProduct(extra.lowRank.layout, s.batch, s.m, s.n);
  const lowRank = product && matmulRef(extra.lowRank!.t, extra.lowRank!.l, product.trans, product.shape); // (batch, M, N)
  // element k of row m of op(A) at aRow + k * aStep
  const aStep = o.transA ? lda : 1;
  const sums = new Float64Array(s.n); // row m of op(A) op(B), each sum taken over k in order
  for (let z = 0; z < s.batch; z++) {
    for (let m = 0; m < s.m; m++) {
      const aRow = z * strideA + (o.transA ? m : m * lda);
      if (o.transB) {
        // B stored (N, K): a dot product of two runs along K per output
        for (let n = 0; n < s.n; n++) {
          const bRow = z * strideB + n * ldb;
          let sum = 0;
          for (let k = 0; k < s.k; k++) sum += a[aRow + k * aStep] * b[bRow + k];
          sums[n] = sum;
        }
      } else {
        // B stored (K, N): rows of B scaled into the sums (walking B's columns would miss the cache)
        sums.fill(0);
        for (let k = 0; k < s.k; k++) {
          const av = a[aRow + k * aStep];
          const bRow = z * strideB + k * ldb;
          for (let n = 0; n < s.n; n++) sums[n] += av * b[bRow + n];
        }
      }
      for (let n = 0; n < s.n; n++) {
        const sum = sums[n];
        const i = z * strideC + m * ldc + n;
        c[i] = alpha * sum + (extra.bias ? extra.bias[n] : 0) + (lowRank ? lowRank[(z * s.m + m) * s.n + n] : 0) + (extra.c0 ? beta * extra.c0[i] : 0);
      }
    }
  }
  return c;
}
