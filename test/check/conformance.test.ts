// Conformance: every spec/conformance/*.sft is checked and its diagnostics compared with the
// `.diag` baseline beside it. `SFT_UPDATE_BASELINES=1 npm test -- conformance` rewrites the
// baselines (review the diff). A case may start with directive comments:
//   // @set PATH=VALUE   an override, as `--set` (repeatable)
//   // @pipeline NAME    the pipeline to check
//   // @all              check every pipeline of the file
//   // @files            check that referenced files exist (off by default)
//   // @memory SIZE      also plan the pipeline's memory against a device of SIZE (`sftc plan --memory`)
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { codes } from "../../compiler/diagnostic-codes.ts";
import { checkFile, type CheckOptions } from "../../compiler/check/check.ts";
import { checkAgainstDevice, planPipeline } from "../../compiler/plan/plan-pipeline.ts";
import { parseByteSize } from "../../compiler/plan/device-memory.ts";
import { renderBaseline } from "./baseline.ts";

const dir = resolve(import.meta.dirname, "../../spec/conformance");
const update = process.env.SFT_UPDATE_BASELINES === "1";
const cases = readdirSync(dir).filter((f) => f.endsWith(".sft")).sort();

function optionsOf(text: string): CheckOptions & { memory?: string } {
  const options: CheckOptions & { memory?: string } = { overrides: [], checkFiles: false };
  for (const line of text.split("\n")) {
    const m = /^\/\/ @(\w+)(?: (.*))?$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "set") options.overrides!.push(m[2] ?? "");
    else if (m[1] === "pipeline") options.pipeline = m[2];
    else if (m[1] === "all") options.all = true;
    else if (m[1] === "files") options.checkFiles = true;
    else if (m[1] === "memory") options.memory = m[2];
    else throw new Error(`unknown directive @${m[1]}`);
  }
  return options;
}

function run(name: string): string {
  const file = join(dir, name);
  const text = readFileSync(file, "latin1"); // directives are ASCII; binary cases must not fail here
  const options = optionsOf(text);
  const result = checkFile(file, options);
  const diagnostics = [...result.diagnostics];
  if (options.memory !== undefined && result.pipelines.length === 1) {
    const planned = planPipeline(result.pipelines[0]);
    if (!planned.ok) diagnostics.push(...planned.diagnostics);
    else diagnostics.push(...checkAgainstDevice(planned.value, { bytes: parseByteSize(options.memory)!, source: "@memory" }));
  }
  return renderBaseline(file, diagnostics, result.texts);
}

test("there are at least 40 conformance cases", () => {
  assert.ok(cases.length >= 40, `only ${cases.length} cases`);
});

for (const name of cases) {
  test(`conformance ${name}`, () => {
    const actual = run(name);
    const baseline = join(dir, name.replace(/\.sft$/, ".diag"));
    if (update || !existsSync(baseline)) {
      if (!update) assert.unreachable(`missing baseline ${baseline}; run with SFT_UPDATE_BASELINES=1`);
      writeFileSync(baseline, actual);
      return;
    }
    assert.fixture(actual, readFileSync(baseline, "utf8"));
  });
}

const inRange = Object.keys(codes).filter((c) => /^SFT[123]\d{3}$/.test(c));

test("every SFT1xxx-SFT3xxx code has a conformance case", () => {
  const seen = new Set<string>();
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".diag"))) {
    for (const m of readFileSync(join(dir, f), "utf8").matchAll(/ (SFT\d{4}) (?:error|warning|info) /g)) seen.add(m[1]);
  }
  const missing = inRange.filter((c) => !seen.has(c));
  assert.equal(missing, [], `codes without a conformance case: ${missing.join(", ")}`);
});

test("every SFT1xxx-SFT3xxx code is documented in spec/language.md", () => {
  const spec = readFileSync(resolve(import.meta.dirname, "../../spec/language.md"), "utf8");
  const missing = inRange.filter((c) => !new RegExp(`^\\| ${c} \\|`, "m").test(spec));
  assert.equal(missing, [], `codes missing from the table in spec/language.md: ${missing.join(", ")}`);
});

test.run();
