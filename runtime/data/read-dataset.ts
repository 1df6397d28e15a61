// The entry point of data loading: a dataset config in, a stream of normalized conversations
// out, plus a report that counts every record (accepted, bad per reason, filtered per reason).
// Errors are values: a missing file or a bad setting ends the stream with `report.failed` set
// and a diagnostic, never an exception.
import { open, type FileHandle } from "node:fs/promises";
import { diag, fail, invariant, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { Conversation, Source } from "./conversation.ts";
import { parseBelle } from "./formats/belle.ts";
import { parseFirefly } from "./formats/firefly.ts";
import { parseMapped, type FieldMapping } from "./formats/jsonl.ts";
import { parseMoss003, type MossLanguage } from "./formats/moss003.ts";
import { parseSafetyElement } from "./formats/safety.ts";
import { defaultMaxLineBytes, readLines, type LinePosition } from "./line-reader.ts";
import { scanObjectOfLists } from "./object-of-lists.ts";
import type { RecordOutcome } from "./record.ts";
import { ReportBuilder, type DataReport, type OnError, type Problem } from "./report.ts";

export type DatasetFormat = "belle" | "firefly" | "moss003" | "safety" | "jsonl";

/** One `dataset` block of a pipeline, as the reader needs it. */
export interface DatasetConfig {
  format: DatasetFormat;
  path: string;
  /** firefly: task kinds to keep (none or empty: all). */
  kinds?: string[];
  /** moss003: `category` values to keep; safety: category keys to read (none or empty: all). */
  categories?: string[];
  /** moss003: keep conversations whose first question is Chinese (zh), not Chinese (en), or all. */
  language?: MossLanguage;
  /** jsonl: which fields hold the texts. */
  fields?: FieldMapping;
  /**
   * Remove leading and trailing whitespace from every question and answer (default true), as
   * Firefly's UnifiedSFTDataset does (`.strip()`). That drops the quirks of the real files:
   * the trailing `\n` of Belle instructions, the leading `\n`/`\n\n` of Belle and
   * Safety-Prompts answers (datasets.md A.1, A.4). System texts are kept as they are.
   */
  strip?: boolean;
  /** Default "skip" (see report.ts for the policy). */
  onError?: OnError;
  /** Default 0.01. */
  maxBadFraction?: number;
}

export interface ReadOptions {
  /** Resume a line-based format at a line start (a `Source` offset/line, or `RawLine.end`); the report then counts from there. */
  start?: LinePosition;
  /** How many bad records are listed one by one (default 10). */
  maxReported?: number;
  /** Longest record kept in memory; longer ones are bad records (default 16 MiB). */
  maxRecordBytes?: number;
  chunkBytes?: number;
}

/** Conversations in file order; `report` is complete once iteration has ended. */
export interface DatasetStream extends AsyncIterable<Conversation> {
  readonly report: DataReport;
}

/** Streams the conversations of one dataset file with bounded memory. */
export function readDataset(given: DatasetConfig, options: ReadOptions = {}): DatasetStream {
  // An empty selection list selects everything, as no list does.
  const config = { ...given, kinds: nonEmpty(given.kinds), categories: nonEmpty(given.categories) };
  const builder = new ReportBuilder(config.path, {
    ...(config.onError ? { onError: config.onError } : {}),
    ...(config.maxBadFraction !== undefined ? { maxBadFraction: config.maxBadFraction } : {}),
    ...(options.maxReported !== undefined ? { maxReported: options.maxReported } : {}),
  });
  return {
    report: builder.report,
    async *[Symbol.asyncIterator]() {
      const setting = checkSettings(config, options);
      if (setting) {
        builder.fatal(setting);
        return;
      }
      let handle: FileHandle;
      try {
        handle = await open(config.path, "r");
      } catch (err) {
        builder.fatal(cannotRead(config.path, err));
        return;
      }
      try {
        if (config.format === "safety") yield* readSafety(handle, config, options, builder);
        else yield* readJsonLines(handle, config, recordParser(config), options, builder);
      } catch (err) {
        // A read error after opening (EISDIR, EIO) is the user's file; anything else is a bug.
        if (typeof (err as NodeJS.ErrnoException)?.code !== "string") throw err;
        builder.fatal(cannotRead(config.path, err));
      } finally {
        await handle.close();
        builder.finish();
      }
    },
  };
}

function nonEmpty(list: string[] | undefined): string[] | undefined {
  return list && list.length > 0 ? list : undefined;
}

/** Reads a whole (small) dataset into memory: for tests, samples and previews. */
export async function collectDataset(config: DatasetConfig, options: ReadOptions = {}): Promise<Result<{ conversations: Conversation[]; report: DataReport }>> {
  const stream = readDataset(config, options);
  const conversations: Conversation[] = [];
  for await (const c of stream) conversations.push(c);
  const { report } = stream;
  return report.failed ? fail(...report.diagnostics) : ok({ conversations, report }, report.diagnostics);
}

function cannotRead(path: string, err: unknown): Diagnostic {
  const code = (err as NodeJS.ErrnoException)?.code;
  const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : code === "EACCES" ? "permission denied" : String((err as Error)?.message ?? err);
  return diag("SFT5301", `cannot read dataset file ${path}: ${why}`, { where: path, hint: "check the dataset's path (relative paths start at the pipeline's directory)" });
}

function checkSettings(config: DatasetConfig, options: ReadOptions): Diagnostic | undefined {
  const where = config.path;
  const only = (setting: string, formats: string) => diag("SFT5317", `${setting} applies only to the ${formats} format, not ${config.format}`, { where, hint: `remove ${setting}` });
  if (config.kinds && config.format !== "firefly") return only("kinds", "firefly");
  if (config.language && config.format !== "moss003") return only("language", "moss003");
  if (config.categories && config.format !== "moss003" && config.format !== "safety") return only("categories", "moss003 and safety");
  if (config.fields && config.format !== "jsonl") return only("fields", "jsonl");
  if (config.format === "jsonl" && !config.fields) {
    return diag("SFT5317", "the jsonl format needs a field mapping", { where, hint: 'name the fields, e.g. user_field = "instruction" and assistant_field = "output"' });
  }
  if (config.format === "safety" && options.start) {
    return diag("SFT5317", "a safety file cannot resume at a byte offset; it is one JSON object, read from its start", { where });
  }
  const fraction = config.maxBadFraction;
  if (fraction !== undefined && !(fraction >= 0 && fraction <= 1)) {
    return diag("SFT5317", `max_bad_fraction must be between 0 and 1, not ${fraction}`, { where });
  }
  return undefined;
}

function recordParser(config: DatasetConfig): (value: unknown) => RecordOutcome {
  switch (config.format) {
    case "belle":
      return parseBelle;
    case "firefly": {
      const kinds = config.kinds ? new Set(config.kinds) : undefined;
      return (value) => parseFirefly(value, kinds);
    }
    case "moss003": {
      const filters = { categories: config.categories ? new Set(config.categories) : undefined, language: config.language };
      return (value) => parseMoss003(value, filters);
    }
    case "jsonl": {
      const fields = config.fields!;
      return (value) => parseMapped(value, fields);
    }
    case "safety":
      invariant(false, "safety files are one JSON object, not JSON Lines");
  }
}

function lineProblem(problem: "too-long" | "invalid-utf8", maxBytes: number): Problem {
  return problem === "too-long"
    ? { code: "SFT5307", reason: `record longer than ${maxBytes} bytes` }
    : { code: "SFT5308", reason: `invalid UTF-8` };
}

/** Applies a record's outcome to the report; the conversation to yield, or false to stop. */
function settle(outcome: RecordOutcome, source: Source, config: DatasetConfig, builder: ReportBuilder): Conversation | undefined | false {
  switch (outcome.kind) {
    case "ok": {
      builder.accept();
      const { turns } = outcome.conversation;
      const stripped = config.strip === false ? turns : turns.map((t) => ({ user: t.user.trim(), assistant: t.assistant.trim() }));
      return { ...outcome.conversation, turns: stripped, source };
    }
    case "filtered":
      builder.filter(outcome.reason);
      return undefined;
    case "bad":
      return builder.bad(outcome.problem, source.line) ? undefined : false;
  }
}

const blank = /^\s*$/;

function parseJson(text: string): { value: unknown } | Problem {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { code: "SFT5302", reason: "invalid JSON", detail: (err as Error).message };
  }
}

async function* readJsonLines(handle: FileHandle, config: DatasetConfig, parse: (value: unknown) => RecordOutcome, options: ReadOptions, builder: ReportBuilder): AsyncGenerator<Conversation> {
  const maxLineBytes = options.maxRecordBytes ?? defaultMaxLineBytes;
  for await (const raw of readLines(handle, { start: options.start, maxLineBytes, chunkBytes: options.chunkBytes })) {
    if (raw.text === undefined) {
      if (!builder.bad(lineProblem(raw.problem!, maxLineBytes), raw.line)) return;
      continue;
    }
    if (blank.test(raw.text)) {
      builder.blank();
      continue;
    }
    const parsed = parseJson(raw.text);
    const outcome: RecordOutcome = "value" in parsed ? parse(parsed.value) : { kind: "bad", problem: parsed };
    const settled = settle(outcome, { file: config.path, line: raw.line, offset: raw.offset }, config, builder);
    if (settled === false) return;
    if (settled) yield settled;
  }
}

async function* readSafety(handle: FileHandle, config: DatasetConfig, options: ReadOptions, builder: ReportBuilder): AsyncGenerator<Conversation> {
  const file = config.path;
  const selected = config.categories ? new Set(config.categories) : undefined;
  const maxElementBytes = options.maxRecordBytes ?? defaultMaxLineBytes;
  const seen: string[] = [];
  const events = scanObjectOfLists(handle, { wanted: (key) => !selected || selected.has(key), maxElementBytes, chunkBytes: options.chunkBytes });
  for await (const event of events) {
    let outcome: RecordOutcome;
    switch (event.kind) {
      case "key":
        seen.push(event.key);
        continue;
      case "structure":
        const where = event.offset >= 0 ? `${file}:${event.line}` : file;
        builder.fatal(diag("SFT5310", `${where}: ${event.message}`, { where, hint: 'a safety dataset is one JSON object {"Category": [{"prompt": ..., "response": ..., "type": ...}, ...]}' }));
        return;
      case "skipped-element":
        builder.filter(`category "${event.key}" not selected`);
        continue;
      case "bad-element":
        outcome = { kind: "bad", problem: lineProblem(event.problem, maxElementBytes) };
        break;
      case "element": {
        const parsed = parseJson(event.text);
        outcome = "value" in parsed ? parseSafetyElement(parsed.value, event.key) : { kind: "bad", problem: parsed };
        break;
      }
    }
    const settled = settle(outcome, { file, line: event.line, offset: event.offset }, config, builder);
    if (settled === false) return;
    if (settled) yield settled;
  }
  const missing = (config.categories ?? []).filter((c) => !seen.includes(c));
  if (missing.length > 0) {
    builder.fatal(
      diag("SFT5315", `${file} has no categor${missing.length === 1 ? "y" : "ies"} ${missing.map((c) => `"${c}"`).join(", ")}`, {
        where: file,
        hint: `its categories are ${seen.join(", ")}`,
      }),
    );
  }
}
