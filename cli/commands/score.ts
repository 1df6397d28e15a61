// `sftc score FILE.sft --text TEXT | --ids 1,2,3`: how likely the pipeline's model finds a token
// sequence, token by token. Scoring by ids is how a user compares sftc with another
// implementation token for token; `--json` is for such scripts.
import { flag, flagValue, type ParsedArgs, parseIds } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { ok, type Result } from "../../compiler/diagnostics.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import { loadPipelineGenerator, type PipelineGenerator } from "../../runtime/generate/pipeline-model.ts";
import { mergeLora, readPeftAdapter } from "../../runtime/generate/weights.ts";
import { scoreIds, type Scored } from "../../runtime/score/score.ts";
import { blockLinearNames } from "../../compiler/plan/storage.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { deviceFlag, withRequestedGpu } from "./devices.ts";
import { printErrors } from "./generate.ts";

export const command: Command = {
  name: "score",
  summary: "per-token log-probabilities, loss and perplexity of a text or of token ids under the pipeline's model",
  usage: 'FILE.sft[#PIPELINE] (--text "TEXT" [--chat] | --ids 1,2,3) [--json] [--adapter RUN_DIR] [--gpu [--device NAME]]',
  details:
    "Runs the pipeline's model (its checkpoint, or for `init = random` the weights drawn from `train.seed`; " +
    "`--adapter DIR` merges a PEFT LoRA adapter; a QLoRA pipeline's block linears are read through NF4, as it trains " +
    "them) over the tokens once and prints, for every token after the first, " +
    "its log-probability given the tokens before it, then the loss (the mean negative log-likelihood of those " +
    "tokens) and the perplexity exp(loss). `--text` is encoded as plain text with the family's special tokens " +
    "(ChatGLM's [gMASK] and sop), `--chat` writes it as one user turn of the family's chat template instead, and " +
    "`--ids` is scored as given. The float64 CPU reference runs by default; `--gpu` runs the compiled kernels " +
    '(WebGPU). `--json` prints {"ids", "pieces", "logprobs", "loss", "perplexity"} (the first logprob is null).',
  flags: [
    { name: "text", value: "one", placeholder: "TEXT", description: "the text to score" },
    { name: "ids", value: "one", placeholder: "1,2,3", description: "the comma-separated token ids to score" },
    { name: "chat", description: "write --text as a user turn of the family's chat template" },
    { name: "json", description: "print ids, pieces, logprobs, loss and perplexity as JSON" },
    { name: "adapter", value: "one", placeholder: "RUN_DIR", description: "a PEFT LoRA adapter directory to apply" },
    { name: "gpu", description: "run on the GPU (WebGPU) instead of the float64 CPU reference" },
    deviceFlag,
    ...pipelineFlags,
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const text = flagValue(args, "text");
    const idList = flagValue(args, "ids");
    if ((text === undefined) === (idList === undefined)) return usageError(io, "score", "give either --text TEXT or --ids 1,2,3");
    if (flag(args, "chat") && text === undefined) return usageError(io, "score", "--chat goes with --text");
    const given = idList === undefined ? null : parseIds(idList);
    if (given && !given.ok) return usageError(io, "score", given.error);

    const resolved = resolveOne("score", args, io);
    if (!resolved.ok) return resolved.exit;
    return withRequestedGpu("score", args, io, async (gpu) => {
      const loaded = await loadPipelineGenerator(resolved.pipeline);
      if (!loaded.ok) return printErrors(loaded.diagnostics, io);
      const g = loaded.value;
      const weights = await withAdapter(g, resolved.pipeline.method.kind === "qlora", flagValue(args, "adapter"));
      if (!weights.ok) return printErrors(weights.diagnostics, io);
      const ids = given?.ok ? ok(given.ids) : encode(g, text!, flag(args, "chat"));
      if (!ids.ok) return printErrors(ids.diagnostics, io);
      const scored = await scoreIds(g.family, g.config, weights.value, ids.value, gpu);
      if (!scored.ok) return printErrors(scored.diagnostics, io);
      const pieces = g.tokenizer.pieces(scored.value.ids);
      const { ids: scoredIds, logprobs, loss, perplexity } = scored.value;
      io.out(flag(args, "json") ? `${JSON.stringify({ ids: scoredIds, pieces, logprobs, loss, perplexity })}\n` : table(scored.value, pieces));
      return 0;
    });
  },
};

// A QLoRA pipeline's base is NF4, as its training and generation hold it: scoring reads the
// block linears' round trip, and an adapter merges into that (as PEFT merges into a
// dequantized 4-bit base), so the scores are those of the model the adapter was trained on.
async function withAdapter(g: PipelineGenerator, quantized: boolean, dir: string | undefined): Promise<Result<ReadonlyMap<string, Float64Array>>> {
  const base = quantized ? nf4RoundTrip(g.weights, blockLinearNames(g.family, g.config.dims.layers)) : g.weights;
  if (dir === undefined) return ok(base);
  const adapter = await readPeftAdapter(dir, g.family, g.config);
  return adapter.ok ? ok(mergeLora(base, adapter.value)) : adapter;
}

function encode(g: PipelineGenerator, text: string, chat: boolean): Result<number[]> {
  if (chat) return chatPromptIds(g.tokenizer, g.family.name as TemplateName, [], text);
  return ok(g.tokenizer.withSpecialTokens(g.tokenizer.encode(text)));
}

function table(s: Scored, pieces: string[]): string {
  const rows = s.ids.map((id, t) => [String(t), String(id), JSON.stringify(pieces[t]), s.logprobs[t] === null ? "-" : s.logprobs[t]!.toFixed(6)]);
  const header = ["pos", "id", "piece", "logprob"];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => [...r[c]].length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd();
  const scored = s.ids.length - 1;
  return [line(header), ...rows.map(line), `loss ${s.loss.toFixed(6)}  perplexity ${s.perplexity.toFixed(4)}  (${scored} scored token${scored === 1 ? "" : "s"})`, ""].join("\n");
}
