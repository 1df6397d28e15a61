// Hugging Face's sharded safetensors layout: tensors fill `model-0000i-of-0000n.safetensors` in
// order, a new shard starting when the next tensor would push the current one past the size
// limit (as transformers' `shard_checkpoint` does; a tensor larger than the limit gets a shard
// of its own), and `model.safetensors.index.json` maps every tensor to its shard. A model that
// fits one shard is a single `model.safetensors` without an index, as `save_pretrained` writes it.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { byteLength, writeSafetensors, type TensorToWrite } from "./safetensors-writer.ts";

/** transformers' default `max_shard_size` ("5GB", decimal). */
export const DEFAULT_SHARD_BYTES = 5_000_000_000;

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

export interface Shard {
  file: string;
  tensors: TensorToWrite[];
}

/** Splits `tensors` (in write order) into shards of at most `shardBytes` each where possible. */
export function planShards(tensors: readonly TensorToWrite[], shardBytes: number): Shard[] {
  const groups: TensorToWrite[][] = [];
  let size = 0;
  for (const t of tensors) {
    const bytes = byteLength(t);
    if (groups.length === 0 || (size + bytes > shardBytes && size > 0)) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(t);
    size += bytes;
  }
  if (groups.length === 1) return [{ file: SINGLE_FILE, tensors: groups[0] }];
  const n = String(groups.length).padStart(5, "0");
  return groups.map((group, i) => ({ file: `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`, tensors: group }));
}

/** `model.safetensors.index.json` as transformers writes it (sorted keys, two-space indent). */
export function shardIndexJson(shards: readonly Shard[]): string {
  const totalSize = shards.reduce((sum, s) => sum + s.tensors.reduce((n, t) => n + byteLength(t), 0), 0);
  const weightMap: Record<string, string> = {};
  const entries = shards.flatMap((s) => s.tensors.map((t) => [t.name, s.file] as const));
  for (const [name, file] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) weightMap[name] = file;
  return `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`;
}

/** Writes the shards in order (each file atomically), then the index when there are several. */
export async function writeShards(dir: string, shards: readonly Shard[]): Promise<void> {
  for (const shard of shards) await writeSafetensors(join(dir, shard.file), shard.tensors, { format: "pt" });
  if (shards.length > 1) await writeFile(join(dir, INDEX_FILE), shardIndexJson(shards));
}
