// Strided views: reshape, permute, slice and broadcast cost no kernel when the result can be read
// from the source buffer with an offset and strides (broadcast dims get stride 0). Kernels take
// such views as inputs; a view the kernel cannot read is copied first.
import type { Node, Shape } from "../ir/node.ts";
import type { TensorView } from "../../stdlib/kernels/attention-layout.ts";
import { strides as contiguousStrides } from "../ir/interpret.ts";

/** Element (offset + Σ index[i] * strides[i]) of `base`'s buffer, for an index in `shape`. */
export interface View {
  base: Node;
  shape: Shape;
  strides: readonly number[];
  offset: number;
}

export function contiguousView(base: Node): View {
  return { base, shape: base.shape, strides: contiguousStrides(base.shape), offset: 0 };
}

export function isContiguous(v: View): boolean {
  const c = contiguousStrides(v.shape);
  return v.offset === 0 && v.shape.every((d, i) => d === 1 || v.strides[i] === c[i]);
}

/** The view a movement op produces from the view of its source, or undefined if it needs a copy. */
export function applyMovement(n: Node, v: View): View | undefined {
  const a = n.attrs;
  switch (n.op) {
    case "permute":
      return { ...v, shape: n.shape, strides: a.perm!.map((p) => v.strides[p]) };
    case "slice":
      return { ...v, shape: n.shape, offset: v.offset + a.start! * v.strides[a.axis!] };
    case "broadcast":
      return { ...v, shape: n.shape, strides: v.strides.map((s, i) => (v.shape[i] === 1 && n.shape[i] !== 1 ? 0 : s)) };
    case "reshape": {
      const st = reshapeStrides(v.shape, v.strides, n.shape);
      return st && { ...v, shape: n.shape, strides: st };
    }
    default:
      return undefined;
  }
}

/**
 * Strides for reading `to` from a strided tensor of shape `from` without copying, or undefined.
 * Groups of source dims that merge into target dims must be contiguous among themselves.
 */
export function reshapeStrides(from: Shape, fromStrides: readonly number[], to: Shape): number[] | undefined {
  const dims = from.map((d, i) => [d, fromStrides[i]] as const).filter(([d]) => d !== 1);
  const out = new Array<number>(to.length).fill(0);
  let oi = 0;
  let ni = 0;
  while (ni < to.length) {
    if (to[ni] === 1) {
      out[ni++] = 0;
      continue;
    }
    if (oi >= dims.length) return undefined;
    // take source dims [oi, oj) and target dims [ni, nj) with equal products
    let oj = oi + 1;
    let nj = ni + 1;
    let op = dims[oi][0];
    let np = to[ni];
    while (op !== np) {
      if (np < op) {
        if (nj >= to.length) return undefined;
        np *= to[nj++];
      } else {
        if (oj >= dims.length) return undefined;
        op *= dims[oj++][0];
      }
    }
    for (let k = oi; k < oj - 1; k++) if (dims[k][1] !== dims[k + 1][0] * dims[k + 1][1]) return undefined;
    let stride = dims[oj - 1][1];
    for (let k = nj - 1; k >= ni; k--) {
      out[k] = to[k] === 1 ? 0 : stride;
      stride *= to[k];
    }
    oi = oj;
    ni = nj;
  }
  return oi === dims.length ? out : undefined;
}

export function formatView(v: View, name: string): string {
  if (isContiguous(v)) return name;
  return `${name}[shape ${v.shape.join("x")}, strides ${v.strides.join(",")}${v.offset ? `, +${v.offset}` : ""}]`;
}

/** A (B, L, H, D) view with unit stride over D as the attention/RoPE kernels take it. */
export function tensorView(v: View): TensorView {
  const [sb, st, sh] = v.strides;
  return { offset: v.offset, batchStride: sb, tokenStride: st, headStride: sh };
}
