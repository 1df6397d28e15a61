// Matmul for few rows (decode): C = alpha * op(A) W^T [+ bias] [+ beta * C] with W stored
// (N, K) (transB) and M <= 8. The tiled kernels waste almost all of a 64x64 tile at M = 1;
// here the product is bound by reading W once, so each workgroup owns GEMV_COLS rows of W
// (output columns n), its invocations stride along K reading W as vec4 where the layout allows
// (else four scalars, bf16 included), multiply with the M activation rows (small: they stay in
// cache) and the workgroup sums its partial dot products: by a tree reduction in workgroup
// memory, or (GemvVariant.subgroupSize) within each subgroup first (subgroupAdd), then over the
// subgroups' sums after one barrier. Which variant and workgroup size is fastest is the device's
// to measure (runtime/gpu/gemv-tuning.ts). The B accessor is the only way W is read. The NF4
// accessor (nf4-matmul.ts) decodes 4-bit codes either 32 a step (MatmulOptions.bLoads32: one
// 16-byte load and one absmax for the 32) or four a step (GemvVariant.wideSteps false: 2 bytes
// and the block's absmax for every four, but more loads in flight): the device measures which.
import { invariant } from "../../compiler/diagnostics.ts";
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { matmulUniformTypes, matmulBindings, matmulStoreFunctions, matmulUniforms, matmulVariant, vec4Ok, type MatmulOptions, type MatmulShape } from "./matmul.ts";

/** A gemv kernel's workgroup: its invocations along K and how they sum their partial products. */
export interface GemvVariant {
  /** Invocations per workgroup (a power of two): more keep more loads in flight and take fewer steps along K each. */
  invocations: number;
  /**
   * Lanes per subgroup, where the adapter's subgroups have one fixed size: each subgroup sums with
   * subgroupAdd, then one barrier and a short sum over the subgroups. The subgroups are taken to be
   * consecutive local indices, as the subgroup-matrix matmul takes them; the tuning checks a variant
   * on the device before the engine uses it (and again at each start that reads it from the tuning
   * file). Without it, a tree reduction in workgroup memory.
   */
  subgroupSize?: number;
  /**
   * K steps per loop iteration (default 1): with 2, an invocation issues the loads of two steps
   * (eight 16-byte loads of W at four columns) before it multiplies, so twice the bytes are in
   * flight while it waits for memory. Steps of 32 elements (`bLoads32`) take one at a time.
   */
  unroll?: 1 | 2;
  /**
   * Whether W is read 32 elements a step where its accessor decodes 32 at once (MatmulOptions.
   * bLoads32: NF4 weights) and the layout allows (default true); false keeps four a step, each
   * decoding its block's absmax again. Which is faster is the device's to measure: 32 a step
   * keeps fewer loads in flight per invocation (lavapipe times it slower).
   */
  wideSteps?: boolean;
}

/** The workgroup the engine uses where the device has tuned none. */
export const DEFAULT_GEMV: GemvVariant = { invocations: 64 };
const GEMV_COLS = 4; // output columns (rows of W) per workgroup
const WIDE_STEP = 32; // elements of W per invocation step where B's accessor decodes 32 at once
// The most rows of A a 32-element step takes: each row keeps 32 activations in registers beside a
// column's 32 weights, so more rows would likely spill (eight would hold 256 activations; an
// expectation, not measured).
const WIDE_MAX_ROWS = 2;
/** The most rows of op(A) the kernel takes. */
export const GEMV_MAX_ROWS = 8;

/**
 * Whether a launch is a decode-shaped product for the gemv kernel: W stored (N, K), M <= 8, and,
 * where every batch item shares one W (stride 0), few rows in all (else the tiled kernels read W fewer times).
 */
export function gemvFits(o: { transB: boolean }, s: MatmulShape): boolean {
  if (!o.transB || s.m > GEMV_MAX_ROWS) return false;
  return s.strideB !== 0 || s.batch * s.m <= GEMV_MAX_ROWS;
}

// the compiled row count: M rounded up to a power of two, so few pipelines serve every M <= 8
function rowsFor(m: number): number {
  return m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
}

/** The gemv kernel for `o` (transB) at `shape`'s M and alignment, with the workgroup of `variant`. */
export function gemvSpec(o: MatmulOptions, shape: MatmulShape, variant: GemvVariant = DEFAULT_GEMV): KernelSpec {
  const { invocations, subgroupSize: lanes, unroll = 1 } = variant;
  invariant(o.transB && shape.m <= GEMV_MAX_ROWS, "gemv reads W stored (N, K) and at most 8 rows of A");
  invariant(invocations >= 2 && (invocations & (invocations - 1)) === 0, `gemv: ${invocations} invocations is not a power of two`);
  invariant(lanes === undefined || (lanes > 0 && invocations % lanes === 0), `gemv: ${invocations} invocations are not whole subgroups of ${lanes}`);
  // the partial sums, rows x invocations (or subgroups) vec4, within the 16 KiB of workgroup memory every adapter offers
  const partials = rowsFor(shape.m) * (invocations / (lanes ?? 1));
  invariant(partials * 16 <= 16384, `gemv: ${partials} partial sums (${invocations} invocations${lanes ? ` in subgroups of ${lanes}` : ""}, ${rowsFor(shape.m)} rows) exceed 16 KiB of workgroup memory`);
  const st = matmulUniforms(shape, o);
  const vecA = !o.transA && vec4Ok(o.a, shape.k, st.lda, st.strideA);
  const vecB = vec4Ok(o.b, shape.k, st.ldb, st.strideB);
  const rows = rowsFor(shape.m);
  // 32-element steps where B's accessor takes them and every step lies inside one of its aligned
  // groups of a stored row (K, the row stride and the batch stride whole groups), so K has no tail
  const wide = rows <= WIDE_MAX_ROWS && !!o.bLoads32 && variant.wideSteps !== false && [shape.k, st.ldb, st.strideB].every((x) => x % WIDE_STEP === 0);
  const r = [...Array(rows).keys()];
  const c = [...Array(GEMV_COLS).keys()];
  // element (m, k) of op(A) and (n, k) of W = (k, n) of op(B)
  const aAt = (m: string, k: string) => (o.transA ? `base_a + (${k}) * u.lda + ${m}` : `base_a + ${m} * u.lda + ${k}`);
  const a4 = vecA
    ? `fn a_row4(base_a: u32, m: u32, k: u32) -> vec4<f32> { return load4_a((${aAt("m", "k")}) / 4u); }`
    : `fn a_row4(base_a: u32, m: u32, k: u32) -> vec4<f32> {
  return vec4<f32>(load_a(${aAt("m", "k")}), load_a(${aAt("m", "k + 1u")}), load_a(${aAt("m", "k + 2u")}), load_a(${aAt("m", "k + 3u")}));
}`;
  const b4 = vecB
    ? `fn w_row4(i: u32) -> vec4<f32> { return load4_b(i / 4u); }`
    : `fn w_row4(i: u32) -> vec4<f32> { return vec4<f32>(load_b(i), load_b(i + 1u), load_b(i + 2u), load_b(i + 3u)); }`;
  // rows past M and columns past N are clamped so loads stay in bounds; the stores drop them
  const sums: Sums = (term) => r.map((i) => `    acc${i} += vec4<f32>(${c.map((j) => term(i, j)).join(", ")});`).join("\n");
  // the K % 4 tail, one k per invocation; a vec4 operand means K % 4 = 0 (and no scalar accessor)
  const tail =
    vecA || vecB || wide
      ? ""
      : `  for (var k = k4 + lidx; k < u.K; k += ${invocations}u) {
${c.map((j) => `    let b${j} = load_b(w${j} + k);`).join("\n")}
${r.map((i) => `    let a${i} = load_a(${aAt(`m${i}`, "k")});`).join("\n")}
${sums((i, j) => `a${i} * b${j}`)}
  }`;
  return {
    name: "matmul_gemv",
    variant: { ...matmulVariant(o), vecA, vecB, rows, invocations, lanes: lanes ?? 0, unroll: wide ? 1 : unroll, b32: wide },
    uniforms: matmulUniformTypes(o),
    bindings: matmulBindings(o, vecA, vecB),
    workgroupSize: [invocations, 1, 1],
    dispatch: (u) => [ceilDiv(u.N, GEMV_COLS), 1, u.batch],
    ...(lanes === undefined ? {} : { enables: ["subgroups"] }),
    declarations: `${a4}
${wide ? "" : b4}
var<workgroup> partial: array<vec4<f32>, ${partials}>; // [row][invocation or subgroup], columns n0..n0+3
${matmulStoreFunctions(o)}`,
    body: `  let n0 = wid.x * ${GEMV_COLS}u;
  let base_a = wid.z * u.strideA;
  let base_b = wid.z * u.strideB;
${r.map((i) => `  let m${i} = min(${i}u, u.M - 1u);`).join("\n")}
${c.map((j) => `  let w${j} = base_b + min(n0 + ${j}u, u.N - 1u) * u.ldb;`).join("\n")}
${r.map((i) => `  var acc${i} = vec4<f32>(0.0); // (m${i}, n0..n0+3)`).join("\n")}
${wide ? wideSteps(r, c, invocations) : fourSteps(r, c, invocations, unroll, sums)}
${tail}
${lanes === undefined ? treeSum(rows, invocations) : subgroupSum(rows, invocations, lanes)}`,
  };
}

// Steps of four elements along K (two an iteration with `unroll`), up to K rounded down to 4.
function fourSteps(r: number[], c: number[], invocations: number, unroll: 1 | 2, sums: Sums): string {
  return `  let k4 = u.K & ~3u;
  var k = lidx * 4u;
${unroll === 2 ? pairedSteps(r, c, invocations, sums) : ""}
  for (; k < k4; k += ${invocations * 4}u) {
${c.map((j) => `    let b${j} = w_row4(w${j} + k);`).join("\n")}
${r.map((i) => `    let a${i} = a_row4(base_a, m${i}, k);`).join("\n")}
${sums((i, j) => `dot(a${i}, b${j})`)}
  }`;
}

// Steps of 32 elements along K: each row's 32 activations as eight vec4, then column by column
// its 32 weights from one decode (load32_b) and their products summed into that column's
// accumulator: the code needs one column's weights at a time.
function wideSteps(r: number[], c: number[], invocations: number): string {
  const pieces = [...Array(WIDE_STEP / 4).keys()];
  return `  for (var k = lidx * ${WIDE_STEP}u; k < u.K; k += ${invocations * WIDE_STEP}u) {
${r.map((i) => pieces.map((p) => `    let a${i}_${p} = a_row4(base_a, m${i}, k + ${4 * p}u);`).join("\n")).join("\n")}
${c.map((j) => `    let b${j} = load32_b((w${j} + k) / ${WIDE_STEP}u);\n${r.map((i) => `    acc${i}[${j}] += ${pieces.map((p) => `dot(a${i}_${p}, b${j}[${p}])`).join(" + ")};`).join("\n")}`).join("\n")}
  }`;
}

type Sums = (term: (i: number, j: number) => string) => string;

// Two K steps an iteration: every load of both (W's four columns, A's rows) before the products;
// the single-step loop after it takes the last step where their number is odd.
function pairedSteps(r: number[], c: number[], invocations: number, sums: Sums): string {
  const step = `${invocations * 4}u`;
  return `  for (; k + ${step} < k4; k += 2u * ${step}) {
${c.map((j) => `    let b${j} = w_row4(w${j} + k);\n    let d${j} = w_row4(w${j} + k + ${step});`).join("\n")}
${r.map((i) => `    let a${i} = a_row4(base_a, m${i}, k);\n    let e${i} = a_row4(base_a, m${i}, k + ${step});`).join("\n")}
${sums((i, j) => `dot(a${i}, b${j}) + dot(e${i}, d${j})`)}
  }`;
}

// Row i's partial sums [i][invocation] halved log2(invocations) times, a barrier before each step.
function treeSum(rows: number, invocations: number): string {
  const r = [...Array(rows).keys()];
  return `${r.map((i) => `  partial[${i * invocations}u + lidx] = acc${i};`).join("\n")}
  for (var s = ${invocations / 2}u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lidx < s) {
${r.map((i) => `      partial[${i * invocations}u + lidx] += partial[${i * invocations}u + lidx + s];`).join("\n")}
    }
  }
  workgroupBarrier();
  if (lidx < ${rows}u) {
    store_row(wid.z * u.strideC, lidx, n0, partial[lidx * ${invocations}u]);
  }`;
}

// Row i's sums within each subgroup (subgroupAdd), its first lane's written to [i][subgroup]; after
// one barrier, invocation i adds its row's subgroup sums. Called after the K loop, where every
// invocation of the workgroup is active again.
function subgroupSum(rows: number, invocations: number, lanes: number): string {
  const r = [...Array(rows).keys()];
  const subgroups = invocations / lanes;
  return `${r.map((i) => `  let sum${i} = subgroupAdd(acc${i});`).join("\n")}
  if (lidx % ${lanes}u == 0u) {
${r.map((i) => `    partial[${i * subgroups}u + lidx / ${lanes}u] = sum${i};`).join("\n")}
  }
  workgroupBarrier();
  if (lidx < ${rows}u) {
    var total = vec4<f32>(0.0);
    for (var g = 0u; g < ${subgroups}u; g++) {
      total += partial[lidx * ${subgroups}u + g];
    }
    store_row(wid.z * u.strideC, lidx, n0, total);
  }`;
}
