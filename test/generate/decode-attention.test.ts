// An attention launch with one query row per sequence (a generation step against cached keys)
// runs the split-K decode kernels, not the flash forward kernel, and gives the interpreter's
// output: key ranges with GQA and ALiBi, and the GLM prefix mask, with caches of one split and
// of several.
import { test } from "uvu";
import * as assert from "uvu/assert";
import * as ir from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, numel, type AttentionAttrs } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import { Random } from "../../runtime/random.ts";
import { DECODE_SPLIT_KEYS } from "../../stdlib/kernels/attention-decode.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";

const cases: { name: string; keys: number; attrs: Partial<AttentionAttrs>; masks: Record<string, number[]> }[] = [
  { name: "key ranges, GQA, ALiBi", keys: 9, attrs: { causal: true, padding: true, alibi: true }, masks: { keyRange: [2, 9, 0, 6] } },
  { name: "GLM prefix", keys: 7, attrs: { causal: true, prefix: true }, masks: { prefixLen: [3, 7] } },
  { name: "key ranges over several splits", keys: 3 * DECODE_SPLIT_KEYS + 40, attrs: { causal: true, padding: true }, masks: { keyRange: [5, 3 * DECODE_SPLIT_KEYS + 40, 0, 3 * DECODE_SPLIT_KEYS + 1] } },
];

for (const c of cases) {
  test(
    `one query per sequence runs the decode kernels: ${c.name}`,
    withGpu(async (gpu) => {
      const [B, S, H, KV, D] = [2, c.keys, 4, 2, 32];
      const attrs: AttentionAttrs = { scale: 1 / Math.sqrt(D), causal: false, prefix: false, padding: false, segments: false, alibi: false, ...c.attrs };
      const q = ir.param("q", [B, 1, H, D]);
      const k = ir.param("k", [B, S, KV, D]);
      const v = ir.param("v", [B, S, KV, D]);
      const masks = [...(attrs.prefix ? [ir.input("prefixLen", [B], "i32")] : []), ...(attrs.padding ? [ir.input("keyRange", [B, 2], "i32")] : [])];
      const g = graph([["out", ir.attention(q, k, v, attrs, masks)]]);
      const rng = new Random(11);
      const feeds = new Map<string, Float64Array>();
      for (const p of [q, k, v]) feeds.set(p.attrs.name!, Float64Array.from(rng.normalArray(numel(p.shape), 1)));
      for (const [name, values] of Object.entries(c.masks)) feeds.set(name, Float64Array.from(values));

      const ex = expectOk(GraphExecutor.create(gpu, expectOk(compileGraph(g)).schedule));
      try {
        const keys = ex.kernelKeys();
        assert.ok(keys.some((key) => key.startsWith("attention_decode_split[")), `decode split dispatched: ${keys.join(" ")}`);
        assert.ok(keys.some((key) => key.startsWith("attention_decode_combine[")), `decode combine dispatched: ${keys.join(" ")}`);
        assert.not.ok(keys.some((key) => key.startsWith("attention_forward")), `no forward kernel: ${keys.join(" ")}`);
        for (const [name, values] of feeds) ex.write(name, values);
        expectOk(await ex.run());
        assertClose(await ex.read("out"), expectOk(interpret(g, feeds)).get("out")!, 1e-5, `decode ${c.name}`);
        assert.equal((await gpu.takeErrors()).map((e) => e.message), [], "GPU errors");
      } finally {
        ex.destroy();
      }
    }),
  );
}

test.run();
