// Where one tensor's elements lie in a checkpoint file, and how to read exactly those bytes
// into a contiguous array (views with an offset or non-contiguous strides are gathered).
import type { BinaryFile } from "./binary-file.ts";
import { DTYPES, type TensorDType } from "./dtype.ts";
import { fault } from "./fault.ts";

/** A tensor found in a checkpoint's metadata, before any of its data is read. */
export interface TensorInfo {
  name: string;
  dtype: TensorDType;
  shape: number[];
  /** The file (shard) holding its storage. */
  file: string;
  /** File offset of the storage's element 0, and the bytes the storage occupies there. */
  storageStart: number;
  storageBytes: number;
  /** View into the storage, in elements. */
  offset: number;
  stride: number[];
}

/** A tensor's elements, contiguous (row-major) in their stored dtype, little-endian. */
export interface LoadedTensor {
  name: string;
  dtype: TensorDType;
  shape: number[];
  data: Uint8Array;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i];
  }
  return strides;
}

/** Bytes of the loaded (contiguous) tensor. */
export function tensorBytes(info: TensorInfo): number {
  return numel(info.shape) * DTYPES[info.dtype].bytes;
}

/** Element range [first, last] of the storage the view touches; null for an empty tensor. */
function extent(info: TensorInfo): { first: number; last: number } | null {
  if (numel(info.shape) === 0) return null;
  let last = info.offset;
  for (let i = 0; i < info.shape.length; i++) last += (info.shape[i] - 1) * info.stride[i];
  return { first: info.offset, last };
}

/** Faults when the view reaches past its storage (a truncated or inconsistent checkpoint). */
export function checkExtent(info: TensorInfo): void {
  const range = extent(info);
  const available = Math.floor(info.storageBytes / DTYPES[info.dtype].bytes);
  if (range && range.last >= available) {
    fault("SFT5111", `tensor ${info.name} in ${info.file} needs storage elements up to ${range.last} but only ${available} are stored`, `${info.file}: ${info.name}`, "the checkpoint is truncated or corrupt; download it again");
  }
}

/** Reads `info`'s elements from `file` (only the bytes its view spans) and makes them contiguous. */
export async function readTensor(file: BinaryFile, info: TensorInfo): Promise<LoadedTensor> {
  const range = extent(info);
  const size = DTYPES[info.dtype].bytes;
  if (range === null) return { name: info.name, dtype: info.dtype, shape: info.shape, data: new Uint8Array(0) };
  const span = await file.read(info.storageStart + range.first * size, (range.last - range.first + 1) * size, `tensor ${info.name}`);
  const dense = contiguousStrides(info.shape);
  const isContiguous = info.stride.every((s, i) => info.shape[i] === 1 || s === dense[i]);
  const data = isContiguous ? span : gather(span, info.shape, info.stride, size);
  return { name: info.name, dtype: info.dtype, shape: info.shape, data };
}

/** Copies a strided view (starting at span[0]) into row-major order. */
function gather(span: Uint8Array, shape: number[], stride: number[], size: number): Uint8Array {
  const out = new Uint8Array(numel(shape) * size);
  const index = new Array<number>(shape.length).fill(0);
  let source = 0;
  for (let i = 0; i < out.length; i += size) {
    out.set(span.subarray(source * size, source * size + size), i);
    // Odometer step over the shape, last dimension fastest.
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      source += stride[d];
      if (index[d] < shape[d]) break;
      source -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}
