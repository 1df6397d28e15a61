// Engine state tensors in and out of a checkpoint's `tensors.safetensors`: float32 tensors as
// F32, float64 ones (the CPU reference engine) as F64. The layout recorded in `state.json`
// says which array type each tensor is restored into.
import { captureFaults } from "../checkpoint/fault.ts";
import { withFile } from "../checkpoint/binary-file.ts";
import { readSafetensorsIndex } from "../checkpoint/safetensors.ts";
import { readTensor } from "../checkpoint/tensor.ts";
import type { TensorToWrite } from "../export/safetensors-writer.ts";
import type { Result } from "../../compiler/diagnostics.ts";
import type { StateTensor } from "./backend.ts";

export interface TensorLayout {
  dtype: "f64" | "f32";
  shape: number[];
}

const bytesOf = (data: Float64Array | Float32Array) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

/** What to hand to `saveCheckpoint`, and the layout to keep in `state.json`. */
export function stateToWrite(tensors: readonly StateTensor[]): { tensors: TensorToWrite[]; layout: Record<string, TensorLayout> } {
  const layout: Record<string, TensorLayout> = {};
  const out = tensors.map((t): TensorToWrite => {
    const f64 = t.data instanceof Float64Array;
    layout[t.name] = { dtype: f64 ? "f64" : "f32", shape: t.shape };
    return { name: t.name, dtype: f64 ? "F64" : "F32", shape: t.shape, bytes: () => bytesOf(t.data) };
  });
  return { tensors: out, layout };
}

/** Reads every tensor of `layout` back from `file`; damage is a diagnostic. */
export function readState(file: string, layout: Readonly<Record<string, TensorLayout>>): Promise<Result<StateTensor[]>> {
  return captureFaults(file, () =>
    withFile(file, async (f) => {
      const infos = new Map((await readSafetensorsIndex(f)).map((i) => [i.name, i]));
      const out: StateTensor[] = [];
      for (const [name, l] of Object.entries(layout)) {
        const info = infos.get(name);
        if (!info) continue; // the engine names what it misses when it loads
        const { data } = await readTensor(f, info);
        const copy = data.slice().buffer; // aligned for the typed-array view
        out.push({ name, shape: l.shape, data: l.dtype === "f64" ? new Float64Array(copy) : new Float32Array(copy) });
      }
      return out;
    }),
  );
}
