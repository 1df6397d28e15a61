// The scheduled graph gives the numbers of the unfused one: every launch of the schedule runs on
// the float64 interpreter, reading and writing its buffers at the planned arena offsets, and the
// outputs are compared with the plain interpretation of the input graph.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { interpret } from "../../compiler/ir/interpret.ts";
import { simulate } from "../../compiler/passes/simulate.ts";
import { families, randomFeeds } from "../ir/feeds.ts";
import { assertSameOutputs, build, compile } from "./compile-support.ts";

for (const family of Object.keys(families)) {
  test(`${family}: scheduled forward, training step and checkpointed training step match the interpreter`, () => {
    const m = build(family, 3);
    const feeds = randomFeeds(m.model, m.options, 21);
    assertSameOutputs(m.forward, compile(m.forward), feeds, `${family} forward`);
    assertSameOutputs(m.training, compile(m.training), feeds, `${family} loss and gradients`);
    assertSameOutputs(m.training, compile(m.training, { checkpoints: m.model.layerInputs }), feeds, `${family} checkpointed`);
  });
}

test("the simulation catches a plan that overlaps live buffers", () => {
  const m = build("baichuan-7b", 2);
  const feeds = randomFeeds(m.model, m.options, 21);
  const compiled = compile(m.training);
  // move every arena buffer to offset 0: live buffers now overwrite each other
  for (const b of compiled.plan.buffers.values()) if (b.offset >= 0) b.offset = 0;
  const want = interpret(m.training, feeds);
  const got = simulate(compiled.schedule, compiled.plan, feeds);
  assert.ok(want.ok && got.ok);
  const loss = got.value.get("loss")![0];
  assert.ok(Number.isNaN(loss) || Math.abs(loss - want.value.get("loss")![0]) > 1e-6, "a broken plan must change the results");
});

test.run();
