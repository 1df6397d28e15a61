// Mutated pipelines must never make the parser or the formatter throw, every diagnostic must
// point inside the text, and a text without errors must give a sane AST that formats
// idempotently. The mutations are drawn from a seeded Random, so every run checks the same
// cases and a failure names the case that reproduces it.
import { readdirSync, readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { codes } from "../../compiler/diagnostic-codes.ts";
import { hasErrors, lineCol, type Span } from "../../compiler/diagnostics.ts";
import type { Entry, SftFile, Value } from "../../grammar/ast.ts";
import { formatSft } from "../../grammar/format.ts";
import { parseSft } from "../../grammar/parse.ts";
import { sftLexer } from "../../grammar/tokens.ts";
import { Random } from "../../runtime/random.ts";
import { meaning } from "./support.ts";

const fixtureDir = new URL("../fixtures/grammar/", import.meta.url);
const seeds = readdirSync(fixtureDir)
  .filter((name) => name.endsWith(".sft"))
  .sort()
  .map((name) => readFileSync(new URL(name, fixtureDir), "utf8"));

const casesPerSeed = 700;

const fragments = [
  "{", "}", "[", "]", "=", ",", '"', "/*", "*/", "//", "\\", "'", ":", "-", ".", "*", "\n", "\r", "\t", "\uFEFF",
  "pipeline", "extends", "import", "sft", "sft 2", "sft 0", "model", "dataset", "method", "train", "decode",
  "true", "false", "x", "attn.qkv", "mlp.*", "7b", "1e-4", "-0.5", "1e999", "9".repeat(400), "1.", "1.2.3", "0x1F",
  '"unterminated', '"\\q"', '"\\u{110000}"', '"\\u12"', '"😀 晚上"', "/* never closed", "cosine { a = 1 }",
  "\u0000", "\u00e9", "\ud800", "😀",
];

/** Token boundaries of a text: where mutations cut, insert and swap. */
function tokenRanges(text: string): [number, number][] {
  const lexed = sftLexer.tokenize(text);
  const all = [...lexed.tokens, ...(lexed.groups.comments ?? [])];
  return all.map((t) => [t.startOffset, t.startOffset + t.image.length] as [number, number]).sort((a, b) => a[0] - b[0]);
}

function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.int(items.length)];
}

/** One random edit of `text`; the name says which, for failure messages. */
function mutate(text: string, random: Random): { text: string; name: string } {
  const ranges = tokenRanges(text);
  if (ranges.length === 0) return { text: pick(random, fragments), name: "replace-empty" };
  const [start, end] = pick(random, ranges);
  switch (random.int(12)) {
    case 0:
      return { text: text.slice(0, start) + text.slice(end), name: "delete-token" };
    case 1:
      return { text: `${text.slice(0, start)}${pick(random, fragments)} ${text.slice(start)}`, name: "insert-token" };
    case 2: {
      const at = ranges.findIndex((r) => r[0] === start);
      const next = ranges[at + 1];
      if (!next) return { text: text.slice(0, start), name: "truncate-at-token" };
      const a = text.slice(start, end);
      const b = text.slice(next[0], next[1]);
      return { text: text.slice(0, start) + b + text.slice(end, next[0]) + a + text.slice(next[1]), name: "swap-tokens" };
    }
    case 3: {
      let bytes = "";
      for (let n = 1 + random.int(4); n > 0; n--) bytes += String.fromCharCode(random.int(random.int(2) ? 128 : 0x10000));
      const at = random.int(text.length + 1);
      return { text: text.slice(0, at) + bytes + text.slice(at), name: "random-chars" };
    }
    case 4:
      return { text: "\uFEFF" + text.replace(/\n/g, "\r\n"), name: "bom-crlf" };
    case 5:
      return { text: text.slice(0, random.int(text.length + 1)), name: "truncate" };
    case 6: {
      // Mostly around the limit of 64; sometimes far beyond it (deep input parses slowly).
      const depth = 1 + random.int(random.int(8) ? 80 : 3000);
      const closers = random.int(depth + 1);
      const nest = random.int(2) ? "[".repeat(depth) + "]".repeat(closers) : "o { a = ".repeat(depth) + "1" + " }".repeat(closers);
      return { text: `${text.slice(0, start)}${nest}${text.slice(end)}`, name: `deep-${depth}` };
    }
    case 7: {
      const huge = pick(random, ["1e999", "-1e999", "9".repeat(400), "0." + "0".repeat(400) + "1", "1e-999", "1" + "0".repeat(308)]);
      return { text: text.slice(0, start) + huge + text.slice(end), name: "huge-number" };
    }
    case 8: {
      const at = random.int(text.length + 1);
      return { text: text.slice(0, at) + pick(random, ['"', "/*"]) + text.slice(at), name: "unterminated" };
    }
    case 9:
      return { text: text.slice(0, start) + text.slice(start, end) + " " + text.slice(start), name: "duplicate-token" };
    default: {
      const at = pick(random, ranges)[0];
      return { text: text.slice(0, at) + text.slice(start, end) + " " + text.slice(at), name: "copy-token" };
    }
  }
}

function checkAgainstLineCol(text: string, span: Span, what: string): void {
  assert.ok(span.offset >= 0 && span.length >= 0 && span.offset + span.length <= text.length, `${what}: span out of the text`);
  const start = lineCol(text, span.offset);
  const end = lineCol(text, span.offset + span.length);
  assert.equal([span.line, span.col, span.endLine, span.endCol], [start.line, start.col, end.line, end.col], `${what}: line/col`);
}

/** Line and column of every offset of `text`, in two arrays. */
interface Positions {
  lines: Int32Array;
  cols: Int32Array;
}

/**
 * The positions of every offset, checked against `lineCol` at five evenly spaced offsets
 * (calling `lineCol`, a scan from the start, for each node would dominate the run time).
 */
function positions(text: string): Positions {
  const table = { lines: new Int32Array(text.length + 1), cols: new Int32Array(text.length + 1) };
  let line = 1;
  let col = 1;
  for (let i = 0; i <= text.length; i++) {
    table.lines[i] = line;
    table.cols[i] = col;
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  for (let k = 0; k <= 4; k++) {
    const i = Math.round((text.length * k) / 4);
    assert.equal({ line: table.lines[i], col: table.cols[i] }, lineCol(text, i));
  }
  return table;
}

function checkSpanIn(text: string, table: Positions, span: Span, what: string): void {
  const stop = span.offset + span.length;
  assert.ok(span.offset >= 0 && span.length >= 0 && stop <= text.length, `${what}: span out of the text`);
  const expected = [table.lines[span.offset], table.cols[span.offset], table.lines[stop], table.cols[stop]];
  assert.equal([span.line, span.col, span.endLine, span.endCol], expected, `${what}: line/col`);
}

function within(inner: Span, outer: Span, what: string): void {
  assert.ok(inner.offset >= outer.offset && inner.offset + inner.length <= outer.offset + outer.length, `${what}: outside its parent`);
}

/** Every span is valid and nested in its parent; with `exact`, names and literals match their text. */
function checkAst(text: string, ast: SftFile, exact: boolean): void {
  const table = positions(text);
  const checkSpan = (span: Span, what: string) => checkSpanIn(text, table, span, what);
  const source = (span: Span) => text.slice(span.offset, span.offset + span.length);
  const value = (v: Value, parent: Span): void => {
    checkSpan(v.span, `value ${v.kind}`);
    within(v.span, parent, `value ${v.kind}`);
    if (exact) {
      if (v.kind === "number" || v.kind === "string") assert.is(source(v.span), v.raw);
      if (v.kind === "number") assert.ok(Number.isFinite(v.value));
      if (v.kind === "ident") assert.is(source(v.span), v.name);
      if (v.kind === "bool") assert.is(source(v.span), String(v.value));
      assert.ok(v.kind !== "error", "no ErrorValue without an error");
    }
    if (v.kind === "list") v.items.forEach((item) => value(item, v.span));
    if (v.kind === "object") entries(v.entries, v.span);
  };
  const entries = (list: Entry[], parent: Span): void => {
    for (const e of list) {
      checkSpan(e.span, "entry");
      within(e.span, parent, "entry");
      within(e.key.span, e.span, "key");
      if (exact) assert.is(source(e.key.span), e.key.name);
      value(e.value, e.span);
    }
  };
  checkSpan(ast.span, "file");
  ast.comments.forEach((c) => checkSpan(c.span, "comment"));
  ast.imports.forEach((i) => checkSpan(i.span, "import"));
  for (const p of ast.pipelines) {
    checkSpan(p.span, "pipeline");
    within(p.name.span, p.span, "pipeline name");
    for (const s of p.sections) {
      checkSpan(s.span, "section");
      within(s.span, p.span, "section");
      if (exact) assert.is(source(s.keywordSpan), s.keyword);
      entries(s.entries, s.span);
    }
  }
  if (exact) assert.ok(ast.version, "a file without errors has a version");
}

test(`${seeds.length * casesPerSeed} mutated pipelines: no throw, diagnostics inside the text, clean ASTs format idempotently`, () => {
  const random = new Random(20240611);
  const tally = { cases: 0, clean: 0, diagnostics: 0 };
  const byCode = new Map<string, number>();
  const started = performance.now();
  seeds.forEach((seed, s) => {
    for (let i = 0; i < casesPerSeed; i++) {
      let text = seed;
      const names: string[] = [];
      for (let n = 1 + random.int(3); n > 0; n--) {
        const mutation = mutate(text, random);
        text = mutation.text;
        names.push(mutation.name);
      }
      const label = `seed ${s} case ${i} (${names.join(", ")})`;
      const { ast, diagnostics } = parseSft(text, "fuzz.sft");
      tally.cases++;
      tally.diagnostics += diagnostics.length;
      for (const d of diagnostics) {
        assert.ok(d.code in codes && d.message.length > 0, `${label}: diagnostic ${d.code}`);
        byCode.set(d.code, (byCode.get(d.code) ?? 0) + 1);
        assert.is(d.span?.file, "fuzz.sft", label);
        checkAgainstLineCol(text, d.span!, `${label}: ${d.code} ${d.message}`);
      }
      const clean = !hasErrors(diagnostics);
      checkAst(text, ast, clean);
      // Refusing to format re-parses the text; checking that on every eighth broken case is enough.
      if (!clean && i % 8 !== 0) continue;
      const formatted = formatSft(text, "fuzz.sft");
      assert.is(formatted.ok, clean, `${label}: formats exactly when there is no error`);
      if (!formatted.ok) continue;
      tally.clean++;
      const again = formatSft(formatted.value, "fuzz.sft");
      assert.ok(again.ok, `${label}: the formatted text parses`);
      assert.is(again.value, formatted.value, `${label}: formatting is idempotent`);
      assert.is(meaning(parseSft(formatted.value, "fuzz.sft").ast), meaning(ast), `${label}: formatting keeps the meaning`);
    }
  });
  const ms = performance.now() - started;
  const codesSeen = [...byCode].sort().map(([code, n]) => `${code}:${n}`).join(" ");
  console.log(`  ${tally.cases} cases in ${ms.toFixed(0)} ms: ${tally.clean} without errors (all formatted idempotently), ${tally.diagnostics} diagnostics [${codesSeen}]`);
  assert.ok(tally.cases >= 2000);
  assert.ok(tally.clean > 100, "enough mutations stay valid to exercise the formatter");
});

test.run();
