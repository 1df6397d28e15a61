import { readdirSync, readFileSync } from "node:fs";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { SftFile } from "../../grammar/ast.ts";
import { formatSft } from "../../grammar/format.ts";
import { parseSft } from "../../grammar/parse.ts";
import { sftLexer } from "../../grammar/tokens.ts";
import { Random } from "../../runtime/random.ts";
import { meaning } from "./support.ts";

const fixtureDir = new URL("../fixtures/grammar/", import.meta.url);
const fixtures = readdirSync(fixtureDir)
  .filter((name) => name.endsWith(".sft"))
  .map((name) => ({ name, text: readFileSync(new URL(name, fixtureDir), "utf8") }));

/** The comments of a file, sorted (the formatter moves some, and trims trailing spaces). */
function commentTexts(ast: SftFile): string[] {
  return ast.comments.map((c) => c.text.trimEnd()).sort();
}

function format(text: string): string {
  const result = formatSft(text, "t.sft");
  if (!result.ok) throw new Error(`not formatted: ${result.diagnostics.map((d) => d.message).join("; ")}`);
  return result.value;
}

test("canonical layout: indentation, aligned `=`, one entry per line, short lists inline", () => {
  const input = [
    "sft 1",
    "import \"./base.sft\"",
    "pipeline p extends base {",
    "model chatglm2 { path = \"models/chatglm2-6b\", dtype = f16 }",
    "   train { lr = 1e-4, max_grad_norm = 0.3",
    "schedule = cosine { warmup_steps = 100 }",
    "targets = [attn.qkv,",
    "  mlp.*,]",
    "prompts = [\"a long prompt that does not fit\", \"on one line with the key before it\", \"x\"] }",
    "method full {   }",
    "}",
    "pipeline q { }",
  ].join("\n");
  assert.equal(
    format(input),
    [
      "sft 1",
      "",
      'import "./base.sft"',
      "",
      "pipeline p extends base {",
      "  model chatglm2 {",
      '    path  = "models/chatglm2-6b"',
      "    dtype = f16",
      "  }",
      "  train {",
      "    lr            = 1e-4",
      "    max_grad_norm = 0.3",
      "    schedule      = cosine { warmup_steps = 100 }",
      "    targets       = [attn.qkv, mlp.*]",
      "    prompts       = [",
      '      "a long prompt that does not fit",',
      '      "on one line with the key before it",',
      '      "x",',
      "    ]",
      "  }",
      "  method full {}",
      "}",
      "",
      "pipeline q {}",
      "",
    ].join("\n"),
  );
});

test("comments: trailing ones stay on their line, others before what they precede, none lost", () => {
  const input = [
    "// leading",
    "sft 1 // version",
    "pipeline a { // open",
    "  /* before train */ train {",
    "    a /* between */ = 1, b = [1, /* inside */ 2] // after b",
    "",
    "",
    "    c = x { y = 1 /* in object */ }",
    "    // before the brace",
    "  } // after train",
    "} /* after pipeline",
    "   on two lines */",
    "// end",
  ].join("\n");
  assert.equal(
    format(input),
    [
      "// leading",
      "sft 1  // version",
      "",
      "pipeline a {  // open",
      "  /* before train */",
      "  train {",
      "    /* between */",
      "    a = 1",
      "    b = [",
      "      1,  /* inside */",
      "      2,",
      "    ]  // after b",
      "",
      "    c = x {",
      "      y = 1  /* in object */",
      "    }",
      "    // before the brace",
      "  }  // after train",
      "}  /* after pipeline",
      "   on two lines */",
      "// end",
      "",
    ].join("\n"),
  );
});

test("fixtures: formatting keeps the meaning and every comment, and is idempotent", () => {
  assert.ok(fixtures.length >= 3);
  for (const { name, text } of fixtures) {
    const once = format(text);
    const twice = format(once);
    assert.is(twice, once, `${name} is idempotent`);
    const before = parseSft(text, name).ast;
    const after = parseSft(once, name).ast;
    assert.is(meaning(after), meaning(before), `${name} keeps its meaning`);
    assert.equal(commentTexts(after), commentTexts(before), `${name} keeps its comments`);
  }
});

test("comments and blank lines at random places between tokens: kept, meaning unchanged, idempotent", () => {
  const random = new Random(7);
  const inserts = ["// line comment\n", "/* block */", "/* two\n   lines */", "\n\n", "\n", " /**/ ", "\n/* own line */\n"];
  let cases = 0;
  for (const { name, text } of fixtures) {
    const lexed = sftLexer.tokenize(text);
    const boundaries = lexed.tokens.flatMap((t) => [t.startOffset, t.startOffset + t.image.length]);
    for (let i = 0; i < 60; i++) {
      const chosen = random.shuffle([...boundaries]).slice(0, 1 + random.int(6)).sort((a, b) => b - a);
      let mutated = text;
      for (const at of chosen) mutated = mutated.slice(0, at) + inserts[random.int(inserts.length)] + mutated.slice(at);
      const label = `${name} #${i}`;
      const once = format(mutated);
      assert.is(format(once), once, `${label}: idempotent`);
      const before = parseSft(mutated, name).ast;
      const after = parseSft(once, name).ast;
      assert.is(meaning(after), meaning(before), `${label}: meaning`);
        assert.equal(commentTexts(after), commentTexts(before), `${label}: comments`);
      cases++;
    }
  }
  assert.ok(cases >= 180);
});

test("CRLF and BOM input formats to the same LF text", () => {
  for (const { text } of fixtures) {
    assert.is(format("\uFEFF" + text.replace(/\n/g, "\r\n")), format(text));
  }
});

test("text with syntax errors is not formatted; the diagnostics say why", () => {
  const result = formatSft("sft 1\npipeline a { train { lr 1 } }\n", "t.sft");
  assert.ok(!result.ok);
  assert.equal(result.diagnostics.map((d) => `${d.code} ${d.span!.line}:${d.span!.col}`), ["SFT1002 2:25"]);
  assert.not.ok(formatSft("pipeline a {}", "t.sft").ok, "a missing header is an error too");
});

test.run();
