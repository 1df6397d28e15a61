// `sftc generate FILE.sft --prompt TEXT | --ids 1,2,3 | --input prompts.jsonl --output out.jsonl`:
// text generation with the pipeline's model and decode block. Text streams as it is produced
// (whole UTF-8 characters only); `--json` prints ids and text; a prompts file is answered line by
// line with progress on stderr. Runs on the CPU reference backend, or on the GPU with --gpu.
import { readFileSync, writeFileSync } from "node:fs";
import { flag, flagValue, type FlagSpec, type ParsedArgs, parseIds } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";
import { diag, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import { generateBatch, type Generated } from "../../runtime/generate/engine.ts";
import { loadPipelineGenerator, type PipelineGenerator } from "../../runtime/generate/pipeline-model.ts";
import { TextOutput } from "../../runtime/generate/text-output.ts";
import { Random } from "../../runtime/random.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { deviceFlag, withRequestedGpu } from "./devices.ts";
import { loadingProgress } from "../../runtime/pipeline/loading-progress.ts";

/** Flags every generating command takes. */
export const generatorFlags: FlagSpec[] = [
  { name: "adapter", value: "one", placeholder: "RUN_DIR", description: "a PEFT LoRA adapter directory to apply" },
  { name: "no-cache", description: "recompute the whole sequence every step (the reference) instead of using the KV cache" },
  { name: "gpu", description: "run on the GPU (WebGPU) instead of the CPU reference" },
  deviceFlag,
];

export const command: Command = {
  name: "generate",
  summary: "generate text from a prompt with the pipeline's model and decode settings",
  usage: 'FILE.sft[#PIPELINE] [--prompt "TEXT" | --ids 1,2,3 | --input prompts.jsonl --output out.jsonl] [--raw] [--json] [--adapter RUN_DIR] [--no-cache | --gpu] [--set decode.KEY=VALUE]...',
  details:
    "Answers a prompt with the pipeline's model: its checkpoint (`model.path`), or for `init = random` the " +
    "weights drawn from `train.seed`; `--adapter DIR` applies a PEFT LoRA adapter directory " +
    "(adapter_config.json + adapter_model.safetensors), merged into the weights. A KV cache keeps each " +
    "step to the new position; `--no-cache` recomputes the whole sequence instead (the reference); `--gpu` runs the " +
    "cached steps on the GPU through the compiler's kernels (WebGPU). The `decode` block sets the strategy and its keys; " +
    "override them with --set decode.max_new_tokens=16. Without a prompt, the decode block's `prompts` are answered. `--prompt` is written into the family's chat template " +
    "as one user turn (`--raw` encodes it as plain text with the family's special tokens instead); `--ids` is " +
    "used as given. Text is printed as it is generated; `--json` prints one JSON object " +
    '{"prompt_ids", "sequences": [{"ids", "text", "stop_reason", "score"?}]}. `--input` reads JSON lines ' +
    '{"prompt": TEXT} or {"ids": [...]} and writes one result per line to `--output`, with progress on stderr. ' +
    "Generation stops at the family's end tokens, a `stop` string (cut from the text), max_new_tokens, or the " +
    "model's positions.",
  flags: [
    { name: "prompt", value: "one", placeholder: "TEXT", description: "the prompt text" },
    { name: "ids", value: "one", placeholder: "1,2,3", description: "the prompt as comma-separated token ids" },
    { name: "input", value: "one", placeholder: "FILE.jsonl", description: 'prompts, one JSON object per line: {"prompt": TEXT} or {"ids": [...]}' },
    { name: "output", value: "one", placeholder: "FILE.jsonl", description: "where --input's results go, one JSON object per line" },
    { name: "raw", description: "encode --prompt as plain text instead of a chat turn" },
    { name: "json", description: "print the prompt ids, generated ids and text as JSON" },
    ...generatorFlags,
    ...pipelineFlags,
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const prompt = flagValue(args, "prompt");
    const idList = flagValue(args, "ids");
    const input = flagValue(args, "input");
    const output = flagValue(args, "output");
    const given = [prompt, idList, input].filter((v) => v !== undefined).length;
    if (given > 1) return usageError(io, "generate", "give one of --prompt TEXT, --ids 1,2,3 or --input FILE.jsonl");
    if ((input === undefined) !== (output === undefined)) return usageError(io, "generate", "--input and --output go together");
    const ids = idList === undefined ? undefined : parseIds(idList);
    if (ids && !ids.ok) return usageError(io, "generate", ids.error);

    return withGenerator("generate", args, io, async (generator) => {
      if (input !== undefined) return generateFile(generator, input, output!, flag(args, "raw"), io);
      // without a prompt, the decode block's `prompts` are answered
      const texts = prompt !== undefined ? [prompt] : ids ? [] : generator.prompts;
      if (given === 0 && texts.length === 0) return usageError(io, "generate", "give --prompt TEXT, --ids 1,2,3 or --input FILE.jsonl (the pipeline's decode block has no prompts)");
      const json = flag(args, "json");
      const jobs = ids?.ok ? [{ text: undefined, ids: ok(ids.ids) }] : texts.map((text) => ({ text, ids: encodePrompt(generator, text, flag(args, "raw")) }));
      for (const job of jobs) {
        if (!job.ids.ok) return printErrors(job.ids.diagnostics, io);
        if (jobs.length > 1 && !json) io.out(`» ${job.text}\n`);
        const result = await answer(generator, job.ids.value, json ? () => {} : (text) => io.out(text));
        if (!result.ok) return printErrors(result.diagnostics, io);
        if (json) io.out(`${JSON.stringify(job.text === undefined || prompt !== undefined ? result.value : { prompt: job.text, ...result.value })}\n`);
      }
      return 0;
    });
  },
};

/**
 * Loads the pipeline's generator (on the GPU with `--gpu`), says on stderr where it runs, and
 * runs `work` with it; the GPU device is released afterwards. Failures print their diagnostics.
 */
export async function withGenerator(name: string, args: ParsedArgs, io: Io, work: (g: PipelineGenerator) => Promise<number>): Promise<number> {
  if (flag(args, "gpu") && flag(args, "no-cache")) return usageError(io, name, "--gpu runs the KV-cache model; it does not go with --no-cache");
  const resolved = resolveOne(name, args, io);
  if (!resolved.ok) return resolved.exit;
  return withRequestedGpu(name, args, io, async (gpu) => {
    // a checkpoint streamed to the GPU shows how much is read (a redrawn bar on a terminal)
    const model = resolved.pipeline.model;
    const loading = gpu && model.init !== "random" ? loadingProgress({ isTTY: io.color, write: (text) => io.err(text) }, String(model.path)) : undefined;
    const loaded = await loadPipelineGenerator(resolved.pipeline, { adapterDir: flagValue(args, "adapter"), noCache: flag(args, "no-cache"), gpu, onProgress: loading?.report });
    loading?.finish();
    if (!loaded.ok) return printErrors(loaded.diagnostics, io);
    io.err(`sftc ${name}: running on the ${loaded.value.model.backend}\n`);
    return work(loaded.value);
  });
}

export function printErrors(diagnostics: readonly Diagnostic[], io: Io): number {
  for (const d of diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
  return 1;
}

function encodePrompt(g: PipelineGenerator, text: string, raw: boolean): Result<number[]> {
  if (raw) return ok(g.tokenizer.withSpecialTokens(g.tokenizer.encode(text)));
  return chatPromptIds(g.tokenizer, g.family.name as TemplateName, [], text);
}

export interface Answer {
  prompt_ids: number[];
  sequences: { ids: number[]; text: string; stop_reason: string; score?: number }[];
}

/**
 * Generates for `promptIds` with the pipeline's settings. `stream` receives the text of the first
 * sequence as it is produced when the strategy produces tokens in order (not beam search); the
 * other sequences' texts are streamed whole when they are done, each on its own line.
 */
export async function answer(g: PipelineGenerator, promptIds: number[], stream: (text: string) => void): Promise<Result<Answer>> {
  const answers = await answerBatch(g, [promptIds], stream);
  return answers.ok ? ok(answers.value[0]) : answers;
}

/** `answer` for several prompts generated as one batch; `stream` is for a batch of one. */
async function answerBatch(g: PipelineGenerator, prompts: number[][], stream: (text: string) => void = () => {}): Promise<Result<Answer[]>> {
  const beam = g.settings.strategy === "beam";
  const n = g.settings.numReturnSequences;
  const outputs = prompts.map(() => Array.from({ length: n }, () => new TextOutput(g.tokenizer, g.stops)));
  const onToken = (token: number, prompt: number, sequence: number) => {
    const text = outputs[prompt][sequence].push(token);
    if (sequence === 0 && !beam) stream(text);
    return outputs[prompt][sequence].stop !== null;
  };
  const generated = await generateBatch(g.model, prompts, g.settings, new Random(g.seed), beam ? undefined : onToken);
  if (!generated.ok) return generated;
  return ok(
    generated.value.map((sequences, p) => ({
      prompt_ids: prompts[p],
      sequences: sequences.map((s: Generated, i) => {
        const text = outputs[p][i];
        if (beam) s.tokens.forEach((t) => text.push(t));
        const rest = text.finish();
        if (i === 0 && !beam) stream(`${rest}\n`);
        else stream(`${n > 1 ? `[${i + 1}] ` : ""}${text.text}\n`);
        const stopReason = text.stop !== null ? "stop_string" : s.stopReason;
        return { ids: s.tokens, text: text.text, stop_reason: stopReason, ...(s.score === undefined ? {} : { score: s.score }) };
      }),
    })),
  );
}

/** Prompts of a file generated together; progress is reported per batch. */
const FILE_BATCH = 8;

/** Answers every line of `input` into `output`; a malformed line stops with its line number. */
async function generateFile(g: PipelineGenerator, input: string, output: string, raw: boolean, io: Io): Promise<number> {
  let text: string;
  try {
    text = readFileSync(input, "utf8");
  } catch (error) {
    return printErrors([diag("SFT5703", `cannot read ${input}: ${(error as Error).message}`, { where: input })], io);
  }
  const lines = text.split("\n").map((line, i) => ({ line: line.trim(), number: i + 1 })).filter((l) => l.line !== "");
  const prompts: { record: Record<string, unknown>; ids: number[] }[] = [];
  for (const { line, number } of lines) {
    const parsed = parsePromptLine(g, line, raw);
    if (!parsed.ok) return printErrors(parsed.diagnostics.map((d) => ({ ...d, message: `${input}:${number}: ${d.message}`, where: `${input}:${number}` })), io);
    prompts.push(parsed.value);
  }
  const results: string[] = [];
  for (let first = 0; first < prompts.length; first += FILE_BATCH) {
    const batch = prompts.slice(first, first + FILE_BATCH);
    for (const [i, { ids }] of batch.entries()) {
      const checked = g.model.check(ids);
      if (!checked.ok) return printErrors(checked.diagnostics.map((d) => ({ ...d, message: `${input}:${lines[first + i].number}: ${d.message}` })), io);
    }
    const answers = await answerBatch(g, batch.map((p) => p.ids));
    if (!answers.ok) return printErrors(answers.diagnostics, io);
    answers.value.forEach((a, i) => results.push(JSON.stringify({ ...batch[i].record, ...a })));
    io.err(`sftc generate: ${first + batch.length}/${prompts.length} prompts\n`);
  }
  writeFileSync(output, results.map((r) => `${r}\n`).join(""));
  io.err(`sftc generate: wrote ${results.length} result${results.length === 1 ? "" : "s"} to ${output}\n`);
  return 0;
}

function parsePromptLine(g: PipelineGenerator, line: string, raw: boolean): Result<{ record: Record<string, unknown>; ids: number[] }> {
  const bad = (why: string) => ({ ok: false as const, diagnostics: [diag("SFT5703", why, { hint: 'Write one JSON object per line: {"prompt": "TEXT"} or {"ids": [1, 2, 3]}.' })] });
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch (error) {
    return bad(`not JSON (${(error as Error).message})`);
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) return bad("not a JSON object");
  const { prompt, ids } = record as Record<string, unknown>;
  if (typeof prompt === "string") {
    const encoded = encodePrompt(g, prompt, raw);
    return encoded.ok ? ok({ record: record as Record<string, unknown>, ids: encoded.value }) : encoded;
  }
  if (Array.isArray(ids) && ids.every((id) => Number.isInteger(id) && id >= 0)) return ok({ record: record as Record<string, unknown>, ids: ids as number[] });
  return bad('needs a string "prompt" or a list of non-negative integer "ids"');
}
