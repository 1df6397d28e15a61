// From a resolved pipeline to the tokenized examples of each of its datasets: read the file
// (streamed), render every conversation with the model's template, tokenize in worker
// threads, and keep the result in the disk cache (`.sftc-cache/` beside the pipeline) so a
// rerun reads it back instead.
import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import type { TokenizerKind } from "../tokenizer/tokenizer.ts";
import type { Conversation } from "./conversation.ts";
import { readDataset, type DatasetConfig, type DatasetFormat } from "./read-dataset.ts";
import type { DataReport, OnError } from "./report.ts";
import { TokenCache } from "./token-cache.ts";
import { openEncoder, type EncoderSpec, type OpenEncoder } from "./tokenize-chunk.ts";
import { TokenizePool } from "./tokenize-pool.ts";
import { concatChunks, TokenStore, type TokenChunk } from "./token-store.ts";

/** One dataset block, ready to read and tokenize. */
export interface DatasetPlan {
  name: string;
  reader: DatasetConfig;
  /** At most this many conversations (after filters), in file order. */
  limit?: number;
  evalSplit: number;
  weight: number;
  shuffle: boolean;
  encoder: EncoderSpec;
  /** The files the tokenizer is read from (part of the cache key). */
  tokenizerFiles: string[];
}

/** A dataset's tokenized examples and what reading it found. */
export interface PreparedDataset {
  plan: DatasetPlan;
  store: TokenStore;
  report: DataReport;
  conversations: number;
  dropped: number;
  fromCache: boolean;
}

export interface PrepareOptions {
  /** Worker threads (default: none for files under 4 MiB, else one less than the cores, at most 4; 0 tokenizes on this thread). */
  workers?: number;
  /** The cache directory; null disables the cache (default: `.sftc-cache` beside the pipeline). */
  cacheDir?: string | null;
  /** Conversations per worker message. */
  chunkSize?: number;
}

const tokenizerFileNames = ["tokenizer.model", "ice_text.model", "vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"];

/** The dataset plans of a pipeline. */
export function planDatasets(pipeline: ResolvedPipeline): DatasetPlan[] {
  const { model } = pipeline;
  const family = model.family as TokenizerKind & TemplateName;
  const template = (model.template === "native" || model.template === undefined ? family : model.template) as TemplateName;
  const tokenizer = String(model.tokenizer);
  const isFile = existsSync(tokenizer) && statSync(tokenizer).isFile();
  const tokenizerDir = isFile ? dirname(tokenizer) : tokenizer;
  const tokenizerFiles = isFile ? [tokenizer] : tokenizerFileNames.map((n) => join(tokenizer, n)).filter((f) => existsSync(f));
  return pipeline.datasets.map((d) => {
    const list = (key: string) => (Array.isArray(d[key]) ? (d[key] as string[]) : undefined);
    const text = (key: string) => (typeof d[key] === "string" ? (d[key] as string) : undefined);
    const reader: DatasetConfig = {
      format: d.format as DatasetFormat,
      path: String(d.path),
      kinds: list("kinds"),
      categories: list("categories"),
      language: text("language") as DatasetConfig["language"],
      strip: d.strip !== false,
      onError: text("on_error") as OnError | undefined,
      maxBadFraction: typeof d.max_bad_fraction === "number" ? d.max_bad_fraction : undefined,
      ...(d.format === "jsonl"
        ? { fields: { user: text("user_field")!, assistant: text("assistant_field")!, turns: text("turns_field"), system: text("system_field"), category: text("category_field") } }
        : {}),
    };
    return {
      name: d.name,
      reader,
      limit: typeof d.limit === "number" ? d.limit : undefined,
      evalSplit: Number(d.eval_split ?? 0),
      weight: Number(d.weight ?? 1),
      shuffle: d.shuffle !== false,
      encoder: { tokenizerDir, tokenizerKind: family, template, loss: text("loss_scheme"), trainOnPrompt: d.train_on_prompt === true, maxLength: Number(d.max_length) },
      tokenizerFiles,
    };
  });
}

/** Where a pipeline's token cache lives. */
export function defaultCacheDir(pipeline: ResolvedPipeline): string {
  return join(dirname(pipeline.file), ".sftc-cache");
}

/** Tokenizes every dataset of the pipeline (or reads it from the cache). */
export async function prepareData(pipeline: ResolvedPipeline, options: PrepareOptions = {}): Promise<Result<PreparedDataset[]>> {
  const cacheDir = options.cacheDir === undefined ? defaultCacheDir(pipeline) : options.cacheDir;
  const cache = cacheDir === null ? undefined : await TokenCache.open(cacheDir);
  const out: PreparedDataset[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const plan of planDatasets(pipeline)) {
    const prepared = await prepareDataset(plan, { ...options, cache });
    diagnostics.push(...prepared.diagnostics);
    if (!prepared.ok) return fail(...diagnostics);
    out.push(prepared.value);
  }
  return ok(out, diagnostics);
}

/** Tokenizes one dataset, or reads it from `cache`. */
export async function prepareDataset(plan: DatasetPlan, options: PrepareOptions & { cache?: TokenCache } = {}): Promise<Result<PreparedDataset>> {
  const open = await openEncoder(plan.encoder);
  if (!open.ok) return open;
  const { cache } = options;
  const { tokenizerDir: _, ...encoding } = plan.encoder;
  const key = cache && existsSync(plan.reader.path) ? await cache.key(plan.reader.path, plan.tokenizerFiles, { reader: plan.reader, limit: plan.limit, encoding }) : undefined;
  const cached = key ? await cache!.read(key) : undefined;
  if (cached) {
    const { meta, chunk } = cached;
    return ok(finish(plan, chunk, meta.report, meta.conversations, true), [...meta.report.diagnostics, ...droppedNote(plan, chunk)]);
  }
  const read = await tokenizeFile(plan, open.value, options);
  if (!read.ok) return read;
  const { chunk, report, conversations } = read.value;
  if (key) await cache!.write(key, { report, conversations }, chunk);
  return ok(finish(plan, chunk, report, conversations, false), [...report.diagnostics, ...droppedNote(plan, chunk)]);
}

function finish(plan: DatasetPlan, chunk: TokenChunk, report: DataReport, conversations: number, fromCache: boolean): PreparedDataset {
  return { plan, store: new TokenStore(chunk), report, conversations, dropped: chunk.dropped, fromCache };
}

function droppedNote(plan: DatasetPlan, chunk: TokenChunk): Diagnostic[] {
  if (chunk.dropped === 0) return [];
  const total = chunk.dropped + chunk.lengths.length;
  const more = chunk.dropped > chunk.droppedLines.length ? ", ..." : "";
  const lines = `record${chunk.droppedLines.length === 1 ? "" : "s"} at line ${chunk.droppedLines.join(", ")}${more}`;
  return [
    diag("SFT5319", `${plan.reader.path}: dropped ${chunk.dropped} of ${total} examples with no answer token within max_length = ${plan.encoder.maxLength} (${lines})`, {
      where: plan.reader.path,
      hint: "raise max_length, or shorten the prompts (system text, history) of these records",
    }),
  ];
}

// Starting a worker costs about a second (it loads the sources), so small files stay on this thread.
function defaultWorkers(path: string): number {
  const size = existsSync(path) ? statSync(path).size : 0;
  return size < workersFromBytes ? 0 : Math.max(0, Math.min(4, availableParallelism() - 1));
}

const workersFromBytes = 4 << 20;

async function tokenizeFile(plan: DatasetPlan, open: OpenEncoder, options: PrepareOptions): Promise<Result<{ chunk: TokenChunk; report: DataReport; conversations: number }>> {
  const chunkSize = options.chunkSize ?? 256;
  const pool = new TokenizePool(plan.encoder, options.workers ?? defaultWorkers(plan.reader.path), open);
  const stream = readDataset(plan.reader);
  // Chunk promises are awaited in submission order, a bounded number in flight.
  const inFlight: Promise<TokenChunk>[] = [];
  const chunks: TokenChunk[] = [];
  let pending: Conversation[] = [];
  let conversations = 0;
  const submit = async () => {
    const chunk = pool.tokenize(pending, conversations - pending.length);
    // Awaited in order below; a failure must not count as unhandled while an earlier chunk is awaited.
    chunk.catch(() => undefined);
    inFlight.push(chunk);
    pending = [];
    if (inFlight.length > 2 * Math.max(1, pool.size)) chunks.push(await inFlight.shift()!);
  };
  try {
    for await (const conversation of stream) {
      if (plan.limit !== undefined && conversations >= plan.limit) break;
      pending.push(conversation);
      conversations++;
      if (pending.length === chunkSize) await submit();
    }
    if (pending.length > 0) await submit();
    chunks.push(...(await Promise.all(inFlight)));
  } finally {
    await pool.close();
  }
  const { report } = stream;
  if (report.failed) return fail(...report.diagnostics);
  return ok({ chunk: concatChunks(chunks), report, conversations });
}
