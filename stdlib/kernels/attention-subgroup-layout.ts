// The layouts of the attention kernels on subgroup matrices (attention-forward-subgroup.ts,
// attention-backward-subgroup.ts): how a layout tiles one head (matrix configuration, subgroups
// per workgroup, keys per tile), the padded operand tiles every kernel shares, the forward's
// workgroup memory (which bounds the layouts by default), the layouts an adapter fits, and the
// choice between them and the scalar kernels (SFT_ATTENTION). One place for the sizes that the
// forward and backward kernels, the layout tuning and the engine's choice all read.
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { envAsks } from "./env-request.ts";
import { subgroupMatrixStrategyFor, type MatmulAdapter } from "./matmul-strategy.ts";
import type { SubgroupMatrixConfig } from "./matmul-subgroup.ts";
import { SCORES_REQUEST } from "./attention-scores.ts";

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
export const S_PAD = 4;
export const P_PAD = 8;
const TILE_PAD = 8;

/** f16 elements per row of an operand tile, stored [row][d] (the kernels' TILE_STRIDE): D + TILE_PAD. */
export const tileStride = (headDim: number) => headDim + TILE_PAD;

/** Offset of element (row, col) of an operand tile (a matrix load's offset: col_major loads swap the two). */
export const tileAt = (headDim: number, row: number, col: number) => row * tileStride(headDim) + col;

/** f16 elements of the K and V tiles ([key][d] each), which first stage Q ([row][d]). */
export function keyValueElements(layout: SubgroupAttentionLayout, headDim: number): number {
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
  const wanted = envAsks(SCORES_REQUEST, env) ? undefined : env.SFT_ATTENTION?.trim();
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

/** The invariants every subgroup-matrix attention kernel asks of its layout at head dim `D`. */
export function checkSubgroupLayout(layout: SubgroupAttentionLayout, D: number): void {
  const c = layout.config;
  invariant(c.componentType === "f16" && c.resultComponentType === "f32", `attention: subgroup matrices ${c.componentType} -> ${c.resultComponentType}`);
  invariant(D % c.K === 0 && D % c.N === 0 && layout.blockK % c.K === 0 && layout.blockK % c.N === 0, `attention: ${c.M}x${c.N}x${c.K} does not tile D ${D} and ${layout.blockK}`);
  invariant(D % 4 === 0, `attention: the tiles fill four of D ${D} at a time`);
}
