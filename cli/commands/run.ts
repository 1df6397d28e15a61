// `sftc run FILE.sft`: check → lock → data → model → memory plan → training (WebGPU, or the
// float64 CPU engine with --cpu) → adapter or weights export → sample generations of the decode
// block's prompts → manifest. The lock (sft.lock beside the pipeline) is written on the first run
// and verified on every later one: drift is refused naming what changed, unless --update-lock.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CheckResult } from "../../compiler/check/check.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { hasErrors, type Diagnostic } from "../../compiler/diagnostics.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import { CachedGenerationModel, interpreterRunner } from "../../runtime/generate/cached-model.ts";
import { gpuRunner } from "../../runtime/generate/gpu-runner.ts";
import { loadPipelineGenerator, pipelineCacheDtype, type PipelineGenerator } from "../../runtime/generate/pipeline-model.ts";
import { getSharedDevice, type GpuDevice } from "../../runtime/gpu/device.ts";
import { runJob, type JobOutcome } from "../../runtime/pipeline/run-job.ts";
import { compareLocks, driftDiagnostic, mergeLocks, writeLock, type Lock } from "../../runtime/repo/lock.ts";
import { lockState } from "../../runtime/repo/inputs.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { flag, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { checkTarget, pipelineFlags, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";
import { deviceFlag, openRequestedDevice } from "./devices.ts";
import { answer } from "./generate.ts";

/** Exit code of a run stopped by Ctrl-C after saving its checkpoint (128 + SIGINT). */
const STOPPED_EXIT = 130;

export const command: Command = {
  name: "run",
  summary: "train a pipeline end to end: lock, data, model, memory plan, training, export, samples",
  usage: "FILE.sft[#PIPELINE] [--resume] [--update-lock] [--cpu] [--pipeline NAME] [--set PATH=VALUE]...",
  details:
    "Checks the pipeline, verifies its inputs against sft.lock beside the file (written on the first run; " +
    "a changed source, dataset, model or tokenizer file is refused by name unless --update-lock), loads the " +
    "model (its checkpoint, or `init = random` weights drawn from train.seed) and the data, prints the memory " +
    "plan's peak (refused when it exceeds the device memory: SFT_DEVICE_MEMORY or a known adapter), and trains " +
    "on the WebGPU device (--cpu: the float64 CPU engine) with a progress line; train.gradient_checkpointing " +
    "keeps each layer's input and recomputes the rest on the GPU. Settings the engines cannot train yet " +
    "(packing, LoRA bias, freezing layers) are refused by name (SFT5901). The run directory " +
    "`<train.output>/<run-id>` receives manifest.json, metrics.jsonl, curves.html and checkpoints/; when the " +
    "run finishes, the LoRA/QLoRA adapter as a PEFT directory (adapter/) or the full model's weights " +
    "(model/model.safetensors), and the decode block's prompts answered by the trained model (printed and " +
    "written to samples.jsonl). Ctrl-C saves a checkpoint and stops (exit 130); --resume continues the newest " +
    "run under train.output exactly where it stopped.",
  flags: [
    { name: "resume", description: "continue the newest run under train.output from its latest checkpoint" },
    { name: "update-lock", description: "accept changed inputs and rewrite their entry in sft.lock" },
    { name: "cpu", description: "train on the float64 CPU reference engine instead of the GPU (slow; for checking)" },
    deviceFlag,
    ...pipelineFlags,
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const target = checkTarget("run", args, io);
    if (!target.ok) return target.exit;
    const { result } = target;
    if (hasErrors(result.diagnostics) || result.pipelines.length !== 1) return 1;
    const pipeline = result.pipelines[0];

    const cpu = flag(args, "cpu");
    if (cpu && flag(args, "device")) return usageError(io, "run", "--device chooses the GPU; --cpu trains without one");
    if (cpu || !flag(args, "device")) return runPipeline(pipeline, result, args, io, undefined);
    const opened = await openRequestedDevice(args, io);
    if (!opened.ok) return printErrors(opened.diagnostics, result, io);
    try {
      return await runPipeline(pipeline, result, args, io, opened.value);
    } finally {
      opened.value.destroy();
    }
  },
};

/** The job on `gpu` (the device --device chose), else on the shared device, or the CPU with --cpu. */
async function runPipeline(pipeline: ResolvedPipeline, result: CheckResult, args: ParsedArgs, io: Io, gpu: GpuDevice | undefined): Promise<number> {
  const cpu = flag(args, "cpu");
  const lock = await verifyLock(result, pipeline, flag(args, "update-lock"), io);
  if (!lock.ok) return printErrors(lock.diagnostics, result, io);

  // the bar redraws in place where diagnostics may be coloured (a terminal); plain lines elsewhere
  const progress = { isTTY: io.color, columns: process.stderr.columns, write: (text: string) => io.err(text) };
  // device warnings (SFT5010) rendered like every other diagnostic, as with --device
  const warn = (d: Diagnostic) => io.err(renderDiagnostic(d, new Map(), io.color));
  const job = await runJob({ pipeline, lock: lock.lock, resume: flag(args, "resume"), cpu, gpu, deviceMemory: io.env.SFT_DEVICE_MEMORY, log: io.err, warn, progress });
  if (!job.ok) return printErrors(job.diagnostics, result, io);
  const outcome = job.value;
  const { training } = outcome;
  if (outcome.memory) io.err(`memory: ${outcome.memory.summary}\n`);
  if (training.status === "stopped") {
    io.err(`stopped after step ${training.step} of ${training.totalSteps}; a checkpoint is saved in ${outcome.runDir}\ncontinue with: sftc run ${args.positional[0]} --resume\n`);
    return STOPPED_EXIT;
  }
  const loss = training.metrics.loss;
  io.err(`trained ${training.step} steps${loss === undefined ? "" : `, final loss ${loss.toFixed(4)}`}: ${outcome.runDir}\n`);
  if (outcome.adapterDir) io.err(`adapter: ${outcome.adapterDir}\n`);
  // samples run where training ran: the chosen GPU, the shared one, or the CPU after --cpu
  const shared = cpu || gpu ? undefined : await getSharedDevice();
  return writeSamples(pipeline, outcome, gpu ?? (shared?.ok ? shared.value : undefined), result, io);
}

type LockCheck = { ok: true; lock: Lock } | { ok: false; diagnostics: Diagnostic[] };

/** The pipeline's lock entry: written when absent (or with `update`), else compared; drift is SFT5602. */
async function verifyLock(result: CheckResult, pipeline: ResolvedPipeline, update: boolean, io: Io): Promise<LockCheck> {
  const state = await lockState(result, pipeline);
  if (!state.ok) return { ok: false, diagnostics: state.diagnostics };
  const { path, current, existing } = state.value;
  const name = Object.keys(current.pipelines)[0];
  const locked = existing?.pipelines[name];
  if (locked && !update) {
    const drifts = compareLocks(existing!, current);
    if (drifts.length > 0) return { ok: false, diagnostics: [driftDiagnostic(path, drifts)] };
    return { ok: true, lock: current };
  }
  await writeLock(path, mergeLocks(existing, current));
  io.err(`${locked ? "updated" : "locked"} ${name} in ${path}\n`);
  return { ok: true, lock: current };
}

/** Answers the decode block's prompts with the trained model; prints them and writes samples.jsonl. */
async function writeSamples(pipeline: ResolvedPipeline, outcome: JobOutcome, gpu: GpuDevice | undefined, result: CheckResult, io: Io): Promise<number> {
  const prompts = (pipeline.decode.prompts as string[] | undefined) ?? [];
  if (prompts.length === 0) return 0;
  let generator: PipelineGenerator;
  if (outcome.trainedWeights) {
    // the weights full fine-tuning trained and exported, in f32; the cache in the model's dtype
    const base = outcome.setup.generator;
    const runner = gpu ? gpuRunner(gpu, { cacheDtype: pipelineCacheDtype(pipeline, base.config, gpu) }) : interpreterRunner;
    const model = new CachedGenerationModel({ family: base.family, config: base.config, weights: outcome.trainedWeights }, runner);
    generator = { ...base, model, weights: outcome.trainedWeights };
  } else {
    const loaded = await loadPipelineGenerator(pipeline, { adapterDir: outcome.adapterDir, gpu });
    if (!loaded.ok) return printErrors(loaded.diagnostics, result, io);
    generator = loaded.value;
  }
  const lines: string[] = [];
  for (const prompt of prompts) {
    const ids = chatPromptIds(generator.tokenizer, generator.family.name as TemplateName, [], prompt);
    if (!ids.ok) return printErrors(ids.diagnostics, result, io);
    io.out(`» ${prompt}\n`);
    const answered = await answer(generator, ids.value, (text) => io.out(text));
    if (!answered.ok) return printErrors(answered.diagnostics, result, io);
    const first = answered.value.sequences[0];
    lines.push(JSON.stringify({ prompt, text: first.text, ids: first.ids, stop_reason: first.stop_reason }));
  }
  const path = join(outcome.runDir, "samples.jsonl");
  await writeFile(path, lines.map((l) => `${l}\n`).join(""));
  io.err(`samples: ${path}\n`);
  return 0;
}

function printErrors(diagnostics: readonly Diagnostic[], result: CheckResult, io: Io): number {
  for (const d of diagnostics) io.err(renderDiagnostic(d, result.texts, io.color));
  return 1;
}
