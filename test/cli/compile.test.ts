// `sftc compile` on the quickstart pipeline: the graph is the LoRA training step at the pipeline's
// batch and max_length (loss plus one gradient per adapter tensor; --forward: logits and loss);
// the schedule's kernel count is the one `sftc plan` plans with, and SFT_DEBUG=1 prints the same
// launches on stderr; every WGSL module the schedule dispatches compiles on the device.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkFile } from "../../compiler/check/check.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { plannedModel } from "../../compiler/plan/model-config.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { expectOk } from "../support/result.ts";
import { sftc } from "./support.ts";

const root = join(import.meta.dirname, "..", "..");
const quickstart = join(root, "pipelines", "quickstart.sft");
// one layer keeps the WGSL and schedule output short; the shapes still come from the pipeline
const small = ["--set", "train.batch_size=1"];

const outputsOf = (text: string) => [...text.matchAll(/^output (\S+) = /gm)].map((m) => m[1]);
// node ids count up across builds; the structure is what must agree
const withoutIds = (text: string) => text.replace(/%\d+/g, "%");
const launchesOf = (text: string) => [...text.matchAll(/^#(\d+) (\w+) \[/gm)].map((m) => m[2]);

test("--emit graph: the LoRA training step at the pipeline's batch and max_length; --forward gives logits and loss", async () => {
  const run = await sftc(["compile", quickstart, "--emit", "graph"]);
  assert.is(run.code, 0, run.err);
  const lines = run.out.trimEnd().split("\n");
  const nodes = lines.filter((l) => !l.startsWith("output "));
  assert.ok(nodes.every((l) => /^%\d+ = \w+\([^)]*\)( \{.*\})? : \w+\[[\d,]*\]$/.test(l)), "one node per line");
  assert.ok(nodes.some((l) => l.includes('{name: "input_ids"} : i32[2,256]')), "batch_size 2 x the longest max_length (256)");

  // the trainable tensors of the quickstart's method: every LoRA tensor of the targeted linears,
  // and the output layer it names in modules_to_save
  const pipeline = checkFile(quickstart, { checkFiles: true }).pipelines[0];
  const { family, config } = expectOk(plannedModel(pipeline, { tokenizerVocab: 2005 }));
  const built = expectOk(buildFamilyGraph(family, config, { batch: 1, seq: 2, method: { kind: "lora", rank: 4, alpha: 8, targets: ["attn.qkv", "mlp.*"] } }));
  const outputs = outputsOf(run.out);
  assert.equal(outputs.slice().sort(), ["loss", "grad.transformer.output_layer.weight", ...[...built.adapters.keys()].map((n) => `grad.${n}`)].sort());
  assert.ok(outputs.some((o) => o.includes(".lora_A.")) && !outputs.some((o) => o === "grad.transformer.embedding.word_embeddings.weight"), "base weights are frozen");

  const forward = await sftc(["compile", quickstart, "--emit", "graph", "--forward", ...small]);
  assert.is(forward.code, 0, forward.err);
  assert.equal(outputsOf(forward.out), ["logits", "loss"]);
  assert.match(forward.out, `: f32[256,${config.dims.vocab}]`, "logits (B·T, V)");
  assert.not.match(forward.out, /backward/);
});

test("--emit schedule: launches with kernels and shapes; the kernel count is the plan's; SFT_DEBUG=1 prints the schedule on stderr", async () => {
  const run = await sftc(["compile", quickstart, "--emit", "schedule"]);
  assert.is(run.code, 0, run.err);
  const launches = launchesOf(run.out);
  const summary = /^(\d+) launches, (\d+) library kernels; arena (\d+) bytes$/m.exec(run.out);
  assert.ok(summary, "a summary line");
  assert.is(Number(summary[1]), launches.length);
  for (const kernel of ["embedding", "norm", "matmul", "attention", "cross_entropy", "attention_backward"]) assert.ok(launches.includes(kernel), `a ${kernel} launch`);
  const plan = JSON.parse((await sftc(["plan", quickstart, "--json"])).out);
  assert.is(Number(summary[2]), plan.launches, "the plan counts the same kernels");

  const checkpointed = await sftc(["compile", quickstart, "--emit", "schedule", "--set", "train.gradient_checkpointing=true"]);
  assert.ok(launchesOf(checkpointed.out).length > launches.length, "gradient checkpointing recomputes forward launches");

  const previous = process.env.SFT_DEBUG;
  const write = process.stderr.write;
  let debug = "";
  process.env.SFT_DEBUG = "1";
  process.stderr.write = ((chunk: string | Uint8Array) => ((debug += String(chunk)), true)) as typeof process.stderr.write;
  try {
    const again = await sftc(["compile", quickstart, "--emit", "schedule"]);
    assert.is(withoutIds(again.out), withoutIds(run.out));
  } finally {
    process.stderr.write = write;
    if (previous === undefined) delete process.env.SFT_DEBUG;
    else process.env.SFT_DEBUG = previous;
  }
  const printed = withoutIds(run.out);
  assert.ok(withoutIds(debug).startsWith(printed.slice(0, printed.lastIndexOf("\noutput "))), "SFT_DEBUG=1 prints the same launches on stderr");
});

test(
  "--emit wgsl: one block per launch, and every module compiles on the device; --device naming no adapter is SFT5002",
  withGpu(async (gpu) => {
    const schedule = await sftc(["compile", quickstart, "--emit", "schedule", ...small]);
    const run = await sftc(["compile", quickstart, "--emit", "wgsl", ...small]);
    assert.is(run.code, 0, run.err);
    const heads = [...run.out.matchAll(/^\/\/ ==== #(\d+) (\w+) \[/gm)].map((m) => m[2]);
    assert.equal(heads, launchesOf(schedule.out), "one block per launch, in schedule order");

    // each module follows its kernel's `// ---- name[variant]` line and runs up to the next header
    const modules = [...run.out.matchAll(/^\/\/ ---- \w+\[[^\n]*\](?: \(copy of a view\))?\n([^]*?)(?=^\/\/ (?:----|====) )/gm)].map((m) => m[1]);
    const distinct = Number(/^\/\/ ==== \d+ launches, (\d+) distinct kernels$/m.exec(run.out)![1]);
    assert.ok(distinct > 5);
    assert.is(modules.length, distinct);
    for (const code of modules) {
      assert.match(code, "@compute");
      const info = await gpu.device.createShaderModule({ code }).getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error").map((m) => m.message);
      assert.equal(errors, [], `WGSL compiles: ${code.slice(0, 200)}`);
    }

    const missing = await sftc(["compile", quickstart, "--emit", "wgsl", "--device", "no-such-gpu"]);
    assert.is(missing.code, 1);
    assert.match(missing.err, "SFT5002");
    assert.match(missing.err, /available: '[^']+'/);
  }),
);

test("usage: --emit is required and takes graph, schedule or wgsl", async () => {
  const none = await sftc(["compile", quickstart]);
  assert.is(none.code, 2);
  assert.match(none.err, "--emit takes graph, schedule, wgsl");
  const bad = await sftc(["compile", quickstart, "--emit", "ptx"]);
  assert.is(bad.code, 2);
  assert.match(bad.err, "got `ptx`");
});

test.run();
