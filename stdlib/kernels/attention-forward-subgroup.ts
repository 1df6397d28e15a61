// Fused attention forward on subgroup matrices (tensor cores through Vulkan cooperative
// matrices), flash-attention-2 style: same bindings, uniforms, views, masks, GQA/MQA, output and
// log-sum-exp as attentionForwardKernel (attention-forward.ts), which stays the choice without
// subgroup matrices or with SFT_ATTENTION=scalar.
//
// Work split: one workgroup per (query block of BLOCK_Q rows, query head, batch row); each of
// its subgroups owns M query rows (M of the matrix configuration). Per key tile of BLOCK_K keys:
//   1. the workgroup converts K and V to f16 in workgroup memory, both stored as they are in
//      memory, [key][d] (zero past the key window), four head dims per invocation and step;
//   2. each subgroup computes its S = Q K^T (M, BLOCK_K) with matrix products, Q held in left
//      matrices loaded once, K^T's right matrices loaded column-major from K's tile, f32 results
//      stored to workgroup memory;
//   3. ordinary invocations apply scale, bias and mask to S (f32), update the row's sums and
//      write P = exp(S - m) as f16: every invocation of the workgroup takes part, LANES of them
//      per row (subgroup size / M, at least 1) each over every LANES-th key of the tile, their
//      tile maxima combined through workgroup memory and their sums kept apart until the end;
//      m is the row's running max, moved only when a tile's max exceeds it by more than TAU
//      (conditional rescaling, as in recent FlashAttention work); a row whose m moves raises a
//      workgroup flag, and only then is O scaled row by row by exp(old m - new m) (a result
//      matrix cannot be scaled row by row): N columns at a time, the subgroups store a column
//      block of O over S's tile (S is read by then), every invocation scales it, and the
//      subgroups load it back: a workgroup barrier before each of the three (the first block
//      needs none before its store), so a rescale costs 3 D / N - 1 barriers, which TAU keeps rare;
//   4. each subgroup adds P V with matrix products to its O rows, result matrices it holds from
//      the first key tile to the last.
// At the end O leaves the same way, N columns at a time through S's tile, divided by the row's
// sum; m + log(sum) goes to lse. O never has a tile of its own, which leaves room for query
// blocks of four subgroups in 48 KiB.
//
// Precision: Q, K and V are rounded to f16 (f16 inputs exactly as stored), products accumulate
// in f32; P is rounded to f16 before P V (relative error up to 2^-11 per weight, see
// subgroupAttentionTolerance). Scores, m, sum and the log-sum-exp stay f32. The CPU reference
// is attentionForwardReference on the f16-rounded inputs. m is one of the row's scores and at
// most TAU = 8 (RESCALE_TAU) below its max, so P <= e^8 ~ 2981 stays far inside f16 (65504)
// with the same relative rounding, and no P is smaller than with the exact max; O and sum
// share m, so O / sum and m + log(sum) are exact as before and the error bound is unchanged.
//
// Subgroup-matrix calls and barriers sit in control flow that depends only on uniforms and the
// workgroup id. With several subgroups per workgroup, a subgroup's rows come from its index,
// local index / subgroup size, which WGSL's uniformity analysis cannot prove uniform per
// subgroup: that check is switched off around the body, which relies on subgroups being runs of
// consecutive local indices of the adapter's fixed size (as on NVIDIA). One subgroup per
// workgroup makes no such assumption.
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { ceilDiv, type KernelSpec } from "./kernel.ts";
import { wgslAttentionCommon, type AttentionVariant } from "./attention-common.ts";
import { attentionForwardKernel } from "./attention-forward.ts";
import { subgroupMatrixStrategyFor, type MatmulAdapter } from "./matmul.ts";
import { subgroupMatrixTypes, type SubgroupMatrixConfig } from "./matmul-subgroup.ts";

/** How the subgroup-matrix forward tiles one head: configuration, subgroups, key tile. */
export interface SubgroupAttentionLayout {
  /** An f16 -> f32 configuration of the adapter. */
  config: SubgroupMatrixConfig;
  /** Lanes per subgroup (the adapter's fixed size). */
  subgroupSize: number;
  /** Subgroups per workgroup; each owns `config.M` query rows. */
  subgroups: number;
  /** Keys per tile. */
  blockK: number;
}

/** Query rows per workgroup. */
export function blockRows(layout: SubgroupAttentionLayout): number {
  return layout.subgroups * layout.config.M;
}

// Padding of the rows of S (f32), P (f16) and of the f16 operand tiles (Q, K and V here; Q, K,
// V and dO in the backward kernels). Invocations walk rows of S and P, and a matrix load reads
// 16 rows of a tile at once: with rows a power of two of bytes apart, the invocations of a
// subgroup (or the rows of a matrix) hit one or two memory banks at every step; 16 bytes more per
// row spread them over eight banks, and keep every row 16-byte aligned for the matrix loads and
// stores.
const S_PAD = 4;
const P_PAD = 8;
const TILE_PAD = 8;

/** f16 elements per row of an operand tile, stored [row][d] (the kernels' TILE_STRIDE): D + TILE_PAD. */
export const tileStride = (headDim: number) => headDim + TILE_PAD;

/** Offset of element (row, col) of an operand tile (a matrix load's offset: col_major loads swap the two). */
export const tileAt = (headDim: number, row: number, col: number) => row * tileStride(headDim) + col;

/** f16 elements of the K and V tiles ([key][d] each), which first stage Q ([row][d]). */
function keyValueElements(layout: SubgroupAttentionLayout, headDim: number): number {
  return Math.max(2 * layout.blockK, blockRows(layout)) * tileStride(headDim);
}

/**
 * Invocations per query row in the forward's softmax: the workgroup's invocations over its rows,
 * subgroup size / M (2 on NVIDIA's 32 lanes and 16-row matrices), or 1 where a subgroup has no
 * more lanes than rows (each invocation then takes whole rows).
 */
export function softmaxLanes(layout: SubgroupAttentionLayout): number {
  const { subgroupSize, config } = layout;
  return subgroupSize > config.M && subgroupSize % config.M === 0 ? subgroupSize / config.M : 1;
}

/**
 * Bytes of workgroup memory the kernel declares: S (BLOCK_Q, BLOCK_K) f32 and P (BLOCK_Q, BLOCK_K)
 * f16 in padded rows (S_PAD, P_PAD), the K and V tiles f16 (which first stage Q), two f32 per row
 * (max, scale), one f32 sum per row and lane, with several lanes a tile max per row and lane too,
 * and the rescale flag (an atomic u32, which like every workgroup variable counts 16 bytes: WebGPU
 * rounds each one's size up to 16; the arrays' sizes are multiples of 16 already).
 */
export function workgroupBytes(layout: SubgroupAttentionLayout, headDim: number, lanes = softmaxLanes(layout)): number {
  const rows = blockRows(layout);
  const rowStats = 2 * 4 * rows + 4 * rows * lanes * (lanes > 1 ? 2 : 1);
  return 4 * rows * (layout.blockK + S_PAD) + 2 * rows * (layout.blockK + P_PAD) + 2 * keyValueElements(layout, headDim) + rowStats + 16;
}

/** What the choice reads of an adapter and device (AdapterSummary plus the device's limits). */
export interface AttentionAdapter extends MatmulAdapter {
  /** The device's maxComputeWorkgroupStorageSize. */
  workgroupStorageBytes: number;
}

/**
 * Every tiling whose workgroup memory, as `bytes` counts it (default: the forward's), fits the
 * adapter, with an f16 -> f32 configuration whose sides divide the head dim and the key tile,
 * largest first (most query rows, then most keys); none when the adapter has no subgroup matrices.
 */
export function subgroupAttentionLayouts(
  adapter: AttentionAdapter,
  headDim: number,
  bytes: (layout: SubgroupAttentionLayout) => number = (layout) => workgroupBytes(layout, headDim),
): SubgroupAttentionLayout[] {
  const strategy = subgroupMatrixStrategyFor(adapter);
  if (!strategy || strategy.config.resultComponentType !== "f32") return [];
  const { config, subgroupSize } = strategy;
  if (headDim % config.K !== 0 || headDim % config.N !== 0) return [];
  const layouts: SubgroupAttentionLayout[] = [];
  for (const subgroups of [4, 2, 1])
    for (const blockK of [64, 32, 16]) {
      if (blockK % config.K !== 0 || blockK % config.N !== 0 || blockK < config.M) continue;
      const layout = { config, subgroupSize, subgroups, blockK };
      if (bytes(layout) <= adapter.workgroupStorageBytes) layouts.push(layout);
    }
  return layouts;
}

/** The largest of subgroupAttentionLayouts (the layout where the device has tuned none), or undefined. */
export function subgroupAttentionLayout(
  adapter: AttentionAdapter,
  headDim: number,
  bytes?: (layout: SubgroupAttentionLayout) => number,
): SubgroupAttentionLayout | undefined {
  return subgroupAttentionLayouts(adapter, headDim, bytes)[0];
}

/**
 * The layout of the attention kernel `name` (default the forward) for a launch, where the adapter
 * has one that fits (subgroupAttentionLayout, with the kernel's workgroup `bytes`): the
 * `preferred` one (the layout the device tuned, runtime/gpu/attention-tuning.ts), else the
 * largest; elsewhere "scalar". SFT_ATTENTION=scalar in `env` forces the scalar kernels;
 * SFT_ATTENTION=subgroup-matrix asks for the fast ones and is an error where the adapter cannot
 * run them; any other value is an error.
 */
export function attentionKernelChoice(
  adapter: AttentionAdapter,
  headDim: number,
  env: Readonly<Record<string, string | undefined>> = process.env,
  { name = "attention forward", bytes, preferred }: { name?: string; bytes?: (layout: SubgroupAttentionLayout) => number; preferred?: SubgroupAttentionLayout } = {},
): Result<SubgroupAttentionLayout | "scalar"> {
  // "scores" (the score-matrix path, stdlib/kernels/attention-scores-steps.ts) leaves the fused kernels where it does not apply to the engine's choice
  const wanted = env.SFT_ATTENTION?.trim() === "scores" ? undefined : env.SFT_ATTENTION?.trim();
  if (wanted === "scalar") return ok("scalar");
  if (wanted && wanted !== "subgroup-matrix")
    return fail(diag("SFT2018", `SFT_ATTENTION='${wanted}' is not an attention kernel`, { where: "SFT_ATTENTION", hint: "Use scalar, subgroup-matrix or scores, or unset SFT_ATTENTION." }));
  const layout = subgroupAttentionLayout(adapter, headDim, bytes);
  if (layout) return ok(preferred ?? layout);
  if (!wanted) return ok("scalar");
  return fail(
    diag("SFT5009", `SFT_ATTENTION=subgroup-matrix, but this adapter offers no f16 -> f32 subgroup matrix with which the ${name} kernel tiles head dim ${headDim} in its workgroup memory`, {
      where: "SFT_ATTENTION",
      hint: "Set SFT_ATTENTION=scalar, or unset it to let sftc choose.",
    }),
  );
}

/**
 * Relative error allowed against attentionForwardReference on f16-rounded q, k, v: P is rounded
 * to f16 (unit roundoff 2^-11 per weight) before P V; f32 accumulation adds far less.
 */
export function subgroupAttentionTolerance(): number {
  return 2e-3;
}

/** The invariants every subgroup-matrix attention kernel asks of its layout at head dim `D`. */
export function checkSubgroupLayout(layout: SubgroupAttentionLayout, D: number): void {
  const c = layout.config;
  invariant(c.componentType === "f16" && c.resultComponentType === "f32", `attention: subgroup matrices ${c.componentType} -> ${c.resultComponentType}`);
  invariant(D % c.K === 0 && D % c.N === 0 && layout.blockK % c.K === 0 && layout.blockK % c.N === 0, `attention: ${c.M}x${c.N}x${c.K} does not tile D ${D} and ${layout.blockK}`);
  invariant(D % 4 === 0, `attention: the tiles fill four of D ${D} at a time`);
}

/**
 * TAU of the forward kernel: how far (in scaled score units) a key tile's max may exceed a row's
 * running max m before m moves to it and O is rescaled; P = exp(score - m) <= e^8 ~ 2981 in f16.
 */
export const RESCALE_TAU = 8;

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

/**
 * WGSL of step 3 for one key tile: each (row, lane) applies scale, bias and mask to its keys of
 * S (lane, lane + LANES, ...), the row's lanes agree on the tile max through part_max (one
 * barrier), m moves as the header says, and each lane writes its P and adds its weights to its
 * own lane_sum, scaled with the row. With one lane the invocations loop over whole rows and need
 * no barrier; with several, every invocation owns exactly one (row, lane).
 */
function softmaxStep(lanes: number): string {
  const many = lanes > 1;
  const scores = `        let i = first + r;
        let p = i + u.query_offset;
        var m = row_max[r]; // read before any lane of the row writes it
        var tile_max = NEG_BIG;
        for (var c = lane; c < BLOCK_K; c += LANES) {
          var s = NEG_BIG;
          if (i < u.q_len && c < n && key_allowed(b, p, j0 + c)) {
            s = s_tile[r * S_STRIDE + c] * u.scale + score_bias(h, p, j0 + c);
          }
          s_tile[r * S_STRIDE + c] = s;
          tile_max = max(tile_max, s);
        }`;
  const combine = `        part_max[lidx] = tile_max;
        workgroupBarrier();
        for (var x = 0u; x < LANES; x++) { tile_max = max(tile_max, part_max[r * LANES + x]); }`;
  const weights = `        // m moves to the first tile with an allowed key (O and sum are still 0) and to a tile
        // whose max exceeds it by more than TAU; below that, P in terms of the old m fits f16
        var scale = 1.0;
        if (m == NEG_BIG) {
          m = tile_max;
        } else if (tile_max > m + TAU) {
          scale = exp(m - tile_max);
          m = tile_max;
          atomicOr(&rescale_flag, 1u);
        }
        var sum = 0.0;
        for (var c = lane; c < BLOCK_K; c += LANES) {
          var w = 0.0;
          if (tile_max > NEG_BIG) { w = exp(s_tile[r * S_STRIDE + c] - m); } // a masked score gives 0
          sum += w;
          p_tile[r * P_STRIDE + c] = f16(w);
        }
        lane_sum[r * LANES + lane] = lane_sum[r * LANES + lane] * scale + sum;`;
  if (!many)
    return `      // online softmax, one invocation per row
      for (var r = lidx; r < BLOCK_Q; r += WG_X) {
        let lane = 0u;
${scores}
${weights}
        row_max[r] = m;
        row_scale[r] = scale;
      }`;
  return `      // online softmax, LANES invocations per row
      {
        let r = lidx / LANES;
        let lane = lidx % LANES;
${scores}
${combine}
${weights}
        if (lane == 0u) {
          row_max[r] = m;
          row_scale[r] = scale;
        }
      }`;
}

/**
 * The bindings and uniforms of attentionForwardKernel: q, k, v (read; may be one fused buffer),
 * o, lse (B, Hq, T) f32, then the mask's; uniform values from attentionForwardUniforms. `lanes`
 * invocations per row take the softmax (softmaxLanes; 1 is the choice where invocations take
 * whole rows, which the benchmark compares).
 */
export function attentionForwardSubgroupKernel(variant: AttentionVariant, layout: SubgroupAttentionLayout, lanes = softmaxLanes(layout)): KernelSpec {
  const { config: c, blockK: BK } = layout;
  const D = variant.headDim;
  const BQ = blockRows(layout);
  checkSubgroupLayout(layout, D);
  invariant(BK >= c.M, `attention: ${BK} keys per tile are fewer than the ${c.M} rows of a result matrix`);
  const invocations = layout.subgroups * layout.subgroupSize;
  invariant(lanes === 1 || lanes * BQ === invocations, `attention: ${lanes} lanes per row of ${BQ} rows in ${invocations} invocations`);
  const scalar = attentionForwardKernel(variant); // the same uniforms and bindings
  const types = subgroupMatrixTypes(c);
  const dChunks = D / c.K;
  const blocks = range(D / c.N); // O's column blocks: result matrices o0, o1, ... of N columns
  // S (M, BLOCK_K) = Q K^T: Q as D/K left matrices, K^T's right matrices column-major from K [key][d]
  const scores = range(BK / c.N).map((y) =>
    lines([
      product(`s${y}`, true, range(dChunks).map((x) => `q${x}`), "kv_tile", (x) => `${tileAt(D, y * c.N, x * c.K)}u`, "TILE_STRIDE", types, true),
      `      subgroupMatrixStore<row_major>(&s_tile, row0 * S_STRIDE + ${y * c.N}u, s${y}, S_STRIDE);`,
    ]),
  );
  // O += P V, P stored [row][key], V [key][d] after K
  const update = blocks.map((y) => product(`o${y}`, false, range(BK / c.K).map((x) => `p${x}`), "kv_tile", (x) => `V_AT + ${tileAt(D, x * c.K, y * c.N)}u`, "TILE_STRIDE", types));
  // each column block y of O in turn through s_tile (rows S_STRIDE apart): stored by the
  // subgroups, then `each(y)` (lines) by every invocation for element (r, e % N) of the block at
  // s_tile[at] (and loaded back into o_y when `back`); `afterFirstBarrier` runs after the first
  // block's barrier
  const oBlocksThroughScores = (indent: string, each: (y: number) => string[], back: boolean, afterFirstBarrier = "") =>
    lines(
      blocks.map((y) =>
        lines([
          ...(y > 0 ? [`${indent}workgroupBarrier(); // the previous block is read`] : []),
          `${indent}subgroupMatrixStore<row_major>(&s_tile, row0 * S_STRIDE, o${y}, S_STRIDE);`,
          `${indent}workgroupBarrier();`,
          ...(y === 0 && afterFirstBarrier ? [`${indent}${afterFirstBarrier}`] : []),
          `${indent}for (var e = lidx; e < BLOCK_Q * ${c.N}u; e += WG_X) {`,
          `${indent}  let r = e / ${c.N}u;`,
          `${indent}  let at = r * S_STRIDE + e % ${c.N}u;`,
          ...each(y).map((x) => `${indent}  ${x}`),
          `${indent}}`,
          ...(back ? [`${indent}workgroupBarrier();`, `${indent}o${y} = subgroupMatrixLoad<${types.result}, row_major>(&s_tile, row0 * S_STRIDE, S_STRIDE);`] : []),
        ]),
      ),
    );
  const { scope } = subgroupRows(layout);
  return {
    ...subgroupAttentionFrame("attention_forward_subgroup_matrix", { ...variant, blockK: BK, lanes }, layout, scalar, (u) => [ceilDiv(u.q_len, BQ), u.query_heads, u.batch]),
    declarations: `${wgslAttentionCommon(variant, ["q", "k", "v", "o"])}
const BLOCK_Q = ${BQ}u;
const BLOCK_K = ${BK}u;
const S_STRIDE = ${BK + S_PAD}u; // padded rows of s_tile and p_tile (S_PAD, P_PAD)
const P_STRIDE = ${BK + P_PAD}u;
const TILE_STRIDE = ${tileStride(D)}u; // padded rows of the Q, K and V tiles (TILE_PAD)
const V_AT = ${BK * tileStride(D)}u; // V's offset in kv_tile
const TAU = ${RESCALE_TAU}.0; // how far a tile's max may exceed a row's m before m moves
const LANES = ${lanes}u; // invocations per row in the softmax
var<workgroup> s_tile: array<f32, ${BQ * (BK + S_PAD)}>; // (BLOCK_Q, BLOCK_K) scores, then biased and masked; a column block of O when rescaled and at the end
var<workgroup> p_tile: array<f16, ${BQ * (BK + P_PAD)}>; // (BLOCK_Q, BLOCK_K) exp(score - m)
var<workgroup> kv_tile: array<f16, ${keyValueElements(layout, D)}>; // K (BLOCK_K, D) then V (BLOCK_K, D); first Q (BLOCK_Q, D)
var<workgroup> row_max: array<f32, ${BQ}>;
var<workgroup> row_scale: array<f32, ${BQ}>; // exp(old m - new m) of the current tile; at the end the row's sum
var<workgroup> lane_sum: array<f32, ${BQ * lanes}>; // [row][lane] sums of P in terms of the row's m${lanes > 1 ? `
var<workgroup> part_max: array<f32, ${BQ * lanes}>; // [row][lane] maxima of the current tile` : ""}
var<workgroup> rescale_flag: atomic<u32>; // nonzero when some row's m moved in the current tile
fn row_sum(r: u32) -> f32 {
  var l = 0.0;
  for (var x = 0u; x < LANES; x++) { l += lane_sum[r * LANES + x]; }
  return l;
}`,
    body: `${wgslQueryBlockOpening(layout)}
  // stage Q as f16 (rows past T are zero); clear the row statistics and the flag
${wgslTileRows("kv_tile", "BLOCK_Q", querySources("first", false), "first + r < u.q_len")}
  for (var r = lidx; r < BLOCK_Q; r += WG_X) { row_max[r] = NEG_BIG; }
  for (var e = lidx; e < BLOCK_Q * LANES; e += WG_X) { lane_sum[e] = 0.0; }
  if (lidx == 0u) { atomicStore(&rescale_flag, 0u); }
  workgroupBarrier();
  ${scope}{
${loadLefts("q", dChunks, "kv_tile", (x) => `row0 * TILE_STRIDE + ${x * c.K}u`, "TILE_STRIDE", types, "    ")}
${lines(blocks.map((y) => `    var o${y} = ${types.result}();`))}
    for (var j0 = j_start; j0 < j_end; j0 += BLOCK_K) {
      let n = min(BLOCK_K, j_end - j0);
      workgroupBarrier(); // Q, or the previous tile's K, V, P and O blocks, are no longer read
${wgslTileRows("kv_tile", "BLOCK_K", keyValueSources("j0"))}
      workgroupBarrier();
${lines(scores)}
      workgroupBarrier();
${softmaxStep(lanes)}
      workgroupBarrier(); // P, row_scale and the flag are written, S is read
      if (workgroupUniformLoad(&rescale_flag) != 0u) {
        // O's rows scaled through s_tile, a column block at a time; the flag is cleared once every
        // invocation has read it (after a barrier of the block loop, not workgroupUniformLoad's own)
${oBlocksThroughScores("        ", () => ["s_tile[at] *= row_scale[r];"], true, "if (lidx == 0u) { atomicStore(&rescale_flag, 0u); }")}
      }
${loadLefts("p", BK / c.K, "p_tile", (x) => `row0 * P_STRIDE + ${x * c.K}u`, "P_STRIDE", types)}
${lines(update)}
    }
    // A row that sees no key: zeros and lse = -inf, as the scalar kernel writes. row_scale now
    // holds the row's sum (the last tile's scales were read before that tile's barriers).
    for (var r = lidx; r < BLOCK_Q; r += WG_X) {
      let i = first + r;
      let l = row_sum(r);
      row_scale[r] = l;
      if (i < u.q_len) { lse[(b * u.query_heads + h) * u.q_len + i] = select(negative_infinity(), row_max[r] + log(l), l > 0.0); }
    }
    workgroupBarrier(); // s_tile's last rescaled block is loaded back (a subgroup's lanes included), and the sums are written
    // O / sum out, a column block at a time
${oBlocksThroughScores("    ", (y) => ["let i = first + r;", "let l = row_scale[r];", `if (i < u.q_len) { store_o(o_at(b, i, h) + ${y * c.N}u + e % ${c.N}u, select(0.0, s_tile[at] / l, l > 0.0)); }`], false)}
  }`,
  };
}

/**
 * The forward kernel `attentionKernelChoice` picks for `variant` on `adapter`, on subgroup
 * matrices with the `tuned` layout where the device tuned one (runtime/gpu/attention-tuning.ts).
 */
export function attentionForwardKernelFor(
  adapter: AttentionAdapter,
  variant: AttentionVariant,
  env: Readonly<Record<string, string | undefined>> = process.env,
  tuned?: SubgroupAttentionLayout,
): Result<KernelSpec> {
  const choice = attentionKernelChoice(adapter, variant.headDim, env, { preferred: tuned });
  if (!choice.ok) return choice;
  return ok(choice.value === "scalar" ? attentionForwardKernel(variant) : attentionForwardSubgroupKernel(variant, choice.value));
}
