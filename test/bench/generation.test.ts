// The 7B generation benchmark's parts that need no large GPU: the shared-shape weight stream, the
// decode step's byte count (f32 and bf16 storage) and bandwidth fraction, the report's ratios, the buffer-limit refusal, and the PyTorch
// reference's refusals where it cannot run.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { benchGeneration, bufferRefusal, decodeBandwidth, decodeBytes, torchGenerate } from "../../bench/generation.ts";
import { SEVEN_B } from "../../bench/sizes.ts";
import { generationSection } from "../../bench/report.ts";
import { sharedShapeWeights } from "../../bench/shared-weights.ts";
import { torchDeviceFor } from "../../bench/ceilings.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { fromDimensions } from "../../compiler/plan/model-config.ts";
import { generationWeightDtypes } from "../../compiler/plan/storage.ts";
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

test("a decode step's bytes: every weight in its storage dtype, the embedding table one row, plus the keys and values", () => {
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
  // bf16 linears, table and head: two bytes each; the norms (two per layer and the final one) stay
  // f32; the f16 cache two bytes a value
  const narrow = decodeBytes(family, preset("7b"), seven, 160, generationWeightDtypes(family, preset("7b"), "bf16"), "f16");
  const norms = (2 * 32 + 1) * 4096;
  assert.is(narrow.weightBytes, 2 * (7_000_559_616 - 64000 * 4096 + 4096 - norms) + 4 * norms);
  assert.is(narrow.kvBytes, sevenBytes.kvBytes / 2);
});

test("the bandwidth fraction: bytes per token over the median step, over the copy bandwidth", () => {
  // 1.0 GB of weights + 0.1 GB of cache in 1 ms = 1100 GB/s; half of a 2200 GB/s copy
  const b = decodeBandwidth({ weightBytes: 1e9, kvBytes: 1e8 }, 100, 1e6, 2200);
  assert.equal(b, { weightBytes: 1e9, kvBytes: 1e8, cachedLength: 100, bytesPerToken: 1.1e9, gbs: 1100, copyGbs: 2200, fraction: 0.5 });
});

test("the 7B generation is refused by name when a weight exceeds the adapter's binding or buffer size in its storage dtype", () => {
  const GiB = 2 ** 30;
  const shapes = new Map([["table", [64000, 4096]], ["linear", [4096, 4096]]]); // the largest weight 0.98 GiB in f32
  assert.is(bufferRefusal({ maxStorageBufferBindingSize: 2 * GiB, maxBufferSize: 4 * GiB }, shapes), undefined);
  assert.is(
    bufferRefusal({ maxStorageBufferBindingSize: 0.5 * GiB, maxBufferSize: 4 * GiB }, shapes),
    "its largest weight is 0.98 GiB in f32, above the adapter's maxStorageBufferBindingSize of 0.50 GiB",
  );
  assert.is(
    bufferRefusal({ maxStorageBufferBindingSize: 2 * GiB, maxBufferSize: 0.25 * GiB }, shapes),
    "its largest weight is 0.98 GiB in f32, above the adapter's maxBufferSize of 0.25 GiB",
  );
  const bf16 = new Map([["table", "bf16" as const]]);
  assert.is(bufferRefusal({ maxStorageBufferBindingSize: 0.5 * GiB, maxBufferSize: 4 * GiB }, shapes, bf16), undefined, "the table is 0.49 GiB in bf16");
  assert.is(
    bufferRefusal({ maxStorageBufferBindingSize: 0.25 * GiB, maxBufferSize: 4 * GiB }, shapes, bf16),
    "its largest weight is 0.49 GiB in bf16, above the adapter's maxStorageBufferBindingSize of 0.25 GiB",
  );
});

test(
  "at full size on a CPU adapter the 7B case is not run, and says why",
  withGpu(async (gpu) => {
    if (torchDeviceFor(gpu) !== "cpu") {
      console.log(`    skipped: '${gpu.adapter.name}' is not a CPU adapter`);
      return;
    }
    const [tiny, f32, bf16] = await benchGeneration(gpu, { promptTokens: 4, newTokens: 2 }, { promptTokens: 128, newTokens: 64 }, 1);
    assert.ok(tiny.measured && tiny.logitsFinite);
    assert.ok(!f32.measured && f32.why.endsWith("is a CPU adapter: 28.0 GB of weights in host memory and minutes per token"), f32.measured ? "" : f32.why);
    assert.ok(!bf16.measured && bf16.why.endsWith("is a CPU adapter: 14.0 GB of weights in host memory and minutes per token"), bf16.measured ? "" : bf16.why);
    assert.match(bf16.model, "(bf16 linears, table and head, f16 KV cache on the device)");
  }),
);

test("the report divides each 7B decode (f32, bf16) by transformers' generate in each dtype, and its bytes by the copy bandwidth", () => {
  const row = (weightDtype: "f32" | "bf16", decodeMedianNs: number, weightBytes: number) => ({
    measured: true as const,
    model: `${SEVEN_B}: ... (${weightDtype})`,
    parameters: 7e9,
    promptTokens: 128,
    newTokens: 64,
    backend: "GPU",
    weightDtype,
    prefillNs: 1e8,
    prefillTokensPerSecond: 1280,
    decodeSamplesNs: [decodeMedianNs],
    decodeMedianNs,
    decodeTokensPerSecond: 1e9 / decodeMedianNs,
    logitsFinite: true,
    bandwidth: decodeBandwidth({ weightBytes, kvBytes: 0 }, 160, decodeMedianNs, 4000),
    launchesPerStep: 419,
  });
  const torchRow = (dtype: string, decodeTokensPerSecond: number) => ({ dtype, ok: true as const, parameters: 7e9, attention: "sdpa", newTokensNs: 0, oneTokenNs: 0, prefillNs: 5e7, decodeTokensPerSecond, peakMemoryBytes: 0 });
  const markdown = generationSection({
    // 25 and 50 tokens/s; 28 GB and 14 GB a token: 700 GB/s each
    generation: [row("f32", 40e6, 28e9), row("bf16", 20e6, 14e9)],
    generationReference: { available: true, python: "python3", torch: "2", transformers: "4", cuda: "12", device: "H", promptTokens: 128, newTokens: 64, reps: 3, rows: [torchRow("f32", 50), torchRow("bf16", 100)] },
  });
  const cells = (line: string) => line.split("|").slice(1, -1).map((c) => c.trim());
  const lines = markdown.split("\n");
  const lineOf = (start: string) => cells(lines.find((l) => l.startsWith(start))!);
  assert.equal(lineOf("| engine |"), ["engine", "dtype", "prefill ms", "decode tokens/s", "sftc / PyTorch f32", "sftc / PyTorch bf16"]);
  assert.equal(lineOf("| sftc (WebGPU) | f32 |").slice(3), ["25.0", "0.500", "0.250"]);
  assert.equal(lineOf("| sftc (WebGPU) | bf16 |").slice(3), ["50.0", "1.000", "0.500"]);
  assert.equal(lineOf("| f32 |").slice(1, 8), ["28.000", "0.000", "28.000", "40.0", "700.0", "4000.0", "17.5%"]);
  assert.equal(lineOf("| bf16 |").slice(1, 8), ["14.000", "0.000", "14.000", "20.0", "700.0", "4000.0", "17.5%"]);
});

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
