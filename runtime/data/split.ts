// The held-out split and the seeds of every data-order choice. Eval membership is decided per
// conversation (record), never per example: ChatGLM-6B's several examples of one conversation
// share its history, so they stay on one side. The choice depends only on the seed, the
// dataset's name and its number of conversations: batch size, max_length, packing or the
// other datasets never move a record between train and eval, and a larger fraction only adds
// records to those a smaller one holds out (both take a prefix of the same seeded permutation).
import { createHash } from "node:crypto";
import { Random } from "../random.ts";
import type { TokenStore } from "./token-store.ts";

/** A 32-bit seed for one named stream of choices, derived from the run's seed. */
export function seedFor(seed: number, ...names: (string | number)[]): number {
  return createHash("sha256").update(JSON.stringify([seed, ...names])).digest().readUInt32LE(0);
}

/** Example indices of the training and the held-out part of one dataset, each in file order. */
export interface Split {
  train: Int32Array;
  eval: Int32Array;
}

// How many of `conversations` records go to eval: round(fraction × n), at least 1 when fraction > 0, never all.
function evalCount(conversations: number, fraction: number): number {
  if (fraction <= 0 || conversations < 2) return 0;
  return Math.min(conversations - 1, Math.max(1, Math.round(fraction * conversations)));
}

/** Splits a dataset's examples: a seeded random `fraction` of its conversations are held out. */
export function splitExamples(store: TokenStore, conversations: number, fraction: number, seed: number, dataset: string): Split {
  const held = new Uint8Array(conversations);
  const order = Array.from({ length: conversations }, (_, i) => i);
  new Random(seedFor(seed, dataset, "eval")).shuffle(order);
  for (const record of order.slice(0, evalCount(conversations, fraction))) held[record] = 1;
  const train: number[] = [];
  const evaluation: number[] = [];
  for (let i = 0; i < store.size; i++) (held[store.chunk.records[i]] ? evaluation : train).push(i);
  return { train: Int32Array.from(train), eval: Int32Array.from(evaluation) };
}
