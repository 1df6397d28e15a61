// A benchmarked kernel that cannot run (its WGSL does not compile, or its check throws) becomes a
// failed row carrying the error, and the cases after it still run and pass.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runCases } from "../../bench/kernels.ts";
import type { Case } from "../../bench/case-inputs.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import { activationForward } from "../../stdlib/kernels/activations.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("bench kernel errors");

// silu over 64 zeros: silu(0) = 0, so the check compares with zeros
/** A case of one kernel. */
type SiluCase = Case & { spec: KernelSpec };

function siluCase(gpu: GpuDevice, label: string, change: (c: SiluCase) => Case = (c) => c): Case {
  const x = createTensor(gpu, "f32", [64]);
  const y = createTensor(gpu, "f32", [64]);
  const base: SiluCase = {
    label,
    shape: "64",
    spec: activationForward("silu", "f32"),
    uniforms: { n: 64 },
    tensors: { x, y },
    flops: 4 * 64,
    bytes: 8 * 64,
    verify: async () => {
      const out = await readFloats(gpu, y);
      return { relativeError: out.every((v) => v === 0) ? 0 : 1, tolerance: 1e-5, rows: "all 64 values" };
    },
  };
  return change(base);
}

test(
  "a compile failure and a throwing check are failed rows with their errors; the next case runs",
  withGpu(async (gpu) => {
    const broken = siluCase(gpu, "broken WGSL", (c) => ({ ...c, spec: { ...c.spec, name: "silu_broken", body: `${c.spec.body}\n  let oops: u32 = 1.5;` } }));
    const throwing = siluCase(gpu, "throwing check", (c) => ({ ...c, verify: () => Promise.reject(new Error("readback failed")) }));
    const good = siluCase(gpu, "good");
    const rows = await runCases(gpu, [broken, throwing, good], 2);
    assert.equal(rows.map((r) => r.label), ["broken WGSL", "throwing check", "good"]);

    assert.match(rows[0].error ?? "", /^SFT5008 kernel silu_broken.* failed to compile/);
    assert.ok(Number.isNaN(rows[0].check.relativeError) && Number.isNaN(rows[0].nsPerDispatch));
    assert.is(rows[1].error, "readback failed");
    assert.is(rows[2].error, undefined);
    assert.is(rows[2].check.relativeError, 0);
    assert.ok(rows[2].nsPerDispatch > 0, "the good case is timed");
    assert.ok(!(rows[0].check.relativeError < rows[0].check.tolerance), "a failed row never passes its check");
  }),
);

test.run();
