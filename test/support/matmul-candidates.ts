// Matmul kernels for testing the self-check and the tuning with kernels that run on any adapter:
// the plain kernels, one with wrong numbers and one WGSL rejects.
import * as assert from "uvu/assert";
import { matmulCases } from "../../runtime/gpu/kernel-probe-cases.ts";
import type { KernelProbe } from "../../runtime/gpu/kernel-probe.ts";
import { matmulKernel, type MatmulKernel } from "../../stdlib/kernels/matmul.ts";


export const tiled: MatmulKernel = (o, s) => matmulKernel(o, s, "tiled");
export const registers: MatmulKernel = (o, s) => matmulKernel(o, s, "registers");

/** A matmul probe whose "fast" kernel is `kernel`, checked at f32 precision. */
export const matmulCandidate = (kernel: MatmulKernel, name: string): KernelProbe => ({
  op: "matmul",
  kernel: name,
  fallback: "registers matmul",
  tolerance: 1e-5,
  cases: () => matmulCases(kernel, "f32"),
});

/** The tiled kernel with its epilogue's alpha doubled: right shape, wrong numbers. */
export const doubledAlpha: MatmulKernel = (o, s) => {
  const spec = tiled(o, s);
  assert.match(spec.declarations ?? "", "u.alpha * v");
  return { ...spec, name: "matmul_doubled_alpha", declarations: spec.declarations!.replace("u.alpha * v", "2.0 * u.alpha * v") };
};

/** The tiled kernel with a statement WGSL rejects. */
export const broken: MatmulKernel = (o, s) => {
  const spec = tiled(o, s);
  return { ...spec, name: "matmul_broken", body: `${spec.body}\n  let broken: u32 = 1.5;` };
};
