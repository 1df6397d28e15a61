// Generated kernels (fused elementwise expressions and reductions over strided views) run on
// the GPU and equal the float64 interpreter on the same graph.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as ir from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, numel, type Graph, type Node } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import { Random } from "../../runtime/random.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";

interface Case {
  name: string;
  build: () => { g: Graph; leaves: Node[] };
  /** Kernels the schedule must have (all generated). */
  kernels: number;
}

const leaf = (name: string, shape: number[]) => ir.input(name, shape);

const cases: Case[] = [
  {
    name: "a chain of unary and binary ops is one kernel",
    kernels: 1,
    build: () => {
      const x = leaf("x", [3, 5]);
      const y = leaf("y", [3, 5]);
      const out = ir.add(ir.mul(ir.silu(x), ir.exp(ir.neg(ir.tanh(y)))), ir.div(ir.sigmoid(x), ir.add(ir.sqrt(ir.mul(y, y)), ir.fill(1.5, y))));
      return { g: graph([["out", out]]), leaves: [x, y] };
    },
  },
  {
    name: "broadcast, transposed and sliced inputs are read in place",
    kernels: 1,
    build: () => {
      const bias = leaf("bias", [7]);
      const m = leaf("m", [7, 4]);
      const wide = leaf("wide", [4, 9]);
      const t = ir.permute(m, [1, 0]); // (4, 7) strided
      const s = ir.slice(wide, 1, 2, 9); // (4, 7) offset
      const out = ir.maximum(ir.add(t, ir.expandTo(bias, [4, 7])), ir.geluTanh(s));
      return { g: graph([["out", out]]), leaves: [bias, m, wide] };
    },
  },
  {
    name: "where, greater and rsqrt",
    kernels: 1,
    build: () => {
      const a = leaf("a", [2, 3, 4]);
      const b = leaf("b", [2, 3, 4]);
      const out = ir.where(ir.greater(a, b), ir.rsqrt(ir.add(ir.mul(a, a), ir.fill(0.1, a))), ir.log(ir.add(ir.mul(b, b), ir.fill(1, b))));
      return { g: graph([["out", out]]), leaves: [a, b] };
    },
  },
  {
    name: "sum, mean and max over each axis with a fused prologue",
    kernels: 6,
    build: () => {
      const x = leaf("x", [4, 6, 5]);
      const sq = ir.mul(x, x);
      const outs: [string, Node][] = [
        ["sum0", ir.sum(sq, 0)],
        ["mean1", ir.mean(ir.exp(x), 1)],
        ["max2", ir.reduceMax(x, 2)],
        ["sum2", ir.sum(ir.silu(x), 2)],
        ["mean0", ir.mean(x, 0)],
        ["max1", ir.reduceMax(ir.neg(x), 1)],
      ];
      return { g: graph(outs), leaves: [x] };
    },
  },
  {
    name: "concat along an inner axis of fused expressions",
    kernels: 1,
    build: () => {
      const a = leaf("a", [3, 2]);
      const b = leaf("b", [3, 5]);
      const out = ir.concat([ir.exp(a), ir.mul(b, ir.fill(2, b)), ir.neg(a)], 1);
      return { g: graph([["out", out]]), leaves: [a, b] };
    },
  },
];

for (const c of cases) {
  test(
    `generated kernels: ${c.name}`,
    withGpu(async (gpu) => {
      const { g, leaves } = c.build();
      const compiled = expectOk(compileGraph(g));
      assert.is(compiled.schedule.launches.length, c.kernels, compiled.schedule.launches.map((l) => l.kernel).join(", "));
      assert.ok(compiled.schedule.launches.every((l) => l.kernel === "elementwise" || l.kernel === "reduce"));
      const rng = new Random(5);
      const feeds = new Map(leaves.map((n) => [n.attrs.name!, Float64Array.from(rng.normalArray(numel(n.shape)))] as const));
      const reference = expectOk(interpret(g, feeds));
      const ex = expectOk(GraphExecutor.create(gpu, compiled.schedule));
      for (const [name, values] of feeds) ex.write(name, values);
      await ex.run();
      for (const name of g.outputs.keys()) assertClose(await ex.read(name), reference.get(name)!, 1e-5, `${c.name}: ${name}`);
      ex.destroy();
    }),
  );
}

test(
  "the same expression at new sizes reuses the compiled kernel",
  withGpu(async (gpu) => {
    const keys = [5, 9].map((n) => {
      const x = leaf("x", [n, 3]);
      const compiled = expectOk(compileGraph(graph([["out", ir.mul(ir.exp(x), x)]])));
      return expectOk(GraphExecutor.create(gpu, compiled.schedule));
    });
    const [a, b] = keys.map((ex) => ex.kernelKeys());
    assert.equal(a, b);
    assert.is(a.length, 1);
    keys.forEach((ex) => ex.destroy());
  }),
);

test.run();
