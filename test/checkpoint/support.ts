// Shared by the checkpoint tests: comparing streamed tensors with a
// fixture's manifest.json (written by spec/golden/make_checkpoints.py from what PyTorch saved).
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import * as assert from "uvu/assert";
import type { Checkpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { decodeElements } from "../../runtime/checkpoint/dtype.ts";
import { expectOk } from "../support/result.ts";
import type { LoadedTensor } from "../../runtime/checkpoint/tensor.ts";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures", "checkpoints");

interface ManifestTensor {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  sum: number;
  weighted_sum: number;
}

export function readManifest(dir: string): ManifestTensor[] {
  return JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")).tensors;
}

/** Sum of the values and the position-weighted sum (weights 1 + i mod 7) the manifest records. */
function checksums(tensor: LoadedTensor): { sum: number; weighted: number; scale: number } {
  const values = decodeElements(tensor.dtype, tensor.data);
  let sum = 0;
  let weighted = 0;
  let scale = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    weighted += values[i] * (1 + (i % 7));
    scale += Math.abs(values[i]) * (1 + (i % 7));
  }
  return { sum, weighted, scale };
}

/** Streams every tensor of `checkpoint` and checks each against the manifest; returns the count. */
export async function assertMatchesManifest(checkpoint: Checkpoint, manifest: ManifestTensor[]): Promise<number> {
  const expected = new Map(manifest.map((t) => [t.name, t]));
  assert.equal(new Set(checkpoint.tensors.map((t) => t.name)), new Set(expected.keys()), "tensor names");
  let seen = 0;
  for await (const result of checkpoint.stream()) {
    const tensor = expectOk(result);
    const want = expected.get(tensor.name)!;
    const info = checkpoint.tensors.find((t) => t.name === tensor.name)!;
    assert.is(basename(info.file), want.file, `${tensor.name}: shard`);
    assert.is(tensor.dtype, want.dtype, `${tensor.name}: dtype`);
    assert.equal(tensor.shape, want.shape, `${tensor.name}: shape`);
    const got = checksums(tensor);
    const tolerance = 1e-12 * got.scale + 1e-12;
    assert.ok(Math.abs(got.sum - want.sum) <= tolerance, `${tensor.name}: sum ${got.sum} vs ${want.sum}`);
    assert.ok(Math.abs(got.weighted - want.weighted_sum) <= tolerance, `${tensor.name}: weighted sum ${got.weighted} vs ${want.weighted_sum}`);
    seen++;
  }
  return seen;
}
