// One optimizer step (clip_grad_norm_ then AdamW) of full, LoRA and QLoRA training on each fixture
// family, on the WebGPU engine and on the float64 CPU engine, against PyTorch
// (spec/golden/make_optimizer_steps.py -> test/fixtures/optimizer-steps/<family>.json): the loss,
// the gradient norm, and per trainable tensor the updated weight and AdamW's exp_avg (which after
// one step is (1 - beta1) times the clipped gradient), at the sampled indices the fixture stores.
// QLoRA: the GPU engine stores the layers' linears as NF4 and decodes them in its matmuls; the CPU
// engine trains over their quantize-dequantize round trip; PyTorch over make_nf4.py's round trip.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { familyGraphModel } from "../../runtime/pipeline/family-model.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import { prepareTraining } from "../../runtime/pipeline/training-setup.ts";
import { IGNORE_INDEX, labelTokens, type Batch, type StateTensor, type TrainingBackend } from "../../runtime/train/backend.ts";
import { CpuBackend } from "../../runtime/train/cpu-backend.ts";
import { nf4StorageBytes, nf4WeightNames } from "../../compiler/plan/storage.ts";
import { GpuBackend } from "../../runtime/train/gpu-backend.ts";
import type { FamilyName } from "../../stdlib/families/index.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { loadFixture, type Fixture } from "../models/support.ts";
import { relativeError } from "../support/numeric.ts";
import { expectError, expectOk } from "../support/result.ts";
import { QUICKSTART, resolvedPipeline, sandbox } from "./support.ts";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "optimizer-steps");
const FAMILIES: FamilyName[] = ["baichuan7b", "baichuan13b", "moss", "chatglm", "chatglm2"];
const TOLERANCE = 1e-4;
// The update is read as (updated - initial) from f32 weights: one rounding of a weight of size
// ~0.5 (6e-8) against an update of size ~lr (1e-3) leaves ~1e-4 relative per value.
const UPDATE_TOLERANCE = 1e-3;

interface StepTensor {
  name: string;
  shape: number[];
  stride: number;
  weight: string;
  update: string;
  expAvg: string;
}

interface MethodStep {
  loss: number;
  gradNorm: number;
  clip: number;
  tensors: StepTensor[];
  adapters?: { module: string; a: string; b: string }[];
}

interface StepFixture {
  input_ids: number[][];
  labels: number[][];
  hyper: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; maxGradNorm: number };
  rank: number;
  alpha: number;
  target: string;
  methods: Record<"full" | "lora" | "qlora", MethodStep>;
}

const floats = (b64: string): Float32Array => {
  const bytes = Buffer.from(b64, "base64");
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

/** The fixture's rows as the loop's batch: labels move one place left (next-token labels). */
function batchOf(f: StepFixture): Batch {
  const rows = f.input_ids.length;
  const seq = f.input_ids[0].length;
  const labels = f.labels.flatMap((row) => [...row.slice(1), IGNORE_INDEX]);
  return { rows, seq, ids: Int32Array.from(f.input_ids.flat()), labels: Int32Array.from(labels) };
}

/** The base weights plus the fixture's initial adapters (LoRA methods). */
function initialWeights(fixture: Fixture, step: MethodStep): Map<string, Float64Array> {
  const weights = new Map(fixture.weights);
  for (const a of step.adapters ?? []) {
    weights.set(`${a.module}.lora_A.weight`, Float64Array.from(floats(a.a)));
    weights.set(`${a.module}.lora_B.weight`, Float64Array.from(floats(a.b)));
  }
  return weights;
}

/** One step as the training loop takes it: token-mean gradient, global-norm clipping, AdamW. */
async function oneStep(backend: TrainingBackend, f: StepFixture, batch: Batch): Promise<{ loss: number; gradNorm: number; state: Map<string, StateTensor> }> {
  const h = f.hyper;
  await backend.zeroGradients();
  const { lossSum, tokens } = await backend.forwardBackward(batch, 1 / labelTokens(batch));
  const gradNorm = await backend.gradientNorm();
  const clip = Math.min(1, h.maxGradNorm / (gradNorm + 1e-6));
  await backend.applyAdamW({ step: 1, lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, gradScale: clip });
  const state = new Map((await backend.saveState()).map((t) => [t.name, t]));
  return { loss: lossSum / tokens, gradNorm, state };
}

const sample = (data: ArrayLike<number>, stride: number) => Float64Array.from({ length: Math.ceil(data.length / stride) }, (_, i) => data[i * stride]);

/** Loss, grad norm, and every trainable tensor's weight, update and exp_avg against the reference. */
function compare(label: string, got: Awaited<ReturnType<typeof oneStep>>, initial: ReadonlyMap<string, Float64Array>, ref: MethodStep): void {
  const worst = { weight: 0, update: 0, expAvg: 0 };
  const lossError = Math.abs(got.loss - ref.loss) / ref.loss;
  const normError = Math.abs(got.gradNorm - ref.gradNorm) / ref.gradNorm;
  assert.ok(lossError < TOLERANCE, `${label}: loss ${got.loss} vs ${ref.loss}`);
  assert.ok(normError < TOLERANCE, `${label}: grad norm ${got.gradNorm} vs ${ref.gradNorm}`);
  const trained = [...got.state.keys()].filter((n) => !n.startsWith("adamw."));
  assert.equal(trained.sort(), ref.tensors.map((t) => t.name).sort(), `${label}: trainable tensors`);
  for (const t of ref.tensors) {
    const updated = sample(got.state.get(t.name)!.data, t.stride);
    const before = sample(initial.get(t.name)!, t.stride);
    const weight = relativeError(updated, Float64Array.from(floats(t.weight)));
    const update = relativeError(updated.map((w, i) => w - before[i]), Float64Array.from(floats(t.update)));
    const expAvg = relativeError(sample(got.state.get(`adamw.exp_avg.${t.name}`)!.data, t.stride), Float64Array.from(floats(t.expAvg)));
    assert.ok(weight < TOLERANCE, `${label}: updated ${t.name} relative error ${weight}`);
    assert.ok(update < UPDATE_TOLERANCE, `${label}: update of ${t.name} relative error ${update}`);
    assert.ok(expAvg < TOLERANCE, `${label}: exp_avg of ${t.name} relative error ${expAvg}`);
    worst.weight = Math.max(worst.weight, weight);
    worst.update = Math.max(worst.update, update);
    worst.expAvg = Math.max(worst.expAvg, expAvg);
  }
  console.log(
    `    ${label}: loss ${lossError.toExponential(1)}, grad norm ${normError.toExponential(1)}, ` +
      `weights ≤ ${worst.weight.toExponential(1)}, updates ≤ ${worst.update.toExponential(1)}, exp_avg ≤ ${worst.expAvg.toExponential(1)} (${ref.tensors.length} tensors, clip ${ref.clip.toFixed(3)})`,
  );
}

type Engine = "gpu" | "cpu";

type Kind = "full" | "lora" | "qlora";

/** The engine holds the quantized weights as NF4 only, in the bytes the plan counts, and its matmuls decode them. */
function checkNf4Storage(backend: GpuBackend, sizes: number[]): void {
  const planned = sizes.reduce((n, size) => n + nf4StorageBytes(size, { blockSize: 64, doubleQuant: true, doubleQuantBlockSize: 256 }), 0);
  const tables = (16 + 256) * 4;
  const held = backend.nf4Tensors().reduce((n, t) => n + t.byteSize, 0);
  assert.is(held, planned + tables, "NF4 bytes on the device: the plan's count plus the lookup tables");
  const decoding = backend.compiledPrograms()[0].executor.kernelKeys().filter((k) => k.includes("_nf4")).length;
  assert.ok(decoding >= sizes.length, `${decoding} NF4 matmul dispatches for ${sizes.length} NF4 weights`);
  console.log(`      ${sizes.length} NF4 weights: ${held - tables} bytes (as planned) + ${tables} bytes of tables; ${decoding} NF4 matmul dispatches per step`);
}

async function checkStep(name: FamilyName, kind: Kind, engine: Engine, gpu?: GpuDevice): Promise<void> {
  const f: StepFixture = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8"));
  const fixture = await loadFixture(name);
  const ref = f.methods[kind];
  const method: TrainingMethod = kind === "full" ? { kind } : { kind: "lora", rank: f.rank, alpha: f.alpha, targets: [f.target] };
  const model = expectOk(familyGraphModel(fixture.family, fixture.config, method, { quantized: kind === "qlora" }));
  assert.is(model.name, `${name} ${kind}`, "a QLoRA model is named by its pipeline method, not its graph's");
  const weights = initialWeights(fixture, ref);
  const nf4 = nf4WeightNames(fixture.family, fixture.config, kind);
  const backend = gpu ? expectOk(GpuBackend.create(gpu, model, weights, { nf4 })) : expectOk(CpuBackend.create(model, nf4RoundTrip(weights, nf4)));
  try {
    compare(`${name} ${kind} (${engine})`, await oneStep(backend, f, batchOf(f)), weights, ref);
    if (backend instanceof GpuBackend && nf4.length > 0) checkNf4Storage(backend, nf4.map((n) => weights.get(n)!.length));
  } finally {
    if (backend instanceof GpuBackend) backend.destroy();
  }
}

for (const name of FAMILIES) {
  for (const kind of ["full", "lora", "qlora"] as const) {
    test(`${name} ${kind}: one GPU optimizer step matches PyTorch (weights, exp_avg, loss, grad norm within 1e-4)`, withGpu((gpu) => checkStep(name, kind, "gpu", gpu)));
    test(`${name} ${kind}: one float64 CPU optimizer step matches PyTorch`, () => checkStep(name, kind, "cpu"));
  }
}

test("a QLoRA layout the NF4 matmul does not decode is refused by name before loading", async () => {
  const { file } = sandbox(QUICKSTART);
  // the quickstart as QLoRA (whose base weights are quantized from the model's own dtype)
  writeFileSync(file, readFileSync(file, "utf8").replace("method lora {", "method qlora {").replace(/^\s*dtype\s*=\s*f32\s*$/m, ""));
  const pipeline = resolvedPipeline(file, ["method.block_size=128"]);
  const d = expectError(await prepareTraining(pipeline));
  assert.is(d.code, "SFT5901");
  assert.match(d.message, "method.block_size");
});

test.run();
