// `sftc generate` and `sftc chat` on the quickstart pipeline (a tiny random ChatGLM2 model with
// its tokenizer): streamed text equals the --json text, stop strings, a prompts file round trip,
// a LoRA adapter directory applied as merged weights would be, and chat over a scripted stdin.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkFile } from "../../compiler/check/check.ts";
import { writePeftAdapter } from "../../runtime/export/peft.ts";
import { chatPromptIds } from "../../runtime/generate/chat-prompt.ts";
import { CpuGenerationModel } from "../../runtime/generate/cpu-model.ts";
import { loadPipelineGenerator } from "../../runtime/generate/pipeline-model.ts";
import { Random } from "../../runtime/random.ts";
import { loadTokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import { scratch, sftc } from "../cli/support.ts";
import { relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";

const root = resolve(import.meta.dirname, "..", "..");
const quickstart = join(root, "pipelines", "quickstart.sft");
const short = ["--set", "decode.max_new_tokens=6"];

async function generateJson(args: string[]) {
  const run = await sftc(["generate", quickstart, ...short, ...args, "--json"]);
  assert.is(run.code, 0, run.err);
  return JSON.parse(run.out);
}

test("--json gives the prompt ids, generated ids, text and stop reason; plain output streams the same text", async () => {
  const result = await generateJson(["--prompt", "晚上睡不着怎么办"]);
  assert.equal(Object.keys(result), ["prompt_ids", "sequences"]);
  assert.is(result.sequences.length, 1);
  const [sequence] = result.sequences;
  assert.equal(Object.keys(sequence), ["ids", "text", "stop_reason"]);
  assert.is(sequence.ids.length, 6);
  assert.is(sequence.stop_reason, "max_new_tokens");
  assert.ok(result.prompt_ids.length > 2 && sequence.text.length > 0);

  const plain = await sftc(["generate", quickstart, ...short, "--prompt", "晚上睡不着怎么办"]);
  assert.is(plain.code, 0, plain.err);
  assert.is(plain.out, `${sequence.text}\n`);
  assert.match(plain.err, "CPU reference");

  const byIds = await generateJson(["--ids", result.prompt_ids.join(",")]);
  assert.equal(byIds.sequences, result.sequences, "--ids of the templated prompt answer the same");
  const noCache = await generateJson(["--prompt", "晚上睡不着怎么办", "--no-cache"]);
  assert.equal(noCache.sequences.map((s: { ids: number[] }) => s.ids), result.sequences.map((s: { ids: number[] }) => s.ids), "--no-cache generates the same tokens");
});

test("without a prompt, the decode block's prompts are answered, each as --prompt would", async () => {
  const run = await sftc(["generate", quickstart, ...short, "--set", 'decode.prompts=["你好", "晚上睡不着怎么办"]', "--json"]);
  assert.is(run.code, 0, run.err);
  const [first, second] = run.out.trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal([first.prompt, second.prompt], ["你好", "晚上睡不着怎么办"]);
  assert.equal(first.sequences, (await generateJson(["--prompt", "你好"])).sequences);
  assert.equal(second.sequences, (await generateJson(["--prompt", "晚上睡不着怎么办"])).sequences);
});

test("a stop string cuts the text before it and ends generation", async () => {
  const free = (await generateJson(["--prompt", "你好", "--set", "decode.max_new_tokens=12"])).sequences[0];
  const chars = [...free.text];
  const stop = chars.slice(2, 4).join("");
  const stopped = (await generateJson(["--prompt", "你好", "--set", "decode.max_new_tokens=12", "--set", `decode.stop=[${JSON.stringify(stop)}]`])).sequences[0];
  assert.is(stopped.stop_reason, "stop_string");
  assert.is(stopped.text, free.text.slice(0, free.text.indexOf(stop)));
  assert.ok(stopped.ids.length < free.ids.length, "generation ended at the stop string");
  assert.equal(stopped.ids, free.ids.slice(0, stopped.ids.length));
});

test("beam search returns num_return_sequences sequences with scores, best first", async () => {
  const project = scratch({});
  try {
    const beam = readFileSync(quickstart, "utf8").replace("decode greedy {", "decode beam {\n    num_beams = 3\n    num_return_sequences = 2");
    writeFileSync(join(project.dir, "beam.sft"), beam.replaceAll('"data/', `"${root}/pipelines/data/`).replace('"models/', `"${root}/pipelines/models/`));
    const run = await sftc(["generate", join(project.dir, "beam.sft"), ...short, "--prompt", "你好", "--json", "--no-files"]);
    assert.is(run.code, 0, run.err);
    const { sequences } = JSON.parse(run.out);
    assert.is(sequences.length, 2);
    assert.ok(sequences[0].score >= sequences[1].score);
    assert.not.equal(sequences[0].ids, sequences[1].ids);
  } finally {
    project.cleanup();
  }
});

test("--input/--output answers every line as a single run would (one padded batch); a bad line names file:line", async () => {
  const single = await generateJson(["--prompt", "你好"]);
  const longer = await generateJson(["--prompt", "晚上睡不着怎么办"]);
  assert.not.equal(single.prompt_ids.length, longer.prompt_ids.length);
  const project = scratch({
    "prompts.jsonl": `{"prompt": "你好", "id": "a"}\n\n{"ids": [${single.prompt_ids.join(",")}]}\n{"prompt": "晚上睡不着怎么办"}\n`,
    "bad.jsonl": '{"prompt": "ok"}\n{"prompt": 3}\n',
  });
  try {
    const out = join(project.dir, "out.jsonl");
    const run = await sftc(["generate", quickstart, ...short, "--input", join(project.dir, "prompts.jsonl"), "--output", out]);
    assert.is(run.code, 0, run.err);
    assert.match(run.err, "3/3 prompts");
    const lines = readFileSync(out, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.is(lines.length, 3);
    assert.is(lines[0].id, "a", "the input record's fields are kept");
    assert.equal(lines[0].sequences, single.sequences);
    assert.equal(lines[1].sequences, single.sequences);
    assert.equal(lines[2].sequences, longer.sequences);

    const bad = await sftc(["generate", quickstart, "--input", join(project.dir, "bad.jsonl"), "--output", out]);
    assert.is(bad.code, 1);
    assert.match(bad.err, /bad\.jsonl:2: .*SFT5703|SFT5703.*bad\.jsonl:2/s);
    assert.not.match(bad.err, /^\s+at /m, "no stack trace");
  } finally {
    project.cleanup();
  }
});

test("usage mistakes and an invalid prompt are reported without a stack trace", async () => {
  const noPrompts = await sftc(["generate", quickstart, "--set", "decode.prompts=[]"]);
  assert.is(noPrompts.code, 2);
  assert.match(noPrompts.err, "the pipeline's decode block has no prompts");
  assert.is((await sftc(["generate", quickstart, "--prompt", "a", "--ids", "1"])).code, 2);
  assert.is((await sftc(["generate", quickstart, "--input", "x.jsonl"])).code, 2);
  const outside = await sftc(["generate", quickstart, "--ids", "1,999999"]);
  assert.is(outside.code, 1);
  assert.match(outside.err, "SFT5701");
  const noAdapter = await sftc(["generate", quickstart, "--prompt", "a", "--adapter", join(root, "no-such-dir")]);
  assert.is(noAdapter.code, 1);
  assert.match(noAdapter.err, "SFT5801"); // the adapter directory is read by runtime/export/peft-reader.ts
});

test("--adapter applies a PEFT LoRA directory: logits equal the base model with W + (alpha/r)·B·A merged, with and without the cache", async () => {
  const pipeline = checkFile(quickstart, { checkFiles: true }).pipelines[0];
  const base = expectOk(await loadPipelineGenerator(pipeline));
  const project = scratch({});
  try {
    const random = new Random(7);
    const rank = 2;
    const alpha = 6;
    const targets = ["query_key_value", "dense_4h_to_h"];
    const modules = [...base.weights.entries()]
      .filter(([name]) => targets.some((t) => name.endsWith(`.${t}.weight`)))
      .map(([name, w]) => {
        const [outFeatures, inFeatures] = shapeOf(name, w.length, base.config.dims.hidden);
        return { modulePath: name.replace(/\.weight$/, ""), a: Float32Array.from({ length: rank * inFeatures }, () => random.normal()), b: Float32Array.from({ length: outFeatures * rank }, () => 0.5 * random.normal()), inFeatures, outFeatures };
      });
    assert.is(modules.length, 2 * base.config.dims.layers);
    await writePeftAdapter(project.dir, { baseModel: "quickstart", rank, alpha, dropout: 0, targetModules: targets, dtype: "F32" }, modules);

    // the merge written out here, independently of the runtime's
    const merged = new Map(base.weights);
    for (const m of modules) {
      const w = Float64Array.from(merged.get(`${m.modulePath}.weight`)!);
      for (let o = 0; o < m.outFeatures; o++)
        for (let i = 0; i < m.inFeatures; i++) {
          let delta = 0;
          for (let r = 0; r < rank; r++) delta += m.b[o * rank + r] * m.a[r * m.inFeatures + i];
          w[o * m.inFeatures + i] += (alpha / rank) * delta;
        }
      merged.set(`${m.modulePath}.weight`, w);
    }
    const reference = new CpuGenerationModel({ family: base.family, config: base.config, weights: merged });
    const prompt = base.tokenizer.withSpecialTokens(base.tokenizer.encode("你好"));
    const [want] = (await reference.start([prompt])).logits;
    const [plain] = (await base.model.start([prompt])).logits;
    assert.ok(relativeError(plain, want) > 1e-3, "the adapter changes the logits");
    for (const noCache of [false, true]) {
      const adapted = expectOk(await loadPipelineGenerator(pipeline, { adapterDir: project.dir, noCache }));
      const [got] = (await adapted.model.start([prompt])).logits;
      assert.ok(relativeError(got, want) < 1e-6, `${adapted.model.backend}: adapter vs merged, relative error ${relativeError(got, want)}`);
    }
  } finally {
    project.cleanup();
  }
});

/** (out, in) of a linear weight with `n` values whose input is the hidden size or the ffn size. */
function shapeOf(name: string, n: number, hidden: number): [number, number] {
  return name.endsWith("dense_4h_to_h.weight") ? [hidden, n / hidden] : [n / hidden, hidden];
}

test("chat answers two turns from a scripted stdin, the second with the first in its prompt", async () => {
  const bin = join(root, "bin", "sftc.js");
  const run = (input: string) =>
    new Promise<{ code: number; out: string; err: string }>((done) => {
      const child = execFile(process.execPath, [bin, "chat", quickstart, "--set", "decode.max_new_tokens=4"], (error, out, err) => done({ code: error ? Number(error.code ?? 1) : 0, out, err }));
      child.stdin!.end(input);
    });
  const [twoTurns, afterReset, single] = await Promise.all([run("你好\n再见\n/exit\n你好\n"), run("你好\n/reset\n再见\n"), generateJson(["--prompt", "你好", "--set", "decode.max_new_tokens=4"])]);
  assert.is(twoTurns.code, 0, twoTurns.err);
  const answers = twoTurns.out.trimEnd().split("\n");
  assert.is(answers.length, 2, `two answers, then /exit: ${JSON.stringify(twoTurns.out)}`);
  assert.is(answers[0], single.sequences[0].text, "the first turn is the one-turn prompt");
  const tokenizer = expectOk(await loadTokenizer(join(root, "pipelines", "models", "tiny"), "chatglm2"));
  const withHistory = expectOk(chatPromptIds(tokenizer, "chatglm2", [{ user: "你好", assistant: answers[0] }], "再见"));
  const second = await generateJson(["--ids", withHistory.join(","), "--set", "decode.max_new_tokens=4"]);
  assert.is(answers[1], second.sequences[0].text, "the second turn's prompt holds the first turn");
  const [, secondAlone] = afterReset.out.trimEnd().split("\n");
  assert.match(afterReset.err, "new conversation");
  const fresh = await generateJson(["--prompt", "再见", "--set", "decode.max_new_tokens=4"]);
  assert.is(secondAlone, fresh.sequences[0].text, "after /reset the history is gone");
});

test.run();
