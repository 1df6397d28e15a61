// The packaged extension: a zip that holds the manifest, and every file the manifest names.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { unzipSync, zipSync } from "fflate";
import { buildVsix } from "../../editor/build-vsix.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("the .vsix round-trips as a zip with the VS Code package layout", () => {
  const entries = unzipSync(zipSync(buildVsix()));
  const names = Object.keys(entries).sort();
  for (const required of ["[Content_Types].xml", "extension.vsixmanifest", "extension/package.json"]) {
    assert.ok(names.includes(required), `missing ${required} in ${names.join(", ")}`);
  }
  const manifest = JSON.parse(decode(entries["extension/package.json"]));
  const xml = decode(entries["extension.vsixmanifest"]);
  assert.ok(xml.includes(`Id="${manifest.name}"`) && xml.includes(`Version="${manifest.version}"`), xml);
  assert.ok(xml.includes(`Publisher="${manifest.publisher}"`));
});

test("every file the extension manifest points to is packaged and well-formed", () => {
  const entries = unzipSync(zipSync(buildVsix()));
  const manifest = JSON.parse(decode(entries["extension/package.json"]));
  const paths: string[] = [
    ...manifest.contributes.languages.map((l: { configuration: string }) => l.configuration),
    ...manifest.contributes.grammars.map((g: { path: string }) => g.path),
    ...manifest.contributes.snippets.map((s: { path: string }) => s.path),
    ...(manifest.main ? [manifest.main] : []),
  ];
  assert.ok(paths.length >= 3);
  for (const path of paths) {
    const entry = `extension/${path.replace(/^\.\//, "")}`;
    assert.ok(entries[entry], `manifest names ${path} but the package lacks ${entry}`);
    if (entry.endsWith(".json")) JSON.parse(decode(entries[entry]));
  }
  const grammar = JSON.parse(decode(entries["extension/syntaxes/sft.tmLanguage.json"]));
  assert.is(grammar.scopeName, manifest.contributes.grammars[0].scopeName);
});

test("the extension's language client and its dependencies are bundled", () => {
  const entries = unzipSync(zipSync(buildVsix()));
  const manifest = JSON.parse(decode(entries["extension/package.json"]));
  assert.is(manifest.main, "./extension.js");
  for (const dep of ["vscode-languageclient", "vscode-languageserver-protocol", "vscode-jsonrpc", "semver", "minimatch"]) {
    assert.ok(entries[`extension/node_modules/${dep}/package.json`], `missing ${dep}`);
  }
  assert.ok(decode(entries["extension/extension.js"]).includes('"lsp"'), "the extension starts `sftc lsp`");
});

test("snippets cover every block kind", () => {
  const entries = unzipSync(zipSync(buildVsix()));
  const snippets = JSON.parse(decode(entries["extension/snippets/sft.json"])) as Record<string, { prefix: string }>;
  const prefixes = new Set(Object.values(snippets).map((s) => s.prefix));
  for (const block of ["sft", "import", "pipeline", "model", "dataset", "method", "train", "decode"]) {
    assert.ok(prefixes.has(block), `no snippet for ${block}`);
  }
});

test.run();
