// The compile-time memory plan against what the GPU executor actually allocates: for every
// family's tiny forward graph and training graph (full and LoRA), an executor given the plan
// allocates the plan's pool buffers; the bytes it holds, read from the device's counters (not
// from the plan), are within 5% of the plan's figure (weights, inputs, pool and side outputs; no
// optimizer state, which the executor does not own). What the plan does not count is the
// launches' scratch (attention's dK/dV and delta, host-written masks, positions and tables).
// Reuse must still pay: the planned bytes stay below one buffer per tensor.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Graph } from "../../compiler/ir/node.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { comparePlanWithAllocated } from "../../compiler/plan/measured.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { adapterValues, feedsFor, loadFixture } from "../models/support.ts";
import { expectOk } from "../support/result.ts";
import { fixtureGraph, trainingOf } from "./support.ts";

async function measure(gpu: GpuDevice, label: string, g: Graph, feeds: ReadonlyMap<string, Float64Array>): Promise<void> {
  const { schedule, plan } = expectOk(compileGraph(g, { optimizerBytesPerElement: 0 }));
  const before = gpu.memory.liveBytes;
  const ex = expectOk(GraphExecutor.create(gpu, schedule, new Map(), { plan }));
  let allocated = gpu.memory.liveBytes - before;
  try {
    for (const [name, values] of feeds) ex.write(name, values);
    expectOk(await ex.run());
    for (const name of g.outputs.keys()) assert.ok((await ex.read(name)).every(Number.isFinite), `${label}: ${name} is finite`);
    allocated = Math.max(allocated, gpu.memory.liveBytes - before);
    const stats = ex.stats();
    assert.is(stats.nodeBytes + stats.scratchBytes, allocated, `${label}: the device counted what the executor allocated`);
    assert.is(stats.sharedBytes, plan.pool.reduce((sum, p) => sum + p.bytes, 0), `${label}: the pool is allocated as planned`);
  } finally {
    ex.destroy();
  }
  assert.is(gpu.memory.liveBytes, before, `${label}: destroy frees every buffer`);
  const check = comparePlanWithAllocated(plan.peakBytes, allocated);
  console.log(`    ${label}: ${check.summary}; ${plan.pool.length} pool buffers, arena ${plan.arenaBytes} B (${plan.noReuseArenaBytes} B without reuse)`);
  assert.ok(check.withinTolerance, `${label}: ${check.summary}`);
  assert.ok(plan.arenaBytes < plan.noReuseArenaBytes, `${label}: reuse lowers the arena`);
}

for (const name of familyNames) {
  test(
    `${name}: the executor allocates the planned bytes within 5% (forward, full and LoRA training)`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      const lora: TrainingMethod = { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets };
      const plain = fixtureGraph(fixture);
      const adapted = fixtureGraph(fixture, lora);
      const rng = new Random(5);
      await measure(gpu, `${name} forward`, plain.graph, feedsFor(fixture));
      await measure(gpu, `${name} full training`, trainingOf(plain), feedsFor(fixture));
      await measure(gpu, `${name} LoRA training`, trainingOf(adapted), feedsFor(fixture, adapterValues(adapted, (n) => rng.normalArray(n, 0.1), false)));
    }),
  );
}

test.run();
