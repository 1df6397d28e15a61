// `sftc tokenize` in-process on the quickstart pipeline (its tiny ChatGLM2 tokenizer): the ids and
// pieces it prints are the tokenizer's own, --ids decodes them back, and mistakes are usage errors.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadTokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { expectOk } from "../support/result.ts";
import { scratch, sftc } from "./support.ts";

const root = join(import.meta.dirname, "..", "..");
const quickstart = join(root, "pipelines", "quickstart.sft");
const text = "你好，世界 hello";
const tokenizer = async () => expectOk(await loadTokenizer(join(root, "pipelines", "models", "tiny"), "chatglm2"));

test("--text prints one line per token (id and piece), then the ids", async () => {
  const expected = (await tokenizer()).encode(text);
  const pieces = (await tokenizer()).pieces(expected);
  const run = await sftc(["tokenize", quickstart, "--text", text]);
  assert.is(run.code, 0, run.err);
  const lines = run.out.trimEnd().split("\n");
  assert.is(lines[0], `${expected.length} tokens`);
  assert.equal(
    lines.slice(1, -1).map((line) => line.trim().split(/\s+/)),
    expected.map((id, i) => [String(id), JSON.stringify(pieces[i])]),
  );
  assert.is(lines[lines.length - 1], `ids: ${expected.join(",")}`);
});

test("--json with --special adds the family's prefix tokens; --ids decodes back to the text", async () => {
  const t = await tokenizer();
  const run = await sftc(["tokenize", quickstart, "--text", text, "--special", "--json"]);
  assert.is(run.code, 0, run.err);
  const printed = JSON.parse(run.out);
  assert.equal(printed.ids, t.withSpecialTokens(t.encode(text)));
  assert.equal(printed.ids.slice(0, 2), [t.namedSpecial.get("[gMASK]"), t.namedSpecial.get("sop")], "ChatGLM2 prepends [gMASK] sop");
  assert.equal(printed.pieces, t.pieces(printed.ids));

  const decoded = await sftc(["tokenize", quickstart, "--ids", t.encode(text).join(",")]);
  assert.is(decoded.code, 0, decoded.err);
  assert.is(decoded.out, `${text}\n`);
});

test("usage mistakes exit 2 with a message; a missing tokenizer exits 1 naming the file", async () => {
  const neither = await sftc(["tokenize", quickstart]);
  assert.is(neither.code, 2);
  assert.match(neither.err, "give either --text TEXT or --ids 1,2,3");
  const both = await sftc(["tokenize", quickstart, "--text", "a", "--ids", "1"]);
  assert.is(both.code, 2);
  const badIds = await sftc(["tokenize", quickstart, "--ids", "1,-2"]);
  assert.is(badIds.code, 2);
  assert.match(badIds.err, "got `-2`");

  const project = scratch({
    "p.sft": 'sft 1\n\npipeline p {\n  model chatglm2 {\n    init = random\n    size = tiny\n    tokenizer = "tok"\n  }\n  method lora {}\n  dataset belle {\n    path = "b.json"\n  }\n  train {\n    epochs = 1\n  }\n}\n',
    "b.json": '{"instruction":"你好","input":"","output":"你好！"}\n',
  });
  try {
    const missing = await sftc(["tokenize", join(project.dir, "p.sft"), "--text", "a", "--no-files"]);
    assert.is(missing.code, 1);
    assert.match(missing.err, "SFT5201");
    assert.match(missing.err, "tokenizer.model");
    assert.not.match(missing.err, /\n\s+at /, "no stack trace");
  } finally {
    project.cleanup();
  }
});

test.run();
