// The workgroup memory a kernel declares, read from its WGSL: what the layout choosers count
// must be what the generated kernels allocate.
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";

/**
 * Bytes of the `var<workgroup>` f16/f32 arrays and 32-bit atomics in `spec`'s declarations, as
 * WebGPU counts them against maxComputeWorkgroupStorageSize: each variable's size rounded up to 16.
 */
export function declaredWorkgroupBytes(spec: KernelSpec): number {
  const declarations = spec.declarations ?? "";
  const roundUp = (bytes: number) => Math.ceil(bytes / 16) * 16;
  const arrays = [...declarations.matchAll(/var<workgroup>\s+\w+:\s*array<(f32|f16), (\d+)>/g)].reduce((sum, m) => sum + roundUp((m[1] === "f32" ? 4 : 2) * Number(m[2])), 0);
  const atomics = [...declarations.matchAll(/var<workgroup>\s+\w+:\s*atomic<[iu]32>/g)].length;
  return arrays + 16 * atomics;
}
