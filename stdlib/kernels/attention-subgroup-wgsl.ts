// WGSL building blocks shared by the attention kernels on subgroup matrices (the forward in
// attention-forward-subgroup.ts, dQ and dK/dV in attention-backward-subgroup.ts): the opening of
// a query-block workgroup, the subgroup's first row with the uniformity scope the matrix calls
// need (see the forward's header), the copy of operand rows into padded f16 tiles, the common
// frame of the kernel specs, and the matrix loads and products. One definition here keeps the
// kernels' tiles and loops identical.
import type { KernelSpec } from "./kernel.ts";
import type { subgroupMatrixTypes } from "./matmul-subgroup.ts";
import type { SubgroupAttentionLayout } from "./attention-subgroup-layout.ts";

/** Statements separated for the generated WGSL. */
export const lines = (xs: string[]) => xs.join("\n");

/** 0..n-1. */
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * The subgroup's first row within the workgroup's block (WGSL), and the attribute that switches
 * off the uniformity check around the matrix calls where that row comes from the local index.
 */
export function subgroupRows(layout: SubgroupAttentionLayout): { row0: string; scope: string } {
  if (layout.subgroups === 1) return { row0: "0u", scope: "" };
  return { row0: `(lidx / ${layout.subgroupSize}u) * ${layout.config.M}u`, scope: "@diagnostic(off, chromium.subgroup_matrix_uniformity) " };
}

/**
 * Opening of the kernels with a workgroup per (block of BLOCK_Q query rows, query head, batch
 * row): its rows first..last, the key window [j_start, j_end) they see, and row0, the first row
 * of this invocation's subgroup. Workgroups take the blocks last first: under a causal mask a
 * later block walks more key tiles, and GPUs start workgroups roughly in the order of their ids,
 * so the longest should start first and the short ones fill in at the end of the dispatch (the
 * reasoning; what it gives is not measured).
 */
export function wgslQueryBlockOpening(layout: SubgroupAttentionLayout): string {
  return `  let b = wid.z;
  let h = wid.y;
  let kvh = h / u.group_size;
  let first = (nwg.x - 1u - wid.x) * BLOCK_Q; // the last block first
  let last = min(first + BLOCK_Q, u.q_len) - 1u;
  let j_start = key_window_start(b);
  let j_end = key_window_end(b, last + u.query_offset);
  let row0 = ${subgroupRows(layout).row0}; // this subgroup's first row in the block`;
}

/** One operand a tile copies: its load function, WGSL of the index of head dim 0 of row r, and the tile's offset. */
export interface TileSource {
  load: string;
  row: string;
  at: string;
}

/**
 * WGSL: the workgroup copies rows r < `rows` of each source to an f16 tile [r][d] in `array`
 * (rows TILE_STRIDE apart, at the source's offset), zero where `valid` fails (by default the
 * first n rows). Each step of an invocation takes four consecutive head dims of one row of every
 * source, so its loads are independent and in flight together, consecutive invocations read
 * consecutive pieces of a row (16 bytes of f32 storage, 8 of f16), and they write consecutive
 * 8 bytes of the tile.
 */
export function wgslTileRows(array: string, rows: string, sources: readonly TileSource[], valid = "r < n"): string {
  const quad = (x: number, s: TileSource) =>
    `          let from${x} = ${s.row} + d;\n          x${x} = vec4<f32>(${s.load}(from${x}), ${s.load}(from${x} + 1u), ${s.load}(from${x} + 2u), ${s.load}(from${x} + 3u));`;
  return `      for (var e = lidx; e < ${rows} * D / 4u; e += WG_X) {
        let r = e / (D / 4u);
        let d = (e % (D / 4u)) * 4u;
${lines(sources.map((_, x) => `        var x${x} = vec4<f32>(0.0);`))}
        if (${valid}) {
${lines(sources.map((s, x) => quad(x, s)))}
        }
        let t = r * TILE_STRIDE + d;
${lines(sources.flatMap((s, x) => ["x", "y", "z", "w"].map((c, i) => `        ${array}[${s.at} + t${i ? ` + ${i}u` : ""}] = f16(x${x}.${c});`)))}
      }`;
}

/** Rows of K and V from key `firstKey` (WGSL) of KV head kvh, to K at 0 and V at V_AT (wgslTileRows). */
export const keyValueSources = (firstKey: string): TileSource[] => [
  { load: "load_k", row: `k_at(b, ${firstKey} + r, kvh)`, at: "0u" },
  { load: "load_v", row: `v_at(b, ${firstKey} + r, kvh)`, at: "V_AT" },
];

/** Rows of Q (to 0), and of dO (to DOUT_AT) with `gradient`, from query `firstRow` (WGSL) of head h (wgslTileRows). */
export const querySources = (firstRow: string, gradient: boolean): TileSource[] => [
  { load: "load_q", row: `q_at(b, ${firstRow} + r, h)`, at: "0u" },
  ...(gradient ? [{ load: "load_dout", row: `dout_at(b, ${firstRow} + r, h)`, at: "DOUT_AT" }] : []),
];

/**
 * The parts every subgroup-matrix attention kernel shares: the scalar kernel's uniforms and
 * bindings, one workgroup of `layout.subgroups` subgroups per block, f16 and subgroup matrices.
 */
export function subgroupAttentionFrame(
  name: string,
  variant: Record<string, string | number | boolean>,
  layout: SubgroupAttentionLayout,
  scalar: Pick<KernelSpec, "uniforms" | "bindings">,
  dispatch: KernelSpec["dispatch"],
): Pick<KernelSpec, "name" | "variant" | "uniforms" | "bindings" | "workgroupSize" | "dispatch" | "enables"> {
  const c = layout.config;
  return {
    name,
    variant: { ...variant, config: `${c.M}x${c.N}x${c.K}`, subgroup: layout.subgroupSize, subgroups: layout.subgroups },
    uniforms: scalar.uniforms,
    bindings: scalar.bindings,
    workgroupSize: [layout.subgroups * layout.subgroupSize, 1, 1],
    dispatch,
    enables: ["f16", "chromium_experimental_subgroup_matrix"],
  };
}

type MatrixTypes = ReturnType<typeof subgroupMatrixTypes>;

/**
 * WGSL: `acc += lefts[x] * right_x` over x (into a new zero result when `fresh`), each right_x
 * loaded from `array` at `offset(x)` with `stride`, row-major, or column-major (`transposed`:
 * a tile [n][k] read as its transpose).
 */
export function product(acc: string, fresh: boolean, lefts: string[], array: string, offset: (x: number) => string, stride: string, types: MatrixTypes, transposed = false): string {
  const layout = transposed ? "col_major" : "row_major";
  const steps = lefts.map((l, x) => `      ${acc} = subgroupMatrixMultiplyAccumulate(${l}, subgroupMatrixLoad<${types.right}, ${layout}>(&${array}, ${offset(x)}, ${stride}), ${acc});`);
  return lines(fresh ? [`      var ${acc} = ${types.result}();`, ...steps] : steps);
}

/** WGSL: `let NAMEx` = left matrix x = 0..n-1 of `array` at `offset(x)` with `stride`. */
export function loadLefts(name: string, n: number, array: string, offset: (x: number) => string, stride: string, types: MatrixTypes, indent = "      "): string {
  return lines(range(n).map((x) => `${indent}let ${name}${x} = subgroupMatrixLoad<${types.left}, row_major>(&${array}, ${offset(x)}, ${stride});`));
}
