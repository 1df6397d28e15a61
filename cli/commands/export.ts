// `sftc export FILE.sft --target torchrun --out DIR`: the pipeline as a PyTorch distributed
// training job (runtime/export/torch/), its data tokenized and scheduled by sftc's own data
// pipeline so the job trains on the same micro-batches in the same order.
// `sftc export FILE.sft --merge --adapter DIR --out DIR`: see export-merge.ts.
import { resolve } from "node:path";
import { diag, type Diagnostic } from "../../compiler/diagnostics.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { writeTorchJob, type JobData, type JobExample, type JobMethod } from "../../runtime/export/torch/write-job.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { loadTrainingData } from "../../runtime/data/batches.ts";
import type { TrainSettings } from "../../runtime/train/settings.ts";
import { families, isFamilyName } from "../../stdlib/families/index.ts";
import { flag, flagValue, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";
import { mergeFlags, runMerge } from "./export-merge.ts";

const TARGETS = ["torchrun"];

export const command: Command = {
  name: "export",
  summary: "compile a pipeline to a PyTorch DDP/FSDP job (--target torchrun), or merge a LoRA adapter into the base model (--merge)",
  usage: "FILE.sft[#PIPELINE] --target torchrun --out DIR [--pipeline NAME] [--set PATH=VALUE]...\n       FILE.sft[#PIPELINE] --merge --adapter DIR --out DIR [--dtype f16|bf16|f32] [--shard-size SIZE] [--overwrite]",
  details:
    "With --target torchrun, writes a self-contained PyTorch training job into DIR: model.py generated from " +
    "the model family's declaration (its state-dict keys are the checkpoint's names), train.py (DDP by default, " +
    "FSDP with --mode fsdp on PyTorch 2.x; full, LoRA or QLoRA; AdamW, schedule, accumulation, clipping, " +
    "checkpoints and exact resume), the training data tokenized and batched by sftc in its own order, " +
    "config.json and a README with the launch commands. Checkpoints and the final result use sftc's formats " +
    "(Hugging Face safetensors, PEFT adapters). DIR must be new, empty, or a previous export. " +
    "With --merge, writes the pipeline's base model with the PEFT adapter in --adapter merged into its weights " +
    "(W + alpha/r * B A), as Hugging Face safetensors shards with an index, config.json and the tokenizer files.",
  flags: [
    ...pipelineFlags,
    { name: "target", value: "one", placeholder: "ENGINE", description: `the engine to compile to: ${TARGETS.join(", ")}` },
    { name: "out", value: "one", placeholder: "DIR", description: "the directory to write the job (or the merged model) into" },
    ...mergeFlags,
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    if (flag(args, "merge")) return runMerge(args, io);
    const target = flagValue(args, "target");
    if (target === undefined) return usageError(io, "export", `--target is required (${TARGETS.join(", ")})`);
    if (!TARGETS.includes(target)) return usageError(io, "export", `unknown --target ${target}; the targets are ${TARGETS.join(", ")}`);
    const out = flagValue(args, "out");
    if (out === undefined) return usageError(io, "export", "--out DIR is required: the directory to write the job into");
    const resolved = resolveOne("export", args, io);
    if (!resolved.ok) return resolved.exit;
    const p = resolved.pipeline;
    const report = (diagnostics: readonly Diagnostic[]) => {
      for (const d of diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
      return 1;
    };

    const family = p.model.family;
    if (!isFamilyName(family)) return report([diag("SFT4702", `unknown model family ${family}`, { where: "model" })]);
    if (p.model.init !== undefined && p.model.init !== "checkpoint") {
      return report([diag("SFT4702", `model.init = ${String(p.model.init)}: the exported job loads its initial weights from a checkpoint directory`, { where: "model.init", hint: "export a pipeline whose model has a path to a checkpoint" })]);
    }
    if (p.train.packing === true) {
      return report([diag("SFT4702", "train.packing = true: the exported job trains one example per row", { where: "train.packing", hint: "set train.packing = false to export" })]);
    }
    const modelDir = String(p.model.path);
    const config = await loadModelConfig(modelDir, family);
    if (!config.ok) return report(config.diagnostics);
    const data = await loadTrainingData(p);
    if (!data.ok) return report(data.diagnostics);

    const written = await writeTorchJob(resolve(out), {
      pipeline: { name: p.name, resolved: p },
      family: families[family],
      config: config.value,
      modelDir: resolve(modelDir),
      method: jobMethod(p),
      train: p.train as unknown as TrainSettings,
      data: jobData(data.value),
    });
    if (!written.ok) return report(written.diagnostics);
    const w = written.value;
    io.out(`wrote ${out}: ${family} ${p.method.kind}, ${w.examples} examples, ${w.microBatches} micro-batches, ${w.totalSteps} optimizer steps\n`);
    io.out(`launch: see ${out}/README.md (e.g. torchrun --standalone --nproc_per_node 8 ${out}/train.py --mode fsdp)\n`);
    return 0;
  },
};

function jobMethod(p: ResolvedPipeline): JobMethod {
  const m = p.method;
  if (m.kind !== "lora" && m.kind !== "qlora") return { kind: "full" };
  return { kind: m.kind, rank: Number(m.rank), alpha: Number(m.alpha), dropout: Number(m.dropout ?? 0), targets: (m.targets as string[]) ?? [] };
}

type Scheduled = Extract<Awaited<ReturnType<typeof loadTrainingData>>, { ok: true }>["value"];

/** The training split of every dataset, numbered once, and each epoch's batches by those numbers. */
function jobData(data: Scheduled): JobData {
  const examples: JobExample[] = [];
  const number = new Map<string, number>();
  data.splits.forEach((split, dataset) => {
    for (const index of split.train) {
      const e = data.datasets[dataset].store.example(index);
      number.set(`${dataset}:${index}`, examples.push({ inputIds: e.inputIds, labels: e.labels }) - 1);
    }
  });
  return {
    examples,
    padId: data.options.padId,
    epochBatches: (epoch) => data.epochBatches(epoch).map((rows) => rows.map((row) => number.get(`${row[0].dataset}:${row[0].index}`)!)),
  };
}
