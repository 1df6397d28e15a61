// The subgroup-matrix attention forward where no adapter here can run it (lavapipe has no
// subgroup matrices): the choice of kernel per adapter and SFT_ATTENTION, the layouts' fit in
// workgroup memory, the grid covering every query row, the matrix types against the adapter's
// configurations, and the tolerance against the reference on f16-rounded inputs. The kernel's
// numbers on a GPU are checked by bench/attention-cases.ts.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ok } from "../../compiler/diagnostics.ts";
import { attentionAdapter } from "../../runtime/gpu/attention-tuning.ts";
import { Random } from "../../runtime/random.ts";
import { attentionBackwardKernelsFor, attentionDkdvSubgroupKernel, attentionDqSubgroupKernel, backwardLayouts, backwardWorkgroupBytes } from "../../stdlib/kernels/attention-backward-subgroup.ts";
import { attentionForwardKernelFor, attentionForwardSubgroupKernel, RESCALE_TAU, subgroupAttentionTolerance } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import {
  attentionKernelChoice,
  blockRows,
  subgroupAttentionLayout,
  subgroupAttentionLayouts,
  workgroupBytes,
  type AttentionAdapter,
  type SubgroupAttentionLayout,
} from "../../stdlib/kernels/attention-subgroup-layout.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView } from "../../stdlib/kernels/attention-layout.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import type { AttentionVariant } from "../../stdlib/kernels/attention-common.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { kernelErrors, openNullDevice } from "../support/null-device.ts";
import { f16Configs, H200 } from "../support/h200-adapter.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { declaredWorkgroupBytes } from "../support/workgroup-bytes.ts";
import { withGpu } from "./gpu-harness.ts";
import { blockEdgeRows } from "../../bench/attention-cases.ts";

const test = suite("attention forward on subgroup matrices");

const LAVAPIPE: AttentionAdapter = { architecture: "software", features: ["shader-f16", "subgroups"], subgroupMinSize: 8, subgroupMaxSize: 8, subgroupMatrixConfigs: [], workgroupStorageBytes: 32768 };

const causal = (headDim: number, dtype: "f32" | "f16" = "f32"): AttentionVariant => ({ dtype, headDim, causal: true, prefix: false, padding: false, segments: false, alibi: false });

const layoutOf = (adapter: AttentionAdapter, headDim: number): SubgroupAttentionLayout => {
  const layout = subgroupAttentionLayout(adapter, headDim);
  assert.ok(layout, `a layout for D ${headDim}`);
  return layout!;
};

test("an H200-like adapter gets an f16 -> f32 16x16x16 layout that fits its workgroup memory for D 64, 128, 256", () => {
  const expected: Record<number, [number, number]> = { 64: [4, 64], 128: [4, 32], 256: [4, 16] }; // subgroups, keys per tile
  for (const D of [64, 128, 256]) {
    const layout = layoutOf(H200, D);
    assert.equal(layout.config, { componentType: "f16", resultComponentType: "f32", M: 16, N: 16, K: 16 });
    assert.is(layout.subgroupSize, 32);
    assert.equal([layout.subgroups, layout.blockK], expected[D], `D ${D}`);
    assert.ok(workgroupBytes(layout, D) <= H200.workgroupStorageBytes, `D ${D}: ${workgroupBytes(layout, D)} bytes`);
    // the next larger key tile would not fit
    if (layout.blockK < 64) assert.ok(workgroupBytes({ ...layout, blockK: layout.blockK * 2 }, D) > H200.workgroupStorageBytes);
  }
  // 16 KiB (the WebGPU default) fits two subgroups at D 64 and 128, nothing at D 256
  const small = { ...H200, workgroupStorageBytes: 16384 };
  assert.equal([64, 128].map((D) => subgroupAttentionLayout(small, D)?.subgroups), [2, 2]);
  assert.is(subgroupAttentionLayout(small, 256), undefined);
});

test("the choice: subgroup matrices when offered, scalar otherwise or with SFT_ATTENTION=scalar; a bad SFT_ATTENTION is a diagnostic", () => {
  const choose = (adapter: AttentionAdapter, env: Record<string, string>) => attentionKernelChoice(adapter, 128, env);
  const h200 = choose(H200, {});
  assert.ok(h200.ok && h200.value !== "scalar");
  const forced = choose(H200, { SFT_ATTENTION: "subgroup-matrix" });
  assert.ok(forced.ok && forced.value !== "scalar");
  assert.equal(choose(H200, { SFT_ATTENTION: "scalar" }), ok("scalar"));
  assert.equal(choose(LAVAPIPE, {}), ok("scalar"));
  // only f16 results, a varying subgroup size, or no shader-f16: the scalar kernel
  assert.equal(choose({ ...H200, subgroupMatrixConfigs: f16Configs("f16") }, {}), ok("scalar"));
  assert.equal(choose({ ...H200, subgroupMinSize: 16 }, {}), ok("scalar"));
  assert.equal(choose({ ...H200, features: H200.features.filter((f) => f !== "shader-f16") }, {}), ok("scalar"));
  const missing = choose(LAVAPIPE, { SFT_ATTENTION: "subgroup-matrix" });
  assert.ok(!missing.ok && missing.diagnostics[0].code === "SFT5009", "subgroup-matrix asked where there is none");
  const unknown = choose(H200, { SFT_ATTENTION: "flash" });
  assert.ok(!unknown.ok && unknown.diagnostics[0].code === "SFT2018" && unknown.diagnostics[0].message.includes("'flash'"));
  // a preferred (tuned) layout is taken where a layout fits; SFT_ATTENTION=scalar and a scalar-only adapter still win
  const preferred = subgroupAttentionLayouts(H200, 128).at(-1)!;
  assert.not.equal(preferred, subgroupAttentionLayout(H200, 128), "not the default layout");
  assert.equal(attentionKernelChoice(H200, 128, {}, { preferred }), ok(preferred));
  assert.equal(attentionKernelChoice(H200, 128, { SFT_ATTENTION: "scalar" }, { preferred }), ok("scalar"));
  assert.equal(attentionKernelChoice(LAVAPIPE, 128, {}, { preferred }), ok("scalar"));
  const spec = (adapter: AttentionAdapter, env: Record<string, string>) => expectOk(attentionForwardKernelFor(adapter, causal(128), env)).name;
  assert.is(spec(H200, {}), "attention_forward_subgroup_matrix");
  assert.is(spec(H200, { SFT_ATTENTION: "scalar" }), "attention_forward");
  assert.is(spec(LAVAPIPE, {}), "attention_forward");
});

test(
  "this machine's adapter launches the scalar forward",
  withGpu(async (gpu) => {
    const adapter = attentionAdapter(gpu);
    const chosen = expectOk(attentionForwardKernelFor(adapter, causal(64), {}));
    const expected = subgroupAttentionLayout(adapter, 64) ? "attention_forward_subgroup_matrix" : "attention_forward";
    assert.is(chosen.name, expected);
  }),
);

test("the grid has one workgroup per block of query rows, head and batch row, covering every row once", () => {
  for (const D of [64, 128, 256]) {
    const base = layoutOf(H200, D);
    for (const layout of [base, { ...base, subgroups: 1 }]) {
      const spec = attentionForwardSubgroupKernel(causal(D), layout);
      const rows = blockRows(layout);
      assert.is(spec.workgroupSize[0], layout.subgroups * layout.subgroupSize);
      assert.is(spec.workgroupSize[0] % H200.subgroupMaxSize, 0, "workgroup_size.x is a multiple of the subgroup size");
      for (const T of [1, 15, 16, 17, 33, 1000, 2048]) {
        const shape = { batch: 3, queryHeads: 8, kvHeads: 2, queryLength: T, keyLength: T, headDim: D };
        const view = denseView("bthd", T, 8, D);
        const uniforms = attentionForwardUniforms(shape, { q: view, k: denseView("bthd", T, 2, D), v: denseView("bthd", T, 2, D), o: view }, 0.1, { causal: true, queryOffset: 0 });
        const [x, y, z] = spec.dispatch(uniforms);
        assert.ok(x * rows >= T && (x - 1) * rows < T, `D ${D} ${layout.subgroups} subgroups T ${T}: ${x} blocks of ${rows}`);
        assert.equal([y, z], [8, 3]);
      }
    }
  }
});

test("the WGSL uses only the chosen configuration's matrix types, and declares the workgroup memory the layout counts", () => {
  for (const D of [64, 128, 256]) {
    for (const config of f16Configs("f32")) {
      const layout = subgroupAttentionLayout({ ...H200, subgroupMatrixConfigs: [config] }, D);
      if (!layout) continue;
      const spec = attentionForwardSubgroupKernel(causal(D, "f16"), layout);
      const wgsl = `${spec.declarations}\n${spec.body}`;
      const types = [...wgsl.matchAll(/subgroup_matrix_(left|right|result)<(\w+), (\d+), (\d+)>/g)].map((m) => `${m[1]}<${m[2]},${m[3]},${m[4]}>`);
      const { M, N, K } = config;
      const allowed = new Set([`left<f16,${K},${M}>`, `right<f16,${N},${K}>`, `result<f32,${N},${M}>`]);
      assert.ok(types.length > 0 && types.every((t) => allowed.has(t)), `D ${D} ${M}x${N}x${K}: ${[...new Set(types)]}`);
      assert.ok(spec.enables?.includes("chromium_experimental_subgroup_matrix"));
      assert.is(declaredWorkgroupBytes(spec), workgroupBytes(layout, D), `D ${D} ${M}x${N}x${K}`);
      // several subgroups: the uniformity check is off around the matrix calls; one subgroup: not needed
      assert.is(spec.body.includes("@diagnostic(off, chromium.subgroup_matrix_uniformity)"), layout.subgroups > 1);
    }
  }
});

/**
 * The kernel's arithmetic on one causal row in float64, rounded where the kernel rounds: the
 * weights exp(score - m) become f16 before P V, m the running max that moves only by more than
 * RESCALE_TAU; the sum stays unrounded. Inputs are already f16-rounded. q (D), k and v (S, D);
 * returns O (D).
 */
function roundedPRow(q: Float64Array, k: Float64Array, v: Float64Array, D: number, keys: number, scale: number, blockK: number): Float64Array {
  const out = new Float64Array(D);
  let m = -Infinity;
  let sum = 0;
  for (let j0 = 0; j0 < keys; j0 += blockK) {
    const scores: number[] = [];
    for (let j = j0; j < Math.min(keys, j0 + blockK); j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[d] * k[j * D + d];
      scores.push(dot * scale);
    }
    const tileMax = Math.max(...scores);
    const mNew = m === -Infinity || tileMax > m + RESCALE_TAU ? tileMax : m;
    const rescale = Math.exp(m - mNew);
    sum *= rescale;
    for (let d = 0; d < D; d++) out[d] *= rescale;
    const weights = roundToDType("f16", scores.map((s) => Math.exp(s - mNew)));
    scores.forEach((s, c) => {
      sum += Math.exp(s - mNew);
      for (let d = 0; d < D; d++) out[d] += weights[c] * v[(j0 + c) * D + d];
    });
    m = mNew;
  }
  return out.map((x) => x / sum);
}

test("rounding P to f16 stays within the tolerance against the reference on f16-rounded inputs", () => {
  // flat softmax (the bench's N(0, 0.25) inputs) and peaked softmax (large scores)
  const D = 128;
  const S = 300;
  for (const std of [0.5, 3]) {
    const rng = new Random(5);
    const draw = (n: number) => roundToDType("f16", rng.normalArray(n, std));
    const [k, v] = [draw(S * D), draw(S * D)];
    const scale = 1 / Math.sqrt(D);
    const rows = blockEdgeRows(S, 32, 12);
    let worst = 0;
    for (const i of rows) {
      const q = draw(D);
      const ref = attentionForwardReference({
        shape: { batch: 1, queryHeads: 1, kvHeads: 1, queryLength: 1, keyLength: S, headDim: D },
        q,
        k,
        v,
        scale,
        mask: { causal: true, queryOffset: i },
      });
      worst = Math.max(worst, relativeError(roundedPRow(q, k, v, D, i + 1, scale, 32), ref.out));
    }
    console.log(`    std ${std}: P in f16 gives a relative error of at most ${worst.toExponential(2)} over ${rows.length} rows`);
    assert.ok(worst > 0, "P rounding changes the output");
    assert.ok(worst * 2 < subgroupAttentionTolerance(), `${worst} leaves no margin below ${subgroupAttentionTolerance()}`);
  }
});

test("checked bench rows are the first and last of evenly spaced query blocks", () => {
  assert.equal(blockEdgeRows(10, 4, 32), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const rows = blockEdgeRows(2048, 32, 32);
  assert.is(rows.length, 32);
  assert.equal(rows.slice(0, 2), [0, 31]);
  assert.equal(rows.slice(-2), [2016, 2047]);
  assert.ok(rows.every((r) => r % 32 === 0 || r % 32 === 31));
  assert.equal(blockEdgeRows(100, 64, 4), [0, 63, 64, 99]);
});

test("an H200-like adapter runs both backward kernels on subgroup matrices within 48 KiB for D 64 and 128; SFT_ATTENTION=scalar keeps the scalar ones", () => {
  // subgroups per workgroup and the tile (keys for dQ, queries for dK/dV) the chooser gives
  const expected = { 64: { dq: [4, 32], dkdv: [4, 32] }, 128: { dq: [2, 32], dkdv: [2, 32] } } as const;
  for (const D of [64, 128] as const) {
    const chosen = expectOk(attentionBackwardKernelsFor(H200, causal(D, "f16"), {}));
    for (const kernel of ["dq", "dkdv"] as const) {
      const spec = chosen[kernel];
      assert.ok(spec.name.endsWith("_subgroup_matrix"), `${spec.name} D ${D}`);
      const [subgroups, tile] = expected[D][kernel];
      assert.equal([spec.variant.subgroups, kernel === "dq" ? spec.variant.blockK : spec.variant.queryTile], [subgroups, tile], `${spec.name} D ${D}: layout`);
      assert.is(spec.workgroupSize[0], subgroups * 32);
      const layout = { config: f16Configs("f32")[0], subgroupSize: 32, subgroups, blockK: tile };
      const declared = declaredWorkgroupBytes(spec);
      assert.is(declared, backwardWorkgroupBytes(layout, D, kernel), `${spec.name} D ${D}: the declared arrays are what the layout counts`);
      assert.ok(declared <= 49152, `${spec.name} D ${D}: ${declared} bytes`);
    }
  }
  const scalar = expectOk(attentionBackwardKernelsFor(H200, causal(128, "f16"), { SFT_ATTENTION: "scalar" }));
  assert.equal([scalar.dq.name, scalar.dkdv.name], ["attention_backward_dq", "attention_backward_dkdv"]);
});

test("the forward and backward WGSL compiles (Dawn null backend) for D 64/128/256, every f16 -> f32 shape, every mask; pipelines validate at the null device's limits", async () => {
  const opened = await openNullDevice();
  if (!opened) {
    console.log("    skipped: Dawn's null backend is not available");
    return;
  }
  const { device, subgroupSize, workgroupBytes: limit } = opened;
  const all = { dtype: "f16" as const, causal: true, prefix: true, padding: true, segments: true, alibi: true };
  let compiled = 0;
  const configs = f16Configs("f32");
  for (const config of configs)
    for (const D of [64, 128, 256]) {
      const adapter = { ...H200, subgroupMatrixConfigs: [config] };
      const variant = { ...all, headDim: D };
      // the chosen layouts; where none fits 48 KiB (dK/dV at D 256), one subgroup and 16-row
      // tiles: compiling does not depend on the workgroup memory limit
      const smallest = { config, subgroupSize: 32, subgroups: 1, blockK: 16 };
      const forward = subgroupAttentionLayout(adapter, D) ?? smallest;
      const kernels = [
        attentionForwardSubgroupKernel(variant, forward),
        attentionForwardSubgroupKernel(variant, { ...forward, subgroups: 1 }),
        attentionDqSubgroupKernel(variant, backwardLayouts(adapter, D, "dq")[0] ?? smallest),
        attentionDkdvSubgroupKernel(variant, backwardLayouts(adapter, D, "dkdv")[0] ?? smallest),
      ];
      for (const spec of kernels) {
        assert.equal(await kernelErrors(device, spec, false), [], `${spec.name} ${JSON.stringify(spec.variant)}`);
        compiled++;
      }
    }
  assert.is(compiled, configs.length * 3 * 4, "forward (two layouts), dQ and dK/dV at every configuration and head dim");
  // at the null device's own subgroup size and workgroup memory, causal masks only (fewer bindings)
  const own = { ...H200, subgroupMinSize: subgroupSize, subgroupMaxSize: subgroupSize, workgroupStorageBytes: limit };
  const causalF32 = causal(64);
  const backward = expectOk(attentionBackwardKernelsFor(own, causalF32, {}));
  const validated = [attentionForwardSubgroupKernel(causalF32, layoutOf(own, 64)), backward.dq, backward.dkdv];
  for (const spec of validated) {
    assert.ok(spec.name.endsWith("_subgroup_matrix"), spec.name);
    assert.equal(await kernelErrors(device, spec, true), [], `${spec.name} as a pipeline`);
  }
  console.log(`    ${compiled} kernels compiled, ${validated.length} validated as pipelines (subgroups of ${subgroupSize}, ${limit} bytes of workgroup memory)`);
  device.destroy();
});

test.run();
