// Subgroup-matrix kernels run where no adapter has subgroup matrices (lavapipe): the kernel's
// WGSL with every matrix type and builtin replaced by plain WGSL of the documented meaning, as
// checked exact on NVIDIA:
// - subgroup_matrix_left<T, K, M> is M x K, right<T, N, K> is K x N, result<T, N, M> is M x N
//   (the template gives columns, then rows);
// - subgroupMatrixLoad<T, row_major>(&array, offset, stride) reads element (r, c) at
//   offset + r * stride + c, subgroupMatrixStore<row_major> writes it there; col_major reads
//   and writes offset + c * stride + r (row-major was checked exact on NVIDIA; column-major is
//   the documented meaning, which the device self-check and the bench confirm there);
// - subgroupMatrixMultiplyAccumulate(l, r, acc) returns acc + l x r.
// One invocation holds a whole matrix: generate the kernel with a subgroup size of 1 and every
// "subgroup" is one invocation. Values keep their element type's precision (an f16 value is
// rounded to f16); products are summed in f32 and added to the accumulator once per call (an
// f16 result rounds there); products of f16 inputs are exact in f32.
//
// Matrices as values (structs of arrays) are copied at every call, and large private arrays
// compile slowly, which makes lavapipe's LLVM take minutes over a kernel. Instead each
// matrix-making call in the text owns a slot of the invocation's region of a storage buffer
// (`emu_values`, one more binding) and its value is a handle to that slot: a call overwrites its
// slot each time it runs, so the kernel must be done with a matrix before the call that made it
// runs again (true when matrices are loaded, multiplied and stored within each loop iteration
// and only accumulators are carried), and must not copy matrices between variables.
// `x = subgroupMatrixMultiplyAccumulate(l, r, x)` adds into x's slot in place.
import * as assert from "uvu/assert";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, type GpuTensor } from "../../runtime/gpu/tensor.ts";
import type { KernelSpec, UniformValues } from "../../stdlib/kernels/kernel.ts";
import type { SubgroupMatrixConfig } from "../../stdlib/kernels/matmul-subgroup.ts";

type Kind = "left" | "right" | "result";

const MATRIX_TYPE = /subgroup_matrix_(left|right|result)<(\w+), (\d+), (\d+)>/g;
const LOAD = /subgroupMatrixLoad<subgroup_matrix_(left|right|result)<\w+, \d+, \d+>, (\w+)>\(/g;
const ZERO = /subgroup_matrix_(left|right|result)<\w+, \d+, \d+>\(\)/g;
const STORE = /subgroupMatrixStore<(\w+)>\(/g;
const MMA = /subgroupMatrixMultiplyAccumulate\(/g;

// The element type of every array a matrix may be loaded from or stored to: the kernel's
// workgroup arrays and its f32/f16 storage bindings.
function arrayTypes(spec: KernelSpec): Map<string, string> {
  const workgroup = [...(spec.declarations ?? "").matchAll(/var<workgroup>\s+(\w+)\s*:\s*array<(f16|f32),\s*\d+>/g)].map((m) => [m[1], m[2]] as const);
  const storage = spec.bindings.filter((b) => !b.vec4 && (b.dtype === "f16" || b.dtype === "f32")).map((b) => [b.name, b.dtype] as const);
  return new Map([...workgroup, ...storage]);
}

// The arguments of the call whose "(" is at `open`, split at top-level commas, and the index of its ")".
function callArguments(text: string, open: number): { args: string[]; close: number } {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === "(") depth++;
    else if (ch === ")" && --depth === 0) {
      args.push(text.slice(start, i).trim());
      return { args, close: i };
    } else if (ch === "," && depth === 1) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  assert.unreachable(`unbalanced call: ${text.slice(open - 40, open + 40)}`);
  return { args, close: text.length };
}

// Every call matched by `callee` (a global pattern ending at its "(") replaced by `by(match, arguments, text before it)`.
function rewriteCalls(text: string, callee: RegExp, by: (m: RegExpExecArray, args: string[], before: string) => string): string {
  let out = "";
  let from = 0;
  for (callee.lastIndex = 0; ; ) {
    const m = callee.exec(text);
    if (!m) return out + text.slice(from);
    const { args, close } = callArguments(text, m.index + m[0].length - 1);
    out += text.slice(from, m.index) + by(m, args, text.slice(from, m.index));
    from = callee.lastIndex = close + 1;
  }
}

// The emulating function's name part for a load or store: its layout ("rm" or "cm") and the
// array `&name` points to.
function target(pointer: string, layout: string): string {
  assert.match(pointer, /^&\w+$/, `a subgroup-matrix load or store names its array: ${pointer}`);
  assert.ok(layout === "row_major" || layout === "col_major", `subgroup-matrix layout ${layout}`);
  return `${layout === "row_major" ? "rm" : "cm"}_${pointer.slice(1)}`;
}

const matrixSize = (c: SubgroupMatrixConfig) => Math.max(c.M * c.K, c.K * c.N, c.M * c.N);

function declarations(c: SubgroupMatrixConfig, spec: KernelSpec, text: string, nonZeroUniform: string): string {
  const dims: Record<Kind, [number, number]> = { left: [c.M, c.K], right: [c.K, c.N], result: [c.M, c.N] };
  const element: Record<Kind, string> = { left: c.componentType, right: c.componentType, result: c.resultComponentType };
  const size = matrixSize(c);
  const types = arrayTypes(spec);
  // element i of a rows x cols matrix is (i / cols, i % cols), stored at offset + row * stride
  // + col (rm, row-major) or offset + col * stride + row (cm, column-major)
  const loop = (layout: string, rows: number, cols: number, inner: string) => `for (var i = 0u; i < emu_dim(${rows * cols}u); i++) {
    let at = offset + ${layout === "rm" ? `(i / ${cols}u) * stride + i % ${cols}u` : `(i % ${cols}u) * stride + i / ${cols}u`};
    ${inner}
  }`;
  const loads = [...new Set([...text.matchAll(/emu_load_(left|right|result)_(rm|cm)_(\w+)\(/g)].map((m) => `${m[1]} ${m[2]} ${m[3]}`))].map((key) => {
    const [kind, layout, array] = key.split(" ") as [Kind, string, string];
    assert.ok(types.has(array), `emulated subgroupMatrixLoad from '${array}', an array of f16 or f32`);
    const [rows, cols] = dims[kind];
    return `fn emu_load_${kind}_${layout}_${array}(slot: u32, offset: u32, stride: u32) -> Emu_${kind} {
  ${loop(layout, rows, cols, `emu_values[emu_at(slot) + i] = f32(${element[kind]}(${array}[at]));`)}
  return Emu_${kind}(slot);
}`;
  });
  const stores = [...new Set([...text.matchAll(/emu_store_(rm|cm)_(\w+)\(/g)].map((m) => `${m[1]} ${m[2]}`))].map((key) => {
    const [layout, array] = key.split(" ");
    assert.ok(types.has(array), `emulated subgroupMatrixStore to '${array}', an array of f16 or f32`);
    const [rows, cols] = dims.result;
    return `fn emu_store_${layout}_${array}(offset: u32, m: Emu_result, stride: u32) {
  ${loop(layout, rows, cols, `${array}[at] = ${types.get(array)}(emu_values[emu_at(m.slot) + i]);`)}
}`;
  });
  const zeros = [...new Set([...text.matchAll(/emu_zero_(left|right|result)\(/g)].map((m) => m[1] as Kind))].map(
    (kind) => `fn emu_zero_${kind}(slot: u32) -> Emu_${kind} {
  for (var i = 0u; i < emu_dim(${size}u); i++) { emu_values[emu_at(slot) + i] = 0.0; }
  return Emu_${kind}(slot);
}`,
  );
  return `var<private> emu_base: u32; // this invocation's first value in emu_values
// slot s of this invocation holds one matrix, row-major, from emu_at(s) on
fn emu_at(slot: u32) -> u32 { return emu_base + slot * ${size}u; }
struct Emu_left { slot: u32 } // M x K
struct Emu_right { slot: u32 } // K x N
struct Emu_result { slot: u32 } // M x N
// n, as a value the compiler cannot fold: constant trip counts get every loop unrolled
fn emu_dim(n: u32) -> u32 { return select(n, 0u, ${nonZeroUniform} == 0u); }
${[...loads, ...stores, ...zeros].join("\n")}
// into = acc.slot adds in place: element (i, j) of acc is read only to write (i, j)
fn emu_mma(into: u32, l: Emu_left, r: Emu_right, acc: Emu_result) -> Emu_result {
  for (var x = 0u; x < emu_dim(${c.M * c.N}u); x++) {
    let i = x / ${c.N}u;
    let j = x % ${c.N}u;
    var sum = 0.0;
    for (var k = 0u; k < emu_dim(${c.K}u); k++) { sum += emu_values[emu_at(l.slot) + i * ${c.K}u + k] * emu_values[emu_at(r.slot) + k * ${c.N}u + j]; }
    emu_values[emu_at(into) + x] = f32(${c.resultComponentType}(emu_values[emu_at(acc.slot) + x] + sum));
  }
  return Emu_result(into);
}`;
}

/** A kernel with emulated subgroup matrices, and the storage its matrices need. */
export interface EmulatedKernel {
  spec: KernelSpec;
  /** The f32 tensor to bind as `emu_values` for a dispatch with these uniforms. */
  values(gpu: GpuDevice, uniforms: UniformValues): GpuTensor;
}

/**
 * `spec` (generated for subgroups of 1 invocation) with its subgroup-matrix types and builtins of
 * configuration `c` replaced by plain WGSL; `nonZeroUniform` names a u32 uniform that is never 0
 * when the kernel runs (e.g. "u.batch"), which keeps the emulation's loops from being unrolled.
 */
export function emulateSubgroupMatrices(spec: KernelSpec, c: SubgroupMatrixConfig, nonZeroUniform: string): EmulatedKernel {
  const dims: Record<Kind, [number, number]> = { left: [c.M, c.K], right: [c.K, c.N], result: [c.M, c.N] };
  const element: Record<Kind, string> = { left: c.componentType, right: c.componentType, result: c.resultComponentType };
  for (const m of `${spec.declarations ?? ""}\n${spec.body}`.matchAll(MATRIX_TYPE)) {
    const kind = m[1] as Kind;
    const [rows, cols] = dims[kind];
    assert.equal([m[2], Number(m[4]), Number(m[3])], [element[kind], rows, cols], `${m[0]} is of the configuration ${c.componentType}>${c.resultComponentType} ${c.M}x${c.N}x${c.K}`);
  }
  let slots = 0;
  const rewrite = (wgsl: string) => {
    const loaded = rewriteCalls(wgsl, LOAD, (m, [pointer, offset, stride]) => `emu_load_${m[1]}_${target(pointer, m[2])}(${slots++}u, ${offset}, ${stride})`);
    const stored = rewriteCalls(loaded, STORE, (m, [pointer, offset, value, stride]) => `emu_store_${target(pointer, m[1])}(${offset}, ${value}, ${stride})`);
    // x = mma(l, r, x) adds into x's slot; any other product gets a slot of its own
    const multiplied = rewriteCalls(stored, MMA, (_, args, before) => {
      assert.is(args.length, 3, "subgroupMatrixMultiplyAccumulate takes 3 arguments");
      const target = /(\w+)\s*=\s*$/.exec(before)?.[1];
      return `emu_mma(${target === args[2] ? `${target}.slot` : `${slots++}u`}, ${args.join(", ")})`;
    });
    return (
      multiplied
        .replace(ZERO, (_, kind) => `emu_zero_${kind}(${slots++}u)`)
        // any rule name keeps the diagnostic attributes valid once the extension is gone
        .replace(/chromium\.subgroup_matrix_uniformity/g, "derivative_uniformity")
    );
  };
  const kept = rewrite(spec.declarations ?? "");
  const body = rewrite(spec.body);
  const text = `${kept}\n${body}`;
  assert.not.match(text, /subgroup_?[mM]atrix/, "every matrix type and builtin is emulated");
  const [x, y, z] = spec.workgroupSize;
  const perInvocation = Math.max(slots, 1) * matrixSize(c);
  const emulated: KernelSpec = {
    ...spec,
    name: `${spec.name}_emulated`,
    bindings: [...spec.bindings, { name: "emu_values", dtype: "f32", access: "read_write" }],
    declarations: `${kept}\n${declarations(c, spec, text, nonZeroUniform)}`,
    body: `  emu_base = (((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * ${x * y * z}u + lidx) * ${perInvocation}u;\n${body}`,
    enables: (spec.enables ?? []).filter((e) => e !== "chromium_experimental_subgroup_matrix"),
  };
  return {
    spec: emulated,
    values: (gpu, uniforms) => {
      const [gx, gy, gz] = spec.dispatch(uniforms);
      return createTensor(gpu, "f32", [gx * gy * gz * x * y * z * perInvocation], "emulated subgroup matrices");
    },
  };
}
