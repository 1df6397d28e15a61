// Tokenized examples of every family's template against spec/golden/make_examples.py, which
// builds them in Python from the reference facts (sentencepiece, an independent GPT-2 BPE),
// untruncated and truncated at several max_length values.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collectDataset, type DatasetFormat } from "../../runtime/data/read-dataset.ts";
import { chooseTemplate, renderConversation } from "../../runtime/data/render.ts";
import { exampleEncoder, tokenizeExample } from "../../runtime/data/tokenize-example.ts";
import { loadTokenizer, type TokenizerKind } from "../../runtime/tokenizer/tokenizer.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { expectOk } from "../support/result.ts";

const root = join(import.meta.dirname, "..", "..");

interface GoldenCase {
  family: TemplateName;
  tokenizer: string;
  sample: string;
  format: DatasetFormat;
  path: string;
  max_length: number;
  examples: { input_ids: number[]; labels: number[] }[];
  dropped: number;
  full_lengths: number[];
}

const cases: GoldenCase[] = JSON.parse(readFileSync(join(root, "test", "fixtures", "examples", "examples.json"), "utf8"));

/** loadTokenizer reads a directory; a single model file is linked into one under its expected name. */
function tokenizerDir(path: string, family: TemplateName): string {
  if (statSync(path).isDirectory()) return path;
  const dir = mkdtempSync(join(tmpdir(), "sftc-golden-"));
  symlinkSync(path, join(dir, family === "chatglm" ? "ice_text.model" : "tokenizer.model"));
  return dir;
}

async function firstConversation(format: DatasetFormat, path: string) {
  const read = expectOk(await collectDataset({ format, path: join(root, path) }));
  return read.conversations[0];
}

test("every family, single and multi-turn, every max_length: ids and labels equal the Python reference", async () => {
  const families = new Set(cases.map((c) => c.family));
  assert.equal([...families].sort(), ["baichuan13b", "baichuan7b", "chatglm", "chatglm2", "moss"]);
  let checked = 0;
  for (const c of cases) {
    const dir = tokenizerDir(join(root, c.tokenizer), c.family);
    const tokenizer = expectOk(await loadTokenizer(dir, c.family as TokenizerKind));
    const choice = expectOk(chooseTemplate(c.family));
    const encoder = expectOk(exampleEncoder(tokenizer, choice, c.max_length));
    const conversation = await firstConversation(c.format, c.path);
    const label = `${c.family} ${c.sample} max_length ${c.max_length}`;
    const outcomes = renderConversation(conversation, choice).map((e) => tokenizeExample(e, encoder));
    assert.equal(
      outcomes.map((o) => (o.kind === "ok" ? o.example.fullLength : o.fullLength)),
      c.full_lengths,
      `${label}: lengths before truncation`,
    );
    const kept = outcomes.flatMap((o) => (o.kind === "ok" ? [{ input_ids: o.example.inputIds, labels: o.example.labels }] : []));
    assert.equal(kept, c.examples, label);
    assert.is(outcomes.length - kept.length, c.dropped, `${label}: dropped`);
    for (const e of kept) assert.ok(e.input_ids.length <= c.max_length, `${label}: within max_length`);
    checked++;
  }
  console.log(`    ${checked} golden cases match (${cases.reduce((n, c) => n + c.examples.length, 0)} examples, ${cases.reduce((n, c) => n + c.dropped, 0)} dropped)`);
});

test("a tokenizer without the template's special tokens is SFT5318 naming the token", async () => {
  const tokenizer = expectOk(await loadTokenizer(join(root, "test", "fixtures", "tokenizers", "gpt2"), "moss"));
  const result = exampleEncoder(tokenizer, expectOk(chooseTemplate("chatglm2")), 64);
  assert.not.ok(result.ok);
  assert.is(result.diagnostics[0].code, "SFT5318");
  assert.match(result.diagnostics[0].message, '"[gMASK]"');
});

test.run();
