// The storage buffers a generated kernel binds (schedule.ts, step 5): expressions over twelve
// buffers (an add chain, concats along either axis, a reduction of a product) are scheduled into
// launches that each bind at most MAX_KERNEL_STORAGE_BUFFERS, inputs and output together, while
// twelve views of one buffer bind it once (codegen/fused-kernel.ts); all give the interpreter's
// values, on the float64 simulation of the memory plan and on the GPU.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type Graph } from "../../compiler/ir/node.ts";
import { MAX_KERNEL_STORAGE_BUFFERS } from "../../compiler/passes/schedule.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertSameOutputs, compile } from "../passes/compile-support.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { feedsOf, generatedBindings, runOnGpu } from "./support.ts";

const PARTS = 12;

// Twelve (4, 8) buffers: their sum, their concat along rows and along columns, and the row sums of
// their product (a reduction whose expression reads all twelve); and the sum of twelve (4, 8)
// views of one (4, 96) buffer, which is one binding.
function wideGraph(): Graph {
  const parts = Array.from({ length: PARTS }, (_, i) => b.param(`p${i}`, [4, 8]));
  const wide = b.param("wide", [4, 8 * PARTS]);
  const views = parts.map((_, i) => b.slice(wide, 1, 8 * i, 8 * i + 8));
  return graph([
    ["sum", parts.reduce((acc, p) => b.add(acc, p))],
    ["rows", b.concat(parts, 0)],
    ["columns", b.concat(parts, 1)],
    ["product", b.sum(parts.reduce((acc, p) => b.mul(acc, p)), 1)],
    ["views", views.reduce((acc, v) => b.add(acc, v))],
  ]);
}

test("twelve buffers in one expression: each output in two launches, the first reading seven of them, each binding at most eight; twelve views of one buffer bind it once", () => {
  const g = wideGraph();
  const compiled = compile(g);
  assert.equal(generatedBindings(compiled.schedule), [8, 7, 8, 7, 8, 7, 8, 7, 2]);
  assertSameOutputs(g, compiled, feedsOf(g, {}, 1), "twelve buffers");
});

test(
  "twelve buffers in one expression: the GPU gives the interpreter's values",
  withGpu(async (gpu) => {
    const g = wideGraph();
    const feeds = feedsOf(g, {}, 1);
    const want = expectOk(interpret(g, feeds));
    const run = await runOnGpu(gpu, g, feeds, { plan: true });
    assert.ok(generatedBindings(run.compiled.schedule).every((n) => n <= MAX_KERNEL_STORAGE_BUFFERS));
    for (const [name, values] of want) assertClose(run.outputs.get(name)!, values, 1e-5, name);
  }),
);

test.run();
