// The subgroup-matrix attention forward run on lavapipe, which has no subgroup matrices: its
// WGSL with each matrix builtin replaced by a plain function of the documented meaning
// (subgroupMatrixLoad with col_major = false reads element (r, c) of an R x C matrix at
// offset + r * stride + c; left<T, K, M> is M x K, right<T, N, K> is K x N, result<T, N, M> is
// M x N; MultiplyAccumulate adds left x right in f32), every value of a matrix held by one
// invocation. A subgroup is then one invocation (layout.subgroupSize = 1), so no two
// invocations share a matrix. Everything but the matrix hardware is the kernel's own code:
// tiling, staging, the online softmax, masks, views, GQA. Checked against the float64
// reference on f16-rounded inputs for cases of the scalar forward's tests.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats } from "../../runtime/gpu/tensor.ts";
import { attentionForwardSubgroupKernel, subgroupAttentionLayout, subgroupAttentionTolerance, type SubgroupAttentionLayout } from "../../stdlib/kernels/attention-forward-subgroup.ts";
import { attentionForwardUniforms } from "../../stdlib/kernels/attention-forward.ts";
import { denseView, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import { maskFlags } from "../../stdlib/kernels/attention-mask.ts";
import { attentionForwardReference } from "../../stdlib/kernels/attention-reference.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { assertClose } from "../support/numeric.ts";
import { withGpu } from "./gpu-harness.ts";
import { assertLogSumExpClose, casesFor, caseLabel, makeInputs, uploadInputs, type AttentionCase } from "./attention-harness.ts";

const test = suite("attention forward on emulated subgroup matrices");

/** The plain-WGSL stand-ins of the matrix types and builtins for configuration M x N x K. */
function emulation(spec: KernelSpec, M: number, N: number, K: number): string {
  const arrays = new Map([...(spec.declarations ?? "").matchAll(/var<workgroup>\s+(\w+):\s*array<(f16|f32), \d+>/g)].map((m) => [m[1], m[2]]));
  const load = (kind: string, rows: number, cols: number, array: string) => `fn emu_${kind}_${array}(offset: u32, col_major: bool, stride: u32) -> Emu${kind} {
  var m: Emu${kind};
  for (var r = 0u; r < emu_dim(${rows}u); r++) { for (var c = 0u; c < emu_dim(${cols}u); c++) { m.v[r * ${cols}u + c] = f32(${array}[offset + r * stride + c]); } }
  return m;
}`;
  const store = (array: string) => `fn emu_store_${array}(offset: u32, m: Emuresult, col_major: bool, stride: u32) {
  for (var r = 0u; r < emu_dim(${M}u); r++) { for (var c = 0u; c < emu_dim(${N}u); c++) { ${array}[offset + r * stride + c] = ${arrays.get(array)}(m.v[r * ${N}u + c]); } }
}`;
  const names = [...arrays.keys()];
  return `struct Emuleft { v: array<f32, ${M * K}> }
struct Emuright { v: array<f32, ${K * N}> }
struct Emuresult { v: array<f32, ${M * N}> }
// n, as a value the compiler cannot fold: constant trip counts get every loop unrolled, which
// makes lavapipe's LLVM take minutes over this kernel
fn emu_dim(n: u32) -> u32 { return select(n, 0u, u.head_dim == 0u); }
${names.map((a) => [load("left", M, K, a), load("right", K, N, a), load("result", M, N, a), store(a)].join("\n")).join("\n")}
fn emu_mma(l: Emuleft, r: Emuright, acc: Emuresult) -> Emuresult {
  var out = acc;
  for (var i = 0u; i < emu_dim(${M}u); i++) {
    for (var j = 0u; j < emu_dim(${N}u); j++) {
      var sum = 0.0;
      for (var k = 0u; k < emu_dim(${K}u); k++) { sum += l.v[i * ${K}u + k] * r.v[k * ${N}u + j]; }
      out.v[i * ${N}u + j] += sum;
    }
  }
  return out;
}`;
}

/** The kernel with its subgroup-matrix calls rewritten to the emulation. */
function emulated(spec: KernelSpec, layout: SubgroupAttentionLayout): KernelSpec {
  const { M, N, K } = layout.config;
  const rewrite = (wgsl: string) =>
    wgsl
      .replace(/subgroupMatrixLoad<subgroup_matrix_(left|right|result)<f(?:16|32), \d+, \d+>>\(&(\w+), /g, "emu_$1_$2(")
      .replace(/subgroup_matrix_result<f32, \d+, \d+>\(\)/g, "Emuresult()")
      .replace(/subgroupMatrixStore\(&(\w+), /g, "emu_store_$1(")
      .replace(/subgroupMatrixMultiplyAccumulate\(/g, "emu_mma(")
      .replace(/chromium\.subgroup_matrix_uniformity/g, "derivative_uniformity");
  const declarations = `${spec.declarations}\n${emulation(spec, M, N, K)}`;
  const body = rewrite(spec.body);
  assert.not.match(`${rewrite(spec.declarations ?? "")}${body}`, /subgroup_?[mM]atrix/, "every matrix builtin is emulated");
  return { ...spec, name: `${spec.name}_emulated`, declarations, body, enables: ["f16"] };
}

// An adapter with one f16 -> f32 configuration of 16 x 8 x 16 (N differs from M and K, so a swapped index shows).
const EMULATED = {
  architecture: "",
  features: ["chromium-experimental-subgroup-matrix", "shader-f16"],
  subgroupMinSize: 32,
  subgroupMaxSize: 32,
  subgroupMatrixConfigs: [{ componentType: "f16", resultComponentType: "f32", M: 16, N: 8, K: 16 }],
};

// One case per pipeline, each taking lavapipe seconds to compile: GQA over several tiles (fused
// QKV), a KV cache with right padding (separate Q and KV views), rows that see no key (left
// padding, MQA), and the GLM prefix (the key window). D 256 does not fit lavapipe's workgroup memory.
const emulatedCase = (c: AttentionCase) =>
  [
    "B2 Hq4 Hkv2 T37 S37 D64 causal fused f32",
    "B2 Hq4 Hkv2 T7 S40 D32 padding f32",
    "B3 Hq2 Hkv1 T9 S9 D32 left-padding fused f32",
    "B2 Hq2 Hkv1 T16 S16 D32 prefix fused f32",
  ].includes(caseLabel(c));

const SCALE = (headDim: number) => 1 / Math.sqrt(headDim);

test(
  "the kernel's code with emulated matrices matches the float64 reference on f16-rounded inputs",
  withGpu(async (gpu) => {
    if (!gpu.hasF16) {
      console.log("    skipped (no shader-f16)");
      return;
    }
    let seed = 300;
    // the layout the engine would pick with a 16x8x8 configuration in this device's workgroup memory
    const adapter = { ...EMULATED, workgroupStorageBytes: gpu.limits.maxComputeWorkgroupStorageSize };
    const cases = casesFor(gpu).filter(emulatedCase);
    assert.is(cases.length, 4, "the chosen cases exist");
    for (const c of cases) {
      const { batch: B, queryHeads: Hq, queryLength: T, headDim: D } = c.shape;
      const chosen = subgroupAttentionLayout(adapter, D);
      if (!chosen) {
        console.log(`    ${caseLabel(c)}: no layout fits ${adapter.workgroupStorageBytes} bytes of workgroup memory`);
        continue;
      }
      const layout = { ...chosen, subgroupSize: 1 };
      const inputs = makeInputs(c, seed++);
      const oView = denseView("bthd", T, Hq, D);
      const tensors = uploadInputs(gpu, c, inputs);
      tensors.o = createTensor(gpu, c.dtype, [B, T, Hq, D], "o");
      tensors.lse = createTensor(gpu, "f32", [B, Hq, T], "lse");
      const spec = emulated(attentionForwardSubgroupKernel({ dtype: c.dtype, headDim: D, ...maskFlags(inputs.mask) }, layout), layout);
      await runKernel(gpu, spec, attentionForwardUniforms(c.shape, { ...inputs.views, o: oView }, SCALE(D), inputs.mask), tensors);
      const [q, k, v] = [inputs.q, inputs.k, inputs.v].map((x) => roundToDType("f16", x));
      const ref = attentionForwardReference({ shape: c.shape, q, k, v, mask: inputs.mask, scale: SCALE(D) });
      // an f16 output adds its own rounding (2^-11) to the f16 weights'
      const tol = subgroupAttentionTolerance() * (c.dtype === "f16" ? 2 : 1);
      assertClose(gatherView(await readFloats(gpu, tensors.o), oView, B, T, Hq, D), ref.out, tol, `O ${caseLabel(c)}`);
      assertLogSumExpClose(await readFloats(gpu, tensors.lse), ref.logSumExp, 1e-5, `lse ${caseLabel(c)}`);
    }
  }),
);

test.run();
