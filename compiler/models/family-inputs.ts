// The graph inputs of a family's model and how to fill them from token ids: positions (one or
// two streams), GLM's prefix length, and cos/sin tables where the family's inverse frequencies
// are stored in a precision the IR's exact `rope` op does not reproduce (ChatGLM-6B: f16).
// Everything is read from the family's traits; no family is named.
import { diag, fail, invariant, ok, type Result } from "../diagnostics.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import type { Family } from "../../stdlib/families/family.ts";
import { glmPositions, inverseFrequencies } from "../../stdlib/kernels/rope.ts";

/** Input names of a family graph. */
export const INPUT = {
  ids: "input_ids",
  labels: "labels",
  positions: "position_ids",
  prefixLength: "prefix_len",
  cos: "rope_cos",
  sin: "rope_sin",
} as const;

/** Position streams per token: 0 without RoPE, 2 for GLM's 2D positions. */
export function positionStreams(family: Family): 0 | 1 | 2 {
  return family.position.kind === "rope" ? family.position.streams : 0;
}

/**
 * Whether the rotation reads host-built cos/sin tables instead of the `rope` op: the op computes
 * exact inverse frequencies, so a family whose reference rounds them (models.md §6.3) needs tables.
 */
export function usesRopeTables(family: Family): boolean {
  return family.position.kind === "rope" && family.position.invFreq !== "f32";
}

/** The family's inverse frequencies for `dims` rotated dims, rounded as its reference stores them. */
function familyInverseFrequencies(family: Family, dims: number): Float32Array {
  const position = family.position;
  if (position.kind !== "rope") return new Float32Array(0);
  const store = position.invFreq === "f32" ? [] : [position.invFreq];
  return inverseFrequencies(dims, position.base, { invFreqCompute: "f32", invFreqStore: store, angles: "f32", output: "f32" });
}

/** Token ids and SFT labels (-100 where there is no loss) of one batch, each (B, T). */
export interface TokenBatch {
  ids: readonly (readonly number[])[];
  labels: readonly (readonly number[])[];
}

/**
 * Every input value of a family graph for `batch`, by input name (i32 values as floats, as the
 * interpreter takes them). A GLM sample without its mask and start tokens is an error.
 */
export function familyFeeds(family: Family, config: ModelConfig, batch: TokenBatch): Result<Map<string, Float64Array>> {
  const B = batch.ids.length;
  const T = batch.ids[0]?.length ?? 0;
  const ragged = batch.ids.some((row) => row.length !== T) || batch.labels.length !== B || batch.labels.some((row) => row.length !== T);
  if (B === 0 || T === 0 || ragged) {
    return fail(diag("SFT4002", `A batch of token ids must be a non-empty (batch, seq) grid with labels of the same shape.`, { where: INPUT.ids, hint: "Pad every sequence to one length; label padding with -100." }));
  }
  const feeds = new Map<string, Float64Array>([
    [INPUT.ids, Float64Array.from(batch.ids.flat())],
    [INPUT.labels, Float64Array.from(batch.labels.flat())],
  ]);
  const positional = positionFeeds(family, config, batch.ids);
  if (!positional.ok) return positional;
  for (const [name, values] of positional.value) feeds.set(name, values);
  return ok(feeds);
}

/**
 * The position inputs of the rows `ids` (B, T: one length) for their tokens from `from` on:
 * positions (B, T - from, streams), GLM's prefix length (B) and, where the family reads them, the
 * cos/sin tables (B, T - from, streams, rotaryDims / 2); none without RoPE. A generation step
 * asks for its new tokens only: the tables of the whole sequence would cost it time in the
 * sequence's length. A GLM row without its mask and start tokens is an error.
 */
export function positionFeeds(family: Family, config: ModelConfig, ids: readonly (readonly number[])[], from = 0): Result<Map<string, Float64Array>> {
  const feeds = new Map<string, Float64Array>();
  const streams = positionStreams(family);
  if (streams === 0) return ok(feeds);
  const B = ids.length;
  const T = ids[0].length;
  invariant(from >= 0 && from < T, `position inputs from token ${from} of ${T}`);
  const kept = T - from;
  const positions = new Float64Array(B * kept * streams);
  const prefix = new Float64Array(B);
  const mask = family.attention.mask;
  for (let b = 0; b < B; b++) {
    const row = ids[b];
    if (mask.kind === "causal") {
      for (let t = from; t < T; t++) positions[(b * kept + t - from) * streams] = t;
      continue;
    }
    const maskId = config.tokens.specials[mask.maskToken];
    const startId = config.tokens.specials[mask.startToken];
    const maskAt = row.indexOf(maskId);
    const context = row.indexOf(startId);
    if (maskAt < 0 || context < 0 || context < maskAt) {
      return fail(diag("SFT4002", `Sample ${b} of the batch lacks ${mask.maskToken} (${maskId}) followed by ${mask.startToken} (${startId}), which ${family.title}'s prefix mask and 2D positions are built from.`, {
        where: INPUT.ids,
        hint: `Encode samples with the ${family.name} template, which ends the prompt with ${mask.maskToken} ${mask.startToken}.`,
      }));
    }
    positions.set(glmPositions(T, context, maskAt).subarray(from * streams), b * kept * streams);
    prefix[b] = context;
  }
  feeds.set(INPUT.positions, positions);
  if (mask.kind === "glm_prefix") feeds.set(INPUT.prefixLength, prefix);
  if (usesRopeTables(family)) {
    const [cos, sin] = ropeTables(familyInverseFrequencies(family, config.dims.rotaryDims), positions);
    feeds.set(INPUT.cos, cos);
    feeds.set(INPUT.sin, sin);
  }
  return ok(feeds);
}

/** cos and sin of position · inv_freq, each (B, T, streams, rotaryDims / 2). */
function ropeTables(inv: Float32Array, positions: Float64Array): [Float64Array, Float64Array] {
  const cos = new Float64Array(positions.length * inv.length);
  const sin = new Float64Array(cos.length);
  positions.forEach((p, i) => {
    inv.forEach((f, j) => {
      cos[i * inv.length + j] = Math.cos(p * f);
      sin[i * inv.length + j] = Math.sin(p * f);
    });
  });
  return [cos, sin];
}
