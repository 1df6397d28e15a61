// The kernel framework: a kernel is data (name, variant, uniforms, bindings, workgroup size,
// dispatch rule, WGSL body). Shapes live in uniforms, so one compiled pipeline per variant
// serves every size; the variant (dtypes, tile sizes, flags) is part of the cache key.
import { invariant } from "../../compiler/diagnostics.ts";
import { wgslArrayElement, wgslFloatAccessors, type StorageDType } from "./dtype.ts";

export type UniformType = "u32" | "i32" | "f32";
export type Access = "read" | "read_write";

/** One storage buffer the kernel binds, in binding order (binding 0 is the uniforms). */
export interface KernelBinding {
  name: string;
  dtype: StorageDType;
  access: Access;
  /**
   * Read-only, four elements at a time through `load4_NAME(j)` (j counts groups of four): as
   * `array<vec4<T>>` for f32 and f16 (returning vec4<f32>), as `array<vec2<u32>>` for bf16
   * (likewise), as `array<vec4<u32>>` for u32 (returning the words); tensor buffers are padded
   * to 16 bytes.
   */
  vec4?: boolean;
}

export type Variant = Readonly<Record<string, string | number | boolean>>;
export type UniformValues = Readonly<Record<string, number>>;
export type Grid = readonly [number, number, number];

/**
 * A compute kernel as data. The generated module declares `u` (the uniforms struct), one
 * `array` per binding (float bindings also get `load_NAME(i) -> f32` / `store_NAME(i, v)`),
 * `WG_X/WG_Y/WG_Z`, and `main` with builtins `gid`, `lid`, `wid`, `nwg`, `lidx`.
 */
export interface KernelSpec {
  /** `op_variant` style, e.g. "matmul_tiled". */
  name: string;
  /** Compile-time choices; with `name` they form the pipeline cache key, so everything that changes the WGSL must be here. */
  variant: Variant;
  /** Scalars passed per dispatch, in struct order. */
  uniforms: Readonly<Record<string, UniformType>>;
  bindings: readonly KernelBinding[];
  workgroupSize: Grid;
  /** Number of workgroups for the given uniforms. */
  dispatch: (u: UniformValues) => Grid;
  /** Module-scope WGSL: helper functions, `var<workgroup>` arrays, constants. */
  declarations?: string;
  /** WGSL statements of `main`. */
  body: string;
  /** WGSL extensions beyond `f16` (which f16 bindings imply), e.g. "chromium_experimental_subgroup_matrix". */
  enables?: readonly string[];
}

/** Where a bound kernel's binding points: the tensor of that name, or its window from element `start` on. */
export interface TensorRef {
  name: string;
  start?: number;
}

/**
 * A kernel with its uniforms and tensors named by the caller (one step of a sequence: a probe's
 * case, a tuning candidate, a launch), bindings left out of `bind` taking the tensor of their own name.
 */
export interface BoundKernel {
  spec: KernelSpec;
  uniforms: UniformValues;
  bind?: Readonly<Record<string, TensorRef>>;
}

/** Whether the kernel multiplies on subgroup matrices (its products take f16 operands). */
export function onSubgroupMatrices(spec: KernelSpec): boolean {
  return !!spec.enables?.includes("chromium_experimental_subgroup_matrix");
}

/** The pipeline cache key: kernel name and variant. */
export function kernelKey(spec: KernelSpec): string {
  const variant = Object.keys(spec.variant)
    .sort()
    .map((k) => `${k}=${spec.variant[k]}`)
    .join(",");
  return `${spec.name}[${variant}]`;
}

/** Whether the kernel needs `shader-f16`. */
export function needsF16(spec: KernelSpec): boolean {
  return spec.bindings.some((b) => b.dtype === "f16") || !!spec.enables?.includes("f16");
}

/** The complete WGSL module of a kernel. */
export function kernelSource(spec: KernelSpec): string {
  const uniformNames = Object.keys(spec.uniforms);
  const members = uniformNames.length ? uniformNames.map((n) => `  ${n}: ${spec.uniforms[n]},`).join("\n") : "  _unused: u32,";
  const bindings = spec.bindings.map((b, i) => {
    invariant(!(b.dtype === "bf16" && b.access === "read_write"), `${spec.name}: bf16 binding '${b.name}' must be read-only`);
    if (b.vec4) {
      invariant(b.access === "read", `${spec.name}: vec4 binding '${b.name}' must be read-only`);
      if (b.dtype === "bf16")
        // four bf16 in two words, element 2j in the low half of word j: each widens exactly by a shift
        return `@group(0) @binding(${i + 1}) var<storage, read> ${b.name}: array<vec2<u32>>;
fn load4_${b.name}(i_: u32) -> vec4<f32> {
  let w_ = ${b.name}[i_];
  return bitcast<vec4<f32>>(vec4<u32>(w_.x << 16u, w_.x & 0xffff0000u, w_.y << 16u, w_.y & 0xffff0000u));
}`;
      if (b.dtype === "u32")
        return `@group(0) @binding(${i + 1}) var<storage, read> ${b.name}: array<vec4<u32>>;
fn load4_${b.name}(i_: u32) -> vec4<u32> { return ${b.name}[i_]; }`;
      invariant(b.dtype === "f32" || b.dtype === "f16", `${spec.name}: vec4 binding '${b.name}' must be f32, f16, bf16 or u32`);
      return `@group(0) @binding(${i + 1}) var<storage, read> ${b.name}: array<vec4<${b.dtype}>>;
fn load4_${b.name}(i_: u32) -> vec4<f32> { return vec4<f32>(${b.name}[i_]); }`;
    }
    const decl = `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${wgslArrayElement(b.dtype)}>;`;
    const isFloat = b.dtype === "f32" || b.dtype === "f16" || b.dtype === "bf16";
    return isFloat ? `${decl}\n${wgslFloatAccessors(b.name, b.dtype, b.access === "read_write")}` : decl;
  });
  const [x, y, z] = spec.workgroupSize;
  const enables = [...new Set([...(needsF16(spec) ? ["f16"] : []), ...(spec.enables ?? [])])];
  return `${enables.map((e) => `enable ${e};\n`).join("")}
struct Uniforms {
${members}
}
@group(0) @binding(0) var<uniform> u: Uniforms;
${bindings.join("\n")}
const WG_X = ${x}u;
const WG_Y = ${y}u;
const WG_Z = ${z}u;
${spec.declarations ?? ""}
@compute @workgroup_size(${x}, ${y}, ${z})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {
${spec.body}
}
`;
}

/** Bytes of one buffer of the uniform arenas that hold the slots of dispatches recorded one by one (runtime/gpu/batch.ts). */
export const UNIFORM_ARENA_BYTES = 64 * 1024;

/** Size in bytes of the uniforms buffer (a multiple of 16, as uniform structs require). */
export function uniformBytes(spec: KernelSpec): number {
  return Math.max(16, Math.ceil((Object.keys(spec.uniforms).length * 4) / 16) * 16);
}

/** Packs uniform values in struct order; a missing or ill-typed value is a caller bug. */
export function packUniforms(spec: KernelSpec, values: UniformValues, into: DataView, offset: number): void {
  Object.entries(spec.uniforms).forEach(([name, type], i) => {
    const v = values[name];
    invariant(typeof v === "number" && Number.isFinite(v), `${spec.name}: uniform '${name}' is ${v}`);
    const at = offset + i * 4;
    if (type === "f32") into.setFloat32(at, v, true);
    else {
      invariant(Number.isInteger(v), `${spec.name}: uniform '${name}' must be an integer, got ${v}`);
      if (type === "u32") {
        invariant(v >= 0 && v <= 0xffffffff, `${spec.name}: uniform '${name}' out of u32 range: ${v}`);
        into.setUint32(at, v, true);
      } else into.setInt32(at, v, true);
    }
  });
}

// ---- dispatch helpers ----

/** Largest workgroup count per grid dimension that WebGPU guarantees. */
export const MAX_GRID_DIM = 65535;

/**
 * A grid of `count` workgroups folded into x and y when it exceeds one dimension.
 * In WGSL, `flat_workgroup_id(wid, nwg)` recovers the flat index (it can exceed `count`: guard it).
 */
export function linearGrid(count: number): Grid {
  if (count <= MAX_GRID_DIM) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / MAX_GRID_DIM);
  return [Math.ceil(count / y), y, 1];
}

/** WGSL helper paired with `linearGrid`; include it in `declarations`. */
export const WGSL_FLAT_WORKGROUP = `fn flat_workgroup_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }`;

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}
