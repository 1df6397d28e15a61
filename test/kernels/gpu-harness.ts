// Shared helpers for GPU kernel tests: the shared device (tests skip cleanly without one),
// seeded inputs rounded to the storage dtype, and a check that the GPU reported no errors.
import * as assert from "uvu/assert";
import { getSharedDevice, type GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { roundToDType, type StorageDType } from "../../stdlib/kernels/dtype.ts";

/** Wraps a GPU test body: runs it on the shared device, or logs a skip when there is none. */
export function withGpu(body: (gpu: GpuDevice) => Promise<void>): () => Promise<void> {
  return async () => {
    const opened = await getSharedDevice();
    if (!opened.ok) {
      console.log(`    skipped (no GPU): ${opened.diagnostics[0]?.message}`);
      return;
    }
    const gpu = opened.value;
    try {
      await body(gpu);
    } catch (failure) {
      // a kernel that failed to compile shows up as wrong numbers first: print the cause too
      for (const e of await gpu.takeErrors()) console.log(`    ${e.code} ${e.message}`);
      throw failure;
    }
    const errors = await gpu.takeErrors();
    assert.equal(errors.map((e) => e.message), [], "GPU errors");
  };
}

/** withGpu for bodies that need shader-f16 (the subgroup-matrix kernels stage f16): skipped without it. */
export function withF16Gpu(body: (gpu: GpuDevice) => Promise<void>): () => Promise<void> {
  return withGpu(async (gpu) => (gpu.hasF16 ? body(gpu) : console.log("    skipped (no shader-f16)")));
}

/** `n` values from N(0, scale^2), rounded to what a `dtype` buffer stores. */
export function randomValues(rng: Random, n: number, dtype: StorageDType = "f32", scale = 1): Float64Array {
  const raw = new Float64Array(n);
  for (let i = 0; i < n; i++) raw[i] = rng.normal() * scale;
  return roundToDType(dtype, raw);
}

/** Relative-error tolerance for results computed from `dtype` inputs. */
export function toleranceFor(dtype: StorageDType): number {
  return dtype === "f32" ? 1e-5 : 1e-2;
}

/** Float dtypes this device can store (f16 only with shader-f16). */
export function floatDTypes(gpu: GpuDevice): StorageDType[] {
  return gpu.hasF16 ? ["f32", "f16", "bf16"] : ["f32", "bf16"];
}

/** Bitwise equality of two float arrays (NaN payloads included). */
export function assertBitwiseEqual(a: Float32Array, b: Float32Array, label: string): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert.is(ua.length, ub.length, `${label}: length`);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.unreachable(`${label}: differs at ${i}: ${a[i]} vs ${b[i]}`);
}

/**
 * Central-difference gradient of the scalar `loss(x)` at x, for checking hand-derived backward
 * references against their forward references (float64, so h = 1e-6 is accurate to ~1e-8).
 */
export function numericGradient(loss: (x: Float64Array) => number, x: Float64Array, h = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  const probe = Float64Array.from(x);
  for (let i = 0; i < x.length; i++) {
    probe[i] = x[i] + h;
    const up = loss(probe);
    probe[i] = x[i] - h;
    const down = loss(probe);
    probe[i] = x[i];
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** sum(a * b): turns an output and its upstream gradient into a scalar loss. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
