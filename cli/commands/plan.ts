// `sftc plan FILE.sft`: the memory of one optimizer step (and of the generation after training)
// before anything is loaded; refused with advice when it exceeds the device's memory.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { diag, type Diagnostic } from "../../compiler/diagnostics.ts";
import type { ResolvedPipeline } from "../../compiler/check/resolve.ts";
import { knownAdapterMemory, parseByteSize, type DeviceMemory } from "../../compiler/plan/device-memory.ts";
import { formatPlan, planJson } from "../../compiler/plan/format.ts";
import type { ModelSources } from "../../compiler/plan/model-config.ts";
import { checkAgainstDevice, planPipeline } from "../../compiler/plan/plan-pipeline.ts";
import { flag, flagValue, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { displayPath, renderDiagnostic } from "../render.ts";
import { pipelineFlags, resolveOne, usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";

export const command: Command = {
  name: "plan",
  summary: "print the memory plan of a pipeline (weights, adapters, optimizer state, activations, KV cache, peak)",
  usage: "FILE.sft[#PIPELINE] [--memory SIZE | --detect-device] [--estimate] [--json] [--pipeline NAME] [--set PATH=VALUE]...",
  details:
    "Builds the pipeline's model graph with its training step, compiles it symbolically and prints the bytes of " +
    "each buffer class for one micro-batch at `batch_size` and the longest `max_length`, then the generation " +
    "after training (KV cache), and the peak. No weight is loaded: the dimensions come from the model's " +
    "config.json when it exists, else from the family's published size; datasets need not exist yet. With `--memory 24GiB` (or " +
    "SFT_DEVICE_MEMORY, or `--detect-device` for adapters of known size) a peak over that is refused (exit 1, " +
    "SFT3101) with the peak each change would give: a smaller batch, gradient checkpointing, lora or qlora, a " +
    "shorter max_length. `--estimate` plans 2 and 3 layers and extrapolates (several times faster; the arena's " +
    "placement over every layer can need some percent more, so the estimate may be low). `--json` prints the plan as JSON.",
  flags: [
    { name: "memory", value: "one", placeholder: "SIZE", description: "device memory to check the plan against, e.g. 24GiB, 80GB (default: SFT_DEVICE_MEMORY)" },
    { name: "detect-device", description: "take the device memory from the WebGPU adapter's name when it is a known card" },
    { name: "estimate", description: "extrapolate from 2 and 3 layers instead of compiling every layer (faster, arena approximate)" },
    { name: "json", description: "print the plan as JSON" },
    ...pipelineFlags.filter((f) => f.name !== "no-files"),
  ],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const device = await deviceMemory(args, io);
    if (typeof device === "number") return device;
    // the plan reads no data and no weights: referenced files need not exist yet
    const resolved = resolveOne("plan", { ...args, flags: new Map([...args.flags, ["no-files", []]]) }, io);
    if (!resolved.ok) return resolved.exit;
    const pipeline = resolved.pipeline;
    const sources = await modelSources(pipeline);
    const planned = sources.ok ? planPipeline(pipeline, sources.value, { estimate: flag(args, "estimate") }) : sources;
    if (!planned.ok) {
      for (const d of planned.diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
      return 1;
    }
    const header = { ...planned.value.header, file: displayPath(planned.value.header.file) };
    if (flag(args, "json")) io.out(`${JSON.stringify(planJson(header, planned.value.plan, device), null, 2)}\n`);
    else io.out(formatPlan(header, planned.value.plan, device));
    const refused = device ? checkAgainstDevice(planned.value, device) : [];
    for (const d of refused) io.err(renderDiagnostic(d, new Map(), io.color));
    return refused.length ? 1 : 0;
  },
};

/** The device memory to check against, null when none is given, or an exit code after a usage mistake. */
async function deviceMemory(args: ParsedArgs, io: Io): Promise<DeviceMemory | null | number> {
  const given = flagValue(args, "memory");
  const env = io.env.SFT_DEVICE_MEMORY;
  const [text, source] = given !== undefined ? [given, "--memory"] : env ? [env, "SFT_DEVICE_MEMORY"] : [undefined, ""];
  if (text !== undefined) {
    const bytes = parseByteSize(text);
    if (bytes === null) return usageError(io, "plan", `${source} takes a size such as 24GiB, 80GB or 17179869184, got \`${text}\``);
    return { bytes, source: `${source} ${text}` };
  }
  if (!flag(args, "detect-device")) return null;
  const { listAdapters } = await import("../../runtime/gpu/device.ts");
  const adapters = await listAdapters();
  const names = adapters.ok ? adapters.value.map((a) => a.name) : [];
  for (const name of names) {
    const bytes = knownAdapterMemory(name);
    if (bytes !== null) return { bytes, source: `nominal memory of adapter '${name}'` };
  }
  io.err(`sftc plan: no adapter of known memory (${names.length ? names.map((n) => `'${n}'`).join(", ") : "no adapter found"}); WebGPU does not report memory, so give --memory\n`);
  return null;
}

/** What the plan may read without loading weights: config.json, and the tokenizer's vocabulary when the model's is not given. */
export async function modelSources(pipeline: ResolvedPipeline): Promise<{ ok: true; value: ModelSources } | { ok: false; diagnostics: Diagnostic[] }> {
  const model = pipeline.model;
  if (model.init !== "random") {
    const file = join(String(model.path), "config.json");
    if (!existsSync(file)) return { ok: true, value: {} };
    try {
      return { ok: true, value: { configJson: JSON.parse(readFileSync(file, "utf8")) } };
    } catch (e) {
      return { ok: false, diagnostics: [diag("SFT5103", `${file} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { where: file })] };
    }
  }
  if (typeof model.vocab_size === "number") return { ok: true, value: {} };
  const { loadTokenizer } = await import("../../runtime/tokenizer/tokenizer.ts");
  const path = String(model.tokenizer);
  const dir = existsSync(path) && statSync(path).isFile() ? dirname(path) : path;
  const tokenizer = await loadTokenizer(dir, model.family as Parameters<typeof loadTokenizer>[1]);
  return tokenizer.ok ? { ok: true, value: { tokenizerVocab: tokenizer.value.vocabSize } } : tokenizer;
}
