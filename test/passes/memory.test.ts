// Memory-plan figures: liveness reuse lowers the planned arena below the no-reuse baseline, and
// gradient checkpointing lowers the peak further, for each family's tiny stand-in; the pool's
// buffers are ones the GPU runtime can bind. The figures are printed so a run shows them.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { storageBytes } from "../../stdlib/kernels/dtype.ts";
import { formatMemoryPlan, POOL_OFFSET_ALIGNMENT } from "../../compiler/passes/memory-plan.ts";
import type { Node } from "../../compiler/ir/node.ts";
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

test("pool buffers: tenants live together take disjoint aligned ranges, no launch binds two of one buffer while writing one, the pool near the live bound", () => {
  const m = build("baichuan-7b", 3);
  for (const checkpoints of [undefined, m.model.layerInputs]) {
    const compiled = compile(m.training, { checkpoints });
    const { plan, schedule } = compiled;
    assertSameOutputs(m.training, compiled, randomFeeds(m.model, m.options, 4), "loss and gradients through the pool");
    let sharing = 0; // pairs live together in one buffer, at different offsets
    for (const p of plan.pool) {
      assert.is(p.bytes, Math.max(...p.tenants.map((t) => t.bufferOffset + t.bytes)), "a buffer ends where its last tenant does");
      for (const a of p.tenants) {
        assert.is(a.bufferOffset % POOL_OFFSET_ALIGNMENT, 0);
        for (const b of p.tenants) {
          const together = !(a.last < b.first || b.last < a.first);
          const apart = a.bufferOffset + a.bytes <= b.bufferOffset || b.bufferOffset + b.bytes <= a.bufferOffset;
          if (a !== b) assert.ok(!together || apart, `%${a.node.id} and %${b.node.id} overlap in one buffer while both live`);
          if (a !== b && together) sharing++;
        }
      }
    }
    assert.ok(sharing > 0, "some buffer holds tensors live together");
    schedule.launches.forEach((l, i) => {
      const slotOf = (n: Node) => plan.buffers.get(n)!.slot;
      const read = l.inputs.map((x) => x.view.base).filter((n) => slotOf(n) >= 0);
      for (const w of l.outputs.filter((n) => slotOf(n) >= 0)) {
        const others = [...read, ...l.outputs].filter((n) => n !== w && slotOf(n) === slotOf(w));
        assert.is(others.length, 0, `launch ${i} writes %${w.id} and binds %${others[0]?.id} of the same buffer`);
      }
    });
    const live = plan.liveLowerBoundBytes;
    console.log(`    ${checkpoints ? "checkpointed" : "kept activations"}: pool and side outputs ${plan.arenaBytes} B, at most ${live} B live at once, ${plan.pool.length} buffers for ${[...plan.buffers.values()].filter((b) => b.slot >= 0).length} tensors, ${sharing / 2} pairs live together in one buffer`);
    assert.ok(plan.arenaBytes <= 1.05 * live, "within 5% of the bytes live at once");
  }
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
