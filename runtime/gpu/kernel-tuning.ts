// Kernel tuning at device start. Where the engine has several correct kernels for one job (the
// subgroup-matrix matmul's tiling presets), which is fastest depends on the card, its driver and
// Dawn, so the device times them itself and the engine takes the fastest. Every candidate first
// passes its probe (checkKernel): a kernel that is wrong, or does not compile here, is never
// chosen. The candidates are timed on one shared problem, its tensors uploaded once. A warm-up
// first lifts the card from its idle clock (an H200 idles at 345 MHz and needs a fraction of a
// second of work to reach 1980 MHz); then the candidates run in interleaved rounds, so a clock
// change during the rounds touches all of them, and each one's best round counts.
//
// The outcome is kept in a JSON file (tuningFile), keyed by the adapter, the webgpu package and
// the candidates' WGSL, so later starts on the same card, driver, Dawn and sftc take the choice
// without timing; any change to a kernel's source tunes again. A cache that cannot be read or
// written costs only the timing.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { kernelSource, type KernelSpec, type UniformValues } from "../../stdlib/kernels/kernel.ts";
import { CommandBatch } from "./batch.ts";
import { webgpuVersion, type GpuDevice } from "./device.ts";
import { checkKernel, type KernelProbe, type ProbeCase } from "./kernel-probe.ts";
import { pipelinesOf } from "./pipelines.ts";
import { uploadTensor, type GpuTensor } from "./tensor.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** One kernel that can do the job. */
export interface TuningCandidate {
  /** As the user reads it (a preset's name). */
  name: string;
  /** Its correctness check, run before it is timed. */
  probe: KernelProbe;
  /** The kernel timed on the shared problem, with its uniforms. */
  spec: KernelSpec;
  uniforms: UniformValues;
}

/** The problem every candidate is timed on. */
export interface TuningProblem {
  /** What it is, e.g. "1024x4096 times (4096, 4096)ᵀ, f32". */
  label: string;
  /** Contents of every binding the candidates read and write, made only if a candidate passes. */
  tensors: () => ProbeCase["tensors"];
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
  /** Milliseconds per dispatch of each candidate timed, fastest first. */
  timings: { name: string; ms: number }[];
  /** Candidates that failed their probe, with the reason. */
  rejected: { name: string; why: string }[];
}

export interface TuningOptions {
  /** The tuning file; none: neither read nor written. */
  file?: string;
  /** Interleaved rounds over the candidates (default 3). */
  rounds?: number;
  /** Dispatches timed per candidate and round (default 5). */
  dispatches?: number;
  /** Milliseconds of work before timing (default 500). */
  warmupMs?: number;
}

/** The tuning file: SFT_TUNING_CACHE, else $XDG_CACHE_HOME/sftc/kernel-tuning.json, else ~/.cache/sftc/kernel-tuning.json. */
export function tuningFile(env: Env = process.env): string {
  const named = env.SFT_TUNING_CACHE?.trim();
  if (named) return named;
  return join(env.XDG_CACHE_HOME?.trim() || join(homedir(), ".cache"), "sftc", "kernel-tuning.json");
}

/** Whether SFT_TUNE=off asks for the default kernels without timing. */
export function tuningDisabled(env: Env = process.env): boolean {
  return env.SFT_TUNE?.trim() === "off";
}

/** The key of a tuning in the file: the job, the adapter, Dawn's package and every candidate's WGSL. */
export function tuningKey(gpu: GpuDevice, job: string, candidates: readonly TuningCandidate[], problem: TuningProblem): string {
  const { name, vendor, architecture, description, backend } = gpu.adapter;
  const hash = createHash("sha256");
  for (const c of candidates) hash.update(`${c.name}\n${kernelSource(c.spec)}\n`);
  hash.update(problem.label);
  return `${job} | ${name} | ${vendor} ${architecture} ${description} | ${backend} | webgpu ${webgpuVersion()} | ${hash.digest("hex").slice(0, 16)}`;
}

/**
 * The fastest of `candidates` that passes its probe, timed on `problem` (or read from the tuning
 * file); undefined when none passes.
 */
export async function tuneKernel(gpu: GpuDevice, job: string, candidates: readonly TuningCandidate[], problem: TuningProblem, options: TuningOptions = {}): Promise<TuningOutcome | undefined> {
  const key = tuningKey(gpu, job, candidates, problem);
  const cached = options.file === undefined ? undefined : readTunings(options.file)[key];
  if (cached && candidates.some((c) => c.name === cached.chosen)) return { ...cached, source: "cached" };

  const rejected: TuningOutcome["rejected"] = [];
  const passed: TuningCandidate[] = [];
  for (const c of candidates) {
    const check = await checkKernel(gpu, c.probe);
    if (check.verified) passed.push(c);
    else rejected.push({ name: c.name, why: check.failure ?? "not verified" });
  }
  if (passed.length === 0) return undefined;
  const timings = await timeCandidates(gpu, passed, problem, options);
  const outcome: TuningOutcome = { job, chosen: timings[0].name, source: "measured", at: new Date().toISOString(), problem: problem.label, timings, rejected };
  if (options.file !== undefined) writeTuning(options.file, key, outcome);
  return outcome;
}

// Each candidate's best round (the median dispatch of the round), fastest first.
async function timeCandidates(gpu: GpuDevice, candidates: readonly TuningCandidate[], problem: TuningProblem, options: TuningOptions): Promise<TuningOutcome["timings"]> {
  const { rounds = 3, dispatches = 5, warmupMs = 500 } = options;
  const tensors: Record<string, GpuTensor> = {};
  for (const [name, t] of Object.entries(problem.tensors())) tensors[name] = uploadTensor(gpu, t.dtype, [t.data.length], t.data, `tuning ${name}`);
  try {
    for (const c of candidates) await pipelinesOf(gpu).compile(c.spec);
    const warmupEnd = performance.now() + warmupMs;
    do {
      await timeRound(gpu, candidates[0], tensors, dispatches);
    } while (performance.now() < warmupEnd);
    const best = candidates.map(() => Infinity);
    for (let round = 0; round < rounds; round++) {
      for (const [i, c] of candidates.entries()) best[i] = Math.min(best[i], await timeRound(gpu, c, tensors, dispatches));
    }
    return candidates.map((c, i) => ({ name: c.name, ms: best[i] })).sort((x, y) => x.ms - y.ms);
  } finally {
    for (const t of Object.values(tensors)) t.destroy();
  }
}

// Milliseconds per dispatch of `dispatches` back-to-back runs of `c`: the median of their GPU
// timestamps where the device has them, else the wall time of the whole submission over their number.
async function timeRound(gpu: GpuDevice, c: TuningCandidate, tensors: Readonly<Record<string, GpuTensor>>, dispatches: number): Promise<number> {
  const batch = new CommandBatch(gpu, { timestamps: true });
  for (let i = 0; i < dispatches; i++) batch.dispatch(c.spec, c.uniforms, tensors);
  const started = performance.now();
  const stamps = await batch.submit();
  const wall = (performance.now() - started) / dispatches;
  if (stamps.length !== dispatches) return wall;
  const ns = stamps.map((s) => s.ns).sort((x, y) => x - y);
  return ns[Math.floor(ns.length / 2)] / 1e6;
}

type TuningEntry = Omit<TuningOutcome, "source">;

// The file's tunings by key; a missing or unreadable file has none.
function readTunings(file: string): Record<string, TuningEntry> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    const entries = (parsed as { tunings?: unknown }).tunings;
    return typeof entries === "object" && entries !== null ? (entries as Record<string, TuningEntry>) : {};
  } catch {
    return {};
  }
}

// Adds `outcome` to the file, written beside it and renamed over it, so a reader never sees half
// a file; a failure to write leaves the next start to time again.
function writeTuning(file: string, key: string, outcome: TuningOutcome): void {
  const { source: _source, ...entry } = outcome;
  const tunings = { ...readTunings(file), [key]: entry };
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(temporary, `${JSON.stringify({ tunings }, null, 2)}\n`);
    renameSync(temporary, file);
  } catch {
    // not cached: the choice stands for this device
  }
}
