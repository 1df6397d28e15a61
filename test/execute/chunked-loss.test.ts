// The loss head in row chunks (compiler/passes/chunk-loss.ts): a LoRA training graph whose frozen
// head is split into three chunks of rows (6, 6 and 4 of the fixture's 16) gives the loss and
// every gradient of the unsplit graph, on the float64 interpreter and on the GPU with the memory
// plan's shared buffers; each chunk's rows are read in place (no more copies than unsplit). A
// head of its own (Baichuan), one with a bias (MOSS) and one tied to the embedding (ChatGLM); an
// evaluation's loss alike; a chunk a row (sixteen), more than one kernel reads at once; rows at
// unaligned offsets (copied first). A trained head stays one product.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph, topoSort, type Graph } from "../../compiler/ir/node.ts";
import { evaluationGraph } from "../../compiler/passes/chunk-loss.ts";
import { MAX_KERNEL_STORAGE_BUFFERS } from "../../compiler/passes/schedule.ts";
import type { FamilyGraph } from "../../compiler/models/family-graph.ts";
import { Random } from "../../runtime/random.ts";
import type { FamilyName } from "../../stdlib/families/index.ts";
import { tinyTransformer } from "../../compiler/models/tiny-transformer.ts";
import { families, randomFeeds } from "../ir/feeds.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { adapterValues, feedsFor, loadFixture, type Fixture } from "../models/support.ts";
import { assertClose, relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { fixtureGraph, generatedBindings, runOnGpu, trainingOf } from "./support.ts";

const CHUNK_ROWS = 6;

async function loraCase(name: FamilyName): Promise<{ fixture: Fixture; g: FamilyGraph; feeds: Map<string, Float64Array>; plain: Graph; chunked: Graph }> {
  const fixture = await loadFixture(name);
  const g = fixtureGraph(fixture, { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets });
  const rng = new Random(5);
  const feeds = feedsFor(fixture, adapterValues(g, (n) => rng.normalArray(n, 0.1), false));
  const vocab = g.logits.shape[1];
  const chunked = expectOk(trainingGraph(g.loss, g.trainable, { lossChunkBytes: CHUNK_ROWS * vocab * 4 })).graph;
  return { fixture, g, feeds, plain: trainingOf(g), chunked };
}

const crossEntropies = (g: Graph) => topoSort(g.outputs.values()).filter((n) => n.op === "cross_entropy");

for (const name of ["baichuan7b", "moss", "chatglm"] as const) {
  test(`${name}: a LoRA step with its loss head in three chunks of rows gives the unsplit loss and gradients, on the interpreter and on the GPU`,
    withGpu(async (gpu) => {
      const { g, feeds, plain, chunked } = await loraCase(name);
      const rows = g.logits.shape[0];
      assert.is(crossEntropies(plain).length, 1);
      assert.equal(crossEntropies(chunked).map((n) => n.inputs[0].shape[0]), [CHUNK_ROWS, CHUNK_ROWS, rows - 2 * CHUNK_ROWS]);
      const reference = expectOk(interpret(plain, feeds));
      const split = expectOk(interpret(chunked, feeds));
      for (const k of plain.outputs.keys()) assertClose(split.get(k)!, reference.get(k)!, 1e-12, `${name} ${k}, interpreter`);

      const gpuPlain = await runOnGpu(gpu, plain, feeds, { plan: true });
      const gpuSplit = await runOnGpu(gpu, chunked, feeds, { plan: true });
      assertClose(gpuSplit.outputs.get("loss")!, reference.get("loss")!, 1e-5, `${name} loss, GPU`);
      let worst = 0;
      for (const k of [...plain.outputs.keys()].filter((k) => k.startsWith("grad."))) {
        const error = relativeError(gpuSplit.outputs.get(k)!, reference.get(k)!);
        worst = Math.max(worst, error);
        assert.ok(error < 1e-3, `${name} ${k}: relative error ${error}`);
      }
      const copies = (s: typeof gpuPlain.stats) => s.copies + s.bufferCopies;
      assert.ok(copies(gpuSplit.stats) <= copies(gpuPlain.stats), `${name}: the chunks' rows are read in place (${copies(gpuSplit.stats)} copies against ${copies(gpuPlain.stats)})`);
      const pool = gpuSplit.compiled.plan.pool.reduce((sum, p) => sum + p.bytes, 0);
      assert.is(gpuSplit.stats.sharedBytes, pool, `${name}: the planned pool is allocated`);
      console.log(`    ${name}: ${g.trainable.length} gradients, worst relative error ${worst.toExponential(2)}; ${gpuSplit.stats.dispatches} dispatches (${gpuPlain.stats.dispatches} unsplit)`);
    }),
  );
}

test("a budget of one row a chunk: sixteen chunks, whose sum and joined gradients no launch reads at once, and the GPU runs them",
  withGpu(async (gpu) => {
    const fixture = await loadFixture("chatglm");
    const g = fixtureGraph(fixture, { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets });
    const rng = new Random(5);
    const feeds = feedsFor(fixture, adapterValues(g, (n) => rng.normalArray(n, 0.1), false));
    const chunked = expectOk(trainingGraph(g.loss, g.trainable, { lossChunkBytes: g.logits.shape[1] * 4 })).graph;
    assert.equal(crossEntropies(chunked).map((n) => n.inputs[0].shape[0]), Array(g.logits.shape[0]).fill(1));
    assert.ok(crossEntropies(chunked).length > MAX_KERNEL_STORAGE_BUFFERS);
    const reference = expectOk(interpret(trainingOf(g), feeds));
    const run = await runOnGpu(gpu, chunked, feeds, { plan: true });
    assert.is(Math.max(...generatedBindings(run.compiled.schedule)), MAX_KERNEL_STORAGE_BUFFERS);
    assert.is(run.stats.sharedBytes, run.compiled.plan.pool.reduce((sum, p) => sum + p.bytes, 0), "the planned pool is allocated");
    for (const [k, v] of reference) assert.ok(relativeError(run.outputs.get(k)!, v) < 1e-3, `${k}`);
  }),
);

test("rows at offsets a binding cannot take are copied first: a tiny model's 32-byte rows in chunks of three",
  withGpu(async (gpu) => {
    const options = families["baichuan-7b"]; // hidden 8: a chunk of 3 rows starts 96 bytes on
    const model = expectOk(tinyTransformer(options));
    const trained = model.params.filter((p) => p.attrs.name !== "lm_head.weight");
    assert.is(trained.length, model.params.length - 1);
    const vocab = model.logits.shape[1];
    const chunked = expectOk(trainingGraph(model.loss, trained, { lossChunkBytes: 3 * vocab * 4 })).graph;
    assert.equal(crossEntropies(chunked).map((n) => n.inputs[0].shape[0]), [3, 3, 3, 1]);
    const feeds = randomFeeds(model, options, 3);
    const plain = expectOk(trainingGraph(model.loss, trained)).graph; // 64 MiB: one product at this size
    assert.is(crossEntropies(plain).length, 1);
    const reference = expectOk(interpret(plain, feeds));
    const run = await runOnGpu(gpu, chunked, feeds, { plan: true });
    const unsplit = await runOnGpu(gpu, plain, feeds, { plan: true });
    assert.ok(run.stats.copies > unsplit.stats.copies, `the unaligned rows are copied (${run.stats.copies} copies against ${unsplit.stats.copies})`);
    for (const [k, v] of reference) assert.ok(relativeError(run.outputs.get(k)!, v) < 1e-3, `${k}`);
  }),
);

test("evaluation: the loss alone with its head in chunks gives the unsplit loss on the interpreter and on the GPU",
  withGpu(async (gpu) => {
    for (const name of ["baichuan7b", "moss", "chatglm"] as const) {
      const fixture = await loadFixture(name);
      const g = fixtureGraph(fixture);
      const feeds = feedsFor(fixture);
      const chunked = evaluationGraph(g.loss, CHUNK_ROWS * g.logits.shape[1] * 4);
      assert.is(crossEntropies(chunked).length, 3);
      const reference = expectOk(interpret(graph([["loss", g.loss]]), feeds)).get("loss")!;
      assertClose(expectOk(interpret(chunked, feeds)).get("loss")!, reference, 1e-12, `${name} evaluation, interpreter`);
      assertClose((await runOnGpu(gpu, chunked, feeds, { plan: true })).outputs.get("loss")!, reference, 1e-5, `${name} evaluation, GPU`);
    }
  }),
);

test("a trained head (full fine-tuning) keeps one product: its chunks would each add a weight gradient", async () => {
  const fixture = await loadFixture("baichuan7b");
  const g = fixtureGraph(fixture, { kind: "full" });
  const chunked = expectOk(trainingGraph(g.loss, g.trainable, { lossChunkBytes: CHUNK_ROWS * g.logits.shape[1] * 4 })).graph;
  assert.is(crossEntropies(chunked).length, 1);
});

test("logits within the chunk budget stay one product", async () => {
  const { g } = await loraCase("baichuan7b");
  const whole = expectOk(trainingGraph(g.loss, g.trainable, { lossChunkBytes: g.logits.shape[0] * g.logits.shape[1] * 4 })).graph;
  assert.is(crossEntropies(whole).length, 1);
});

test.run();
