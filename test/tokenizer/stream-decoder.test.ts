// Streaming decoders: fed one id at a time, every output so far is a prefix of the full decode
// (nothing is emitted that a later id would change), no output holds a broken character, and
// the outputs plus flush() equal decode(ids).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { Random } from "../../runtime/random.ts";
import { ChatGlmTokenizer } from "../../runtime/tokenizer/chatglm.ts";
import { ChatGlm2Tokenizer } from "../../runtime/tokenizer/chatglm2.ts";
import { SentencePieceTokenizer } from "../../runtime/tokenizer/sentencepiece-tokenizer.ts";
import { loadTokenizer, type Tokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { fixtureDir, loadFixtureModel } from "./fixtures.ts";
import { expectOk } from "../support/result.ts";

const BYTE_HEAVY = ["𠀋𠂇𠃌𡈽𤭢𪚥", "鼗龘齉爨靐麤 㸚䲜𬌗", "a𠀋b𪚥c", "👨‍👩‍👧🇨🇳👍🏽", "𠀋\n\t  𠂇", "混合𠀋文本😀与<n>字节"];

const tokenizers: [string, Tokenizer][] = [
  ["bpe", new SentencePieceTokenizer("sentencepiece", loadFixtureModel("bpe"), {})],
  ["unigram", new SentencePieceTokenizer("sentencepiece", loadFixtureModel("unigram"), {})],
  ["nfkc", new SentencePieceTokenizer("sentencepiece", loadFixtureModel("nfkc"), {})],
  ["chatglm", expectOk(ChatGlmTokenizer.create(loadFixtureModel("glm6"), "glm6.model"))],
  ["chatglm2", new ChatGlm2Tokenizer(loadFixtureModel("unigram"))],
  ["gpt2", expectOk(await loadTokenizer(join(fixtureDir, "gpt2"), "moss"))],
];

const hasLoneSurrogate = (s: string) => /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

/** Streams `ids`, checking every step; returns the streamed text. */
function streamChecked(tok: Tokenizer, ids: number[], label: string): string {
  const full = tok.decode(ids);
  const stream = tok.streamDecoder();
  let out = "";
  for (let k = 0; k < ids.length; k++) {
    const piece = stream.push(ids[k]);
    assert.not.ok(hasLoneSurrogate(piece), `${label}: output ${k} splits a character`);
    out += piece;
    assert.ok(full.startsWith(out), `${label}: after ${k + 1} ids the stream wrote ${JSON.stringify(out)}, not a prefix of ${JSON.stringify(full)}`);
  }
  out += stream.flush();
  assert.is(out, full, `${label}: stream + flush differs from decode`);
  return out;
}

for (const [name, tok] of tokenizers) {
  test(`${name}: streaming byte-fallback-heavy text never emits a broken character`, () => {
    let steps = 0;
    for (const text of BYTE_HEAVY) {
      const ids = tok.encode(text);
      steps += ids.length;
      const full = tok.decode(ids);
      assert.not.ok(full.includes("\ufffd"), `${name}: ${JSON.stringify(text)} decodes with a replacement character`);
      streamChecked(tok, ids, `${name} ${JSON.stringify(text)}`);
    }
    console.log(`    ${name}: ${steps} streamed ids over ${BYTE_HEAVY.length} byte-heavy strings`);
  });

  test(`${name}: streaming random id sequences equals decode`, () => {
    const random = new Random(7);
    // Mostly byte-like ids (low ids are bytes and specials in these vocabularies), some anywhere.
    for (let n = 0; n < 200; n++) {
      const ids = Array.from({ length: 1 + random.int(16) }, () => (random.uniform() < 0.6 ? random.int(300) : random.int(tok.vocabSize + 2)));
      streamChecked(tok, ids, `${name} ${JSON.stringify(ids)}`);
    }
  });
}

test("skipSpecial streams like decode with skipSpecial", () => {
  const tok = tokenizers[5][1];
  const ids = [...tok.encode("你好"), tok.special.eos!, ...tok.encode("𠀋")];
  const stream = tok.streamDecoder({ skipSpecial: true });
  assert.is(ids.map((id) => stream.push(id)).join("") + stream.flush(), tok.decode(ids, { skipSpecial: true }));
  assert.is(tok.decode(ids, { skipSpecial: true }), "你好𠀋");
});

test.run();
