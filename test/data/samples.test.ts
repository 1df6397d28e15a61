// The bundled samples (pipelines/data/samples) read cleanly with their readers, keep the
// quirks of the real files on disk, and lose them after normalization.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import type { Conversation } from "../../runtime/data/conversation.ts";
import { instructionAttackCategories, typicalSafetyCategories } from "../../stdlib/datasets/safety-categories.ts";
import { collectDataset, type DatasetConfig } from "../../runtime/data/read-dataset.ts";
import type { DataReport } from "../../runtime/data/report.ts";

const samples = "pipelines/data/samples";

async function readClean(config: DatasetConfig): Promise<{ conversations: Conversation[]; report: DataReport }> {
  const result = await collectDataset(config);
  assert.ok(result.ok, `${config.path}: ${result.diagnostics.map((d) => d.message).join("; ")}`);
  assert.equal(result.value.report.bad, 0, `${config.path} has no bad records`);
  assert.equal(result.diagnostics, [], `${config.path} reads without diagnostics`);
  return result.value;
}

function rawLines(path: string): string[] {
  return readFileSync(path, "utf8").split("\n");
}

function counts(values: (string | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v ?? ""] = (out[v ?? ""] ?? 0) + 1;
  return out;
}

test("belle.json: 30 JSON lines, instructions end with \\n on disk, texts trimmed when read", async () => {
  const path = `${samples}/belle.json`;
  const raw = rawLines(path).filter((l) => l !== "").map((l) => JSON.parse(l));
  assert.equal(raw.length, 30);
  assert.ok(raw.every((r) => Object.keys(r).join() === "instruction,input,output" && r.input === ""));
  assert.ok(raw.filter((r) => r.instruction.endsWith("\n")).length >= 25);
  assert.ok(raw.filter((r) => r.output.startsWith("\n")).length >= 4);
  const { conversations, report } = await readClean({ format: "belle", path });
  assert.equal([report.records, report.accepted], [30, 30]);
  for (const c of conversations) {
    const t = c.turns[0];
    assert.equal([t.user, t.assistant], [t.user.trim(), t.assistant.trim()]);
  }
});

test("firefly.jsonl: 30 records, 5 of each of the 6 documented kinds", async () => {
  const { conversations } = await readClean({ format: "firefly", path: `${samples}/firefly.jsonl` });
  assert.equal(counts(conversations.map((c) => c.category)), { NLI: 5, NER: 5, Summary: 5, Cot: 5, Couplet: 5, ClassicalChinese: 5 });
});

test("moss003.jsonl: 20 conversations, 30 turns, id gap, no final newline, 15 zh + 5 en", async () => {
  const path = `${samples}/moss003.jsonl`;
  const text = readFileSync(path, "utf8");
  assert.not.ok(text.endsWith("\n"));
  assert.not.ok(text.includes("\\u"), "raw UTF-8, no \\u escapes");
  const { conversations } = await readClean({ format: "moss003", path });
  assert.equal(conversations.length, 20);
  assert.equal(conversations.reduce((n, c) => n + c.turns.length, 0), 30);
  assert.equal(conversations.map((c) => Number(c.id)), [1, 2, 3, 4, 5, 6, 7, 8, ...Array.from({ length: 12 }, (_, i) => 15 + i)]);
  const zhResult = await collectDataset({ format: "moss003", path, language: "zh" });
  const enResult = await collectDataset({ format: "moss003", path, language: "en" });
  assert.ok(zhResult.ok && enResult.ok);
  assert.equal([zhResult.value.conversations.length, enResult.value.conversations.length], [15, 5]);
});

test("moss003-fnlp.jsonl: the fnlp layout reads to the same turns as the first 10 YeungNLP records, with the meta instruction as system", async () => {
  const fnlp = await readClean({ format: "moss003", path: `${samples}/moss003-fnlp.jsonl` });
  const yeung = await readClean({ format: "moss003", path: `${samples}/moss003.jsonl` });
  assert.equal(
    fnlp.conversations.map((c) => [c.id, c.category, c.turns]),
    yeung.conversations.slice(0, 10).map((c) => [c.id, c.category, c.turns]),
  );
  for (const c of fnlp.conversations) {
    assert.ok(c.system?.startsWith("You are an AI assistant whose name is MOSS.\n"));
    assert.ok(c.system?.endsWith("- Text-to-speech: disabled.\n"));
  }
});

test("safety samples: the real category names, 4 records each, leading \\n\\n on disk only", async () => {
  for (const [file, names] of [
    ["typical_safety_scenarios.json", typicalSafetyCategories],
    ["instruction_attack_scenarios.json", instructionAttackCategories],
  ] as const) {
    const path = `${samples}/safety/${file}`;
    const raw = JSON.parse(readFileSync(path, "utf8")) as Record<string, { prompt: string; response: string; type: string }[]>;
    assert.equal(Object.keys(raw), [...names]);
    const all = Object.entries(raw).flatMap(([category, list]) => list.map((r) => ({ category, ...r })));
    assert.ok(all.every((r) => r.type === r.category));
    assert.ok(all.filter((r) => r.response.startsWith("\n\n")).length >= 8);
    const { conversations } = await readClean({ format: "safety", path });
    assert.equal(conversations.length, names.length * 4);
    assert.equal(Object.keys(counts(conversations.map((c) => c.category))), [...names]);
    assert.ok(conversations.every((c) => !c.turns[0].assistant.startsWith("\n")));
  }
});

test.run();
