// `sft.lock`: what a directory's pipelines depend on, pinned by content: sftc and stdlib
// versions and, per pipeline (`file.sft#name`), every `.sft` source (the pipeline file and
// its imports), the model directory's files and every dataset file. `sftc run` compares the
// current inputs with the lock and refuses drift, naming what changed.
import { readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { installRoot, sftcVersion } from "../install.ts";
import { HashCache, sha256Text, type FileFingerprint } from "./file-hash.ts";

export const lockVersion = 1;

export interface Lock {
  lockVersion: number;
  sftc: string;
  /** Hash over the stdlib's files: families, templates, schemas and kernels shape results too. */
  stdlib: string;
  /** Keyed by `file.sft#name`, the file relative to the lock's directory. */
  pipelines: Record<string, PipelineLock>;
}

export interface PipelineLock {
  /** Paths relative to the lock file's directory, `/`-separated, sorted. */
  sources: Record<string, FileFingerprint>;
  model?: { path: string; files: Record<string, FileFingerprint> };
  datasets: Record<string, FileFingerprint>;
  /** Other files the pipeline names (a tokenizer for a random-init model, ...). */
  files: Record<string, FileFingerprint>;
}

export interface LockInputs {
  /** `file.sft#name`, the file relative to the lock's directory. */
  pipeline: string;
  /** The pipeline file and every file it imports. */
  sourceFiles: readonly string[];
  /** A checkpoint directory; absent for random-init models. */
  modelDir?: string;
  datasetFiles: readonly string[];
  otherFiles: readonly string[];
}

export interface Drift {
  what: "sftc" | "stdlib" | "pipeline" | "source" | "model" | "dataset" | "file";
  path: string;
  change: "changed" | "added" | "removed";
  detail: string;
}


async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : Promise.resolve(e.isFile() ? [join(dir, e.name)] : []))),
  );
  return nested.flat().sort();
}

/** sftc's version and the content hash of its stdlib. */
export async function toolVersions(): Promise<{ sftc: string; stdlib: string }> {
  const stdlibDir = join(installRoot, "stdlib");
  const parts = await Promise.all((await listFiles(stdlibDir)).map(async (f) => `${relative(stdlibDir, f)}\0${await readFile(f, "utf8")}`));
  return { sftc: sftcVersion, stdlib: sha256Text(parts.join("\0")) };
}

const portable = (base: string, path: string) => relative(base, resolve(path)).split("\\").join("/");

/** Fingerprints every input of one pipeline; a file that can't be read is an error naming it. */
export async function computeLock(inputs: LockInputs, lockDir: string, cache: HashCache): Promise<Result<Lock>> {
  const problems: Diagnostic[] = [];
  const fingerprintAll = async (files: readonly string[], base: string) => {
    const out: Record<string, FileFingerprint> = {};
    for (const file of [...files].sort()) {
      try {
        out[portable(base, file)] = await cache.fingerprint(file);
      } catch (e) {
        problems.push(diag("SFT5603", `cannot read ${file}: ${(e as Error).message}`, { where: file }));
      }
    }
    return out;
  };
  const entry: PipelineLock = {
    sources: await fingerprintAll(inputs.sourceFiles, lockDir),
    datasets: await fingerprintAll(inputs.datasetFiles, lockDir),
    files: await fingerprintAll(inputs.otherFiles, lockDir),
  };
  if (inputs.modelDir) {
    let files: string[] = [];
    try {
      if (!(await stat(inputs.modelDir)).isDirectory()) throw new Error("not a directory");
      files = await listFiles(inputs.modelDir);
    } catch (e) {
      problems.push(diag("SFT5603", `cannot read the model directory ${inputs.modelDir}: ${(e as Error).message}`, { where: inputs.modelDir }));
    }
    entry.model = { path: portable(lockDir, inputs.modelDir), files: await fingerprintAll(files, inputs.modelDir) };
  }
  await cache.save();
  return problems.length ? fail(...problems) : ok({ lockVersion, ...(await toolVersions()), pipelines: { [inputs.pipeline]: entry } });
}

function diffFiles(what: Drift["what"], prefix: string, locked: Record<string, FileFingerprint>, current: Record<string, FileFingerprint>): Drift[] {
  const drifts: Drift[] = [];
  for (const [path, before] of Object.entries(locked)) {
    const now = current[path];
    const shown = prefix ? `${prefix}/${path}` : path;
    if (!now) drifts.push({ what, path: shown, change: "removed", detail: "no longer an input" });
    else if (now.sha256 !== before.sha256) {
      const size = now.size === before.size ? `same size ${now.size} B` : `size ${before.size} B -> ${now.size} B`;
      drifts.push({ what, path: shown, change: "changed", detail: `content changed (${size})` });
    }
  }
  for (const path of Object.keys(current)) {
    if (!(path in locked)) drifts.push({ what, path: prefix ? `${prefix}/${path}` : path, change: "added", detail: "new input" });
  }
  return drifts;
}

/** Everything that differs, for the pipelines of `current`, between the lock and now. */
export function compareLocks(locked: Lock, current: Lock): Drift[] {
  const drifts: Drift[] = [];
  if (locked.sftc !== current.sftc) drifts.push({ what: "sftc", path: "sftc", change: "changed", detail: `version ${locked.sftc} -> ${current.sftc}` });
  if (locked.stdlib !== current.stdlib) drifts.push({ what: "stdlib", path: "stdlib", change: "changed", detail: "standard library content changed" });
  for (const [name, now] of Object.entries(current.pipelines)) {
    const before = locked.pipelines[name];
    if (!before) {
      drifts.push({ what: "pipeline", path: name, change: "added", detail: "not in the lock yet" });
      continue;
    }
    drifts.push(...diffFiles("source", "", before.sources, now.sources));
    drifts.push(...diffFiles("dataset", "", before.datasets, now.datasets));
    drifts.push(...diffFiles("file", "", before.files ?? {}, now.files));
    drifts.push(...diffFiles("model", now.model?.path ?? before.model?.path ?? "", before.model?.files ?? {}, now.model?.files ?? {}));
  }
  return drifts;
}

/** The lock with `update`'s pipelines and versions written over `existing`'s. */
export function mergeLocks(existing: Lock | undefined, update: Lock): Lock {
  return { ...update, pipelines: { ...existing?.pipelines, ...update.pipelines } };
}

export function driftDiagnostic(lockPath: string, drifts: readonly Drift[]): Diagnostic {
  const lines = drifts.map((d) => `  ${d.what} ${d.path}: ${d.detail}`);
  return diag("SFT5602", `inputs changed since ${lockPath} was written:\n${lines.join("\n")}`, {
    where: lockPath,
    hint: "if the change is intended, run again with --update-lock (or `sftc lock FILE`)",
  });
}

export async function readLock(path: string): Promise<Result<Lock | undefined>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return ok(undefined);
  }
  try {
    const lock = JSON.parse(text) as Lock;
    if (lock.lockVersion !== lockVersion || typeof lock.pipelines !== "object" || lock.pipelines === null) {
      return fail(diag("SFT5601", `${path} is not an sft.lock of version ${lockVersion}`, { where: path, hint: "delete it and run `sftc lock FILE`" }));
    }
    return ok(lock);
  } catch (e) {
    return fail(diag("SFT5601", `${path} is not valid JSON: ${(e as Error).message}`, { where: path, hint: "delete it and run `sftc lock FILE`" }));
  }
}

/** Written to a temporary file and renamed, so a crash never leaves half a lock. */
export async function writeLock(path: string, lock: Lock): Promise<void> {
  await writeFile(`${path}.tmp`, `${JSON.stringify(lock, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

export const lockPathFor = (pipelineFile: string) => join(dirname(resolve(pipelineFile)), "sft.lock");
