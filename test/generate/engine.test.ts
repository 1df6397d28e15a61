// The generation engine over a GenerationModel, on the ChatGLM2 fixture model: how it drives the
// session (one prompt run, then one token per step; beams fork and reorder the session instead of
// rerunning prompts), sampling reproducibility, stop callbacks and the positions limit.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CpuGenerationModel } from "../../runtime/generate/cpu-model.ts";
import { generate, type GenerationSettings } from "../../runtime/generate/engine.ts";
import { neutralLogits } from "../../runtime/generate/logits.ts";
import type { GenerationModel } from "../../runtime/generate/model.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { Random } from "../../runtime/random.ts";
import { families } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { expectOk } from "../support/result.ts";

const family = families.chatglm2;
const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, "chatglm2"), family));
const model = new CpuGenerationModel({ family, config, weights });
const prompt = [17, 250, 31, 99, 4];

const greedy: GenerationSettings = {
  strategy: "greedy",
  maxNewTokens: 8,
  maxLength: Infinity,
  eosTokenIds: config.tokens.eos,
  logits: neutralLogits,
  numBeams: 1,
  lengthPenalty: 1,
  earlyStopping: false,
  numReturnSequences: 1,
};

/** The model with every call to it and its sessions written down. */
function recording(inner: GenerationModel) {
  const calls: string[] = [];
  const wrapped: GenerationModel = {
    backend: inner.backend,
    vocabSize: inner.vocabSize,
    maxPositions: inner.maxPositions,
    check: (p) => inner.check(p),
    async start(prompts) {
      calls.push(`start ${prompts.length}x${prompts[0].length}`);
      const { session, logits } = await inner.start(prompts);
      return {
        logits,
        session: {
          get size() {
            return session.size;
          },
          append: (tokens) => (calls.push(`append ${tokens.length}`), session.append(tokens)),
          reorder: (sources) => (calls.push(`reorder ${sources.join(",")}`), session.reorder(sources)),
          free: () => (calls.push("free"), session.free()),
        },
      };
    },
  };
  return { wrapped, calls };
}

test("greedy runs the prompt once, then appends one token per step, and frees the session", async () => {
  const { wrapped, calls } = recording(model);
  const [out] = expectOk(await generate(wrapped, prompt, greedy, new Random(0)));
  assert.is(out.tokens.length, 8);
  assert.equal(calls, ["start 1x5", ...Array(7).fill("append 1"), "free"]);
});

test("beam search runs the prompt once, forks it to the beams, and reorders the session every step", async () => {
  const { wrapped, calls } = recording(model);
  const beams = expectOk(await generate(wrapped, prompt, { ...greedy, strategy: "beam", numBeams: 3, numReturnSequences: 3, maxNewTokens: 5 }, new Random(0)));
  assert.is(beams.length, 3);
  assert.is(calls.filter((c) => c.startsWith("start")).length, 1, "the prompt is not rerun per beam");
  assert.is(calls[1], "reorder 0,0,0", "the prompt's cache forks to three beams");
  assert.is(calls.filter((c) => c.startsWith("reorder")).length, 1 + 5, "one reorder per step after the fork");
  assert.ok(calls.filter((c) => c.startsWith("append")).every((c) => c === "append 3"));
  assert.ok(beams.every((b, i) => i === 0 || b.score! <= beams[i - 1].score!), "best first");
});

test("sampling is reproducible from its seed; top_k = 1 sampling is greedy search", async () => {
  const sample = { ...greedy, strategy: "sample" as const, logits: { ...neutralLogits, temperature: 1.5 } };
  const a = expectOk(await generate(model, prompt, sample, new Random(11)));
  const b = expectOk(await generate(model, prompt, sample, new Random(11)));
  const c = expectOk(await generate(model, prompt, sample, new Random(12)));
  assert.equal(a, b);
  assert.not.equal(a[0].tokens, c[0].tokens, "another seed draws another sequence");
  const topOne = expectOk(await generate(model, prompt, { ...sample, logits: { ...sample.logits, topK: 1 } }, new Random(5)));
  const argmax = expectOk(await generate(model, prompt, greedy, new Random(0)));
  assert.equal(topOne[0].tokens, argmax[0].tokens);
});

test("num_return_sequences draws that many samples; a stop callback ends one sequence", async () => {
  const sample = { ...greedy, strategy: "top_p" as const, logits: { ...neutralLogits, topP: 0.9 }, numReturnSequences: 2 };
  const out = expectOk(await generate(model, prompt, sample, new Random(3), (_, sequence) => sequence === 1));
  assert.is(out.length, 2);
  assert.is(out[0].tokens.length, 8);
  assert.equal([out[1].tokens.length, out[1].stopReason], [1, "stop_string"]);
});

test("max_length and the model's positions bound generation; bad prompts are diagnostics", async () => {
  const capped = expectOk(await generate(model, prompt, { ...greedy, maxLength: prompt.length + 3 }, new Random(0)));
  assert.equal([capped[0].tokens.length, capped[0].stopReason], [3, "max_length"]);
  const nearEnd = Array.from({ length: config.dims.maxPositions - 2 }, (_, i) => 5 + (i % 300));
  const atLimit = expectOk(await generate(model, nearEnd, greedy, new Random(0)));
  assert.equal([atLimit[0].tokens.length, atLimit[0].stopReason], [2, "max_length"]);
  for (const bad of [[], [1, config.dims.vocab], new Array(config.dims.maxPositions).fill(5)]) {
    const result = await generate(model, bad, greedy, new Random(0));
    assert.is(result.ok, false);
    if (!result.ok) assert.is(result.diagnostics[0].code, "SFT5701");
  }
});

test("a ChatGLM-6B prompt without [gMASK] <sop> is refused with the reason", async () => {
  const glm = expectOk(await checkpointWeights(join(FIXTURES, "chatglm"), families.chatglm));
  const glmModel = new CpuGenerationModel({ family: families.chatglm, ...glm });
  const result = await generate(glmModel, [20, 30, 40], greedy, new Random(0));
  assert.is(result.ok, false);
  if (!result.ok) {
    assert.is(result.diagnostics[0].code, "SFT5701");
    assert.match(result.diagnostics[0].message, "The prompt lacks [gMASK]");
  }
});

test.run();
