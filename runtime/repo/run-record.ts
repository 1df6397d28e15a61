// Run records: every run gets `runs/<pipeline>/<run-id>/manifest.json` with the resolved
// pipeline, the lock, the state of the git repository the pipeline lives in, the seed, the
// device and the final metrics, so any result can be traced to exactly what produced it.
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { Lock } from "./lock.ts";

const run = promisify(execFile);

export interface GitState {
  commit: string;
  dirty: boolean;
}

export interface RunManifest {
  runId: string;
  pipeline: string;
  startedAt: string;
  finishedAt?: string;
  /** `stopped`: ended by a signal after saving a checkpoint; `sftc run --resume` continues it. */
  status: "running" | "finished" | "stopped" | "failed";
  resolved: unknown;
  lock?: Lock;
  git: GitState | null;
  seed: number;
  device: string;
  metrics: Record<string, number>;
}

/** The commit and dirty state of the repository holding `dir`, or null outside git. */
export async function gitState(dir: string): Promise<GitState | null> {
  try {
    const { stdout: commit } = await run("git", ["rev-parse", "HEAD"], { cwd: dir });
    const { stdout: status } = await run("git", ["status", "--porcelain"], { cwd: dir });
    return { commit: commit.trim(), dirty: status.trim().length > 0 };
  } catch {
    return null;
  }
}

/** Sortable and unique enough: UTC time to the second plus 4 random hex digits. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${stamp}-${Math.floor(Math.random() * 0x10000).toString(16).padStart(4, "0")}`;
}

export async function writeManifest(runDir: string, manifest: RunManifest): Promise<void> {
  await mkdir(runDir, { recursive: true });
  const path = join(runDir, "manifest.json");
  await writeFile(`${path}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

export async function readManifest(runDir: string): Promise<Result<RunManifest>> {
  const path = join(runDir, "manifest.json");
  try {
    return ok(JSON.parse(await readFile(path, "utf8")) as RunManifest);
  } catch (e) {
    return fail(diag("SFT5604", `cannot read ${path}: ${(e as Error).message}`, { where: path }));
  }
}

export interface RunSummary {
  dir: string;
  manifest: RunManifest;
}

/** Every run under `runsDir` (`<pipeline>/<run-id>/manifest.json`), oldest first. */
export async function listRuns(runsDir: string): Promise<RunSummary[]> {
  const runs: RunSummary[] = [];
  const pipelines = await readdir(runsDir, { withFileTypes: true }).catch(() => []);
  for (const p of pipelines.filter((e) => e.isDirectory())) {
    for (const r of await readdir(join(runsDir, p.name), { withFileTypes: true })) {
      if (!r.isDirectory()) continue;
      const manifest = await readManifest(join(runsDir, p.name, r.name));
      if (manifest.ok) runs.push({ dir: join(runsDir, p.name, r.name), manifest: manifest.value });
    }
  }
  return runs.sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt) || a.dir.localeCompare(b.dir));
}

export interface ValueChange {
  path: string;
  before: unknown;
  after: unknown;
}

/** Leaf-by-leaf differences between two JSON values (`train.lr`, `datasets[1].path`, ...). */
export function diffJson(before: unknown, after: unknown, path = ""): ValueChange[] {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => diffJson(before[k], after[k], path ? `${path}.${k}` : k));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const n = Math.max(before.length, after.length);
    return Array.from({ length: n }, (_, i) => diffJson(before[i], after[i], `${path}[${i}]`)).flat();
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [{ path, before, after }];
}

export const runDirFor = (outputRoot: string, pipeline: string, runId: string) => join(outputRoot, pipeline, runId);
