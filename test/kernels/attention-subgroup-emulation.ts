// The adapters the attention kernels' tests pick layouts for: the emulated runs' (the emulation
// itself is test/support/subgroup-matrix-emulation.ts) and the H200's.
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { attentionAdapter } from "../../runtime/gpu/attention-tuning.ts";
import type { AttentionAdapter } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import type { SubgroupMatrixConfig } from "../../stdlib/kernels/matmul-subgroup.ts";

/**
 * An adapter whose subgroups are one invocation, with one f16 -> f32 configuration, 16 x 8 x 16
 * (N differs from M and K, so a swapped index shows): the layouts chosen for it run emulated.
 */
export const EMULATED_ADAPTER = {
  architecture: "",
  features: ["chromium-experimental-subgroup-matrix", "shader-f16"],
  subgroupMinSize: 1,
  subgroupMaxSize: 1,
  subgroupMatrixConfigs: [{ componentType: "f16", resultComponentType: "f32", M: 16, N: 8, K: 16 }],
};

/** EMULATED_ADAPTER with `gpu`'s workgroup memory, which bounds the layouts chosen for it. */
export function emulatedAdapter(gpu: GpuDevice): AttentionAdapter {
  return { ...attentionAdapter(gpu), ...EMULATED_ADAPTER };
}

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
