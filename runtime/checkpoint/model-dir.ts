// A model directory opened for one family: config.json checked and resolved, the checkpoint
// indexed and every tensor bound to its role, all before a single weight is read.
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { openCheckpoint, type Checkpoint } from "./checkpoint.ts";
import { loadModelConfig } from "./config.ts";
import { bindTensors, type TensorBinding } from "./family-check.ts";
import type { LoadedTensor } from "./tensor.ts";

export interface ModelDir {
  config: ModelConfig;
  checkpoint: Checkpoint;
  /** Role and layer of every tensor the model uses, by checkpoint name. */
  bindings: Map<string, TensorBinding>;
  /**
   * Streams the tensors the model uses (buffers skipped; a stored copy of a tied head too),
   * one at a time, each with its binding.
   */
  weights(onProgress?: (done: number, total: number) => void): AsyncGenerator<Result<LoadedTensor & TensorBinding>>;
}

/** Opens `dir` as a checkpoint of `family`; errors name the file, key or tensor at fault. */
export async function openModelDir(dir: string, family: FamilyName): Promise<Result<ModelDir>> {
  const config = await loadModelConfig(dir, family);
  if (!config.ok) return config;
  const checkpoint = await openCheckpoint(dir);
  if (!checkpoint.ok) return checkpoint;
  const bound = bindTensors(checkpoint.value.tensors, families[family], config.value.dims, dir);
  if (!bound.ok) return bound;
  const bindings = bound.value;
  const opened = checkpoint.value;
  const used = (name: string) => {
    const binding = bindings.get(name);
    return binding !== undefined && !(config.value.tiedHead && binding.role === "head.weight");
  };
  async function* weights(onProgress?: (done: number, total: number) => void): AsyncGenerator<Result<LoadedTensor & TensorBinding>> {
    for await (const result of opened.stream({ include: (t) => used(t.name), onProgress })) {
      yield result.ok ? ok({ ...result.value, ...bindings.get(result.value.name)! }) : result;
    }
  }
  return ok({ config: config.value, checkpoint: opened, bindings, weights });
}
