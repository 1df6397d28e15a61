// Greedy and beam-search generations of every family's tiny fixture model on both CPU backends
// (no cache, KV cache) equal, token for token, an independent PyTorch implementation of Hugging Face's
// `generate` on the same weights and prompts (spec/golden/make_generation.py ->
// test/fixtures/generation/generation.json).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
import { CpuGenerationModel } from "../../runtime/generate/cpu-model.ts";
import { generate, type GenerationSettings } from "../../runtime/generate/engine.ts";
import { neutralLogits } from "../../runtime/generate/logits.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { Random } from "../../runtime/random.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { expectOk } from "../support/result.ts";

interface GreedyCase {
  kind: "greedy";
  name: string;
  prompt: number[];
  max_new_tokens: number;
  repetition_penalty: number;
  eos: number[];
  tokens: number[];
}

interface BeamCase {
  kind: "beam";
  name: string;
  prompt: number[];
  max_new_tokens: number;
  num_beams: number;
  length_penalty: number;
  early_stopping: boolean;
  num_return_sequences: number;
  eos: number[];
  beams: { tokens: number[]; score: number; sequence: number[] }[];
}

const golden: Record<FamilyName, (GreedyCase | BeamCase)[]> = JSON.parse(readFileSync(join(import.meta.dirname, "..", "fixtures", "generation", "generation.json"), "utf8"));

function settingsOf(c: GreedyCase | BeamCase): GenerationSettings {
  const beam = c.kind === "beam";
  return {
    strategy: c.kind,
    maxNewTokens: c.max_new_tokens,
    maxLength: Infinity,
    eosTokenIds: c.eos,
    logits: { ...neutralLogits, repetitionPenalty: beam ? 1 : c.repetition_penalty },
    numBeams: beam ? c.num_beams : 1,
    lengthPenalty: beam ? c.length_penalty : 1,
    earlyStopping: beam ? c.early_stopping : false,
    numReturnSequences: beam ? c.num_return_sequences : 1,
  };
}

for (const name of Object.keys(golden) as FamilyName[]) {
  test(`${name}: greedy and beam search equal the PyTorch reference token for token`, async () => {
    const family = families[name];
    const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
    const models = [new CpuGenerationModel({ family, config, weights }), new CachedGenerationModel({ family, config, weights })];
    let eosStops = 0;
    for (const [c, model] of golden[name].flatMap((c) => models.map((m) => [c, m] as const))) {
      const label = `${name} ${c.name} prompt of ${c.prompt.length}, ${model.backend}`;
      const out = expectOk(await generate(model, c.prompt, settingsOf(c), new Random(0)));
      if (c.kind === "greedy") {
        assert.equal(out[0].tokens, c.tokens, label);
        assert.is(out[0].stopReason, c.eos.includes(c.tokens.at(-1)!) ? "eos" : "max_new_tokens", label);
        if (out[0].stopReason === "eos") eosStops++;
        continue;
      }
      assert.equal(out.map((o) => o.tokens), c.beams.map((b) => b.sequence.slice(c.prompt.length)), label);
      c.beams.forEach((b, i) => {
        assert.ok(Math.abs(out[i].score! - b.score) <= 1e-5 * Math.abs(b.score), `${label}: beam ${i} score ${out[i].score} vs ${b.score}`);
        if (b.sequence.length > b.tokens.length) eosStops++;
      });
    }
    assert.ok(eosStops > 0, `${name}: some case must stop at EOS`);
  });
}

test.run();
