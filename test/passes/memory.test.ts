// Memory-plan figures: liveness reuse lowers the planned arena below the no-reuse baseline, and
// gradient checkpointing lowers the peak further, for each family's tiny stand-in; the pool's
// buffers are ones the GPU runtime can bind. The figures are printed so a run shows them.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { storageBytes } from "../../stdlib/kernels/dtype.ts";
import { formatMemoryPlan } from "../../compiler/passes/memory-plan.ts";
import { families, randomFeeds } from "../ir/feeds.ts";
import { assertSameOutputs, build, compile } from "./compile-support.ts";

for (const family of Object.keys(families)) {
  test(`${family}: reuse lowers the arena; checkpointing lowers the activation peak and the total peak`, () => {
    const m = build(family, 4);
    const reuse = compile(m.training);
    const noReuse = compile(m.training, { noReuse: true });
    const checkpointed = compile(m.training, { checkpoints: m.model.layerInputs });
    console.log(`    ${family}, reuse:\n${indent(formatMemoryPlan(reuse.plan))}`);
    console.log(`    ${family}, checkpointed:\n${indent(formatMemoryPlan(checkpointed.plan))}`);
    assert.is(noReuse.plan.arenaBytes, noReuse.plan.noReuseArenaBytes);
    assert.ok(reuse.plan.arenaBytes < 0.7 * noReuse.plan.arenaBytes, "liveness reuse saves at least 30% of the arena");
    assert.ok(reuse.plan.peakBytes < noReuse.plan.peakBytes, "and so lowers the peak");
    assert.ok(reuse.plan.arenaBytes >= reuse.plan.liveLowerBoundBytes);
    assert.ok(checkpointed.plan.categories.activations < 0.6 * reuse.plan.categories.activations, "checkpointing keeps fewer activations");
    assert.ok(checkpointed.plan.peakBytes < reuse.plan.peakBytes, "checkpointing lowers the peak");
    // the same weights, gradients and optimizer state either way
    for (const c of ["weights", "gradients", "optimizerState"] as const) assert.is(checkpointed.plan.categories[c], reuse.plan.categories[c]);
  });
}

test("selective checkpointing: also keeping attention outputs trades memory for less recomputation", async () => {
  const { topoSort } = await import("../../compiler/ir/node.ts");
  const { kernelCount } = await import("../../compiler/passes/print-schedule.ts");
  const m = build("chatglm2", 4);
  const attention = topoSort([m.model.loss]).filter((n) => n.op === "attention");
  const none = compile(m.training);
  const layers = compile(m.training, { checkpoints: m.model.layerInputs });
  const selective = compile(m.training, { checkpoints: [...m.model.layerInputs, ...attention] });
  const row = (label: string, c: typeof none) => console.log(`    ${label}: ${kernelCount(c.schedule)} launches, activations peak ${c.plan.categories.activations} B`);
  row("no checkpoints", none);
  row("layer inputs", layers);
  row("layer inputs and attention outputs", selective);
  assert.ok(kernelCount(none.schedule) < kernelCount(selective.schedule) && kernelCount(selective.schedule) < kernelCount(layers.schedule));
  assert.ok(layers.plan.categories.activations < selective.plan.categories.activations);
  assert.ok(selective.plan.categories.activations < none.plan.categories.activations);
});

test("per-category figures add up: weights, gradients and AdamW state of a known model, in the runtime's buffer sizes", () => {
  const m = build("baichuan-7b", 1);
  const plan = compile(m.training).plan;
  const bytes = (p: { shape: readonly number[] }) => storageBytes("f32", p.shape.reduce((a, d) => a * d, 1));
  assert.is(plan.categories.optimizerState, m.model.params.reduce((n, p) => n + 2 * bytes(p), 0), "AdamW: m and v, one f32 buffer each");
  assert.is(plan.categories.weights, m.model.params.reduce((n, p) => n + bytes(p), 0));
  assert.is(plan.categories.gradients, plan.categories.weights, "one f32 gradient per f32 weight");
  assert.is(plan.peakBytes, plan.categories.weights + plan.categories.inputs + plan.categories.optimizerState + plan.arenaBytes);
  const side = [...plan.buffers.values()].reduce((n, b) => n + b.sideBytes, 0);
  assert.is(plan.arenaBytes, plan.pool.reduce((n, p) => n + p.bytes, 0) + side, "the arena is the pool plus the side outputs");
});

test("pool buffers: tenants never live together, none read and written by one launch, each as large as its largest tenant", () => {
  const m = build("baichuan-7b", 3);
  const compiled = compile(m.training);
  const { plan, schedule } = compiled;
  assertSameOutputs(m.training, compiled, randomFeeds(m.model, m.options, 4), "loss and gradients through the pool");
  for (const p of plan.pool) {
    assert.is(p.bytes, Math.max(...p.tenants.map((t) => t.bytes)));
    for (const a of p.tenants) for (const b of p.tenants) if (a !== b) assert.ok(a.last < b.first || b.last < a.first, `%${a.node.id} and %${b.node.id} share a buffer while both live`);
  }
  schedule.launches.forEach((l, i) => {
    const slots = [...l.inputs.map((x) => x.view.base), ...l.outputs].map((n) => plan.buffers.get(n)!).filter((b) => b.slot >= 0);
    const distinct = new Set(slots.map((b) => b.node));
    assert.is(new Set(slots.map((b) => b.slot)).size, distinct.size, `launch ${i} binds one pool buffer twice`);
  });
  assert.ok(plan.pool.length < 0.5 * [...plan.buffers.values()].filter((b) => b.slot >= 0).length, "most tensors reuse a buffer");
});

test("a Baichuan-7B-shaped full fine-tune (sequence 512, batch 1): planned figures, checkpointing cuts activations", async () => {
  const { tinyTransformer } = await import("../../compiler/models/tiny-transformer.ts");
  const { trainingGraph } = await import("../../compiler/autodiff/grad.ts");
  const shape = { vocab: 64000, hidden: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, batch: 1, seq: 512 };
  const model = tinyTransformer({ ...shape, norm: "rms", position: { kind: "rope", style: "half" }, mlp: "swiglu", residual: "pre" });
  assert.ok(model.ok);
  const train = trainingGraph(model.value.loss, model.value.params);
  assert.ok(train.ok);
  const plain = compile(train.value.graph).plan;
  const checkpointed = compile(train.value.graph, { checkpoints: model.value.layerInputs }).plan;
  console.log(`    7B-shaped, reuse:\n${indent(formatMemoryPlan(plain))}`);
  console.log(`    7B-shaped, checkpointed:\n${indent(formatMemoryPlan(checkpointed))}`);
  // 32 x (4·4096² + 3·4096·11008 + 2·4096) + 2·64000·4096 + 4096 weights, f32
  const weights = 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 64000 * 4096 + 4096;
  assert.ok(Math.abs(plain.categories.weights - 4 * weights) < 256 * model.value.params.length, "weights are 4 bytes per parameter");
  assert.ok(checkpointed.categories.activations < plain.categories.activations / 5, "checkpointing keeps a fifth of the activations or less");
});

function indent(text: string): string {
  return text.split("\n").map((l) => `      ${l}`).join("\n");
}

test.run();
