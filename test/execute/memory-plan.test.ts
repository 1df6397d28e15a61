// The compile-time memory plan against what the GPU executor actually allocates: for every
// family's tiny forward graph, evaluation with the loss head in chunks, and training graph (full,
// checkpointed full, LoRA, LoRA with the loss head in chunks and checkpointed), an executor
// given the plan allocates the plan's pool buffers; the bytes it holds, read from the device's
// counters (not from the plan), are the plan's figure to the byte (weights, inputs, pool and
// side outputs, and the launches' scratch: host-written masks, positions and tables, and the
// workspace launches share, which one more layer must not grow; no optimizer state, which the
// executor does not own). Reuse must still pay: the planned bytes stay below one buffer per tensor.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph, Node } from "../../compiler/ir/node.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { evaluationGraph } from "../../compiler/passes/chunk-loss.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { launchScratchBytes } from "../../compiler/plan/launch-scratch.ts";
import { layerInputs } from "../../compiler/plan/step-plan.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { adapterValues, feedsFor, loadFixture, type Fixture } from "../models/support.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { fixtureGraph, trainingOf } from "./support.ts";

async function measure(gpu: GpuDevice, label: string, g: Graph, feeds: ReadonlyMap<string, Float64Array>, checkpoints?: readonly Node[]): Promise<Map<string, Float64Array>> {
  const { schedule, plan } = expectOk(compileGraph(g, { optimizerBytesPerElement: 0, checkpoints }));
  const outputs = new Map<string, Float64Array>();
  const before = gpu.memory.liveBytes;
  const ex = expectOk(GraphExecutor.create(gpu, schedule, new Map(), { plan }));
  let allocated = gpu.memory.liveBytes - before;
  try {
    for (const [name, values] of feeds) ex.write(name, values);
    expectOk(await ex.run());
    for (const name of g.outputs.keys()) outputs.set(name, await ex.read(name));
    allocated = Math.max(allocated, gpu.memory.liveBytes - before);
    const stats = ex.stats();
    assert.is(stats.nodeBytes + stats.scratchBytes, allocated, `${label}: the device counted what the executor allocated`);
    assert.is(stats.sharedBytes, plan.pool.reduce((sum, p) => sum + p.bytes, 0), `${label}: the pool is allocated as planned`);
  } finally {
    ex.destroy();
  }
  assert.is(gpu.memory.liveBytes, before, `${label}: destroy frees every buffer`);
  const planned = plan.peakBytes + launchScratchBytes(schedule);
  console.log(`    ${label}: planned ${formatBytes(planned)}, allocated ${formatBytes(allocated)}; ${plan.pool.length} pool buffers, arena ${plan.arenaBytes} B (${plan.noReuseArenaBytes} B without reuse)`);
  assert.is(planned, allocated, `${label}: the plan's bytes are the bytes allocated`);
  assert.ok(plan.arenaBytes < plan.noReuseArenaBytes, `${label}: reuse lowers the arena`);
  return outputs;
}

for (const name of familyNames) {
  test(
    `${name}: the executor allocates the planned bytes to the byte (forward; full, checkpointed and LoRA training)`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      const lora: TrainingMethod = { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets };
      const plain = fixtureGraph(fixture);
      const adapted = fixtureGraph(fixture, lora);
      const rng = new Random(5);
      await measure(gpu, `${name} forward`, plain.graph, feedsFor(fixture));
      await measure(gpu, `${name} evaluation, loss head in chunks`, evaluationGraph(plain.loss, 6 * plain.logits.shape[1] * 4), feedsFor(fixture));
      const training = trainingOf(plain);
      await measure(gpu, `${name} full training`, training, feedsFor(fixture));
      // checkpointed: the layers' forward recomputed before their backward, norms in the workspace
      const checkpoints = layerInputs(plain, fixture.family, fixture.config.dims.layers);
      const recomputed = await measure(gpu, `${name} full training, checkpointed`, training, feedsFor(fixture), checkpoints);
      const reference = expectOk(interpret(training, feedsFor(fixture)));
      for (const [k, v] of recomputed) assert.ok(relativeError(v, reference.get(k)!) < 1e-3, `${name} checkpointed ${k}`);
      const adapterFeeds = feedsFor(fixture, adapterValues(adapted, (n) => rng.normalArray(n, 0.1), false));
      await measure(gpu, `${name} LoRA training`, trainingOf(adapted), adapterFeeds);
      // the frozen head's loss in chunks of 6 rows (chunk-loss.ts), checkpointed as a run would
      const chunked = expectOk(trainingGraph(adapted.loss, adapted.trainable, { lossChunkBytes: 6 * adapted.logits.shape[1] * 4 })).graph;
      await measure(gpu, `${name} LoRA training, loss head in chunks, checkpointed`, chunked, adapterFeeds, layerInputs(adapted, fixture.family, fixture.config.dims.layers));
    }),
  );
}

for (const name of familyNames) {
  test(
    `${name}: one more layer adds no workspace (launches share it)`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      const deeper: Fixture = { ...fixture, config: { ...fixture.config, dims: { ...fixture.config.dims, layers: fixture.config.dims.layers + 1 } } };
      const [base, more] = [fixture, deeper].map((f) => {
        const { schedule, plan } = expectOk(compileGraph(trainingOf(fixtureGraph(f))));
        const ex = expectOk(GraphExecutor.create(gpu, schedule, new Map(), { plan }));
        const stats = ex.stats();
        ex.destroy();
        return stats;
      });
      console.log(`    ${name} training: workspace ${base.workspaceBytes} B at ${fixture.config.dims.layers} layers, ${more.workspaceBytes} B at ${deeper.config.dims.layers}`);
      assert.ok(base.workspaceBytes > 0, "attention's backward takes workspace");
      assert.is(more.workspaceBytes, base.workspaceBytes);
    }),
  );
}

test.run();
