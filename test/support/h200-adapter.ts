// The NVIDIA H200 as tests present it on other devices: what it reports through Dawn/Vulkan, for
// choosing its kernels' layouts, and this machine's device claiming to be one, for checking what
// the engine does when those kernels do not compile.
import type { AdapterSummary, GpuDevice } from "../../runtime/gpu/device.ts";
import type { AttentionAdapter } from "../../stdlib/kernels/attention-subgroup-layout.ts";
import type { SubgroupMatrixConfig } from "../../stdlib/kernels/matmul-subgroup.ts";

/** The f16-input configurations the H200 offers, with `result` accumulators. */
export const f16Configs = (result: string): SubgroupMatrixConfig[] =>
  [[16, 16, 16], [16, 8, 16], [16, 8, 8]].map(([M, N, K]) => ({ componentType: "f16", resultComponentType: result, M, N, K }));

/** What the NVIDIA H200 reports through Dawn/Vulkan (architecture is empty there). */
export const H200: AttentionAdapter = {
  architecture: "",
  features: ["chromium-experimental-subgroup-matrix", "shader-f16", "subgroups", "timestamp-query"],
  subgroupMinSize: 32,
  subgroupMaxSize: 32,
  subgroupMatrixConfigs: [...f16Configs("f16"), ...f16Configs("f32"), { componentType: "i8", resultComponentType: "i32", M: 16, N: 8, K: 32 }],
  workgroupStorageBytes: 49152,
};

/** `gpu` with an adapter summary named "H200-like" that reports the H200's subgroups and matrices; its own limits stay. */
export function h200Like(gpu: GpuDevice): GpuDevice {
  const { architecture, features, subgroupMinSize, subgroupMaxSize, subgroupMatrixConfigs } = H200;
  const adapter: AdapterSummary = {
    ...gpu.adapter,
    name: "H200-like",
    architecture,
    features: [...features],
    subgroupMinSize,
    subgroupMaxSize,
    subgroupMatrixConfigs: [...subgroupMatrixConfigs],
  };
  return Object.create(gpu, { adapter: { value: adapter } }) as GpuDevice;
}
