// RoPE launches: x and y are (B, T, H, D) views passed to the kernel as strides, the positions
// come from the i32 positions input (read on the host at refresh and written as u32), and the
// cos/sin table is built on the host from the node's attributes for max(position) + 1 rows. The
// table is computed in f32 throughout (inverse frequencies, angles, cos/sin), as the fp32
// references of the families that use the `rope` op compute theirs (rope.ts, models.md §6.3);
// ChatGLM-6B's f16 frequencies never reach this op (its graph rotates by input tables). Every
// launch of a step that reads the same positions shares their copy and the table, written once a
// refresh (compiler/passes/shared-scratch.ts).
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import { inputView, type Launch } from "../../../compiler/passes/schedule.ts";
import { tensorView } from "../../../compiler/passes/views.ts";
import { denseView } from "../../../stdlib/kernels/attention-layout.ts";
import { ropeKernel, ropeTable, ropeUniforms, type RopeTablePrecision } from "../../../stdlib/kernels/rope.ts";
import { writeTensor, type GpuTensor } from "../../gpu/tensor.ts";
import { ropePositionsKey, ropeTableKey } from "../../../compiler/passes/shared-scratch.ts";
import type { ExecContext, PreparedLaunch, RefreshPass } from "../steps.ts";
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
  const positionsView = inputView(launch, positions);
  // the launches that read these positions share their u32 copy, and with the same rotary dims and
  // base the table too (compiler/passes/shared-scratch.ts): the first refresh of a pass writes them
  const keys = { positions: ropePositionsKey(launch, n), table: ropeTableKey(launch, n) };
  const shared = {
    positions: ctx.shared(keys.positions, (): SharedPositions => ({ tensor: ctx.scratch("u32", positions.shape, keys.positions), needed: 0 })),
    table: ctx.shared(keys.table, (): SharedTable => ({ tensor: ctx.scratch("f32", [1], keys.table), rows: 0 })),
  };
  const step: DispatchStep = {
    kind: "dispatch",
    spec: ropeKernel(variant),
    uniforms: {},
    tensors: { x: ctx.tensorOf(xView.base), y: ctx.tensorOf(n), positions: shared.positions.tensor, rope_table: shared.table.tensor },
  };
  const setUniforms = () =>
    Object.assign(step.uniforms, ropeUniforms({ batch, length, heads, x: tensorView(xView), y: denseView("bthd", length, heads, headDim), tableRows: Math.max(shared.table.rows, 1), direction: a.inverse ? -1 : 1 }));
  setUniforms();
  return ok({
    steps: [step],
    refresh: (ints, pass) => {
      const { positions: held, table } = shared;
      if (held.pass !== pass) {
        const values = ints(positionsView);
        if (!values) return fail(diag("SFT4005", `rope %${n.id} needs its positions as a graph input, read on the host.`));
        const bad = values.findIndex((p) => p < 0);
        if (bad >= 0) return fail(diag("SFT4002", `Position id ${values[bad]} at index ${bad} is negative.`, { where: positions.attrs.name }));
        writeTensor(ctx.gpu, held.tensor, values);
        held.needed = values.reduce((m, p) => Math.max(m, p), 0) + 1;
        held.pass = pass;
      }
      // rows only grow, so a table an earlier launch of this pass fitted to `held.needed` still fits
      if (held.needed > table.rows) {
        // grow to the next power of two, so growing sequences rebuild the table rarely
        table.rows = 2 ** Math.ceil(Math.log2(held.needed));
        // the smaller table goes first, so the two are never held together: work already
        // submitted keeps it until that work is done
        ctx.release(table.tensor);
        table.tensor = ctx.scratch("f32", [table.rows * a.rotaryDim], `${keys.table}, ${table.rows} rows`);
        writeTensor(ctx.gpu, table.tensor, ropeTable(a.rotaryDim, a.base, table.rows, F32_TABLE));
      }
      step.tensors.rope_table = table.tensor;
      setUniforms();
      return ok(undefined);
    },
  });
}

/** The u32 positions the launches of one positions view share, and the rows their tables need. */
interface SharedPositions {
  tensor: GpuTensor;
  needed: number;
  /** The refresh pass that last wrote them. */
  pass?: RefreshPass;
}

/** The cos/sin table the launches of one positions view, rotary dims and base share: `rows` positions. */
interface SharedTable {
  tensor: GpuTensor;
  rows: number;
}
