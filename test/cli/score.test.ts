// `sftc score`: on every family's fixture checkpoint the scored log-probabilities equal the
// log-softmax of the PyTorch golden logits (spec/golden/make_forward_goldens.py) at the golden
// ids, in float64 and on the GPU; the loss equals the graph's own cross-entropy. Through main()
// on the quickstart pipeline: --text, --chat and --ids agree, the table matches the JSON, a PEFT
// adapter is applied, and mistakes are reported without a stack trace.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkFile } from "../../compiler/check/check.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { graph } from "../../compiler/ir/node.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { familyFeeds } from "../../compiler/models/family-inputs.ts";
import { writePeftAdapter } from "../../runtime/export/peft.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import { loadPipelineGenerator } from "../../runtime/generate/pipeline-model.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { scoreIds } from "../../runtime/score/score.ts";
import { blockLinearNames } from "../../compiler/plan/storage.ts";
import { familyNames, families } from "../../stdlib/families/index.ts";
import { nf4RoundTrip } from "../../stdlib/quant/nf4.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import type { Golden } from "../models/support.ts";
import { readFileSync } from "node:fs";
import { assertClose, relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { scratch, sftc } from "./support.ts";

const root = join(import.meta.dirname, "..", "..");
const quickstart = join(root, "pipelines", "quickstart.sft");

/** log-softmax(golden logits of row b at t - 1)[ids[t]] for t ≥ 1, written out here in float64. */
function goldenLogprobs(golden: Golden, b: number): number[] {
  const ids = golden.input_ids[b];
  return ids.slice(1).map((id, i) => {
    const row = golden.logits[b][i];
    const max = Math.max(...row);
    const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
    return row[id] - logSum;
  });
}

async function fixtureScores(gpu?: GpuDevice): Promise<void> {
  for (const name of familyNames) {
    const family = families[name];
    const dir = join(FIXTURES, name);
    const golden: Golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8"));
    const { config, weights } = expectOk(await checkpointWeights(dir, family));
    for (const [b, ids] of golden.input_ids.entries()) {
      const scored = expectOk(await scoreIds(family, config, weights, ids, gpu));
      assert.is(scored.logprobs[0], null, "the first token has no log-probability");
      const want = goldenLogprobs(golden, b);
      assertClose(scored.logprobs.slice(1) as number[], want, gpu ? 1e-4 : 1e-6, `${name} row ${b} logprobs (${gpu ? "GPU" : "CPU float64"})`);
      const loss = -want.reduce((s, v) => s + v, 0) / want.length;
      assert.ok(Math.abs(scored.loss - loss) < (gpu ? 1e-4 : 1e-6) * loss, `${name} row ${b}: loss ${scored.loss} vs ${loss}`);
      assert.ok(Math.abs(scored.perplexity - Math.exp(loss)) < (gpu ? 1e-3 : 1e-5) * Math.exp(loss), `${name} row ${b}: perplexity`);
    }
  }
}

test("every family: scored logprobs are the log-softmax of the PyTorch golden logits at the golden ids (CPU float64, 1e-6)", async () => {
  await fixtureScores();
});

test(
  "every family: the GPU path scores the golden ids within 1e-4",
  withGpu(async (gpu) => fixtureScores(gpu)),
);

test("the loss equals the family graph's own cross-entropy over the same tokens", async () => {
  const family = families.chatglm2;
  const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, "chatglm2"), family));
  const ids = [5, 311, 145, 204, 100, 223, 42];
  const built = expectOk(buildFamilyGraph(family, config, { batch: 1, seq: ids.length }));
  const feeds = new Map([...weights, ...expectOk(familyFeeds(family, config, { ids: [ids], labels: [ids] }))]);
  const [graphLoss] = expectOk(interpret(graph([["loss", built.loss]]), feeds)).get("loss")!;
  const scored = expectOk(await scoreIds(family, config, weights, ids));
  assert.ok(Math.abs(scored.loss - graphLoss) < 1e-12 * graphLoss, `loss ${scored.loss} vs the graph's ${graphLoss}`);
});

test("quickstart through main(): --text, --ids and --json agree; the table prints every logprob; --chat scores the templated prompt", async () => {
  const text = "晚上睡不着怎么办";
  const json = await sftc(["score", quickstart, "--text", text, "--json"]);
  assert.is(json.code, 0, json.err);
  const scored = JSON.parse(json.out);
  assert.equal(Object.keys(scored), ["ids", "pieces", "logprobs", "loss", "perplexity"]);
  const generator = expectOk(await loadPipelineGenerator(checkFile(quickstart, { checkFiles: true }).pipelines[0]));
  const { tokenizer } = generator;
  assert.equal(scored.ids, tokenizer.withSpecialTokens(tokenizer.encode(text)));
  assert.equal(scored.pieces, tokenizer.pieces(scored.ids));
  assert.is(scored.logprobs[0], null);
  assert.ok(scored.logprobs.slice(1).every((v: number) => v < 0));
  assert.ok(Math.abs(scored.perplexity - Math.exp(scored.loss)) < 1e-9 * scored.perplexity);

  const byIds = await sftc(["score", quickstart, "--ids", scored.ids.join(","), "--json"]);
  assert.is(byIds.code, 0, byIds.err);
  assert.equal(JSON.parse(byIds.out), scored);

  const table = await sftc(["score", quickstart, "--text", text]);
  assert.is(table.code, 0, table.err);
  const lines = table.out.trimEnd().split("\n");
  assert.equal(lines[0].trim().split(/\s+/), ["pos", "id", "piece", "logprob"]);
  const rows = lines.slice(1, -1).map((l) => l.trim().split(/\s+/));
  assert.equal(rows.map((r) => Number(r[1])), scored.ids);
  assert.equal(rows.map((r) => r[3]), scored.logprobs.map((v: number | null) => (v === null ? "-" : v.toFixed(6))));
  assert.match(lines[lines.length - 1], `loss ${scored.loss.toFixed(6)}  perplexity ${scored.perplexity.toFixed(4)}  (${scored.ids.length - 1} scored tokens)`);

  const chat = await sftc(["score", quickstart, "--text", text, "--chat", "--json"]);
  assert.is(chat.code, 0, chat.err);
  assert.equal(JSON.parse(chat.out).ids, expectOk(chatPromptIds(tokenizer, "chatglm2", [], text)));
});

test(
  "quickstart --gpu scores within 1e-4 of the CPU reference; --device naming no adapter is SFT5002 listing the adapters",
  withGpu(async () => {
    const args = ["score", quickstart, "--text", "你好，世界", "--json"];
    const cpu = JSON.parse((await sftc(args)).out);
    const gpu = await sftc([...args, "--gpu"]);
    assert.is(gpu.code, 0, gpu.err);
    const onGpu = JSON.parse(gpu.out);
    assert.equal(onGpu.ids, cpu.ids);
    assertClose(onGpu.logprobs.slice(1), cpu.logprobs.slice(1), 1e-4, "quickstart logprobs, GPU vs CPU");

    const missing = await sftc([...args, "--gpu", "--device", "no-such-gpu"], { env: { SFT_ADAPTER: "also-missing" } });
    assert.is(missing.code, 1);
    assert.match(missing.err, "SFT5002");
    assert.match(missing.err, "'no-such-gpu'", "--device wins over SFT_ADAPTER");
    assert.match(missing.err, /available: '[^']+' \(\w+\)/);
    const fromEnv = await sftc([...args, "--gpu"], { env: { SFT_ADAPTER: "also-missing" } });
    assert.is(fromEnv.code, 1);
    assert.match(fromEnv.err, "'also-missing'");
  }),
);

test("--adapter scores with the PEFT adapter: equal to the graph's own LoRA path over the base weights", async () => {
  const pipeline = checkFile(quickstart, { checkFiles: true }).pipelines[0];
  const base = expectOk(await loadPipelineGenerator(pipeline));
  const project = scratch({});
  try {
    const random = new Random(11);
    const [rank, alpha, target] = [2, 4, "query_key_value"];
    const hidden = base.config.dims.hidden;
    const modules = [...base.weights.entries()]
      .filter(([name]) => name.endsWith(`.${target}.weight`))
      .map(([name, w]) => ({ modulePath: name.replace(/\.weight$/, ""), a: Float32Array.from({ length: rank * hidden }, () => random.normal()), b: Float32Array.from({ length: (w.length / hidden) * rank }, () => random.normal()), inFeatures: hidden, outFeatures: w.length / hidden }));
    await writePeftAdapter(project.dir, { baseModel: "quickstart", rank, alpha, dropout: 0, targetModules: [target], dtype: "F32" }, modules);

    const ids = base.tokenizer.withSpecialTokens(base.tokenizer.encode("你好"));
    const run = await sftc(["score", quickstart, "--ids", ids.join(","), "--adapter", project.dir, "--json"]);
    assert.is(run.code, 0, run.err);
    const adapted = JSON.parse(run.out);
    const plain = JSON.parse((await sftc(["score", quickstart, "--ids", ids.join(","), "--json"])).out);
    assert.ok(relativeError(adapted.logprobs.slice(1), plain.logprobs.slice(1)) > 1e-3, "the adapter changes the scores");

    // the unmerged LoRA graph: x·Wᵀ + (alpha/r)·(x·Aᵀ)·Bᵀ
    const method = { kind: "lora" as const, rank, alpha, targets: [target] };
    const built = expectOk(buildFamilyGraph(base.family, base.config, { batch: 1, seq: ids.length, method }));
    const lora = new Map(modules.flatMap((m) => [[`${m.modulePath}.lora_A.weight`, Float64Array.from(m.a)], [`${m.modulePath}.lora_B.weight`, Float64Array.from(m.b)]] as const));
    const feeds = new Map([...base.weights, ...lora, ...expectOk(familyFeeds(base.family, base.config, { ids: [ids], labels: [ids] }))]);
    const logits = expectOk(interpret(graph([["logits", built.logits]]), feeds)).get("logits")!;
    const V = base.config.dims.vocab;
    const want = ids.slice(1).map((id, t) => {
      const row = logits.subarray(t * V, (t + 1) * V);
      const max = Math.max(...row);
      return row[id] - max - Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    });
    assertClose(adapted.logprobs.slice(1), want, 1e-9, "adapter logprobs vs the LoRA graph");
  } finally {
    project.cleanup();
  }
});

test("a QLoRA pipeline scores over its NF4 base, as it trains and generates: equal to the round trip's scores, not the raw weights", async () => {
  const models = join(root, "pipelines", "models", "tiny", "tokenizer.model");
  const data = join(root, "pipelines", "data", "samples", "belle.json");
  const text = readFileSync(quickstart, "utf8")
    .replace("method lora", "method qlora")
    .replace(/\n    dtype +=[^\n]*/, "")
    .replace('"models/tiny/tokenizer.model"', JSON.stringify(models))
    .replace(/  dataset firefly[\s\S]*?\n  train/, "  train")
    .replace('"data/samples/belle.json"', JSON.stringify(data));
  const project = scratch({ "qlora.sft": text });
  try {
    const file = join(project.dir, "qlora.sft");
    const checked = checkFile(file, { checkFiles: true });
    assert.equal(checked.diagnostics.filter((d) => d.severity === "error"), [], "the QLoRA variant checks");
    const generator = expectOk(await loadPipelineGenerator(checked.pipelines[0]));
    const { family, config, tokenizer } = generator;
    const ids = tokenizer.withSpecialTokens(tokenizer.encode("晚上睡不着怎么办"));
    const run = await sftc(["score", file, "--ids", ids.join(","), "--json"]);
    assert.is(run.code, 0, run.err);
    const scored = JSON.parse(run.out);
    const nf4 = expectOk(await scoreIds(family, config, nf4RoundTrip(generator.weights, blockLinearNames(family, config.dims.layers)), ids));
    const raw = expectOk(await scoreIds(family, config, generator.weights, ids));
    assertClose(scored.logprobs.slice(1), nf4.logprobs.slice(1) as number[], 1e-12, "QLoRA scores vs the NF4 round trip's");
    assert.ok(relativeError(scored.logprobs.slice(1), raw.logprobs.slice(1) as number[]) > 1e-6, "the NF4 base scores differently from the raw weights");
  } finally {
    project.cleanup();
  }
});

test("mistakes: usage errors exit 2; a one-token sequence or an id outside the vocabulary exits 1 with SFT4002, no stack trace", async () => {
  const neither = await sftc(["score", quickstart]);
  assert.is(neither.code, 2);
  assert.match(neither.err, "give either --text TEXT or --ids 1,2,3");
  assert.is((await sftc(["score", quickstart, "--ids", "1,2", "--chat"])).code, 2);
  assert.is((await sftc(["score", quickstart, "--ids", "1,2", "--device", "x"])).code, 2);
  assert.match((await sftc(["score", quickstart, "--ids", "1,x"])).err, "got `x`");
  for (const ids of ["2001", "2001,2003,99999999"]) {
    const run = await sftc(["score", quickstart, "--ids", ids]);
    assert.is(run.code, 1);
    assert.match(run.err, "SFT4002");
    assert.match(run.err, ids.includes(",") ? "outside the model's vocabulary" : "at least 2 tokens");
    assert.not.match(run.err, /^\s+at /m, "no stack trace");
  }
});

test.run();
