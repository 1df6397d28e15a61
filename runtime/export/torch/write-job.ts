// `sftc export --target torchrun`: a pipeline as a self-contained PyTorch training job.
//
//   model.py          the family's module, generated from its declaration (model-py.ts)
//   train.py          DDP (default) or FSDP training under torchrun (job/train.py)
//   checkpoint_io.py  Hugging Face / safetensors / PEFT reading and writing (job/checkpoint_io.py)
//   config.json       the resolved pipeline, the method, the train settings and the step count
//   data/             sftc's tokenized examples (input_ids.i32, labels.i32: little-endian int32,
//                     concatenated; examples.json: offsets) and batches.json: every micro-batch of
//                     every epoch the run needs, as example indices, in sftc's order
//   init/adapter/     LoRA only: the initial adapters (PEFT format), A ~ U(±1/sqrt(in)), B = 0
//   README.md         launch commands
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import type { ModelConfig } from "../../../stdlib/families/config.ts";
import type { Family } from "../../../stdlib/families/family.ts";
import { installRoot } from "../../install.ts";
import { Random } from "../../random.ts";
import { adapterConfigJson, writePeftAdapter, type LoraModuleWeights } from "../../export/peft.ts";
import { checkSettings, totalSteps, type TrainSettings } from "../../train/settings.ts";
import { loraNativeTargets, torchModelSource, type TorchLora } from "./model-py.ts";
import { jobReadme } from "./readme.ts";

/** One tokenized example: Hugging Face ids and labels (-100 where no loss is taken). */
export interface JobExample {
  inputIds: ArrayLike<number>;
  labels: ArrayLike<number>;
}

/** The training data as sftc schedules it. */
export interface JobData {
  examples: readonly JobExample[];
  /** The micro-batches of `epoch` in sftc's order, each a list of example indices (one per row). */
  epochBatches(epoch: number): readonly (readonly number[])[];
  padId: number;
}

export type JobMethod = { kind: "full" } | ({ kind: "lora" | "qlora" } & TorchLora);

export interface TorchJobInput {
  pipeline: { name: string; resolved: unknown };
  family: Family;
  config: ModelConfig;
  /** The base model directory the job loads (absolute). */
  modelDir: string;
  method: JobMethod;
  train: TrainSettings;
  data: JobData;
}

export interface WrittenJob {
  totalSteps: number;
  microBatches: number;
  examples: number;
}

// found from the install root, so the bundled CLI (dist/) finds them too
const ASSETS = join(installRoot, "runtime", "export", "torch", "job");
const STATIC_FILES = ["train.py", "checkpoint_io.py"];
/** Files of the base model directory that a full fine-tune's exported checkpoint carries along. */
const MODEL_SIDE_FILES = [
  "config.json", "generation_config.json", "tokenizer.model", "ice_text.model", "vocab.json", "merges.txt",
  "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json",
];

/** Writes the job into `out` (new, empty, or a previous export of a job). */
export async function writeTorchJob(out: string, input: TorchJobInput): Promise<Result<WrittenJob>> {
  const { train, data, method } = input;
  const lora = method.kind === "full" ? null : method;
  const perEpoch = data.epochBatches(0).length;
  const checked = checkSettings(train, perEpoch);
  if (!checked.ok) return checked;
  const steps = totalSteps(train, perEpoch);
  const needed = steps * train.grad_accum;
  const epochs: (readonly (readonly number[])[])[] = [];
  for (let used = 0; used < needed; used += epochs[epochs.length - 1].length) epochs.push(data.epochBatches(epochs.length));

  const vocab = input.config.dims.vocab;
  const outside = data.examples.findIndex((e) => Array.from(e.inputIds).some((id) => id < 0 || id >= vocab));
  if (outside >= 0) {
    const id = Array.from(data.examples[outside].inputIds).find((t) => t < 0 || t >= vocab);
    return fail(diag("SFT4702", `training example ${outside} holds token id ${id}, beyond the ${vocab} embedding rows of the model in ${input.modelDir}`, {
      where: input.modelDir,
      hint: "the tokenizer and the model do not belong together: use the tokenizer of this checkpoint",
    }));
  }
  const source = torchModelSource(input.family, input.config, lora);
  if (!source.ok) return source;
  const targets = lora ? loraNativeTargets(input.family, lora.targets) : ok<string[]>([]);
  if (!targets.ok) return targets;
  const usable = await prepareDirectory(out);
  if (!usable.ok) return usable;

  await mkdir(join(out, "data"), { recursive: true });
  const offsets = [0];
  for (const e of data.examples) offsets.push(offsets[offsets.length - 1] + e.inputIds.length);
  const ids = new Int32Array(offsets[offsets.length - 1]);
  const labels = new Int32Array(ids.length);
  data.examples.forEach((e, i) => {
    ids.set(Array.from(e.inputIds), offsets[i]);
    labels.set(Array.from(e.labels), offsets[i]);
  });
  await writeFile(join(out, "data", "input_ids.i32"), littleEndian(ids));
  await writeFile(join(out, "data", "labels.i32"), littleEndian(labels));
  await writeFile(join(out, "data", "examples.json"), `${JSON.stringify({ count: data.examples.length, offsets })}\n`);
  await writeFile(join(out, "data", "batches.json"), `${JSON.stringify({ pad_id: data.padId, epochs })}\n`);

  const peft = lora
    ? adapterConfigJson({ baseModel: input.modelDir, rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, targetModules: targets.value, dtype: "F32" })
    : null;
  if (lora) await writePeftAdapter(join(out, "init", "adapter"), { baseModel: input.modelDir, rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, targetModules: targets.value, dtype: "F32" }, initialAdapters(input.family, input.config, lora.rank, targets.value, train.seed));

  const config = {
    target: "torchrun",
    pipeline: input.pipeline.name,
    resolved: input.pipeline.resolved,
    model: { family: input.family.name, path: input.modelDir, copy_files: MODEL_SIDE_FILES },
    method: lora ? { kind: method.kind, rank: lora.rank, alpha: lora.alpha, dropout: lora.dropout, targets: targets.value } : { kind: "full" },
    train,
    total_steps: steps,
    peft,
  };
  await writeFile(join(out, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  await writeFile(join(out, "model.py"), source.value);
  for (const name of STATIC_FILES) await copyFile(join(ASSETS, name), join(out, name));
  await writeFile(join(out, "README.md"), jobReadme({ pipeline: input.pipeline.name, family: input.family.title, method: method.kind, totalSteps: steps, train }));
  return ok({ totalSteps: steps, microBatches: epochs.reduce((n, e) => n + e.length, 0), examples: data.examples.length });
}

/**
 * LoRA's starting point as PEFT makes it: A with kaiming_uniform_(a = sqrt(5)), i.e. uniform in
 * ±1/sqrt(in_features), and B = 0, so training starts from the base model exactly.
 */
export function initialAdapters(family: Family, config: ModelConfig, rank: number, natives: readonly string[], seed: number): LoraModuleWeights[] {
  const random = new Random(seed);
  const modules: LoraModuleWeights[] = [];
  for (let layer = 0; layer < config.dims.layers; layer++) {
    for (const decl of family.tensors) {
      const module = decl.name.replace(/\.weight$/, "");
      if (!decl.name.includes("{layer}") || module === decl.name || !natives.includes(module.split(".").pop()!)) continue;
      const [outFeatures, inFeatures] = decl.shape(config.dims);
      const bound = 1 / Math.sqrt(inFeatures);
      const a = Float32Array.from({ length: rank * inFeatures }, () => (2 * random.uniform() - 1) * bound);
      modules.push({ modulePath: module.replaceAll("{layer}", String(layer)), a, b: new Float32Array(outFeatures * rank), inFeatures, outFeatures });
    }
  }
  return modules;
}

function littleEndian(values: Int32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setInt32(i * 4, v, true));
  return bytes;
}

/** An output directory must be new, empty, or hold a previous export (its run/ is kept). */
async function prepareDirectory(out: string): Promise<Result<void>> {
  if (existsSync(out)) {
    const entries = await readdir(out);
    const previous = entries.includes("config.json") && (await readFile(join(out, "config.json"), "utf8")).includes('"target": "torchrun"');
    if (entries.length > 0 && !previous) {
      return fail(diag("SFT4703", `${out} is not empty and does not hold an exported job`, { where: out, hint: "choose a new directory with --out, or empty this one" }));
    }
  }
  try {
    await mkdir(out, { recursive: true });
  } catch (error) {
    return fail(diag("SFT4703", `cannot create ${out}: ${(error as Error).message}`, { where: out, hint: "choose a writable directory with --out" }));
  }
  return ok(undefined);
}
