// The fast kernels' self-check at device start (runtime/gpu/kernel-self-check.ts), on this
// machine's adapter: the mechanism with injected candidates (a correct kernel passes, a wrong one
// and one that does not compile fall back with the reason), the engine's own subgroup-matrix
// probes on a device that cannot compile them (an H200-like adapter summary over the real
// device), the choice sites' fallback and explicit-request error, the cache, and that opening a
// device without subgroup matrices runs no check.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { listAdapters, openDevice, type AdapterSummary, type GpuDevice } from "../../runtime/gpu/device.ts";
import {
  attentionCases,
  checkedAttentionForwardKernel,
  checkedMatmulStrategy,
  checkKernel,
  matmulCases,
  selfCheckKernels,
  selfCheckOf,
  type KernelProbe,
} from "../../runtime/gpu/kernel-self-check.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { matmulKernel, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { sftc } from "../cli/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("kernel self-check");

const tiled = (o: MatmulOptions, s: MatmulShape) => matmulKernel(o, s, "tiled");

/** A matmul probe whose "fast" kernel is `kernel`, checked at f32 precision. */
const matmulCandidate = (kernel: (o: MatmulOptions, s: MatmulShape) => KernelSpec, name: string): KernelProbe => ({
  op: "matmul",
  kernel: name,
  fallback: "registers matmul",
  tolerance: 1e-5,
  cases: () => matmulCases(kernel, "f32"),
});

// The tiled kernel with its epilogue's alpha doubled: right shape, wrong numbers.
const doubledAlpha = (o: MatmulOptions, s: MatmulShape): KernelSpec => {
  const spec = tiled(o, s);
  assert.match(spec.declarations ?? "", "u.alpha * v");
  return { ...spec, name: "matmul_doubled_alpha", declarations: spec.declarations!.replace("u.alpha * v", "2.0 * u.alpha * v") };
};

// The tiled kernel with a statement WGSL rejects.
const broken = (o: MatmulOptions, s: MatmulShape): KernelSpec => {
  const spec = tiled(o, s);
  return { ...spec, name: "matmul_broken", body: `${spec.body}\n  let broken: u32 = 1.5;` };
};

test(
  "a correct candidate (the tiled matmul; the scalar attention forward) passes, with its relative error",
  withGpu(async (gpu) => {
    const matmul = await checkKernel(gpu, matmulCandidate(tiled, "tiled matmul"));
    console.log(`    tiled matmul as the candidate: relative error ${matmul.relativeError?.toExponential(2)}`);
    assert.ok(matmul.verified, matmul.failure);
    assert.ok(matmul.relativeError! < 1e-5);
    const attention = await checkKernel(gpu, {
      op: "attention",
      kernel: "scalar attention forward",
      fallback: "scalar attention forward",
      tolerance: 1e-3, // the f16-storage case rounds O to f16 (2^-11): ~2e-4
      cases: () => attentionCases(attentionForwardKernel, [64], "f32"),
    });
    console.log(`    scalar attention forward as the candidate: relative error ${attention.relativeError?.toExponential(2)}`);
    assert.ok(attention.verified, attention.failure);
  }),
);

test(
  "a wrong candidate (alpha doubled) is not verified: the failure names the case and its relative error",
  withGpu(async (gpu) => {
    const check = await checkKernel(gpu, matmulCandidate(doubledAlpha, "doubled-alpha matmul"));
    assert.not.ok(check.verified);
    // 2 C against C: ‖2C − C‖ / ‖C‖ = 1
    assert.ok(Math.abs(check.relativeError! - 1) < 1e-5, `relative error ${check.relativeError}`);
    assert.match(check.failure!, "70x100 times (90, 100)ᵀ: relative error 1.00e+0 exceeds 1e-5");
  }),
);

test(
  "a candidate that fails to compile is not verified: the failure carries the compile error",
  withGpu(async (gpu) => {
    const check = await checkKernel(gpu, matmulCandidate(broken, "broken matmul"));
    assert.not.ok(check.verified);
    assert.is(check.relativeError, undefined);
    assert.match(check.failure!, "failed to compile");
    assert.match(check.failure!, "matmul_broken");
  }),
);

test(
  "opening a device without subgroup matrices runs no check, and the outcome is cached: a second self-check runs nothing",
  async () => {
    const opened = await openDevice();
    if (!opened.ok) return console.log(`    skipped (no GPU): ${opened.diagnostics[0]?.message}`);
    const gpu = opened.value;
    try {
      if (gpu.adapter.features.includes("chromium-experimental-subgroup-matrix")) return console.log("    skipped: this adapter has subgroup matrices");
      assert.equal(opened.diagnostics, []);
      const outcome = selfCheckOf(gpu);
      assert.ok(outcome, "openDevice records the (empty) outcome");
      assert.equal(outcome!.checks, {});
      let asked = 0;
      const again = await selfCheckKernels(gpu, {}, () => {
        asked++;
        return [matmulCandidate(broken, "broken matmul")];
      });
      assert.is(asked, 0, "the probes are not built again");
      assert.is(again, outcome);
      assert.equal(checkedMatmulStrategy(gpu, {}), { ok: true, value: gpu.adapter.architecture === "software" ? "registers" : "tiled", diagnostics: [] });
    } finally {
      gpu.destroy();
    }
  },
);

// What an NVIDIA H200 reports (architecture is empty there), over this machine's real device.
function h200Like(gpu: GpuDevice): GpuDevice {
  const configs = [[16, 16, 16], [16, 8, 16]].map(([M, N, K]) => ({ componentType: "f16", resultComponentType: "f32", M, N, K }));
  const adapter: AdapterSummary = {
    ...gpu.adapter,
    name: "H200-like",
    architecture: "",
    features: ["chromium-experimental-subgroup-matrix", "shader-f16", "subgroups"],
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    subgroupMatrixConfigs: configs,
  };
  return Object.create(gpu, { adapter: { value: adapter } }) as GpuDevice;
}

test(
  "the engine's subgroup-matrix probes on a device that cannot compile them: SFT5010 once, plain kernels at the choice sites",
  withGpu(async (real) => {
    if (!real.hasF16) return console.log("    skipped: no shader-f16");
    const gpu = h200Like(real);
    const outcome = await selfCheckKernels(gpu, {});
    const { matmul, attention } = outcome.checks;
    assert.ok(matmul && attention, "both ops were checked");
    for (const check of [matmul!, attention!]) {
      assert.not.ok(check.verified);
      assert.match(check.failure!, "failed to compile");
    }
    assert.match(matmul!.kernel, "subgroup-matrix matmul (f16>f32 16x16x16");
    assert.match(attention!.kernel, "subgroup-matrix attention forward (head dims 64");
    assert.equal(outcome.warnings.map((w) => [w.code, w.severity]), [["SFT5010", "warning"], ["SFT5010", "warning"]]);
    assert.match(outcome.warnings[0].message, "the subgroup-matrix matmul (f16>f32 16x16x16, 2x2 of 32x32, bk32) failed its self-check on 'H200-like'");
    assert.match(outcome.warnings[0].message, "using the tiled matmul instead");
    assert.match(outcome.warnings[1].message, "using the scalar attention forward instead");
    assert.is(await selfCheckKernels(gpu, {}), outcome, "checked once per device");

    assert.equal(checkedMatmulStrategy(gpu, {}), { ok: true, value: "tiled", diagnostics: [] });
    const variant = { dtype: "f32", headDim: 128, causal: true, prefix: false, padding: false, segments: false, alibi: false } as const;
    const spec = checkedAttentionForwardKernel(gpu, variant, {});
    assert.ok(spec.ok && spec.value.name === attentionForwardKernel(variant).name, "the scalar forward");
    // asked for explicitly: an error instead of the kernel
    const matmulAsked = checkedMatmulStrategy(gpu, { SFT_MATMUL: "subgroup-matrix" });
    assert.ok(!matmulAsked.ok && matmulAsked.diagnostics[0].code === "SFT5011" && matmulAsked.diagnostics[0].severity === "error");
    assert.match(matmulAsked.diagnostics[0].message, "SFT_MATMUL=subgroup-matrix, but the subgroup-matrix matmul");
    const attentionAsked = checkedAttentionForwardKernel(gpu, variant, { SFT_ATTENTION: "subgroup-matrix" });
    assert.ok(!attentionAsked.ok && attentionAsked.diagnostics[0].code === "SFT5011");
    // the plain choices stay plain
    assert.equal(checkedMatmulStrategy(gpu, { SFT_MATMUL: "registers" }), { ok: true, value: "registers", diagnostics: [] });
  }),
);

test(
  "an explicit request gets no fallback warning at device start (its error comes at the kernel choice)",
  withGpu(async (real) => {
    if (!real.hasF16) return console.log("    skipped: no shader-f16");
    const outcome = await selfCheckKernels(h200Like(real), { SFT_MATMUL: "subgroup-matrix", SFT_ATTENTION: "scalar" });
    assert.equal(Object.keys(outcome.checks), ["matmul"], "SFT_ATTENTION=scalar: no attention check");
    assert.not.ok(outcome.checks.matmul!.verified);
    assert.equal(outcome.warnings, []);
  }),
);

test("sftc devices shows the self-check of each adapter: none without subgroup matrices, else each op verified or fallen back", async () => {
  const listed = await listAdapters();
  if (!listed.ok) return console.log(`    skipped (no GPU): ${listed.diagnostics[0]?.message}`);
  const run = await sftc(["devices"]);
  assert.is(run.code, 0, run.err);
  const blocks = run.out.split(/^(?=\[\d+\] )/m);
  listed.value.forEach((a, i) => {
    const block = blocks[i];
    assert.match(block, `[${i}] ${a.name}\n`);
    if (!a.features.includes("chromium-experimental-subgroup-matrix")) assert.match(block, "\n  self-check    none (no subgroup matrices: the plain kernels run)\n");
    else assert.match(block, /\n {2}self-check {4}(matmul|attention): (verified|fell back)|none \(no subgroup-matrix kernel chosen/);
  });
});

test.run();
