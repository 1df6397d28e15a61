// A run submits its recorded work in pieces of SUBMIT_EVERY dispatches (runtime/execute/executor.ts),
// so the GPU starts on a step's first launches while the host records the rest: a schedule of
// more launches than that is submitted once per piece, and computes what the float64
// interpreter does.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type Node } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor, SUBMIT_EVERY } from "../../runtime/execute/executor.ts";
import { Random } from "../../runtime/random.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";

const [ROWS, COLS] = [3, 32];

// norms in a chain, one launch and one dispatch each: a last piece of 5, and pieces that fill exactly
for (const norms of [2 * SUBMIT_EVERY + 5, 2 * SUBMIT_EVERY]) {
  test(
    `a run of ${norms} dispatches is submitted once per piece of SUBMIT_EVERY, none empty, and equals the interpreter`,
    withGpu(async (gpu) => {
      const random = new Random(5);
      let x: Node = b.input("x", [ROWS, COLS]);
      const feeds = new Map([["x", Float64Array.from(random.normalArray(ROWS * COLS))]]);
      for (let i = 0; i < norms; i++) {
        x = b.rmsNorm(x, b.input(`w${i}`, [COLS]), 1e-6);
        feeds.set(`w${i}`, Float64Array.from({ length: COLS }, () => 0.5 + random.uniform()));
      }
      const g = graph([["y", x]]);
      const { schedule } = expectOk(compileGraph(g));
      const executor = expectOk(GraphExecutor.create(gpu, schedule));
      const submit = gpu.queue.submit;
      let submits = 0;
      gpu.queue.submit = function (this: GPUQueue, buffers: Iterable<GPUCommandBuffer>) {
        submits++;
        return submit.call(this, buffers);
      };
      try {
        for (const [name, values] of feeds) executor.write(name, values);
        expectOk(await executor.run());
      } finally {
        gpu.queue.submit = submit;
      }
      const dispatches = executor.stats().perLaunch.reduce((n, d) => n + d, 0);
      assert.is(dispatches, norms);
      assert.is(submits, Math.ceil(dispatches / SUBMIT_EVERY), `${dispatches} dispatches in ${submits} submissions`);
      assertClose(await executor.read("y"), expectOk(interpret(g, feeds)).get("y")!, 1e-5, "the pieces' result");
      executor.destroy();
    }),
  );
}

test.run();
