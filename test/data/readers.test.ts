// The JSON Lines readers (belle, firefly, moss003, jsonl) on quirk fixtures, and the
// bad-record policy: every record is counted, bad ones are named by file:line and reason.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import { collectDataset } from "../../runtime/data/read-dataset.ts";
import { readAll } from "./read-all.ts";

const fixtures = "test/fixtures/data";


function summary(d: Diagnostic): string {
  return `${d.code} ${d.message}`;
}

const belle = `${fixtures}/belle-quirks.json`;

test("belle: BOM, CRLF, no final newline, both field layouts; every bad line named with its reason", async () => {
  const { conversations, report } = await readAll({ format: "belle", path: belle, maxBadFraction: 1 });
  assert.equal(
    conversations.map((c) => [c.source.line, c.turns]),
    [
      [1, [{ user: "把下面的句子翻译成英文。\n今天天气很好。", assistant: "The weather is nice today." }]],
      [2, [{ user: "说出一种水果。", assistant: "苹果" }]],
      [9, [{ user: "一加一等于几？", assistant: "二" }]],
      [10, [{ user: "列出两个颜色。红色和", assistant: "红色、蓝色" }]],
    ],
  );
  assert.equal(conversations[0].source, { file: belle, line: 1, offset: 3 });
  assert.equal([report.records, report.accepted, report.bad, report.blankLines, report.filtered], [9, 4, 5, 1, 0]);
  assert.equal(report.badByReason, {
    'missing field "output"': 1,
    'field "output" is not a string': 1,
    "empty answer": 1,
    "invalid JSON": 1,
    "record is not a JSON object": 1,
  });
  const perRecord = report.diagnostics.filter((d) => d.code !== "SFT5313");
  assert.equal(
    perRecord.map((d) => [d.code, d.where]),
    [
      ["SFT5304", `${belle}:3`],
      ["SFT5305", `${belle}:4`],
      ["SFT5306", `${belle}:6`],
      ["SFT5302", `${belle}:7`],
      ["SFT5303", `${belle}:8`],
    ],
  );
  assert.match(perRecord[1].message, `${belle}:4: field "output" is not a string (found a number); record skipped`);
  assert.match(perRecord[4].message, "found a list");
  assert.equal(report.failed, false);
  const last = report.diagnostics.at(-1)!;
  assert.equal(summary(last), `SFT5313 ${belle}: skipped 5 bad of 9 records (1 × missing field "output", 1 × field "output" is not a string, 1 × empty answer, 1 × invalid JSON, 1 × record is not a JSON object)`);
});

test("belle with strip = false keeps the texts exactly as in the file", async () => {
  const { conversations } = await readAll({ format: "belle", path: belle, strip: false, maxBadFraction: 1 });
  assert.equal(conversations[0].turns, [{ user: "把下面的句子翻译成英文。\n今天天气很好。\n", assistant: "\nThe weather is nice today." }]);
  const fnlp = await readAll({ format: "moss003", path: `${fixtures}/moss-quirks.jsonl`, strip: false, maxBadFraction: 1 });
  // The marker's space after "<|Human|>:" is not part of the text; the fnlp "\n" after <eoh> is outside the marker.
  assert.equal(fnlp.conversations.find((c) => c.id === "6")?.turns, [{ user: "今天星期几？", assistant: "我无法获取实时日期，请查看设备上的日历。" }]);
});

test("policy: on_error = skip with the default 1% threshold fails a file with 5 of 9 bad records", async () => {
  const result = await collectDataset({ format: "belle", path: belle });
  assert.not.ok(result.ok);
  const fatal = result.diagnostics.find((d) => d.code === "SFT5311");
  assert.ok(fatal, result.diagnostics.map(summary).join("\n"));
  assert.match(fatal.message, "5 of 9 records are bad (55.6%, more than max_bad_fraction = 0.01)");
});

test("policy: on_error = fail stops at the first bad record, naming file:line", async () => {
  const { conversations, report } = await readAll({ format: "belle", path: belle, onError: "fail" });
  assert.equal(conversations.length, 2);
  assert.ok(report.failed);
  assert.equal([report.records, report.bad], [3, 1]);
  const stop = report.diagnostics.find((d) => d.code === "SFT5312")!;
  assert.equal(stop.where, `${belle}:3`);
  assert.match(stop.message, 'missing field "output", and on_error = fail stops at the first bad record');
});

test("policy: past 1000 records the threshold stops a wrong-format file early", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-policy-"));
  const path = join(dir, "moss-as-belle.jsonl");
  const line = JSON.stringify({ conversation_id: 1, category: "Code", conversation: [{ human: "问", assistant: "答" }], dataset: "moss" });
  writeFileSync(path, `${line}\n`.repeat(5000));
  const { report } = await readAll({ format: "belle", path });
  assert.ok(report.failed);
  assert.equal([report.records, report.bad], [1000, 1000]); // stopped, not read to the end
  assert.equal(report.diagnostics.filter((d) => d.code === "SFT5304").length, 10); // only the first 10 listed
  assert.equal(report.badByReason, { 'missing field "instruction"': 1000 });
});

test("firefly: kinds filter counted per kind; missing and mistyped fields are bad", async () => {
  const path = `${fixtures}/firefly-quirks.jsonl`;
  const { conversations, report } = await readAll({ format: "firefly", path, kinds: ["NER", "Couplet"], maxBadFraction: 1 });
  assert.equal(
    conversations.map((c) => [c.source.line, c.category, c.turns[0].assistant]),
    [
      [1, "NER", "人名：小李\n地名：上海"],
      [3, "Couplet", "下联：福满人间"],
    ],
  );
  assert.equal([report.records, report.accepted, report.bad, report.filtered], [5, 2, 2, 1]);
  assert.equal(report.filteredByReason, { 'kind "Summary" not selected': 1 });
  assert.equal(report.diagnostics.filter((d) => d.where?.includes(":")).map((d) => [d.code, d.where]), [
    ["SFT5305", `${path}:2`],
    ["SFT5304", `${path}:4`],
  ]);
  assert.ok(report.diagnostics.some((d) => d.code === "SFT5314" && d.message.includes("left out 1 of 5 records")));
});

const moss = `${fixtures}/moss-quirks.jsonl`;

test("moss003: both layouts in one file; plugin turns filtered; every malformed record named", async () => {
  const { conversations, report } = await readAll({ format: "moss003", path: moss, maxBadFraction: 1 });
  assert.equal(
    conversations.map((c) => [c.source.line, c.id, c.category, c.turns]),
    [
      [1, "1", "Brainstorming", [{ user: "你好", assistant: "你好！有什么可以帮你的？" }, { user: "推荐一本书", assistant: "推荐《活着》。" }]],
      [2, "2", "Writing", [{ user: "Say hi.", assistant: "Hi!" }]],
      [6, "6", "Others", [{ user: "今天星期几？", assistant: "我无法获取实时日期，请查看设备上的日历。" }]],
    ],
  );
  assert.equal(conversations[2].system, "You are an AI assistant whose name is MOSS.\n- Inner thoughts: disabled.\n");
  assert.equal(conversations[0].system, undefined);
  assert.equal([report.records, report.accepted, report.bad, report.filtered], [10, 3, 6, 1]);
  assert.equal(report.filteredByReason, { "uses plugins (Inner Thoughts)": 1 });
  assert.equal(
    report.diagnostics.filter((d) => d.severity === "warning" && d.code !== "SFT5313").map((d) => d.message.replace(`${moss}:`, "")),
    [
      '3: field "conversation" is not a list (found a string); record skipped',
      '4: missing field "conversation[].assistant" (conversation[1]); record skipped',
      "5: empty answer in a turn (conversation[1]); record skipped",
      '8: chat.turn_N.Human is not "<|Human|>: ...<eoh>" (chat.turn_1); record skipped',
      '9: chat has no object "turn_N" for every N up to num_turns (chat.turn_2); record skipped',
      "10: record is not a JSON object (found a string; expected a moss-003-sft-data conversation); record skipped",
    ],
  );
});

test("moss003: language and category filters", async () => {
  const en = await readAll({ format: "moss003", path: moss, language: "en", maxBadFraction: 1 });
  assert.equal(en.conversations.map((c) => c.id), ["2"]);
  assert.equal(en.report.filteredByReason, { "uses plugins (Inner Thoughts)": 1, "language zh not selected": 2 });
  const all = await readAll({ format: "moss003", path: moss, language: "all", maxBadFraction: 1 });
  assert.equal(all.conversations.map((c) => c.id), ["1", "2", "6"]);
  const empty = await readAll({ format: "moss003", path: moss, categories: [], maxBadFraction: 1 });
  assert.equal(empty.conversations.map((c) => c.id), ["1", "2", "6"], "an empty list selects all");
  const writing = await readAll({ format: "moss003", path: moss, categories: ["Writing", "Others"], maxBadFraction: 1 });
  assert.equal(writing.conversations.map((c) => c.id), ["2", "6"]);
  assert.equal(writing.report.filteredByReason, { 'category "Brainstorming" not selected': 1, "uses plugins (Inner Thoughts)": 1 });
});

test("jsonl: single-turn and multi-turn field mappings", async () => {
  const single = await readAll({ format: "jsonl", path: belle, fields: { user: "instruction", assistant: "output" }, maxBadFraction: 1 });
  assert.equal(single.conversations.map((c) => c.source.line), [1, 2, 10]); // line 9 has no "instruction"
  assert.equal(single.conversations[2].turns, [{ user: "列出两个颜色。", assistant: "红色、蓝色" }]);
  const multi = await readAll({ format: "jsonl", path: moss, fields: { turns: "conversation", user: "human", assistant: "assistant", category: "category" }, maxBadFraction: 1 });
  assert.equal(multi.conversations.map((c) => [c.source.line, c.category, c.turns.length]), [
    [1, "Brainstorming", 2],
    [2, "Writing", 1],
  ]);
  assert.equal(multi.report.bad, 8);
});

test("settings: a missing file and misplaced settings are errors with the file named", async () => {
  const missing = await collectDataset({ format: "belle", path: "data/none.json" });
  assert.not.ok(missing.ok);
  assert.equal(missing.diagnostics.map(summary), ["SFT5301 cannot read dataset file data/none.json: no such file"]);
  const dir = await collectDataset({ format: "belle", path: fixtures });
  assert.equal(dir.diagnostics.map((d) => d.code), ["SFT5301"]);
  const kinds = await collectDataset({ format: "belle", path: belle, kinds: ["NER"] });
  assert.equal(kinds.diagnostics.map(summary), ["SFT5317 kinds applies only to the firefly format, not belle"]);
  const mapping = await collectDataset({ format: "jsonl", path: belle });
  assert.equal(mapping.diagnostics.map((d) => d.code), ["SFT5317"]);
  const fraction = await collectDataset({ format: "belle", path: belle, maxBadFraction: 2 });
  assert.equal(fraction.diagnostics.map(summary), ["SFT5317 max_bad_fraction must be between 0 and 1, not 2"]);
});

test("resume: starting at a record's offset and line yields exactly the records from there", async () => {
  const path = "pipelines/data/samples/moss003.jsonl";
  const { conversations: all } = await readAll({ format: "moss003", path });
  for (const k of [1, 7, all.length - 1]) {
    const { offset, line } = all[k].source;
    const { conversations: rest, report } = await readAll({ format: "moss003", path }, { start: { offset, line } });
    assert.equal(rest, all.slice(k), `resume at record ${k}`);
    assert.equal(report.records, all.length - k);
  }
});

test("a record longer than maxRecordBytes is a bad record and reading goes on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-long-"));
  const path = join(dir, "long.jsonl");
  const ok = JSON.stringify({ instruction: "短", input: "", output: "好" });
  const long = JSON.stringify({ instruction: "长".repeat(5000), input: "", output: "好" });
  writeFileSync(path, `${ok}\n${long}\n${ok}\n`);
  const { conversations, report } = await readAll({ format: "belle", path, maxBadFraction: 1 }, { maxRecordBytes: 4096, chunkBytes: 1000 });
  assert.equal(conversations.map((c) => c.source.line), [1, 3]);
  assert.equal(report.badByReason, { "record longer than 4096 bytes": 1 });
  assert.equal(report.diagnostics[0].code, "SFT5307");
});

test("a line that is not UTF-8 is a bad record named by line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-utf8-"));
  const path = join(dir, "latin1.jsonl");
  const ok = Buffer.from(JSON.stringify({ instruction: "问", input: "", output: "答" }) + "\n");
  const latin1 = Buffer.from('{"instruction": "caf\xe9", "input": "", "output": "ok"}\n', "latin1");
  writeFileSync(path, Buffer.concat([ok, latin1, ok]));
  const { conversations, report } = await readAll({ format: "belle", path, maxBadFraction: 1 });
  assert.equal(conversations.map((c) => c.source.line), [1, 3]);
  assert.equal(report.diagnostics[0].code, "SFT5308");
  assert.equal(report.diagnostics[0].where, `${path}:2`);
});

test.run();
