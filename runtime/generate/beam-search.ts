// Beam search with Hugging Face semantics (BeamSearchScorer / BeamHypotheses, transformers
// 4.2x–4.3x) for one prompt: scores are cumulative float32 log-probabilities, finished
// hypotheses are ranked by sum_logprobs / length ** length_penalty, where length counts the
// prompt and excludes the EOS token.
import { logSoftmax32, processLogits, type LogitsSettings } from "./logits.ts";

export interface BeamSearchSettings {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  numReturnSequences: number;
  /** Prompt plus generated tokens. */
  maxLength: number;
  eosTokenIds: readonly number[];
  /** Processors only (repetition penalty, invalid-score guard); beam search does not sample. */
  logits: LogitsSettings;
}

/** Logits of the last position for every running beam, in beam order. */
export type BeamStep = (sequences: readonly number[][]) => Promise<Float32Array[]>;
/** The caller reorders its KV cache: new beam i continues old beam `sources[i]`. */
export type BeamReorder = (sources: readonly number[]) => void | Promise<void>;

export interface Hypothesis {
  tokens: number[];
  score: number;
}

/** The `numBeams` best finished hypotheses seen so far. */
class Hypotheses {
  readonly beams: Hypothesis[] = [];
  private worstScore = 1e9;

  constructor(private readonly settings: BeamSearchSettings) {}

  add(tokens: number[], sumLogprobs: number): void {
    const score = sumLogprobs / tokens.length ** this.settings.lengthPenalty;
    if (this.beams.length < this.settings.numBeams || score > this.worstScore) {
      this.beams.push({ tokens, score });
      if (this.beams.length > this.settings.numBeams) {
        const ranked = this.beams.map((b, i) => [b.score, i] as const).sort((a, b) => a[0] - b[0]);
        this.beams.splice(ranked[0][1], 1);
        this.worstScore = ranked[1][0];
      } else {
        this.worstScore = Math.min(score, this.worstScore);
      }
    }
  }

  isDone(bestSumLogprobs: number, currentLength: number): boolean {
    if (this.beams.length < this.settings.numBeams) return false;
    if (this.settings.earlyStopping) return true;
    return this.worstScore >= bestSumLogprobs / currentLength ** this.settings.lengthPenalty;
  }
}

interface Candidate {
  score: number;
  beam: number;
  token: number;
}

/** The `count` best (score, beam, token) over all beams, best first. */
function topCandidates(scores: Float32Array[], count: number): Candidate[] {
  const all: Candidate[] = [];
  scores.forEach((row, beam) => row.forEach((score, token) => all.push({ score, beam, token })));
  all.sort((a, b) => b.score - a.score || a.beam - b.beam || a.token - b.token);
  return all.slice(0, count);
}

export async function beamSearch(prompt: readonly number[], step: BeamStep, reorder: BeamReorder, settings: BeamSearchSettings): Promise<Hypothesis[]> {
  const { numBeams, eosTokenIds } = settings;
  const eos = new Set(eosTokenIds);
  const finished = new Hypotheses(settings);
  let sequences = Array.from({ length: numBeams }, () => [...prompt]);
  // Only the first beam is live at the start, so the first expansion is not repeated numBeams times.
  let beamScores = Float32Array.from({ length: numBeams }, (_, i) => (i === 0 ? 0 : -1e9));
  let done = false;

  while (sequences[0].length < settings.maxLength) {
    const logits = await step(sequences);
    const scores = logits.map((row, beam) => {
      const logprobs = processLogits(logSoftmax32(row), sequences[beam], settings.logits);
      return logprobs.map((s) => Math.fround(s + beamScores[beam]));
    });
    const candidates = topCandidates(scores, Math.max(2, 1 + eos.size) * numBeams);
    const next: Candidate[] = [];
    for (const [rank, c] of candidates.entries()) {
      if (eos.has(c.token)) {
        if (rank < numBeams) finished.add([...sequences[c.beam]], c.score);
      } else {
        next.push(c);
      }
      if (next.length === numBeams) break;
    }
    done = finished.isDone(candidates[0].score, sequences[0].length);
    await reorder(next.map((c) => c.beam));
    sequences = next.map((c) => [...sequences[c.beam], c.token]);
    beamScores = Float32Array.from(next, (c) => c.score);
    if (done) break;
  }

  if (!done) sequences.forEach((tokens, beam) => finished.add(tokens, beamScores[beam]));
  // Stable ascending sort, then take from the end: the best, and among equals the last added.
  const ranked = [...finished.beams].sort((a, b) => a.score - b.score);
  return ranked.slice(-settings.numReturnSequences).reverse();
}
