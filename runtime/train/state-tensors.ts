// Engine state tensors in and out of a checkpoint's `tensors.safetensors`. Float32 tensors are
// stored as F32. Float64 tensors (the CPU reference engine) are stored bit for bit as raw
// little-endian bytes in a U8 tensor, because the safetensors writer has no F64 yet; the
// layout recorded in `state.json` gives each tensor's real dtype and shape.
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
    return { name: t.name, dtype: f64 ? "U8" : "F32", shape: f64 ? [t.data.byteLength] : t.shape, bytes: () => bytesOf(t.data) };
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
