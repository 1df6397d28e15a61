// RMSNorm and LayerNorm over the last axis of x (rows, cols), forward and backward.
// Forward saves per-row rstd (and mean for LayerNorm) for the backward. One workgroup per row
// for the forward and the input gradient; the weight/bias gradients sum over rows in a fixed
// order, one invocation per column, so they are deterministic.
import type { StorageDType } from "./dtype.ts";
import { writableDType } from "./elementwise.ts";
import { ceilDiv, linearGrid, WGSL_FLAT_WORKGROUP, type KernelBinding, type KernelSpec } from "./kernel.ts";
import { wgslWorkgroupReduce } from "./reduce.ts";

export type NormKind = "rms" | "layer";

const ROW_WORKGROUP = 256;
const COLUMN_WORKGROUP = 64;

const read = (name: string, dtype: StorageDType): KernelBinding => ({ name, dtype, access: "read" });
const write = (name: string, dtype: StorageDType): KernelBinding => ({ name, dtype, access: "read_write" });

function rowKernel(name: string, variant: Record<string, string | boolean>, bindings: KernelBinding[], body: string): KernelSpec {
  return {
    name,
    variant,
    uniforms: { rows: "u32", cols: "u32", eps: "f32" },
    bindings,
    workgroupSize: [ROW_WORKGROUP, 1, 1],
    dispatch: (u) => linearGrid(u.rows),
    declarations: `${WGSL_FLAT_WORKGROUP}\n${wgslWorkgroupReduce(ROW_WORKGROUP)}`,
    body: `  let row = flat_workgroup_id(wid, nwg);
  if (row >= u.rows) { return; }
  let base = row * u.cols;
  let n = f32(u.cols);
${body}`,
  };
}

/**
 * y = norm(x) * w (+ b for LayerNorm); uniforms rows, cols, eps.
 * Bindings: x (xDtype), w (wDtype), [b (wDtype)], y (out), [mean (f32, rows)], rstd (f32, rows).
 */
export function normForward(kind: NormKind, xDtype: StorageDType, wDtype: StorageDType, out: StorageDType = writableDType(xDtype)): KernelSpec {
  const layer = kind === "layer";
  const bindings = [read("x", xDtype), read("w", wDtype)];
  if (layer) bindings.push(read("b", wDtype));
  bindings.push(write("y", out));
  if (layer) bindings.push(write("mean", "f32"));
  bindings.push(write("rstd", "f32"));
  const body = layer
    ? `  var s = 0.0;
  for (var c = lidx; c < u.cols; c += WG_X) { s += load_x(base + c); }
  let mu = workgroup_sum(lidx, s) / n;
  var q = 0.0;
  for (var c = lidx; c < u.cols; c += WG_X) { let d = load_x(base + c) - mu; q += d * d; }
  let r = inverseSqrt(workgroup_sum(lidx, q) / n + u.eps);
  for (var c = lidx; c < u.cols; c += WG_X) { store_y(base + c, (load_x(base + c) - mu) * r * load_w(c) + load_b(c)); }
  if (lidx == 0u) { store_mean(row, mu); store_rstd(row, r); }`
    : `  var q = 0.0;
  for (var c = lidx; c < u.cols; c += WG_X) { let v = load_x(base + c); q += v * v; }
  let r = inverseSqrt(workgroup_sum(lidx, q) / n + u.eps);
  for (var c = lidx; c < u.cols; c += WG_X) { store_y(base + c, load_x(base + c) * r * load_w(c)); }
  if (lidx == 0u) { store_rstd(row, r); }`;
  return rowKernel(`${kind}norm_forward`, { x: xDtype, w: wDtype, out }, bindings, body);
}

/**
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, xhat the normalized x
 * (RMSNorm has no mean(g) term and xhat = x * rstd). Uniforms rows, cols, eps (unused).
 * Bindings: x, w, dy (f32), [mean], rstd, dx (f32).
 */
export function normBackwardInput(kind: NormKind, xDtype: StorageDType, wDtype: StorageDType): KernelSpec {
  const layer = kind === "layer";
  const bindings = [read("x", xDtype), read("w", wDtype), read("dy", "f32")];
  if (layer) bindings.push(read("mean", "f32"));
  bindings.push(read("rstd", "f32"), write("dx", "f32"));
  const mu = layer ? "load_mean(row)" : "0.0";
  const body = `  let mu = ${mu};
  let r = load_rstd(row);
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lidx; c < u.cols; c += WG_X) {
    let g = load_dy(base + c) * load_w(c);
    sg += g;
    sgx += g * (load_x(base + c) - mu) * r;
  }
  let mean_g = ${layer ? "workgroup_sum(lidx, sg) / n" : "0.0"};
  let mean_gx = workgroup_sum(lidx, sgx) / n;
  for (var c = lidx; c < u.cols; c += WG_X) {
    let g = load_dy(base + c) * load_w(c);
    let xhat = (load_x(base + c) - mu) * r;
    store_dx(base + c, r * (g - mean_g - xhat * mean_gx));
  }`;
  return rowKernel(`${kind}norm_backward_input`, { x: xDtype, w: wDtype }, bindings, body);
}

/**
 * dw[c] = sum over rows of dy * xhat (and db[c] = sum of dy for LayerNorm), written or, with
 * `accumulate`, added to the existing gradient. Uniforms rows, cols. Bindings: x, dy (f32),
 * [mean], rstd, dw (f32), [db (f32)].
 */
export function normBackwardWeight(kind: NormKind, xDtype: StorageDType, accumulate = false): KernelSpec {
  const layer = kind === "layer";
  const bindings = [read("x", xDtype), read("dy", "f32")];
  if (layer) bindings.push(read("mean", "f32"));
  bindings.push(read("rstd", "f32"), write("dw", "f32"));
  if (layer) bindings.push(write("db", "f32"));
  const keep = (name: string) => (accumulate ? `load_${name}(c) + ` : "");
  return {
    name: `${kind}norm_backward_weight`,
    variant: { x: xDtype, accumulate },
    uniforms: { rows: "u32", cols: "u32" },
    bindings,
    workgroupSize: [COLUMN_WORKGROUP, 1, 1],
    dispatch: (u) => linearGrid(ceilDiv(u.cols, COLUMN_WORKGROUP)),
    declarations: WGSL_FLAT_WORKGROUP,
    body: `  let c = flat_workgroup_id(wid, nwg) * WG_X + lidx;
  if (c >= u.cols) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var row = 0u; row < u.rows; row++) {
    let i = row * u.cols + c;
    let g = load_dy(i);
    sw += g * (load_x(i) - ${layer ? "load_mean(row)" : "0.0"}) * load_rstd(row);
    sb += g;
  }
  store_dw(c, ${keep("dw")}sw);
${layer ? `  store_db(c, ${keep("db")}sb);` : ""}`,
  };
}

// ---- float64 CPU references ----

export interface NormRef {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function normForwardRef(kind: NormKind, x: Float64Array, w: Float64Array, b: Float64Array | undefined, rows: number, cols: number, eps: number): NormRef {
  const y = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const mu = kind === "layer" ? row.reduce((a, v) => a + v, 0) / cols : 0;
    const variance = row.reduce((a, v) => a + (v - mu) ** 2, 0) / cols;
    const rs = 1 / Math.sqrt(variance + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) y[r * cols + c] = (row[c] - mu) * rs * w[c] + (b ? b[c] : 0);
  }
  return { y, mean, rstd };
}

export function normBackwardRef(
  kind: NormKind,
  x: Float64Array,
  w: Float64Array,
  dy: Float64Array,
  rows: number,
  cols: number,
  eps: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const { mean, rstd } = normForwardRef(kind, x, w, undefined, rows, cols, eps);
  const dx = new Float64Array(rows * cols);
  const dw = new Float64Array(cols);
  const db = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const xhat = (x[i] - mean[r]) * rstd[r];
      const g = dy[i] * w[c];
      sg += g;
      sgx += g * xhat;
      dw[c] += dy[i] * xhat;
      db[c] += dy[i];
    }
    const meanG = kind === "layer" ? sg / cols : 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const xhat = (x[i] - mean[r]) * rstd[r];
      dx[i] = rstd[r] * (dy[i] * w[c] - meanG - xhat * (sgx / cols));
    }
  }
  return { dx, dw, db };
}
