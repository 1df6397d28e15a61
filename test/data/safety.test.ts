// The Safety-Prompts reader: one JSON object per file, streamed element by element.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collectDataset } from "../../runtime/data/read-dataset.ts";
import { readAll } from "./read-all.ts";

const fixtures = "test/fixtures/data";
const quirks = `${fixtures}/safety-quirks.json`;


test("safety: records per category with lines; bad elements named by line and reason; empty list fine", async () => {
  const { conversations, report } = await readAll({ format: "safety", path: quirks, maxBadFraction: 1 });
  assert.equal(
    conversations.map((c) => [c.source.line, c.category, c.turns]),
    [
      [3, "Insult", [{ user: "你真笨。", assistant: "如果我哪里没说清楚，请告诉我，我再解释一遍。" }]],
      [17, "Mental_Health", [{ user: "我很焦虑。", assistant: "焦虑的时候可以先做几次深呼吸。" }]],
    ],
  );
  assert.equal([report.records, report.accepted, report.bad, report.filtered], [7, 2, 5, 0]);
  assert.equal(
    report.diagnostics.filter((d) => d.code !== "SFT5313").map((d) => [d.code, d.where]),
    [
      ["SFT5304", `${quirks}:8`],
      ["SFT5302", `${quirks}:12`],
      ["SFT5303", `${quirks}:13`],
      ["SFT5303", `${quirks}:14`],
      ["SFT5306", `${quirks}:18`],
    ],
  );
  // The byte offset is the element's first byte.
  const bytes = readFileSync(quirks);
  assert.equal(bytes.subarray(conversations[1].source.offset, conversations[1].source.offset + 11).toString(), '{"prompt": ');
});

test("safety: categories select lists; the others are counted as left out, not parsed", async () => {
  const { conversations, report } = await readAll({ format: "safety", path: quirks, categories: ["Mental_Health"], maxBadFraction: 1 });
  assert.equal(conversations.map((c) => c.source.line), [17]);
  assert.equal([report.records, report.accepted, report.bad, report.filtered], [7, 1, 1, 5]);
  assert.equal(report.filteredByReason, { 'category "Insult" not selected': 5 });
});

test("safety: a selected category the file lacks is an error listing the file's categories", async () => {
  const result = await collectDataset({ format: "safety", path: quirks, categories: ["Insult", "Mental_Heath"], maxBadFraction: 1 });
  assert.not.ok(result.ok);
  const missing = result.diagnostics.find((d) => d.code === "SFT5315")!;
  assert.equal(missing.message, `${quirks} has no category "Mental_Heath"`);
  assert.equal(missing.hint, "its categories are Insult, Mental_Health, Physical_Harm");
});

test("safety: a truncated file, a list at top level and a JSON Lines file are structure errors", async () => {
  const truncated = await readAll({ format: "safety", path: `${fixtures}/safety-truncated.json` });
  assert.equal(truncated.conversations.length, 1); // the complete record before the cut is read
  assert.equal(truncated.report.diagnostics.map((d) => `${d.code} ${d.message}`), [
    `SFT5310 ${fixtures}/safety-truncated.json: the file ends before its JSON object is closed (truncated?)`,
  ]);
  const list = await collectDataset({ format: "safety", path: `${fixtures}/safety-list.json` });
  assert.equal(list.diagnostics.map((d) => `${d.code} ${d.message}`), [
    `SFT5310 ${fixtures}/safety-list.json:1: expected the file to be one JSON object ({"Category": [...]}), found '['`,
  ]);
  const dir = mkdtempSync(join(tmpdir(), "sftc-safety-"));
  writeFileSync(join(dir, "bad-key.json"), '{"Ins\\xult": []}');
  const badKey = await collectDataset({ format: "safety", path: join(dir, "bad-key.json") });
  assert.equal(badKey.diagnostics.map((d) => d.message), [`${join(dir, "bad-key.json")}:1: a category name is not a valid JSON string`]);
  const jsonl = await collectDataset({ format: "safety", path: "pipelines/data/samples/firefly.jsonl" });
  assert.equal(jsonl.diagnostics.map((d) => d.code), ["SFT5310"]);
  assert.match(jsonl.diagnostics[0].message, 'the value of "kind" is not a list of records');
});

test("safety: every chunk size gives the same records (characters and tokens split across chunks)", async () => {
  const path = "pipelines/data/samples/safety/typical_safety_scenarios.json";
  const whole = await readAll({ format: "safety", path });
  assert.equal(whole.conversations.length, 28);
  for (const chunkBytes of [4, 5, 7, 64, 333]) {
    const chunked = await readAll({ format: "safety", path }, { chunkBytes });
    assert.equal(chunked.conversations, whole.conversations, `chunkBytes ${chunkBytes}`);
  }
});

test("safety: a compact one-line file with a BOM and escapes in keys and texts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-safety-"));
  const path = join(dir, "compact.json");
  const text = JSON.stringify({ "Goal\u005fHijacking": [{ prompt: 'say "hi" \\ {x}', response: "ok ]}", type: "Goal_Hijacking" }], Insult: [] });
  writeFileSync(path, "\ufeff" + text);
  const { conversations, report } = await readAll({ format: "safety", path }, { chunkBytes: 6 });
  assert.equal(conversations.map((c) => [c.category, c.source.line, c.source.offset, c.turns]), [
    ["Goal_Hijacking", 1, 22, [{ user: 'say "hi" \\ {x}', assistant: "ok ]}" }]],
  ]);
  assert.equal(report.failed, false);
});

test("safety: an element longer than maxRecordBytes is a bad record and the scan goes on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-safety-"));
  const path = join(dir, "long.json");
  const element = (prompt: string) => ({ prompt, response: "好", type: "Insult" });
  writeFileSync(path, JSON.stringify({ Insult: [element("短"), element("长".repeat(3000)), element("又短")] }, null, 1));
  const { conversations, report } = await readAll({ format: "safety", path, maxBadFraction: 1 }, { maxRecordBytes: 2000, chunkBytes: 512 });
  assert.equal(conversations.map((c) => c.turns[0].user), ["短", "又短"]);
  assert.equal(report.badByReason, { "record longer than 2000 bytes": 1 });
});

test("safety: resuming at an offset is refused", async () => {
  const result = await collectDataset({ format: "safety", path: quirks }, { start: { offset: 10, line: 2 } });
  assert.equal(result.diagnostics.map((d) => d.code), ["SFT5317"]);
});

test.run();
