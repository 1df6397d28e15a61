// Storage dtypes of kernel bindings: their WGSL array types, exact widening loads, and the host
// conversions (f32 <-> f16/bf16 bit patterns) used to upload weights and to round references.

/** How a tensor's elements are stored in a GPU buffer. bf16 is packed two per u32 word. */
export type StorageDType = "f32" | "f16" | "bf16" | "i32" | "u32";

export const FLOAT_DTYPES: readonly StorageDType[] = ["f32", "f16", "bf16"];

export function bytesPerElement(dtype: StorageDType): number {
  return dtype === "f16" || dtype === "bf16" ? 2 : 4;
}

/** Bytes a buffer of `numel` elements gets: rounded up to 16, so a vec4 view never has a partial last element. */
export function storageBytes(dtype: StorageDType, numel: number): number {
  return Math.max(16, Math.ceil((numel * bytesPerElement(dtype)) / 16) * 16);
}

/** WGSL element type of the storage array that holds `dtype`. */
export function wgslArrayElement(dtype: StorageDType): string {
  return dtype === "bf16" ? "u32" : dtype;
}

/**
 * WGSL accessors for a float binding: `load_NAME(i) -> f32` widens exactly (bf16 is the high
 * half of an f32, so widening is a 16-bit shift); `store_NAME(i, v)` narrows (f16 rounds).
 * bf16 bindings are read-only: two invocations storing neighbouring halves of one word would race.
 */
export function wgslFloatAccessors(name: string, dtype: StorageDType, writable: boolean): string {
  // Parameter names carry a trailing underscore so they never shadow a binding (bindings are named v, w, ...).
  const load =
    dtype === "f32"
      ? `fn load_${name}(i_: u32) -> f32 { return ${name}[i_]; }`
      : dtype === "f16"
        ? `fn load_${name}(i_: u32) -> f32 { return f32(${name}[i_]); }`
        : `fn load_${name}(i_: u32) -> f32 {
  let word_ = ${name}[i_ >> 1u];
  return bitcast<f32>(select(word_ << 16u, word_ & 0xffff0000u, (i_ & 1u) == 1u));
}`;
  if (!writable) return load;
  const store = dtype === "f32" ? `${name}[i_] = v_;` : `${name}[i_] = f16(v_);`;
  return `${load}\nfn store_${name}(i_: u32, v_: f32) { ${store} }`;
}

// ---- host conversions ----

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE binary16 bits of `v`, rounded to nearest even (subnormals and overflow to inf included). */
export function f32ToF16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++; // a carry rolls into the exponent correctly
  return sign | half;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of `v` (the high half of its f32), rounded to nearest even. */
export function f32ToBf16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(b: number): number {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0];
}

/** Values as stored in `dtype` and read back: the exact inputs a kernel sees. */
export function roundToDType(dtype: StorageDType, values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] =
      dtype === "f16" ? f16BitsToF32(f32ToF16Bits(v)) : dtype === "bf16" ? bf16BitsToF32(f32ToBf16Bits(v)) : dtype === "f32" ? Math.fround(v) : v;
  }
  return out;
}

/** Encodes numbers into the byte layout of a `dtype` buffer (length padded to whole words). */
export function encodeHost(dtype: StorageDType, values: ArrayLike<number>): Uint8Array {
  const bytes = new Uint8Array(storageBytes(dtype, values.length));
  const n = values.length;
  if (dtype === "f32") new Float32Array(bytes.buffer, 0, n).set(values);
  else if (dtype === "i32") new Int32Array(bytes.buffer, 0, n).set(values);
  else if (dtype === "u32") new Uint32Array(bytes.buffer, 0, n).set(values);
  else {
    const halves = new Uint16Array(bytes.buffer, 0, n);
    const convert = dtype === "f16" ? f32ToF16Bits : f32ToBf16Bits;
    for (let i = 0; i < n; i++) halves[i] = convert(values[i]);
  }
  return bytes;
}

/** Decodes `numel` elements of a `dtype` buffer; floats widen to Float32Array. */
export function decodeHost(dtype: StorageDType, bytes: ArrayBuffer, numel: number): Float32Array | Int32Array | Uint32Array {
  if (dtype === "f32") return new Float32Array(bytes, 0, numel);
  if (dtype === "i32") return new Int32Array(bytes, 0, numel);
  if (dtype === "u32") return new Uint32Array(bytes, 0, numel);
  const halves = new Uint16Array(bytes, 0, numel);
  const widen = dtype === "f16" ? f16BitsToF32 : bf16BitsToF32;
  const out = new Float32Array(numel);
  for (let i = 0; i < numel; i++) out[i] = widen(halves[i]);
  return out;
}
