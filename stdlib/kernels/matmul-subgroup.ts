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
// Per workgroup one output tile computed by a grid of subgroups, each owning a block of outputs
// as a grid of result matrices of the configuration's M x N; the geometry is a `SubgroupTiling`
// (named presets in SUBGROUP_TILINGS; the engine uses DEFAULT_SUBGROUP_TILING). K advances in
// steps of `bk`: every invocation converts its share of the A tile (rows x bk, stored [m][k]) and
// the B tile (bk x columns, stored [k][n]) to f16 in workgroup memory, zero outside M/N/K, with
// scalar loads, or 16-byte ones where the tiling asks and the operand's layout allows; after a
// barrier each subgroup loads left and right matrices from there and multiply-accumulates. Tile
// rows may be padded (`pad` halves, keeping rows 16-byte aligned) against bank conflicts. With
// `prefetch` a step's 16-byte loads go to registers during the previous step (issued before its
// barrier and products) and from there to the tiles at the start of the step. With
// `doubleBuffer` the steps alternate between two tile sets: a step fills one set while slower
// subgroups may still read the other, so one barrier per step suffices (a subgroup reaches the
// fill of a set only after every subgroup passed the barrier following its last read of it).
// The epilogue stores one result matrix per subgroup at a time into workgroup scratch, from where
// each lane writes its share of C through the bounds-checked epilogue of matmul.ts (alpha,
// bias, beta). Every subgroup-matrix call and barrier sits in control flow that depends only
// on uniforms. With several subgroups a subgroup's offsets into the tiles come from its index,
// local index / subgroup size, which the WGSL uniformity analysis cannot prove uniform per
// subgroup: that check is switched off around the matrix calls, which relies on subgroups
// being consecutive local indices (full subgroups of the adapter's fixed size, as on NVIDIA).
// The one-subgroup tiling makes no such assumption. Loads and stores name their layout as a
// template argument (`row_major`), the form this Dawn accepts without a deprecation warning.
import { invariant } from "../../compiler/diagnostics.ts";
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { matmulUniformTypes, matmulBindings, matmulStoreFunctions, matmulVariant, type MatmulOptions } from "./matmul.ts";
import { matmulTile4Function } from "./matmul-tiled.ts";

/** The geometry of the subgroup-matrix kernel. */
export interface SubgroupTiling {
  /** Subgroups per workgroup down M and across N. */
  grid: readonly [number, number];
  /** Outputs per subgroup down M and across N (multiples of the configuration's M and N). */
  perSubgroup: readonly [number, number];
  /** K per step (a multiple of the configuration's K and of 4). */
  bk: number;
  /** Fill the tiles with 16-byte loads where the operand's dtype, layout and strides allow. */
  vec4: boolean;
  /** f16 elements added to each tile row in workgroup memory (a multiple of 8: rows stay 16-byte aligned). */
  pad: number;
  /** Two tile sets, one barrier per K step. */
  doubleBuffer: boolean;
  /**
   * Issue the next K step's 16-byte loads into registers before this step's products, and write
   * them to the tiles after it: the loads' latency overlaps the products (vec4 fills, one set).
   */
  prefetch: boolean;
  /**
   * Where B is stored (N, K) (a weight in x Wᵀ), keep its tile [n][k] as stored and load the
   * right matrices column-major: the fill becomes a straight copy instead of a transpose.
   */
  nkB: boolean;
}

// The presets, against "wg64" (scalar fills, unpadded rows: each 16x16 left and right matrix
// feeds 2 products per K slice): "wg64-vec4-pad" fills with 16-byte loads into padded rows;
// "wg64-double" adds two tile sets (one barrier per step); "wg128-sg64x64" (4 subgroups of 64x64,
// 4x4 accumulators) and "wg128-8sg" (8 subgroups of 64x32) reuse each loaded matrix more;
// "wg128x64-bk64" halves the barriers per K; "wg256-4x2" keeps wg64-vec4-pad's subgroups (32x32,
// 2x2 accumulators) and puts eight in a workgroup, a 128x64 tile: each element of A and B that
// enters workgroup memory feeds 64 and 128 products instead of 64 and 64, for when the fills'
// traffic is what bounds wg64-vec4-pad; the "-prefetch" ones issue the next K step's loads
// before this step's products (software pipelining through registers), for when the fills'
// latency is what bounds it; the "-nk" ones keep a B stored (N, K) as stored
// (`nkB`: right matrices loaded column-major), for x Wᵀ, the forward of every linear.
// Measured on an NVIDIA H200 (bench/RESULTS.md, 2026-11-26, 03:39 UTC run), f32 A x f32 Wᵀ at the 7B
// FFN up-projection 2048x11008x4096: wg64-vec4-pad 2.29 ms (80.7 TFLOP/s), wg64-double 5.02,
// wg128-sg64x64 5.38, wg128-sg64x64-nk 5.56, wg128-8sg 5.76, wg128-8sg-nk 5.88,
// wg64-double-nk 7.42, wg64 10.78, wg128x64-bk64 11.63; the tiled f32 kernel 23.3. The 16-byte
// fills into padded rows make the difference (the only change from wg64; single-kernel times
// varied between runs, see RESULTS); why the larger tiles gain nothing is not profiled.
// The 7B LoRA step went from 2.73 s (wg64) to 1.31 s (wg64-vec4-pad).
// Workgroup memory (f16 tiles + f32 scratch) stays within 32 KiB for the 16x16 f32 configuration.
// The fills of every preset but wg64 and one-subgroup: 32 of K a step, 16-byte loads into rows
// padded by 8 halves, one tile set, B's tile [k][n], no prefetch; presets name what they change.
const FILLS = { bk: 32, vec4: true, pad: 8, doubleBuffer: false, nkB: false, prefetch: false } as const;
const SCALAR_FILLS = { ...FILLS, vec4: false, pad: 0 } as const;

/** The named tilings; "one-subgroup" runs one subgroup per workgroup (no assumption on subgroup membership). */
export const SUBGROUP_TILINGS = {
  wg64: { grid: [2, 2], perSubgroup: [32, 32], ...SCALAR_FILLS },
  "one-subgroup": { grid: [1, 1], perSubgroup: [32, 32], ...SCALAR_FILLS },
  "wg64-vec4-pad": { grid: [2, 2], perSubgroup: [32, 32], ...FILLS },
  "wg64-double": { grid: [2, 2], perSubgroup: [32, 32], ...FILLS, doubleBuffer: true },
  "wg128-sg64x64": { grid: [2, 2], perSubgroup: [64, 64], ...FILLS },
  "wg128-8sg": { grid: [2, 4], perSubgroup: [64, 32], ...FILLS },
  "wg128x64-bk64": { grid: [2, 2], perSubgroup: [64, 32], ...FILLS, bk: 64 },
  "wg64-double-nk": { grid: [2, 2], perSubgroup: [32, 32], ...FILLS, doubleBuffer: true, nkB: true },
  "wg256-4x2": { grid: [4, 2], perSubgroup: [32, 32], ...FILLS },
  "wg64-prefetch": { grid: [2, 2], perSubgroup: [32, 32], ...FILLS, prefetch: true },
  "wg256-4x2-prefetch": { grid: [4, 2], perSubgroup: [32, 32], ...FILLS, prefetch: true },
  "wg128-8sg-nk": { grid: [2, 4], perSubgroup: [64, 32], ...FILLS, nkB: true },
  "wg128-sg64x64-nk": { grid: [2, 2], perSubgroup: [64, 64], ...FILLS, nkB: true },
} as const satisfies Record<string, SubgroupTiling>;

/** A preset's name. */
export type SubgroupTilingName = keyof typeof SUBGROUP_TILINGS;

/** The tiling the engine runs: the fastest on the H200 (above); SFT_MATMUL_TILING chooses another. */
export const DEFAULT_SUBGROUP_TILING: SubgroupTilingName = "wg64-vec4-pad";

/** One shape the adapter's matrix units support (dawn.node `adapter.info.subgroupMatrixConfigs`). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

/** The subgroup-matrix strategy: the configuration, the adapter's (fixed) subgroup size, the tiling. */
export interface SubgroupMatrixStrategy {
  kind: "subgroup-matrix";
  config: SubgroupMatrixConfig;
  subgroupSize: number;
  /** The tiling preset (default DEFAULT_SUBGROUP_TILING). */
  tiling?: SubgroupTilingName;
}

// the matrix sides must divide the subgroup's outputs and the K step, and a result matrix must
// split evenly over the lanes in the epilogue
const fits = (c: SubgroupMatrixConfig, subgroupSize: number, t: SubgroupTiling) =>
  t.perSubgroup[0] % c.M === 0 && t.perSubgroup[1] % c.N === 0 && t.bk % c.K === 0 && (c.M * c.N) % subgroupSize === 0;

const allFit = (c: SubgroupMatrixConfig, subgroupSize: number) => Object.values(SUBGROUP_TILINGS).every((t) => fits(c, subgroupSize, t));

/**
 * The configuration the kernel uses among the adapter's: f16 inputs; f32 results preferred over
 * f16; 16x16x16 preferred, then larger shapes (fewer matrix operations per tile). Undefined when
 * fits every tiling's tiles with subgroups of `subgroupSize` lanes.
 */
export function subgroupMatrixConfigFor(configs: readonly SubgroupMatrixConfig[], subgroupSize = 32): SubgroupMatrixConfig | undefined {
  const usable = configs.filter(
    (c) => c.componentType === "f16" && (c.resultComponentType === "f32" || c.resultComponentType === "f16") && allFit(c, subgroupSize),
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

/**
 * Bytes of workgroup memory the kernel declares: f16 tiles (two sets when double-buffered) and
 * one result matrix per subgroup. B's tile depends on whether B is stored (N, K) (`transB`);
 * without `transB`, the larger of the two.
 */
export function subgroupMatrixWorkgroupBytes(c: SubgroupMatrixConfig, t: SubgroupTiling, transB?: boolean): number {
  const layouts = transB === undefined ? [false, t.nkB] : [t.nkB && transB];
  const g = layouts.map((nk) => geometry(t, nk)).reduce((x, y) => (x.tileB >= y.tileB ? x : y));
  const tiles = (g.tileA + g.tileB) * (t.doubleBuffer ? 2 : 1) * 2;
  return tiles + g.subgroups * c.M * c.N * (c.resultComponentType === "f32" ? 4 : 2);
}

// Sizes derived from a tiling, in elements; `nk`: B's tile is [n][k] (see `nkB`).
function geometry(t: SubgroupTiling, nk: boolean) {
  const tileM = t.grid[0] * t.perSubgroup[0]; // output rows per workgroup
  const tileN = t.grid[1] * t.perSubgroup[1]; // and columns
  const strideA = t.bk + t.pad; // tile_a is [tileM][bk], rows padded
  const strideB = nk ? t.bk + t.pad : tileN + t.pad; // tile_b is [tileN][bk] or [bk][tileN], rows padded
  return { tileM, tileN, strideA, strideB, tileA: tileM * strideA, tileB: (nk ? tileN : t.bk) * strideB, subgroups: t.grid[0] * t.grid[1] };
}

// One operand's tile in workgroup memory: `tile` (f16, at offset `buf` of the current set) holds
// the K step of an operand whose tile dimension r (M or N) has `side` entries, stored [r][k]
// (`kMajor` false, rows `stride` apart) or [k][r] (`kMajor` true). `alongK`: the operand is
// contiguous along K in storage. Consecutive invocations read consecutive stored elements (or
// vec4s of them), so storage reads coalesce.
interface TileFill {
  tile: string;
  name: string;
  alongK: boolean;
  kMajor: boolean;
  rDim: string;
  r0: string;
  side: number;
  stride: number;
}

function tileIndex(f: TileFill, r: string, k: string): string {
  return f.kMajor ? `buf_${f.name} + (${k}) * ${f.stride}u + ${r}` : `buf_${f.name} + (${r}) * ${f.stride}u + ${k}`;
}

function scalarFill(f: TileFill, bk: number, wg: number): string {
  const count = f.side * bk;
  invariant(count % wg === 0, "the workgroup divides the tile");
  const [r, k] = f.alongK ? [`i / ${bk}u`, `i % ${bk}u`] : [`i % ${f.side}u`, `i / ${f.side}u`];
  const index = f.alongK ? `(${f.r0} + r) * u.ld${f.name} + k0 + k` : `(k0 + k) * u.ld${f.name} + ${f.r0} + r`;
  return `    for (var j = 0u; j < ${count / wg}u; j++) {
      let i = lidx + j * ${wg}u;
      let r = ${r};
      let k = ${k};
      var v = 0.0;
      if (${f.r0} + r < u.${f.rDim} && k0 + k < u.K) { v = load_${f.name}(base_${f.name} + ${index}); }
      ${f.tile}[${tileIndex(f, "r", "k")}] = f16(v);
    }`;
}

// Four consecutive stored elements per invocation and quad through tile4_NAME (matmul-tiled.ts),
// one 16-byte load where the operand's layout allows: of quad q (WGSL), its tile coordinates r and
// k, the load of its values at K step `k0` (WGSL), and their four stores from vec4 `v`.
function quadParts(f: TileFill, bk: number, k0: string) {
  const [r, k] = f.alongK ? [`q / ${bk / 4}u`, `(q % ${bk / 4}u) * 4u`] : [`(q % ${f.side / 4}u) * 4u`, `q / ${f.side / 4}u`];
  const load = f.alongK ? `tile4_${f.name}(base_${f.name}, ${f.r0} + r, ${k0} + k, u.${f.rDim}, u.K, u.ld${f.name})` : `tile4_${f.name}(base_${f.name}, ${k0} + k, ${f.r0} + r, u.K, u.${f.rDim}, u.ld${f.name})`;
  const stores = (v: string) => ["x", "y", "z", "w"].map((c, e) => `${f.tile}[${f.alongK ? tileIndex(f, "r", `k + ${e}u`) : tileIndex(f, `r + ${e}u`, "k")}] = f16(${v}.${c});`);
  return { r, k, load, stores };
}

/** Quads of the tile each invocation fills. */
function quadsPerInvocation(f: TileFill, bk: number, wg: number): number {
  const quads = (f.side * bk) / 4;
  invariant(quads % wg === 0, "the workgroup divides the tile's quads");
  return quads / wg;
}

/**
 * WGSL: a loop over the invocation's quads of the tile (q = its index in the tile, r and k its
 * coordinates) running `body(p)`, with p the quad's parts at K step `k0`.
 */
function quadLoop(f: TileFill, bk: number, wg: number, k0: string, body: (p: ReturnType<typeof quadParts>) => string[]): string {
  const p = quadParts(f, bk, k0);
  const lines = [`let q = lidx + j * ${wg}u;`, `let r = ${p.r};`, `let k = ${p.k};`, ...body(p)];
  return `    for (var j = 0u; j < ${quadsPerInvocation(f, bk, wg)}u; j++) {\n${lines.map((x) => `      ${x}`).join("\n")}\n    }`;
}

function quadFill(f: TileFill, bk: number, wg: number): string {
  return quadLoop(f, bk, wg, "k0", (p) => [`let v = ${p.load};`, ...p.stores("v")]);
}

// The prefetching fill in two halves over pf_NAME (declared by `registers`), an array of the
// invocation's quads: `load` fills it from K step `k0`, `store` writes it to the tiles. Its loops
// have constant trip counts (4 or 2 quads for the current presets on 32-lane subgroups), which a
// driver is expected to unroll into registers (not checked); were one not to, pf_NAME would live
// in local memory and the preset would only rank slower.
function prefetchFill(f: TileFill, bk: number, wg: number) {
  const array = `pf_${f.name}`;
  return {
    registers: `  var ${array}: array<vec4<f32>, ${quadsPerInvocation(f, bk, wg)}>;`,
    load: (k0: string) => quadLoop(f, bk, wg, k0, (p) => [`${array}[j] = ${p.load};`]),
    store: quadLoop(f, bk, wg, "k0", (p) => p.stores(`${array}[j]`)),
  };
}

/** The WGSL types of configuration `c`'s left (M x K), right (K x N) and result (M x N) matrices; the template gives columns, then rows. */
export function subgroupMatrixTypes(c: SubgroupMatrixConfig): { left: string; right: string; result: string } {
  return {
    left: `subgroup_matrix_left<${c.componentType}, ${c.K}, ${c.M}>`,
    right: `subgroup_matrix_right<${c.componentType}, ${c.N}, ${c.K}>`,
    result: `subgroup_matrix_result<${c.resultComponentType}, ${c.N}, ${c.M}>`,
  };
}

/** Compact text of a tiling's parameters, e.g. "2x2 of 32x32, bk32" (variant keys and bench labels). */
export function tilingKey(t: SubgroupTiling): string {
  const extras = [t.vec4 ? "vec4" : "", t.pad ? `pad${t.pad}` : "", t.doubleBuffer ? "double" : "", t.nkB ? "nkB" : "", t.prefetch ? "prefetch" : ""].filter(Boolean);
  return [`${t.grid[0]}x${t.grid[1]} of ${t.perSubgroup[0]}x${t.perSubgroup[1]}`, `bk${t.bk}`, ...extras].join(", ");
}

/**
 * The subgroup-matrix matmul kernel for `o` with configuration `s.config` and tiling `s.tiling`;
 * `vecA`/`vecB` say whether A and B can be read as vec4 (used where the tiling fills with vec4).
 */
export function subgroupMatrixSpec(o: MatmulOptions, s: SubgroupMatrixStrategy, vecA = false, vecB = false): KernelSpec {
  const c = s.config;
  const t: SubgroupTiling = SUBGROUP_TILINGS[s.tiling ?? DEFAULT_SUBGROUP_TILING];
  invariant(c.componentType === "f16" && fits(c, s.subgroupSize, t), `subgroup-matrix config ${c.componentType} ${c.M}x${c.N}x${c.K} does not fit the tiling ${tilingKey(t)} with ${s.subgroupSize} lanes`);
  invariant(t.pad % 8 === 0 && t.bk % 4 === 0, "tile rows stay 16-byte aligned");
  const sg = s.subgroupSize;
  const nk = t.nkB && o.transB;
  const g = geometry(t, nk);
  const wg = g.subgroups * sg;
  const result = c.resultComponentType;
  const rows = t.perSubgroup[0] / c.M; // result matrices per subgroup down M
  const cols = t.perSubgroup[1] / c.N; // and across N
  const pairs = Array.from({ length: rows * cols }, (_, x) => [Math.floor(x / cols), x % cols] as const);
  const { left, right, result: resultType } = subgroupMatrixTypes(c);
  const perLane = (c.M * c.N) / sg;
  const sets = t.doubleBuffer ? 2 : 1;
  const useVecA = t.vec4 && vecA;
  const useVecB = t.vec4 && vecB;
  const fillA: TileFill = { tile: "tile_a", name: "a", alongK: !o.transA, kMajor: false, rDim: "M", r0: "m0", side: g.tileM, stride: g.strideA };
  const fillB: TileFill = { tile: "tile_b", name: "b", alongK: o.transB, kMajor: !nk, rDim: "N", r0: "n0", side: g.tileN, stride: g.strideB };
  const fill = (f: TileFill) => (t.vec4 ? quadFill(f, t.bk, wg) : scalarFill(f, t.bk, wg));
  invariant(!t.prefetch || (t.vec4 && !t.doubleBuffer), `tiling ${tilingKey(t)}: prefetching fills are 16-byte fills into one tile set`);
  const ahead = t.prefetch ? [fillA, fillB].map((f) => prefetchFill(f, t.bk, wg)) : [];
  const steps = Array.from({ length: t.bk / c.K }, (_, kk) => {
    const lefts = Array.from({ length: rows }, (_, i) => `      let l${i} = subgroupMatrixLoad<${left}, row_major>(&tile_a, buf_a + (sm + ${i * c.M}u) * ${g.strideA}u + ${kk * c.K}u, ${g.strideA}u);`);
    // element (k, n) of a right matrix: tile_b[k][n] row-major, or tile_b[n][k] read column-major
    const rights = Array.from({ length: cols }, (_, j) =>
      nk
        ? `      let r${j} = subgroupMatrixLoad<${right}, col_major>(&tile_b, buf_b + (sn + ${j * c.N}u) * ${g.strideB}u + ${kk * c.K}u, ${g.strideB}u);`
        : `      let r${j} = subgroupMatrixLoad<${right}, row_major>(&tile_b, buf_b + ${kk * c.K * g.strideB}u + sn + ${j * c.N}u, ${g.strideB}u);`,
    );
    const products = pairs.map(([i, j]) => `      acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc_${i}_${j});`);
    return `    {\n${[...lefts, ...rights, ...products].join("\n")}\n    }`;
  });
  const epilogue = pairs.map(
    ([i, j]) => `  subgroupMatrixStore<row_major>(&scratch, sg_base, acc_${i}_${j}, ${c.N}u);
  workgroupBarrier();
  for (var e = 0u; e < ${perLane}u; e++) {
    let x = lane + e * ${sg}u;
    store_one(base_c, m0 + sm + ${i * c.M}u + x / ${c.N}u, n0 + sn + ${j * c.N}u + x % ${c.N}u, f32(scratch[sg_base + x]));
  }
  workgroupBarrier();`,
  );
  // with one tile set the next step's fill waits until every subgroup has read this one
  const setOffsets = t.doubleBuffer
    ? `    let tile_set = (k0 / ${t.bk}u) & 1u; // the tile set of this step
    let buf_a = tile_set * ${g.tileA}u;
    let buf_b = tile_set * ${g.tileB}u;`
    : `    let buf_a = 0u;
    let buf_b = 0u;`;
  return {
    name: "matmul_subgroup_matrix",
    variant: { ...matmulVariant(o), config: `${c.componentType}>${result}:${c.M}x${c.N}x${c.K}`, subgroup: sg, tiling: tilingKey(t), vecA: useVecA, vecB: useVecB },
    uniforms: matmulUniformTypes(o),
    bindings: matmulBindings(o, useVecA, useVecB),
    workgroupSize: [wg, 1, 1],
    dispatch: (u) => [ceilDiv(u.N, g.tileN), ceilDiv(u.M, g.tileM), u.batch],
    enables: ["f16", "chromium_experimental_subgroup_matrix"],
    declarations: `${t.vec4 ? `${matmulTile4Function("a", useVecA)}\n${matmulTile4Function("b", useVecB)}\n` : ""}var<workgroup> tile_a: array<f16, ${sets * g.tileA}>; // [m][k] of the step, per set
var<workgroup> tile_b: array<f16, ${sets * g.tileB}>; // ${nk ? "[n][k]" : "[k][n]"} of the step, per set
var<workgroup> scratch: array<${result}, ${g.subgroups * c.M * c.N}>; // one result matrix per subgroup
${matmulStoreFunctions(o)}`,
    body: `  let m0 = wid.y * ${g.tileM}u;
  let n0 = wid.x * ${g.tileN}u;
  let base_a = wid.z * u.strideA;
  let base_b = wid.z * u.strideB;
  let base_c = wid.z * u.strideC;
  let subgroup = lidx / ${sg}u;
  let lane = lidx % ${sg}u;
  let sm = (subgroup / ${t.grid[1]}u) * ${t.perSubgroup[0]}u; // the subgroup's rows and columns within the tile
  let sn = (subgroup % ${t.grid[1]}u) * ${t.perSubgroup[1]}u;
  let sg_base = subgroup * ${c.M * c.N}u;
${pairs.map(([i, j]) => `  var acc_${i}_${j} = ${resultType}();`).join("\n")}
${
  t.prefetch
    ? `${ahead.map((x) => x.registers).join("\n")}
  // the first step's loads; each step then writes its registers to the tiles and issues the
  // next step's loads, which complete while the products run (a barrier does not wait for them,
  // and it separates their per-lane bounds checks from the matrix calls)
${ahead.map((x) => x.load("0u")).join("\n")}
  for (var k0 = 0u; k0 < u.K; k0 += ${t.bk}u) {
${setOffsets}
${ahead.map((x) => x.store).join("\n")}
    if (k0 + ${t.bk}u < u.K) {
${ahead.map((x) => x.load(`k0 + ${t.bk}u`)).join("\n")}
    }
    workgroupBarrier();`
    : `  for (var k0 = 0u; k0 < u.K; k0 += ${t.bk}u) {
${setOffsets}
${fill(fillA)}
${fill(fillB)}
    workgroupBarrier();`
}
    @diagnostic(off, chromium.subgroup_matrix_uniformity) {
${steps.join("\n")}
    }
${t.doubleBuffer ? "" : "    workgroupBarrier();\n"}  }
  @diagnostic(off, chromium.subgroup_matrix_uniformity) {
${epilogue.join("\n")}
  }`,
  };
}
