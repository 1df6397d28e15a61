// `sftc fmt` is idempotent on every shipped pipeline and every conformance case; a case with
// syntax errors is refused (with its SFT1xxx diagnostics), never half-formatted.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { formatSft } from "../../grammar/format.ts";

const root = join(import.meta.dirname, "..", "..");
const files = ["pipelines", join("spec", "conformance")].flatMap((dir) =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith(".sft"))
    .map((f) => join(dir, f)),
);

test("every pipeline and conformance case formats idempotently or is refused for syntax errors", () => {
  let formatted = 0;
  let refused = 0;
  for (const file of files) {
    const once = formatSft(readFileSync(join(root, file), "utf8"), file);
    if (!once.ok) {
      assert.ok(once.diagnostics.length > 0 && once.diagnostics.every((d) => d.code.startsWith("SFT1")), `${file}: refused without a syntax error`);
      refused++;
      continue;
    }
    const twice = formatSft(once.value, file);
    assert.ok(twice.ok, `${file}: formatted text does not parse`);
    assert.is(twice.ok && twice.value, once.value, `${file}: formatting is not idempotent`);
    formatted++;
  }
  console.log(`    ${formatted} files formatted idempotently, ${refused} refused for syntax errors`);
  assert.ok(formatted >= 40, `only ${formatted} files formatted`);
});

test.run();
