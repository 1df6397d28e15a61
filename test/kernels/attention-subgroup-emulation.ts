// The adapter the attention kernels' emulated runs pick layouts for (the emulation itself is
// test/support/subgroup-matrix-emulation.ts; the H200's is test/support/h200-adapter.ts).
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { attentionAdapter } from "../../runtime/gpu/attention-tuning.ts";
import type { AttentionAdapter } from "../../stdlib/kernels/attention-subgroup-layout.ts";

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
