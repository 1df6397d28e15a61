// `sftc export FILE --target torchrun` end to end: a tiny ChatGLM2 checkpoint (safetensors, written
// by sftc) whose vocabulary fits the bundled tiny tokenizer, the bundled Belle samples tokenized
// by sftc's data pipeline, the job's micro-batches in sftc's order, and two DDP processes
// (Debian's PyTorch, gloo) training it to a PEFT adapter.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Io } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { checkFile } from "../../compiler/check/check.ts";
import { loadTrainingData } from "../../runtime/data/batches.ts";
import { writeSafetensors } from "../../runtime/export/safetensors-writer.ts";
import { Random } from "../../runtime/random.ts";
import { chatglm2 } from "../../stdlib/families/chatglm2.ts";
import { resolveModelConfig } from "../../stdlib/families/config.ts";
import { expectOk } from "../support/result.ts";
import { hasTorch, PYTHON, reportSkippedWithoutTorch } from "../support/python.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const scratch = mkdtempSync(join(tmpdir(), "sftc-export-cli-"));

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", color: false, env: {}, out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

/** A tiny chatglm2 checkpoint with `vocab` rows, N(0, 0.02²) weights and unit norms. */
async function tinyModel(dir: string, vocab: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const raw = { ...chatglm2.tiny, padded_vocab_size: vocab, vocab_size: vocab };
  writeFileSync(join(dir, "config.json"), JSON.stringify(raw));
  const config = expectOk(resolveModelConfig(raw, chatglm2, "config.json"));
  const random = new Random(3);
  const tensors = chatglm2.tensors.flatMap((t) =>
    Array.from({ length: t.name.includes("{layer}") ? config.dims.layers : 1 }, (_, layer) => {
      const shape = t.shape(config.dims);
      const n = shape.reduce((a, b) => a * b, 1);
      const values = t.role.includes("norm") ? new Float32Array(n).fill(1) : random.normalArray(n, 0.02);
      return { name: t.name.replace("{layer}", String(layer)), dtype: "F32" as const, shape, bytes: () => new Uint8Array(values.buffer) };
    }),
  );
  await writeSafetensors(join(dir, "model.safetensors"), tensors);
}

function pipeline(modelDir: string): string {
  const file = join(scratch, "tiny.sft");
  writeFileSync(
    file,
    `sft 1

pipeline tiny_export {
  model chatglm2 {
    path      = "${modelDir}"
    dtype     = f32
    tokenizer = "${join(ROOT, "pipelines", "models", "tiny", "tokenizer.model")}"
  }
  method lora {
    rank    = 4
    alpha   = 8
    dropout = 0.0
    targets = [attn.qkv]
  }
  dataset belle {
    path       = "${join(ROOT, "pipelines", "data", "samples", "belle.json")}"
    max_length = 64
  }
  train {
    max_steps  = 3
    batch_size = 2
    grad_accum = 2
    lr         = 1e-3
    seed       = 42
    save_every = 2
  }
  decode greedy {
    max_new_tokens = 8
  }
}
`,
  );
  return file;
}

test("export writes the job; its micro-batches are sftc's batches in sftc's order", async () => {
  const model = join(scratch, "model");
  await tinyModel(model, 2048);
  const file = pipeline(model);
  const job = join(scratch, "job");
  const io = capture();
  assert.is(await main(["export", file, "--target", "torchrun", "--out", job], io), 0, io.stderr);
  assert.match(io.stdout, /chatglm2 lora, \d+ examples, \d+ micro-batches, 3 optimizer steps/);
  for (const f of ["model.py", "train.py", "checkpoint_io.py", "config.json", "README.md", "init/adapter/adapter_config.json", "data/batches.json"]) {
    assert.ok(existsSync(join(job, f)), f);
  }

  const read = (name: string) => new Int32Array(Uint8Array.from(readFileSync(join(job, "data", name))).buffer);
  const ids = read("input_ids.i32");
  const { offsets } = JSON.parse(readFileSync(join(job, "data", "examples.json"), "utf8"));
  const { epochs } = JSON.parse(readFileSync(join(job, "data", "batches.json"), "utf8"));
  const resolved = checkFile(file, {}).pipelines[0];
  const data = expectOk(await loadTrainingData(resolved, { cacheDir: null }));
  const batches = data.batches();
  const stream: number[][] = epochs.flat();
  assert.ok(stream.length >= 3 * 2, "micro-batches for 3 steps of 2");
  for (const micro of stream) {
    const expected = batches.next().value!.batch;
    micro.forEach((example: number, row: number) => {
      const got = Array.from(ids.subarray(offsets[example], offsets[example + 1]));
      const want = Array.from(expected.inputIds.subarray(row * expected.length, row * expected.length + expected.lengths[row]));
      assert.equal(got, want, `row ${row} of a micro-batch`);
    });
  }
});

if (hasTorch()) {
  test("the exported job trains on two DDP processes and writes a PEFT adapter", () => {
    const job = join(scratch, "job");
    const run = spawnSync(PYTHON, [join(job, "train.py"), "--spawn", "2", "--device", "cpu"], { encoding: "utf8", timeout: 120_000 });
    assert.is(run.status, 0, run.stderr.slice(-2000));
    const steps = readFileSync(join(job, "run", "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(steps.map((s) => s.step), [1, 2, 3]);
    assert.ok(steps.every((s) => Number.isFinite(s.loss) && s.loss > 0), JSON.stringify(steps));
    assert.ok(existsSync(join(job, "run", "final", "adapter", "adapter_model.safetensors")));
    assert.ok(existsSync(join(job, "run", "checkpoints", "step-00000002", "state.pt")));
  });
} else reportSkippedWithoutTorch("the exported job on two DDP processes");

test("a tokenizer whose ids exceed the model's embedding rows is refused before anything is written", async () => {
  const file = pipeline(join(ROOT, "test", "fixtures", "checkpoints", "chatglm2"));
  const io = capture();
  const out = join(scratch, "refused");
  assert.is(await main(["export", file, "--target", "torchrun", "--out", out], io), 1);
  assert.match(io.stderr, /SFT4702: training example \d+ holds token id \d+, beyond the 512 embedding rows/);
  assert.not.ok(existsSync(out));
});

test("--target is required and must be known; a non-empty foreign directory is refused", async () => {
  const file = pipeline(join(scratch, "model"));
  let io = capture();
  assert.is(await main(["export", file, "--out", join(scratch, "x")], io), 2);
  assert.match(io.stderr, /--target is required \(torchrun\)/);
  io = capture();
  assert.is(await main(["export", file, "--target", "deepspeed", "--out", join(scratch, "x")], io), 2);
  assert.match(io.stderr, /unknown --target deepspeed/);
  io = capture();
  assert.is(await main(["export", file, "--target", "torchrun", "--out", join(ROOT, "spec", "torch-export")], io), 1);
  assert.match(io.stderr, /SFT4703: .* is not empty and does not hold an exported job/);
});

test.after(() => rmSync(scratch, { recursive: true, force: true }));
test.run();
