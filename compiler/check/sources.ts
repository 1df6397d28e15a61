// Reads `.sft` sources and follows their imports. Imports resolve relative to the importing
// file; every file is read and parsed once; a cycle is reported with its chain of files.
import { readFileSync, statSync } from "node:fs";
import { basename, dirname, relative, resolve } from "node:path";
import type { ImportDecl, SftFile } from "../../grammar/ast.ts";
import { parseSft } from "../../grammar/parse.ts";
import { diag, type Diagnostic, type Span } from "../diagnostics.ts";
import type { Reporter } from "./reporter.ts";

export interface LoadedFile {
  path: string;
  ast: SftFile;
  /** The files this one imports (only those that loaded), with the declaration naming each. */
  imports: { path: string; decl: ImportDecl }[];
}

export interface Program {
  entry: string;
  files: Map<string, LoadedFile>;
  /** Source text of every file read, by path, for code frames. */
  texts: Map<string, string>;
}

/** Texts that take precedence over the disk (an editor's unsaved buffers, tests). */
export type Overlay = ReadonlyMap<string, string>;

type ReadOutcome = { text: string } | { problem: "missing" | "directory" | "binary" | "unreadable"; detail: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads a source file as UTF-8 text, telling apart the ways it can fail. */
export function readSource(path: string, overlay?: Overlay): ReadOutcome {
  const buffered = overlay?.get(path);
  if (buffered !== undefined) return { text: buffered };
  let bytes: Buffer;
  try {
    if (statSync(path).isDirectory()) return { problem: "directory", detail: "is a directory, not a file" };
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { problem: "missing", detail: "does not exist" };
    return { problem: "unreadable", detail: `cannot be read (${code ?? String(e)})` };
  }
  if (bytes.includes(0)) return { problem: "binary", detail: "is not a text file (it contains NUL bytes)" };
  try {
    return { text: utf8.decode(bytes).replace(/^\uFEFF/, "") };
  } catch {
    return { problem: "binary", detail: "is not UTF-8 text" };
  }
}

/** Loads `entry` and everything it imports. Problems go to `reporter`; nothing throws. */
export function loadProgram(entry: string, reporter: Reporter, overlay?: Overlay): Program {
  const program: Program = { entry, files: new Map(), texts: new Map() };
  const root = dirname(entry);
  const display = (p: string) => relative(root, p) || p;

  const first = readSource(entry, overlay);
  if (!("text" in first)) {
    reporter.report(diag("SFT2019", `cannot read ${basename(entry)}: it ${first.detail}`, { where: entry, hint: "give the path of a `.sft` file" }));
    return program;
  }

  const visit = (path: string, text: string, stack: string[]): void => {
    program.texts.set(path, text);
    const parsed = parseSft(text, path);
    reporter.reportAll(parsed.diagnostics);
    const loaded: LoadedFile = { path, ast: parsed.ast, imports: [] };
    program.files.set(path, loaded);
    for (const decl of parsed.ast.imports) {
      const target = resolve(dirname(path), decl.path.value);
      const chainStack = [...stack, path];
      if (chainStack.includes(target)) {
        const chain = [...chainStack.slice(chainStack.indexOf(target)), target].map(display).join(" -> ");
        reporter.report(diag("SFT2011", `import cycle: ${chain}`, { span: decl.path.span, hint: "move what the files of the cycle share into a file that they all import" }));
        continue;
      }
      if (program.files.has(target)) {
        loaded.imports.push({ path: target, decl });
        continue;
      }
      const read = readSource(target, overlay);
      if (!("text" in read)) {
        reporter.report(importProblem(decl, read, display(target)));
        continue;
      }
      loaded.imports.push({ path: target, decl });
      visit(target, read.text, chainStack);
    }
  };
  visit(entry, first.text, []);
  return program;
}

function importProblem(decl: ImportDecl, read: Exclude<ReadOutcome, { text: string }>, shown: string): Diagnostic {
  const span: Span = decl.path.span;
  if (read.problem === "missing") {
    return diag("SFT2010", `cannot import ${decl.path.raw}: ${shown} does not exist`, {
      span,
      hint: "import paths are relative to the directory of the importing file",
    });
  }
  return diag("SFT2019", `cannot import ${decl.path.raw}: ${shown} ${read.detail}`, { span, hint: "import a `.sft` file" });
}
