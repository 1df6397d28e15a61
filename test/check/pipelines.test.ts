// Every pipeline shipped in pipelines/ checks clean (without the data: --no-files) and is
// formatted, and the family x method files cover all 15 combinations.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkFile } from "../../compiler/check/check.ts";
import { formatSft } from "../../grammar/format.ts";

const dir = resolve(import.meta.dirname, "../../pipelines");
const files = readdirSync(dir).filter((f) => f.endsWith(".sft")).sort();

for (const name of files) {
  test(`pipelines/${name} checks clean and is formatted`, () => {
    const path = join(dir, name);
    const result = checkFile(path, { checkFiles: false });
    assert.equal(result.diagnostics.map((d) => `${d.code} ${d.message}`), []);
    assert.is(result.pipelines.length, 1);
    const text = readFileSync(path, "utf8");
    const formatted = formatSft(text, path);
    assert.ok(formatted.ok && formatted.value === text, `${name} is not formatted: run sftc fmt`);
  });
}

test("one pipeline per family and method", () => {
  for (const family of ["baichuan7b", "baichuan13b", "moss", "chatglm", "chatglm2"]) {
    for (const method of ["full", "lora", "qlora"]) {
      const result = checkFile(join(dir, `${family}-${method}.sft`), { checkFiles: false });
      const p = result.pipelines[0];
      assert.equal([p?.model.family, p?.method.kind], [family, method], `${family}-${method}.sft`);
      assert.is(p.model.init, "checkpoint");
    }
  }
});

test("the quickstart uses the tiny model and the bundled samples, which exist", () => {
  const result = checkFile(join(dir, "quickstart.sft"), { checkFiles: false });
  const p = result.pipelines[0];
  assert.is(p.model.init, "random");
  assert.is(p.model.size, "tiny");
  assert.equal(p.datasets.map((d) => d.format), ["belle", "firefly", "moss003", "safety"]);
  assert.is(p.model.vocab_size, undefined, "the embedding follows the tokenizer");
  // The samples and the tiny tokenizer ship with the repository: the check passes with files too.
  assert.equal(checkFile(join(dir, "quickstart.sft")).diagnostics, []);
});

test.run();
