// `sftc compile FILE.sft --emit graph|schedule|wgsl [--forward]`: each stage of the compiler on the
// pipeline's training step (or its forward pass): the op graph as built, the kernel schedule after
// the passes (launches, their kernels, fused nodes, shapes), or the WGSL of every kernel the
// schedule dispatches, generated and library ones, each headed by the launch it serves.
import { flag, flagValue, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { graph, type Graph, type Node } from "../../compiler/ir/node.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { kernelCount, printSchedule } from "../../compiler/passes/print-schedule.ts";
import { plannedModel } from "../../compiler/plan/model-config.ts";
import { layerInputs } from "../../compiler/plan/step-plan.ts";
import { planSettings, savedModules } from "../../compiler/plan/settings.ts";
import { scheduleWgsl } from "../../runtime/execute/emit-wgsl.ts";
import { savedWeightNames, trainingMethod } from "../../runtime/pipeline/family-model.ts";
import { deviceFlag, openRequestedDevice } from "./devices.ts";
import { printErrors } from "./generate.ts";
import { modelSources } from "./plan.ts";
import { frozenWeightDtypes } from "../../compiler/plan/storage.ts";

const STAGES = ["graph", "schedule", "wgsl"] as const;
type Stage = (typeof STAGES)[number];

export const command: Command = {
  name: "compile",
  summary: "show the op graph, kernel schedule or WGSL the compiler makes of a pipeline's training step",
  usage: "FILE.sft[#PIPELINE] --emit graph|schedule|wgsl [--forward] [--device NAME] [--set PATH=VALUE]...",
  details:
    "Builds the pipeline's model at `train.batch_size` x the longest dataset `max_length` (as `sftc plan` does, no " +
    "weight is loaded) and prints one stage of its compilation: `graph`, the op graph of the training step (loss and " +
    "the gradient of every trainable tensor) as built, before any pass; `schedule`, the launches after simplification, " +
    "fusion and scheduling, each with its library kernels, fused expression, output shapes and uniforms, then the " +
    "counts of launches and kernels and the arena's bytes (with `train.gradient_checkpointing`, recomputation " +
    "included); `wgsl`, the WGSL module of every kernel dispatch of the schedule, each headed by the launch it " +
    "serves (library kernels pick variants from the GPU, chosen with --device or SFT_ADAPTER). `--forward` takes the " +
    "forward pass (logits and loss) instead of the training step. SFT_DEBUG=1 prints the schedule of every graph any " +
    "command compiles on stderr; SFT_DEBUG=2 also the graph after the graph passes.",
  flags: [
    { name: "emit", value: "one", placeholder: "graph|schedule|wgsl", description: "the stage to print" },
    { name: "forward", description: "the forward pass (logits and loss) instead of the training step" },
    deviceFlag,
    ...pipelineFlags.filter((f) => f.name !== "no-files"),
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const stage = flagValue(args, "emit");
    if (!STAGES.includes(stage as Stage)) return usageError(io, "compile", `--emit takes ${STAGES.join(", ")}${stage === undefined ? "" : `, got \`${stage}\``}`);
    // compiling reads no data and no weights: referenced files need not exist yet
    const resolved = resolveOne("compile", { ...args, flags: new Map([...args.flags, ["no-files", []]]) }, io);
    if (!resolved.ok) return resolved.exit;
    const built = await pipelineGraph(resolved.pipeline, flag(args, "forward"));
    if (!built.ok) return printErrors(built.diagnostics, io);
    if (stage === "graph") {
      io.out(printGraph(built.value.graph));
      return 0;
    }
    const compiled = compileGraph(built.value.graph, built.value.checkpoints ? { checkpoints: built.value.checkpoints } : {});
    if (!compiled.ok) return printErrors(compiled.diagnostics, io);
    const { schedule, plan } = compiled.value;
    if (stage === "schedule") {
      io.out(`${printSchedule(schedule)}${schedule.launches.length} launches, ${kernelCount(schedule)} library kernels; arena ${plan.arenaBytes} bytes\n`);
      return 0;
    }
    const opened = await openRequestedDevice(args, io);
    if (!opened.ok) return printErrors(opened.diagnostics, io);
    try {
      const wgsl = scheduleWgsl(opened.value, schedule);
      if (!wgsl.ok) return printErrors(wgsl.diagnostics, io);
      io.out(wgsl.value);
      return 0;
    } finally {
      opened.value.destroy();
    }
  },
};

/**
 * The training step (loss and gradients) or the forward pass of the pipeline's model, with the
 * tensors gradient checkpointing keeps when the pipeline asks for it.
 */
async function pipelineGraph(pipeline: ResolvedPipeline, forward: boolean): Promise<Result<{ graph: Graph; checkpoints?: Node[] }>> {
  const sources = await modelSources(pipeline);
  if (!sources.ok) return sources;
  const model = plannedModel(pipeline, sources.value);
  if (!model.ok) return model;
  const settings = planSettings(pipeline);
  const { family, config } = model.value;
  // the frozen weights in the dtype the GPU engine stores them in (training-setup.ts)
  const m = settings.method;
  const weightDtypes = frozenWeightDtypes(family, config, m.kind, settings.dtype, savedModules(m));
  const built = buildFamilyGraph(family, config, { batch: settings.batch, seq: settings.seq, method: trainingMethod(pipeline.method), weightDtypes });
  if (!built.ok) return built;
  if (forward) return ok({ graph: graph([["logits", built.value.logits], ["loss", built.value.loss]]) });
  // what a run trains: the method's tensors plus the base weights of `modules_to_save`
  const saved = savedWeightNames(family, config, pipeline.method).flatMap((name) => built.value.weights.get(name) ?? []);
  const training = trainingGraph(built.value.loss, [...built.value.trainable, ...saved]);
  if (!training.ok) return training;
  const checkpoints = settings.gradientCheckpointing ? layerInputs(built.value, family, config.dims.layers) : undefined;
  return ok({ graph: training.value.graph, checkpoints });
}
