// Embedding lookup and its deterministic gradient. The gradient's plan (token positions grouped
// by id, embedding.ts) is built on the host from the ids input at each refresh and written into
// buffers sized for every token being distinct; the table gradient is cleared first by a
// generated fill, since the kernel leaves the rows of absent tokens untouched.
import { diag, fail, ok, type Result } from "../../../compiler/diagnostics.ts";
import { numel } from "../../../compiler/ir/node.ts";
import { inputView, type Launch } from "../../../compiler/passes/schedule.ts";
import { embeddingBackward, embeddingForward, embeddingGradPlan } from "../../../stdlib/kernels/embedding.ts";
import { writeTensor } from "../../gpu/tensor.ts";
import { wholeInput, type ExecContext, type PreparedLaunch } from "../steps.ts";
import type { DispatchStep } from "../../gpu/bound-steps.ts";
import { fillStep } from "./generated.ts";

export function prepareEmbedding(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const n = launch.outputs[0];
  const [table, ids] = n.inputs;
  const [vocab, dim] = table.shape;
  const out = ctx.tensorOf(n);
  const tableT = wholeInput(ctx, launch, table);
  const spec = embeddingForward(tableT.dtype, out.dtype);
  const tensors = { ids: wholeInput(ctx, launch, ids), table: tableT, out };
  return ok({ steps: [{ kind: "dispatch", spec, uniforms: { n: numel(n.shape), dim, vocab }, tensors }] });
}

export function prepareEmbeddingBackward(ctx: ExecContext, launch: Launch): Result<PreparedLaunch> {
  const n = launch.outputs[0];
  const [g, ids] = n.inputs;
  const [rows, dim] = n.shape;
  const tokens = numel(ids.shape);
  const out = ctx.tensorOf(n);
  const plan = {
    unique: ctx.scratch("i32", [tokens], `token ids of %${n.id}`),
    offsets: ctx.scratch("u32", [tokens + 1], `group offsets of %${n.id}`),
    positions: ctx.scratch("u32", [tokens], `token positions of %${n.id}`),
  };
  const scatter: DispatchStep = {
    kind: "dispatch",
    spec: embeddingBackward(false),
    uniforms: { groups: 0, dim },
    tensors: { ...plan, d_out: wholeInput(ctx, launch, g), d_table: out },
  };
  const idsView = inputView(launch, ids);
  return ok({
    steps: [fillStep(ctx, out, n.shape, 0), scatter],
    refresh: (ints) => {
      const values = ints(idsView);
      if (!values) return fail(diag("SFT4005", `The embedding gradient %${n.id} needs its token ids as a graph input, read on the host.`));
      const bad = values.findIndex((id) => id < 0 || id >= rows);
      if (bad >= 0) return fail(diag("SFT4002", `Token id ${values[bad]} at position ${bad} is outside the embedding table (${rows} rows).`, { where: ids.attrs.name }));
      const p = embeddingGradPlan(values);
      const padded = (src: ArrayLike<number>, length: number) => Object.assign(new Array<number>(length).fill(0), Array.from(src));
      writeTensor(ctx.gpu, plan.unique, padded(p.unique, tokens));
      writeTensor(ctx.gpu, plan.offsets, padded(p.offsets, tokens + 1));
      writeTensor(ctx.gpu, plan.positions, p.positions);
      scatter.uniforms.groups = p.unique.length;
      return ok(undefined);
    },
  });
}
