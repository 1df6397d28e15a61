// One benchmark run on an open device: the adapter, the ceilings measured in the same run,
// every kernel checked and timed and divided by its ceiling, and the machine it ran on.
import { selfCheckOf } from "../runtime/gpu/kernel-self-check.ts";
import type { TuningOutcome } from "../runtime/gpu/kernel-tuning.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { adapterFacts, toggleStates, type AdapterFacts, type ToggleState } from "./adapter.ts";
import { benchGeneration, torchGenerate, type GenerationCase, type TorchGenerate } from "./generation.ts";
import { copyBandwidth, torchDeviceFor, torchMatmul, type CopyBandwidth, type TorchReference } from "./ceilings.ts";
import { matmulShapes } from "./matmul-cases.ts";
import { benchKernels, type KernelResult } from "./kernels.ts";
import { loadAverage, machineFacts, type MachineFacts } from "./machine.ts";
import { SHAPES, type BenchShapes, type BenchSize } from "./sizes.ts";
import { benchTrainingStep, FIRST_LOSS_TOLERANCE, type TrainStepResult } from "./train-step.ts";

/** A kernel's figures with the fraction of the ceiling it is divided by. */
export interface KernelRow extends KernelResult {
  /** Kernel throughput / ceiling (GFLOP/s for matmuls, GB/s for the rest); absent without a ceiling. */
  fraction?: number;
  /** What `fraction` divides by, or why there is none. */
  ceiling: string;
  passed: boolean;
}

export interface BenchReport {
  /** Start of the run, ISO 8601 UTC. */
  date: string;
  command: string;
  size: BenchSize;
  shapes: BenchShapes;
  machine: MachineFacts;
  loadAtStart: [number, number, number];
  loadAtEnd: [number, number, number];
  seconds: number;
  adapter: AdapterFacts;
  toggles: ToggleState[];
  /** The kernel choices the device tuned when it opened (timed then, or read from the tuning file). */
  tunings: TuningOutcome[];
  bandwidth: CopyBandwidth;
  matmulReference: TorchReference;
  kernels: KernelRow[];
  /** The sections this run measured (`--sections`; the copy and the adapter always run). */
  sections: BenchSection[];
  /** The quickstart model's training step, sftc on the adapter and PyTorch CPU; absent when not run. */
  trainingStep?: TrainStepResult;
  /** Prefill and decode of the tiny model and (full size) the 7B-sized one. */
  generation: GenerationCase[];
  /** transformers' generate of the 7B-sized model (full size, NVIDIA adapters), or why not. */
  generationReference: TorchGenerate;
  /** GPU errors reported during the run (validation, out of memory, device loss). */
  gpuErrors: string[];
}

/** The parts of a run that `--sections` selects. */
export const BENCH_SECTIONS = ["kernels", "ceilings", "step", "generation"] as const;
export type BenchSection = (typeof BENCH_SECTIONS)[number];

export interface BenchOptions {
  size: BenchSize;
  /** The sections to run (default all): a run on a GPU with little time can be split. */
  sections?: readonly BenchSection[];
  /** Only the kernel cases whose label matches (each case is still built, then skipped). */
  kernelFilter?: RegExp;
  /** The command line, as recorded in the report. */
  command: string;
  /** Told of each section and each kernel case as it finishes (a full run takes minutes). */
  progress?: (line: string) => void;
}

// Kernels whose products take f16 values on the matrix units: their reference is PyTorch's f16
// matmul (tensor cores), the others' PyTorch's f32 one (TF32 off).
const F16_PRODUCTS = /subgroup/;

function withCeiling(k: KernelResult, bandwidth: CopyBandwidth, reference: TorchReference): KernelRow {
  const passed = k.check.relativeError < k.check.tolerance;
  if (k.bound === "memory") {
    // the card's own figure (a CUDA copy) where there is one; WebGPU's copy always
    const card = reference.available ? reference.copy : undefined;
    const fraction = k.gbs / (card ? card.gbs : bandwidth.gbs);
    const ceiling = card
      ? `CUDA copy ${card.gbs.toFixed(0)} GB/s (${percentOf(k.gbs, bandwidth.gbs)} of the WebGPU copy ${bandwidth.gbs.toFixed(0)} GB/s)`
      : `copy bandwidth ${bandwidth.gbs.toFixed(2)} GB/s`;
    return { ...k, passed, fraction, ceiling };
  }
  if (!reference.available) return { ...k, passed, ceiling: "no matmul reference (see ceilings)" };
  // a matmul is divided by PyTorch at its own shape and precision; attention by the square matmul
  const dtype = F16_PRODUCTS.test(k.kernel) && reference.results.some((r) => r.dtype === "f16") ? "f16" : "f32";
  const candidates = reference.results.filter((r) => r.dtype === dtype);
  const same = k.mnk ? candidates.find((r) => r.m === k.mnk![0] && r.n === k.mnk![1] && r.k === k.mnk![2]) : candidates[0];
  if (!same || k.gflops === undefined) return { ...k, passed, ceiling: "no PyTorch timing at this shape" };
  const note = k.mnk ? "" : " (no attention reference: the square matmul)";
  return { ...k, passed, fraction: k.gflops / same.gflops, ceiling: `PyTorch ${reference.kind} ${dtype} ${same.m}x${same.n}x${same.k}: ${same.gflops.toFixed(2)} GFLOP/s${note}` };
}

const percentOf = (x: number, of: number) => `${((100 * x) / of).toFixed(1)}%`;

/** Runs every section at `options.size` on `gpu`; speed is reported, never judged. */
export async function runBench(gpu: GpuDevice, options: BenchOptions): Promise<BenchReport> {
  const shapes = SHAPES[options.size];
  const started = new Date();
  const loadAtStart = loadAverage();
  const machine = machineFacts();
  const adapter = await adapterFacts(gpu);
  const progress = options.progress ?? (() => {});
  const sections = options.sections ?? BENCH_SECTIONS;
  const runs = (section: BenchSection) => sections.includes(section);
  const notRun = { available: false, why: "not run (--sections)" } as const;
  const bandwidth = await copyBandwidth(gpu, shapes.copyBytes, shapes.reps, shapes.warmUpMs);
  progress(`copy: ${bandwidth.gbs.toFixed(1)} GB/s`);
  const kernels = runs("kernels") ? await benchKernels(gpu, shapes, { progress, filter: options.kernelFilter }) : [];
  if (runs("ceilings")) progress("PyTorch matmul and copy ceilings");
  const matmulReference = runs("ceilings") ? torchMatmul(torchDeviceFor(gpu), matmulShapes(shapes), shapes.copyBytes) : notRun;
  if (runs("step")) progress("training step");
  const trainingStep = runs("step") ? await benchTrainingStep(gpu, shapes.step) : undefined;
  const cardCopy = matmulReference.available ? matmulReference.copy : undefined;
  const generation = runs("generation") ? await benchGeneration(gpu, shapes.generation, shapes.largeGeneration, cardCopy ? cardCopy.gbs : bandwidth.gbs) : [];
  for (const g of generation) progress(`generation ${g.model}: ${g.measured ? `${g.decodeTokensPerSecond.toFixed(2)} tokens/s decode` : "not measured"}`);
  // after the 7B case has freed its weights: PyTorch then has the device's memory
  if (runs("generation") && shapes.largeGeneration) progress("transformers generate");
  const generationReference = runs("generation") ? torchGenerate(torchDeviceFor(gpu), shapes.largeGeneration) : notRun;
  const gpuErrors = (await gpu.takeErrors()).map((d) => `${d.code} ${d.message}`);
  const intervals = [...bandwidth.samplesNs, ...kernels.flatMap((k) => k.samplesNs)];
  return {
    date: started.toISOString(),
    command: options.command,
    size: options.size,
    shapes,
    machine,
    loadAtStart,
    loadAtEnd: loadAverage(),
    seconds: (Date.now() - started.getTime()) / 1000,
    adapter,
    toggles: toggleStates(adapter, intervals),
    tunings: selfCheckOf(gpu)?.tunings ?? [],
    bandwidth,
    matmulReference,
    sections: [...sections],
    kernels: kernels.map((k) => withCeiling(k, bandwidth, matmulReference)),
    trainingStep,
    generation,
    generationReference,
    gpuErrors,
  };
}

/**
 * Whether every kernel matched its reference, the training step's first loss matched PyTorch's
 * (when PyTorch ran), and the GPU reported no error.
 */
export function reportPassed(report: BenchReport): boolean {
  const difference = report.trainingStep?.firstLossDifference;
  return report.gpuErrors.length === 0 && report.kernels.every((k) => k.passed) && (difference === undefined || difference < FIRST_LOSS_TOLERANCE);
}
