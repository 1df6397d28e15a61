// Regenerates the table block of docs/memory.md from the plans of the repository's pipelines
// (a few minutes: every case is compiled at full depth).
//   node bin/run-ts.js compiler/plan/write-memory-table.ts
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { renderMemoryTable } from "./memory-table.ts";

const root = resolve(import.meta.dirname, "../..");
const doc = resolve(root, "docs/memory.md");
const table = renderMemoryTable(resolve(root, "pipelines"));
if (!table.ok) {
  for (const d of table.diagnostics) process.stderr.write(`${d.code} ${d.message}\n`);
  process.exit(1);
}
const [begin, end] = ["<!-- generated:memory-table -->", "<!-- end generated:memory-table -->"];
const text = readFileSync(doc, "utf8");
const from = text.indexOf(begin);
const to = text.indexOf(end);
if (from < 0 || to < from) {
  process.stderr.write(`docs/memory.md lacks the ${begin} ... ${end} block\n`);
  process.exit(1);
}
writeFileSync(doc, `${text.slice(0, from + begin.length)}\n${table.value}\n${text.slice(to)}`);
process.stdout.write(`${table.value}\n`);
