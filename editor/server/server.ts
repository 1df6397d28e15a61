// The `.sft` language server (LSP over stdio), started by `sftc lsp` and by the VS Code
// extension. It runs the compiler's own checker, so editors show exactly the diagnostics,
// codes and spans that `sftc check` prints.
import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  createConnection,
  DiagnosticSeverity,
  ProposedFeatures,
  TextDocuments,
  TextDocumentSyncKind,
  type Connection,
  type Diagnostic as LspDiagnostic,
} from "vscode-languageserver/node.js";
import { TextDocument } from "vscode-languageserver-textdocument";
import { checkFile } from "../../compiler/check/check.ts";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import { formatSft } from "../../grammar/format.ts";
import { parseSft } from "../../grammar/parse.ts";
import { completionsAt } from "./completion.ts";
import { definitionAt, rangeOf } from "./definition.ts";
import { hoverAt } from "./hover.ts";

const severities = { error: DiagnosticSeverity.Error, warning: DiagnosticSeverity.Warning, info: DiagnosticSeverity.Information };

function toLsp(d: Diagnostic): LspDiagnostic {
  const message = d.hint ? `${d.message}\n${d.hint}` : d.message;
  const range = d.span ? rangeOf(d.span) : { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } };
  return { range, severity: severities[d.severity], code: d.code, source: "sftc", message };
}

export function startServer(connection: Connection = createConnection(ProposedFeatures.all)): void {
  const documents = new TextDocuments(TextDocument);
  /** Files we published diagnostics for, per checked document, so fixed ones get cleared. */
  const published = new Map<string, Set<string>>();

  const pathOf = (uri: string) => fileURLToPath(uri);
  const readSource = (path: string) => documents.get(pathToFileURL(path).href)?.getText() ?? readOrUndefined(path);

  function validate(doc: TextDocument): void {
    const path = pathOf(doc.uri);
    const overlay = new Map(documents.all().map((d) => [pathOf(d.uri), d.getText()]));
    const { diagnostics } = checkFile(path, { all: true, overlay });
    const byFile = new Map<string, LspDiagnostic[]>([[path, []]]);
    for (const d of diagnostics) {
      const file = d.span?.file ?? path;
      if (!file.endsWith(".sft")) continue; // overrides and non-source locations
      byFile.set(file, [...(byFile.get(file) ?? []), toLsp(d)]);
    }
    for (const stale of published.get(path) ?? []) if (!byFile.has(stale)) byFile.set(stale, []);
    for (const [file, list] of byFile) connection.sendDiagnostics({ uri: pathToFileURL(file).href, diagnostics: list });
    published.set(path, new Set([...byFile.keys()]));
  }

  connection.onInitialize(() => ({
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      hoverProvider: true,
      completionProvider: { triggerCharacters: [" ", "=", "["] },
      definitionProvider: true,
      documentFormattingProvider: true,
    },
    serverInfo: { name: "sftc" },
  }));

  documents.onDidChangeContent((change) => validate(change.document));
  documents.onDidClose((e) => connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] }));

  const parsed = (uri: string) => {
    const doc = documents.get(uri);
    return doc ? { doc, ast: parseSft(doc.getText(), pathOf(uri)).ast } : undefined;
  };

  connection.onHover(({ textDocument, position }) => {
    const p = parsed(textDocument.uri);
    return p ? (hoverAt(p.ast, p.doc.offsetAt(position)) ?? null) : null;
  });

  connection.onCompletion(({ textDocument, position }) => {
    const p = parsed(textDocument.uri);
    if (!p) return [];
    const linePrefix = p.doc.getText({ start: { line: position.line, character: 0 }, end: position });
    return completionsAt(p.ast, p.doc.offsetAt(position), linePrefix);
  });

  connection.onDefinition(({ textDocument, position }) => {
    const p = parsed(textDocument.uri);
    return p ? (definitionAt(p.ast, pathOf(textDocument.uri), p.doc.offsetAt(position), readSource) ?? null) : null;
  });

  connection.onDocumentFormatting(({ textDocument }) => {
    const doc = documents.get(textDocument.uri);
    if (!doc) return [];
    const formatted = formatSft(doc.getText(), pathOf(textDocument.uri));
    if (!formatted.ok || formatted.value === doc.getText()) return [];
    return [{ range: { start: { line: 0, character: 0 }, end: doc.positionAt(doc.getText().length) }, newText: formatted.value }];
  });

  documents.listen(connection);
  connection.listen();
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
