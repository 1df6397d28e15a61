// The verifier reports broken graphs as SFT4003 values; the printer's format; the interpreter's
// error value for a missing feed; SFT_DEBUG=1 prints the schedule.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, type Node } from "../../compiler/ir/node.ts";
import { printGraph } from "../../compiler/ir/print.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";

test("a node whose recorded shape disagrees with its inputs is reported", () => {
  const x = b.param("x", [3]);
  const forged: Node = { id: 1e9, op: "add", dtype: "f32", shape: [4], inputs: [x, x], attrs: {} };
  const problems = verifyGraph(graph([["y", forged]]));
  assert.is(problems.length, 1);
  assert.is(problems[0].code, "SFT4003");
  assert.match(problems[0].message, "recorded f32[4] but inputs give f32[3]");
});

test("cycles, unknown ops, missing inputs and broken op rules are reported", () => {
  const x = b.param("x", [3]);
  const a = { id: 1e9 + 1, op: "neg", dtype: "f32", shape: [3], inputs: [] as Node[], attrs: {} } as Node & { inputs: Node[] };
  const c: Node = { id: 1e9 + 2, op: "neg", dtype: "f32", shape: [3], inputs: [a], attrs: {} };
  a.inputs.push(c);
  assert.match(verifyGraph(graph([["y", c]])).map((d) => d.message).join("\n"), "cycle");
  const unknown = { id: 1e9 + 3, op: "conv2d", dtype: "f32", shape: [3], inputs: [x], attrs: {} } as unknown as Node;
  assert.match(verifyGraph(graph([["y", unknown]]))[0].message, "unknown op 'conv2d'");
  const hole = { id: 1e9 + 4, op: "exp", dtype: "f32", shape: [3], inputs: [undefined], attrs: {} } as unknown as Node;
  assert.match(verifyGraph(graph([["y", hole]]))[0].message, "an input is undefined");
  const badSlice: Node = { id: 1e9 + 5, op: "slice", dtype: "f32", shape: [2], inputs: [x], attrs: { axis: 0, start: 2, end: 4 } };
  assert.match(verifyGraph(graph([["y", badSlice]]))[0].message, "bad range [2, 4) for size 3");
});

test("building an ill-typed node is an internal error that names the op and operand types", () => {
  assert.throws(() => b.add(b.param("x", [3]), b.param("y", [4])), /add\(f32\[3\], f32\[4\]\): shapes differ/);
});

test("the printer lists nodes in order with attributes and types, then the outputs", () => {
  const x = b.param("x", [2, 3]);
  const w = b.param("w", [4, 3]);
  const y = b.matmul(x, w, { transB: true });
  const text = printGraph(graph([["y", b.sum(y, 1)]]));
  const lines = text.trim().split("\n").map((l) => l.replace(/%\d+/g, "%"));
  assert.equal(lines, [
    '% = param() {name: "x"} : f32[2,3]',
    '% = param() {name: "w"} : f32[4,3]',
    "% = matmul(%, %) {transB} : f32[2,4]",
    "% = sum(%) {axis: 1} : f32[2,1]",
    "output y = %",
  ]);
});

test("a missing feed is an SFT4002 value naming the tensor", () => {
  const r = interpret(graph([["y", b.exp(b.param("embed.weight", [3]))]]), new Map());
  assert.not.ok(r.ok);
  assert.is(r.diagnostics[0].code, "SFT4002");
  assert.match(r.diagnostics[0].message, "'embed.weight' is missing");
});

function compileWithDebug(level: string): string {
  const x = b.param("x", [2, 3]);
  const chunks: string[] = [];
  const write = process.stderr.write;
  process.env.SFT_DEBUG = level;
  process.stderr.write = ((chunk: string) => chunks.push(chunk) > 0) as typeof process.stderr.write;
  try {
    assert.ok(compileGraph(graph([["y", b.silu(x)]])).ok);
  } finally {
    process.stderr.write = write;
    delete process.env.SFT_DEBUG;
  }
  return chunks.join("");
}

test("SFT_DEBUG=1 prints the schedule and the memory plan to stderr; SFT_DEBUG=2 the graph too", () => {
  const one = compileWithDebug("1");
  assert.match(one, "#0 elementwise [silu_forward]");
  assert.match(one, "= silu(%");
  assert.match(one, "arena:");
  assert.not.match(one, "param() {name");
  assert.match(compileWithDebug("2"), 'param() {name: "x"} : f32[2,3]');
});

test.run();
