import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import { parseSft } from "../../grammar/parse.ts";
import { SftParser } from "../../grammar/parser.ts";

/** "code line:col message" for each diagnostic, the way the tests compare them. */
function summary(diagnostics: Diagnostic[]): string[] {
  return diagnostics.map((d) => `${d.code} ${d.span!.line}:${d.span!.col} ${d.message}`);
}

test("the grammar passes Chevrotain's own validations (no ambiguity, no left recursion)", () => {
  // The validations use Object.groupBy (Node 21+); give Node 20 a local stand-in for this check.
  const objectWithGroupBy = Object as unknown as { groupBy?: unknown };
  const had = objectWithGroupBy.groupBy;
  objectWithGroupBy.groupBy ??= (items: unknown[], key: (item: unknown) => string) => {
    const groups: Record<string, unknown[]> = {};
    for (const item of items) (groups[key(item)] ??= []).push(item);
    return groups;
  };
  try {
    assert.not.throws(() => new SftParser({ validate: true }));
  } finally {
    if (had === undefined) delete objectWithGroupBy.groupBy;
  }
});

test("several errors in one file are all reported, and the rest of the file is still built", () => {
  const text = [
    "sft 1",
    "pipeline a {",
    "  model chatglm2 {",
    "    rank 8", // missing `=`
    "    dtype = f16",
    "  }",
    '  train { a = "abc', // unterminated string eats the `}`
    "  decode greedy { s = \"a\\qb\", n = 1.2.3, m = 1e999 }",
    "}",
    "pipeline b { train { x = 1 } }",
  ].join("\n");
  const { ast, diagnostics } = parseSft(text, "t.sft");
  assert.equal(summary(diagnostics), [
    "SFT1002 4:10 expected `=` after the key `rank`, found `8`",
    "SFT1003 7:15 unterminated string",
    "SFT1002 7:19 expected a `key = value` entry or `}`, found `decode`",
    "SFT1005 8:25 invalid escape `\\q` in a string; valid escapes are \\\" \\\\ \\n \\t \\r \\uXXXX and \\u{X...}",
    "SFT1006 8:35 `1.2.3` is not a number: write numbers like 42, 0.5, -2 or 1e-4",
    "SFT1006 8:46 `1e999` is too large: numbers must stay below about 1.8e308",
  ]);
  assert.equal(ast.pipelines.map((p) => p.name.name), ["a", "b"]);
  const [model, train, decode] = ast.pipelines[0].sections;
  assert.equal(model.entries.map((e) => [e.key.name, e.value.kind]), [["rank", "number"], ["dtype", "ident"]]);
  assert.equal(train.entries.map((e) => [e.key.name, e.value.kind]), [["a", "error"]]);
  assert.equal(decode.entries.map((e) => e.value.kind), ["error", "error", "error"]);
  assert.equal(ast.pipelines[1].sections[0].entries[0].value.kind, "number");
});

test("a missing `}` or `]` is reported at the end of the token before it, not on the next line", () => {
  const text = "sft 1\npipeline a {\n  train { x = [1, 2\n}\n";
  const { diagnostics } = parseSft(text, "t.sft");
  assert.equal(summary(diagnostics), [
    "SFT1002 3:20 expected `,` or `]` in the list, found `}`",
    "SFT1002 4:2 expected a section (model, dataset, method, train, decode) or `}`, found the end of the file",
  ]);
  assert.equal(diagnostics[0].span!.length, 0);
});

test("a section keyword after a missing `}` starts the next section", () => {
  const text = "sft 1\npipeline a {\n  model x {\n    a = 1\n  dataset belle {\n    b = 2\n  }\n}\n";
  const { ast, diagnostics } = parseSft(text, "t.sft");
  assert.equal(summary(diagnostics), ["SFT1002 4:10 expected a `key = value` entry or `}`, found `dataset`"]);
  assert.equal(ast.pipelines[0].sections.map((s) => s.keyword), ["model", "dataset"]);
});

test("stray text at the top level and in a pipeline is skipped with one error each", () => {
  const text = "sft 1\ngarbage here\npipeline a { rank = 8 model x { a = 1 } }\npipeline b { }\n";
  const { ast, diagnostics } = parseSft(text, "t.sft");
  assert.equal(summary(diagnostics), [
    "SFT1002 2:1 expected `pipeline` or `import`, found `garbage`",
    "SFT1002 3:14 expected a section (model, dataset, method, train, decode) or `}`, found `rank`",
  ]);
  assert.equal(ast.pipelines.map((p) => [p.name.name, p.sections.length]), [["a", 1], ["b", 0]]);
});

test("lexical errors: unexpected characters with hints, unterminated block comment", () => {
  const text = "sft 1\npipeline a { train { x = 'a', y: 3, z = 1 } }\n/* never closed\n";
  const { ast, diagnostics } = parseSft(text, "t.sft");
  assert.equal(summary(diagnostics), [
    "SFT1001 2:26 unexpected character `'`",
    "SFT1001 2:28 unexpected character `'`",
    "SFT1001 2:32 unexpected character `:`",
    "SFT1002 2:34 expected `=` after the key `y`, found `3`",
    "SFT1004 3:1 unterminated block comment",
  ]);
  assert.equal(diagnostics[0].hint, 'strings use double quotes: "text"');
  const others = parseSft("sft 1\npipeline a { train { # note\n x = 1; y = 2 } }", "t.sft").diagnostics;
  assert.equal(
    others.filter((d) => d.code === "SFT1001").map((d) => d.hint),
    ["comments start with `//` or `/*`", "separate entries with a newline or `,`"],
  );
  assert.equal(diagnostics[2].hint, "write `key = value`");
  assert.equal(ast.comments.map((c) => c.block), [true]);
  assert.equal(ast.pipelines[0].sections[0].entries.map((e) => e.key.name), ["x", "y", "z"]);
});

test("string escapes: each invalid one is reported at its own characters", () => {
  const text = 'sft 1\npipeline a { train { s = "ok \\u00e9 \\u{1F600} \\x \\u12 \\u{110000} \\u{}" } }\n';
  const { ast, diagnostics } = parseSft(text, "t.sft");
  const at = (d: Diagnostic) => text.slice(d.span!.offset, d.span!.offset + d.span!.length);
  assert.equal(diagnostics.map((d) => d.code), ["SFT1005", "SFT1005", "SFT1005", "SFT1005"]);
  assert.equal(diagnostics.map(at), ["\\x", "\\u", "\\u{110000}", "\\u"]);
  assert.match(diagnostics[2].message, /beyond the last Unicode code point/);
  assert.equal(ast.pipelines[0].sections[0].entries[0].value.kind, "error");
  const good = parseSft('sft 1\npipeline a { train { s = "\\u00e9\\u{1F600}\\"\\\\\\n\\t\\r 晚上" } }', "t.sft");
  assert.equal(good.diagnostics, []);
  const value = good.ast.pipelines[0].sections[0].entries[0].value;
  assert.ok(value.kind === "string");
  assert.is(value.value, 'é😀"\\\n\t\r 晚上');
});

test("numbers: malformed and out-of-range literals are SFT1006; names that start with digits are names", () => {
  const text = "sft 1\npipeline a { train {\n  a = 1.\n  b = 1.2.3\n  c = 1e999\n  d = " + "9".repeat(400) + "\n  e = 7b\n  f = 1e-999\n} }\n";
  const { ast, diagnostics } = parseSft(text, "t.sft");
  assert.equal(summary(diagnostics).map((s) => s.slice(0, 12)), ["SFT1006 3:7 ", "SFT1006 4:7 ", "SFT1006 5:7 ", "SFT1006 6:7 "]);
  assert.match(diagnostics[3].message, /\(400 characters\)` is too large/);
  const values = ast.pipelines[0].sections[0].entries.map((e) => e.value);
  assert.equal(values.map((v) => v.kind), ["error", "error", "error", "error", "ident", "number"]);
  assert.ok(values[5].kind === "number" && values[5].value === 0, "underflow to 0 is accepted");
});

test("entries on one line need a comma; list items always do", () => {
  const { diagnostics } = parseSft("sft 1\npipeline a { train { a = 1 b = [1 2] } }\n", "t.sft");
  assert.equal(summary(diagnostics), [
    "SFT1002 2:28 expected a newline or `,` before the key `b`",
    "SFT1002 2:35 expected `,` or `]` in the list, found `2`",
  ]);
});

test("missing values, names and braces", () => {
  const cases: [string, string][] = [
    ["sft 1\npipeline { }", "SFT1002 2:10 expected the pipeline's name after `pipeline`, found `{`"],
    ["sft 1\npipeline a extends { }", "SFT1002 2:20 expected the name of the base pipeline after `extends`, found `{`"],
    ["sft 1\npipeline a train { }", "SFT1002 2:12 expected `{` to open the pipeline, found `train`"],
    ["sft 1\npipeline a { train { x = } }", "SFT1002 2:26 expected a value (number, string, true/false, name, list or typed object), found `}`"],
    ["sft 1\npipeline a { model a b c { } }", "SFT1002 2:24 expected `{` to open the section, found `c`"],
    ["sft 1\npipeline a { model = chatglm2 }", "SFT1002 2:20 expected `{` after `model`: settings go inside a section, like `model chatglm2 { path = \"...\" }`"],
    ["sft 1\nimport base", "SFT1002 2:8 expected a path string after `import` (like `import \"./base.sft\"`), found `base`"],
    ["sft\npipeline a { }", "SFT1002 1:4 expected the language version after `sft` (write `sft 1`), found `pipeline`"],
  ];
  for (const [text, expected] of cases) {
    const { diagnostics } = parseSft(text, "t.sft");
    assert.equal(summary(diagnostics)[0], expected, text);
  }
});

test("nesting deeper than 64 is one SFT1008; 64 deep is fine; 100k deep does not overflow", () => {
  const nested = (depth: number) => `sft 1\npipeline a { train { x = ${"[".repeat(depth)}${"]".repeat(depth)} } }`;
  assert.equal(parseSft(nested(64), "t.sft").diagnostics, []);
  const deep = parseSft(nested(65), "t.sft");
  assert.equal(summary(deep.diagnostics), ["SFT1008 2:90 lists and objects are nested more than 64 deep here"]);
  assert.equal(deep.ast.pipelines[0].sections[0].entries[0].value.kind, "list");
  const huge = parseSft(nested(100_000), "t.sft");
  assert.equal(huge.diagnostics.map((d) => d.code), ["SFT1008"]);
  const objects = parseSft(`sft 1\npipeline a { train { x = ${"o { a = ".repeat(100_000)}1${" }".repeat(100_000)} } }`, "t.sft");
  assert.equal(objects.diagnostics.map((d) => d.code), ["SFT1008"]);
  const unclosed = parseSft(`sft 1\npipeline a { train { x = ${"[".repeat(100_000)}`, "t.sft");
  assert.equal(unclosed.diagnostics.map((d) => d.code), ["SFT1008", "SFT1002"]);
});

test("thousands of errors in one repetition do not overflow the stack", () => {
  const cases = [
    "sft 1\n" + "x pipeline b { } ".repeat(3_000),
    "sft 1\npipeline p {" + "x model m { } ".repeat(3_000) + "}",
    "sft 1\npipeline p { train {" + "a = 1 = ".repeat(3_000) + "} }",
  ];
  for (const text of cases) {
    const { diagnostics } = parseSft(text, "t.sft");
    assert.ok(diagnostics.length > 100);
    assert.ok(diagnostics.every((d) => d.code === "SFT1002"));
  }
});

test.run();
