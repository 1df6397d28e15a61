// Activations, forward and backward: SiLU, GELU (tanh form) and SwiGLU (`silu(a) * b`, with
// a and b separate or the two halves of one (rows, 2*cols) tensor as ChatGLM2 chunks them).
// Inputs in `dtype`, outputs in `out`; math in f32. Float64 CPU references beside each.
import type { StorageDType } from "./dtype.ts";
import { elementwiseKernel } from "./elementwise.ts";
import type { KernelSpec } from "./kernel.ts";

// Overflow-safe: exp(+large) = inf gives sigmoid 0, never NaN. GELU uses
// 0.5 * (1 + tanh(z)) = sigmoid(2z), which avoids the cancellation of 1 + tanh(z) for x << 0.
const MATH = `fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
const GELU_K = 0.7978845608028654; // sqrt(2 / pi)
const GELU_C = 0.044715;
fn gelu_gate(x: f32) -> f32 { return sigmoid(2.0 * GELU_K * (x + GELU_C * x * x * x)); }`;

export type Activation = "silu" | "gelu_tanh";

const FORWARD: Record<Activation, string> = {
  silu: "x * sigmoid(x)",
  gelu_tanh: "x * gelu_gate(x)",
};

// d/dx, given x (WGSL expressions over `x`).
const DERIVATIVE: Record<Activation, string> = {
  silu: "sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)))",
  // with s = sigmoid(2z): 0.5 * (1 - tanh(z)^2) = 2 s (1 - s)
  gelu_tanh: "gelu_gate(x) + 2.0 * x * gelu_gate(x) * (1.0 - gelu_gate(x)) * GELU_K * (1.0 + 3.0 * GELU_C * x * x)",
};

/** y = act(x); uniforms: n. Bindings: x (dtype), y (out). */
export function activationForward(act: Activation, dtype: StorageDType, out: StorageDType = "f32"): KernelSpec {
  return elementwiseKernel({
    name: `${act}_forward`,
    variant: { dtype, out },
    bindings: [
      { name: "x", dtype, access: "read" },
      { name: "y", dtype: out, access: "read_write" },
    ],
    declarations: MATH,
    perElement: `  let x = load_x(i);\n  store_y(i, ${FORWARD[act]});`,
  });
}

/** dx = dy * act'(x); uniforms: n. Bindings: x (dtype), dy (f32), dx (f32). */
export function activationBackward(act: Activation, dtype: StorageDType): KernelSpec {
  return elementwiseKernel({
    name: `${act}_backward`,
    variant: { dtype },
    bindings: [
      { name: "x", dtype, access: "read" },
      { name: "dy", dtype: "f32", access: "read" },
      { name: "dx", dtype: "f32", access: "read_write" },
    ],
    declarations: MATH,
    perElement: `  let x = load_x(i);\n  store_dx(i, load_dy(i) * (${DERIVATIVE[act]}));`,
  });
}

// In the fused form, element i = (r, c) of the (rows, cols) output reads a at (r, c) and b at
// (r, cols + c) of the (rows, 2*cols) input.
const FUSED_INDEX = `  let r = i / u.cols;
  let ia = i + r * u.cols;
  let ib = ia + u.cols;`;

/**
 * y = silu(a) * b. Separate form: bindings a, b (dtype), y (out); uniforms n.
 * Fused form: binding x (rows, 2*cols) holds a|b; uniforms n = rows*cols, cols.
 */
export function swigluForward(dtype: StorageDType, fused: boolean, out: StorageDType = "f32"): KernelSpec {
  const y = { name: "y", dtype: out, access: "read_write" } as const;
  return elementwiseKernel({
    name: "swiglu_forward",
    variant: { dtype, out, fused },
    bindings: fused
      ? [{ name: "x", dtype, access: "read" }, y]
      : [{ name: "a", dtype, access: "read" }, { name: "b", dtype, access: "read" }, y],
    uniforms: fused ? { cols: "u32" } : {},
    declarations: MATH,
    perElement: fused
      ? `${FUSED_INDEX}\n  let a = load_x(ia);\n  store_y(i, a * sigmoid(a) * load_x(ib));`
      : `  let a = load_a(i);\n  store_y(i, a * sigmoid(a) * load_b(i));`,
  });
}

/**
 * da = dy * b * silu'(a), db = dy * silu(a). Separate form: a, b (dtype), dy, da, db (f32).
 * Fused form: x (rows, 2*cols), dy (rows, cols), dx (rows, 2*cols) = da|db.
 */
export function swigluBackward(dtype: StorageDType, fused: boolean): KernelSpec {
  const dy = { name: "dy", dtype: "f32", access: "read" } as const;
  const grad = (name: string) => ({ name, dtype: "f32", access: "read_write" }) as const;
  const math = `  let s = sigmoid(a);
  let g = load_dy(i);`;
  return elementwiseKernel({
    name: "swiglu_backward",
    variant: { dtype, fused },
    bindings: fused
      ? [{ name: "x", dtype, access: "read" }, dy, grad("dx")]
      : [{ name: "a", dtype, access: "read" }, { name: "b", dtype, access: "read" }, dy, grad("da"), grad("db")],
    uniforms: fused ? { cols: "u32" } : {},
    declarations: MATH,
    perElement: fused
      ? `${FUSED_INDEX}
  let a = load_x(ia);
  let b = load_x(ib);
${math}
  store_dx(ia, g * b * s * (1.0 + a * (1.0 - s)));
  store_dx(ib, g * a * s);`
      : `  let a = load_a(i);
  let b = load_b(i);
${math}
  store_da(i, g * b * s * (1.0 + a * (1.0 - s)));
  store_db(i, g * a * s);`,
  });
}

// ---- float64 CPU references ----

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

const forwardRef: Record<Activation, (x: number) => number> = {
  silu: (x) => x * sigmoid(x),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(GELU_K * (x + GELU_C * x ** 3))),
};

const derivativeRef: Record<Activation, (x: number) => number> = {
  silu: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))),
  gelu_tanh: (x) => {
    const t = Math.tanh(GELU_K * (x + GELU_C * x ** 3));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * x * x);
  },
};

export function activationForwardRef(act: Activation, x: Float64Array): Float64Array {
  return x.map(forwardRef[act]);
}

export function activationBackwardRef(act: Activation, x: Float64Array, dy: Float64Array): Float64Array {
  return x.map((v, i) => dy[i] * derivativeRef[act](v));
}

export function swigluForwardRef(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v * sigmoid(v) * b[i]);
}

export function swigluBackwardRef(a: Float64Array, b: Float64Array, dy: Float64Array): { da: Float64Array; db: Float64Array } {
  return {
    da: a.map((v, i) => dy[i] * b[i] * derivativeRef.silu(v)),
    db: a.map((v, i) => dy[i] * v * sigmoid(v)),
  };
}

/** Splits a (rows, 2*cols) tensor into its halves a, b (each (rows, cols)). */
export function splitHalves(x: Float64Array, rows: number, cols: number): { a: Float64Array; b: Float64Array } {
  const a = new Float64Array(rows * cols);
  const b = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    a.set(x.subarray(r * 2 * cols, r * 2 * cols + cols), r * cols);
    b.set(x.subarray(r * 2 * cols + cols, (r + 1) * 2 * cols), r * cols);
  }
  return { a, b };
}

/** Joins halves a, b (each (rows, cols)) into one (rows, 2*cols) tensor. */
export function joinHalves(a: Float64Array, b: Float64Array, rows: number, cols: number): Float64Array {
  const x = new Float64Array(rows * 2 * cols);
  for (let r = 0; r < rows; r++) {
    x.set(a.subarray(r * cols, (r + 1) * cols), r * 2 * cols);
    x.set(b.subarray(r * cols, (r + 1) * cols), r * 2 * cols + cols);
  }
  return x;
}
