// QLoRA's 4-bit NormalFloat quantization (Dettmers et al., 2023), as bitsandbytes stores it:
// blocks of 64 weights share one absmax; each weight becomes the index of the nearest NF4
// level of weight/absmax, two indices per byte (first in the high nibble). With double
// quantization the float32 absmax values are themselves quantized: their mean is subtracted
// and the rest is stored as 8-bit codes of the signed dynamic map, in blocks of 256 with one
// float32 scale per block.

/** The 16 NF4 levels: quantiles of N(0,1) normalized to [-1, 1], with an exact zero. */
export const nf4Levels = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
]);

export const nf4BlockSize = 64;
export const absmaxBlockSize = 256;

/**
 * The signed 8-bit dynamic map: for each decade exponent e in 0..6, the 2^e midpoints of
 * 2^e + 1 evenly spaced points on [0.1, 1], scaled by 10^(e-6), both signs; plus 0 and 1;
 * sorted (256 values). bitsandbytes builds it with float32 torch.linspace, whose last-bit
 * rounding depends on the CPU's vector width; here it is computed in float64 and rounded
 * once, which is within one float32 ulp of any of those builds.
 */
export function dynamicMap(): Float32Array {
  const values: number[] = [0, 1];
  for (let e = 0; e < 7; e++) {
    const steps = 2 ** e;
    for (let i = 0; i < steps; i++) {
      const mean = 0.1 + (0.9 * (i + 0.5)) / steps;
      values.push(10 ** (e - 6) * mean, -(10 ** (e - 6)) * mean);
    }
  }
  return Float32Array.from(values).sort();
}

/** Index of the level nearest to x in the sorted `levels`; the lower one on an exact tie. */
export function nearestLevel(levels: Float32Array, x: number): number {
  let lo = 0;
  let hi = levels.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (levels[mid] <= x) lo = mid;
    else hi = mid;
  }
  // Distances rounded to float32, as a float32 argmin over |x - level| sees them.
  return Math.fround(x - levels[lo]) <= Math.fround(levels[hi] - x) ? lo : hi;
}

export interface Nf4Tensor {
  /** Two 4-bit codes per byte, first element in the high nibble. (ceil(n/2),) */
  codes: Uint8Array;
  /** Number of weights. */
  length: number;
  /** Per 64-block absmax: float32, or double-quantized. */
  absmax: Float32Array | DoubleQuantized;
}

export interface DoubleQuantized {
  /** 8-bit dynamic-map codes of (absmax - offset), one per 64-block. */
  codes: Uint8Array;
  /** One float32 scale per 256 absmax values. */
  scales: Float32Array;
  offset: number;
}

function blockAbsmax(values: Float32Array, blockSize: number): Float32Array {
  const out = new Float32Array(Math.ceil(values.length / blockSize));
  for (let b = 0; b < out.length; b++) {
    let m = 0;
    for (let i = b * blockSize; i < Math.min(values.length, (b + 1) * blockSize); i++) m = Math.max(m, Math.abs(values[i]));
    out[b] = m;
  }
  return out;
}

export function quantizeNf4(weights: Float32Array, doubleQuant = true): Nf4Tensor {
  const absmax = blockAbsmax(weights, nf4BlockSize);
  const codes = new Uint8Array(Math.ceil(weights.length / 2));
  for (let i = 0; i < weights.length; i++) {
    const scale = absmax[Math.floor(i / nf4BlockSize)];
    const q = scale === 0 ? 7 : nearestLevel(nf4Levels, Math.fround(weights[i] / scale));
    codes[i >> 1] |= i % 2 === 0 ? q << 4 : q;
  }
  return { codes, length: weights.length, absmax: doubleQuant ? quantizeAbsmax(absmax) : absmax };
}

/** Double quantization of the per-block absmax values. */
export function quantizeAbsmax(absmax: Float32Array): DoubleQuantized {
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = Math.fround(sum / absmax.length);
  const centered = absmax.map((a) => Math.fround(a - offset));
  const scales = blockAbsmax(centered, absmaxBlockSize);
  const map = dynamicMap();
  const codes = new Uint8Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) {
    const scale = scales[Math.floor(i / absmaxBlockSize)];
    codes[i] = scale === 0 ? nearestLevel(map, 0) : nearestLevel(map, Math.fround(centered[i] / scale));
  }
  return { codes, scales, offset };
}

export function dequantizeAbsmax(q: DoubleQuantized): Float32Array {
  const map = dynamicMap();
  return Float32Array.from(q.codes, (c, i) => Math.fround(Math.fround(map[c] * q.scales[Math.floor(i / absmaxBlockSize)]) + q.offset));
}

export function dequantizeNf4(t: Nf4Tensor): Float32Array {
  const absmax = t.absmax instanceof Float32Array ? t.absmax : dequantizeAbsmax(t.absmax);
  const out = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const q = i % 2 === 0 ? t.codes[i >> 1] >> 4 : t.codes[i >> 1] & 15;
    out[i] = Math.fround(nf4Levels[q] * absmax[Math.floor(i / nf4BlockSize)]);
  }
  return out;
}

/** `weights` with each tensor named in `names` replaced by its NF4 quantize-dequantize round trip. */
export function nf4RoundTrip(weights: ReadonlyMap<string, Float64Array>, names: readonly string[]): Map<string, Float64Array> {
  const out = new Map(weights);
  for (const name of names) {
    const w = weights.get(name);
    if (w) out.set(name, Float64Array.from(dequantizeNf4(quantizeNf4(Float32Array.from(w)))));
  }
  return out;
}
