// Logits processing with Hugging Face `generate` semantics (transformers 4.2x–4.3x):
// repetition penalty, then any processors (ChatGLM's invalid-score guard), then the warpers
// temperature -> top-k -> top-p. Elementwise arithmetic is rounded to float32 after every
// operation, as torch does on float32 scores; softmax sums are accumulated in float64.

const f32 = Math.fround;

export interface LogitsSettings {
  /** 1 disables; HF's rule: s < 0 ? s * p : s / p for every token already present. */
  repetitionPenalty: number;
  /** 1 disables. */
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** ChatGLM's InvalidScoreLogitsProcessor: on any NaN/Inf, all scores 0 and score[5] = 5e4. */
  invalidScoreGuard: boolean;
  /** Warpers keep at least this many tokens (HF's min_tokens_to_keep; 2 in beam sampling). */
  minTokensToKeep?: number;
}

export const neutralLogits: LogitsSettings = { repetitionPenalty: 1, temperature: 1, topK: 0, topP: 1, invalidScoreGuard: false };

/** In place: every id present in `history` (prompt included) is penalized once. */
export function applyRepetitionPenalty(scores: Float32Array, history: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  const p = f32(penalty);
  for (const id of new Set(history)) {
    const s = scores[id];
    scores[id] = s < 0 ? f32(s * p) : f32(s / p);
  }
}

/** ChatGLM's guard: the token id 5 it forces is the tokenizer's `<unk>`-area id the reference uses. */
export function applyInvalidScoreGuard(scores: Float32Array): void {
  if (scores.every((s) => Number.isFinite(s))) return;
  scores.fill(0);
  scores[5] = 5e4;
}

export function applyTemperature(scores: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  const t = f32(temperature);
  for (let i = 0; i < scores.length; i++) scores[i] = f32(scores[i] / t);
}

/** Removes every score below the k-th largest (ties with it are kept, as `scores < kth` does). */
export function applyTopK(scores: Float32Array, topK: number, minTokensToKeep = 1): void {
  if (topK <= 0) return;
  const k = Math.min(Math.max(topK, minTokensToKeep), scores.length);
  const kth = Float32Array.from(scores).sort().reverse()[k - 1];
  for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = -Infinity;
}

/**
 * Nucleus filtering: sort ascending, cumulative softmax, remove tokens whose cumulative
 * probability is <= 1 - top_p, always keeping the `minTokensToKeep` most likely.
 */
export function applyTopP(scores: Float32Array, topP: number, minTokensToKeep = 1): void {
  if (topP >= 1) return;
  const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b] || a - b);
  const probs = softmax64(order.map((i) => scores[i]));
  const threshold = 1 - f32(topP);
  let cumulative = 0;
  const keepFrom = order.length - minTokensToKeep;
  for (let rank = 0; rank < order.length; rank++) {
    cumulative += probs[rank];
    if (rank < keepFrom && cumulative <= threshold) scores[order[rank]] = -Infinity;
  }
}

/** Applies the whole pipeline in Hugging Face order, in place. */
export function processLogits(scores: Float32Array, history: readonly number[], settings: LogitsSettings): Float32Array {
  const keep = settings.minTokensToKeep ?? 1;
  applyRepetitionPenalty(scores, history, settings.repetitionPenalty);
  if (settings.invalidScoreGuard) applyInvalidScoreGuard(scores);
  applyTemperature(scores, settings.temperature);
  applyTopK(scores, settings.topK, keep);
  applyTopP(scores, settings.topP, keep);
  return scores;
}

/** Softmax with float64 accumulation; -Infinity entries get probability 0. */
export function softmax64(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) max = Math.max(max, scores[i]);
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += out[i] = Math.exp(scores[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** log_softmax with float64 accumulation, rounded to float32 (beam search scores). */
export function logSoftmax32(scores: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) max = Math.max(max, scores[i]);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += Math.exp(scores[i] - max);
  const logSum = Math.log(sum) + max;
  const out = new Float32Array(scores.length);
  for (let i = 0; i < scores.length; i++) out[i] = scores[i] - logSum;
  return out;
}
