// The step plan's figures on tiny models, each recomputed here from the family declaration
// (tensor shapes x bytes), independently of the graph: base weights by dtype and NF4, adapters,
// master weights, AdamW state, accumulators, the head that modules_to_save trains; checkpointing lowers activations; planning from 2
// and 3 layers extrapolates the persistent, evaluation and generation figures exactly; a prompt's
// step does not hold every layer's keys and values; a 7B QLoRA step at full scale.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { fromDimensions } from "../../compiler/plan/model-config.ts";
import type { PlanSettings } from "../../compiler/plan/settings.ts";
import { peakPhase, planStep, probeEvaluation, probeGeneration } from "../../compiler/plan/step-plan.ts";
import { kvCacheDtype } from "../../compiler/plan/storage.ts";
import { expandTemplate, loraModulesFor, type Family } from "../../stdlib/families/family.ts";
import { families, familyNames } from "../../stdlib/families/index.ts";
import { families as facts } from "../../stdlib/schemas/model.ts";
import { expectOk } from "../support/result.ts";

const tinyDims = (name: string, layers: number) => ({ ...facts[name].sizes.tiny, num_layers: layers });
const model = (name: string, layers: number) => expectOk(fromDimensions(families[name as keyof typeof families], tinyDims(name, layers), "test"));

const base: PlanSettings = {
  dtype: "f32",
  method: { kind: "full", freezeEmbeddings: false, freezeLayers: 0 },
  batch: 2,
  seq: 16,
  gradientCheckpointing: false,
  gradAccum: 1,
  optimizer: "adamw",
  evaluation: null,
  generation: null,
};
const lora = (kind: "lora" | "qlora", targets: string[], rank = 4, alpha = 8, modulesToSave: ("embeddings" | "lm_head")[] = []): PlanSettings["method"] => ({
  kind,
  rank,
  alpha,
  targets,
  bias: "none",
  modulesToSave,
  nf4: kind === "qlora" ? { blockSize: 64, doubleQuant: true, doubleQuantBlockSize: 256 } : undefined,
});

// ---- independent counts from the declarations ----
const buffer = (bytes: number) => Math.max(16, Math.ceil(bytes / 16) * 16); // one GPU buffer, 16-byte rounded
const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function declaredTensors(family: Family, dims: ReturnType<typeof model>["config"]["dims"], tied: boolean) {
  return family.tensors
    .filter((t) => !(t.optional && tied))
    .flatMap((t) => expandTemplate(t.name, dims.layers).map((name) => ({ name, role: t.role, shape: t.shape(dims) })));
}

function nf4Bytes(n: number): number {
  const blocks = Math.ceil(n / 64);
  return buffer(Math.ceil(n / 2)) + buffer(blocks) + buffer(4 * Math.ceil(blocks / 256)) + buffer(4);
}

const quantized = (role: string) => /^(attn\.(qkv|out)|mlp\.(gate|up|gate_up|down))\.weight$/.test(role);

for (const name of familyNames) {
  test(`${name}: weights, adapters, master weights, optimizer state and accumulators from the declared shapes`, () => {
    const m = model(name, 2);
    const family = m.family;
    const tensors = declaredTensors(family, m.config.dims, m.config.tiedHead);
    const elements = tensors.reduce((n, t) => n + product(t.shape), 0);

    // full fine-tuning of f16 weights: f16 storage, f32 masters, m and v, accumulators (grad_accum 2)
    const full = expectOk(planStep(family, m.config, { ...base, dtype: "f16", gradAccum: 2 })).training;
    const f16 = tensors.reduce((n, t) => n + buffer(2 * product(t.shape)), 0);
    const f32 = tensors.reduce((n, t) => n + buffer(4 * product(t.shape)), 0);
    assert.is(full.weights, f16, "f16 base weights");
    assert.is(full.masterWeights, f32, "f32 master copies of every weight");
    assert.is(full.optimizerState, 2 * f32, "AdamW m and v");
    assert.is(full.gradientAccumulators, f32, "f32 accumulators with grad_accum 2");
    assert.is(full.adapters, 0);
    const plan = expectOk(planStep(family, m.config, { ...base, dtype: "f16", gradAccum: 2 }));
    assert.is(plan.parameters.total, elements);
    assert.is(plan.parameters.trainable, elements);

    // LoRA over every linear: f32 adapters (rank x in, out x rank), only they train
    const targeted = new Set(loraModulesFor(family, "all").map((x) => x.native));
    const adapted = tensors.filter((t) => t.name.endsWith(".weight") && targeted.has(t.name.split(".").at(-2)!));
    const adapterBytes = adapted.reduce((n, t) => n + buffer(4 * 4 * t.shape[1]) + buffer(4 * t.shape[0] * 4), 0);
    const l = expectOk(planStep(family, m.config, { ...base, dtype: "bf16", method: lora("lora", ["all"]) })).training;
    assert.is(l.adapters, adapterBytes, "adapters");
    assert.is(l.weights, tensors.reduce((n, t) => n + buffer(2 * product(t.shape)), 0), "bf16 base weights");
    assert.is(l.masterWeights, 0, "no base weight trains");
    assert.is(l.optimizerState, 2 * adapterBytes);
    assert.is(l.gradientAccumulators, 0, "grad_accum 1 needs no accumulator");

    // modules_to_save = [lm_head]: the head's weight and its bias (MOSS has one) train in full
    // beside the adapters, as the engine and the PEFT export train them; a tied head has none
    const adaptersOnly = expectOk(planStep(family, m.config, { ...base, dtype: "bf16", method: lora("lora", ["all"]) }));
    const withHead = expectOk(planStep(family, m.config, { ...base, dtype: "bf16", method: lora("lora", ["all"], 4, 8, ["lm_head"]) }));
    const head = tensors.filter((t) => t.role === "head.weight" || t.role === "head.bias");
    assert.is(withHead.parameters.trainable - adaptersOnly.parameters.trainable, head.reduce((n, t) => n + product(t.shape), 0), "the head's tensors train");

    // QLoRA: the blocks' linears in NF4, the rest in the model dtype
    const q = expectOk(planStep(family, m.config, { ...base, dtype: "bf16", method: lora("qlora", ["all"]) })).training;
    const qBytes = tensors.reduce((n, t) => n + (quantized(t.role) ? nf4Bytes(product(t.shape)) : buffer(2 * product(t.shape))), 0);
    assert.is(q.weights, qBytes, "NF4 linears");
    assert.is(q.adapters, adapterBytes);

    // SGD keeps no state
    assert.is(expectOk(planStep(family, m.config, { ...base, optimizer: "sgd" })).training.optimizerState, 0);
  });

  test(`${name}: gradient checkpointing lowers the activation peak and the step's peak`, () => {
    const m = model(name, 4);
    const settings = { ...base, method: lora("lora", ["all"]) };
    const plain = expectOk(planStep(m.family, m.config, settings)).training;
    const checkpointed = expectOk(planStep(m.family, m.config, { ...settings, gradientCheckpointing: true })).training;
    console.log(`    ${name}: activations ${formatBytes(plain.activations)} -> ${formatBytes(checkpointed.activations)} checkpointed; peak ${formatBytes(plain.peak)} -> ${formatBytes(checkpointed.peak)}`);
    assert.ok(checkpointed.activations < plain.activations);
    assert.ok(checkpointed.peak < plain.peak);
    assert.is(checkpointed.weights + checkpointed.adapters + checkpointed.optimizerState, plain.weights + plain.adapters + plain.optimizerState);
  });
}

test("planning from 2 and 3 layers gives the persistent, evaluation and generation figures of a 6-layer model exactly", () => {
  for (const name of familyNames) {
    const m = model(name, 6);
    for (const gradientCheckpointing of [false, true]) {
      const settings: PlanSettings = { ...base, dtype: "f16", method: lora("qlora", ["all"]), gradientCheckpointing, gradAccum: 2, evaluation: { batch: 3 }, generation: { strategy: "beam", sequences: 2, maxNewTokens: 8 } };
      const exact = expectOk(planStep(m.family, m.config, settings));
      const estimate = expectOk(planStep(m.family, m.config, settings, { estimate: true }));
      assert.is(estimate.depth.planned, "2 and 3 layers, extrapolated");
      assert.is(exact.depth.planned, "every layer");
      for (const key of ["weights", "adapters", "masterWeights", "optimizerState", "gradientAccumulators", "inputs", "gradients", "uniforms"] as const) {
        assert.is(estimate.training[key], exact.training[key], `${name} ${key}`);
      }
      // both plans extrapolate the forward-only figures; against every layer compiled:
      const everyLayer = peakPhase(expectOk(probeGeneration(m.family, m.config, settings)), exact.training.adapters);
      for (const plan of [exact, estimate]) assert.equal(plan.generation, everyLayer, `${name} generation`);
      const evaluated = expectOk(probeEvaluation(m.family, m.config, settings));
      for (const plan of [exact, estimate]) assert.equal({ ...plan.evaluation!, peak: undefined }, { ...evaluated, peak: undefined }, `${name} evaluation`);
      assert.equal(estimate.parameters, exact.parameters);
      assert.is(estimate.launches, exact.launches);
      // the training arena is not linear in depth in general; print how far the estimate is here
      const arena = (estimate.training.arena - exact.training.arena) / exact.training.arena;
      if (gradientCheckpointing) console.log(`    ${name}, 6 layers: training arena estimated ${(100 * arena).toFixed(2)}% from planning every layer`);
    }
  }
});

test("a prompt's step holds one layer's new keys and values at a time (each is copied into the cache as it is written): a layer adds less than its keys and values to the step's arena", () => {
  for (const name of familyNames) {
    const seq = 48;
    const settings: PlanSettings = { ...base, seq, generation: { strategy: "greedy", sequences: 1, maxNewTokens: 8 } };
    const [two, three] = [2, 3].map((layers) => {
      const m = model(name, layers);
      return expectOk(probeGeneration(m.family, m.config, settings)).phases.prompt!.arena;
    });
    const d = model(name, 2).config.dims;
    // the concatenations' f32 keys and values of one layer: the placeholder key and the prompt's
    const keysAndValues = 2 * 4 * (1 + seq) * d.kvHeads * d.headDim;
    console.log(`    ${name}: a layer adds ${three - two} bytes to the prompt's arena; its keys and values are ${keysAndValues}`);
    assert.ok(three - two < keysAndValues, name);
  }
});

test("the launches' scratch of training, evaluation and generation does not grow with depth: every layer's RoPE launches share one table and one copy of the positions, its attention launches one copy of the mask words, and the workspace is shared", () => {
  for (const name of familyNames) {
    const settings: PlanSettings = { ...base, method: lora("lora", ["all"]), gradientCheckpointing: true, evaluation: { batch: 2 }, generation: { strategy: "greedy", sequences: 1, maxNewTokens: 8 } };
    // the plan's figures; test/plan/launch-scratch.test.ts holds them equal to what the executor allocates
    const [two, three] = [2, 3].map((layers) => {
      const m = model(name, layers);
      const p = expectOk(planStep(m.family, m.config, settings));
      return [p.training.scratch, p.evaluation!.scratch, p.generation!.scratch];
    });
    assert.equal(three, two, name);
  }
});

test("generation: the KV cache holds keys and values of every layer for max_length + max_new_tokens tokens per beam, in buckets; the plan takes the phase that holds the most", () => {
  const m = model("chatglm2", 2);
  const d = m.config.dims;
  const plan = expectOk(planStep(m.family, m.config, { ...base, generation: { strategy: "beam", sequences: 3, maxNewTokens: 20 } }));
  const g = plan.generation!;
  assert.is(g.contextTokens, base.seq + 20);
  // 36 positions and the next key fit one 64-position bucket; a beam reorder gathers the rows
  // through a scratch buffer of one layer's keys
  assert.is(g.phase, "beam reorder");
  const keys = (rows: number, positions: number) => buffer(4 * rows * positions * d.kvHeads * d.headDim);
  assert.is(g.kvCache, (2 * d.layers + 1) * keys(3, 64));
  assert.is(g.cacheDtype, "f32");
  // a 16-bit model's cache holds f16: half the bytes
  const half = expectOk(planStep(m.family, m.config, { ...base, dtype: "bf16", generation: { strategy: "beam", sequences: 3, maxNewTokens: 20 } })).generation!;
  assert.is(half.cacheDtype, "f16");
  assert.is(half.kvCache, (2 * d.layers + 1) * buffer(2 * 3 * 64 * d.kvHeads * d.headDim));
  // f32 where a position's keys are an odd number of f16 values (a row copy must be whole words), or without shader-f16
  assert.is(kvCacheDtype("bf16", { kvHeads: 3, headDim: 5 }), "f32");
  assert.is(kvCacheDtype("bf16", { kvHeads: 3, headDim: 6 }), "f16");
  assert.is(kvCacheDtype("bf16", { kvHeads: 3, headDim: 6 }, false), "f32");
  assert.is(kvCacheDtype("f32", { kvHeads: 3, headDim: 6 }), "f32");
  // one sequence: a 16-token prompt's bucket (64 positions) holds 100 more only after a move to
  // 128, which holds the new cache and, at its last copy, one buffer of the old
  const greedy = expectOk(planStep(m.family, m.config, { ...base, generation: { strategy: "greedy", sequences: 1, maxNewTokens: 100 } })).generation!;
  assert.is(greedy.phase, "bucket move");
  assert.is(greedy.kvCache, 2 * d.layers * keys(1, 128) + keys(1, 64));
  // a long prompt and few new tokens: the prompt's step, its arena holding every layer's new keys
  // and values, with the one-key placeholder cache and the prompt's bucket
  const long = expectOk(planStep(m.family, m.config, { ...base, seq: 120, generation: { strategy: "greedy", sequences: 1, maxNewTokens: 4 } })).generation!;
  assert.is(long.phase, "prompt");
  assert.is(long.kvCache, 2 * d.layers * (keys(1, 1) + keys(1, 128)));
  assert.ok(long.arena > greedy.arena, "the prompt's arena is the larger");
  assert.is(g.staging, buffer(4 * 3 * d.vocab));
  assert.is(g.peak, g.weights + plan.training.adapters + g.kvCache + g.inputs + g.arena + g.scratch + g.staging);
  assert.is(plan.peakBytes, Math.max(plan.training.peak, g.peak));
});

for (const name of familyNames) {
  test(`${name}: generation's weights as it stores them on the GPU: NF4 block linears after QLoRA, f32 after full fine-tuning`, () => {
    const m = model(name, 2);
    const tensors = declaredTensors(m.family, m.config.dims, m.config.tiedHead);
    const generation = { strategy: "greedy", sequences: 1, maxNewTokens: 4 };
    const weightsOf = (method: PlanSettings["method"]) => expectOk(planStep(m.family, m.config, { ...base, dtype: "bf16", method, generation })).generation!.weights;
    // linears of the blocks, the table and an untied head in bf16; norms and biases f32
    const narrow = (role: string, saved: string[] = []) => !saved.includes(role) && (quantized(role) || role === "embed.weight" || role === "head.weight");
    const bytes = (saved: string[] = []) => tensors.reduce((n, t) => n + buffer((narrow(t.role, saved) ? 2 : 4) * product(t.shape)), 0);
    assert.is(weightsOf(lora("lora", ["all"])), bytes(), "LoRA");
    const qBytes = tensors.reduce((n, t) => n + (quantized(t.role) ? nf4Bytes(product(t.shape)) : buffer((narrow(t.role) ? 2 : 4) * product(t.shape))), 0);
    assert.is(weightsOf(lora("qlora", ["all"])), qBytes, "QLoRA: NF4 block linears, as training stores them");
    assert.is(weightsOf(lora("lora", ["all"], 4, 8, ["lm_head"])), bytes(["head.weight"]), "a head trained in full stays f32");
    assert.is(weightsOf({ kind: "full", freezeEmbeddings: false, freezeLayers: 0 }), tensors.reduce((n, t) => n + buffer(4 * product(t.shape)), 0), "full: f32");
  });
}

test("the step's launch scratch holds at least attention backward's dK|dV workspace and is part of the peak", () => {
  const m = model("baichuan7b", 2);
  const d = m.config.dims;
  const t = expectOk(planStep(m.family, m.config, base)).training;
  // dK and dV of one layer's keys, f32 (B, S, Hkv, D) each, in one workspace buffer the layers share
  const dkv = buffer(2 * 4 * base.batch * base.seq * d.kvHeads * d.headDim);
  assert.ok(t.scratch >= dkv, `scratch ${t.scratch} B holds dK|dV (${dkv} B)`);
  assert.is(t.peak, t.weights + t.adapters + t.masterWeights + t.optimizerState + t.gradientAccumulators + t.uniforms + t.staging + t.inputs + t.arena + t.scratch);
});

test("evaluation keeps training's persistent buffers and adds a forward pass at the evaluation batch", () => {
  const m = model("baichuan7b", 2);
  const plan = expectOk(planStep(m.family, m.config, { ...base, method: lora("lora", ["all"]), evaluation: { batch: 16 } }));
  const t = plan.training;
  const e = plan.evaluation!;
  assert.is(e.peak, t.weights + t.adapters + t.masterWeights + t.optimizerState + t.gradientAccumulators + t.uniforms + t.staging + e.inputs + e.arena + e.scratch);
  assert.ok(e.peak > t.peak, "a forward pass at 8x the batch outgrows the LoRA training step of this tiny model");
  assert.is(plan.peakBytes, e.peak);
  assert.is(expectOk(planStep(m.family, m.config, base)).evaluation, null);
});

test("Baichuan-7B QLoRA (rank 64 on every linear), sequence 512, batch 1, checkpointing: NF4 weights and the peak", () => {
  const family = families.baichuan7b;
  const m = expectOk(fromDimensions(family, facts.baichuan7b.sizes["7b"], "7b preset"));
  const settings: PlanSettings = { ...base, dtype: "bf16", batch: 1, seq: 512, gradientCheckpointing: true, method: lora("qlora", ["all"], 64, 16) };
  const plan = expectOk(planStep(family, m.config, settings));
  const t = plan.training;
  const linears = 32 * (3 * 4096 * 4096 + 4096 * 4096 + 3 * 4096 * 11008);
  console.log(`    peak ${formatBytes(t.peak)} (${(t.peak / 1e9).toFixed(2)} GB): weights ${formatBytes(t.weights)}, adapters ${formatBytes(t.adapters)}, AdamW ${formatBytes(t.optimizerState)}, arena ${formatBytes(t.arena)} (activations ${formatBytes(t.activations)})`);
  // NF4 linears (whole 64·256 blocks) + 5 offset buffers per layer + bf16 embedding, head and norms
  const expected = linears * (0.5 + 1 / 64 + 4 / (64 * 256)) + 32 * 5 * 16 + 2 * 2 * 64000 * 4096 + (32 * 2 + 1) * 2 * 4096;
  assert.is(t.weights, expected);
  const rank64 = 32 * 64 * (4096 + 3 * 4096 + 4096 + 4096 + 2 * (4096 + 11008) + 11008 + 4096);
  assert.is(plan.parameters.trainable, rank64);
  assert.is(t.adapters, 4 * rank64);
});

test.run();
