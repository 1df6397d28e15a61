// Progress output: a bar redrawn in place on a terminal, plain lines every log_every otherwise.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { MetricsRecord, StepRecord } from "../../runtime/train/metrics.ts";
import { formatDuration, progressReporter } from "../../runtime/train/progress.ts";

const step = (n: number): StepRecord => ({ kind: "train", step: n, epoch: n / 10, loss: 3 - n / 10, lr: 1e-4, grad_norm: 1, tokens: 2048, label_tokens: 1500, tokens_per_s: 12345, elapsed: n });

function capture(isTTY: boolean, records: MetricsRecord[]): string {
  let text = "";
  const p = progressReporter({ isTTY, columns: 120, write: (t) => (text += t) }, { totalSteps: 10, firstStep: 0, logEvery: 4, memoryBytes: () => 3 * 2 ** 30 });
  for (const r of records) p.report(r);
  p.finish();
  return text;
}

test("a terminal gets one bar redrawn with \\r: step/total, loss, lr, tokens/s, ETA, memory", () => {
  const text = capture(true, [step(1), step(2), step(3)]);
  assert.is(text.split("\r\x1b[2K").length, 4, "redrawn once per step");
  assert.is(text.split("\n").length, 2, "one newline, at the end");
  const last = text.split("\r\x1b[2K").at(-1)!;
  assert.match(last, /^step  3\/10 \[#{9}-{21}\] loss 2\.7000  lr 1\.00e-4  12\.3k tok\/s  ETA \d+s  mem 3\.0 GiB\n$/);
});

test("a log file gets a line every log_every steps, the last step, and every evaluation", () => {
  const ev: MetricsRecord = { kind: "eval", step: 5, eval_loss: 2, eval_perplexity: Math.exp(2), eval_tokens: 99, elapsed: 5 };
  const text = capture(false, [...[1, 2, 3, 4, 5].map(step), ev, ...[6, 7, 8, 9, 10].map(step)]);
  const lines = text.trim().split("\n");
  assert.equal(lines.map((l) => l.replace(/ {2}loss .*/, "")), ["step  4/10", "eval step 5: loss 2.0000, perplexity 7.39 (99 tokens)", "step  8/10", "step 10/10"]);
  assert.not.match(text, /\r|\x1b/, "no terminal control characters");
});

test("durations read naturally", () => {
  assert.equal([5, 75, 3725, Infinity].map(formatDuration), ["5s", "1m15s", "1h02m", "?"]);
});

test.run();
