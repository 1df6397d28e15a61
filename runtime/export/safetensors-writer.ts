// Writes the safetensors format: an 8-byte little-endian header length, a JSON header
// (name -> dtype, shape, byte range; plus `__metadata__`) padded with spaces to 8 bytes, then
// the raw little-endian tensor bytes. Tensors are produced one at a time, so a merged 13B
// export never holds more than one tensor in memory. The file appears atomically.
import { open, rename, rm } from "node:fs/promises";

/** Every element type a checkpoint may hold, so any base tensor can be copied into a new file. */
export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const bytesPer: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Called once, when this tensor's bytes are due. */
  bytes: () => Uint8Array | Promise<Uint8Array>;
}

export function byteLength(t: Pick<TensorToWrite, "dtype" | "shape">): number {
  return t.shape.reduce((a, b) => a * b, 1) * bytesPer[t.dtype];
}

export function safetensorsHeader(tensors: readonly TensorToWrite[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const size = byteLength(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const body = Buffer.from(json, "utf8");
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata: Record<string, string> = { format: "pt" }): Promise<void> {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`sftc internal error: tensor ${t.name} written twice`);
    names.add(t.name);
  }
  const temp = `${path}.tmp`;
  const file = await open(temp, "w");
  try {
    await file.write(safetensorsHeader(tensors, metadata));
    for (const t of tensors) {
      const bytes = await t.bytes();
      if (bytes.byteLength !== byteLength(t)) throw new Error(`sftc internal error: ${t.name} has ${bytes.byteLength} bytes, expected ${byteLength(t)}`);
      await file.write(bytes);
    }
    await file.sync();
  } catch (e) {
    await file.close();
    await rm(temp, { force: true });
    throw e;
  }
  await file.close();
  await rename(temp, path);
}
