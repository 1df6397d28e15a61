// `sftc tokenize FILE.sft --text TEXT` / `--ids 1,2,3`: the pipeline's tokenizer on one string,
// to see the ids and pieces a prompt becomes (or the text ids decode to) before training on them.
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { flag, flagValue, type ParsedArgs, parseIds } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";
import { loadTokenizer, type TokenizerKind } from "../../runtime/tokenizer/tokenizer.ts";

export const command: Command = {
  name: "tokenize",
  summary: "show the ids and pieces the pipeline's tokenizer gives a text, or decode ids",
  usage: 'FILE.sft[#PIPELINE] (--text "TEXT" | --ids 1,2,3) [--special] [--json] [--pipeline NAME] [--set PATH=VALUE]...',
  details:
    "Loads the tokenizer of the pipeline's model (`model.tokenizer`, else `model.path`) and prints, for " +
    "`--text`, one line per token with its id and vocabulary piece, then the ids on one line; for `--ids`, the " +
    "decoded text. `--special` adds the family's special tokens around the text as its " +
    "build_inputs_with_special_tokens does (ChatGLM: [gMASK] and sop). `--json` prints " +
    '{"ids", "pieces", "text"}. Exits 1 when the pipeline has errors or the tokenizer cannot be loaded.',
  flags: [
    { name: "text", value: "one", placeholder: "TEXT", description: "the text to encode" },
    { name: "ids", value: "one", placeholder: "1,2,3", description: "comma-separated token ids to decode" },
    { name: "special", description: "add the family's special tokens around the encoded text" },
    { name: "json", description: "print the ids, pieces and text as JSON" },
    ...pipelineFlags,
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const text = flagValue(args, "text");
    const idList = flagValue(args, "ids");
    if ((text === undefined) === (idList === undefined)) return usageError(io, "tokenize", "give either --text TEXT or --ids 1,2,3");
    const decodeIds = idList === undefined ? null : parseIds(idList);
    if (decodeIds && !decodeIds.ok) return usageError(io, "tokenize", decodeIds.error);

    const resolved = resolveOne("tokenize", args, io);
    if (!resolved.ok) return resolved.exit;
    const { model } = resolved.pipeline;
    // `tokenizer` names the model directory or a tokenizer file in one (`init = random` models)
    const path = String(model.tokenizer ?? model.path);
    const dir = existsSync(path) && statSync(path).isFile() ? dirname(path) : path;
    const loaded = await loadTokenizer(dir, model.family as TokenizerKind);
    if (!loaded.ok) {
      for (const d of loaded.diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
      return 1;
    }
    const tokenizer = loaded.value;

    const encoded = text === undefined ? null : tokenizer.encode(text);
    const ids = decodeIds?.ok ? decodeIds.ids : flag(args, "special") ? tokenizer.withSpecialTokens(encoded!) : encoded!;
    const pieces = tokenizer.pieces(ids);
    const decoded = text ?? tokenizer.decode(ids);
    if (flag(args, "json")) {
      io.out(`${JSON.stringify({ ids, pieces, text: decoded })}\n`);
      return 0;
    }
    if (decodeIds) {
      io.out(`${decoded}\n`);
      return 0;
    }
    const width = Math.max(...ids.map((id) => String(id).length), 1);
    io.out(`${ids.length} token${ids.length === 1 ? "" : "s"}\n`);
    ids.forEach((id, i) => io.out(`  ${String(id).padStart(width)}  ${JSON.stringify(pieces[i])}\n`));
    io.out(`ids: ${ids.join(",")}\n`);
    return 0;
  },
};
