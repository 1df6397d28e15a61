// MOSS-style GPT-2 byte-level BPE against the independent Python implementation in
// spec/tokenizer/make_fixtures.py, on every fixture string; loaded through loadTokenizer.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { loadTokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { checkParity, fixtureDir, readExpected, readStrings } from "./fixtures.ts";
import { expectOk } from "../support/result.ts";

const moss = expectOk(await loadTokenizer(join(fixtureDir, "gpt2"), "moss"));

test("byte-level BPE encodes and decodes like the reference on every fixture string", () => {
  checkParity("gpt2", readStrings(), readExpected("gpt2"), (s) => moss.encode(s), (ids) => moss.decode(ids));
});

test("added tokens are split off first, longest match: whitespace runs and <eoh>/<eom>", () => {
  const eoh = moss.idOf("<eoh>")!;
  const eom = moss.idOf("<eom>")!;
  assert.equal(moss.namedSpecial.get("<eoh>"), eoh);
  assert.is(moss.special.eos, eom);
  assert.is(moss.special.bos, moss.idOf("<|endoftext|>"));
  const four = moss.idOf("    ")!;
  const ids = moss.encode("a    b<eoh>");
  assert.equal(ids.slice(-1), [eoh]);
  assert.ok(ids.includes(four), "a run of four spaces is one added token");
  assert.equal(moss.encode("        "), [moss.idOf("        ")!]);
  assert.equal(moss.encode("<eom><eoh>"), [eom, eoh]);
  assert.is(moss.decode([...moss.encode("你好"), eom]), "你好<eom>");
  assert.is(moss.decode([...moss.encode("你好"), eom], { skipSpecial: true }), "你好");
  assert.is(moss.vocabSize, Math.max(eom, eoh, moss.idOf("<eor>")!) + 1);
});

test.run();
