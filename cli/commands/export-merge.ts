// `sftc export FILE.sft --merge --adapter DIR --out DIR`: the pipeline's base model with a LoRA
// adapter merged in, written as a Hugging Face directory (safetensors shards with index,
// config.json, tokenizer files), one tensor in memory at a time.
import { resolve } from "node:path";
import { diag } from "../../compiler/diagnostics.ts";
import { parseByteSize } from "../../compiler/plan/device-memory.ts";
import { mergeLora, type MergeDtype } from "../../runtime/export/merge.ts";
import { isFamilyName } from "../../stdlib/families/index.ts";
import { flag, flagValue, type FlagSpec, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { resolveOne, usageError } from "../pipeline-target.ts";
import { renderDiagnostic } from "../render.ts";

const DTYPES: readonly MergeDtype[] = ["f32", "f16", "bf16"];

export const mergeFlags: FlagSpec[] = [
  { name: "merge", description: "merge a LoRA adapter into the pipeline's base model and write a Hugging Face model" },
  { name: "adapter", value: "one", placeholder: "DIR", description: "with --merge: the PEFT adapter directory (a run's adapter/)" },
  { name: "dtype", value: "one", placeholder: "f16|bf16|f32", description: "with --merge: the dtype of the merged weights (default: the base model's)" },
  { name: "shard-size", value: "one", placeholder: "SIZE", description: "with --merge: the largest shard, e.g. 2GB (default 5GB)" },
  { name: "overwrite", description: "with --merge: replace a non-empty output directory" },
];

export async function runMerge(args: ParsedArgs, io: Io): Promise<number> {
  const adapter = flagValue(args, "adapter");
  const out = flagValue(args, "out");
  if (adapter === undefined) return usageError(io, "export", "--merge needs --adapter DIR: the PEFT adapter directory to merge");
  if (out === undefined) return usageError(io, "export", "--merge needs --out DIR: where to write the merged model");
  const dtype = flagValue(args, "dtype");
  if (dtype !== undefined && !DTYPES.includes(dtype as MergeDtype)) return usageError(io, "export", `--dtype must be one of ${DTYPES.join(", ")}`);
  const shardText = flagValue(args, "shard-size");
  const shardBytes = shardText === undefined ? undefined : parseByteSize(shardText);
  if (shardBytes === null) return usageError(io, "export", `--shard-size ${shardText} is not a size (e.g. 2GB, 500MiB)`);
  const resolved = resolveOne("export", args, io);
  if (!resolved.ok) return resolved.exit;
  const model = resolved.pipeline.model;
  const family = model.family;
  if (!isFamilyName(family) || model.init === "random" || typeof model.path !== "string") {
    io.err(renderDiagnostic(diag("SFT5806", "--merge needs a model loaded from a checkpoint directory (`path`), not `init = random`", { where: "model" }), new Map(), io.color));
    return 1;
  }
  const merged = await mergeLora(model.path, family, resolve(adapter), resolve(out), {
    dtype: dtype as MergeDtype | undefined,
    shardBytes,
    overwrite: flag(args, "overwrite"),
  });
  if (!merged.ok) {
    for (const d of merged.diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
    return 1;
  }
  const s = merged.value;
  io.out(`wrote ${out}: ${s.tensors} tensors in ${s.shards.length} shard(s), ${s.merged} merged with the adapter, ${s.replaced} replaced; copied ${s.copied.join(", ")}\n`);
  return 0;
}
