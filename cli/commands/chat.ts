// `sftc chat FILE.sft`: a multi-turn conversation over stdin with the pipeline's model. Each
// message is written into the family's chat template after the earlier turns (the model's own
// answers included), the answer streams to stdout, and `/reset` and `/exit` are commands.
import { createInterface } from "node:readline";
import type { ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import type { Turn } from "../../runtime/data/conversation.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import type { PipelineGenerator } from "../../runtime/generate/pipeline-model.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { answer, generatorFlags, printErrors, withGenerator } from "./generate.ts";

export const command: Command = {
  name: "chat",
  summary: "chat with the pipeline's model over stdin, turn after turn",
  usage: "FILE.sft[#PIPELINE] [--adapter RUN_DIR] [--no-cache | --gpu] [--set decode.KEY=VALUE]...",
  details:
    "Reads one message per line from stdin and answers it with the pipeline's model and decode settings, " +
    "the conversation so far written into the family's chat template (the same prompt format training uses). " +
    "When the conversation no longer fits the model's positions, the oldest turns are left out. " +
    "`/reset` starts a new conversation; `/exit` (or the end of input) quits. `--adapter DIR` applies a PEFT " +
    "LoRA adapter directory.",
  flags: [...generatorFlags, ...pipelineFlags],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    return withGenerator("chat", args, io, (generator) => {
      io.err("sftc chat: one message per line; /reset starts over, /exit quits\n");
      return chatSession(generator, createInterface({ input: process.stdin, terminal: false }), io);
    });
  },
};

/** Answers every line of `lines` as the next user turn; returns the exit code. */
export async function chatSession(g: PipelineGenerator, lines: AsyncIterable<string>, io: Io): Promise<number> {
  const history: Turn[] = [];
  for await (const raw of lines) {
    const message = raw.trim();
    if (message === "") continue;
    if (message === "/exit") break;
    if (message === "/reset") {
      history.length = 0;
      io.err("sftc chat: new conversation\n");
      continue;
    }
    let ids = chatPromptIds(g.tokenizer, g.family.name as TemplateName, history, message);
    // leave out the oldest turns until the prompt leaves room to answer
    while (ids.ok && ids.value.length >= g.model.maxPositions && history.length > 0) {
      history.shift();
      ids = chatPromptIds(g.tokenizer, g.family.name as TemplateName, history, message);
    }
    if (!ids.ok) return printErrors(ids.diagnostics, io);
    const result = await answer(g, ids.value, (text) => io.out(text));
    if (!result.ok) {
      printErrors(result.diagnostics, io);
      continue;
    }
    history.push({ user: message, assistant: result.value.sequences[0].text });
  }
  return 0;
}
