// Decoding against an independent PyTorch implementation of Hugging Face's `generate`
// semantics (spec/golden/make_decoding.py -> test/fixtures/decoding/decoding.json).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { processLogits, softmax64, type LogitsSettings } from "../../runtime/generate/logits.ts";
import { beamSearch } from "../../runtime/generate/beam-search.ts";
import { decode } from "../../runtime/generate/decode-loop.ts";
import { sampleToken } from "../../runtime/generate/sampling.ts";
import { Random } from "../../runtime/random.ts";

interface LogitsCase {
  name: string;
  settings: LogitsSettings;
  logits: (number | null)[];
  nanAt?: number[];
  history: number[];
  processed: (number | null)[];
  probs: number[];
}

const golden = JSON.parse(readFileSync(join(import.meta.dirname, "..", "fixtures", "decoding", "decoding.json"), "utf8"));
const toyLogits = (sequence: readonly number[]) => {
  const a: number[] = golden.A[sequence[sequence.length - 1]];
  const b: number[] = golden.B[sequence.length % 7];
  return Float32Array.from(a, (v, i) => Math.fround(v + b[i]));
};

for (const c of golden.logitsCases as LogitsCase[]) {
  test(`processed logits equal the reference: ${c.name}`, () => {
    const scores = Float32Array.from(c.logits, (v, i) => (c.nanAt?.includes(i) ? NaN : (v as number)));
    processLogits(scores, c.history, c.settings);
    c.processed.forEach((ref, i) => {
      if (ref === null) assert.is(scores[i], -Infinity, `token ${i} should be filtered`);
      else assert.is(scores[i], ref, `token ${i}: ${scores[i]} vs ${ref}`);
    });
    const probs = softmax64(scores);
    const worst = Math.max(...c.probs.map((p, i) => Math.abs(p - probs[i])));
    assert.ok(worst < 1e-6, `probabilities differ by ${worst}`);
  });
}

test("top-p always keeps at least one token, and keeps exactly the nucleus", () => {
  const scores = Float32Array.from([5, 1, 0, -1]);
  processLogits(scores, [], { repetitionPenalty: 1, temperature: 1, topK: 0, topP: 1e-6, invalidScoreGuard: false });
  assert.equal(Array.from(scores), [5, -Infinity, -Infinity, -Infinity]);
});

for (const name of ["temperature#0", "top_p#0", "penalty_temperature_top_k_top_p#1"]) test(`sampling follows the processed distribution (chi-square, 20,000 draws): ${name}`, () => {
  const c = (golden.logitsCases as LogitsCase[]).find((x) => x.name === name)!;
  const scores = processLogits(Float32Array.from(c.logits as number[]), c.history, c.settings);
  const probs = softmax64(scores);
  const random = new Random(7);
  const counts = new Float64Array(probs.length);
  const draws = 20000;
  for (let i = 0; i < draws; i++) counts[sampleToken(scores, random)]++;
  let chi2 = 0;
  let df = -1;
  probs.forEach((p, i) => {
    if (p === 0) {
      assert.is(counts[i], 0, `token ${i} has probability 0 but was drawn`);
      return;
    }
    chi2 += (counts[i] - draws * p) ** 2 / (draws * p);
    df++;
  });
  // Wilson-Hilferty upper 0.1% point of chi-square(df).
  const z = 3.09;
  const critical = df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
  console.log(`    chi-square ${chi2.toFixed(2)} with ${df} degrees of freedom (0.1% critical value ${critical.toFixed(2)})`);
  assert.ok(chi2 < critical, `chi-square ${chi2} >= ${critical}`);
});

for (const [i, c] of (golden.greedyCases as { prompt: number[]; penalty: number; maxNewTokens: number; eos: number[]; expected: number[] }[]).entries()) {
  test(`greedy decoding equals the reference, case ${i}`, async () => {
    const out = await decode(c.prompt, async (seq) => toyLogits(seq), {
      sample: false,
      logits: { repetitionPenalty: c.penalty, temperature: 1, topK: 0, topP: 1, invalidScoreGuard: false },
      maxNewTokens: c.maxNewTokens,
      maxLength: Infinity,
      eosTokenIds: c.eos,
    }, new Random(0));
    assert.equal(out.tokens, c.expected);
  });
}

for (const [i, c] of golden.beamCases.entries()) {
  test(`beam search equals the reference, case ${i} (${c.numBeams} beams, length_penalty ${c.lengthPenalty}, early_stopping ${c.earlyStopping})`, async () => {
    const reorders: number[][] = [];
    const hyps = await beamSearch(c.prompt, async (seqs) => seqs.map(toyLogits), (sources) => void reorders.push([...sources]), {
      numBeams: c.numBeams,
      lengthPenalty: c.lengthPenalty,
      earlyStopping: c.earlyStopping,
      numReturnSequences: c.numReturnSequences,
      maxLength: c.maxLength,
      eosTokenIds: c.eos,
      logits: c.logits,
    });
    assert.is(hyps.length, c.expected.length);
    hyps.forEach((h, j) => {
      assert.equal(h.tokens, c.expected[j].tokens, `hypothesis ${j}`);
      assert.ok(Math.abs(h.score - c.expected[j].score) < 1e-5 * Math.max(1, Math.abs(c.expected[j].score)), `score ${h.score} vs ${c.expected[j].score}`);
    });
    assert.ok(reorders.every((r) => r.length === c.numBeams && r.every((b) => b >= 0 && b < c.numBeams)));
  });
}

test.run();
