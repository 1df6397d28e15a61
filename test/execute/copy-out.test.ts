// Outputs copied out of a step as their launch writes them (ExecutorOptions.copyOut with
// PlanOptions.copiedOut): the copies land where asked, whole or by byte ranges, before a later
// tensor reuses the output's place in the pool (which the plan frees after the output's last read
// in the step); reading such an output back is refused, and an executor whose copies are not the
// ones its plan frees early is refused before anything runs.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { graph, type Node } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { CopyStep } from "../../runtime/gpu/bound-steps.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, type GpuTensor } from "../../runtime/gpu/tensor.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { expectOk } from "../support/result.ts";

const ROWS = 4;
const COLS = 64;

// a = 2x (copied out), m = x * (a's row sums), d = m * (m's row sums) + x: a's last read is the
// launch of its row sums, and d, written after it, takes a's place in the pool
function stepGraph() {
  const x = b.input("x", [ROWS, COLS]);
  const rowSums = (t: Node) => b.expandTo(b.reshape(b.sum(t, 1), [ROWS, 1]), [ROWS, COLS]);
  const a = b.mul(x, b.fill(2, x));
  const m = b.mul(x, rowSums(a));
  const d = b.add(b.mul(m, rowSums(m)), x);
  return graph([
    ["a", a],
    ["d", d],
  ]);
}

function values(): Float64Array {
  return Float64Array.from({ length: ROWS * COLS }, (_, i) => ((i * 37) % 17) / 8 - 1);
}

async function runWith(gpu: GpuDevice, copies: (output: GpuTensor) => CopyStep[]): Promise<{ d: Float64Array; executor: GraphExecutor }> {
  const g = stepGraph();
  const { schedule, plan } = expectOk(compileGraph(g, { copiedOut: new Set(["a"]) }));
  // a later tensor takes a's place in the pool: the copy must come before that tensor is written
  const a = plan.buffers.get(schedule.outputViews.get("a")!.base)!;
  const overlaps = (o: typeof a) => o.slot === a.slot && o.bufferOffset < a.bufferOffset + a.bytes && a.bufferOffset < o.bufferOffset + o.bytes;
  assert.ok([...plan.buffers.values()].some((o) => o !== a && o.first > a.last && overlaps(o)), "a's place is reused in the step");
  const executor = expectOk(GraphExecutor.create(gpu, schedule, new Map(), { plan, copyOut: new Map([["a", copies]]) }));
  executor.write("x", values());
  expectOk(await executor.run());
  return { d: await executor.read("d"), executor };
}

// the float64 values of the graph for values()
function expected(): { a: Float64Array; d: Float64Array } {
  const x = values();
  const a = x.map((v) => 2 * v);
  const rowSum = (m: Float64Array, r: number) => m.subarray(r * COLS, (r + 1) * COLS).reduce((s, v) => s + v, 0);
  const m = x.map((v, i) => v * rowSum(a, Math.floor(i / COLS)));
  const d = m.map((v, i) => v * rowSum(m, Math.floor(i / COLS)) + x[i]);
  return { a, d };
}

test(
  "an output copied out whole as its launch writes it: the copy holds its values, the step's other outputs are right, and reading it back is refused",
  withGpu(async (gpu) => {
    const dst = createTensor(gpu, "f32", [ROWS, COLS], "copied a");
    const { d, executor } = await runWith(gpu, (output) => [{ kind: "copy", src: output, dst }]);
    const want = expected();
    assert.equal(Array.from(await readFloats(gpu, dst)), Array.from(want.a, Math.fround));
    d.forEach((v, i) => assert.ok(Math.abs(v - want.d[i]) <= 1e-4 * (1 + Math.abs(want.d[i])), `d[${i}] ${v} against ${want.d[i]}`));
    const refused = await executor.read("a").then(() => "read", (e: Error) => e.message);
    assert.match(refused, "copied out as it is written");
    executor.destroy();
    dst.destroy();
  }),
);

test(
  "byte ranges: rows 1 and 3 of the output copied to rows 0 and 2 of a larger tensor, nothing else written",
  withGpu(async (gpu) => {
    const dst = createTensor(gpu, "f32", [ROWS + 1, COLS], "rows of a");
    const row = 4 * COLS;
    const { executor } = await runWith(gpu, (output) =>
      [1, 3].map((r) => ({ kind: "copy", src: output, dst, range: { srcOffset: r * row, dstOffset: (r - 1) * row, bytes: row } })),
    );
    const got = await readFloats(gpu, dst);
    const a = expected().a;
    const rowOf = (m: ArrayLike<number>, r: number) => Array.from(m).slice(r * COLS, (r + 1) * COLS);
    assert.equal(rowOf(got, 0), rowOf(a, 1).map(Math.fround));
    assert.equal(rowOf(got, 2), rowOf(a, 3).map(Math.fround));
    for (const r of [1, 3, 4]) assert.ok(rowOf(got, r).every((v) => v === 0), `row ${r} untouched`);
    executor.destroy();
    dst.destroy();
  }),
);

test(
  "an executor whose copies are not the outputs its plan frees early is refused",
  withGpu(async (gpu) => {
    const g = stepGraph();
    const early = expectOk(compileGraph(g, { copiedOut: new Set(["a"]) }));
    assert.throws(() => GraphExecutor.create(gpu, early.schedule, new Map(), { plan: early.plan }), /not those the memory plan frees early/);
    const kept = expectOk(compileGraph(g));
    const dst = createTensor(gpu, "f32", [ROWS, COLS], "copied a");
    assert.throws(() => GraphExecutor.create(gpu, kept.schedule, new Map(), { plan: kept.plan, copyOut: new Map([["a", (output: GpuTensor) => [{ kind: "copy" as const, src: output, dst }]]]) }), /not those the memory plan frees early/);
    dst.destroy();
  }),
);

test.run();
