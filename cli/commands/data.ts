// `sftc data preview FILE.sft` and `sftc data stats FILE.sft`: what the model will be trained
// on, before any weight is loaded. Preview shows examples as the template and tokenizer make
// them, the trained spans marked; stats counts records, drops, truncation and token lengths.
import { relative } from "node:path";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import type { Conversation } from "../../runtime/data/conversation.ts";
import { loadTrainingData, type TrainingData } from "../../runtime/data/batches.ts";
import { planDatasets, type DatasetPlan, type PreparedDataset } from "../../runtime/data/prepare.ts";
import { readDataset } from "../../runtime/data/read-dataset.ts";
import type { DataReport } from "../../runtime/data/report.ts";
import { renderConversation } from "../../runtime/data/render.ts";
import { openEncoder, type OpenEncoder } from "../../runtime/data/tokenize-chunk.ts";
import { ignoreIndex, tokenizeExample, type TokenizedExample } from "../../runtime/data/tokenize-example.ts";
import { flag, flagValue, type ParsedArgs } from "../args.ts";
import { paint, type Io } from "../io.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";

export const command: Command = {
  name: "data",
  summary: "preview training examples with their loss mask, or print dataset statistics",
  usage: "preview|stats FILE.sft[#PIPELINE] [-n N] [--dataset NAME] [--json] [--no-cache] [--set PATH=VALUE]...",
  details:
    "`preview` renders the first N examples (default 3) of each dataset with the model's chat template and " +
    "tokenizer, after truncation to max_length: trained text (the tokens that carry loss) is coloured on a " +
    "terminal and written between [[ and ]] otherwise; special tokens appear by name. Each example shows " +
    "its source line and its token counts.\n\n" +
    "`stats` reads and tokenizes every dataset (tokens are cached in .sftc-cache/ beside the pipeline, so a " +
    "second run is fast) and prints records, accepted, bad records by reason, filtered, dropped examples, " +
    "truncation and drop rates, the eval split and a histogram of example lengths before truncation.",
  flags: [
    ...pipelineFlags.filter((f) => f.name !== "no-files"),
    { name: "n", value: "one", placeholder: "N", description: "preview: examples per dataset (default 3)" },
    { name: "dataset", value: "one", placeholder: "NAME", description: "only this dataset" },
    { name: "json", description: "stats: print JSON" },
    { name: "no-cache", description: "stats: tokenize again, neither reading nor writing .sftc-cache/" },
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const [sub, ...rest] = args.positional;
    if (sub !== "preview" && sub !== "stats") return usageError(io, "data", sub === undefined ? "missing `preview` or `stats`" : `unknown subcommand \`${sub}\`; use \`preview\` or \`stats\``);
    const resolved = resolveOne(`data ${sub}`, { ...args, positional: rest }, io);
    if (!resolved.ok) return resolved.exit;
    const pipeline = selectDataset(resolved.pipeline, flagValue(args, "dataset"));
    if (!pipeline) {
      const names = resolved.pipeline.datasets.map((d) => d.name).join(", ");
      return usageError(io, "data", `the pipeline has no dataset named \`${flagValue(args, "dataset")}\`; its datasets: ${names}`);
    }
    if (sub === "preview") {
      const n = Number(flagValue(args, "n") ?? "3");
      if (!Number.isInteger(n) || n < 1) return usageError(io, "data", "-n needs a positive whole number");
      return preview(pipeline, n, io);
    }
    return stats(pipeline, { json: flag(args, "json"), cache: !flag(args, "no-cache") }, io);
  },
};

function selectDataset(pipeline: ResolvedPipeline, name: string | undefined): ResolvedPipeline | undefined {
  if (name === undefined) return pipeline;
  const datasets = pipeline.datasets.filter((d) => d.name === name);
  return datasets.length > 0 ? { ...pipeline, datasets } : undefined;
}

function printDiagnostics(diagnostics: readonly Diagnostic[], io: Io): void {
  for (const d of diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
}

const shown = (path: string) => relative(process.cwd(), path) || path;

async function preview(pipeline: ResolvedPipeline, n: number, io: Io): Promise<number> {
  for (const plan of planDatasets(pipeline)) {
    const open = await openEncoder(plan.encoder);
    if (!open.ok) {
      printDiagnostics(open.diagnostics, io);
      return 1;
    }
    const conversations = await firstConversations(plan, n, io);
    if (!conversations) return 1;
    io.out(`${paint(io.color, "bold", `dataset ${plan.name}`)} (${plan.reader.format}, ${shown(plan.reader.path)}, template ${plan.encoder.template}, max_length ${plan.encoder.maxLength})\n`);
    let shownCount = 0;
    for (const conversation of conversations) {
      for (const example of renderConversation(conversation, open.value.choice)) {
        if (shownCount++ >= n) break;
        const outcome = tokenizeExample(example, open.value.encoder);
        const where = `${shown(conversation.source.file)}:${conversation.source.line}${example.turn !== undefined ? ` turn ${example.turn + 1}` : ""}`;
        if (outcome.kind === "dropped") {
          io.out(`\n── ${where}: dropped, no answer token within max_length (${outcome.fullLength} tokens before truncation)\n`);
          continue;
        }
        io.out(`\n── ${where}: ${describeCounts(outcome.example)}\n${markTrained(outcome.example, open.value, io.color)}\n`);
      }
    }
    io.out("\n");
  }
  return 0;
}

async function firstConversations(plan: DatasetPlan, n: number, io: Io): Promise<Conversation[] | undefined> {
  const stream = readDataset(plan.reader);
  const out: Conversation[] = [];
  for await (const c of stream) {
    out.push(c);
    if (out.length >= n) break;
  }
  if (stream.report.failed) {
    printDiagnostics(stream.report.diagnostics, io);
    return undefined;
  }
  return out;
}

function describeCounts(example: TokenizedExample): string {
  const trained = example.labels.filter((l) => l !== ignoreIndex).length;
  const cut = example.fullLength > example.inputIds.length ? `, truncated from ${example.fullLength}` : "";
  return `${example.inputIds.length} tokens, ${trained} trained${cut}`;
}

// The example's text, runs of trained tokens coloured (or between [[ ]]), specials by name.
function markTrained(example: TokenizedExample, open: OpenEncoder, color: boolean): string {
  const names = new Map([...open.encoder.specialIds].map(([name, id]) => [id, name]));
  const { tokenizer } = open.encoder;
  let out = "";
  let from = 0;
  while (from < example.inputIds.length) {
    const trained = example.labels[from] !== ignoreIndex;
    let to = from;
    while (to < example.inputIds.length && (example.labels[to] !== ignoreIndex) === trained) to++;
    // Specials show by name (some tokenizers decode them to nothing); the text between them is decoded.
    let text = "";
    let plain: number[] = [];
    for (const id of example.inputIds.slice(from, to)) {
      const name = names.get(id);
      if (name === undefined) {
        plain.push(id);
        continue;
      }
      text += tokenizer.decode(plain) + name;
      plain = [];
    }
    text += tokenizer.decode(plain);
    out += !trained ? text : color ? paint(true, "cyan", text) : `[[${text}]]`;
    from = to;
  }
  return out;
}

interface DatasetStats extends Pick<DataReport, "records" | "accepted" | "bad" | "badByReason" | "filtered" | "filteredByReason"> {
  name: string;
  file: string;
  conversations: number;
  examples: number;
  dropped: number;
  truncated: number;
  evalExamples: number;
  trainExamples: number;
  weight: number;
  /** Examples drawn from this dataset in every epoch (by weight; mix.ts). */
  perEpoch: number;
  tokens: number;
  trainedTokens: number;
  maxLength: number;
  /** Example lengths before truncation, dropped examples excluded: [from, to) bucket → count. */
  histogram: { from: number; to: number; count: number }[];
  fromCache: boolean;
}

async function stats(pipeline: ResolvedPipeline, options: { json: boolean; cache: boolean }, io: Io): Promise<number> {
  const data = await loadTrainingData(pipeline, options.cache ? {} : { cacheDir: null });
  // Filter notes (info) are in the figures already.
  printDiagnostics(data.diagnostics.filter((d) => d.severity !== "info"), io);
  if (!data.ok) return 1;
  const all = data.value.datasets.map((d, i) => datasetStats(d, data.value, i));
  if (options.json) io.out(`${JSON.stringify(all, null, 2)}\n`);
  else {
    for (const s of all) io.out(formatStats(s));
    io.out(`per epoch: ${all.reduce((n, s) => n + s.perEpoch, 0)} examples in ${data.value.epochLength(0)} batches of ${data.value.options.batchSize}${data.value.options.packing ? " packed rows" : ""}\n`);
  }
  return 0;
}

function datasetStats(d: PreparedDataset, data: TrainingData, index: number): DatasetStats {
  const { chunk } = d.store;
  const maxLength = d.plan.encoder.maxLength;
  let truncated = 0;
  const buckets = new Map<number, number>();
  for (const full of chunk.fullLengths) {
    if (full > maxLength) truncated++;
    const from = full < 16 ? 0 : 2 ** Math.floor(Math.log2(full));
    buckets.set(from, (buckets.get(from) ?? 0) + 1);
  }
  const histogram = [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([from, count]) => ({ from, to: from === 0 ? 16 : from * 2, count }));
  const { report } = d;
  return {
    name: d.plan.name,
    file: d.plan.reader.path,
    records: report.records,
    accepted: report.accepted,
    bad: report.bad,
    badByReason: report.badByReason,
    filtered: report.filtered,
    filteredByReason: report.filteredByReason,
    conversations: d.conversations,
    examples: d.store.size,
    dropped: d.dropped,
    truncated: truncated + d.dropped,
    evalExamples: data.splits[index].eval.length,
    trainExamples: data.splits[index].train.length,
    weight: d.plan.weight,
    perEpoch: data.epochQuotas()[index],
    tokens: chunk.ids.length,
    trainedTokens: chunk.trained.reduce((n, t) => n + t, 0),
    maxLength,
    histogram,
    fromCache: d.fromCache,
  };
}

const percent = (part: number, whole: number) => `${whole === 0 ? "0.0" : ((100 * part) / whole).toFixed(1)}%`;

function reasons(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `\n      ${n} × ${reason}`)
    .join("");
}

function formatStats(s: DatasetStats): string {
  const made = s.examples + s.dropped;
  const widest = Math.max(1, ...s.histogram.map((h) => h.count));
  const bars = s.histogram
    .map((h) => `    ${String(h.from).padStart(6)}–${String(h.to - 1).padEnd(6)} ${"█".repeat(Math.max(1, Math.round((30 * h.count) / widest)))} ${h.count}${h.to > s.maxLength && h.from <= s.maxLength ? `  (max_length ${s.maxLength})` : ""}`)
    .join("\n");
  return [
    `dataset ${s.name} (${shown(s.file)})${s.fromCache ? " [cached tokens]" : ""}`,
    `  records ${s.records}: accepted ${s.accepted}, bad ${s.bad}, filtered ${s.filtered}${reasons(s.badByReason)}${reasons(s.filteredByReason)}`,
    `  examples ${made} from ${s.conversations} conversations: kept ${s.examples}, dropped ${s.dropped} (${percent(s.dropped, made)}), truncated ${s.truncated} (${percent(s.truncated, made)})`,
    `  split: ${s.trainExamples} train, ${s.evalExamples} eval examples; weight ${s.weight}: ${s.perEpoch} examples per epoch`,
    `  tokens ${s.tokens} (${s.trainedTokens} trained), mean ${(s.tokens / Math.max(1, s.examples)).toFixed(1)} per example`,
    `  length before truncation (kept examples):`,
    bars,
    "",
  ].join("\n") + "\n";
}
