// Builder for one-thread-per-element kernels: a flat index `i` over `n` elements, folded into
// a 2D grid when n is large; the per-element WGSL is the only part a kernel writes.
import type { StorageDType } from "./dtype.ts";
import { ceilDiv, linearGrid, WGSL_FLAT_WORKGROUP, type KernelBinding, type KernelSpec, type UniformType, type Variant } from "./kernel.ts";

const WORKGROUP = 256;

export interface ElementwiseOptions {
  name: string;
  variant: Variant;
  bindings: readonly KernelBinding[];
  /** Extra uniforms besides `n` (the element count). */
  uniforms?: Readonly<Record<string, UniformType>>;
  declarations?: string;
  /** WGSL statements run for each `i < u.n`. */
  perElement: string;
}

/** A kernel running `perElement` once for every i in [0, u.n). */
export function elementwiseKernel(o: ElementwiseOptions): KernelSpec {
  return {
    name: o.name,
    variant: o.variant,
    uniforms: { n: "u32", ...o.uniforms },
    bindings: o.bindings,
    workgroupSize: [WORKGROUP, 1, 1],
    dispatch: (u) => linearGrid(ceilDiv(u.n, WORKGROUP)),
    declarations: `${WGSL_FLAT_WORKGROUP}\n${o.declarations ?? ""}`,
    body: `  let i = flat_workgroup_id(wid, nwg) * WG_X + lidx;
  if (i >= u.n) { return; }
${o.perElement}`,
  };
}

/** Output dtype for a kernel reading `input`: bf16 is read-only storage, so it writes f32. */
export function writableDType(input: StorageDType): StorageDType {
  return input === "bf16" ? "f32" : input;
}
