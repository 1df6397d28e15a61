// Highlighting: .sft files tokenized by the real TextMate engine (vscode-textmate with the
// Oniguruma regex engine, as VS Code runs it), compared with reviewed baselines.
// SFT_UPDATE_BASELINES=1 rewrites the baselines; review the diff before committing.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import textmate from "vscode-textmate";
import oniguruma from "vscode-oniguruma";
import type { IGrammar } from "vscode-textmate";

const root = join(import.meta.dirname, "..", "..");
const fixtures = join(root, "test", "fixtures", "highlight");
const grammarPath = join(root, "editor", "vscode", "syntaxes", "sft.tmLanguage.json");
const require = createRequire(import.meta.url);

async function loadGrammar(): Promise<IGrammar> {
  const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns: string[]) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s: string) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName: string) =>
      scopeName === "source.sft" ? textmate.parseRawGrammar(readFileSync(grammarPath, "utf8"), grammarPath) : null,
  });
  const grammar = await registry.loadGrammar("source.sft");
  assert.ok(grammar, "the grammar loads");
  return grammar!;
}

/** One line per token: `line:col 'text' scope scope ...` (the root scope left out). */
function renderScopes(grammar: IGrammar, text: string): string {
  const out: string[] = [];
  let state = textmate.INITIAL;
  text.split(/\r?\n/).forEach((line, i) => {
    const result = grammar.tokenizeLine(line, state);
    for (const token of result.tokens) {
      const piece = line.slice(token.startIndex, token.endIndex);
      if (piece.trim() === "") continue;
      const scopes = token.scopes.filter((s) => s !== "source.sft").join(" ") || "-";
      out.push(`${i + 1}:${token.startIndex + 1} ${JSON.stringify(piece)} ${scopes}`);
    }
    state = result.ruleStack;
  });
  return out.join("\n") + "\n";
}

const grammarPromise = loadGrammar();
const cases = readdirSync(fixtures).filter((f) => f.endsWith(".sft")).sort();

test("there are highlighting fixtures", () => {
  assert.ok(cases.length >= 3, `found ${cases.length}`);
});

for (const name of cases) {
  test(`highlighting baseline: ${name}`, async () => {
    const grammar = await grammarPromise;
    const actual = renderScopes(grammar, readFileSync(join(fixtures, name), "utf8"));
    const baselinePath = join(fixtures, name.replace(/\.sft$/, ".scopes"));
    if (process.env.SFT_UPDATE_BASELINES || !existsSync(baselinePath)) {
      if (!process.env.SFT_UPDATE_BASELINES) assert.unreachable(`missing baseline ${baselinePath}; run with SFT_UPDATE_BASELINES=1`);
      writeFileSync(baselinePath, actual);
    }
    assert.fixture(actual, readFileSync(baselinePath, "utf8"));
  });
}

test("every kind of token gets its own scope", async () => {
  const grammar = await grammarPromise;
  const text = [
    "sft 1",
    'import "./base.sft"',
    "pipeline child extends base {",
    "  model chatglm2 main {",
    '    path = "m\\n\\q"  // note',
    "    rank = -1.5e-3",
    "    flag = true",
    "    targets = [attn.qkv, mlp.*]",
    "    schedule = cosine { warmup_steps = 10 }",
    "  }",
    "  /* block */ @",
    "}",
  ].join("\n");
  const rendered = renderScopes(grammar, text);
  const expectations: [string, string][] = [
    ['"sft"', "keyword.other.version.sft"],
    ['"1"', "constant.numeric.version.sft"],
    ['"import"', "keyword.control.import.sft"],
    ['"pipeline"', "storage.type.pipeline.sft"],
    ['"child"', "entity.name.type.pipeline.sft"],
    ['"extends"', "storage.modifier.extends.sft"],
    ['"base"', "entity.other.inherited-class.sft"],
    ['"model"', "keyword.other.section.sft"],
    ['"chatglm2"', "entity.name.type.kind.sft"],
    ['"main"', "entity.name.section.sft"],
    ['"path"', "variable.other.property.sft"],
    ['"\\\\n"', "constant.character.escape.sft"],
    ['"\\\\q"', "invalid.illegal.escape.sft"],
    ['"-1.5e-3"', "constant.numeric.sft"],
    ['"true"', "constant.language.boolean.sft"],
    ['"attn.qkv"', "variable.other.constant.sft"],
    ['"mlp.*"', "variable.other.constant.sft"],
    ['"cosine"', "entity.name.type.object.sft"],
    ['" note"', "comment.line.double-slash.sft"],
    ['" block "', "comment.block.sft"],
    ['"@"', "invalid.illegal.character.sft"],
  ];
  for (const [piece, scope] of expectations) {
    const line = rendered.split("\n").find((l) => l.includes(` ${piece} `));
    assert.ok(line, `token ${piece} not found in:\n${rendered}`);
    assert.ok(line!.includes(scope), `token ${piece}: expected scope ${scope}, got ${line}`);
  }
});

test.run();
