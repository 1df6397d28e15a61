// Shared by the executor tests: compile a graph, run it on the GPU with the given feeds, and
// read every output back; plus the fixture models' forward and training graphs.
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import * as ir from "../../compiler/ir/build.ts";
import { numel, type AttentionAttrs, type DType, type Graph, type Node } from "../../compiler/ir/node.ts";
import { Random } from "../../runtime/random.ts";
import { buildFamilyGraph, type FamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { fusedKernel, isGeneratedLaunch } from "../../compiler/codegen/fused-kernel.ts";
import { compileGraph, type Compiled } from "../../compiler/passes/compile.ts";
import type { Schedule } from "../../compiler/passes/schedule.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { GraphExecutor, type ExecutorStats } from "../../runtime/execute/executor.ts";
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { expectOk } from "../support/result.ts";
import type { Fixture } from "../models/support.ts";

export interface GpuRun {
  compiled: Compiled;
  outputs: Map<string, Float64Array>;
  stats: ExecutorStats;
  /** The pipeline key of every dispatch, in order. */
  kernelKeys: string[];
}

/**
 * Compiles `g`, runs it once on the GPU with a new executor and reads every output; `plan`:
 * activations share buffers as planned; `attentionScores`: the executor's attention path.
 */
export async function runOnGpu(gpu: GpuDevice, g: Graph, feeds: ReadonlyMap<string, Float64Array>, options: { plan?: boolean; attentionScores?: AttentionScoresChoice } = {}): Promise<GpuRun> {
  const compiled = expectOk(compileGraph(g));
  const ex = expectOk(GraphExecutor.create(gpu, compiled.schedule, new Map(), { plan: options.plan ? compiled.plan : undefined, attentionScores: options.attentionScores }));
  try {
    for (const [name, values] of feeds) ex.write(name, values);
    expectOk(await ex.run());
    const outputs = new Map<string, Float64Array>();
    for (const name of g.outputs.keys()) outputs.set(name, await ex.read(name));
    const errors = await gpu.takeErrors();
    assert.equal(errors.map((e) => e.message), [], "GPU errors");
    return { compiled, outputs, stats: ex.stats(), kernelKeys: ex.kernelKeys() };
  } finally {
    ex.destroy();
  }
}

/** The storage buffers each generated launch (elementwise or reduce) of `s` binds, as its WGSL declares them. */
export function generatedBindings(s: Schedule): number[] {
  return s.launches.filter(isGeneratedLaunch).map((l) => fusedKernel(l).spec.bindings.length);
}

/** The fixture's family graph for its golden batch. */
export function fixtureGraph(fixture: Fixture, method?: TrainingMethod, weightDtypes?: ReadonlyMap<string, DType>): FamilyGraph {
  const { golden } = fixture;
  return expectOk(buildFamilyGraph(fixture.family, fixture.config, { batch: golden.input_ids.length, seq: golden.input_ids[0].length, method, weightDtypes }));
}

/** The training graph (loss and `grad.<name>` of every trainable parameter). */
export function trainingOf(g: FamilyGraph): Graph {
  return expectOk(trainingGraph(g.loss, g.trainable)).graph;
}

/** The executor's dispatches for `g` (prepared, not run): no weights are needed. */
export function dispatchCount(gpu: GpuDevice, g: Graph): number {
  const compiled = expectOk(compileGraph(g));
  const ex = expectOk(GraphExecutor.create(gpu, compiled.schedule));
  const n = ex.stats().dispatches;
  ex.destroy();
  return n;
}

/**
 * Dispatches one more layer adds, forward and training: the difference between the fixture's
 * model and the same model with one layer more (exact, whatever runs outside the layers).
 */
export function dispatchesPerLayer(gpu: GpuDevice, fixture: Fixture): { forward: number; training: number } {
  const deeper: Fixture = { ...fixture, config: { ...fixture.config, dims: { ...fixture.config.dims, layers: fixture.config.dims.layers + 1 } } };
  const [base, more] = [fixture, deeper].map((f) => fixtureGraph(f));
  return {
    forward: dispatchCount(gpu, more.graph) - dispatchCount(gpu, base.graph),
    training: dispatchCount(gpu, trainingOf(more)) - dispatchCount(gpu, trainingOf(base)),
  };
}

/** Random feeds for every param and float input of `g`, plus the given i32 inputs. */
export function feedsOf(g: Graph, ints: Record<string, number[]>, seed: number): Map<string, Float64Array> {
  const rng = new Random(seed);
  const feeds = new Map<string, Float64Array>();
  const walk = (n: Node) => {
    if ((n.op === "param" || n.op === "input") && !feeds.has(n.attrs.name!)) {
      const given = ints[n.attrs.name!];
      feeds.set(n.attrs.name!, given ? Float64Array.from(given) : Float64Array.from(rng.normalArray(numel(n.shape), 0.5)));
    }
    n.inputs.forEach(walk);
  };
  for (const n of g.outputs.values()) walk(n);
  return feeds;
}

/** The mask inputs an attention node with `attrs` reads over (B, T) tokens, in the op's order: prefixLen, keyRange, segmentIds. */
export function attentionMaskInputs(attrs: AttentionAttrs, B: number, T: number): Node[] {
  return [
    ...(attrs.prefix ? [ir.input("prefixLen", [B], "i32")] : []),
    ...(attrs.padding ? [ir.input("keyRange", [B, 2], "i32")] : []),
    ...(attrs.segments ? [ir.input("segmentIds", [B, T], "i32")] : []),
  ];
}
