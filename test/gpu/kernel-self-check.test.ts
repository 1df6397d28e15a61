// The fast kernels' self-check at device start (runtime/gpu/kernel-self-check.ts), on this
// machine's adapter: the mechanism with injected candidates (a correct kernel passes, a wrong one
// and one that does not compile fall back with the reason; for the matmul, the attention forward
// and the attention backward; the engine's subgroup-matrix backward, with its matrices emulated,
// passes its probe), the engine's own subgroup-matrix
// probes on a device that cannot compile them (an H200-like adapter summary over the real
// device), the choice sites' fallback and explicit-request error, the cache, a case run once per
// device, and that opening a device without subgroup matrices runs no check.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { listAdapters, openDevice, type GpuDevice } from "../../runtime/gpu/device.ts";
import {
  checkedAttentionBackwardKernels,
  checkedAttentionForwardKernel,
  checkedMatmulStrategy,
  selfCheckKernels,
  selfCheckOf,
} from "../../runtime/gpu/kernel-self-check.ts";
import { attentionBackwardCases, attentionCases, subgroupAttentionBackwardProbe } from "../../runtime/gpu/kernel-probe-cases.ts";
import { checkKernel, type KernelProbe, type ProbeCase } from "../../runtime/gpu/kernel-probe.ts";
import { attentionBackwardKernelsFor } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionBackwardKernels, type AttentionBackwardKernels } from "../../stdlib/kernels/attention-backward.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { attentionForwardKernel } from "../../stdlib/kernels/attention-forward.ts";
import { sftc } from "../cli/support.ts";
import { EMULATED_ADAPTER, emulatedAdapter } from "../kernels/attention-subgroup-emulation.ts";
import { withF16Gpu, withGpu } from "../kernels/gpu-harness.ts";
import { h200Like } from "../support/h200-adapter.ts";
import { broken, doubledAlpha, matmulCandidate, tiled } from "../support/matmul-candidates.ts";
import { emulateSubgroupMatrices } from "../support/subgroup-matrix-emulation.ts";

const test = suite("kernel self-check");

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

/** An attention backward probe whose "fast" kernels are `kernels`, checked at f32 precision at head dim 64. */
const backwardCandidate = (kernels: (variant: AttentionVariant) => AttentionBackwardKernels, name: string): KernelProbe => ({
  op: "attention backward",
  kernel: name,
  fallback: "scalar attention backward",
  tolerance: 1e-3, // the f16-storage cases round dQ, dK and dV to f16 (2^-11): ~2e-4
  cases: () => attentionBackwardCases(kernels, [64], "f32"),
});

// The scalar backward with its dK/dV kernel writing 2 dV: dQ and dK right, dV wrong.
const doubledDv = (variant: AttentionVariant): AttentionBackwardKernels => {
  const kernels = attentionBackwardKernels(variant);
  assert.match(kernels.dkdv.body, "store_dkv(dv0 + d, dv[d]);");
  return { ...kernels, dkdv: { ...kernels.dkdv, name: "attention_backward_dkdv_doubled_dv", body: kernels.dkdv.body.replace("store_dkv(dv0 + d, dv[d]);", "store_dkv(dv0 + d, 2.0 * dv[d]);") } };
};

test(
  "the attention backward probe: the scalar backward passes; one writing 2 dV fails on its dK/dV case with dV's own error",
  withGpu(async (gpu) => {
    const check = await checkKernel(gpu, backwardCandidate(attentionBackwardKernels, "scalar attention backward"));
    console.log(`    scalar attention backward as the candidate: relative error ${check.relativeError?.toExponential(2)}`);
    assert.ok(check.verified, check.failure);
    assert.ok(check.relativeError! > 0 && check.relativeError! < 1e-3);
    const wrong = await checkKernel(gpu, backwardCandidate(doubledDv, "doubled-dV attention backward"));
    assert.not.ok(wrong.verified);
    // dV is compared on its own half of the dK/dV buffer: ‖2 dV − dV‖ / ‖dV‖ = 1
    assert.ok(Math.abs(wrong.relativeError! - 1) < 1e-5, `relative error ${wrong.relativeError}`);
    assert.match(wrong.failure!, "dK, dV of causal attention T 40, 2 heads over 1 KV head, head dim 64, f32 storage: relative error 1.00e+0 exceeds 1e-3");
  }),
);

// The probe's cases with each kernel's matrix builtins emulated, and the storage the emulation binds.
function emulatedCases(gpu: GpuDevice, cases: ProbeCase[]): ProbeCase[] {
  const config = EMULATED_ADAPTER.subgroupMatrixConfigs[0];
  return cases.map((c) => {
    assert.ok("spec" in c, "the attention probes run one kernel a case");
    const emulated = emulateSubgroupMatrices(c.spec, config, "u.head_dim");
    const storage = emulated.values(gpu, c.uniforms);
    const length = storage.shape.reduce((a, b) => a * b, 1);
    storage.destroy();
    return { ...c, spec: emulated.spec, tensors: { ...c.tensors, emu_values: { dtype: "f32", data: new Float64Array(length) } } };
  });
}

// Lavapipe compiles each emulated matrix call slowly; Mesa's shader cache makes later runs quick.
test(
  "the engine's subgroup-matrix backward (dQ and dK/dV, matrices emulated) passes its own probe, dQ, dK and dV within the tolerance",
  withF16Gpu(async (gpu) => {
    const adapter = emulatedAdapter(gpu);
    const kernels = (variant: AttentionVariant) => {
      const chosen = attentionBackwardKernelsFor(adapter, variant, {});
      assert.ok(chosen.ok && chosen.value.dq.name.endsWith("_subgroup_matrix") && chosen.value.dkdv.name.endsWith("_subgroup_matrix"), "both on subgroup matrices");
      return chosen.ok ? chosen.value : attentionBackwardKernels(variant);
    };
    const probe = subgroupAttentionBackwardProbe(kernels, [64]);
    const check = await checkKernel(gpu, { ...probe, cases: () => emulatedCases(gpu, probe.cases()) });
    console.log(`    emulated subgroup-matrix attention backward: relative error ${check.relativeError?.toExponential(2)} (tolerance ${check.tolerance.toExponential(0)})`);
    assert.ok(check.verified, check.failure);
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
  "a probe that throws fails its check instead of the device open",
  withGpu(async (gpu) => {
    const throwing = { ...matmulCandidate(broken, "throwing matmul"), cases: () => { throw new Error("no such layout"); } };
    const check = await checkKernel(gpu, throwing);
    assert.not.ok(check.verified);
    assert.is(check.failure, "threw: no such layout");
    assert.equal(await gpu.takeErrors(), [], "no error scope left open");
  }),
);

test(
  "a probe whose check a tuning carries (the tuned matmul tiling's, checked by its tuning) stands without running again; a probe no tuning ran is run",
  withGpu(async (real) => {
    const gpu = Object.create(real) as GpuDevice; // a device of its own: the self-check runs once per device
    const built: string[] = [];
    const counted = (probe: KernelProbe): KernelProbe => ({ ...probe, cases: () => (built.push(probe.kernel), probe.cases()) });
    const matmul = counted(matmulCandidate(tiled, "tiled matmul"));
    const attention = counted({ op: "attention", kernel: "scalar attention forward", fallback: "scalar attention forward", tolerance: 1e-3, cases: () => attentionCases(attentionForwardKernel, [64], "f32") });
    const check = await checkKernel(gpu, matmul);
    assert.ok(check.verified, check.failure);
    built.length = 0;
    const tuning = { job: "test matmul", chosen: "tiled", source: "cached" as const, at: "2026-11-26T00:00:00.000Z", problem: "p", timings: [{ name: "tiled", ms: 1 }], rejected: [], check };
    const outcome = await selfCheckKernels(gpu, {}, () => [matmul, attention], async () => [tuning]);
    assert.equal(built, ["scalar attention forward"], "only the probe no tuning ran");
    assert.is(outcome.checks.matmul, check, "the tuning's check stands");
    assert.ok(outcome.checks.attention?.verified, outcome.checks.attention?.failure);
    assert.equal(outcome.warnings, []);
  }),
);

test(
  "a case already run on the device is not run again, by the same probe or another, and its outcome stands; a case that differs runs",
  withGpu(async (real) => {
    const gpu = Object.create(real) as GpuDevice; // a device of its own: outcomes are kept per device
    let launches = 0; // work under error scopes: as many per case run
    Object.defineProperty(gpu, "scoped", { value: <T>(work: () => T) => (launches++, real.scoped.call(gpu, work)) });
    const probe = matmulCandidate(tiled, "tiled matmul");
    const first = await checkKernel(gpu, probe);
    assert.ok(first.verified, first.failure);
    const perProbe = launches; // its three products
    assert.ok(perProbe > 0 && perProbe % 3 === 0, `${perProbe} launches`);
    const renamed = await checkKernel(gpu, { ...probe, kernel: "the tiled matmul again" });
    assert.is(launches, perProbe, "the same cases under another name: nothing runs");
    assert.equal({ ...renamed, kernel: first.kernel }, first);
    const last = await checkKernel(gpu, { ...probe, cases: () => probe.cases().slice(2) });
    assert.is(launches, perProbe, "a case of an earlier probe: nothing runs");
    assert.ok(last.verified, last.failure);

    // the first product expecting 2 C: that case alone runs, and fails
    const doubled = { ...probe, cases: () => probe.cases().map((c, i) => (i === 0 ? { ...c, expected: { c: c.expected.c.map((x) => 2 * x) } } : c)) };
    const wrong = await checkKernel(gpu, doubled);
    assert.is(launches, perProbe + perProbe / 3, "one case ran");
    assert.not.ok(wrong.verified);
    assert.ok(Math.abs(wrong.relativeError! - 0.5) < 1e-5, `‖C − 2C‖ / ‖2C‖ = 0.5: ${wrong.relativeError}`);
    // a wrong kernel's failure stands too
    const failed = await checkKernel(gpu, matmulCandidate(doubledAlpha, "doubled-alpha matmul"));
    const ran = launches;
    assert.equal(await checkKernel(gpu, matmulCandidate(doubledAlpha, "doubled-alpha matmul")), failed);
    assert.is(launches, ran, "checked once");
    assert.not.ok(failed.verified);
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

test(
  "the engine's subgroup-matrix probes on a device that cannot compile them: SFT5010 once, plain kernels at the choice sites",
  withF16Gpu(async (real) => {
    if (real.adapter.features.includes("chromium-experimental-subgroup-matrix")) return console.log("    skipped: this adapter has subgroup matrices, which compile");
    const gpu = h200Like(real);
    const outcome = await selfCheckKernels(gpu, { SFT_TUNE: "off" }); // the tuning has tests of its own
    const { matmul, attention, "attention backward": backward } = outcome.checks;
    assert.ok(matmul && attention && backward, "the three ops were checked");
    for (const check of [matmul!, attention!, backward!]) {
      assert.not.ok(check.verified);
      assert.match(check.failure!, "failed to compile");
    }
    assert.match(matmul!.kernel, "subgroup-matrix matmul (f16>f32 16x16x16");
    assert.match(attention!.kernel, "subgroup-matrix attention forward (head dims 64");
    assert.match(backward!.kernel, "subgroup-matrix attention backward (head dims 64");
    assert.match(backward!.failure!, "dQ of causal attention T 40, 2 heads over 1 KV head, head dim 64, f32 storage: ");
    assert.equal(outcome.warnings.map((w) => [w.code, w.severity]), [["SFT5010", "warning"], ["SFT5010", "warning"], ["SFT5010", "warning"]]);
    assert.match(outcome.warnings[0].message, "the subgroup-matrix matmul (f16>f32 16x16x16, 2x2 of 32x32, bk32, vec4, pad8) failed its self-check on 'H200-like'");
    assert.match(outcome.warnings[0].message, "using the tiled matmul instead");
    assert.match(outcome.warnings[1].message, "using the scalar attention forward instead");
    assert.match(outcome.warnings[2].message, "the subgroup-matrix attention backward (head dims 64");
    assert.match(outcome.warnings[2].message, "using the scalar attention backward instead");
    assert.is(await selfCheckKernels(gpu, {}), outcome, "checked once per device");

    assert.equal(checkedMatmulStrategy(gpu, {}), { ok: true, value: "tiled", diagnostics: [] });
    const variant = { dtype: "f32", headDim: 128, causal: true, prefix: false, padding: false, segments: false, alibi: false } as const;
    const spec = checkedAttentionForwardKernel(gpu, variant, {});
    assert.ok(spec.ok && spec.value.name === attentionForwardKernel(variant).name, "the scalar forward");
    const backwardKernels = checkedAttentionBackwardKernels(gpu, variant, {});
    assert.ok(backwardKernels.ok && backwardKernels.value.dq.name === "attention_backward_dq" && backwardKernels.value.dkdv.name === "attention_backward_dkdv", "the scalar backward");
    // asked for explicitly: an error instead of the kernel
    const matmulAsked = checkedMatmulStrategy(gpu, { SFT_MATMUL: "subgroup-matrix" });
    assert.ok(!matmulAsked.ok && matmulAsked.diagnostics[0].code === "SFT5011" && matmulAsked.diagnostics[0].severity === "error");
    assert.match(matmulAsked.diagnostics[0].message, "SFT_MATMUL=subgroup-matrix, but the subgroup-matrix matmul");
    const attentionAsked = checkedAttentionForwardKernel(gpu, variant, { SFT_ATTENTION: "subgroup-matrix" });
    assert.ok(!attentionAsked.ok && attentionAsked.diagnostics[0].code === "SFT5011");
    const backwardAsked = checkedAttentionBackwardKernels(gpu, variant, { SFT_ATTENTION: "subgroup-matrix" });
    assert.ok(!backwardAsked.ok && backwardAsked.diagnostics[0].code === "SFT5011");
    assert.match(backwardAsked.diagnostics[0].message, "SFT_ATTENTION=subgroup-matrix, but the subgroup-matrix attention backward");
    // the plain choices stay plain, with no self-check consulted
    const scalarBackward = checkedAttentionBackwardKernels(gpu, variant, { SFT_ATTENTION: "scalar" });
    assert.ok(scalarBackward.ok && scalarBackward.value.dq.name === "attention_backward_dq" && scalarBackward.value.dkdv.name === "attention_backward_dkdv");
    assert.equal(checkedMatmulStrategy(gpu, { SFT_MATMUL: "registers" }), { ok: true, value: "registers", diagnostics: [] });
  }),
);

test(
  "an explicit request gets no fallback warning at device start (its error comes at the kernel choice)",
  withF16Gpu(async (real) => {
    if (real.adapter.features.includes("chromium-experimental-subgroup-matrix")) return console.log("    skipped: this adapter has subgroup matrices, which compile");
    const outcome = await selfCheckKernels(h200Like(real), { SFT_MATMUL: "subgroup-matrix", SFT_ATTENTION: "scalar", SFT_TUNE: "off" });
    assert.equal(Object.keys(outcome.checks), ["matmul"], "SFT_ATTENTION=scalar: no attention check, forward or backward");
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
    else assert.match(block, /\n {2}self-check {4}(matmul|attention|attention backward): (verified|fell back)|none \(no subgroup-matrix kernel chosen/);
  });
});

test.run();
