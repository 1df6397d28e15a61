// `metrics.jsonl` in the run directory: one JSON object per optimizer step and per evaluation.
// After a resume the lines beyond the checkpoint's step are dropped (those steps run again), so
// the file always describes one consistent run.
import { appendFile, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface StepRecord {
  kind: "train";
  step: number;
  /** Epochs of data consumed so far (fractional). */
  epoch: number;
  /** Token-mean loss over the step's micro-batches. */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  /** Input tokens of the step, and those carrying a loss. */
  tokens: number;
  label_tokens: number;
  tokens_per_s: number;
  /** Seconds of training so far, across resumes. */
  elapsed: number;
}

export interface EvalRecord {
  kind: "eval";
  step: number;
  eval_loss: number;
  eval_perplexity: number;
  eval_tokens: number;
  elapsed: number;
}

export type MetricsRecord = StepRecord | EvalRecord;

export const METRICS_FILE = "metrics.jsonl";

/** The records of a run, kept in memory for the curves and appended to disk as they come. */
export class MetricsLog {
  private constructor(
    private readonly path: string,
    readonly records: MetricsRecord[],
  ) {}

  /** Opens `runDir`'s log keeping records up to `keepThrough` (a resumed step), or starts it empty. */
  static async open(runDir: string, keepThrough?: number): Promise<MetricsLog> {
    const path = join(runDir, METRICS_FILE);
    let kept: MetricsRecord[] = [];
    if (keepThrough !== undefined) {
      const text = await readFile(path, "utf8").catch(() => "");
      // a line cut short by a crash is not JSON: it and anything after it are dropped
      for (const line of text.split("\n")) {
        const record = parseRecord(line);
        if (!record) break;
        if (record.step <= keepThrough) kept.push(record);
      }
    }
    await writeFile(`${path}.tmp`, kept.map((r) => `${JSON.stringify(r)}\n`).join(""));
    await rename(`${path}.tmp`, path);
    return new MetricsLog(path, kept);
  }

  async append(record: MetricsRecord): Promise<void> {
    this.records.push(record);
    await appendFile(this.path, `${JSON.stringify(record)}\n`);
  }
}

function parseRecord(line: string): MetricsRecord | undefined {
  try {
    const r = JSON.parse(line) as MetricsRecord;
    return typeof r === "object" && r !== null && Number.isInteger(r.step) ? r : undefined;
  } catch {
    return undefined;
  }
}
