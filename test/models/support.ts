// Shared by the model-graph tests: a fixture checkpoint's weights by tensor name, its PyTorch
// golden (spec/golden/make_forward_goldens.py), and the feeds of a built family graph.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeElements } from "../../runtime/checkpoint/dtype.ts";
import { openModelDir } from "../../runtime/checkpoint/model-dir.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { families, type Family, type FamilyName } from "../../stdlib/families/index.ts";
import { familyFeeds } from "../../compiler/models/family-inputs.ts";
import type { FamilyGraph } from "../../compiler/models/family-graph.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { expectOk } from "../support/result.ts";

export interface GradSummary {
  sum: number;
  l2: number;
  weighted_sum: number;
  values?: number[];
}

export interface Golden {
  input_ids: number[][];
  labels: number[][];
  loss: number;
  logits: number[][][];
  grads: Record<string, GradSummary>;
}

export interface Fixture {
  family: Family;
  config: ModelConfig;
  /** Every streamed checkpoint tensor, widened to float64, by name. */
  weights: Map<string, Float64Array>;
  golden: Golden;
}

export async function loadFixture(name: FamilyName): Promise<Fixture> {
  const dir = join(FIXTURES, name);
  const { config, weights: stream } = expectOk(await openModelDir(dir, name));
  const weights = new Map<string, Float64Array>();
  for await (const result of stream()) {
    const tensor = expectOk(result);
    weights.set(tensor.name, decodeElements(tensor.dtype, tensor.data));
  }
  const golden: Golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
  return { family: families[name], config, weights, golden };
}

/** Weights, extra parameters and the golden batch's inputs, by graph name. */
export function feedsFor(fixture: Fixture, extra: ReadonlyMap<string, Float64Array> = new Map()): Map<string, Float64Array> {
  const inputs = expectOk(familyFeeds(fixture.family, fixture.config, { ids: fixture.golden.input_ids, labels: fixture.golden.labels }));
  return new Map([...fixture.weights, ...extra, ...inputs]);
}

/** Fresh adapter values: A ~ N(0, 0.1²) and B ~ N(0, 0.1²), or B = 0 as LoRA starts. */
export function adapterValues(g: FamilyGraph, draw: (n: number) => Float32Array, zeroB: boolean): Map<string, Float64Array> {
  const values = new Map<string, Float64Array>();
  for (const [name, p] of g.adapters) {
    const n = p.shape.reduce((x, y) => x * y, 1);
    values.set(name, zeroB && name.includes(".lora_B.") ? new Float64Array(n) : Float64Array.from(draw(n)));
  }
  return values;
}

/** (f(x + h) - f(x - h)) / 2h for x = values[i], perturbed in place and restored. */
export function centralDifference(values: Float64Array, i: number, step: number, f: () => number): number {
  const original = values[i];
  values[i] = original + step;
  const up = f();
  values[i] = original - step;
  const down = f();
  values[i] = original;
  return (up - down) / (2 * step);
}
