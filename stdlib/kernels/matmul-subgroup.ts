// Matmul on subgroup matrices (WGSL `chromium_experimental_subgroup_matrix`; on NVIDIA through
// Vulkan cooperative matrices, i.e. tensor cores). Same interface as the other strategies of
// matmul.ts: any M/N/K, transposes, strides and batches, bias and accumulation, A and B in any
// storage dtype.
//
// Precision: the products take f16 inputs. Each operand value is converted to f16 as it enters
// workgroup memory (rounded to nearest; |x| > 65504 becomes inf), then multiplied on the matrix
// units with f32 accumulation where the adapter offers an f16->f32 configuration (like PyTorch
// autocast), else f16 accumulation. SFT_MATMUL=tiled keeps f32 inputs.
//
// Per workgroup one output tile computed by a grid of subgroups (default 2x2: a 64x64 tile,
// workgroup size 4 x subgroup size; 1x1: a 32x32 tile, one subgroup), each owning 32x32
// outputs as (32/M) x (32/N) result matrices of the configuration's M x N. K advances in steps
// of 32: every invocation converts its share of the A tile (rows x 32, stored [m][k]) and the B
// tile (32 x columns, stored [k][n]) to f16 in workgroup memory, zero outside M/N/K; after a
// barrier each subgroup loads left and right matrices from there and multiply-accumulates. The
// epilogue stores one result matrix per subgroup at a time into workgroup scratch, from where
// each lane writes its share of C through the bounds-checked epilogue of matmul.ts (alpha,
// bias, beta). Every subgroup-matrix call and barrier sits in control flow that depends only
// on uniforms. With a 2x2 grid a subgroup's offsets into the tiles come from its index,
// local index / subgroup size, which the WGSL uniformity analysis cannot prove uniform per
// subgroup: that check is switched off around the matrix calls, which relies on subgroups
// being consecutive local indices (full subgroups of the adapter's fixed size, as on NVIDIA).
// The 1x1 grid makes no such assumption. Loads and stores use the form with a runtime
// `col_major` argument (false: row-major), which this Dawn marks deprecated but which is the one
// checked exact on NVIDIA; the templated form replacing it is newer than some Dawn builds.
import { invariant } from "../../compiler/diagnostics.ts";
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { MATMUL_UNIFORMS, matmulBindings, matmulStoreFunctions, matmulVariant, type MatmulOptions } from "./matmul.ts";

const SUBGROUP_TILE = 32; // output rows and columns per subgroup
const BK = 32; // K per step

/** One shape the adapter's matrix units support (dawn.node `adapter.info.subgroupMatrixConfigs`). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** The subgroup-matrix strategy: the configuration, the adapter's (fixed) subgroup size, the subgroup grid. */
export interface SubgroupMatrixStrategy {
  kind: "subgroup-matrix";
  config: SubgroupMatrixConfig;
  subgroupSize: number;
  /** Subgroups per side of the workgroup's tile (default 2: 4 subgroups, a 64x64 tile). */
  grid?: 1 | 2;
}

// the tile geometry needs the matrix sides to divide the subgroup's 32x32 outputs and the K
// step, and a result matrix to split evenly over the lanes in the epilogue
const fits = (c: SubgroupMatrixConfig, subgroupSize: number) =>
  SUBGROUP_TILE % c.M === 0 && SUBGROUP_TILE % c.N === 0 && BK % c.K === 0 && (c.M * c.N) % subgroupSize === 0;

/**
 * The configuration the kernel uses among the adapter's: f16 inputs; f32 results preferred over
 * f16; 16x16x16 preferred, then larger shapes (fewer matrix operations per tile). Undefined when
 * none fits the kernel's tiles with subgroups of `subgroupSize` lanes.
 */
export function subgroupMatrixConfigFor(configs: readonly SubgroupMatrixConfig[], subgroupSize = 32): SubgroupMatrixConfig | undefined {
  const usable = configs.filter(
    (c) => c.componentType === "f16" && (c.resultComponentType === "f32" || c.resultComponentType === "f16") && fits(c, subgroupSize),
  );
  const rank = (c: SubgroupMatrixConfig) => [c.resultComponentType === "f32" ? 0 : 1, c.M === 16 && c.N === 16 && c.K === 16 ? 0 : 1, -c.M * c.N * c.K];
  const before = (x: SubgroupMatrixConfig, y: SubgroupMatrixConfig) => {
    const [a, b] = [rank(x), rank(y)];
    const i = a.findIndex((v, j) => v !== b[j]);
    return i < 0 ? 0 : a[i] - b[i];
  };
  return [...usable].sort(before)[0];
}

/** The relative-error tolerance of the kernel against a float64 reference on f16-rounded inputs. */
export function subgroupMatrixTolerance(config: SubgroupMatrixConfig): number {
  // Products of two f16 values are exact in f32, so with f32 results only the accumulation
  // rounds; matrix units need not round to nearest in their adds, so allow 10x the f32
  // strategies' 1e-5 (still far below the 2^-11 of f16 input rounding, which the reference
  // shares). f16 results round every partial sum to 11 bits: ~sqrt(K) * 2^-11 over K of 1-4k.
  return config.resultComponentType === "f32" ? 1e-4 : 3e-2;
}

// Fills `tile` (f16, stored [r][k] for A or [k][r] for B as `kMajor` says) with the current K
// step of an operand whose tile dimension r is M or N. Consecutive invocations read along the
// operand's contiguous dimension (`alongK`), so storage reads coalesce.
function fillTile(tile: string, name: string, alongK: boolean, kMajor: boolean, rDim: string, r0: string, tileSide: number, wg: number): string {
  const count = tileSide * BK;
  invariant(count % wg === 0, "the workgroup divides the tile");
  const [r, k] = alongK ? [`i / ${BK}u`, `i % ${BK}u`] : [`i % ${tileSide}u`, `i / ${tileSide}u`];
  const at = kMajor ? `k * ${tileSide}u + r` : `r * ${BK}u + k`;
  const index = alongK ? `(${r0} + r) * u.ld${name} + k0 + k` : `(k0 + k) * u.ld${name} + ${r0} + r`;
  return `    for (var j = 0u; j < ${count / wg}u; j++) {
      let i = lidx + j * ${wg}u;
      let r = ${r};
      let k = ${k};
      var v = 0.0;
      if (${r0} + r < u.${rDim} && k0 + k < u.K) { v = load_${name}(base_${name} + ${index}); }
      ${tile}[${at}] = f16(v);
    }`;
}

/** The subgroup-matrix matmul kernel for `o` with configuration `s.config`. */
export function subgroupMatrixSpec(o: MatmulOptions, s: SubgroupMatrixStrategy): KernelSpec {
  const c = s.config;
  invariant(c.componentType === "f16" && fits(c, s.subgroupSize), `subgroup-matrix config ${c.componentType} ${c.M}x${c.N}x${c.K} does not fit the 32x32 subgroup tile of ${s.subgroupSize} lanes`);
  const sg = s.subgroupSize;
  const grid = s.grid ?? 2;
  const subgroups = grid * grid;
  const tile = grid * SUBGROUP_TILE; // output rows and columns per workgroup
  const wg = subgroups * sg;
  const result = c.resultComponentType;
  const rows = SUBGROUP_TILE / c.M; // result matrices per subgroup down M
  const cols = SUBGROUP_TILE / c.N; // and across N
  const pairs = Array.from({ length: rows * cols }, (_, x) => [Math.floor(x / cols), x % cols] as const);
  const left = `subgroup_matrix_left<f16, ${c.K}, ${c.M}>`;
  const right = `subgroup_matrix_right<f16, ${c.N}, ${c.K}>`;
  const resultType = `subgroup_matrix_result<${result}, ${c.N}, ${c.M}>`;
  const perLane = (c.M * c.N) / sg;
  const steps = Array.from({ length: BK / c.K }, (_, kk) => {
    const lefts = Array.from({ length: rows }, (_, i) => `      let l${i} = subgroupMatrixLoad<${left}>(&tile_a, (sm + ${i * c.M}u) * ${BK}u + ${kk * c.K}u, false, ${BK}u);`);
    const rights = Array.from({ length: cols }, (_, j) => `      let r${j} = subgroupMatrixLoad<${right}>(&tile_b, ${kk * c.K * tile}u + sn + ${j * c.N}u, false, ${tile}u);`);
    const products = pairs.map(([i, j]) => `      acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc_${i}_${j});`);
    return `    {\n${[...lefts, ...rights, ...products].join("\n")}\n    }`;
  });
  const epilogue = pairs.map(
    ([i, j]) => `  subgroupMatrixStore(&scratch, sg_base, acc_${i}_${j}, false, ${c.N}u);
  workgroupBarrier();
  for (var e = 0u; e < ${perLane}u; e++) {
    let x = lane + e * ${sg}u;
    store_one(base_c, m0 + sm + ${i * c.M}u + x / ${c.N}u, n0 + sn + ${j * c.N}u + x % ${c.N}u, f32(scratch[sg_base + x]));
  }
  workgroupBarrier();`,
  );
  return {
    name: "matmul_subgroup_matrix",
    variant: { ...matmulVariant(o), config: `${c.componentType}>${result}:${c.M}x${c.N}x${c.K}`, subgroup: sg, grid },
    uniforms: MATMUL_UNIFORMS,
    bindings: matmulBindings(o, false, false),
    workgroupSize: [wg, 1, 1],
    dispatch: (u) => [ceilDiv(u.N, tile), ceilDiv(u.M, tile), u.batch],
    enables: ["f16", "chromium_experimental_subgroup_matrix"],
    declarations: `var<workgroup> tile_a: array<f16, ${tile * BK}>; // [m][k] of the step
var<workgroup> tile_b: array<f16, ${BK * tile}>; // [k][n] of the step
var<workgroup> scratch: array<${result}, ${subgroups * c.M * c.N}>; // one result matrix per subgroup
${matmulStoreFunctions(o)}`,
    body: `  let m0 = wid.y * ${tile}u;
  let n0 = wid.x * ${tile}u;
  let base_a = wid.z * u.strideA;
  let base_b = wid.z * u.strideB;
  let base_c = wid.z * u.strideC;
  let subgroup = lidx / ${sg}u;
  let lane = lidx % ${sg}u;
  let sm = (subgroup / ${grid}u) * ${SUBGROUP_TILE}u; // the subgroup's rows and columns within the tile
  let sn = (subgroup % ${grid}u) * ${SUBGROUP_TILE}u;
  let sg_base = subgroup * ${c.M * c.N}u;
${pairs.map(([i, j]) => `  var acc_${i}_${j} = ${resultType}();`).join("\n")}
  for (var k0 = 0u; k0 < u.K; k0 += ${BK}u) {
${fillTile("tile_a", "a", !o.transA, false, "M", "m0", tile, wg)}
${fillTile("tile_b", "b", o.transB, true, "N", "n0", tile, wg)}
    workgroupBarrier();
    @diagnostic(off, chromium.subgroup_matrix_uniformity) {
${steps.join("\n")}
    }
    workgroupBarrier();
  }
  @diagnostic(off, chromium.subgroup_matrix_uniformity) {
${epilogue.join("\n")}
  }`,
  };
}
