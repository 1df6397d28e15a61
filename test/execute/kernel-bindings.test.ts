// The storage buffers a generated kernel binds (schedule.ts, step 5): expressions over twelve
// buffers (an add chain, concats along either axis, a reduction of a product) are scheduled into
// launches that each bind at most MAX_KERNEL_STORAGE_BUFFERS, inputs and output together, while
// twelve views of one buffer bind it once (codegen/fused-kernel.ts); all give the interpreter's
// values, on the float64 simulation of the memory plan and on the GPU. An adapter that allows
// fewer than a kernel binds gets a diagnostic instead of a validation error. On the fixture
// models' training steps, ChatGLM-6B's wide gathers bind each buffer once, not once per view.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type Graph } from "../../compiler/ir/node.ts";
import { MAX_KERNEL_STORAGE_BUFFERS } from "../../compiler/passes/schedule.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertSameOutputs, compile } from "../passes/compile-support.ts";
import { assertClose } from "../support/numeric.ts";
import { expectError, expectOk } from "../support/result.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { feedsOf, fixtureGraph, generatedBindings, runOnGpu, trainingOf } from "./support.ts";
import { fusedKernel, isGeneratedLaunch } from "../../compiler/codegen/fused-kernel.ts";
import { families, type FamilyName } from "../../stdlib/families/index.ts";
import { loadFixture } from "../models/support.ts";

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

test(
  "an adapter that allows a kernel fewer storage buffers than one of the schedule's binds: SFT5009 naming the kernel and the limit, before anything runs",
  withGpu(async (gpu) => {
    const g = wideGraph();
    const schedule = compile(g).schedule;
    // the widest generated launch binds eight: a device allowing seven refuses it
    const narrow = Object.create(gpu, { limits: { value: { ...gpu.limits, maxStorageBuffersPerShaderStage: MAX_KERNEL_STORAGE_BUFFERS - 1 } } }) as GpuDevice;
    const refused = expectError(GraphExecutor.create(narrow, schedule));
    assert.is(refused.code, "SFT5009");
    assert.match(refused.message, `binds ${MAX_KERNEL_STORAGE_BUFFERS} storage buffers, and the adapter '${gpu.adapter.name}' allows ${MAX_KERNEL_STORAGE_BUFFERS - 1} per kernel`);
    assert.ok(refused.where, "the launch is named");
    // the same schedule on the device as it is
    expectOk(GraphExecutor.create(gpu, schedule)).destroy();
  }),
);

test("the fixture models' training steps: ChatGLM-6B's rotary halves and QKV gradient gather read 9 and 14 views of 4 and 6 buffers and bind 4 and 6; no family's generated launch binds more than eight", async () => {
  for (const family of Object.keys(families) as FamilyName[]) {
    const compiled = compile(trainingOf(fixtureGraph(await loadFixture(family))));
    const launches = compiled.schedule.launches.filter(isGeneratedLaunch);
    // a binding per view (as before buffers were bound once) against the kernel's bindings
    const wide = launches.map((l) => [l.inputs.length + l.outputs.length, fusedKernel(l).spec.bindings.length]).filter(([views]) => views > MAX_KERNEL_STORAGE_BUFFERS);
    assert.equal(wide, family === "chatglm" ? [[9, 4], [9, 4], [9, 4], [9, 4], [14, 6], [14, 6]] : [], family);
    assert.ok(generatedBindings(compiled.schedule).every((n) => n <= MAX_KERNEL_STORAGE_BUFFERS), family);
  }
});

test.run();
