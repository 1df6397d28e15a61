// Element types of checkpoint tensors and their names in torch pickles and safetensors headers.
import { bf16BitsToF32, f16BitsToF32 } from "../../stdlib/kernels/dtype.ts";

export type TensorDType = "f64" | "f32" | "f16" | "bf16" | "i64" | "i32" | "i16" | "i8" | "u8" | "bool";

interface DTypeInfo {
  bytes: number;
  /** `torch.<name>` storage class in a pickle. */
  torchStorage?: string;
  /** The dtype string of a safetensors header. */
  safetensors: string;
}

export const DTYPES: Readonly<Record<TensorDType, DTypeInfo>> = {
  f64: { bytes: 8, torchStorage: "DoubleStorage", safetensors: "F64" },
  f32: { bytes: 4, torchStorage: "FloatStorage", safetensors: "F32" },
  f16: { bytes: 2, torchStorage: "HalfStorage", safetensors: "F16" },
  bf16: { bytes: 2, torchStorage: "BFloat16Storage", safetensors: "BF16" },
  i64: { bytes: 8, torchStorage: "LongStorage", safetensors: "I64" },
  i32: { bytes: 4, torchStorage: "IntStorage", safetensors: "I32" },
  i16: { bytes: 2, safetensors: "I16" },
  i8: { bytes: 1, torchStorage: "CharStorage", safetensors: "I8" },
  u8: { bytes: 1, torchStorage: "ByteStorage", safetensors: "U8" },
  bool: { bytes: 1, torchStorage: "BoolStorage", safetensors: "BOOL" },
};

const byTorchStorage = new Map(Object.entries(DTYPES).flatMap(([dtype, info]) => (info.torchStorage ? [[info.torchStorage, dtype as TensorDType]] : [])));
const bySafetensors = new Map(Object.entries(DTYPES).map(([dtype, info]) => [info.safetensors, dtype as TensorDType]));

export function dtypeOfTorchStorage(name: string): TensorDType | undefined {
  return byTorchStorage.get(name);
}

export function dtypeOfSafetensors(name: string): TensorDType | undefined {
  return bySafetensors.get(name);
}

/** Reads little-endian elements of `dtype` as numbers (int64 beyond 2^53 loses precision). */
export function decodeElements(dtype: TensorDType, data: Uint8Array): Float64Array {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = data.byteLength / DTYPES[dtype].bytes;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = readElement(view, dtype, i);
  return out;
}

function readElement(view: DataView, dtype: TensorDType, i: number): number {
  switch (dtype) {
    case "f64": return view.getFloat64(i * 8, true);
    case "f32": return view.getFloat32(i * 4, true);
    case "f16": return f16BitsToF32(view.getUint16(i * 2, true));
    case "bf16": return bf16BitsToF32(view.getUint16(i * 2, true));
    case "i64": return Number(view.getBigInt64(i * 8, true));
    case "i32": return view.getInt32(i * 4, true);
    case "i16": return view.getInt16(i * 2, true);
    case "i8": return view.getInt8(i);
    case "u8": case "bool": return view.getUint8(i);
  }
}
