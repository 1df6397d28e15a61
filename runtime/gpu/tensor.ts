// Tensors on the GPU: one storage buffer each, with a dtype and a shape; upload and download.
import { invariant } from "../../compiler/diagnostics.ts";
import { bytesPerElement, decodeHost, encodeHost, storageBytes, type StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { GpuDevice } from "./device.ts";

/** A GPU buffer holding `shape` elements of `dtype`, row-major. */
export class GpuTensor {
  readonly numel: number;
  private destroyed = false;

  constructor(
    private readonly gpu: GpuDevice,
    readonly buffer: GPUBuffer,
    readonly dtype: StorageDType,
    readonly shape: readonly number[],
    readonly label: string,
    /** False for a tensor in a buffer another tensor owns (`tensorInBuffer`): it neither counts nor frees it. */
    private readonly ownsBuffer = true,
    /** Where the tensor starts in the buffer (`tensorInBuffer`, `tensorWindow`); bind groups bind from here. */
    readonly byteOffset = 0,
    /** Bytes from `byteOffset` that are the tensor's; bind groups bind these. */
    readonly byteSize = buffer.size - byteOffset,
  ) {
    this.numel = shape.reduce((a, b) => a * b, 1);
    if (ownsBuffer) gpu.countBytes(buffer.size);
  }

  /** Whether bind groups bind a range of the buffer rather than all of it. */
  get isRange(): boolean {
    return this.byteOffset !== 0 || this.byteSize !== this.buffer.size;
  }

  /** Frees the buffer now (VRAM is not left to the garbage collector); a second call does nothing. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (!this.ownsBuffer) return;
    this.gpu.countBytes(-this.buffer.size);
    this.buffer.destroy();
  }
}

/** A zero-filled tensor (Dawn clears new buffers). */
export function createTensor(gpu: GpuDevice, dtype: StorageDType, shape: readonly number[], label = "tensor"): GpuTensor {
  invariant(shape.every((d) => Number.isInteger(d) && d >= 0), `bad shape [${shape}] for ${label}`);
  const numel = shape.reduce((a, b) => a * b, 1);
  const buffer = gpu.device.createBuffer({ label, size: storageBytes(dtype, numel), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  return new GpuTensor(gpu, buffer, dtype, shape, label);
}

/**
 * A tensor stored from byte `byteOffset` of `owner`'s buffer (a multiple of the device's
 * minStorageBufferOffsetAlignment), which must be large enough; `owner` keeps owning (and frees)
 * the buffer. Lets tensors share one buffer: at one offset when their lifetimes do not overlap,
 * at disjoint ranges when no dispatch binds them with a write.
 */
export function tensorInBuffer(gpu: GpuDevice, owner: GpuTensor, dtype: StorageDType, shape: readonly number[], label = "tensor", byteOffset = 0): GpuTensor {
  const bytes = storageBytes(dtype, shape.reduce((a, b) => a * b, 1));
  invariant(byteOffset % gpu.limits.minStorageBufferOffsetAlignment === 0, `${label}: byte ${byteOffset} is not an aligned offset into ${owner.label}`);
  invariant(byteOffset + bytes <= owner.byteSize, `${label}: [${shape}] ${dtype} at byte ${byteOffset} does not fit in ${owner.label} (${owner.byteSize} bytes)`);
  return new GpuTensor(gpu, owner.buffer, dtype, shape, label, false, owner.byteOffset + byteOffset, bytes);
}

/**
 * The part of `owner` from element `start` on, as a tensor of `owner`'s dtype that kernels bind
 * (a bind group binds it from its byte offset to `owner`'s end): how a kernel without an offset
 * uniform reads or writes one head of one batch row of a strided view. The offset must be a
 * multiple of the device's minStorageBufferOffsetAlignment; `owner` keeps owning the buffer.
 */
export function tensorWindow(gpu: GpuDevice, owner: GpuTensor, start: number, label = `${owner.label} from ${start}`): GpuTensor {
  const skipped = start * bytesPerElement(owner.dtype);
  const byteOffset = owner.byteOffset + skipped;
  invariant(byteOffset % gpu.limits.minStorageBufferOffsetAlignment === 0 && skipped < owner.byteSize, `${label}: byte ${byteOffset} is not an aligned offset into ${owner.label}`);
  const byteSize = owner.byteSize - skipped;
  return new GpuTensor(gpu, owner.buffer, owner.dtype, [byteSize / bytesPerElement(owner.dtype)], label, false, byteOffset, byteSize);
}

/** A tensor filled with `values` (converted to `dtype`: f16/bf16 round to nearest even). */
export function uploadTensor(
  gpu: GpuDevice,
  dtype: StorageDType,
  shape: readonly number[],
  values: ArrayLike<number>,
  label = "tensor",
): GpuTensor {
  const tensor = createTensor(gpu, dtype, shape, label);
  writeTensor(gpu, tensor, values);
  return tensor;
}

/** Overwrites the whole tensor with `values`. */
export function writeTensor(gpu: GpuDevice, tensor: GpuTensor, values: ArrayLike<number>): void {
  invariant(values.length === tensor.numel, `${tensor.label}: ${values.length} values for shape [${tensor.shape}]`);
  const bytes = encodeHost(tensor.dtype, values);
  gpu.queue.writeBuffer(tensor.buffer, tensor.byteOffset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Copies the tensor back to the host (floats widened to f32). */
export async function readTensor(gpu: GpuDevice, tensor: GpuTensor): Promise<Float32Array | Int32Array | Uint32Array> {
  const bytes = await readBytes(gpu, tensor.buffer, tensor.byteOffset, tensor.byteSize);
  return decodeHost(tensor.dtype, bytes, tensor.numel);
}

/** Convenience for float tensors: the values as a Float32Array. */
export async function readFloats(gpu: GpuDevice, tensor: GpuTensor): Promise<Float32Array> {
  invariant(tensor.dtype === "f32" || tensor.dtype === "f16" || tensor.dtype === "bf16", `${tensor.label} is not a float tensor`);
  return (await readTensor(gpu, tensor)) as Float32Array;
}

/** The raw bytes of `size` bytes of a buffer from `offset`, copied out of the mapped range before it is unmapped. */
async function readBytes(gpu: GpuDevice, buffer: GPUBuffer, offset: number, size: number): Promise<ArrayBuffer> {
  const staging = gpu.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, size);
  gpu.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0); // the mapped range is detached by unmap()
  staging.unmap();
  staging.destroy();
  return copy;
}
