// Matmul whose B operand is a QLoRA weight stored as NF4 (stdlib/quant/nf4.ts): 4-bit codes,
// two per byte (first element in the high nibble), one double-quantized absmax per block of 64
// weights (an 8-bit dynamic-map code, one f32 scale per 256 codes, one f32 offset per tensor).
// The kernel is the dense matmul (matmul.ts, any strategy) with its B accessor replaced: each
// load of element i of the stored (rows, cols) weight decodes it in registers,
//   w[i] = NF4[q(i)] * (DYNAMIC[code(i / 64)] * scale(i / 64 / 256) + offset),
// so no dequantized copy of the weight ever exists on the device (the subgroup-matrix strategy
// rounds each decoded value to f16 as it enters workgroup memory, like every operand there).
// Both the forward product x Wᵀ (transB) and the input gradient dY W (W as stored) read W this way.
import { invariant } from "../../compiler/diagnostics.ts";
import { absmaxBlockSize, dequantizeNf4, dynamicMap, nf4BlockSize, nf4Levels, type Nf4Tensor } from "../quant/nf4.ts";
import type { KernelBinding, KernelSpec } from "./kernel.ts";
import { matmulKernel, matmulRef, type MatmulKernel, type MatmulOptions, type MatmulShape } from "./matmul.ts";

/** Bindings that replace B: codes and absmax codes as packed u32 words, scales, offset, lookup tables. */
export const NF4_B_BINDINGS = { codes: "b_codes", absmax: "b_absmax", scales: "b_scales", offset: "b_offset", tables: "nf4_tables" } as const;

/** The lookup tables every NF4 matmul reads: the 16 NF4 levels, then the 256 dynamic-map values. */
export function nf4Tables(): Float32Array {
  const out = new Float32Array(16 + 256);
  out.set(nf4Levels, 0);
  out.set(dynamicMap(), 16);
  return out;
}

// load4_b decodes four consecutive weights from one load of their codes and one absmax (four
// consecutive weights share a 64-weight block): half a codes word holds them, as two bytes of a
// high and a low nibble each. Where the kernel reads B 32 weights at a time (its variant's b32:
// the gemv's steps), it reads B only so: the codes are bound as vec4 words and load32_b decodes
// 32 weights, half a block, from one 16-byte load and one absmax.
function nf4Accessors(vec4: boolean, wide: boolean): string {
  const b = NF4_B_BINDINGS;
  invariant(!wide || nf4BlockSize % 32 === 0, "32 consecutive weights share one absmax block");
  const decode = `fn nf4_absmax(block_: u32) -> f32 {
  let code_ = (${b.absmax}[block_ >> 2u] >> (8u * (block_ & 3u))) & 0xffu;
  return ${b.tables}[16u + code_] * ${b.scales}[block_ / ${absmaxBlockSize}u] + ${b.offset}[0];
}
// four weights from the two code bytes in the low 16 bits of half_, first weight in the high nibble
fn nf4_four(half_: u32, absmax_: f32) -> vec4<f32> {
  return vec4<f32>(${b.tables}[(half_ >> 4u) & 15u], ${b.tables}[half_ & 15u], ${b.tables}[(half_ >> 12u) & 15u], ${b.tables}[(half_ >> 8u) & 15u]) * absmax_;
}`;
  if (wide) {
    const halves = ["x", "y", "z", "w"].flatMap((w) => [`words_.${w}`, `words_.${w} >> 16u`]);
    return `${decode}
fn load32_b(j_: u32) -> array<vec4<f32>, 8> {
  let words_ = load4_${b.codes}(j_);
  let absmax_ = nf4_absmax((32u * j_) / ${nf4BlockSize}u);
  return array<vec4<f32>, 8>(${halves.map((h) => `nf4_four(${h}, absmax_)`).join(", ")});
}`;
  }
  const scalar = `fn load_b(i_: u32) -> f32 {
  let byte_ = (${b.codes}[i_ >> 3u] >> (8u * ((i_ >> 1u) & 3u))) & 0xffu;
  let q_ = select(byte_ & 15u, byte_ >> 4u, (i_ & 1u) == 0u);
  return ${b.tables}[q_] * nf4_absmax(i_ / ${nf4BlockSize}u);
}`;
  const four = `fn load4_b(j_: u32) -> vec4<f32> {
  let i_ = 4u * j_;
  return nf4_four(${b.codes}[i_ >> 3u] >> (16u * (j_ & 1u)), nf4_absmax(i_ / ${nf4BlockSize}u)); // bytes of weights i_, i_ + 1 and i_ + 2, i_ + 3
}`;
  return [decode, scalar, vec4 ? four : ""].filter(Boolean).join("\n");
}

/**
 * The kernel `dense` builds for `o` (default: the tiled one), with B read from an NF4 weight
 * (`o.b` is ignored); A, the output, bias and accumulation as in `matmulKernel`. Bind B's parts
 * under the names in NF4_B_BINDINGS.
 */
export function nf4MatmulKernel(o: MatmulOptions, shape: MatmulShape, dense: MatmulKernel = matmulKernel): KernelSpec {
  // the accessor decodes 32 weights at once; a kernel that takes them (the gemv, where its variant
  // asks for wideSteps) reads B only so
  const kernel = dense({ ...o, b: "f32", bLoads32: true }, shape);
  const b = kernel.bindings.find((x) => x.name === "b");
  invariant(b, "the matmul kernel binds B as 'b'");
  const wide = kernel.variant.b32 === true;
  const parts: KernelBinding[] = [
    { name: NF4_B_BINDINGS.codes, dtype: "u32", access: "read", vec4: wide },
    { name: NF4_B_BINDINGS.absmax, dtype: "u32", access: "read" },
    { name: NF4_B_BINDINGS.scales, dtype: "f32", access: "read" },
    { name: NF4_B_BINDINGS.offset, dtype: "f32", access: "read" },
    { name: NF4_B_BINDINGS.tables, dtype: "f32", access: "read" },
  ];
  return {
    ...kernel,
    name: `${kernel.name}_nf4`,
    variant: { ...kernel.variant, b: "nf4" },
    bindings: kernel.bindings.flatMap((x) => (x === b ? parts : [x])),
    declarations: `${nf4Accessors(!!b.vec4, wide)}\n${kernel.declarations ?? ""}`,
  };
}

// ---- float64 CPU reference ----

/** C = alpha * op(A) op(W) (+ bias, + beta * C0) with W the dequantized NF4 weight, in float64. */
export function nf4MatmulRef(
  a: Float64Array,
  weight: Nf4Tensor,
  o: { transA: boolean; transB: boolean },
  s: MatmulShape,
  extra: { bias?: Float64Array; c0?: Float64Array } = {},
): Float64Array {
  invariant(!(weight.absmax instanceof Float32Array), "the NF4 matmul reads double-quantized absmax values");
  return matmulRef(a, Float64Array.from(dequantizeNf4(weight)), o, s, extra);
}
