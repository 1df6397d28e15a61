// Fused AdamW step with PyTorch's torch.optim.AdamW semantics: decoupled weight decay
// p -= lr * wd * p, moment updates, bias correction, p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
// The gradient is multiplied by a scale first: a uniform, or the clip coefficient that
// `gradNormFinalize` leaves on the GPU (so clipping needs no readback and no extra pass).
import { elementwiseKernel } from "./elementwise.ts";
import type { KernelSpec, UniformValues } from "./kernel.ts";

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** PyTorch's AdamW defaults, except weight decay (Hugging Face Trainer uses 0 by default). */
export const ADAMW_DEFAULTS: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

/**
 * One AdamW step over n parameters (all f32). Bindings: p, g, m, v, and with `clipFromBuffer`
 * `clip` (f32 [norm, coefficient] from gradNormFinalize) whose coefficient scales g.
 * Uniforms: see `adamwUniforms`.
 */
export function adamwStep(clipFromBuffer: boolean): KernelSpec {
  const scale = clipFromBuffer ? "u.grad_scale * load_clip(1u)" : "u.grad_scale";
  return elementwiseKernel({
    name: "adamw_step",
    variant: { clipFromBuffer },
    uniforms: { lr: "f32", beta1: "f32", beta2: "f32", eps: "f32", weight_decay: "f32", step_size: "f32", bc2_sqrt: "f32", grad_scale: "f32" },
    bindings: [
      { name: "p", dtype: "f32", access: "read_write" },
      { name: "g", dtype: "f32", access: "read" },
      { name: "m", dtype: "f32", access: "read_write" },
      { name: "v", dtype: "f32", access: "read_write" },
      ...(clipFromBuffer ? [{ name: "clip", dtype: "f32", access: "read" } as const] : []),
    ],
    perElement: `  let grad = load_g(i) * ${scale};
  let decayed = load_p(i) * (1.0 - u.lr * u.weight_decay);
  let m1 = u.beta1 * load_m(i) + (1.0 - u.beta1) * grad;
  let v1 = u.beta2 * load_v(i) + (1.0 - u.beta2) * grad * grad;
  store_m(i, m1);
  store_v(i, v1);
  store_p(i, decayed - u.step_size * m1 / (sqrt(v1) / u.bc2_sqrt + u.eps));`,
  });
}

/** Uniforms of step `step` (1-based, as PyTorch counts after incrementing); bias corrections in float64. */
export function adamwUniforms(n: number, step: number, h: AdamWHyper, gradScale = 1): UniformValues {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  return {
    n,
    lr: h.lr,
    beta1: h.beta1,
    beta2: h.beta2,
    eps: h.eps,
    weight_decay: h.weightDecay,
    step_size: h.lr / bc1,
    bc2_sqrt: Math.sqrt(bc2),
    grad_scale: gradScale,
  };
}

// ---- float64 CPU reference ----

/** Updates p, m, v in place, exactly as torch.optim.AdamW (single tensor path) orders the math. */
export function adamwRef(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, step: number, h: AdamWHyper, gradScale = 1): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    const grad = g[i] * gradScale;
    p[i] *= 1 - h.lr * h.weightDecay;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * grad;
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * grad * grad;
    const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + h.eps;
    p[i] -= (h.lr / bc1) * (m[i] / denom);
  }
}
