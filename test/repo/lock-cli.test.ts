// `sftc lock`, and `sftc diff` / `sftc runs` through the CLI, in-process with captured output.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../cli/main.ts";
import type { Io } from "../../cli/io.ts";
import { writeManifest } from "../../runtime/repo/run-record.ts";

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", color: false, env: {}, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

function project() {
  const dir = mkdtempSync(join(tmpdir(), "sftc-lockcli-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "data", "belle.json"), '{"instruction":"你好","input":"","output":"你好！"}\n');
  writeFileSync(join(dir, "tokenizer.model"), "not read by lock");
  writeFileSync(join(dir, "base.sft"), "sft 1\n\npipeline base {\n  train {\n    lr = 1e-4\n  }\n}\n");
  writeFileSync(
    join(dir, "main.sft"),
    [
      "sft 1",
      'import "./base.sft"',
      "pipeline main extends base {",
      "  model chatglm2 {",
      "    init = random",
      "    size = tiny",
      '    tokenizer = "tokenizer.model"',
      "  }",
      "  dataset belle {",
      '    path = "data/belle.json"',
      "  }",
      "  method lora {",
      "    rank = 4",
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  return dir;
}

test("sftc lock writes sft.lock with the sources and datasets of the pipeline", async () => {
  const dir = project();
  const io = capture();
  const code = await main(["lock", join(dir, "main.sft")], io);
  assert.is(code, 0, io.stderr);
  const lock = JSON.parse(readFileSync(join(dir, "sft.lock"), "utf8"));
  const entry = lock.pipelines["main.sft#main"];
  assert.ok(entry, JSON.stringify(lock));
  assert.equal(Object.keys(entry.sources).sort(), ["base.sft", "main.sft"]);
  assert.equal(Object.keys(entry.datasets), ["data/belle.json"]);
  assert.is(entry.model, undefined, "a random-init model has no checkpoint to lock");
  assert.equal(Object.keys(entry.files), ["tokenizer.model"]);
});

test("sftc diff names the leaves that differ between two pipelines and between two runs", async () => {
  const dir = project();
  writeFileSync(join(dir, "other.sft"), readFileSync(join(dir, "main.sft"), "utf8").replace("rank = 4", "rank = 8"));
  const io = capture();
  assert.is(await main(["diff", join(dir, "main.sft"), join(dir, "other.sft")], io), 0, io.stderr);
  assert.ok(io.stdout.includes("method.rank: 4 -> 8"), io.stdout);

  for (const [id, lr] of [["a", 1e-4], ["b", 3e-4]] as const) {
    await writeManifest(join(dir, "runs", "main", id), {
      runId: id, pipeline: "main", startedAt: `2026-01-0${id === "a" ? 1 : 2}T00:00:00Z`, status: "finished",
      resolved: { train: { lr } }, git: null, seed: 1, device: "test", metrics: { loss: 2.5 },
    });
  }
  const runsIo = capture();
  assert.is(await main(["diff", join(dir, "runs", "main", "a"), join(dir, "runs", "main", "b")], runsIo), 0, runsIo.stderr);
  assert.is(runsIo.stdout, "train.lr: 0.0001 -> 0.0003\n");
  const listIo = capture();
  assert.is(await main(["runs", join(dir, "runs")], listIo), 0);
  assert.is(listIo.stdout.trim().split("\n").length, 2);
  assert.ok(listIo.stdout.includes("loss=2.5"), listIo.stdout);
});

test.run();
