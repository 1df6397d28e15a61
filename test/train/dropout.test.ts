// LoRA dropout in training: the adapter path reads a host-drawn inverted-dropout mask (PEFT's
// y = x Wᵀ + s · (dropout(x) Aᵀ) Bᵀ), only in training graphs; masks come from the `dropout`
// stream in a fixed order, so the CPU and GPU engines agree, and a stopped run resumed from its
// checkpoint equals the uninterrupted one bitwise.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { interpret } from "../../compiler/ir/interpret.ts";
import * as b from "../../compiler/ir/build.ts";
import { graph, topoSort, type Node } from "../../compiler/ir/node.ts";
import { linear } from "../../compiler/models/lora-linear.ts";
import { prepareTraining, type TrainingSetup } from "../../runtime/pipeline/training-setup.ts";
import { Random } from "../../runtime/random.ts";
import { loadLatestCheckpoint } from "../../runtime/train/checkpoint-store.ts";
import type { TrainingBackend } from "../../runtime/train/backend.ts";
import { GpuBackend } from "../../runtime/train/gpu-backend.ts";
import { trainLoop } from "../../runtime/train/loop.ts";
import { trainSettings } from "../../runtime/train/settings.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { engineFor, QUICKSTART, resolvedPipeline, tempDir } from "../run/support.ts";

const STEPS = 4;
const SHORT = [`train.max_steps=${STEPS}`, "train.eval_every=100", "train.save_every=100"];
const WITH_DROPOUT = [...SHORT, "method.dropout=0.1"];

const maskInputs = (loss: Node) => topoSort([loss]).filter((n) => n.op === "input" && n.attrs.name!.endsWith(".lora_dropout"));

async function setupWith(overrides: string[]): Promise<TrainingSetup> {
  return expectOk(await prepareTraining(resolvedPipeline(QUICKSTART, overrides)));
}

/** Runs the loop on `backend`; returns every step's loss and the loop's outcome. */
async function train(setup: TrainingSetup, backend: TrainingBackend, runDir: string, o: { stopAfter?: number; resume?: boolean } = {}) {
  const losses: number[] = [];
  const resume = o.resume ? expectOk(await loadLatestCheckpoint(`${runDir}/checkpoints`)) : undefined;
  const result = expectOk(
    await trainLoop({
      settings: trainSettings(resolvedPipeline(QUICKSTART, WITH_DROPOUT).train),
      backend,
      data: setup.data,
      runDir,
      title: "dropout test",
      ...(resume ? { resume } : {}),
      onRecord: (r) => {
        if (r.kind === "train") losses.push(r.loss);
      },
      stopRequested: () => o.stopAfter !== undefined && losses.length >= o.stopAfter,
    }),
  );
  return { losses, result };
}

async function stepLossesWith(setup: TrainingSetup, gpu?: GpuDevice): Promise<number[]> {
  const backend = engineFor(setup, gpu);
  try {
    return (await train(setup, backend, tempDir("dropout"))).losses;
  } finally {
    if (backend instanceof GpuBackend) backend.destroy();
  }
}

test("linear: the LoRA path reads x times the mask; the float64 interpreter matches a direct computation", () => {
  const random = new Random(7);
  const [T, IN, OUT, R, S] = [3, 4, 5, 2, 1.5];
  const values = (n: number) => Float64Array.from({ length: n }, () => random.normal());
  const feeds = new Map([["x", values(T * IN)], ["w", values(OUT * IN)], ["a", values(R * IN)], ["b", values(OUT * R)]]);
  feeds.set("mask", Float64Array.from({ length: T * IN }, () => (random.uniform() < 0.3 ? 0 : 1 / 0.7)));
  const y = linear(b.input("x", [T, IN]), b.param("w", [OUT, IN]), null, { a: b.param("a", [R, IN]), b: b.param("b", [OUT, R]), scale: S, dropoutMask: b.input("mask", [T, IN]) });
  const out = expectOk(interpret(graph([["y", y]]), feeds)).get("y")!;
  const [x, w, a, up, mask] = ["x", "w", "a", "b", "mask"].map((k) => feeds.get(k)!);
  const expected = new Float64Array(T * OUT);
  for (let t = 0; t < T; t++) {
    const down = Array.from({ length: R }, (_, r) => S * Array.from({ length: IN }, (_, i) => x[t * IN + i] * mask[t * IN + i] * a[r * IN + i]).reduce((s, v) => s + v, 0));
    for (let o = 0; o < OUT; o++) {
      let v = 0;
      for (let i = 0; i < IN; i++) v += x[t * IN + i] * w[o * IN + i];
      for (let r = 0; r < R; r++) v += down[r] * up[o * R + r];
      expected[t * OUT + o] = v;
    }
  }
  const error = relativeError(out, expected);
  console.log(`    relative error against the direct computation: ${error.toExponential(2)}`);
  assert.ok(error < 1e-12, `relative error ${error}`);
  assert.ok(mask.includes(0), "the mask drops something");
});

test("quickstart: dropout 0.1 gives one mask per adapted linear in training graphs only; dropout 0 gives none", async () => {
  const dropping = await setupWith(WITH_DROPOUT);
  const adapters = dropping.model.trainable.filter((t) => t.name.endsWith(".lora_A.weight")).map((t) => t.name.replace(/\.lora_A\.weight$/, ""));
  const masks = maskInputs(dropping.model.lossFor(2, 5, true));
  assert.ok(adapters.length > 0);
  assert.equal(masks.map((m) => m.attrs.name!.replace(/\.lora_dropout$/, "")).sort(), [...adapters].sort());
  assert.equal(maskInputs(dropping.model.lossFor(2, 5)), [], "forward-only graphs have no masks");

  const plain = await setupWith([...SHORT, "method.dropout=0"]);
  assert.is(plain.model.dropout, undefined);
  assert.equal(maskInputs(plain.model.lossFor(2, 5, true)), [], "dropout 0: no mask inputs");
  assert.equal(engineFor(plain).randomStates(), {}, "dropout 0: no dropout stream");
});

test("quickstart: masks are 0 or 1/(1-p), about p of them 0, in graph order, and reproducible from the stream's state", async () => {
  const setup = await setupWith(WITH_DROPOUT);
  const dropout = setup.model.dropout!;
  const first = dropout.masks(4, 16, new Random(dropout.seed));
  assert.equal([...first.keys()].sort(), maskInputs(setup.model.lossFor(4, 16, true)).map((m) => m.attrs.name!).sort());
  const layers = [...first.keys()].map((name) => Number(/\.(\d+)\./.exec(name)?.[1]));
  assert.ok(layers.every((l, i) => i === 0 || l >= layers[i - 1]), `drawn in module order: ${[...first.keys()].join(", ")}`);
  let zeros = 0;
  let total = 0;
  for (const [name, mask] of first) {
    for (const v of mask) assert.ok(v === 0 || v === 1 / 0.9, `${name} holds ${v}`);
    zeros += mask.filter((v) => v === 0).length;
    total += mask.length;
  }
  console.log(`    ${zeros} of ${total} values dropped (${((100 * zeros) / total).toFixed(2)}%)`);
  assert.ok(Math.abs(zeros / total - 0.1) < 0.01, `dropped fraction ${zeros / total}`);
  const again = dropout.masks(4, 16, new Random(dropout.seed));
  assert.equal([...again].map(([n, m]) => [n, Array.from(m)]), [...first].map(([n, m]) => [n, Array.from(m)]), "same seed, same masks");

  // the engine's stream moves on with every micro-batch and its state restores the draw
  const backend = engineFor(setup);
  const before = backend.randomStates();
  assert.equal(Object.keys(before), ["dropout"]);
  await backend.forwardBackward(setup.data.next(), 1);
  assert.is.not(backend.randomStates().dropout, before.dropout, "a training micro-batch draws masks");
  const state = backend.randomStates();
  await backend.evaluate(setup.data.next());
  assert.equal(backend.randomStates(), state, "evaluation draws nothing");
});

test("quickstart: a run stopped after step 2 and resumed from its checkpoint equals the uninterrupted run bitwise (CPU engine, dropout 0.1)", async () => {
  const fullSetup = await setupWith(WITH_DROPOUT);
  const fullBackend = engineFor(fullSetup);
  const full = await train(fullSetup, fullBackend, tempDir("dropout-full"));

  const dir = tempDir("dropout-stop");
  const first = await train(await setupWith(WITH_DROPOUT), engineFor(await setupWith(WITH_DROPOUT)), dir, { stopAfter: 2 });
  assert.ok(first.result.stopped, "the first run stopped early");
  const checkpoint = expectOk(await loadLatestCheckpoint(`${dir}/checkpoints`))!;
  assert.is(checkpoint.state.step, 2);
  assert.type(checkpoint.state.rng.dropout, "number", "the checkpoint holds the dropout stream");

  const resumedSetup = await setupWith(WITH_DROPOUT);
  const resumedBackend = engineFor(resumedSetup);
  const resumed = await train(resumedSetup, resumedBackend, dir, { resume: true });
  console.log(`    full ${full.losses.map((l) => l.toFixed(6)).join(" ")}\n    stop ${first.losses.map((l) => l.toFixed(6)).join(" ")} | resumed ${resumed.losses.map((l) => l.toFixed(6)).join(" ")}`);
  assert.equal([...first.losses, ...resumed.losses], full.losses);
  const state = (backend: TrainingBackend) => (backend.saveState() as { name: string; data: ArrayLike<number> }[]).map((t) => [t.name, Array.from(t.data)]);
  assert.equal(state(resumedBackend), state(fullBackend));
});

test(
  "quickstart with dropout 0.1: GPU losses equal the float64 CPU engine's within 1e-4 relative; dropout changes the losses",
  withGpu(async (gpu) => {
    const cpu = await stepLossesWith(await setupWith(WITH_DROPOUT));
    const onGpu = await stepLossesWith(await setupWith(WITH_DROPOUT), gpu);
    const without = await stepLossesWith(await setupWith(SHORT));
    console.log(`    cpu ${cpu.map((l) => l.toFixed(6)).join(" ")}\n    gpu ${onGpu.map((l) => l.toFixed(6)).join(" ")}\n    p=0 ${without.map((l) => l.toFixed(6)).join(" ")}`);
    assert.is(onGpu.length, STEPS);
    const error = relativeError(Float64Array.from(onGpu), Float64Array.from(cpu));
    console.log(`    relative error of the loss sequence: ${error.toExponential(2)}`);
    assert.ok(error < 1e-4, `relative error ${error}`);
    assert.ok(relativeError(Float64Array.from(cpu), Float64Array.from(without)) > 1e-6, "dropout is applied");
  }),
);

test.run();
