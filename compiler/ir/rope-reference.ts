// Float64 rotary embedding for the interpreter: exact cos/sin, so autodiff can be checked against
// finite differences. The kernel's reference (stdlib/kernels/rope.ts) reproduces each family's
// reduced-precision tables instead; the other library ops use the references beside their kernels.
import type { RopeAttrs, Shape } from "./node.ts";

type F64 = Float64Array;

/** Rotary embedding on x (B, T, H, D) with positions (B, T, sections); models.md §6.2. */
export function rope(x: F64, positions: F64, shape: Shape, a: RopeAttrs): F64 {
  const [b, t, h, d] = shape;
  const y = Float64Array.from(x);
  const width = d / a.sections;
  const half = a.rotaryDim / 2;
  const sign = a.inverse ? -1 : 1;
  for (let bt = 0; bt < b * t; bt++) {
    for (let s = 0; s < a.sections; s++) {
      const p = positions[bt * a.sections + s];
      for (let i = 0; i < half; i++) {
        const angle = p * Math.pow(a.base, (-2 * i) / a.rotaryDim);
        const cos = Math.cos(angle);
        const sin = sign * Math.sin(angle);
        // half-rotation pairs (i, i + rd/2); interleaved (GPT-J rotate_every_two) pairs (2i, 2i+1)
        const [i0, i1] = a.style === "half" ? [i, i + half] : [2 * i, 2 * i + 1];
        for (let hh = 0; hh < h; hh++) {
          const at = (bt * h + hh) * d + s * width;
          const x0 = x[at + i0];
          const x1 = x[at + i1];
          y[at + i0] = x0 * cos - x1 * sin;
          y[at + i1] = x1 * cos + x0 * sin;
        }
      }
    }
  }
  return y;
}
