#!/usr/bin/env node
// Bundles the CLI into dist/sftc.mjs (npm packages stay external), so `sftc` starts without
// compiling TypeScript on the fly. Code splitting keeps each command's modules, and the npm
// packages they import (webgpu, the language server...), out of start-up until the command
// runs. bin/sftc.js uses the bundle only while it is newer than every source file; otherwise
// it runs the sources through tsx.
import { build } from "esbuild";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
// The output directory may be given (tests build elsewhere); it must sit inside the install
// so the bundle resolves its npm packages and finds sftc's package.json.
const outdir = process.argv[2] ?? join(root, "dist");
await build({
  entryPoints: { sftc: join(root, "cli", "main.ts") },
  outdir,
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});
