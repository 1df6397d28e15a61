// The bundled tiny model's tokenizer (spec/tokenizer/make_tiny_tokenizer.py) loads as a
// Baichuan-style directory and round-trips every string of the bundled sample datasets.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadTokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { expectOk } from "../support/result.ts";


const root = join(import.meta.dirname, "..", "..");
const tiny = expectOk(await loadTokenizer(join(root, "pipelines", "models", "tiny"), "baichuan7b"));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : /\.jsonl?$/.test(name) ? [path] : [];
  });
}

/** Every string value in a JSON document or JSON Lines file. */
function stringsIn(path: string): string[] {
  const text = readFileSync(path, "utf8");
  const docs = path.endsWith(".jsonl") || !text.trimStart().startsWith("{\n") ? text.split("\n").filter((l) => l.trim()) : [text];
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") out.push(v);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  for (const doc of docs) {
    try {
      walk(JSON.parse(doc));
    } catch {
      // Not every sample line is meant to parse (malformed-record samples); those are skipped.
    }
  }
  return out;
}

test("tiny tokenizer: about 2,000 pieces, byte fallback, Baichuan-style special ids", () => {
  assert.is(tiny.vocabSize, 2000);
  assert.equal(tiny.special, { bos: 1, eos: 2, pad: 3, unk: 0 });
  assert.ok(tiny.idOf("<reserved_102>") !== undefined && tiny.idOf("<reserved_103>") !== undefined);
  for (const digit of "0123456789") assert.ok(tiny.idOf(digit) !== undefined, `digit ${digit} is a piece`);
  const pieces = tiny.pieces(tiny.encode("2023年6月25日，共1,000,559个"));
  assert.ok(pieces.every((p) => (p.match(/\d/g) ?? []).length <= 1), `digits are split: ${pieces.join(" ")}`);
});

test("tiny tokenizer round-trips every string of the bundled sample datasets", () => {
  const dir = join(root, "pipelines", "data", "samples");
  let strings = 0;
  let ids = 0;
  let byteIds = 0;
  for (const file of files(dir)) {
    for (const s of stringsIn(file)) {
      const encoded = tiny.encode(s);
      assert.is(tiny.decode(encoded), s, `${file}: ${JSON.stringify(s.slice(0, 40))}`);
      strings++;
      ids += encoded.length;
      byteIds += tiny.pieces(encoded).filter((p) => /^<0x[0-9A-F]{2}>$/.test(p)).length;
    }
  }
  assert.ok(strings > 0, `no strings found under ${dir}`);
  console.log(`    ${strings} strings, ${ids} ids, ${(byteIds / ids * 100).toFixed(1)}% byte-fallback ids`);
});

test.run();
