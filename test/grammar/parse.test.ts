import { readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { lineCol, type Span } from "../../compiler/diagnostics.ts";
import type { Entry, Value } from "../../grammar/ast.ts";
import { parseSft } from "../../grammar/parse.ts";
import { meaning } from "./support.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/grammar/${name}`, import.meta.url), "utf8");

function parseClean(text: string) {
  const result = parseSft(text, "t.sft");
  assert.equal(result.diagnostics, [], "no diagnostics expected");
  return result.ast;
}

/** The source text a span covers, after checking its line/col against `lineCol`. */
function at(text: string, span: Span): string {
  const start = lineCol(text, span.offset);
  const end = lineCol(text, span.offset + span.length);
  assert.equal([span.line, span.col, span.endLine, span.endCol], [start.line, start.col, end.line, end.col]);
  return text.slice(span.offset, span.offset + span.length);
}

function entry(entries: Entry[], key: string): Value {
  const found = entries.find((e) => e.key.name === key);
  assert.ok(found, `entry ${key}`);
  return found.value;
}

test("the DESIGN example parses with every section, kind and value", () => {
  const text = fixture("chatglm2-belle.sft");
  const ast = parseClean(text);
  assert.equal(ast.version?.value, 1);
  assert.equal(ast.imports.map((i) => i.path.value), ["./base.sft"]);
  assert.equal(ast.pipelines.map((p) => p.name.name), ["chatglm2_belle", "baichuan_firefly"]);
  const [first, second] = ast.pipelines;
  assert.equal(first.extends?.name, "base_qlora");
  assert.equal(second.extends, undefined);
  assert.equal(
    first.sections.map((s) => [s.keyword, s.kind?.name, s.name?.name]),
    [
      ["model", "chatglm2", undefined],
      ["dataset", "belle", undefined],
      ["dataset", "safety", undefined],
      ["method", "qlora", undefined],
      ["train", undefined, undefined],
      ["decode", "top_p", undefined],
    ],
  );
  assert.equal(second.sections[1].name?.name, "main");
  const train = first.sections[4].entries;
  assert.equal(entry(train, "lr"), { kind: "number", value: 1e-4, raw: "1e-4", span: entry(train, "lr").span });
  const schedule = entry(train, "schedule");
  assert.ok(schedule.kind === "object");
  assert.equal(schedule.type.name, "constant_with_warmup");
  assert.equal(schedule.entries[0].key.name, "warmup_steps");
  const prompts = entry(first.sections[5].entries, "prompts");
  assert.ok(prompts.kind === "list" && prompts.items[0].kind === "string");
  assert.equal(prompts.items[0].value, "晚上睡不着怎么办");
  assert.equal(ast.comments.length, 6);
  assert.equal(ast.comments.filter((c) => c.block).length, 1);
});

test("values: numbers, strings with escapes, booleans, names, lists, nested objects", () => {
  const text = fixture("chatglm2-belle.sft");
  const ast = parseClean(text);
  const [model, dataset, , train, decode] = ast.pipelines[1].sections;
  assert.equal(entry(model.entries, "size"), { kind: "ident", name: "7b", span: entry(model.entries, "size").span });
  assert.equal(entry(dataset.entries, "weight").kind, "number");
  const warmup = entry(train.entries, "warmup");
  assert.ok(warmup.kind === "number" && warmup.value === -0.5);
  assert.ok(entry(train.entries, "grad_ckpt").kind === "bool");
  const resume = entry(train.entries, "resume");
  assert.ok(resume.kind === "bool" && resume.value === false);
  const schedule = entry(train.entries, "schedule");
  assert.ok(schedule.kind === "object");
  const decay = entry(schedule.entries, "decay");
  assert.ok(decay.kind === "object" && decay.type.name === "linear");
  assert.equal(decay.entries.map((e) => e.key.name), ["floor", "model"], "a keyword works as a key");
  const stop = entry(decode.entries, "stop");
  assert.ok(stop.kind === "list");
  assert.equal(
    stop.items.map((v) => (v.kind === "string" ? v.value : "?")),
    ["</s>", "\n\n", '\u{1F600}\t"q"\\'],
  );
  assert.ok(stop.items[2].kind === "string" && stop.items[2].raw === '"\\u{1F600}\\t\\"q\\"\\\\"');
  assert.equal(decode.kind?.name, "beam");
});

test("LoRA target forms, multi-line lists with trailing commas and comments", () => {
  const ast = parseClean(fixture("moss-lora.sft"));
  const method = ast.pipelines[0].sections[2];
  const targets = entry(method.entries, "targets");
  assert.ok(targets.kind === "list");
  assert.equal(targets.items.map((v) => (v.kind === "ident" ? v.name : "?")), ["attn.qkv", "attn.out", "mlp.*"]);
  const layers = entry(method.entries, "layers");
  assert.ok(layers.kind === "list" && layers.items.length === 31);
  assert.equal(ast.pipelines[0].sections[1].name?.name, "turns");
});

test("spans: every node points at its own text with lines and columns that agree with lineCol", () => {
  const text = "sft 1\n\npipeline p extends q {\n  train {\n    lr = 1e-4\n    s = cosine { warmup_steps = [1, \"a\"] }\n  }\n}\n";
  const ast = parseClean(text);
  assert.equal(at(text, ast.version!.span), "1");
  const pipeline = ast.pipelines[0];
  assert.equal(at(text, pipeline.span), text.slice(7, text.length - 1));
  assert.equal([pipeline.span.line, pipeline.span.col, pipeline.span.endLine, pipeline.span.endCol], [3, 1, 8, 2]);
  assert.equal(at(text, pipeline.name.span), "p");
  assert.equal(at(text, pipeline.extends!.span), "q");
  const train = pipeline.sections[0];
  assert.equal(at(text, train.keywordSpan), "train");
  assert.ok(at(text, train.span).startsWith("train {") && at(text, train.span).endsWith("}"));
  const [lr, s] = train.entries;
  assert.equal(at(text, lr.span), "lr = 1e-4");
  assert.equal([lr.span.line, lr.span.col, lr.key.span.offset], [5, 5, text.indexOf("lr")]);
  assert.equal(at(text, lr.value.span), "1e-4");
  assert.equal(at(text, s.value.span), 'cosine { warmup_steps = [1, "a"] }');
  assert.ok(s.value.kind === "object");
  assert.equal(at(text, s.value.type.span), "cosine");
  const list = s.value.entries[0].value;
  assert.ok(list.kind === "list");
  assert.equal(at(text, list.span), '[1, "a"]');
  assert.equal(list.items.map((v) => at(text, v.span)), ["1", '"a"']);
  assert.equal(at(text, ast.span), text);
});

test("CRLF line endings and a BOM parse like LF; spans stay offsets into the given text", () => {
  const lf = fixture("moss-lora.sft");
  const crlf = "\uFEFF" + lf.replace(/\n/g, "\r\n");
  const a = parseClean(lf);
  const b = parseClean(crlf);
  assert.is(meaning(b), meaning(a));
  assert.equal(b.comments.map((c) => c.text.replace(/\r/g, "")), a.comments.map((c) => c.text));
  const rank = b.pipelines[0].sections[2].entries[0];
  assert.equal(at(crlf, rank.span), "rank = 16");
  assert.equal(rank.span.line, 17);
  assert.equal(b.version?.span.col, 6, "the BOM counts as a column, as in lineCol");
});

test("keywords as keys, kinds and names; dotted names", () => {
  const text = "sft 1\npipeline train extends model {\n  dataset train decode { model = dataset, import = [pipeline, sft], true = extends }\n}\n";
  const ast = parseClean(text);
  const section = ast.pipelines[0].sections[0];
  assert.equal([ast.pipelines[0].name.name, ast.pipelines[0].extends?.name], ["train", "model"]);
  assert.equal([section.kind?.name, section.name?.name], ["train", "decode"]);
  assert.equal(section.entries.map((e) => e.key.name), ["model", "import", "true"]);
  assert.equal(entry(section.entries, "model"), { kind: "ident", name: "dataset", span: entry(section.entries, "model").span });
});

test("an empty file and a comments-only file report only the missing header", () => {
  for (const text of ["", "// nothing here\n/* still nothing */\n"]) {
    const result = parseSft(text, "t.sft");
    assert.equal(result.diagnostics.map((d) => d.code), ["SFT1007"]);
    assert.equal(result.diagnostics[0].hint, "add `sft 1` as the first line");
    assert.equal(result.ast.pipelines, []);
  }
});

test("version header: missing, newer, zero, fractional, late, repeated", () => {
  const cases: [string, RegExp][] = [
    ["pipeline p { }", /missing the language version header/],
    ["sft 2\npipeline p { }", /understands version 1 only/],
    ["sft 0\n", /no language version 0/],
    ["sft 1.0\n", /whole number/],
    ["import \"a.sft\"\nsft 1\n", /must come first/],
    ["sft 1\nsft 1\n", /more than once/],
  ];
  for (const [text, message] of cases) {
    const result = parseSft(text, "t.sft");
    assert.equal(result.diagnostics.map((d) => d.code), ["SFT1007"], text);
    assert.match(result.diagnostics[0].message, message);
  }
  assert.match(parseSft("sft 7\n", "t.sft").diagnostics[0].hint!, /upgrade sftc/);
});

test("parsing a 5,000-line file is fast (time printed)", () => {
  let text = "sft 1\n";
  let i = 0;
  while (text.split("\n").length < 5000) {
    text += `pipeline p${i++} extends base {\n  model chatglm2 {\n    path  = "models/chatglm2-6b"\n    dtype = f16\n  }\n`;
    text += `  method lora { rank = 8, alpha = 16, targets = [attn.qkv, mlp.*] }\n  train {\n    lr       = 1e-4\n`;
    text += `    schedule = cosine { warmup_steps = 100 }  // a comment\n    prompts  = ["晚上睡不着怎么办", "你好"]\n  }\n}\n`;
  }
  parseSft(text, "warm.sft"); // first call compiles the lexer's and parser's lookahead functions
  const start = performance.now();
  const result = parseSft(text, "big.sft");
  const ms = performance.now() - start;
  assert.equal(result.diagnostics, []);
  assert.equal(result.ast.pipelines.length, i);
  console.log(`  parsed ${text.split("\n").length} lines (${text.length} chars) in ${ms.toFixed(1)} ms`);
});

test.run();
