// Rotary position embedding (RoPE), forward and backward, for every family's variant
// (models.md §6.2): half rotation (`rotate_half`) or interleaved pairs (`rotate_every_two`),
// partial rotary dims, GLM's two position streams, and any position id per token.
//
// cos/sin come from a host-built table (positions, pairs, 2) computed the way each reference
// computes it (the dtype of every step, models.md §6.3), not from WGSL sin/cos: those only
// promise 2^-11 absolute accuracy on [-pi, pi] and nothing beyond. The base (theta) is an
// argument of the table, so one compiled pipeline serves every base and length. The rotation
// itself runs in f32 (fp16 references rotate in fp16; only the tables are emulated).
import { invariant } from "../../compiler/diagnostics.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "./dtype.ts";
import type { KernelSpec, UniformValues } from "./kernel.ts";
import { ceilDiv, linearGrid, WGSL_FLAT_WORKGROUP } from "./kernel.ts";
import { viewUniforms, viewUniformValues, wgslViewIndex, type TensorView } from "./attention-layout.ts";

export type RopeStyle = "half" | "interleaved";

/** How a family rotates one head of `headDim` dims. */
export interface RopeLayout {
  style: RopeStyle;
  headDim: number;
  /** Dims 0..rotaryDim-1 rotate; the rest pass through unchanged. */
  rotaryDim: number;
  /** Position streams; each rotates its own rotaryDim/streams dims (GLM 2D: 2). */
  streams: 1 | 2;
}

export interface RopeFamily {
  layout: RopeLayout;
  base: number;
}

/** The rotary setup of each RoPE family (models.md §1.2, §3.2, §4.2, §5.2, §6.2). */
export const ROPE_FAMILIES = {
  baichuan7b: { layout: { style: "half", headDim: 128, rotaryDim: 128, streams: 1 }, base: 10000 },
  moss: { layout: { style: "interleaved", headDim: 256, rotaryDim: 64, streams: 1 }, base: 10000 },
  chatglm: { layout: { style: "half", headDim: 128, rotaryDim: 128, streams: 2 }, base: 10000 },
  chatglm2: { layout: { style: "interleaved", headDim: 128, rotaryDim: 64, streams: 1 }, base: 10000 },
} as const satisfies Record<string, RopeFamily>;

export type RopeFamilyName = keyof typeof ROPE_FAMILIES;

/** Dims rotated by one position stream. */
export function segmentDim(layout: RopeLayout): number {
  return layout.rotaryDim / layout.streams;
}

export type TableDType = "f32" | "f16" | "bf16";

/** The precision of each step of a reference's cos/sin table (models.md §6.3). */
export interface RopeTablePrecision {
  /** dtype each step of `1 / base^(2i/dim)` is evaluated in. */
  invFreqCompute: TableDType;
  /** dtypes the finished inverse frequencies are then rounded to, in order. */
  invFreqStore: readonly TableDType[];
  /** dtype positions and their products with the inverse frequencies are computed in. */
  angles: TableDType;
  /** dtype cos and sin (evaluated in f32) are rounded to. */
  output: TableDType;
}

/**
 * How `family`'s reference builds its table in a model stored as `modelDtype`. With "f32" every
 * family's table is the fp32 reference's (the parity target); "f16"/"bf16" emulate the
 * reduced-precision tables of half-precision runs. ChatGLM-6B in bf16 follows the same buffer
 * conversions as in f16 (not checked against PyTorch).
 */
export function ropeTablePrecision(family: RopeFamilyName, modelDtype: TableDType): RopeTablePrecision {
  switch (family) {
    case "baichuan7b": // fp32 tables built at init, cast to the activation dtype at use
      return { invFreqCompute: "f32", invFreqStore: [], angles: "f32", output: modelDtype };
    case "moss": // a plain fp32 attribute that .half() leaves alone
      return { invFreqCompute: "f32", invFreqStore: [], angles: "f32", output: "f32" };
    case "chatglm": // inv_freq .half() in __init__ even for fp32 models; the buffer then follows the model
      return { invFreqCompute: "f32", invFreqStore: ["f16", modelDtype], angles: modelDtype, output: modelDtype };
    case "chatglm2": // rebuilt every forward in the inv_freq buffer's dtype (the model's)
      return { invFreqCompute: modelDtype, invFreqStore: [], angles: modelDtype, output: modelDtype };
  }
}

/** `v` rounded to `dtype` (through f32 first, as torch narrows f32 results). */
function roundTo(dtype: TableDType, v: number): number {
  const f = Math.fround(v);
  return dtype === "f16" ? f16BitsToF32(f32ToF16Bits(f)) : dtype === "bf16" ? bf16BitsToF32(f32ToBf16Bits(f)) : f;
}

/** `1 / base^(arange(0, dim, 2) / dim)`, each step rounded as the reference's dtype rounds it. */
export function inverseFrequencies(dim: number, base: number, precision: RopeTablePrecision): Float32Array {
  const step = (v: number) => roundTo(precision.invFreqCompute, v);
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    let inv = step(1 / step(base ** step((2 * i) / dim)));
    for (const dtype of precision.invFreqStore) inv = roundTo(dtype, inv);
    out[i] = inv;
  }
  return out;
}

/**
 * The (positions, dim/2, 2) table of [cos, sin] for positions 0..positions-1: angle = position *
 * inv_freq as the reference's outer product computes it, cos/sin of that angle in f32, rounded to
 * the output dtype. Build it for max(position id) + 1 rows (models.md §6.4).
 */
export function ropeTable(dim: number, base: number, positions: number, precision: RopeTablePrecision): Float32Array {
  const inv = inverseFrequencies(dim, base, precision);
  const half = dim / 2;
  const table = new Float32Array(positions * half * 2);
  for (let p = 0; p < positions; p++) {
    const pos = roundTo(precision.angles, p);
    for (let i = 0; i < half; i++) {
      const angle = roundTo(precision.angles, pos * inv[i]);
      table[(p * half + i) * 2] = roundTo(precision.output, Math.cos(angle));
      table[(p * half + i) * 2 + 1] = roundTo(precision.output, Math.sin(angle));
    }
  }
  return table;
}

/**
 * ChatGLM-6B position streams for a sequence of `length` tokens whose prompt ends at
 * `contextLength` (the `<sop>` index) with its mask token at `maskPosition` (models.md §4.2 item
 * 6): stream 0 is `arange` with every position from `<sop>` on set to `maskPosition`; stream 1
 * (block positions) is 0 over the prompt, then 1, 2, 3, ... Interleaved as (length, 2).
 */
export function glmPositions(length: number, contextLength: number, maskPosition: number): Uint32Array {
  const out = new Uint32Array(length * 2);
  for (let t = 0; t < length; t++) {
    out[2 * t] = t < contextLength ? t : maskPosition;
    out[2 * t + 1] = t < contextLength ? 0 : t - contextLength + 1;
  }
  return out;
}

// ---- float64 references ----

/** For each rotated pair (first, second) of a head: the dims, the table pair index and the stream. */
function rotatedPairs(layout: RopeLayout): { first: number; second: number; pair: number; stream: number }[] {
  const seg = segmentDim(layout);
  const half = seg / 2;
  const pairs = [];
  for (let stream = 0; stream < layout.streams; stream++)
    for (let i = 0; i < half; i++) {
      const base = stream * seg;
      pairs.push(
        layout.style === "half"
          ? { first: base + i, second: base + i + half, pair: i, stream }
          : { first: base + 2 * i, second: base + 2 * i + 1, pair: i, stream },
      );
    }
  return pairs;
}

/**
 * RoPE on a dense (B, H, T, D) array with `positions` (B, T, streams):
 * y_first = x_first cos - x_second sin, y_second = x_second cos + x_first sin.
 */
export function ropeForwardReference(layout: RopeLayout, x: Float64Array, positions: Uint32Array, table: Float32Array, batch: number, length: number, heads: number): Float64Array {
  return rotate(layout, x, positions, table, batch, length, heads, (x0, x1, c, s) => [x0 * c - x1 * s, x1 * c + x0 * s]);
}

/** The backward: the transposed (inverse) rotation, dx_first = dy_first cos + dy_second sin, ... */
export function ropeBackwardReference(layout: RopeLayout, dy: Float64Array, positions: Uint32Array, table: Float32Array, batch: number, length: number, heads: number): Float64Array {
  return rotate(layout, dy, positions, table, batch, length, heads, (g0, g1, c, s) => [g0 * c + g1 * s, g1 * c - g0 * s]);
}

function rotate(
  layout: RopeLayout,
  x: Float64Array,
  positions: Uint32Array,
  table: Float32Array,
  batch: number,
  length: number,
  heads: number,
  pairMap: (first: number, second: number, cos: number, sin: number) => [number, number],
): Float64Array {
  const D = layout.headDim;
  const half = segmentDim(layout) / 2;
  invariant(x.length === batch * length * heads * D, "rope reference: x must be (B, H, T, D)");
  const y = Float64Array.from(x); // pass-through dims stay
  const pairs = rotatedPairs(layout);
  for (let b = 0; b < batch; b++)
    for (let t = 0; t < length; t++)
      for (let h = 0; h < heads; h++) {
        const row = ((b * heads + h) * length + t) * D;
        for (const { first, second, pair, stream } of pairs) {
          const pos = positions[(b * length + t) * layout.streams + stream];
          const c = table[(pos * half + pair) * 2];
          const s = table[(pos * half + pair) * 2 + 1];
          [y[row + first], y[row + second]] = pairMap(x[row + first], x[row + second], c, s);
        }
      }
  return y;
}

// ---- kernel ----

export interface RopeVariant extends RopeLayout {
  /** Storage dtype of x and y (the table is f32). */
  dtype: "f32" | "f16";
}

/**
 * One invocation per element of y (B, T, H, D) = rope(x), both strided views (e.g. x inside a
 * fused QKV buffer, y a dense (B, H, T, D) tensor; they must be different buffers).
 * Bindings: x (read), y (written), positions (B, T, streams) u32, rope_table (rows, pairs, 2) f32.
 * Uniform `direction` is +1 for the forward and -1 for the backward (the inverse rotation).
 */
export function ropeKernel(variant: RopeVariant): KernelSpec {
  const seg = segmentDim(variant);
  invariant(variant.rotaryDim <= variant.headDim && seg % 2 === 0, `rope: rotary dim ${variant.rotaryDim} of head dim ${variant.headDim}`);
  const pairing =
    variant.style === "half"
      ? `let pair = e % HALF;
    let is_first = e < HALF;
    let partner = select(d - HALF, d + HALF, is_first);`
      : `let pair = e / 2u;
    let is_first = (e & 1u) == 0u;
    let partner = select(d - 1u, d + 1u, is_first);`;
  return {
    name: "rope",
    variant: { ...variant },
    uniforms: { batch: "u32", seq_len: "u32", heads: "u32", table_rows: "u32", direction: "f32", ...viewUniforms("x"), ...viewUniforms("y") },
    bindings: [
      { name: "x", dtype: variant.dtype, access: "read" },
      { name: "y", dtype: variant.dtype, access: "read_write" },
      { name: "positions", dtype: "u32", access: "read" },
      { name: "rope_table", dtype: "f32", access: "read" },
    ],
    workgroupSize: [64, 1, 1],
    dispatch: (u) => linearGrid(ceilDiv(u.batch * u.seq_len * u.heads * variant.headDim, 64)),
    declarations: `
const D = ${variant.headDim}u;
const ROTARY = ${variant.rotaryDim}u;
const SEGMENT = ${seg}u;
const HALF = ${seg / 2}u;
const STREAMS = ${variant.streams}u;
${WGSL_FLAT_WORKGROUP}
${wgslViewIndex("x")}
${wgslViewIndex("y")}`,
    body: `
  let index = flat_workgroup_id(wid, nwg) * WG_X + lidx; // over (B, T, H, D)
  if (index >= u.batch * u.seq_len * u.heads * D) { return; }
  let d = index % D;
  let h = (index / D) % u.heads;
  let t = (index / (D * u.heads)) % u.seq_len;
  let b = index / (D * u.heads * u.seq_len);
  let x0 = x_at(b, t, h);
  var out = load_x(x0 + d);
  if (d < ROTARY) {
    let stream = d / SEGMENT;
    let e = d % SEGMENT;
    ${pairing}
    // A position past the table is a caller bug (build it for max id + 1 rows); stay in bounds.
    let pos = min(positions[(b * u.seq_len + t) * STREAMS + stream], u.table_rows - 1u);
    let cs = (pos * HALF + pair) * 2u;
    let s = rope_table[cs + 1u] * u.direction;
    let rotated = load_x(x0 + partner) * s;
    out = out * rope_table[cs] + select(rotated, -rotated, is_first);
  }
  store_y(y_at(b, t, h) + d, out);`,
  };
}

export interface RopeCall {
  batch: number;
  length: number;
  heads: number;
  x: TensorView;
  y: TensorView;
  /** Rows of the table (max position id + 1). */
  tableRows: number;
  direction: 1 | -1;
}

export function ropeUniforms(call: RopeCall): UniformValues {
  // assigned, not spread (as attentionDecodeUniforms): a decode step refreshes these every layer
  const scalars = { batch: call.batch, seq_len: call.length, heads: call.heads, table_rows: call.tableRows, direction: call.direction };
  return Object.assign(scalars, viewUniformValues("x", call.x), viewUniformValues("y", call.y));
}
