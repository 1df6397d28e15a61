// Packages editor/vscode/ as a .vsix (the zip layout VS Code installs from): the extension's
// files under `extension/`, plus `extension.vsixmanifest` and `[Content_Types].xml`.
// Usage: node bin/run-ts.js editor/build-vsix.ts [OUT.vsix]
import { readFileSync, readdirSync, statSync, mkdirSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join, relative, resolve, extname } from "node:path";
import { zipSync } from "fflate";

const extensionDir = resolve(import.meta.dirname, "vscode");

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  displayName: string;
  description: string;
  version: string;
  publisher: string;
  license: string;
  engines: { vscode: string };
  categories: string[];
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

const escapeXml = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

function vsixManifest(m: Manifest): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">
  <Metadata>
    <Identity Language="en-US" Id="${escapeXml(m.name)}" Version="${escapeXml(m.version)}" Publisher="${escapeXml(m.publisher)}" />
    <DisplayName>${escapeXml(m.displayName)}</DisplayName>
    <Description xml:space="preserve">${escapeXml(m.description)}</Description>
    <Categories>${escapeXml(m.categories.join(","))}</Categories>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="${escapeXml(m.engines.vscode)}" />
    </Properties>
  </Metadata>
  <Installation>
    <InstallationTarget Id="Microsoft.VisualStudio.Code" />
  </Installation>
  <Dependencies />
  <Assets>
    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true" />
  </Assets>
</PackageManifest>
`;
}

function contentTypes(extensions: string[]): string {
  const types: Record<string, string> = { ".json": "application/json", ".vsixmanifest": "text/xml", ".js": "application/javascript", ".md": "text/markdown" };
  const defaults = [...new Set([".vsixmanifest", ...extensions])]
    .map((ext) => `  <Default Extension="${ext}" ContentType="${types[ext] ?? "application/octet-stream"}" />`)
    .join("\n");
  return `<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
${defaults}
</Types>
`;
}

const repoModules = resolve(import.meta.dirname, "..", "node_modules");

/** The extension's runtime dependencies and theirs, as installed in the repository. */
function dependencyClosure(names: readonly string[], seen = new Set<string>()): Set<string> {
  for (const name of names) {
    if (seen.has(name)) continue;
    seen.add(name);
    const pkg = JSON.parse(readFileSync(join(repoModules, name, "package.json"), "utf8")) as Manifest;
    dependencyClosure(Object.keys(pkg.dependencies ?? {}), seen);
  }
  return seen;
}

/** Builds the .vsix in memory: entry path -> bytes. */
export function buildVsix(): Record<string, Uint8Array> {
  const manifest = JSON.parse(readFileSync(join(extensionDir, "package.json"), "utf8")) as Manifest;
  const files: Record<string, Uint8Array> = {};
  for (const path of listFiles(extensionDir)) {
    files[`extension/${relative(extensionDir, path).split("\\").join("/")}`] = readFileSync(path);
  }
  for (const dep of dependencyClosure(Object.keys(manifest.dependencies ?? {}))) {
    for (const path of listFiles(join(repoModules, dep))) {
      files[`extension/node_modules/${dep}/${relative(join(repoModules, dep), path).split("\\").join("/")}`] = readFileSync(path);
    }
  }
  const encoder = new TextEncoder();
  files["extension.vsixmanifest"] = encoder.encode(vsixManifest(manifest));
  files["[Content_Types].xml"] = encoder.encode(contentTypes(Object.keys(files).map((p) => extname(p)).filter(Boolean)));
  return files;
}

export function writeVsix(out: string): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(`${out}.tmp`, zipSync(buildVsix(), { level: 9 }));
  renameSync(`${out}.tmp`, out);
}

if (process.argv[1] === import.meta.filename) {
  const manifest = JSON.parse(readFileSync(join(extensionDir, "package.json"), "utf8")) as Manifest;
  const out = resolve(process.argv[2] ?? join("dist", `${manifest.name}-${manifest.version}.vsix`));
  writeVsix(out);
  console.log(`wrote ${relative(process.cwd(), out)}`);
}
