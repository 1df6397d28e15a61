// `sftc lsp`: the language server over stdio, for editors (the VS Code extension starts it).
import type { ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "lsp",
  summary: "run the .sft language server over stdio (diagnostics, hover, completion, definition, formatting)",
  usage: "[--stdio]",
  details:
    "Speaks the Language Server Protocol on stdin/stdout. Diagnostics come from the same checker as " +
    "`sftc check`; hover and completion from the block schemas; go to definition follows `import` and " +
    "`extends`; formatting is `sftc fmt`'s.",
  flags: [{ name: "stdio", description: "use stdin/stdout (the default and only transport)" }],
  async run(_args: ParsedArgs, _io: Io): Promise<number> {
    const { startServer } = await import("../../editor/server/server.ts");
    startServer();
    // The connection keeps the process alive until the client sends `exit`.
    await new Promise<never>(() => {});
    return 0;
  },
};
