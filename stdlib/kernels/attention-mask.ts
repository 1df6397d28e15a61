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

/** `batch_info` words per batch row: key start, key end, prefix length, one unused. */
export const BATCH_INFO_WORDS = 4;

/** Whether a variant reads `batch_info` (key ranges, GLM prefix lengths). */
function hasBatchInfo(flags: MaskFlags): boolean {
  return flags.padding || flags.prefix;
}

/**
 * The mask's one binding, `mask_words` (u32), holding in this order, each only when the variant
 * uses it: the ALiBi slopes' f32 bits (Hq), `batch_info` (B, BATCH_INFO_WORDS), the segment ids
 * (B, S). One binding however many features: with three, the attention backward would bind ten
 * storage buffers, more than the eight WebGPU guarantees.
 */
export function maskBindings(flags: MaskFlags): KernelBinding[] {
  const used = hasBatchInfo(flags) || flags.segments || flags.alibi;
  return used ? [{ name: "mask_words", dtype: "u32", access: "read" }] : [];
}

/** Where each part of `mask_words` starts and how many words it has, for B rows of S keys and Hq query heads. */
function maskLayout(flags: MaskFlags, batch: number, keyLength: number, queryHeads: number): { infoAt: number; segmentsAt: number; words: number } {
  const infoAt = flags.alibi ? queryHeads : 0;
  const segmentsAt = infoAt + (hasBatchInfo(flags) ? batch * BATCH_INFO_WORDS : 0);
  return { infoAt, segmentsAt, words: segmentsAt + (flags.segments ? batch * keyLength : 0) };
}

/** The length of `mask_words` (0 where there is none). */
export function maskWordCount(flags: MaskFlags, batch: number, keyLength: number, queryHeads: number): number {
  return maskLayout(flags, batch, keyLength, queryHeads).words;
}

/** The contents of `mask_words` for `mask` (B rows of S keys), or undefined where it has none. */
export function maskWords(mask: AttentionMask, batch: number, keyLength: number): Uint32Array | undefined {
  const flags = maskFlags(mask);
  const { infoAt, segmentsAt, words: count } = maskLayout(flags, batch, keyLength, mask.alibiSlopes?.length ?? 0);
  if (count === 0) return undefined;
  const words = new Uint32Array(count);
  if (mask.alibiSlopes) words.set(new Uint32Array(mask.alibiSlopes.buffer, mask.alibiSlopes.byteOffset, mask.alibiSlopes.length));
  if (hasBatchInfo(flags)) {
    for (let b = 0; b < batch; b++) {
      const at = infoAt + b * BATCH_INFO_WORDS;
      words[at] = mask.keyRanges ? mask.keyRanges[2 * b] : 0;
      words[at + 1] = mask.keyRanges ? mask.keyRanges[2 * b + 1] : keyLength;
      words[at + 2] = mask.prefixLengths ? mask.prefixLengths[b] : 0;
    }
  }
  if (mask.segments) words.set(new Uint32Array(mask.segments.buffer, mask.segments.byteOffset, mask.segments.length), segmentsAt);
  return words;
}

/**
 * WGSL readers of `mask_words`, those the variant uses: `alibi_slope(h)`, `batch_info(b, word)`
 * and `segment_id(b, j)`. Their offsets are maskLayout's, from u.query_heads and u.batch.
 */
function wgslMaskWords(flags: MaskFlags): string {
  const infoAt = flags.alibi ? "u.query_heads" : "0u";
  const segmentsAt = hasBatchInfo(flags) ? `${infoAt} + u.batch * ${BATCH_INFO_WORDS}u` : infoAt;
  const readers: string[] = [];
  if (flags.alibi) readers.push("fn alibi_slope(h: u32) -> f32 { return bitcast<f32>(mask_words[h]); }");
  if (hasBatchInfo(flags)) readers.push(`fn batch_info(b: u32, word: u32) -> u32 { return mask_words[${infoAt} + b * ${BATCH_INFO_WORDS}u + word]; }`);
  if (flags.segments) readers.push(`fn segment_id(b: u32, j: u32) -> u32 { return mask_words[${segmentsAt} + b * u.key_len + j]; }`);
  return readers.join("\n");
}

/**
 * WGSL helpers over `u.key_len`, `u.query_offset` and the mask's words (whose offsets need
 * `u.query_heads` and `u.batch`: every kernel that masks has those uniforms):
 * `key_allowed(b, p, j)`, `score_bias(h, p, j)`, and the key window a block of queries can see,
 * `key_window_start(b)` / `key_window_end(b, last_p)` (uniform per workgroup when `b` and
 * `last_p` are).
 */
export function wgslMask(flags: MaskFlags): string {
  const start = "batch_info(b, 0u)";
  const end = "batch_info(b, 1u)";
  const prefix = "batch_info(b, 2u)";
  const allowed: string[] = [];
  if (flags.padding) allowed.push(`if (j < ${start} || j >= ${end}) { return false; }`);
  if (flags.causal) {
    const visiblePrefix = flags.prefix ? ` && j >= ${prefix}` : "";
    allowed.push(`if (j > p${visiblePrefix}) { return false; }`);
  }
  if (flags.segments) allowed.push("if (segment_id(b, j) != segment_id(b, p)) { return false; }");
  const windowEnd = ["var end = u.key_len;"];
  if (flags.padding) windowEnd.push(`end = min(end, ${end});`);
  if (flags.causal) {
    const limit = flags.prefix ? `max(last_p + 1u, ${prefix})` : "last_p + 1u";
    windowEnd.push(`end = min(end, ${limit});`);
  }
  return `${wgslMaskWords(flags)}
fn key_allowed(b: u32, p: u32, j: u32) -> bool {
  ${allowed.join("\n  ")}
  return true;
}
${flags.alibi ? WGSL_ALIBI_BIAS : ""}
fn score_bias(h: u32, p: u32, j: u32) -> f32 {
  return ${flags.alibi ? "alibi_bias(alibi_slope(h), p, j)" : "0.0"};
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
