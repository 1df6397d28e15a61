// QLoRA base weights on the device in their NF4 form: the four buffers of one quantized tensor
// (codes, absmax codes, scales, offset; the sizes compiler/plan/storage.ts counts) and the shared
// lookup tables. The matmul launches that read such a weight bind these instead of a dense buffer
// (library/matmul.ts, stdlib/kernels/nf4-matmul.ts).
import { invariant } from "../../compiler/diagnostics.ts";
import { nf4Tables, NF4_B_BINDINGS } from "../../stdlib/kernels/nf4-matmul.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { uploadTensor, type GpuTensor } from "../gpu/tensor.ts";
import type { TensorContents } from "../gpu/kernel-probe.ts";
import { quantizeNf4, type Nf4Tensor } from "../../stdlib/quant/nf4.ts";

/** The device buffers of one NF4 weight: what a matmul binds. */
export interface Nf4Buffers {
  /** Packed 4-bit codes, 8 per u32 word. */
  codes: GpuTensor;
  /** Packed 8-bit absmax codes, 4 per u32 word. */
  absmax: GpuTensor;
  /** One f32 per 256 absmax codes. */
  scales: GpuTensor;
  /** The f32 mean subtracted from the absmax values. */
  offset: GpuTensor;
}

/** One NF4 weight on the device, with its host copy. */
export interface Nf4Weight extends Nf4Buffers {
  /** The weight as quantized on the host (for export: dequantize it). */
  host: Nf4Tensor;
}

function words(bytes: Uint8Array): Uint32Array {
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  return new Uint32Array(padded.buffer);
}

/** Quantizes `values` to NF4 (double-quantized absmax) and uploads the parts. */
export function uploadNf4Weight(gpu: GpuDevice, values: ArrayLike<number>, label: string): Nf4Weight {
  return uploadNf4Tensor(gpu, quantizeNf4(Float32Array.from(values)), label);
}

/** Uploads the parts of `host`, a weight already quantized with double-quantized absmax. */
export function uploadNf4Tensor(gpu: GpuDevice, host: Nf4Tensor, label: string): Nf4Weight {
  return { host, ...uploadNf4Parts(gpu, host, label) };
}

/** Quantizes `values` to NF4 (double-quantized absmax) and uploads the parts, keeping no host copy. */
export function uploadNf4Buffers(gpu: GpuDevice, values: ArrayLike<number>, label: string): Nf4Buffers {
  return uploadNf4Parts(gpu, quantizeNf4(Float32Array.from(values)), label);
}

/** The contents of the four buffers of `host` (double-quantized absmax), as Nf4Buffers holds them. */
function nf4Parts(host: Nf4Tensor): Record<keyof Nf4Buffers, TensorContents & { data: Uint32Array | Float32Array }> {
  invariant(!(host.absmax instanceof Float32Array), "QLoRA weights are double-quantized");
  return {
    codes: { dtype: "u32", data: words(host.codes) },
    absmax: { dtype: "u32", data: words(host.absmax.codes) },
    scales: { dtype: "f32", data: host.absmax.scales },
    offset: { dtype: "f32", data: Float32Array.of(host.absmax.offset) },
  };
}

function uploadNf4Parts(gpu: GpuDevice, host: Nf4Tensor, label: string): Nf4Buffers {
  const parts = nf4Parts(host);
  const upload = (part: keyof Nf4Buffers, name: string) => uploadTensor(gpu, parts[part].dtype, [parts[part].data.length], parts[part].data, `${label} (NF4 ${name})`);
  return { codes: upload("codes", "codes"), absmax: upload("absmax", "absmax codes"), scales: upload("scales", "scales"), offset: upload("offset", "offset") };
}

/** The initial contents of the NF4 matmul's B bindings for `host`, lookup tables included (a probe's or a timing's tensors). */
export function nf4Contents(host: Nf4Tensor): Record<string, TensorContents> {
  const parts = nf4Parts(host);
  const b = NF4_B_BINDINGS;
  return { [b.codes]: parts.codes, [b.absmax]: parts.absmax, [b.scales]: parts.scales, [b.offset]: parts.offset, [b.tables]: { dtype: "f32", data: nf4Tables() } };
}

/** The four buffers of `w`. */
export function nf4Buffers(w: Nf4Buffers): GpuTensor[] {
  return [w.codes, w.absmax, w.scales, w.offset];
}

/** The lookup tables of the NF4 matmul, uploaded once per device user. */
export function uploadNf4Tables(gpu: GpuDevice): GpuTensor {
  const tables = nf4Tables();
  return uploadTensor(gpu, "f32", [tables.length], tables, "NF4 lookup tables");
}

/** The bindings of B for the NF4 matmul kernel. */
export function nf4Bindings(w: Nf4Buffers, tables: GpuTensor): Record<string, GpuTensor> {
  const b = NF4_B_BINDINGS;
  return { [b.codes]: w.codes, [b.absmax]: w.absmax, [b.scales]: w.scales, [b.offset]: w.offset, [b.tables]: tables };
}
