// Matmul for few rows (decode): C = alpha * op(A) W^T [+ bias] [+ beta * C] with W stored
// (N, K) (transB) and M <= 8. The tiled kernels waste almost all of a 64x64 tile at M = 1;
// here the product is bound by reading W once, so each workgroup owns GEMV_COLS rows of W
// (output columns n), its invocations stride along K reading W as vec4 where the layout allows
// (else four scalars, bf16 included), multiply with the M activation rows (small: they stay in
// cache) and the workgroup sums its partial dot products by a tree reduction in workgroup memory.
// The B accessor is the only way W is read, so the NF4 accessor (nf4-matmul.ts) streams 4-bit codes.
import { invariant } from "../../compiler/diagnostics.ts";
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { matmulUniformTypes, matmulBindings, matmulStoreFunctions, matmulUniforms, matmulVariant, vec4Ok, type MatmulOptions, type MatmulShape } from "./matmul.ts";

/** Invocations per workgroup, along K, by default. */
const GEMV_WG = 64;
const GEMV_COLS = 4; // output columns (rows of W) per workgroup
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

/**
 * The gemv kernel for `o` (transB) at `shape`'s M and alignment, with `invocations` (a power of
 * two) per workgroup along K: more of them keep more loads in flight at once and take fewer
 * steps along K each; the benchmark compares 64 and 256 on decode shapes.
 */
export function gemvSpec(o: MatmulOptions, shape: MatmulShape, invocations = GEMV_WG): KernelSpec {
  invariant(o.transB && shape.m <= GEMV_MAX_ROWS, "gemv reads W stored (N, K) and at most 8 rows of A");
  invariant(invocations >= 2 && (invocations & (invocations - 1)) === 0, `gemv: ${invocations} invocations is not a power of two`);
  // the partial sums, rows x invocations vec4, within the 16 KiB of workgroup memory every adapter offers
  invariant(rowsFor(shape.m) * invocations * 16 <= 16384, `gemv: ${invocations} invocations over ${rowsFor(shape.m)} rows exceed 16 KiB of workgroup memory`);
  const st = matmulUniforms(shape, o);
  const vecA = !o.transA && vec4Ok(o.a, shape.k, st.lda, st.strideA);
  const vecB = vec4Ok(o.b, shape.k, st.ldb, st.strideB);
  const rows = rowsFor(shape.m);
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
  const sums = (term: (i: number, j: number) => string) => r.map((i) => `    acc${i} += vec4<f32>(${c.map((j) => term(i, j)).join(", ")});`).join("\n");
  // the K % 4 tail, one k per invocation; a vec4 operand means K % 4 = 0 (and no scalar accessor)
  const tail =
    vecA || vecB
      ? ""
      : `  for (var k = k4 + lidx; k < u.K; k += ${invocations}u) {
${c.map((j) => `    let b${j} = load_b(w${j} + k);`).join("\n")}
${r.map((i) => `    let a${i} = load_a(${aAt(`m${i}`, "k")});`).join("\n")}
${sums((i, j) => `a${i} * b${j}`)}
  }`;
  return {
    name: "matmul_gemv",
    variant: { ...matmulVariant(o), vecA, vecB, rows, invocations },
    uniforms: matmulUniformTypes(o),
    bindings: matmulBindings(o, vecA, vecB),
    workgroupSize: [invocations, 1, 1],
    dispatch: (u) => [ceilDiv(u.N, GEMV_COLS), 1, u.batch],
    declarations: `${a4}
${b4}
var<workgroup> partial: array<vec4<f32>, ${rows * invocations}>; // [row][invocation], columns n0..n0+3
${matmulStoreFunctions(o)}`,
    body: `  let n0 = wid.x * ${GEMV_COLS}u;
  let base_a = wid.z * u.strideA;
  let base_b = wid.z * u.strideB;
${r.map((i) => `  let m${i} = min(${i}u, u.M - 1u);`).join("\n")}
${c.map((j) => `  let w${j} = base_b + min(n0 + ${j}u, u.N - 1u) * u.ldb;`).join("\n")}
${r.map((i) => `  var acc${i} = vec4<f32>(0.0); // (m${i}, n0..n0+3)`).join("\n")}
  let k4 = u.K & ~3u;
  for (var k = lidx * 4u; k < k4; k += ${invocations * 4}u) {
${c.map((j) => `    let b${j} = w_row4(w${j} + k);`).join("\n")}
${r.map((i) => `    let a${i} = a_row4(base_a, m${i}, k);`).join("\n")}
${sums((i, j) => `dot(a${i}, b${j})`)}
  }
${tail}
${r.map((i) => `  partial[${i * invocations}u + lidx] = acc${i};`).join("\n")}
  for (var s = ${invocations / 2}u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lidx < s) {
${r.map((i) => `      partial[${i * invocations}u + lidx] += partial[${i * invocations}u + lidx + s];`).join("\n")}
    }
  }
  workgroupBarrier();
  if (lidx < ${rows}u) {
    store_row(wid.z * u.strideC, lidx, n0, partial[lidx * ${invocations}u]);
  }`,
  };
}
