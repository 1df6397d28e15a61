// The "tiled" matmul (matmul.ts), for GPUs: a 64x64 output tile per 16x16 workgroup, 4x4
// outputs per invocation in registers, K in steps of 16 through workgroup memory; operands load
// as vec4 when their contiguous dimension allows it, else as guarded scalars (bf16 included).
// Its tile loads (tile4_NAME) also fill the subgroup-matrix kernel's tiles (matmul-subgroup.ts).
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { matmulBindings, matmulStoreFunctions, matmulUniformTypes, matmulVariant, type MatmulOptions } from "./matmul.ts";

const TILE = 64; // tiled: output rows and columns per workgroup
const BK = 16; // tiled: K per step

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

/** The tiled kernel for `o`, loading A and B as vec4 where `vecA` and `vecB` say (matmulVec4). */
export function tiledSpec(o: MatmulOptions, vecA: boolean, vecB: boolean): KernelSpec {
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
