// A tokenizer with more ids than the model's embedding has rows is refused before training:
// on the GPU an id past the table would read outside it instead of failing.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ROOT, sftc } from "./support.ts";

test("sftc run refuses a tokenizer larger than the model's vocabulary (SFT5403), naming both sizes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-vocab-"));
  const model = join(dir, "models", "chatglm2-tiny");
  mkdirSync(model, { recursive: true });
  const fixture = join(ROOT, "test", "fixtures", "checkpoints", "chatglm2");
  for (const f of readdirSync(fixture)) if (f !== "manifest.json" && f !== "golden.json") copyFileSync(join(fixture, f), join(model, f));
  // the bundled tiny tokenizer has 2005 ids; the fixture model's embedding has 512 rows
  copyFileSync(join(ROOT, "pipelines", "models", "tiny", "tokenizer.model"), join(model, "tokenizer.model"));
  writeFileSync(join(dir, "belle.json"), '{"instruction":"你好","input":"","output":"你好！"}\n');
  writeFileSync(
    join(dir, "p.sft"),
    'sft 1\npipeline p {\n  model chatglm2 {\n    path  = "models/chatglm2-tiny"\n    dtype = f32\n  }\n  method lora {\n    rank = 2\n  }\n  dataset belle {\n    path = "belle.json"\n  }\n  train {\n    max_steps = 1\n  }\n}\n',
  );
  const r = await sftc(["run", join(dir, "p.sft"), "--cpu"]);
  assert.is(r.exit, 1, r.err);
  assert.match(r.err, "SFT5403");
  assert.match(r.err, /2005 ids but the model's embedding has 512 rows/);
});

test.run();
