// Shared helpers for the pass tests: compile the tiny transformer of a family, forward or training.
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { graph, type Graph } from "../../compiler/ir/node.ts";
import { tinyTransformer, type TinyTransformer, type TinyTransformerOptions } from "../../compiler/models/tiny-transformer.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { compileGraph, type CompileOptions, type Compiled } from "../../compiler/passes/compile.ts";
import { simulate } from "../../compiler/passes/simulate.ts";
import { assertClose } from "../support/numeric.ts";
import { families } from "../ir/feeds.ts";

export interface Built {
  options: TinyTransformerOptions;
  model: TinyTransformer;
  forward: Graph;
  training: Graph;
}

export function build(family: string, layers: number): Built {
  const options = { ...families[family], layers };
  const model = tinyTransformer(options);
  assert.ok(model.ok);
  const train = trainingGraph(model.value.loss, model.value.params);
  assert.ok(train.ok);
  return { options, model: model.value, forward: graph([["loss", model.value.loss]]), training: train.value.graph };
}

export function compile(g: Graph, opts: CompileOptions = {}): Compiled {
  const c = compileGraph(g, opts);
  assert.ok(c.ok, c.ok ? "" : c.diagnostics.map((d) => d.message).join("\n"));
  return c.value;
}

/** Library kernel launches by name. */
export function launchCounts(c: Compiled): Map<string, number> {
  const counts = new Map<string, number>();
  for (const l of c.schedule.launches) for (const name of l.launches) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

/** a − b per kernel name, without zero entries. */
export function difference(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const names = [...new Set([...a.keys(), ...b.keys()])].sort();
  return new Map(names.map((n): [string, number] => [n, (a.get(n) ?? 0) - (b.get(n) ?? 0)]).filter(([, v]) => v !== 0));
}

/** The schedule, run launch by launch on its memory plan, gives the outputs of the input graph. */
export function assertSameOutputs(input: Graph, compiled: Compiled, feeds: Map<string, Float64Array>, label: string): void {
  const want = interpret(input, feeds);
  const got = simulate(compiled.schedule, compiled.plan, feeds);
  assert.ok(want.ok && got.ok);
  const flat = (m: Map<string, Float64Array>) => Float64Array.from([...input.outputs.keys()].flatMap((k) => [...m.get(k)!]));
  assertClose(flat(got.value), flat(want.value), 1e-12, label);
}
