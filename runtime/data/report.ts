// The bad-record policy. A record that cannot be used is never dropped silently: it is counted
// under its reason, the first few are kept as diagnostics naming file:line, and the policy
// decides whether reading goes on.
//
//   on_error = skip (default): skip bad records, but stop with SFT5311 once more than
//              `maxBadFraction` (default 1%) of the records are bad. The fraction is checked
//              after every record once `minRecordsForFraction` (1000) records were read, so a
//              file of the wrong format fails fast, and at the end for smaller files.
//   on_error = fail: stop at the first bad record (SFT5312).
//
// Records left out on purpose (a `kinds`/`categories`/`language` filter, MOSS plugin turns)
// are not errors: they are counted per reason and summed up in one SFT5314 note.
import { diag, hasErrors, type Diagnostic } from "../../compiler/diagnostics.ts";
import type { Code } from "../../compiler/diagnostic-codes.ts";

export type OnError = "skip" | "fail";

export interface BadRecordPolicy {
  onError: OnError;
  /** Fraction of bad records above which reading stops (on_error = skip). */
  maxBadFraction: number;
  /** How many bad records are kept as individual diagnostics. */
  maxReported: number;
  minRecordsForFraction: number;
}

export const defaultPolicy: BadRecordPolicy = { onError: "skip", maxBadFraction: 0.01, maxReported: 10, minRecordsForFraction: 1000 };

/** Why a record was not used. Records are counted by `reason`; `detail` only goes into the message. */
export interface Problem {
  code: Code;
  /** A short, countable reason, e.g. `missing field "output"`. */
  reason: string;
  /** Specifics of this record, e.g. the JSON parser's message. */
  detail?: string;
}

/** Counts for one dataset file. Read it after the stream has ended. */
export interface DataReport {
  file: string;
  /** Records seen: non-blank lines, or list elements of a Safety-Prompts file. */
  records: number;
  accepted: number;
  blankLines: number;
  bad: number;
  badByReason: Record<string, number>;
  filtered: number;
  filteredByReason: Record<string, number>;
  /** The first bad records, a summary of the rest, fatal errors, filter notes. */
  diagnostics: Diagnostic[];
  /** True once an error stopped reading (or the file could not be read): the data is incomplete. */
  failed: boolean;
}

function emptyReport(file: string): DataReport {
  return { file, records: 0, accepted: 0, blankLines: 0, bad: 0, badByReason: {}, filtered: 0, filteredByReason: {}, diagnostics: [], failed: false };
}

/** Keeps a report up to date as records stream by, and applies the policy. */
export class ReportBuilder {
  readonly report: DataReport;
  private readonly policy: BadRecordPolicy;

  constructor(file: string, policy: Partial<BadRecordPolicy> = {}) {
    this.report = emptyReport(file);
    this.policy = { ...defaultPolicy, ...policy };
  }

  accept(): void {
    this.report.records++;
    this.report.accepted++;
  }

  blank(): void {
    this.report.blankLines++;
  }

  filter(reason: string): void {
    this.report.records++;
    this.report.filtered++;
    bump(this.report.filteredByReason, reason);
  }

  /** Records a bad record; returns false when reading must stop. */
  bad(problem: Problem, line: number): boolean {
    const r = this.report;
    r.records++;
    r.bad++;
    bump(r.badByReason, problem.reason);
    const where = `${r.file}:${line}`;
    const what = problem.detail ? `${problem.reason} (${problem.detail})` : problem.reason;
    if (r.bad <= this.policy.maxReported) r.diagnostics.push(diag(problem.code, `${where}: ${what}; record skipped`, { where }));
    if (this.policy.onError === "fail") {
      return this.stop(
        diag("SFT5312", `${where}: ${what}, and on_error = fail stops at the first bad record`, {
          where,
          hint: "fix the record, or set on_error = skip to skip bad records (up to max_bad_fraction of them)",
        }),
      );
    }
    if (r.records >= this.policy.minRecordsForFraction && this.tooMany()) return this.stopTooMany();
    return true;
  }

  /** A problem that ends the read (missing file, wrong top-level structure). */
  fatal(d: Diagnostic): false {
    return this.stop(d);
  }

  /** Adds the closing summaries; call once when the stream ends. */
  finish(): DataReport {
    const r = this.report;
    if (!r.failed && r.bad > 0 && this.tooMany()) this.stopTooMany();
    if (!r.failed && r.bad > 0) {
      r.diagnostics.push(
        diag("SFT5313", `${r.file}: skipped ${r.bad} bad of ${r.records} records (${describe(r.badByReason)})`, {
          where: r.file,
          ...(r.bad > this.policy.maxReported ? { hint: `only the first ${this.policy.maxReported} are listed` } : {}),
        }),
      );
    }
    if (r.filtered > 0) {
      r.diagnostics.push(diag("SFT5314", `${r.file}: left out ${r.filtered} of ${r.records} records (${describe(r.filteredByReason)})`, { where: r.file }));
    }
    return r;
  }

  private tooMany(): boolean {
    return this.report.bad > this.policy.maxBadFraction * this.report.records;
  }

  private stopTooMany(): false {
    const r = this.report;
    const percent = (100 * r.bad) / r.records;
    return this.stop(
      diag("SFT5311", `${r.file}: ${r.bad} of ${r.records} records are bad (${percent.toFixed(1)}%, more than max_bad_fraction = ${this.policy.maxBadFraction}): ${describe(r.badByReason)}`, {
        where: r.file,
        hint: "check that the dataset format matches the file (belle, firefly, moss003, safety, jsonl), or raise max_bad_fraction",
      }),
    );
  }

  private stop(d: Diagnostic): false {
    this.report.diagnostics.push(d);
    this.report.failed = hasErrors(this.report.diagnostics);
    return false;
  }
}

function bump(counts: Record<string, number>, reason: string): void {
  counts[reason] = (counts[reason] ?? 0) + 1;
}

function describe(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${n} × ${reason}`)
    .join(", ");
}
