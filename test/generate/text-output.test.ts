// Streamed generation text (runtime/generate/text-output.ts) with the quickstart's tiny ChatGLM2
// tokenizer: whole characters only, special tokens left out, stop strings held back and cut.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { TextOutput } from "../../runtime/generate/text-output.ts";
import { loadTokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { expectOk } from "../support/result.ts";

const tokenizer = expectOk(await loadTokenizer(join(import.meta.dirname, "..", "..", "pipelines", "models", "tiny"), "chatglm2"));

/** Pushes `ids` one at a time; returns every chunk emitted, the final flush last. */
function stream(ids: readonly number[], stops: string[]): { chunks: string[]; output: TextOutput } {
  const output = new TextOutput(tokenizer, stops);
  const chunks = ids.map((id) => output.push(id));
  chunks.push(output.finish());
  return { chunks, output };
}

test("a character spread over byte tokens is emitted whole, once its last byte arrives", () => {
  const bytes = [...new TextEncoder().encode("睡")].map((b) => tokenizer.idOf(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
  assert.ok(bytes.every((id) => id !== undefined), "the tokenizer has byte-fallback pieces");
  const before = tokenizer.encode("好");
  const { chunks, output } = stream([...before, ...(bytes as number[]), ...tokenizer.encode("觉")], []);
  assert.ok(chunks.every((c) => !c.includes("\uFFFD")), `no replacement character in ${JSON.stringify(chunks)}`);
  assert.equal(chunks.slice(before.length, before.length + 3), ["", "", "睡"], "nothing until the third byte");
  assert.is(output.text, tokenizer.decode([...before, ...(bytes as number[]), ...tokenizer.encode("觉")]));
  assert.ok(output.text.includes("好睡"));
});

test("every streamed chunk of a mixed text is whole and together they equal decode()", () => {
  const text = "晚上睡不着怎么办？Try counting sheep: 1, 2, 3… 🐑";
  const ids = tokenizer.encode(text);
  const { chunks, output } = stream(ids, []);
  assert.ok(chunks.every((c) => !c.includes("\uFFFD")), "no broken character");
  assert.is(chunks.join(""), tokenizer.decode(ids));
  assert.is(output.text, tokenizer.decode(ids));
});

test("special tokens are not printed", () => {
  const gmask = tokenizer.namedSpecial.get("[gMASK]")!;
  const { output } = stream([gmask, ...tokenizer.encode("你好"), tokenizer.special.eos!], []);
  assert.is(output.text, "你好");
});

test("a stop string ends the text right before it; a possible start of one is held back", () => {
  const ids = tokenizer.encode("first answer\n\n问：second question");
  const { chunks, output } = stream(ids, ["\n\n问"]);
  assert.is(output.text, "first answer");
  assert.is(output.stop, "\n\n问");
  assert.ok(chunks.every((c) => !c.includes("\n")), `no part of the stop string is printed: ${JSON.stringify(chunks)}`);

  const held = new TextOutput(tokenizer, ["END"]);
  const shown = tokenizer.encode("the EN").map((id) => held.push(id)).join("");
  assert.ok(!shown.includes("EN"), `"EN" may start "END": held back, got ${JSON.stringify(shown)}`);
  assert.is(held.finish(), tokenizer.decode(tokenizer.encode("the EN")).slice(shown.length), "released at the end when no stop came");
  assert.is(held.stop, null);
});

test("the earliest stop string wins; nothing is emitted after it", () => {
  const output = new TextOutput(tokenizer, ["world", "lo"]);
  const chunks = tokenizer.encode("hello world, again").map((id) => output.push(id));
  assert.is(output.text, "hel");
  assert.is(output.stop, "lo");
  assert.is(output.finish(), "");
  assert.is(chunks.join(""), "hel");
});

test.run();
