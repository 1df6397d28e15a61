// `sftc data preview` and `sftc data stats` in-process on the quickstart pipeline.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import type { Io } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { collectDataset } from "../../runtime/data/read-dataset.ts";
import { expectOk } from "../support/result.ts";

const quickstart = join(import.meta.dirname, "..", "..", "pipelines", "quickstart.sft");

function capture(color = false): Io & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", color, env: {}, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

test("preview -n 3: three examples per dataset, answers and their </s> between [[ ]], token counts", async () => {
  const io = capture();
  const code = await main(["data", "preview", quickstart, "-n", "3"], io);
  assert.is(code, 0, io.stderr);
  const headers = io.stdout.match(/^dataset \w+/gm);
  assert.equal(headers, ["dataset belle", "dataset firefly", "dataset moss003", "dataset safety"]);
  const examples = io.stdout.match(/^── .*: \d+ tokens, \d+ trained/gm) ?? [];
  assert.is(examples.length, 12, io.stdout);
  // The first belle record: prompt untrained, answer + </s> trained; the prefix shows by name.
  const belle = expectOk(await collectDataset({ format: "belle", path: join(import.meta.dirname, "..", "..", "pipelines", "data", "samples", "belle.json") }));
  const answer = belle.conversations[0].turns[0].assistant;
  assert.ok(io.stdout.includes(`[gMASK]sop[Round 1]\n\n问：`), io.stdout.slice(0, 400));
  assert.ok(io.stdout.includes(`答：[[${answer}</s>]]`), io.stdout.slice(0, 400));
  assert.match(io.stdout, /belle\.json:1: 75 tokens, 16 trained\n/);
  assert.match(io.stdout, /moss003\.jsonl:1: 256 tokens, \d+ trained, truncated from 396\n/);
});

test("preview on a terminal colours the trained text instead of bracketing it", async () => {
  const io = capture(true);
  assert.is(await main(["data", "preview", quickstart, "-n", "1", "--dataset", "belle"], io), 0, io.stderr);
  assert.not.ok(io.stdout.includes("[["));
  assert.ok(io.stdout.includes("\u001b[36m"), "cyan for trained text");
});

test("stats: records, accepted, filtered by reason, drops, truncation, eval split, histogram", async () => {
  const io = capture();
  const code = await main(["data", "stats", quickstart, "--no-cache"], io);
  assert.is(code, 0, io.stderr);
  assert.ok(io.stdout.includes("records 30: accepted 15, bad 0, filtered 15"), io.stdout);
  assert.ok(io.stdout.includes('5 × kind "NLI" not selected'));
  assert.ok(io.stdout.includes("examples 30 from 30 conversations: kept 30, dropped 0 (0.0%), truncated 6 (20.0%)"));
  // 27 + 15 + 15 + 8 = 65 training examples shared 1 : 0.5 : 0.5 : 0.25 → 28.9, 14.4, 14.4, 7.2;
  // floors 28, 14, 14, 7 and the 2 left to the largest remainders (belle, then firefly before moss003).
  const perEpoch = [...io.stdout.matchAll(/weight [\d.]+: (\d+) examples per epoch/g)].map((m) => Number(m[1]));
  assert.equal(perEpoch, [29, 15, 14, 7]);
  assert.ok(io.stdout.includes("split: 27 train, 3 eval examples; weight 1: 29 examples per epoch"), io.stdout);
  assert.ok(io.stdout.includes("per epoch: 65 examples in 33 batches of 2\n"), io.stdout.slice(-300));
  assert.match(io.stdout, /128–255 +█+ 6 {2}\(max_length 128\)/);

  const json = capture();
  assert.is(await main(["data", "stats", quickstart, "--no-cache", "--json", "--dataset", "moss003"], json), 0, json.stderr);
  const [moss] = JSON.parse(json.stdout);
  assert.equal([moss.name, moss.records, moss.accepted, moss.filtered, moss.examples, moss.dropped, moss.maxLength], ["moss003", 20, 15, 5, 15, 0, 256]);
  assert.is(moss.histogram.reduce((n: number, h: { count: number }) => n + h.count, 0), 15);
  assert.ok(moss.tokens <= 15 * 256 && moss.trainedTokens < moss.tokens);
});

test("usage mistakes exit 2 with a message", async () => {
  const io = capture();
  assert.is(await main(["data", "show", quickstart], io), 2);
  assert.match(io.stderr, "unknown subcommand `show`");
  const other = capture();
  assert.is(await main(["data", "preview", quickstart, "--dataset", "nope"], other), 2);
  assert.match(other.stderr, "no dataset named `nope`");
  const count = capture();
  assert.is(await main(["data", "preview", quickstart, "-n", "0"], count), 2);
});

test.run();
