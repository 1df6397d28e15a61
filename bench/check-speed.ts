// How long `sftc check` takes on a large file: a generated 5,000-line file of pipelines that
// extend a shared base, checked end to end (a child process, as a user runs it) and in-process.
// Target: under 1 s. Prints figures; asserts nothing.
//   node bin/run-ts.js bench/check-speed.ts
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { checkFile } from "../compiler/check/check.ts";
import { parseSft } from "../grammar/parse.ts";

const targetLines = 5000;
const families = ["baichuan7b", "baichuan13b", "moss", "chatglm", "chatglm2"];
const methods = ["full", "lora", "qlora"];

function child(i: number): string {
  const family = families[i % families.length];
  const method = methods[i % methods.length];
  return `
// variant ${i}: ${family} with ${method}
pipeline variant_${i} extends base {
  model ${family} {
    path  = "models/${family}"
    dtype = ${method === "qlora" ? "f16" : "bf16"}
  }
  method ${method} {${method === "full" ? "" : `
    rank    = ${4 + (i % 8) * 4}
    alpha   = 16
    dropout = 0.05
    targets = [attn.qkv, attn.out]`}
  }
  dataset belle {
    max_length = ${512 + (i % 4) * 128}
    eval_split = 0.01
  }
  dataset safety extra_${i} {
    path       = "data/safety.json"
    categories = [Mental_Health, Insult, Physical_Harm]
    weight     = 0.2
  }
  train {
    lr         = ${(i % 9) + 1}e-5
    batch_size = ${1 + (i % 4)}
    schedule   = cosine { warmup_steps = ${i * 10}, min_lr = 1e-7 }
    seed       = ${i}
  }
  decode top_p {
    temperature    = 0.${(i % 9) + 1}
    top_p          = 0.8
    max_new_tokens = 256
    prompts        = ["晚上睡不着怎么办", "prompt ${i}"]
  }
}
`;
}

function generate(): { text: string; lines: number; pipelines: number } {
  let text = `sft 1

pipeline base {
  model chatglm2 {
    path = "models/chatglm2-6b"
  }
  method lora {}
  dataset belle {
    path = "data/belle.json"
  }
  train {
    epochs     = 2
    grad_accum = 4
  }
}
`;
  let pipelines = 1;
  while (text.split("\n").length < targetLines) text += child(pipelines++);
  return { text, lines: text.split("\n").length, pipelines };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median of `runs` timed calls, after one untimed call (so the first one's compilation is not counted). */
function time(runs: number, f: () => void): number {
  f();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    f();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

const { text, lines, pipelines } = generate();
const dir = mkdtempSync(join(tmpdir(), "sftc-bench-"));
const file = join(dir, "many.sft");
writeFileSync(file, text);
const bin = resolve(import.meta.dirname, "../bin/sftc.js");

try {
  const result = checkFile(file, { all: true, checkFiles: false });
  const errors = result.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || result.pipelines.length !== pipelines) {
    console.log(`generated file does not check clean: ${errors.length} errors, ${result.pipelines.length}/${pipelines} pipelines`);
    console.log(errors.slice(0, 3).map((d) => `${d.span?.line}:${d.span?.col} ${d.code} ${d.message}`).join("\n"));
    process.exitCode = 1;
  } else {
    const parseMs = time(5, () => parseSft(text, file));
    const checkMs = time(5, () => checkFile(file, { all: true, checkFiles: false }));
    const endToEnd = time(3, () => execFileSync(process.execPath, [bin, "check", "--all", "--no-files", file]));
    const startup = time(3, () => execFileSync(process.execPath, [bin, "--version"]));
    console.log(`sftc check on ${lines} lines, ${pipelines} pipelines (every one extends a base and is fully validated)`);
    console.log("");
    console.log("| measure | median ms |");
    console.log("|---|---|");
    console.log(`| parse only, in-process | ${parseMs.toFixed(0)} |`);
    console.log(`| check, in-process (parse, extends, schemas, cross-key checks, resolve) | ${checkMs.toFixed(0)} |`);
    console.log(`| \`sftc check --all --no-files\`, child process, end to end | ${endToEnd.toFixed(0)} |`);
    console.log(`| \`sftc --version\`, child process (Node + TypeScript loader start-up) | ${startup.toFixed(0)} |`);
    console.log("");
    console.log(`target: end to end under 1000 ms -> ${endToEnd < 1000 ? "met" : "not met"} on this machine (load average ${(await import("node:os")).loadavg()[0].toFixed(1)})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
