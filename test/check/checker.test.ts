// The checker on in-memory files (an overlay, so no temporary files): inheritance, overrides,
// defaults, pipeline selection and the exact spans of schema errors.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkFile, type CheckOptions } from "../../compiler/check/check.ts";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import { families } from "../../stdlib/schemas/model.ts";

const dir = "/virtual/pipelines";

/** Checks `files` (name -> text, the first is the entry) as if they were on disk. */
function check(files: Record<string, string>, options: CheckOptions = {}) {
  const overlay = new Map(Object.entries(files).map(([name, text]) => [`${dir}/${name}`, text]));
  return checkFile(`${dir}/${Object.keys(files)[0]}`, { checkFiles: false, ...options, overlay });
}

const codesOf = (ds: Diagnostic[]) => ds.map((d) => d.code);

const base = `sft 1
pipeline base {
  model chatglm2 {
    path  = "models/chatglm2-6b"
    dtype = f16
  }
  method lora {
    rank = 4
  }
  dataset belle {
    path       = "data/belle.json"
    max_length = 512
  }
  dataset safety {
    path = "data/safety.json"
  }
  train {
    epochs   = 2
    lr       = 1e-4
    schedule = cosine { warmup_steps = 100, min_lr = 1e-6 }
  }
}
`;

test("a complete pipeline resolves with schema and family defaults", () => {
  const r = check({ "a.sft": base });
  assert.equal(r.diagnostics, []);
  const p = r.pipelines[0];
  assert.is(p.name, "base");
  assert.is(p.model.family, "chatglm2");
  assert.is(p.model.path, `${dir}/models/chatglm2-6b`);
  assert.is(p.model.tokenizer, p.model.path, "the tokenizer defaults to the checkpoint directory");
  assert.equal(p.method.target_modules, ["query_key_value"], "PEFT's default target for ChatGLM");
  assert.is(p.method.alpha, 16);
  assert.is(p.train.batch_size, 1);
  assert.is(p.train.output, `${dir}/runs/base`);
  assert.equal(p.decode, { strategy: "top_p", max_new_tokens: 8192, repetition_penalty: 1, stop: [], prompts: [], temperature: 0.8, top_k: 0, top_p: 0.8, num_return_sequences: 1, seed: 42 });
});

test("a user's decode keys win over the family's, which win over Hugging Face's", () => {
  const r = check({ "a.sft": base.replace("  train {", "  decode top_k {\n    temperature = 0.5\n  }\n  train {") });
  assert.equal(r.diagnostics, []);
  const d = r.pipelines[0].decode;
  assert.is(d.temperature, 0.5);
  assert.is(d.top_k, 50, "decode top_k samples among 50 unless told");
  assert.is(d.max_new_tokens, families.chatglm2.generation.max_new_tokens);
});

test("extends: same-kind sections merge key by key, another kind replaces, typed objects are replaced whole", () => {
  const child = `sft 1
import "./base.sft"
pipeline child extends base {
  model chatglm2 {
    dtype = f32
  }
  method qlora {
    alpha = 32
  }
  train {
    lr       = 3e-4
    schedule = cosine { warmup_steps = 10 }
  }
}
`;
  const r = check({ "child.sft": child, "base.sft": base });
  assert.equal(codesOf(r.diagnostics), ["SFT2020"], "qlora over f32 base weights is a conflict");
  const fixed = check({ "child.sft": child.replace("dtype = f32", "dtype = bf16"), "base.sft": base });
  assert.equal(fixed.diagnostics, []);
  const p = fixed.pipelines[0];
  assert.is(p.model.path, `${dir}/models/chatglm2-6b`, "the model merged: path inherited");
  assert.is(p.model.dtype, "bf16");
  assert.is(p.method.kind, "qlora");
  assert.is(p.method.rank, 8, "the parent's lora section (rank 4) was replaced, so rank is qlora's default");
  assert.is(p.method.alpha, 32);
  assert.is(p.train.epochs, 2, "train merged: epochs inherited");
  assert.is(p.train.lr, 3e-4);
  assert.equal(p.train.schedule, { type: "cosine", warmup_steps: 10, min_lr: 0 }, "min_lr not inherited from the parent's schedule");
  assert.equal(p.datasets.map((d) => d.name), ["belle", "safety"], "no dataset declared: all inherited");
});

test("extends: declared datasets replace the parent's, merging with the same name", () => {
  const child = `sft 1
import "./base.sft"
pipeline child extends base {
  dataset belle {
    eval_split = 0.1
  }
  dataset firefly {
    path = "data/firefly.jsonl"
  }
}
`;
  const r = check({ "child.sft": child, "base.sft": base });
  assert.equal(r.diagnostics, []);
  const ds = r.pipelines[0].datasets;
  assert.equal(ds.map((d) => d.name), ["belle", "firefly"]);
  assert.is(ds[0].max_length, 512, "merged with the parent's belle");
  assert.is(ds[0].eval_split, 0.1);
});

test("inherited paths stay relative to the file that wrote them", () => {
  const child = `sft 1
import "../shared/base.sft"
pipeline child extends base {
  model chatglm2 {
    path = "local/model"
  }
}
`;
  const overlay = new Map([
    [`${dir}/child.sft`, child],
    ["/virtual/shared/base.sft", base],
  ]);
  const r = checkFile(`${dir}/child.sft`, { checkFiles: false, overlay });
  assert.equal(r.diagnostics, []);
  assert.is(r.pipelines[0].model.path, `${dir}/local/model`);
  assert.is(r.pipelines[0].datasets[0].path, "/virtual/shared/data/belle.json");
});

test("overrides: keys, typed-object fields, every dataset or one, later wins", () => {
  const r = check({ "a.sft": base }, {
    overrides: ["train.lr=2e-4", "train.schedule.warmup_steps=7", "dataset.max_length=256", "dataset.safety.weight=0.2", "train.lr=5e-5", "model.dtype=bf16"],
  });
  assert.equal(r.diagnostics, []);
  const p = r.pipelines[0];
  assert.is(p.train.lr, 5e-5);
  assert.equal(p.train.schedule, { type: "cosine", warmup_steps: 7, min_lr: 1e-6 });
  assert.equal(p.datasets.map((d) => d.max_length), [256, 256]);
  assert.equal(p.datasets.map((d) => d.weight), [1, 0.2]);
  assert.is(p.model.dtype, "bf16");
});

test("an override's error points into the override's own text", () => {
  const r = check({ "a.sft": base }, { overrides: ["train.lr=2e-4", "method.rank=-3"] });
  assert.equal(codesOf(r.diagnostics), ["SFT3002"]);
  const span = r.diagnostics[0].span!;
  assert.equal([span.file, span.line, span.col, span.length], ["--set[2]", 1, 13, 2]);
  assert.is(r.texts.get("--set[2]"), "method.rank=-3");
});

test("schema errors point at the exact key or value", () => {
  const text = base.replace("rank = 4", "rank = 4\n    rnak = 4").replace("lr       = 1e-4", 'lr       = "fast"');
  const r = check({ "a.sft": text });
  const unknown = r.diagnostics.find((d) => d.code === "SFT2002")!;
  assert.is(text.slice(unknown.span!.offset, unknown.span!.offset + unknown.span!.length), "rnak");
  assert.match(unknown.message, /did you mean `rank`\?/);
  const type = r.diagnostics.find((d) => d.code === "SFT3001")!;
  assert.is(text.slice(type.span!.offset, type.span!.offset + type.span!.length), '"fast"');
  assert.equal(r.pipelines, [], "no resolved pipeline when there are errors");
});

test("pipeline selection: by name, unknown name, several without a choice, --all", () => {
  const two = `${base}\npipeline other extends base {\n  train {\n    lr = 1e-5\n  }\n}\n`;
  assert.equal(check({ "a.sft": two }, { pipeline: "other" }).pipelines.map((p) => p.name), ["other"]);
  const unknown = check({ "a.sft": two }, { pipeline: "othre" });
  assert.equal(codesOf(unknown.diagnostics), ["SFT2007"]);
  assert.match(unknown.diagnostics[0].message, /did you mean `other`\?/);
  const none = check({ "a.sft": two });
  assert.equal(codesOf(none.diagnostics), ["SFT2012"]);
  assert.match(none.diagnostics[0].message, /`base`, `other`/);
  assert.equal(check({ "a.sft": two }, { all: true }).pipelines.map((p) => p.name), ["base", "other"]);
});

test("an import cycle is reported with its chain of files", () => {
  const r = check({
    "a.sft": `sft 1\nimport "./b.sft"\n${base.slice(6)}`,
    "b.sft": 'sft 1\nimport "./c.sft"\n',
    "c.sft": 'sft 1\nimport "./a.sft"\n',
  });
  assert.equal(codesOf(r.diagnostics), ["SFT2011"]);
  assert.match(r.diagnostics[0].message, /a\.sft -> b\.sft -> c\.sft -> a\.sft/);
});

test("unreadable sources are diagnostics, not exceptions", () => {
  const missing = checkFile("/nonexistent/dir/x.sft");
  assert.equal(codesOf(missing.diagnostics), ["SFT2019"]);
  assert.match(missing.diagnostics[0].message, /does not exist/);
  const directory = checkFile(import.meta.dirname);
  assert.match(directory.diagnostics[0].message, /is a directory/);
});

test.run();
