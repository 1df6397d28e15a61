// Subgroup-matrix kernels made runnable on adapters without subgroup matrices (lavapipe): their
// WGSL with each matrix builtin replaced by a plain function of the documented meaning
// (subgroupMatrixLoad with col_major = false reads element (r, c) of an R x C matrix at
// offset + r * stride + c; left<T, K, M> is M x K, right<T, N, K> is K x N, result<T, N, M> is
// M x N; MultiplyAccumulate adds left x right in f32), every value of a matrix held by one
// invocation. Run them with layout.subgroupSize = 1 (EMULATED_ADAPTER), so a subgroup is one
// invocation and no two invocations share a matrix. Everything but the matrix hardware is the
// kernel's own code.
import * as assert from "uvu/assert";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import type { SubgroupMatrixConfig } from "../../stdlib/kernels/matmul-subgroup.ts";

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

/** The kernel with its subgroup-matrix calls (configuration `config`) rewritten to the emulation. */
export function emulated(spec: KernelSpec, config: SubgroupMatrixConfig): KernelSpec {
  const { M, N, K } = config;
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
