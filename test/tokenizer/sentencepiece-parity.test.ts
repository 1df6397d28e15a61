// sftc's SentencePiece against the sentencepiece library on every fixture string
// (spec/tokenizer/make_fixtures.py trained the models and recorded the library's ids and text).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkParity, loadFixtureModel, readExpected, readStrings } from "./fixtures.ts";

const strings = readStrings();

test("the fixtures cover at least 1,000 strings", () => {
  assert.ok(strings.length >= 1000, `${strings.length} strings`);
});

for (const [name, what] of [
  ["bpe", "BPE, byte fallback, split digits, user-defined symbols, whitespace kept"],
  ["unigram", "unigram, byte fallback, split digits, whitespace folded"],
  ["nfkc", "unigram with spm_train defaults: nmt_nfkc charsmap, unknowns without byte fallback"],
] as const) {
  test(`${name} (${what}) encodes and decodes as sentencepiece does`, () => {
    const sp = loadFixtureModel(name);
    checkParity(name, strings, readExpected(name), (s) => sp.encode(s), (ids) => sp.decode(ids));
  });
}

test.run();
