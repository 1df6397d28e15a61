// Batched matmul C = alpha * op(A) op(B) [+ bias] [+ beta * C], op = identity or transpose: the
// options and shapes of a call, its uniforms and bindings, the store epilogue every kernel
// shares, and the kernel for a strategy. Strategies, all with f32 accumulation and any size:
// - "tiled" (GPUs): matmul-tiled.ts, 64x64 output tiles through workgroup memory.
// - "registers" (CPU adapters such as lavapipe): matmul-registers.ts, no workgroup memory.
// - "subgroup-matrix" (adapters with subgroup matrices, e.g. NVIDIA tensor cores through
//   Vulkan cooperative matrices): matmul-subgroup.ts; products take f16 inputs.
// - decode-shaped launches (W stored (N, K), at most 8 rows) take matmul-gemv.ts, which streams W
//   once, with every strategy but "registers": lavapipe decodes faster with the registers kernel.
// Which strategy an adapter gets, and SFT_MATMUL / SFT_MATMUL_TILING: matmul-strategy.ts. Last,
// the float64 CPU reference with the same layouts.
import { invariant } from "../../compiler/diagnostics.ts";
import { FLOAT_DTYPES, type StorageDType } from "./dtype.ts";
import type { KernelBinding, KernelSpec, UniformValues } from "./kernel.ts";
import { DEFAULT_GEMV, gemvFits, gemvSpec, type GemvVariant } from "./matmul-gemv.ts";
import { LOW_RANK_FUNCTION, LOW_RANK_UNIFORMS, lowRankBindings, lowRankProduct, lowRankUniforms, type LowRankLayout, type LowRankOperands } from "./matmul-low-rank.ts";
import { registersSpec } from "./matmul-registers.ts";
import type { MatmulStrategy } from "./matmul-strategy.ts";
import { subgroupMatrixSpec } from "./matmul-subgroup.ts";
import { tiledSpec } from "./matmul-tiled.ts";

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
  /**
   * B's accessor also decodes 32 stored elements at once, `load32_b(j) -> array<vec4<f32>, 8>`
   * for elements 32j..32j+31 (a packed format reads them with one 16-byte load: nf4-matmul.ts).
   * The gemv kernel then steps 32 elements along K where the layout allows and says so
   * with `b32` in its variant; otherwise, and in the other kernels, B is read four at a time.
   */
  bLoads32?: boolean;
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
