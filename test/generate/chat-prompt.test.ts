// Chat prompts match training: for every family's template, the generation prompt of a second
// turn (the first turn as history) is exactly the training example of that conversation up to
// where its last answer starts, and what follows in the example is only that answer (trained)
// and its closing token. A mismatch here is the chat-template / EOS mismatch between training
// and inference that users report.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { chooseTemplate, renderConversation } from "../../runtime/data/render.ts";
import { exampleEncoder, ignoreIndex, tokenizeExample } from "../../runtime/data/tokenize-example.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { familyTokenizers } from "../support/family-tokenizers.ts";
import { expectOk } from "../support/result.ts";

const tokenizers = await familyTokenizers();

const turns = [
  { user: "晚上睡不着怎么办", assistant: "可以试试睡前不看手机。" },
  { user: "还有别的办法吗？", assistant: "规律作息，白天适量运动。" },
];

for (const family of Object.keys(tokenizers) as TemplateName[]) {
  test(`${family}: the second turn's chat prompt is the training example up to its last answer`, () => {
    const tokenizer = tokenizers[family];
    const choice = expectOk(chooseTemplate(family));
    const encoder = expectOk(exampleEncoder(tokenizer, choice, 100_000));
    const examples = renderConversation({ turns, source: { file: "test", line: 1, offset: 0 } }, choice);
    const outcome = tokenizeExample(examples[examples.length - 1], encoder);
    assert.is(outcome.kind, "ok");
    if (outcome.kind !== "ok") return;
    const { inputIds, labels } = outcome.example;

    const prompt = expectOk(chatPromptIds(tokenizer, family, [turns[0]], turns[1].user));
    assert.equal(inputIds.slice(0, prompt.length), prompt, "the prompt is the example's prefix");
    const rest = inputIds.slice(prompt.length);
    assert.ok(rest.length >= 2, "an answer and its closing token follow");
    assert.ok(labels.slice(prompt.length).every((l) => l !== ignoreIndex), "everything after the prompt is trained: the answer alone");
    assert.is(tokenizer.decode(rest, { skipSpecial: true }).trim(), turns[1].assistant);

    const first = expectOk(chatPromptIds(tokenizer, family, [], turns[0].user));
    assert.ok(prompt.length > first.length, "the history is in the second prompt");
  });
}

test.run();
