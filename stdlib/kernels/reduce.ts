// Workgroup reductions shared by row-wise kernels: a fixed tree over workgroup memory, so the
// summation order (and thus every bit of the result) is the same on every run.

/**
 * WGSL declarations of `workgroup_sum(lidx, v)` and `workgroup_max(lidx, v)` for a workgroup of
 * `size` (a power of two) invocations. Every invocation must call them (they contain barriers);
 * each returns the reduction to all invocations.
 */
export function wgslWorkgroupReduce(size: number): string {
  return `var<workgroup> reduce_scratch: array<f32, ${size}>;
fn workgroup_sum(lidx: u32, v: f32) -> f32 {
  reduce_scratch[lidx] = v;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride >>= 1u) {
    if (lidx < stride) { reduce_scratch[lidx] += reduce_scratch[lidx + stride]; }
    workgroupBarrier();
  }
  let total = reduce_scratch[0];
  workgroupBarrier(); // the scratch is reused by the next call
  return total;
}
fn workgroup_max(lidx: u32, v: f32) -> f32 {
  reduce_scratch[lidx] = v;
  workgroupBarrier();
  for (var stride = ${size / 2}u; stride > 0u; stride >>= 1u) {
    if (lidx < stride) { reduce_scratch[lidx] = max(reduce_scratch[lidx], reduce_scratch[lidx + stride]); }
    workgroupBarrier();
  }
  let total = reduce_scratch[0];
  workgroupBarrier();
  return total;
}`;
}
