// Starts the sftc language server (`sftc lsp`) for .sft files. The command is configurable
// (`sftc.server.command`, `sftc.server.args`) for checkouts where sftc is not on PATH, e.g.
// command `node`, args ["/path/to/sftc/bin/sftc.js"].
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("sftc");
  const command = config.get("server.command", "sftc");
  const args = [...config.get("server.args", []), "lsp", "--stdio"];
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient("sftc", "sftc language server", { run: server, debug: server }, {
    documentSelector: [{ scheme: "file", language: "sft" }],
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
