// The 7B generation benchmark's parts that need no large GPU: the shared-shape weight stream, the
// decode step's byte count and bandwidth fraction, the buffer-limit refusal, and the PyTorch
// reference's refusals where it cannot run.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { benchGeneration, bufferRefusal, decodeBandwidth, decodeBytes, torchGenerate } from "../../bench/generation.ts";
import { sharedShapeWeights } from "../../bench/shared-weights.ts";
import { torchDeviceFor } from "../../bench/ceilings.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { fromDimensions } from "../../compiler/plan/model-config.ts";
import type { StreamedTensor } from "../../runtime/generate/weights.ts";
import { families } from "../../stdlib/families/index.ts";
import { families as familyFacts } from "../../stdlib/schemas/model.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("bench generation");
const family = families.baichuan7b;

function preset(size: string) {
  const planned = fromDimensions(family, familyFacts.baichuan7b.sizes[size], `the ${size} preset`);
  if (!planned.ok) throw new Error(planned.diagnostics.map((d) => d.message).join("; "));
  return planned.value.config;
}

function graphWeights(size: string): Map<string, number[]> {
  const built = buildFamilyGraph(family, preset(size), { batch: 1, seq: 2 });
  if (!built.ok) throw new Error(built.diagnostics.map((d) => d.message).join("; "));
  return new Map([...built.value.weights].map(([name, w]) => [name, [...w.shape]]));
}

test("the shared-shape stream yields every weight of the graph once, with its shape, one array per distinct shape", async () => {
  const config = preset("tiny");
  const expected = graphWeights("tiny");
  let waits = 0;
  const seen: StreamedTensor[] = [];
  for await (const t of sharedShapeWeights(family, config, 7, async () => void waits++)) {
    assert.ok(t.ok);
    if (t.ok) seen.push(t.value);
  }
  assert.equal(seen.map((t) => t.name), [...expected.keys()], "every weight, once, in graph order");
  for (const t of seen) {
    assert.equal(t.shape, expected.get(t.name), t.name);
    assert.is(t.values.length, t.shape.reduce((a, b) => a * b, 1), t.name);
  }
  assert.is(waits, seen.length - 1, "the caller is awaited between tensors");
  // tensors of one shape share one array; different shapes do not
  const arrays = new Map<string, StreamedTensor["values"]>();
  for (const t of seen) {
    const key = t.shape.join("x");
    if (arrays.has(key)) assert.ok(arrays.get(key) === t.values, `${t.name} shares the ${key} array`);
    else arrays.set(key, t.values);
  }
  assert.is(new Set(arrays.values()).size, arrays.size);
  for (const t of seen) {
    if (t.name.endsWith("layernorm.weight") || t.name === "model.norm.weight") assert.ok(t.values.every((v) => v === 1), `${t.name} is 1`);
    else {
      const std = Math.sqrt(Array.from(t.values).reduce((s, v) => s + v * v, 0) / t.values.length);
      assert.ok(Math.abs(std - 0.02) < 0.002, `${t.name}: std ${std}`);
    }
  }
  // seeded: the same seed gives the same values
  const again = sharedShapeWeights(family, config, 7);
  const firstAgain = await again.next();
  assert.ok(!firstAgain.done && firstAgain.value.ok && Array.from(firstAgain.value.value.values).every((v, i) => v === seen[0].values[i]));
});

test("a decode step's bytes: every weight in f32, the embedding table one row, plus the keys and values", () => {
  // the tiny preset by hand: Baichuan's layout (fused QKV, gated MLP, separate head)
  const config = preset("tiny");
  const { hidden: h, ffn: f, vocab: v, layers: n } = config.dims;
  const perLayer = 2 * h + 3 * h * h + h * h + 2 * f * h + h * f;
  const bytes = decodeBytes(family, config, graphWeights("tiny"), 10);
  assert.is(bytes.weightBytes, 4 * (h + n * perLayer + h + v * h));
  assert.is(bytes.kvBytes, 2 * n * h * 4 * 10);

  // the 7b preset: Baichuan-7B's published 7,000,559,616 parameters, less the embedding table but one row
  const seven = graphWeights("7b");
  assert.is([...seven.values()].reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0), 7_000_559_616);
  const sevenBytes = decodeBytes(family, preset("7b"), seven, 160);
  assert.is(sevenBytes.weightBytes, 4 * (7_000_559_616 - 64000 * 4096 + 4096));
  assert.is(sevenBytes.kvBytes, 2 * 32 * 4096 * 4 * 160);
});

test("the bandwidth fraction: bytes per token over the median step, over the copy bandwidth", () => {
  // 1.0 GB of weights + 0.1 GB of cache in 1 ms = 1100 GB/s; half of a 2200 GB/s copy
  const b = decodeBandwidth({ weightBytes: 1e9, kvBytes: 1e8 }, 100, 1e6, 2200);
  assert.equal(b, { weightBytes: 1e9, kvBytes: 1e8, cachedLength: 100, bytesPerToken: 1.1e9, gbs: 1100, copyGbs: 2200, fraction: 0.5 });
});

test("the 7B generation is refused by name when a weight exceeds the adapter's binding or buffer size", () => {
  const GiB = 2 ** 30;
  const shapes = [[64000, 4096], [4096, 4096]]; // the largest weight 0.98 GiB in f32
  assert.is(bufferRefusal({ maxStorageBufferBindingSize: 2 * GiB, maxBufferSize: 4 * GiB }, shapes), undefined);
  assert.is(
    bufferRefusal({ maxStorageBufferBindingSize: 0.5 * GiB, maxBufferSize: 4 * GiB }, shapes),
    "its largest weight is 0.98 GiB in f32, above the adapter's maxStorageBufferBindingSize of 0.50 GiB",
  );
  assert.is(
    bufferRefusal({ maxStorageBufferBindingSize: 2 * GiB, maxBufferSize: 0.25 * GiB }, shapes),
    "its largest weight is 0.98 GiB in f32, above the adapter's maxBufferSize of 0.25 GiB",
  );
});

test(
  "at full size on a CPU adapter the 7B case is not run, and says why",
  withGpu(async (gpu) => {
    if (torchDeviceFor(gpu) !== "cpu") {
      console.log(`    skipped: '${gpu.adapter.name}' is not a CPU adapter`);
      return;
    }
    const [tiny, large] = await benchGeneration(gpu, { promptTokens: 4, newTokens: 2 }, { promptTokens: 128, newTokens: 64 }, 1);
    assert.ok(tiny.measured && tiny.logitsFinite);
    assert.ok(!large.measured && large.why.endsWith("is a CPU adapter: 28.0 GB of f32 weights in host memory and minutes per token"), large.measured ? "" : large.why);
  }),
);

test("transformers' generate runs only at full size on CUDA, and a Python without it says so", () => {
  const sizes = { promptTokens: 4, newTokens: 2 };
  assert.equal(torchGenerate("cuda", undefined), { available: false, why: "run only with --size full" });
  const cpu = torchGenerate("cpu", sizes);
  assert.ok(!cpu.available && cpu.why.includes("only on an NVIDIA adapter"));
  const missing = torchGenerate("cuda", sizes);
  if (missing.available) {
    console.log("    skipped: a Python here has transformers and CUDA");
    return;
  }
  // each Python tried says what it lacked, as the script's JSON or its error
  assert.match(missing.why, /transformers' generate did not run: .*(No module named|sees no CUDA)/);
});

test.run();
