// The commands of `sftc`. Each lives in its own module under cli/commands/, loaded only when it
// runs (so `sftc check` never loads the GPU runtime). To add a command: write
// cli/commands/NAME.ts exporting `command: Command`, and add one line below.
import type { FlagSpec, ParsedArgs } from "./args.ts";
import type { Io } from "./io.ts";

export interface Command {
  name: string;
  /** One line for `sftc help`. */
  summary: string;
  /** Usage line(s) after `sftc NAME`, e.g. `FILE.sft [--json]`. */
  usage: string;
  /** A paragraph or two for `sftc help NAME`. */
  details: string;
  flags: FlagSpec[];
  run(args: ParsedArgs, io: Io): Promise<number>;
}

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  { name: "check", summary: "check a pipeline and report every problem with its file:line:col", load: async () => (await import("./commands/check.ts")).command },
  { name: "explain", summary: "print the resolved pipeline (imports, extends, overrides, defaults) as JSON", load: async () => (await import("./commands/explain.ts")).command },
  { name: "fmt", summary: "format .sft files in place (or --check that they are formatted)", load: async () => (await import("./commands/fmt.ts")).command },
  { name: "run", summary: "train a pipeline end to end: lock, data, model, memory plan, training, export, samples", load: async () => (await import("./commands/run.ts")).command },
  { name: "plan", summary: "print the memory plan of a pipeline (weights, adapters, optimizer state, activations, KV cache, peak)", load: async () => (await import("./commands/plan.ts")).command },
  { name: "compile", summary: "show the op graph, kernel schedule or WGSL the compiler makes of a pipeline's training step", load: async () => (await import("./commands/compile.ts")).command },
  { name: "lock", summary: "pin a pipeline's inputs by content in sft.lock", load: async () => (await import("./commands/lock.ts")).command },
  { name: "runs", summary: "list recorded runs", load: async () => (await import("./commands/runs.ts")).command },
  { name: "diff", summary: "show configuration differences between two pipelines or runs", load: async () => (await import("./commands/diff.ts")).command },
  { name: "devices", summary: "list the WebGPU adapters (GPUs) sftc can use, with their features and limits", load: async () => (await import("./commands/devices.ts")).command },
  { name: "tokenize", summary: "show the ids and pieces the pipeline's tokenizer gives a text, or decode ids", load: async () => (await import("./commands/tokenize.ts")).command },
  { name: "score", summary: "per-token log-probabilities, loss and perplexity of a text or of token ids under the pipeline's model", load: async () => (await import("./commands/score.ts")).command },
  { name: "generate", summary: "generate text from a prompt with the pipeline's model and decode settings", load: async () => (await import("./commands/generate.ts")).command },
  { name: "chat", summary: "chat with the pipeline's model over stdin, turn after turn", load: async () => (await import("./commands/chat.ts")).command },
  { name: "data", summary: "preview training examples with their loss mask, or print dataset statistics", load: async () => (await import("./commands/data.ts")).command },
  { name: "export", summary: "write a PyTorch DDP/FSDP job (--target torchrun), or merge a LoRA adapter into the base model (--merge)", load: async () => (await import("./commands/export.ts")).command },
  { name: "lsp", summary: "run the .sft language server over stdio", load: async () => (await import("./commands/lsp.ts")).command },
  { name: "help", summary: "show help for sftc or one command", load: async () => (await import("./commands/help.ts")).command },
];

export function findCommand(name: string): CommandEntry | undefined {
  return commands.find((c) => c.name === name);
}
