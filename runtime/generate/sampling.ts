// Choosing the next token from processed scores: argmax for greedy decoding, seeded
// multinomial draws for sampling.
import type { Random } from "../random.ts";
import { softmax64 } from "./logits.ts";

/** Index of the largest score; the first one on ties, as torch.argmax does. */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

/** One draw from softmax(scores) by inverse CDF; tokens with -Infinity are never drawn. */
export function sampleToken(scores: ArrayLike<number>, random: Random): number {
  const probs = softmax64(scores);
  const u = random.uniform();
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cumulative += probs[i];
    last = i;
    if (u < cumulative) return i;
  }
  return last; // u landed in the rounding gap above the final cumulative sum
}
