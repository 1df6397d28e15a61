// RoPE launches: x and y are (B, T, H, D) views passed to the kernel as strides, the positions
// come from the i32 positions input (read on the host at refresh and written as u32), and the
// cos/sin table is built on the host from the node's attributes for max(position) + 1 rows. The
// table is computed in f32 throughout (inverse frequencies, angles, cos/sin), as the fp32
// references of the families that use the `rope` op compute theirs (rope.ts, models.md §6.3);
// ChatGLM-6B's f16 frequencies never reach this op (its graph rotates by input tables).
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import { inputView, type Launch } from "../../../compiler/passes/schedule.ts";
import { tensorView } from "../../../compiler/passes/views.ts";
import { denseView } from "../../../stdlib/kernels/attention-layout.ts";
import { ropeKernel, ropeTable, ropeUniforms, type RopeTablePrecision } from "../../../stdlib/kernels/rope.ts";
import { writeTensor } from "../../gpu/tensor.ts";
import type { ExecContext, PreparedLaunch } from "../steps.ts";
import type { DispatchStep } from "../../gpu/bound-steps.ts";

const F32_TABLE: RopeTablePrecision = { invFreqCompute: "f32", invFreqStore: [], angles: "f32", output: "f32" };

export function prepareRope(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const n = launch.outputs[0];
  const a = n.attrs.rope!;
  const [x, positions] = n.inputs;
  const [batch, length, heads, headDim] = n.shape;
  // the op rotates the first rotaryDim dims of each of its `sections` equal parts of a head; the
  // kernel rotates dims [0, rotaryDim·streams) split between the streams: equal when the parts are whole
  if (a.sections === 2 && a.rotaryDim * 2 !== headDim)
    return fail(diag("SFT4005", `rope %${n.id}: two position streams with partial rotary dims (${a.rotaryDim} of ${headDim / 2}) have no kernel`));
  if (n.dtype !== "f32" && n.dtype !== "f16") return fail(diag("SFT4005", `rope %${n.id}: the kernel rotates f32 or f16 tensors, not ${n.dtype}`));
  const variant = { style: a.style, headDim, rotaryDim: a.rotaryDim * a.sections, streams: a.sections, dtype: n.dtype === "f16" ? "f16" : "f32" } as const;
  const xView = inputView(launch, x);
  const pos = ctx.scratch("u32", positions.shape, `positions of %${n.id}`);
  let rows = 0;
  const step: DispatchStep = {
    kind: "dispatch",
    spec: ropeKernel(variant),
    uniforms: {},
    tensors: { x: ctx.tensorOf(xView.base), y: ctx.tensorOf(n), positions: pos, rope_table: ctx.scratch("f32", [1], "rope table") },
  };
  const positionsView = inputView(launch, positions);
  const setUniforms = () =>
    Object.assign(step.uniforms, ropeUniforms({ batch, length, heads, x: tensorView(xView), y: denseView("bthd", length, heads, headDim), tableRows: Math.max(rows, 1), direction: a.inverse ? -1 : 1 }));
  setUniforms();
  return ok({
    steps: [step],
    refresh: (ints) => {
      const values = ints(positionsView);
      if (!values) return fail(diag("SFT4005", `rope %${n.id} needs its positions as a graph input, read on the host.`));
      const bad = values.findIndex((p) => p < 0);
      if (bad >= 0) return fail(diag("SFT4002", `Position id ${values[bad]} at index ${bad} is negative.`, { where: positions.attrs.name }));
      writeTensor(ctx.gpu, pos, values);
      const needed = values.reduce((m, p) => Math.max(m, p), 0) + 1;
      if (needed > rows) {
        // grow to the next power of two, so growing sequences rebuild the table rarely
        rows = 2 ** Math.ceil(Math.log2(needed));
        // the smaller table goes first, so the two are never held together: work already
        // submitted keeps it until that work is done
        ctx.release(step.tensors.rope_table);
        const table = ctx.scratch("f32", [rows * a.rotaryDim], `rope table of %${n.id}`);
        writeTensor(ctx.gpu, table, ropeTable(a.rotaryDim, a.base, rows, F32_TABLE));
        step.tensors.rope_table = table;
        setUniforms();
      }
      return ok(undefined);
    },
  });
}
