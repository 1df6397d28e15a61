// The KV-cache backend (only the new position evaluated each step) against the no-cache
// reference (the whole sequence every step) on every family's fixture model, long prompts
// included: the same logits at every step, the same greedy and beam outputs; and prompts of
// different lengths generated as one left-padded batch exactly as each alone. A step rotates the
// q and k heads in one launch a layer where they lie together in the fused projection.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildCachedStep } from "../../compiler/models/cached-graph.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
import { CpuGenerationModel } from "../../runtime/generate/cpu-model.ts";
import { generate, generateBatch, type GenerationSettings } from "../../runtime/generate/engine.ts";
import { neutralLogits } from "../../runtime/generate/logits.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { Random } from "../../runtime/random.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";

const greedy: GenerationSettings = {
  strategy: "greedy",
  maxNewTokens: 6,
  maxLength: Infinity,
  eosTokenIds: [],
  logits: { ...neutralLogits, repetitionPenalty: 1.2 },
  numBeams: 1,
  lengthPenalty: 1,
  earlyStopping: false,
  numReturnSequences: 1,
};

/** A prompt of `n` ids; ChatGLM-6B's end with [gMASK] <sop> (its 2D positions and prefix mask). */
function longPrompt(name: FamilyName, specials: Record<string, number>, n: number): number[] {
  const random = new Random(n);
  const ids = Array.from({ length: n }, () => 5 + random.int(390));
  return name === "chatglm" ? [...ids.slice(0, -2), specials["[gMASK]"], specials["<sop>"]] : ids;
}

for (const name of Object.keys(families) as FamilyName[]) {
  test(`${name}: with and without the KV cache, the same logits every step and the same greedy and beam outputs`, async () => {
    const family = families[name];
    const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
    const cached = new CachedGenerationModel({ family, config, weights });
    const plain = new CpuGenerationModel({ family, config, weights });
    const prompt = longPrompt(name, config.tokens.specials, 48);

    // step by step through both sessions, two sequences forked from one prompt
    const a = await cached.start([prompt]);
    const b = await plain.start([prompt]);
    let worst = relativeError(a.logits[0], b.logits[0]);
    await a.session.reorder([0, 0]);
    await b.session.reorder([0, 0]);
    for (const tokens of [[7, 9], [11, 11], [300, 4]]) {
      const [x, y] = [await a.session.append(tokens), await b.session.append(tokens)];
      worst = Math.max(worst, ...x.map((row, i) => relativeError(row, y[i])));
      await a.session.reorder([1, 0]);
      await b.session.reorder([1, 0]);
    }
    assert.ok(worst < 1e-6, `relative error ${worst}`);

    for (const settings of [greedy, { ...greedy, strategy: "beam" as const, numBeams: 3, numReturnSequences: 2, maxNewTokens: 4 }]) {
      const withCache = expectOk(await generate(cached, prompt, settings, new Random(0)));
      const without = expectOk(await generate(plain, prompt, settings, new Random(0)));
      assert.equal(withCache.map((g) => g.tokens), without.map((g) => g.tokens), `${name} ${settings.strategy}`);
    }
  });
}

for (const name of Object.keys(families) as FamilyName[]) {
  test(`${name}: a left-padded batch of prompts of different lengths generates what each prompt does alone`, async () => {
    const family = families[name];
    const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
    const cached = new CachedGenerationModel({ family, config, weights });
    const prompts = [13, 4, 30].map((n) => longPrompt(name, config.tokens.specials, n));
    const settings = { ...greedy, maxNewTokens: 5, eosTokenIds: [] };
    const calls: number[] = [];
    const counted = { ...cached, check: (p: readonly number[]) => cached.check(p), start: (ps: readonly (readonly number[])[]) => (calls.push(ps.length), cached.start(ps)) };
    const batched = expectOk(await generateBatch(counted, prompts, settings, new Random(0)));
    assert.equal(calls, [3], "one session for the three prompts");
    for (const [i, prompt] of prompts.entries()) {
      const alone = expectOk(await generate(cached, prompt, settings, new Random(0)));
      assert.equal(batched[i][0].tokens, alone[0].tokens, `prompt ${i} (${prompt.length} tokens)`);
    }
    // a sequence that stops early leaves the batch; the others continue unchanged
    const firstToken = batched[1][0].tokens[0];
    const early = expectOk(await generateBatch(cached, prompts, { ...settings, eosTokenIds: [firstToken] }, new Random(0)));
    assert.equal(early[1][0].tokens, [firstToken]);
    assert.equal(early[1][0].stopReason, "eos");
    for (const i of [0, 2]) {
      const cut = batched[i][0].tokens.indexOf(firstToken);
      assert.equal(early[i][0].tokens, cut < 0 ? batched[i][0].tokens : batched[i][0].tokens.slice(0, cut + 1), `prompt ${i} unaffected`);
    }
  });
}

// rope launches a layer: one where q's heads are followed by k's in one chunk (Baichuan-7B's W_pack,
// ChatGLM2's query_key_value), two where v's lie between (MOSS), none for ALiBi (Baichuan-13B)
// or host-built tables (ChatGLM-6B, elementwise)
const ROPES_A_LAYER: Record<FamilyName, number> = { baichuan7b: 1, chatglm2: 1, moss: 2, baichuan13b: 0, chatglm: 0 };
test("a prompt's and a decode step's q and k heads turn in one rope launch a layer where they lie together", async () => {
  for (const name of Object.keys(families) as FamilyName[]) {
    const family = families[name];
    const { config } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
    for (const shape of [{ batch: 2, past: 1, fresh: 5 }, { batch: 2, past: 64, fresh: 1 }]) {
      const step = expectOk(buildCachedStep(family, config, shape));
      const ropes = expectOk(compileGraph(step)).schedule.launches.filter((l) => l.kernel === "rope").length;
      assert.is(ropes, ROPES_A_LAYER[name] * config.dims.layers, `${name} ${JSON.stringify(shape)}`);
    }
  }
});

test.run();
