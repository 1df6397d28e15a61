// The benchmark harness: adapter facts, ceilings measured in the same run, and every kernel's
// throughput against them with its correctness against the float64 reference.
//   npm run bench -- [--size smoke|small|full] [--sections LIST] [--kernels REGEX] [--out FILE.md] [--json]
// --sections (kernels, ceilings, step, generation; default all) and --kernels (cases whose label
// matches) split a full-size run, which takes minutes, over several invocations.
// (`npm run -s bench -- --json` keeps npm's banner out of the JSON on stdout.)
// The adapter is Dawn's choice, or SFT_ADAPTER (a substring of the adapter name).
// Exits 1 when a kernel misses its reference, the training step's first loss misses PyTorch's, or
// the GPU reports an error; speed is never judged.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { openBenchDevice } from "./adapter.ts";
import { BENCH_SECTIONS, reportPassed, runBench, type BenchSection } from "./harness.ts";
import { reportMarkdown } from "./report.ts";
import { BENCH_SIZES, type BenchSize } from "./sizes.ts";

const USAGE = `usage: npm run bench -- [--size smoke|small|full] [--sections ${BENCH_SECTIONS.join(",")}] [--kernels REGEX] [--out FILE.md] [--json]`;

function stop(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  process.exit(2);
}

function options(): { size: BenchSize; sections: BenchSection[]; kernelFilter?: RegExp; out?: string; json: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        size: { type: "string", default: "small" },
        sections: { type: "string", default: BENCH_SECTIONS.join(",") },
        kernels: { type: "string" },
        out: { type: "string" },
        json: { type: "boolean", default: false },
      },
    }).values;
  } catch (e) {
    stop(e instanceof Error ? e.message : String(e));
  }
  const size = parsed.size as BenchSize;
  if (!BENCH_SIZES.includes(size)) stop(`--size must be one of ${BENCH_SIZES.join(", ")} (got '${parsed.size}')`);
  const sections = parsed.sections.split(",").map((s) => s.trim());
  const unknown = sections.find((s) => !(BENCH_SECTIONS as readonly string[]).includes(s));
  if (unknown !== undefined) stop(`--sections takes ${BENCH_SECTIONS.join(", ")} (got '${unknown}')`);
  let kernelFilter: RegExp | undefined;
  try {
    kernelFilter = parsed.kernels === undefined ? undefined : new RegExp(parsed.kernels);
  } catch (e) {
    stop(`--kernels is not a regular expression: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { size, sections: sections as BenchSection[], kernelFilter, out: parsed.out, json: parsed.json };
}

const { size, sections, kernelFilter, out, json } = options();
const gpu = await openBenchDevice();
const command = ["npm run bench --", ...process.argv.slice(2)].join(" ");
const report = await runBench(gpu, { size, command, sections, kernelFilter, progress: (line) => process.stderr.write(`bench: ${line}\n`) });
gpu.destroy();
const markdown = reportMarkdown(report);
if (out) writeFileSync(out, markdown);
console.log(json ? JSON.stringify(report, null, 2) : markdown);
process.exit(reportPassed(report) ? 0 : 1);
