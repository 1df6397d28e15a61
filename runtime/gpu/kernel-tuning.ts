// Kernel tuning at device start. Where the engine has several correct kernels for one job (the
// subgroup-matrix matmul's tiling presets, the decode gemv's workgroups, the tensor-core
// attention's layouts), which is fastest depends on the card, its driver and Dawn, so the device times them itself and the engine takes the fastest. Every candidate first
// passes its probe (checkKernel): a kernel that is wrong, or does not compile here, is never
// chosen. The candidates are timed on one shared problem, its tensors uploaded once and each
// candidate bound to them once (bindKernels), so its rounds record the same bind groups. A warm-up
// first lifts the card from its idle clock (an H200 idles at 345 MHz and needs a fraction of a
// second of work to reach 1980 MHz); then the candidates run in interleaved rounds, so a clock
// change during the rounds touches all of them, and each one's best round counts. A job
// (matmul-, gemv-, attention-tuning.ts) gives one candidate per choice and takes the choice
// tuneChoice returns; the check the chosen candidate passed goes with the outcome, so the
// self-check (kernel-self-check.ts) does not run the same probe again where it has one (the
// matmul tiling's; the attention probes there cover other head dims).
//
// The outcome is kept in a JSON file (tuningFile), keyed by the adapter (its name, vendor,
// architecture and description, which on Vulkan names the driver and its version), the webgpu
// package and the candidates (their WGSL and their checks), so later starts on the same card take
// the choice without timing; any change to a kernel or its check tunes again. A choice read from
// the file is checked again (its probe: milliseconds; a few hundred for the score-matrix attention's float64 answers) before it is used, and tuned anew if it fails: the key
// cannot see everything (a driver that Dawn does not describe). A cache that cannot be read or
// written costs only the timing. The file is parsed again only where it changed since (every job
// of a start reads it).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { envAsks } from "../../stdlib/kernels/env-request.ts";
import type { KernelSpec, UniformValues } from "../../stdlib/kernels/kernel.ts";
import type { BoundSteps } from "./bound-steps.ts";
import { CommandBatch } from "./batch.ts";
import { bindKernels, boundKernelText } from "./bound-kernels.ts";
import { webgpuVersion, type GpuDevice } from "./device.ts";
import { checkKernel, runKernels, tensorOfContents, type KernelCheck, type KernelProbe, type KernelRun, type ProbeCase } from "./kernel-probe.ts";
import type { GpuTensor } from "./tensor.ts";

/** The environment variables a choice reads (process.env, or a test's). */
export type Env = Readonly<Record<string, string | undefined>>;

/** The meaning of a tuning file entry: part of every key, so a change to it leaves old entries unmatched. */
const TUNING_FORMAT = 1;

/**
 * One way to do the job: the kernel of one choice (a tiling preset, a gemv workgroup, an attention
 * layout), or the kernels of one (an attention path), timed on the shared problem as one run.
 */
export type TuningCandidate<T> = CandidateChoice<T> & KernelRun;

/** A candidate of one kernel (a tiling preset's, a gemv workgroup's, an attention layout's). */
export type KernelCandidate<T> = CandidateChoice<T> & { spec: KernelSpec; uniforms: UniformValues };

interface CandidateChoice<T> {
  /** As the user reads it (a preset's name); the tuning file names the chosen one by it. */
  name: string;
  /** What the engine takes where this candidate is chosen. */
  choice: T;
  /** Its correctness check, run before it is timed. */
  probe: KernelProbe;
}

/** The problem every candidate is timed on. */
export interface TuningProblem {
  /** What it is, e.g. "1024x4096 times (4096, 4096)ᵀ, f32". */
  label: string;
  /** Contents of every binding the candidates read and write, made only if a candidate passes. */
  tensors: () => ProbeCase["tensors"];
}

/** A job's candidates and the problem they are timed on. */
export interface TuningJob<T, C extends TuningCandidate<T> = TuningCandidate<T>> {
  candidates: C[];
  problem: TuningProblem;
}

export interface TuningOutcome {
  /** What was tuned, e.g. "matmul tiling". */
  job: string;
  /** The fastest candidate that passed its probe. */
  chosen: string;
  /** Timed now, or read from the tuning file (timed at `at`). */
  source: "measured" | "cached";
  /** When it was timed (ISO 8601). */
  at: string;
  problem: string;
  /** Milliseconds per run of each candidate timed (one dispatch, or its kernels in order), fastest first. */
  timings: { name: string; ms: number }[];
  /** Candidates that failed their probe (or a timed run), with the reason. */
  rejected: { name: string; why: string }[];
  /** The tuning file the outcome was written to, where that succeeded (measured outcomes only). */
  savedTo?: string;
  /**
   * The check the chosen candidate passed on this device at this start; none where a choice read
   * from the file was taken without one (recheck false).
   */
  check?: KernelCheck;
}

/** What tuneChoice chose: the outcome and the choice it names. */
export interface TunedChoice<T> {
  outcome: TuningOutcome;
  choice: T;
}

/** Where a tuning's choice came from, as every report words it (`sftc devices`, the bench's, e2e-train's). */
export function tuningSource(t: TuningOutcome): string {
  return t.source === "cached" ? `read from the tuning file, timed ${t.at}` : "timed at device open";
}

export interface TuningOptions {
  /** The tuning file; none: neither read nor written. */
  file?: string;
  /** Interleaved rounds over the candidates (default 3). */
  rounds?: number;
  /** Runs timed per candidate and round (default 5). */
  dispatches?: number;
  /** Milliseconds of work before timing (default 500). */
  warmupMs?: number;
  /**
   * Check a choice read from the file again before taking it (default true); false takes it as
   * read, for a caller whose own check follows (the tests of what a choice feeds on adapters
   * whose candidates cannot run).
   */
  recheck?: boolean;
  /** Told before candidates are timed (not for a choice read from the file): the first open of a card takes a while. */
  log?: (line: string) => void;
}

/** The engine's options: the tuning file of `env`, and a line on stderr before each timing. */
export function engineTuningOptions(env: Env): TuningOptions {
  return { file: tuningFile(env), log: (line) => process.stderr.write(`${line}\n`) };
}

/** The tuning file: SFT_TUNING_CACHE, else $XDG_CACHE_HOME/sftc/kernel-tuning.json, else ~/.cache/sftc/kernel-tuning.json. */
export function tuningFile(env: Env = process.env): string {
  const named = env.SFT_TUNING_CACHE?.trim();
  if (named) return named;
  return join(env.XDG_CACHE_HOME?.trim() || join(homedir(), ".cache"), "sftc", "kernel-tuning.json");
}

/** Whether SFT_TUNE=off asks for the default kernels without timing. */
export function tuningDisabled(env: Env = process.env): boolean {
  return envAsks({ variable: "SFT_TUNE", value: "off" }, env);
}

/** The key of a tuning in the file: the job, the adapter, Dawn's package and every candidate's WGSL. */
export function tuningKey(gpu: GpuDevice, job: string, candidates: readonly TuningCandidate<unknown>[], problem: TuningProblem): string {
  const { name, vendor, architecture, description, backend } = gpu.adapter;
  const hash = createHash("sha256");
  hash.update(`format ${TUNING_FORMAT}\n${problem.label}\n`);
  for (const c of candidates) {
    hash.update(`${c.name}\n${c.probe.kernel} within ${c.probe.tolerance}\n`);
    for (const k of runKernels(c)) hash.update(boundKernelText(k));
  }
  return `${job} | ${name} | ${vendor} ${architecture} ${description} | ${backend} | webgpu ${webgpuVersion()} | ${hash.digest("hex").slice(0, 16)}`;
}

/**
 * The choice of the fastest candidate of `job` that passes its probe, timed on its problem (or
 * read from the tuning file and checked again); undefined when none passes.
 */
export async function tuneChoice<T>(gpu: GpuDevice, job: string, { candidates, problem }: TuningJob<T>, options: TuningOptions = {}): Promise<TunedChoice<T> | undefined> {
  const key = tuningKey(gpu, job, candidates, problem);
  const cached = options.file === undefined ? undefined : readTunings(options.file)[key];
  const cachedChoice = cached && candidates.find((c) => c.name === cached.chosen);
  // a cached choice that fails its check again is not checked a third time below (the device would
  // not run its cases again, kernel-probe.ts keeps their outcomes; this spares building them)
  let failedCheck: KernelCheck | undefined;
  if (cached && cachedChoice) {
    if (options.recheck === false) return { outcome: { ...cached, source: "cached" }, choice: cachedChoice.choice };
    const check = await checkKernel(gpu, cachedChoice.probe);
    if (check.verified) return { outcome: { ...cached, source: "cached", check }, choice: cachedChoice.choice };
    failedCheck = check;
  }

  const rejected: TuningOutcome["rejected"] = [];
  const passed = new Map<TuningCandidate<T>, KernelCheck>();
  for (const c of candidates) {
    const check = c === cachedChoice && failedCheck ? failedCheck : await checkKernel(gpu, c.probe);
    if (check.verified) passed.set(c, check);
    else rejected.push({ name: c.name, why: check.failure ?? "not verified" });
  }
  if (passed.size === 0) return undefined;
  options.log?.(`sftc: timing ${passed.size} candidates for the ${job} on '${gpu.adapter.name}' (once per card; SFT_TUNE=off skips it)`);
  const timed = await timeCandidates(gpu, [...passed.keys()], problem, options);
  rejected.push(...timed.failed);
  const fastest = candidates.find((c) => c.name === timed.timings[0]?.name);
  if (!fastest) return undefined;
  const outcome: TuningOutcome = { job, chosen: fastest.name, source: "measured", at: new Date().toISOString(), problem: problem.label, timings: timed.timings, rejected, check: passed.get(fastest) };
  if (options.file !== undefined && writeTuning(options.file, key, outcome)) outcome.savedTo = options.file;
  return { outcome, choice: fastest.choice };
}

// Each candidate's best round (the median run of the round), fastest first; a candidate whose
// pipelines do not build or whose run raises a GPU error is left out, with the reason. Every
// candidate is timed the same way: by GPU timestamps where each of its rounds had them, else
// (for all of them) by wall time.
async function timeCandidates(
  gpu: GpuDevice,
  candidates: readonly TuningCandidate<unknown>[],
  problem: TuningProblem,
  options: TuningOptions,
): Promise<{ timings: TuningOutcome["timings"]; failed: TuningOutcome["rejected"] }> {
  const { rounds = 3, dispatches = 5, warmupMs = 500 } = options;
  const failed: TuningOutcome["rejected"] = [];
  const drop = (c: TuningCandidate<unknown>, diagnostics: readonly { message: string }[]) => failed.push({ name: c.name, why: `timed run: ${diagnostics.map((d) => d.message).join("; ")}` });
  const tensors: Record<string, GpuTensor> = {};
  const bound = new Map<TuningCandidate<unknown>, BoundSteps>();
  const best = new Map<TuningCandidate<unknown>, RoundTime>();
  try {
    for (const [name, t] of Object.entries(problem.tensors())) tensors[name] = tensorOfContents(gpu, t, `tuning ${name}`);
    for (const c of candidates) {
      const made = await bindKernels(gpu, runKernels(c), tensors);
      if (!made.ok) {
        drop(c, made.diagnostics);
        continue;
      }
      bound.set(c, made.value);
      best.set(c, { gpu: Infinity, wall: Infinity });
    }
    // a run under error scopes: a candidate that raises a GPU error leaves the timing
    const run = async (c: TuningCandidate<unknown>): Promise<RoundTime | undefined> => {
      const scoped = await gpu.scoped(() => timeRound(gpu, c.name, bound.get(c)!, dispatches));
      if (scoped.ok) return await scoped.value;
      drop(c, scoped.diagnostics);
      best.delete(c);
      return undefined;
    };
    const warmupEnd = performance.now() + warmupMs;
    while (best.size > 0 && performance.now() < warmupEnd) await run(best.keys().next().value!);
    for (let round = 0; round < rounds; round++) {
      for (const c of [...best.keys()]) {
        const t = await run(c);
        const kept = best.get(c);
        if (t && kept) best.set(c, { gpu: Math.min(kept.gpu, t.gpu), wall: Math.min(kept.wall, t.wall) }); // NaN (no timestamps) sticks
      }
    }
    const byGpu = [...best.values()].every((t) => Number.isFinite(t.gpu));
    return { timings: [...best].map(([c, t]) => ({ name: c.name, ms: byGpu ? t.gpu : t.wall })).sort((x, y) => x.ms - y.ms), failed };
  } finally {
    for (const b of bound.values()) b.destroy();
    for (const t of Object.values(tensors)) t.destroy();
  }
}

/** Milliseconds per run: by GPU timestamps (NaN where the round had none, or one not positive) and by wall time. */
interface RoundTime {
  gpu: number;
  wall: number;
}

// `repeats` back-to-back runs of the candidate `name`, bound as `run` (its kernels in order, each
// run one timed pass): the median run's GPU time, and the wall time of the whole submission over
// their number.
async function timeRound(gpu: GpuDevice, name: string, run: BoundSteps, repeats: number): Promise<RoundTime> {
  const batch = new CommandBatch(gpu, { timestamps: true });
  for (let i = 0; i < repeats; i++) {
    batch.beginTimedGroup(name);
    run.record(batch);
    batch.endTimedGroup();
  }
  const started = performance.now();
  const stamps = await batch.submit();
  const wall = (performance.now() - started) / repeats;
  if (stamps.length !== repeats || stamps.some((s) => !(s.ns > 0))) return { gpu: NaN, wall };
  const runs = stamps.map((s) => s.ns).sort((x, y) => x - y);
  return { gpu: runs[Math.floor(runs.length / 2)] / 1e6, wall };
}

type TuningEntry = Omit<TuningOutcome, "source" | "savedTo" | "check">;

// Each tuning file as last parsed, with its identity then: a start's jobs (a dozen) parse it once.
const parsedFiles = new Map<string, { identity: string; tunings: Record<string, TuningEntry> }>();

// The file's tunings by key; a missing or unreadable file has none. A file whose identity has not
// changed since it was last parsed is not parsed again; any write (ours, or another process's
// renamed over it) gives it a new one.
function readTunings(file: string): Record<string, TuningEntry> {
  // the identity is taken before the read: a write between the two costs a parse, never a stale read
  const identity = fileIdentity(file);
  if (identity === undefined) return {};
  const known = parsedFiles.get(file);
  if (known?.identity === identity) return known.tunings;
  const tunings = parseTunings(file);
  parsedFiles.set(file, { identity, tunings });
  return tunings;
}

// The file's inode, size and modification time; undefined where there is none to read.
function fileIdentity(file: string): string | undefined {
  try {
    const { ino, size, mtimeMs } = statSync(file);
    return `${ino} ${size} ${mtimeMs}`;
  } catch {
    return undefined;
  }
}

function parseTunings(file: string): Record<string, TuningEntry> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    const entries = (parsed as { tunings?: unknown }).tunings;
    return typeof entries === "object" && entries !== null ? (entries as Record<string, TuningEntry>) : {};
  } catch {
    return {};
  }
}

// Adds `outcome` to the file, written beside it and renamed over it, so a reader never sees half
// a file (two processes tuning at once may keep only one's entry: the other tunes again later);
// false when it could not be written, which leaves the next start to time again. The file is
// parsed afresh, not taken from the read cache: an identity can repeat (a reused inode, a coarse
// mtime), which a read survives (a cached choice is checked again) but a rewrite would not.
function writeTuning(file: string, key: string, outcome: TuningOutcome): boolean {
  const { source: _source, savedTo: _savedTo, check: _check, ...entry } = outcome;
  const tunings = { ...parseTunings(file), [key]: entry };
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(temporary, `${JSON.stringify({ tunings }, null, 2)}\n`);
    renameSync(temporary, file);
    return true;
  } catch {
    removeQuietly(temporary);
    return false;
  }
}

// A file that may not exist, or not be reachable (a path below a file): gone, if it was there.
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // nothing there to remove
  }
}
