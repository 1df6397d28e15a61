// Dawn's null backend: it lists every feature (subgroup matrices included, without
// configurations), compiles WGSL through Tint (parsing, types, the uniformity rules) and
// validates pipelines, but runs nothing. The tests of kernels that lavapipe cannot compile
// (subgroup matrices) check their WGSL here.
import { create } from "webgpu";
import "../../runtime/gpu/device.ts"; // installs the WebGPU globals
import { kernelSource, type KernelSpec } from "../../stdlib/kernels/kernel.ts";

export interface NullDevice {
  device: GPUDevice;
  subgroupSize: number;
  /** maxComputeWorkgroupStorageSize of the null device. */
  workgroupBytes: number;
  /** The Dawn instance, held as long as the device. */
  held: GPU;
}

/** A null-backend device with shader-f16, subgroups and subgroup matrices; undefined where Dawn has no such backend. */
export async function openNullDevice(): Promise<NullDevice | undefined> {
  const held = create(["backend=null", "enable-dawn-features=allow_unsafe_apis"]);
  const adapter = await held.requestAdapter();
  if (!adapter?.features.has("chromium-experimental-subgroup-matrix")) return undefined;
  const device = await adapter.requestDevice({ requiredFeatures: ["shader-f16", "subgroups", "chromium-experimental-subgroup-matrix"] as GPUFeatureName[] });
  const subgroupSize = (adapter.info as GPUAdapterInfo & { subgroupMaxSize: number }).subgroupMaxSize;
  return { device, subgroupSize, workgroupBytes: device.limits.maxComputeWorkgroupStorageSize, held };
}

/**
 * Tint's errors and warnings for `spec`, then, with `pipeline`, the pipeline's. Warnings count:
 * Dawn prints each one to the console at every compile (a deprecated builtin in a kernel would
 * print hundreds of lines into every run on a GPU).
 */
export async function kernelErrors(device: GPUDevice, spec: KernelSpec, pipeline: boolean): Promise<string[]> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: kernelSource(spec) });
  const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type !== "info").map((m) => `${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
  if (pipeline) {
    try {
      await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
    } catch (e) {
      errors.push(e instanceof Error ? e.message : String(e));
    }
  }
  const scoped = await device.popErrorScope();
  if (scoped) errors.push(scoped.message);
  return errors;
}
