// The dataset key `loss_scheme` reaches the encoder: MOSS's own scheme trains the user turns too;
// a scheme the template lacks is refused.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { openEncoder, tokenizeConversations, type EncoderSpec } from "../../runtime/data/tokenize-chunk.ts";
import type { Conversation } from "../../runtime/data/conversation.ts";
import { expectOk } from "../support/result.ts";

const root = join(import.meta.dirname, "..", "..");
const conversation: Conversation = {
  turns: [
    { user: "你好", assistant: "你好！" },
    { user: "Tell me a joke", assistant: "Why did the chicken cross the road?" },
  ],
  source: { file: "inline", line: 1, offset: 0 },
};
const spec = (loss?: string): EncoderSpec => ({
  tokenizerDir: join(root, "test", "fixtures", "tokenizers", "gpt2"),
  tokenizerKind: "moss",
  template: "moss",
  loss,
  trainOnPrompt: false,
  maxLength: 8192, // the meta instruction alone is hundreds of byte-level tokens with this small vocabulary
});

test("MOSS's own loss scheme trains more tokens than the default assistant-only scheme", async () => {
  const counts: Record<string, number> = {};
  for (const loss of [undefined, "assistant", "moss"]) {
    const open = expectOk(await openEncoder(spec(loss)));
    const chunk = tokenizeConversations([conversation], 1, open);
    counts[String(loss)] = chunk.trained.reduce((a, b) => a + b, 0);
  }
  assert.is(counts.undefined, counts.assistant, "assistant is the default");
  assert.ok(counts.moss > counts.assistant, JSON.stringify(counts));
});

test("a loss scheme the template does not have is an error", async () => {
  const r = await openEncoder({ ...spec("moss"), template: "chatglm2", tokenizerKind: "chatglm2", tokenizerDir: join(root, "pipelines", "models", "tiny") });
  assert.is(r.ok, false);
  assert.is(r.ok ? "" : r.diagnostics[0].code, "SFT5316");
});

test.run();
