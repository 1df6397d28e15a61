// Progress on stderr: a bar redrawn in place on a terminal (step/total, loss, lr, tokens/s, ETA,
// memory), plain lines every `log_every` steps otherwise (logs, CI). Evaluations get a line.
import type { MetricsRecord } from "./metrics.ts";

export interface ProgressSink {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressInfo {
  totalSteps: number;
  /** The step the run (re)started from: ETA counts only steps done since. */
  firstStep: number;
  logEvery: number;
  /** Bytes held by the engine, if it knows. */
  memoryBytes?: () => number | undefined;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const bytes = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(0)} MiB` : `${(n / 2 ** 10).toFixed(0)} KiB`);
const rate = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));

/** A function to call with each new record, and one to call at the end. */
export function progressReporter(sink: ProgressSink, info: ProgressInfo): { report: (r: MetricsRecord) => void; finish: () => void } {
  const started = Date.now();
  let drawn = false;
  const clear = () => {
    if (drawn) sink.write("\r\x1b[2K");
    drawn = false;
  };
  const report = (r: MetricsRecord) => {
    if (r.kind === "eval") {
      clear();
      sink.write(`eval step ${r.step}: loss ${r.eval_loss.toFixed(4)}, perplexity ${r.eval_perplexity.toFixed(2)} (${r.eval_tokens} tokens)\n`);
      return;
    }
    const done = r.step - info.firstStep;
    const eta = ((Date.now() - started) / 1000 / Math.max(done, 1)) * (info.totalSteps - r.step);
    const memory = info.memoryBytes?.() ?? process.memoryUsage().rss;
    const fields = `loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${rate(r.tokens_per_s)} tok/s  ETA ${formatDuration(eta)}  mem ${bytes(memory)}`;
    const width = String(info.totalSteps).length;
    const counter = `step ${String(r.step).padStart(width)}/${info.totalSteps}`;
    if (sink.isTTY) {
      const barWidth = Math.max(10, Math.min(30, (sink.columns ?? 100) - counter.length - fields.length - 6));
      const filled = Math.round((r.step / info.totalSteps) * barWidth);
      sink.write(`\r\x1b[2K${counter} [${"#".repeat(filled)}${"-".repeat(barWidth - filled)}] ${fields}`);
      drawn = true;
    } else if (r.step % info.logEvery === 0 || r.step === info.totalSteps) {
      sink.write(`${counter}  ${fields}\n`);
    }
  };
  return {
    report,
    finish: () => {
      if (drawn) sink.write("\n");
      drawn = false;
    },
  };
}
