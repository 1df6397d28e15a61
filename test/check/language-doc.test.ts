// spec/language.md stays in sync with the schemas and the code table: its generated blocks must
// equal what compiler/check/language-reference.ts renders. `SFT_UPDATE_BASELINES=1` rewrites them.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { generatedBlocks, regenerate } from "../../compiler/check/language-reference.ts";

const path = resolve(import.meta.dirname, "../../spec/language.md");

test("spec/language.md has every generated block", () => {
  const text = readFileSync(path, "utf8");
  for (const name of Object.keys(generatedBlocks)) {
    assert.ok(text.includes(`<!-- generated:${name} -->`) && text.includes(`<!-- end generated:${name} -->`), `block ${name} is missing`);
  }
});

test("the generated blocks of spec/language.md are up to date", () => {
  const text = readFileSync(path, "utf8");
  const fresh = regenerate(text);
  if (process.env.SFT_UPDATE_BASELINES === "1" && fresh !== text) writeFileSync(path, fresh);
  else assert.fixture(text, fresh, "run SFT_UPDATE_BASELINES=1 npm test -- language-doc");
});

test("the key reference documents every key with a description", () => {
  const reference = generatedBlocks.keys();
  assert.ok(reference.includes("| `warmup_steps`") || reference.includes("`warmup_steps` (integer"), "typed-object fields are listed");
  assert.not.match(reference, /\| \| \|\n/, "a key without type and meaning");
  for (const key of ["`rank`", "`block_size`", "`eval_split`", "`max_grad_norm`", "`num_beams`", "`categories`"]) assert.ok(reference.includes(key), key);
});

test.run();
