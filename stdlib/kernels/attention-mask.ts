// Which keys a query may attend to, and the additive score bias: one definition in TypeScript
// (for the float64 references and host packing) and the same rules as WGSL for every attention
// kernel. No mask is ever materialized as a (T, S) tensor: kernels evaluate it per score.
import { invariant } from "../../compiler/diagnostics.ts";
import { alibiBias, WGSL_ALIBI_BIAS } from "./alibi.ts";
import type { KernelBinding } from "./kernel.ts";

/**
 * Masking of one attention call. Queries are the last rows of the key sequence: query row `i`
 * sits at absolute key position `i + queryOffset` (0 for training, S - T after a KV cache).
 */
export interface AttentionMask {
  /** Key `j` is visible to query position `p` only when `j <= p`. */
  causal: boolean;
  /** Absolute key position of query row 0. */
  queryOffset: number;
  /** (B, 2) `[start, end)` of the valid keys of each batch row: left or right padding. */
  keyRanges?: Uint32Array;
  /**
   * (B) GLM prefix length (models.md §4.2 item 6): keys `j < prefix[b]` are visible to every
   * query, so the prompt attends bidirectionally and later tokens causally.
   */
  prefixLengths?: Uint32Array;
  /** (B, S) segment id per key position: packed sequences attend only within their segment. */
  segments?: Int32Array;
  /** (Hq) ALiBi slope per query head (alibi.ts, models.md §2.2). */
  alibiSlopes?: Float32Array;
}

/** The mask features a kernel variant is compiled for (part of the pipeline cache key). */
export interface MaskFlags {
  causal: boolean;
  prefix: boolean;
  padding: boolean;
  segments: boolean;
  alibi: boolean;
}

export function maskFlags(mask: AttentionMask): MaskFlags {
  return {
    causal: mask.causal,
    prefix: mask.prefixLengths !== undefined,
    padding: mask.keyRanges !== undefined,
    segments: mask.segments !== undefined,
    alibi: mask.alibiSlopes !== undefined,
  };
}

/**
 * The mask of one attention call from the values of its mask inputs, which come in the op
 * graph's order (prefix lengths, key ranges, segment ids: those `flags` ask for).
 */
export function maskFromInputs(flags: MaskFlags, inputs: readonly ArrayLike<number>[], queryOffset: number, alibiSlopes: Float32Array | undefined): AttentionMask {
  let at = 0;
  const next = () => inputs[at++];
  return {
    causal: flags.causal,
    queryOffset,
    prefixLengths: flags.prefix ? Uint32Array.from(next()) : undefined,
    keyRanges: flags.padding ? Uint32Array.from(next()) : undefined,
    segments: flags.segments ? Int32Array.from(next()) : undefined,
    alibiSlopes: flags.alibi ? alibiSlopes : undefined,
  };
}

// ---- host side: reference semantics ----

/** Whether query position `p` of batch row `b` may see key `j` (S keys per row). */
export function keyAllowed(mask: AttentionMask, keyLength: number, b: number, p: number, j: number): boolean {
  if (mask.keyRanges && (j < mask.keyRanges[2 * b] || j >= mask.keyRanges[2 * b + 1])) return false;
  if (mask.causal && j > p && !(mask.prefixLengths && j < mask.prefixLengths[b])) return false;
  if (mask.segments && mask.segments[b * keyLength + j] !== mask.segments[b * keyLength + p]) return false;
  return true;
}

/** Additive bias of the score of query position `p` against key `j` for query head `h`. */
export function scoreBias(mask: AttentionMask, h: number, p: number, j: number): number {
  return mask.alibiSlopes ? alibiBias(mask.alibiSlopes[h], p, j) : 0;
}

/**
 * `batch_info` words per batch row: key start, key end, prefix length, unused (padding to 16
 * bytes keeps one row per vec4 should a kernel want it).
 */
export const BATCH_INFO_WORDS = 4;

/** Host contents of one mask binding. */
export type MaskBindingData =
  | { name: "batch_info"; dtype: "u32"; data: Uint32Array }
  | { name: "segments"; dtype: "i32"; data: Int32Array }
  | { name: "alibi_slopes"; dtype: "f32"; data: Float32Array };

/** What to upload for each of `maskBindings(maskFlags(mask))`, in the same order. */
export function maskBindingData(mask: AttentionMask, batch: number, keyLength: number): MaskBindingData[] {
  const out: MaskBindingData[] = [];
  if (mask.keyRanges || mask.prefixLengths) out.push({ name: "batch_info", dtype: "u32", data: packBatchInfo(mask, batch, keyLength) });
  if (mask.segments) out.push({ name: "segments", dtype: "i32", data: mask.segments });
  if (mask.alibiSlopes) out.push({ name: "alibi_slopes", dtype: "f32", data: mask.alibiSlopes });
  return out;
}

/** Packs the per-batch-row mask data the kernels read from `batch_info`. */
function packBatchInfo(mask: AttentionMask, batch: number, keyLength: number): Uint32Array {
  const info = new Uint32Array(batch * BATCH_INFO_WORDS);
  for (let b = 0; b < batch; b++) {
    info[b * BATCH_INFO_WORDS] = mask.keyRanges ? mask.keyRanges[2 * b] : 0;
    info[b * BATCH_INFO_WORDS + 1] = mask.keyRanges ? mask.keyRanges[2 * b + 1] : keyLength;
    info[b * BATCH_INFO_WORDS + 2] = mask.prefixLengths ? mask.prefixLengths[b] : 0;
  }
  return info;
}

// ---- GPU side ----

/** Bindings the mask needs, appended after a kernel's own bindings. */
export function maskBindings(flags: MaskFlags): KernelBinding[] {
  const out: KernelBinding[] = [];
  if (flags.padding || flags.prefix) out.push({ name: "batch_info", dtype: "u32", access: "read" });
  if (flags.segments) out.push({ name: "segments", dtype: "i32", access: "read" });
  if (flags.alibi) out.push({ name: "alibi_slopes", dtype: "f32", access: "read" });
  return out;
}

/**
 * WGSL helpers over `u.key_len`, `u.query_offset` and the mask bindings:
 * `key_allowed(b, p, j)`, `score_bias(h, p, j)`, and the key window a block of queries can see,
 * `key_window_start(b)` / `key_window_end(b, last_p)` (uniform per workgroup when `b` and
 * `last_p` are).
 */
export function wgslMask(flags: MaskFlags): string {
  const start = `batch_info[b * ${BATCH_INFO_WORDS}u]`;
  const end = `batch_info[b * ${BATCH_INFO_WORDS}u + 1u]`;
  const prefix = `batch_info[b * ${BATCH_INFO_WORDS}u + 2u]`;
  const allowed: string[] = [];
  if (flags.padding) allowed.push(`if (j < ${start} || j >= ${end}) { return false; }`);
  if (flags.causal) {
    const visiblePrefix = flags.prefix ? ` && j >= ${prefix}` : "";
    allowed.push(`if (j > p${visiblePrefix}) { return false; }`);
  }
  if (flags.segments) allowed.push("if (segments[b * u.key_len + j] != segments[b * u.key_len + p]) { return false; }");
  const windowEnd = ["var end = u.key_len;"];
  if (flags.padding) windowEnd.push(`end = min(end, ${end});`);
  if (flags.causal) {
    const limit = flags.prefix ? `max(last_p + 1u, ${prefix})` : "last_p + 1u";
    windowEnd.push(`end = min(end, ${limit});`);
  }
  return `
fn key_allowed(b: u32, p: u32, j: u32) -> bool {
  ${allowed.join("\n  ")}
  return true;
}
${flags.alibi ? WGSL_ALIBI_BIAS : ""}
fn score_bias(h: u32, p: u32, j: u32) -> f32 {
  return ${flags.alibi ? "alibi_bias(alibi_slopes[h], p, j)" : "0.0"};
}
fn key_window_start(b: u32) -> u32 {
  return ${flags.padding ? start : "0u"};
}
fn key_window_end(b: u32, last_p: u32) -> u32 {
  ${windowEnd.join("\n  ")}
  return end;
}
fn query_window_start(b: u32, first_j: u32) -> u32 {
  // The first query position that can see key first_j: causal without a prefix hides it from
  // every earlier position; otherwise any position may see it.
  return ${flags.causal && !flags.prefix ? "first_j" : "0u"};
}`;
}

/** Checks that the mask data agrees with the problem size; a mismatch is a caller bug. */
export function checkMaskShapes(mask: AttentionMask, batch: number, queryHeads: number, queryLength: number, keyLength: number): void {
  invariant(Number.isInteger(mask.queryOffset) && mask.queryOffset >= 0, `attention: queryOffset ${mask.queryOffset}`);
  invariant(mask.queryOffset + queryLength <= keyLength, `attention: ${queryLength} queries at offset ${mask.queryOffset} exceed ${keyLength} keys`);
  if (mask.keyRanges) invariant(mask.keyRanges.length === 2 * batch, "attention: keyRanges must be (B, 2)");
  if (mask.prefixLengths) invariant(mask.prefixLengths.length === batch, "attention: prefixLengths must be (B)");
  if (mask.segments) invariant(mask.segments.length === batch * keyLength, "attention: segments must be (B, S)");
  if (mask.alibiSlopes) invariant(mask.alibiSlopes.length === queryHeads, "attention: alibiSlopes must be (Hq)");
}
