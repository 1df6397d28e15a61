// Mutated pipelines never crash the checker: random deletions, insertions and duplications of
// characters and lines in the shipped pipelines (seeded, so a failure reproduces) always give
// diagnostics, never an exception, and every diagnostic has a code from the table.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkFile } from "../../compiler/check/check.ts";
import { codes } from "../../compiler/diagnostic-codes.ts";
import { Random } from "../../runtime/random.ts";

const dir = resolve(import.meta.dirname, "../../pipelines");
const sources = readdirSync(dir).filter((f) => f.endsWith(".sft")).map((f) => ({ path: join(dir, f), text: readFileSync(join(dir, f), "utf8") }));
const pieces = ["{", "}", "[", "]", "=", ",", '"', "\n", "1e", "-", "#", "/*", "//", "extends", "model", "dataset x", "\\", "\u0000", "日"];

function mutate(text: string, random: Random): string {
  let out = text;
  for (let n = 1 + random.int(4); n > 0; n--) {
    const at = random.int(out.length + 1);
    switch (random.int(4)) {
      case 0:
        out = out.slice(0, at) + out.slice(at + 1 + random.int(12));
        break;
      case 1:
        out = out.slice(0, at) + pieces[random.int(pieces.length)] + out.slice(at);
        break;
      case 2: {
        const lines = out.split("\n");
        const i = random.int(lines.length);
        lines.splice(i, 0, lines[random.int(lines.length)]);
        out = lines.join("\n");
        break;
      }
      default:
        out = out.slice(0, at) + out.slice(random.int(out.length + 1));
    }
  }
  return out;
}

test("300 mutated pipelines give diagnostics, never an exception", () => {
  const random = new Random(20260101);
  for (let i = 0; i < 300; i++) {
    const source = sources[random.int(sources.length)];
    const text = mutate(source.text, random);
    const overlay = new Map([[source.path, text]]);
    let result;
    try {
      result = checkFile(source.path, { overlay, checkFiles: false, overrides: i % 7 === 0 ? [mutate("train.lr=2e-4", random)] : [] });
    } catch (e) {
      assert.unreachable(`mutation ${i} of ${source.path} threw ${String(e)}:\n${text}`);
      return;
    }
    for (const d of result.diagnostics) assert.ok(d.code in codes, `unknown code ${d.code}`);
  }
});

test.run();
