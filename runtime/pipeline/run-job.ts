// `sftc run`'s job after the check and the lock: model and data, the memory plan (one line, and
// refused over the device's memory when that is known), training on the WebGPU engine (or the
// float64 CPU engine), the plan of what the engine holds at the end against what it allocated,
// and the export of what was trained into the run directory: a PEFT adapter
// directory for LoRA/QLoRA, the weights as safetensors for full fine-tuning. The run directory
// is `<train.output>/<run-id>`; `resume` continues the newest run there that has checkpoints.
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { diag, fail, invariant, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { knownAdapterMemory, parseByteSize, type DeviceMemory } from "../../compiler/plan/device-memory.ts";
import { planEngine, type EngineFigures, type ProgramShape } from "../../compiler/plan/engine-plan.ts";
import { comparePlanWithAllocated, type PlanComparison } from "../../compiler/plan/measured.ts";
import { checkAgainstDevice, planPipeline, type PlannedPipeline } from "../../compiler/plan/plan-pipeline.ts";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { exportPeftAdapter } from "../export/peft-family.ts";
import { writeSafetensors } from "../export/safetensors-writer.ts";
import { f16StorageRefusal, getSharedDevice, type GpuDevice } from "../gpu/device.ts";
import type { Lock } from "../repo/lock.ts";
import { newRunId, readManifest, writeManifest } from "../repo/run-record.ts";
import type { TrainingBackend } from "../train/backend.ts";
import { CpuBackend } from "../train/cpu-backend.ts";
import { GpuBackend, type GpuBackendOptions } from "../train/gpu-backend.ts";
import type { WeightSource } from "../train/gpu-weights.ts";
import { CHECKPOINTS_DIR } from "../train/loop.ts";
import type { ProgressSink } from "../train/progress.ts";
import { runTraining, type TrainingOutcome } from "../train/run-training.ts";
import { trainSettings } from "../train/settings.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import { loadingProgress } from "./loading-progress.ts";
import { prepareTraining, type TrainingSetup } from "./training-setup.ts";

export const ADAPTER_DIR = "adapter";
export const MODEL_DIR = "model";

export interface JobOptions {
  pipeline: ResolvedPipeline;
  lock?: Lock;
  /** Continue the newest run under train.output that has checkpoints. */
  resume?: boolean;
  /** Train on the float64 CPU engine instead of the GPU. */
  cpu?: boolean;
  /** The GPU to train on (the command line's `--device`); default: the shared device. */
  gpu?: GpuDevice;
  /** The device memory to plan against (SFT_DEVICE_MEMORY's syntax, e.g. 24GiB); else a known adapter's. */
  deviceMemory?: string;
  /** Status lines (stderr in the CLI). */
  log: (text: string) => void;
  /** A warning about the device (a fast kernel that failed its self-check, SFT5010); default: a `log` line. */
  warn?: (d: Diagnostic) => void;
  /** Where the progress bar goes (default stderr); false for none. */
  progress?: ProgressSink | false;
  handleSignals?: boolean;
}

export interface JobOutcome {
  runDir: string;
  training: TrainingOutcome;
  setup: TrainingSetup;
  /** The exported adapter directory (LoRA/QLoRA) when the run finished. */
  adapterDir?: string;
  /** The trained weights by graph name (full fine-tuning) when the run finished. */
  trainedWeights?: Map<string, Float64Array>;
  /** The plan of what the GPU engine holds at the end (weights and trained state once, each program it keeps at its shape) against the bytes it holds (GPU runs). */
  memory?: PlanComparison;
}

/** Trains the pipeline and exports the result; every failure is a diagnostic. */
export async function runJob(o: JobOptions): Promise<Result<JobOutcome>> {
  const p = o.pipeline;
  const output = String(p.train.output);
  const runDir = o.resume ? await newestResumable(output) : join(output, newRunId());
  if (runDir === undefined) {
    return fail(diag("SFT5401", `no run with checkpoints under ${output} to resume`, { where: output, hint: "start a run without --resume first" }));
  }
  // the GPU engine places a checkpoint's weights on the device as they are read
  const setup = await prepareTraining(p, { stream: !o.cpu });
  if (!setup.ok) return setup;
  const { tokenizer } = setup.value.generator;

  const gpu = o.cpu ? undefined : o.gpu ? ok(o.gpu) : await getSharedDevice();
  if (gpu && !gpu.ok) {
    return fail(diag("SFT5902", `no WebGPU device for training: ${gpu.diagnostics[0]?.message ?? "none found"}`, { hint: "run with --cpu to train on the float64 CPU engine (slow), or install a Vulkan driver (Mesa lavapipe works)" }));
  }
  // a fast kernel that failed its check when the device opened (SFT5010): said once, here
  const warn = o.warn ?? ((w: Diagnostic) => o.log(`${w.severity === "info" ? "note" : "warning"} ${w.code}: ${w.message}${w.hint ? ` (${w.hint})` : ""}\n`));
  for (const w of gpu?.diagnostics ?? []) warn(w);
  const planned = planPipeline(p, { tokenizerVocab: tokenizer.vocabSize });
  if (!planned.ok) return planned;
  const peak = planned.value.plan.peakBytes;
  const limit = deviceLimit(o.deviceMemory, gpu?.value);
  const { batch, seq } = planned.value.plan.settings;
  o.log(`memory plan: peak ${formatBytes(peak)} per training step at ${batch} x ${seq} tokens${limit ? ` (device ${formatBytes(limit.bytes)}, ${limit.source})` : ""}\n`);
  if (limit) {
    const refused = checkAgainstDevice(planned.value, limit);
    if (refused.length) return fail(...refused);
  }

  const sink = o.progress === undefined ? process.stderr : o.progress;
  const loading = sink && setup.value.baseWeights ? loadingProgress(sink, String(p.model.path)) : undefined;
  const engine = await loadEngine(setup.value, gpu?.value, p.train.gradient_checkpointing === true, loading?.report);
  loading?.finish();
  if (!engine.ok) return engine;
  const backend = engine.value;
  o.log(`training on ${backend.device}: ${runDir}\n`);
  try {
    const training = await runTraining({
      runDir,
      settings: trainSettings(p.train),
      backend,
      data: setup.value.data,
      resume: o.resume || (typeof p.train.resume_from === "string" ? p.train.resume_from : undefined),
      progress: o.progress,
      handleSignals: o.handleSignals,
      pipeline: { name: p.name, resolved: p, lock: o.lock, dir: dirname(p.file) },
    });
    if (!training.ok) return training;
    const outcome: JobOutcome = { runDir, training: training.value, setup: setup.value };
    if (backend instanceof GpuBackend) {
      const engine = planHeldPrograms(planned.value, backend);
      if (!engine.ok) return engine;
      const allocated = backend.allocatedBytes();
      const shapes = engine.value.programs.map((x) => `${x.kind} ${x.rows}x${x.seq}`).join(", ");
      outcome.memory = comparePlanWithAllocated(engine.value.total, allocated, 0.05, `the engine with ${shapes}`);
      await addMetrics(runDir, { planned_peak_bytes: peak, planned_engine_bytes: engine.value.total, allocated_bytes: allocated });
    }
    if (training.value.status !== "finished") return ok(outcome);

    const exported = await exportTrained(p, setup.value, backend, runDir);
    if (!exported.ok) return exported;
    Object.assign(outcome, exported.value);
    return ok(outcome);
  } finally {
    if (backend instanceof GpuBackend) backend.destroy();
  }
}

/** Writes what the run trained into the run directory: the weights (full) or the PEFT adapter. */
async function exportTrained(p: ResolvedPipeline, setup: TrainingSetup, backend: TrainingBackend, runDir: string): Promise<Result<Pick<JobOutcome, "adapterDir" | "trainedWeights">>> {
  const trained = await currentWeights(backend, setup);
  if (setup.method.kind === "full") {
    const written = await writeWeights(join(runDir, MODEL_DIR), trained, setup);
    return written.ok ? ok({ trainedWeights: trained }) : written;
  }
  const { family, config } = setup.generator;
  const m = p.method;
  const adapterDir = join(runDir, ADAPTER_DIR);
  const isAdapter = (name: string) => /\.lora_[AB]\.weight$/.test(name);
  const exported = await exportPeftAdapter(adapterDir, {
    family,
    config,
    method: { rank: Number(m.rank), alpha: Number(m.alpha), dropout: Number(m.dropout ?? 0), targets: m.targets as string[], rslora: m.rslora === true, modulesToSave: m.modules_to_save as string[] | undefined },
    baseModel: p.model.init === "random" ? `random-${family.name}-seed${Number(p.train.seed ?? 0)}` : String(p.model.path),
    weights: new Map([...trained].filter(([name]) => isAdapter(name))),
    saved: new Map([...trained].filter(([name]) => !isAdapter(name))),
  });
  return exported.ok ? ok({ adapterDir }) : exported;
}

/** SFT5009 where the setup keeps frozen weights in f16 and `gpu` lacks shader-f16 (f16StorageRefusal). */
const storageRefusal = (setup: TrainingSetup, gpu: GpuDevice) => f16StorageRefusal(gpu, setup.weightDtypes, `the frozen weights of this ${setup.model.name} run`);

/** The training engine of a setup: the GPU one on `gpu` (NF4 base linears for QLoRA), else the float64 CPU reference. */
export function createEngine(setup: TrainingSetup, gpu: GpuDevice | undefined, checkpointing: boolean): Result<TrainingBackend> {
  // QLoRA: the GPU engine stores the base linears as NF4; the CPU engine trains over their round trip
  if (!gpu) return CpuBackend.create(setup.model, nf4RoundTrip(setup.weights, setup.nf4));
  const refused = storageRefusal(setup, gpu);
  if (refused) return refused;
  return GpuBackend.create(gpu, setup.model, setup.weights, engineOptions(setup, checkpointing));
}

/**
 * The plan of what the GPU engine holds now: its weights and trained state once, and each compiled
 * program it keeps at that program's batch shape (keys "training RxT" / "evaluation RxT").
 */
function planHeldPrograms(planned: PlannedPipeline, backend: GpuBackend): Result<EngineFigures> {
  const shapes = backend.compiledPrograms().map(({ key }): ProgramShape => {
    const match = /^(training|evaluation) (\d+)x(\d+)$/.exec(key);
    invariant(match, `unexpected program key ${key}`);
    return { kind: match[1] as ProgramShape["kind"], rows: Number(match[2]), seq: Number(match[3]) };
  });
  const scores = backend.attentionScores();
  if (!scores.ok) return scores;
  return planEngine(planned.model.family, planned.model.config, planned.plan.settings, shapes, scores.value);
}

/**
 * The engine of a setup as `createEngine` makes it, its checkpoint weights (a setup prepared to
 * stream) placed on the GPU one tensor at a time as they are read; `onProgress` gets the bytes read.
 */
export async function loadEngine(setup: TrainingSetup, gpu: GpuDevice | undefined, checkpointing: boolean, onProgress?: (done: number, total: number) => void): Promise<Result<TrainingBackend>> {
  if (!setup.baseWeights) return createEngine(setup, gpu, checkpointing);
  invariant(gpu !== undefined, "a setup prepared to stream its weights trains on the GPU");
  const refused = storageRefusal(setup, gpu);
  if (refused) return refused;
  return GpuBackend.load(gpu, setup.model, withHostWeights(setup.baseWeights(onProgress), setup.weights), engineOptions(setup, checkpointing));
}

/** The streamed weights, then the ones the host holds. */
async function* withHostWeights(streamed: WeightSource, host: ReadonlyMap<string, Float64Array>): WeightSource {
  yield* streamed;
  for (const [name, values] of host) yield ok({ name, values });
}

function engineOptions(setup: TrainingSetup, checkpointing: boolean): GpuBackendOptions {
  return { nf4: setup.nf4, ...(checkpointing ? { checkpoints: (loss) => setup.model.layerInputs(loss) } : {}) };
}

/** The given size, else the adapter's memory when it is a known card; undefined when unknown. */
function deviceLimit(given: string | undefined, gpu: GpuDevice | undefined): DeviceMemory | undefined {
  const bytes = given ? parseByteSize(given) : null;
  if (bytes !== null) return { bytes, source: "SFT_DEVICE_MEMORY" };
  const known = gpu ? knownAdapterMemory(gpu.adapter.description || gpu.adapter.name) : null;
  return known === null ? undefined : { bytes: known, source: gpu!.adapter.description || gpu!.adapter.name };
}

/** Every trainable weight after training, by graph name, widened to float64. */
async function currentWeights(backend: TrainingBackend, setup: TrainingSetup): Promise<Map<string, Float64Array>> {
  const trainable = new Set(setup.model.trainable.map((t) => t.name));
  const state = await backend.saveState();
  const out = new Map<string, Float64Array>();
  for (const t of state) if (trainable.has(t.name)) out.set(t.name, Float64Array.from(t.data));
  // full fine-tuning: the frozen weights are the setup's own (none when every weight trains)
  if (setup.method.kind === "full") for (const [name, w] of setup.weights) if (!out.has(name)) out.set(name, w);
  return out;
}

/** The trained weights of a full fine-tune as one safetensors file, by checkpoint tensor name. */
async function writeWeights(dir: string, weights: ReadonlyMap<string, Float64Array>, setup: TrainingSetup): Promise<Result<void>> {
  const shapes = new Map(setup.model.trainable.map((t) => [t.name, t.shape]));
  await mkdir(dir, { recursive: true });
  const tensors = [...weights].map(([name, values]) => ({
    name,
    dtype: "F32" as const,
    shape: shapes.get(name) ?? [values.length],
    bytes: () => new Uint8Array(Float32Array.from(values).buffer),
  }));
  try {
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
    return ok(undefined);
  } catch (error) {
    return fail(diag("SFT5805", `cannot write ${dir}: ${(error as Error).message}`, { where: dir }));
  }
}

/** The newest run directory under `output` holding checkpoints (run ids sort by time). */
async function newestResumable(output: string): Promise<string | undefined> {
  if (!existsSync(output)) return undefined;
  const ids = (await readdir(output, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort().reverse();
  return ids.map((id) => join(output, id)).find((dir) => existsSync(join(dir, CHECKPOINTS_DIR)));
}

async function addMetrics(runDir: string, metrics: Record<string, number>): Promise<void> {
  const manifest = await readManifest(runDir);
  if (manifest.ok) await writeManifest(runDir, { ...manifest.value, metrics: { ...manifest.value.metrics, ...metrics } });
}
