// The truncation policy of runtime/data/tokenize-example.ts as properties, checked at every
// max_length from 8 to the untruncated length of a two-turn sample, for every family; and
// LLaMA-Factory's budget split on its own.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { collectDataset } from "../../runtime/data/read-dataset.ts";
import { chooseTemplate, renderConversation } from "../../runtime/data/render.ts";
import { exampleEncoder, ignoreIndex, shareBudget, tokenizeExample, type TokenizedExample } from "../../runtime/data/tokenize-example.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { familyTokenizers } from "../support/family-tokenizers.ts";
import { expectOk } from "../support/result.ts";

const root = join(import.meta.dirname, "..", "..");
const tokenizers = await familyTokenizers();
const conversation = expectOk(await collectDataset({ format: "moss003", path: join(root, "pipelines", "data", "samples", "moss003.jsonl") })).conversations[0];

function tokenize(family: TemplateName, maxLength: number) {
  const choice = expectOk(chooseTemplate(family));
  const encoder = expectOk(exampleEncoder(tokenizers[family], choice, maxLength));
  return { encoder, outcomes: renderConversation(conversation, choice).map((e) => tokenizeExample(e, encoder)) };
}

const trained = (e: TokenizedExample) => e.labels.map((l) => l !== ignoreIndex);

test("one sequence of turns: a prefix of the full example; a cut answer ends with </s> (not for MOSS); never ends untrained", () => {
  for (const family of ["baichuan7b", "baichuan13b", "chatglm2", "moss"] as const) {
    const { outcomes, encoder } = tokenize(family, 100_000);
    const full = outcomes[0];
    assert.is(full.kind, "ok");
    if (full.kind !== "ok") continue;
    const closing = family === "moss" ? undefined : encoder.specialIds.get("</s>");
    let kept = 0;
    for (let maxLength = 8; maxLength <= full.example.inputIds.length; maxLength++) {
      const [outcome] = tokenize(family, maxLength).outcomes;
      if (outcome.kind === "dropped") {
        assert.not.ok(full.example.labels.slice(1, maxLength).some((l) => l !== ignoreIndex), `${family} ${maxLength}: dropped only without a trained token in reach`);
        continue;
      }
      kept++;
      const { inputIds, labels } = outcome.example;
      const n = inputIds.length;
      assert.ok(n <= maxLength, `${family} ${maxLength}`);
      assert.equal(inputIds.slice(0, n - 1), full.example.inputIds.slice(0, n - 1), `${family} ${maxLength}: a prefix`);
      assert.ok(trained(outcome.example)[n - 1], `${family} ${maxLength}: ends trained`);
      const cutInsideAnswer = n < full.example.inputIds.length && full.example.labels[n - 1] !== ignoreIndex;
      if (closing !== undefined && cutInsideAnswer) assert.is(inputIds[n - 1], closing, `${family} ${maxLength}: closing token kept`);
      else assert.is(inputIds[n - 1], full.example.inputIds[n - 1], `${family} ${maxLength}: last token as it was`);
      assert.is(labels[n - 1], inputIds[n - 1]);
    }
    assert.ok(kept > 0, family);
  }
});

test("ChatGLM-6B: [gMASK] <sop> ... <eop> always kept; the prompt keeps its end, the answer its start", () => {
  const { outcomes, encoder } = tokenize("chatglm", 100_000);
  const [gmask, sop, eop] = ["[gMASK]", "<sop>", "<eop>"].map((name) => encoder.specialIds.get(name)!);
  outcomes.forEach((full, turn) => {
    assert.is(full.kind, "ok");
    if (full.kind !== "ok") return;
    const at = full.example.inputIds.indexOf(gmask);
    const prompt = full.example.inputIds.slice(0, at);
    const answer = full.example.inputIds.slice(at + 2, -1);
    for (let maxLength = 8; maxLength <= full.example.inputIds.length; maxLength += 3) {
      const outcome = tokenize("chatglm", maxLength).outcomes[turn];
      assert.is(outcome.kind, "ok", "never dropped: <sop> is trained at a position >= 1");
      if (outcome.kind !== "ok") continue;
      const ids = outcome.example.inputIds;
      assert.ok(ids.length <= maxLength);
      const g = ids.indexOf(gmask);
      assert.equal([ids[g + 1], ids[ids.length - 1]], [sop, eop]);
      assert.equal(ids.slice(0, g), prompt.slice(prompt.length - g), `turn ${turn} ${maxLength}: the end of the prompt`);
      assert.equal(ids.slice(g + 2, -1), answer.slice(0, ids.length - g - 3), `turn ${turn} ${maxLength}: the start of the answer`);
      assert.equal(trained(outcome.example), ids.map((_, t) => t > g), "labels from <sop> on");
    }
  });
});

test("shareBudget follows LLaMA-Factory's infer_seqlen", () => {
  // A short answer is kept whole; else a short prompt is; else both shrink in proportion.
  assert.equal(shareBudget(100, 10, 50), { sourceLength: 40, targetLength: 10 });
  assert.equal(shareBudget(10, 100, 50), { sourceLength: 10, targetLength: 40 });
  assert.equal(shareBudget(100, 100, 50), { sourceLength: 25, targetLength: 25 });
  assert.equal(shareBudget(300, 100, 50), { sourceLength: 38, targetLength: 12 });
  assert.equal(shareBudget(5, 5, 50), { sourceLength: 5, targetLength: 5 });
});

test.run();
