// The "registers" matmul (matmul.ts), for CPU adapters such as lavapipe: 4x4 outputs per
// invocation of an 8x8 workgroup read straight from storage, no workgroup memory and no
// barriers; lavapipe runs it several times faster than the tiled kernel, because its caches do
// the tiling.
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { matmulBindings, matmulStoreFunctions, matmulUniformTypes, matmulVariant, type MatmulOptions } from "./matmul.ts";

const REGISTER_WG = 8; // registers: workgroup side; each invocation owns 4x4 outputs

/** The registers kernel for `o` (no vec4 loads: each invocation reads its rows and columns as scalars). */
export function registersSpec(o: MatmulOptions): KernelSpec {
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
