// safetensors files: an 8-byte little-endian header length, a JSON header mapping names to
// {dtype, shape, data_offsets}, then the raw little-endian tensor bytes.
import type { BinaryFile } from "./binary-file.ts";
import { fault } from "./fault.ts";
import { DTYPES, dtypeOfSafetensors } from "./dtype.ts";
import { contiguousStrides, numel, type TensorInfo } from "./tensor.ts";

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** The tensors of one safetensors file, located but not read. */
export async function readSafetensorsIndex(file: BinaryFile): Promise<TensorInfo[]> {
  const bad = (why: string, name?: string): never =>
    fault("SFT5112", `${file.path} is not a valid safetensors file: ${why}`, name ? `${file.path}: ${name}` : file.path, "download the file again");
  const lengthBytes = await file.read(0, 8, "the safetensors header length");
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, file.size - 8))) bad(`the header length ${headerLength} exceeds the file`);
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(await file.read(8, Number(headerLength), "the safetensors header")));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    bad(`the header is not JSON (${error.message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) return bad("the header is not a JSON object");
  const infos: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype: dtypeName, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
    const dtype = typeof dtypeName === "string" ? dtypeOfSafetensors(dtypeName) : undefined;
    if (dtype === undefined) {
      fault("SFT5117", `${file.path}: tensor ${name} has dtype ${JSON.stringify(dtypeName)}, which sftc does not read`, `${file.path}: ${name}`, "convert the tensor to F32, F16 or BF16");
    }
    const isCounts = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);
    if (!isCounts(shape) || !isCounts(offsets) || offsets.length !== 2) return bad(`tensor ${name} lacks a valid shape or data_offsets`, name);
    const [begin, end] = offsets;
    if (end - begin !== numel(shape) * DTYPES[dtype].bytes || begin > end) bad(`tensor ${name}'s data_offsets [${begin}, ${end}] do not match its shape [${shape}]`, name);
    if (dataStart + end > file.size) {
      fault("SFT5111", `${file.path} is truncated: tensor ${name} needs bytes up to ${dataStart + end} but the file has ${file.size}`, `${file.path}: ${name}`, "download the file again");
    }
    infos.push({ name, dtype, shape, file: file.path, storageStart: dataStart + begin, storageBytes: end - begin, offset: 0, stride: contiguousStrides(shape) });
  }
  return infos;
}
