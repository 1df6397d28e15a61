// The language server, driven by a real JSON-RPC client over stdio (`sftc lsp`): diagnostics
// on open and on change, hover, completion, go to definition and formatting.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import rpc from "vscode-jsonrpc/node.js";

const root = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "sftc-lsp-"));
const basePath = join(dir, "base.sft");
const mainPath = join(dir, "main.sft");
writeFileSync(basePath, 'sft 1\n\npipeline base {\n  train { lr = 1e-4 }\n}\n');
const mainText = [
  "sft 1",
  'import "./base.sft"',
  "pipeline main extends base {",
  "  model chatglm2 { init = random, size = tiny }",
  '  dataset belle { path = "d.json" }',
  "  method lora { rnk = 8 }",
  "  decode top_p {  }",
  "}",
  "",
].join("\n");
writeFileSync(mainPath, mainText);

interface Published {
  uri: string;
  diagnostics: { code: string; message: string; range: { start: { line: number; character: number } } }[];
}

let child: ChildProcess;
let connection: rpc.MessageConnection;
const published: Published[] = [];
const waiters: ((p: Published) => void)[] = [];

function nextDiagnostics(uri: string): Promise<Published> {
  return new Promise((resolve) => waiters.push((p) => p.uri === uri && resolve(p)));
}

test.before(async () => {
  child = spawn(process.execPath, [join(root, "bin", "sftc.js"), "lsp", "--stdio"], { stdio: ["pipe", "pipe", "inherit"] });
  connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout!), new rpc.StreamMessageWriter(child.stdin!));
  connection.onNotification("textDocument/publishDiagnostics", (p: Published) => {
    published.push(p);
    for (const w of waiters) w(p);
  });
  connection.listen();
  const init = await connection.sendRequest("initialize", { processId: process.pid, rootUri: pathToFileURL(dir).href, capabilities: {} });
  assert.ok((init as { capabilities: { hoverProvider: boolean } }).capabilities.hoverProvider);
  await connection.sendNotification("initialized", {});
});

test.after(async () => {
  await connection.sendRequest("shutdown");
  await connection.sendNotification("exit");
  await new Promise((r) => child.once("exit", r));
  connection.dispose();
});

const mainUri = pathToFileURL(mainPath).href;
const position = (line: number, text: string, after = 0) => ({ line, character: mainText.split("\n")[line].indexOf(text) + after });

test("opening a document publishes the checker's diagnostics with codes and positions", async () => {
  const received = nextDiagnostics(mainUri);
  await connection.sendNotification("textDocument/didOpen", { textDocument: { uri: mainUri, languageId: "sft", version: 1, text: mainText } });
  const { diagnostics } = await received;
  const unknownKey = diagnostics.find((d) => d.code === "SFT2002");
  assert.ok(unknownKey, JSON.stringify(diagnostics));
  assert.ok(unknownKey!.message.includes("rnk") && unknownKey!.message.includes("rank"), unknownKey!.message);
  assert.equal(unknownKey!.range.start, position(5, "rnk"));
});

test("editing the document republishes: fixing the key clears its error", async () => {
  const received = nextDiagnostics(mainUri);
  const fixed = mainText.replace("rnk", "rank");
  await connection.sendNotification("textDocument/didChange", { textDocument: { uri: mainUri, version: 2 }, contentChanges: [{ text: fixed }] });
  const { diagnostics } = await received;
  assert.not.ok(diagnostics.some((d) => d.code === "SFT2002"), JSON.stringify(diagnostics));
  await connection.sendNotification("textDocument/didChange", { textDocument: { uri: mainUri, version: 3 }, contentChanges: [{ text: mainText }] });
});

test("hover over a key shows its schema documentation", async () => {
  const hover = (await connection.sendRequest("textDocument/hover", { textDocument: { uri: mainUri }, position: position(3, "init", 1) })) as {
    contents: { value: string };
  };
  assert.ok(hover && hover.contents.value.includes("**init**"), JSON.stringify(hover));
});

test("completion offers the keys a block accepts and a key's enum values", async () => {
  const keys = (await connection.sendRequest("textDocument/completion", { textDocument: { uri: mainUri }, position: { line: 6, character: 16 } })) as { label: string }[];
  const labels = keys.map((k) => k.label);
  assert.ok(labels.includes("top_p") && labels.includes("temperature"), labels.join(", "));
  const kinds = (await connection.sendRequest("textDocument/completion", { textDocument: { uri: mainUri }, position: position(3, "chatglm2", 3) })) as { label: string }[];
  assert.ok(kinds.some((k) => k.label === "baichuan13b"), JSON.stringify(kinds));
});

test("go to definition follows extends into the imported file, and the import path to the file", async () => {
  const parent = (await connection.sendRequest("textDocument/definition", { textDocument: { uri: mainUri }, position: position(2, "base", 1) })) as {
    uri: string;
    range: { start: { line: number } };
  };
  assert.is(parent.uri, pathToFileURL(basePath).href);
  assert.is(parent.range.start.line, 2);
  const file = (await connection.sendRequest("textDocument/definition", { textDocument: { uri: mainUri }, position: position(1, "base.sft") })) as { uri: string };
  assert.is(file.uri, pathToFileURL(basePath).href);
});

test("formatting returns the formatter's layout as one edit", async () => {
  const edits = (await connection.sendRequest("textDocument/formatting", { textDocument: { uri: mainUri }, options: { tabSize: 2, insertSpaces: true } })) as { newText: string }[];
  assert.is(edits.length, 1);
  assert.ok(edits[0].newText.includes("    init = random\n"), edits[0].newText);
});

test.run();
