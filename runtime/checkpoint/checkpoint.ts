// A Hugging Face style checkpoint directory: safetensors or torch.save files, single or sharded
// with an index json. Opening reads only metadata (headers, pickles); tensor data is streamed
// one tensor at a time, so a shard is never held whole in memory.
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { BinaryFile, withFile } from "./binary-file.ts";
import { captureFaults, fault, faultDiagnostic } from "./fault.ts";
import { readSafetensorsIndex } from "./safetensors.ts";
import { readTorchZipIndex } from "./torch-zip.ts";
import { readTensor, tensorBytes, type LoadedTensor, type TensorInfo } from "./tensor.ts";

export type CheckpointFormat = "safetensors" | "torch";

/** The layouts looked for, in order of preference. */
const LAYOUTS: readonly { file: string; format: CheckpointFormat; sharded: boolean }[] = [
  { file: "model.safetensors.index.json", format: "safetensors", sharded: true },
  { file: "model.safetensors", format: "safetensors", sharded: false },
  { file: "pytorch_model.bin.index.json", format: "torch", sharded: true },
  { file: "pytorch_model.bin", format: "torch", sharded: false },
];

export interface StreamOptions {
  /** Which tensors to read (default: all). */
  include?: (info: TensorInfo) => boolean;
  /** Called after each tensor with the bytes read so far and the bytes to read in all. */
  onProgress?: (done: number, total: number) => void;
}

export interface Checkpoint {
  dir: string;
  format: CheckpointFormat;
  /** Shard files, in the order their tensors stream. */
  files: string[];
  /** Every tensor, in streaming order. */
  tensors: TensorInfo[];
  /**
   * Reads tensors one at a time, in file order. Yields an error value and stops if a file
   * cannot be read (changed or removed since it was opened).
   */
  stream(options?: StreamOptions): AsyncGenerator<Result<LoadedTensor>>;
}

/** Finds and indexes the checkpoint in `dir`; no tensor data is read. */
export async function openCheckpoint(dir: string): Promise<Result<Checkpoint>> {
  const layout = LAYOUTS.find((l) => existsSync(join(dir, l.file)));
  if (!layout) {
    return fail(diag("SFT5105", `no checkpoint in ${dir}: looked for ${LAYOUTS.map((l) => l.file).join(", ")}`, { where: dir, hint: "point the model path at a Hugging Face style model directory" }));
  }
  const readIndex = layout.format === "safetensors" ? readSafetensorsIndex : readTorchZipIndex;
  return captureFaults(join(dir, layout.file), async () => {
    const shards = layout.sharded ? await shardFiles(dir, join(dir, layout.file)) : [{ file: layout.file, expected: [] }];
    const tensors: TensorInfo[] = [];
    for (const shard of shards) {
      const found = await withFile(join(dir, shard.file), readIndex);
      const names = new Set(found.map((t) => t.name));
      const absent = shard.expected.find((name) => !names.has(name));
      if (absent !== undefined) {
        fault("SFT5113", `${layout.file} places tensor ${absent} in ${shard.file}, which does not contain it`, join(dir, layout.file), "the index and the shards come from different downloads; download them again");
      }
      tensors.push(...found.sort((a, b) => a.storageStart - b.storageStart));
    }
    const files = shards.map((s) => join(dir, s.file));
    return { dir, format: layout.format, files, tensors, stream: (options?: StreamOptions) => stream(files, tensors, options ?? {}) };
  });
}

/** The shard files an index json names, each with the tensors it should hold. */
async function shardFiles(dir: string, indexPath: string): Promise<{ file: string; expected: string[] }[]> {
  const bad = (why: string): never => fault("SFT5113", `${indexPath} ${why}`, indexPath, "download the index json again");
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, "utf8"));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    bad(`is not valid JSON: ${error.message}`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) return bad('has no "weight_map" object');
  const byFile = new Map<string, string[]>();
  for (const [name, file] of Object.entries(weightMap)) {
    // A shard is a plain file next to the index: no folders, so nothing outside `dir` is read.
    if (typeof file !== "string" || file !== basename(file) || file === ".." || file === ".") bad(`maps ${name} to ${JSON.stringify(file)}, not a file name in ${dir}`);
    if (!existsSync(join(dir, file))) bad(`names shard ${file}, which is not in ${dir}`);
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  return [...byFile].sort(([a], [b]) => a.localeCompare(b)).map(([file, expected]) => ({ file, expected }));
}

async function* stream(files: string[], tensors: TensorInfo[], options: StreamOptions): AsyncGenerator<Result<LoadedTensor>> {
  const selected = tensors.filter(options.include ?? (() => true));
  const total = selected.reduce((sum, t) => sum + tensorBytes(t), 0);
  let done = 0;
  for (const path of files) {
    const inFile = selected.filter((t) => t.file === path);
    if (inFile.length === 0) continue;
    let file: BinaryFile | undefined;
    try {
      file = await BinaryFile.open(path);
      for (const info of inFile) {
        const tensor = await readTensor(file, info);
        done += tensorBytes(info);
        options.onProgress?.(done, total);
        yield ok(tensor);
      }
    } catch (error) {
      yield fail(faultDiagnostic(error, path));
      return;
    } finally {
      await file?.close();
    }
  }
}
