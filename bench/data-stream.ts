// Streams a large moss-003-sft-data file (YeungNLP layout) through the moss003 reader and
// prints records/s, MB/s, peak RSS and heap growth while reading. The file is generated in a
// temporary directory (deleted afterwards) from the bundled sample's turns, shuffled by a
// seeded Random, about 6 KB per record like the real 8.7 GB file. As a reference in the same
// process, the same file is read with node:readline + JSON.parse, the usual way.
//
//   node bin/run-ts.js bench/data-stream.ts [SIZE_MB=500]
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { Random } from "../runtime/random.ts";
import { collectDataset, readDataset } from "../runtime/data/read-dataset.ts";
import type { Turn } from "../runtime/data/conversation.ts";

const sizeMb = Number(process.argv[2] ?? 500);
const targetBytes = sizeMb * 1024 * 1024;

function stop(message: string): never {
  console.error(message);
  process.exit(1);
}

async function sampleTurns(): Promise<Turn[]> {
  const sample = await collectDataset({ format: "moss003", path: "pipelines/data/samples/moss003.jsonl" });
  if (!sample.ok) stop(sample.diagnostics.map((d) => d.message).join("\n"));
  return sample.value.conversations.flatMap((c) => c.turns);
}

/** Writes records of 3–9 turns (each answer repeated to reach ~6 KB) until `targetBytes`. */
async function generate(path: string, turns: Turn[]): Promise<number> {
  const random = new Random(20230609);
  const out = createWriteStream(path);
  const categories = ["Brainstorming", "Complex Instruction", "Code", "Role Playing", "Writing", "Harmless", "Others"];
  let written = 0;
  let records = 0;
  while (written < targetBytes) {
    const conversation = Array.from({ length: 3 + random.int(7) }, () => {
      const turn = turns[random.int(turns.length)];
      return { human: turn.user, assistant: turn.assistant.repeat(2 + random.int(3)) };
    });
    const line = JSON.stringify({ conversation_id: ++records, category: categories[random.int(categories.length)], conversation, dataset: "moss" }) + "\n";
    written += Buffer.byteLength(line);
    if (!out.write(line)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return records;
}

interface Measure {
  seconds: number;
  records: number;
  peakRssMb: number;
  heapGrowthMb: number;
}

/** Runs `read`, sampling RSS and heap every 200 ms. */
async function measure(read: () => Promise<number>): Promise<Measure> {
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peakRss = process.memoryUsage().rss;
  let peakHeap = heapBefore;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 200);
  const start = process.hrtime.bigint();
  const records = await read();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  clearInterval(sampler);
  const mb = 1024 * 1024;
  return { seconds, records, peakRssMb: peakRss / mb, heapGrowthMb: (peakHeap - heapBefore) / mb };
}

async function readWithSftc(path: string): Promise<number> {
  const stream = readDataset({ format: "moss003", path });
  let turns = 0;
  for await (const c of stream) turns += c.turns.length;
  if (stream.report.failed || turns === 0) stop(stream.report.diagnostics.map((d) => d.message).join("\n"));
  return stream.report.accepted;
}

async function readWithReadline(path: string): Promise<number> {
  const lines = createInterface({ input: createReadStream(path, { encoding: "utf8" }), crlfDelay: Infinity });
  let records = 0;
  for await (const line of lines) {
    const record = JSON.parse(line) as { conversation: unknown[] };
    if (record.conversation.length > 0) records++;
  }
  return records;
}

const dir = mkdtempSync(join(tmpdir(), "sftc-bench-data-"));
const path = join(dir, "moss-003-sft-data.jsonl");
try {
  const generated = await generate(path, await sampleTurns());
  const bytes = statSync(path).size;
  const mb = bytes / (1024 * 1024);
  console.log(`file: ${mb.toFixed(0)} MB, ${generated} records, ${(bytes / generated / 1024).toFixed(1)} KB/record`);
  console.log(`cpu: ${cpus()[0]?.model ?? "unknown"}, ${cpus().length} logical cores; node ${process.version}; load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  // Two alternating passes each: the first pass also warms the page cache and the JIT.
  const rows: [string, number, Measure][] = [];
  for (const pass of [1, 2]) {
    rows.push(["sftc readDataset (moss003)", pass, await measure(() => readWithSftc(path))]);
    rows.push(["node:readline + JSON.parse", pass, await measure(() => readWithReadline(path))]);
  }
  console.log("\n| reader | pass | records | seconds | records/s | MB/s | peak RSS MB | heap growth MB |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const [name, pass, m] of rows) {
    if (m.records !== generated) stop(`${name} read ${m.records} of ${generated} records`);
    console.log(`| ${name} | ${pass} | ${m.records} | ${m.seconds.toFixed(2)} | ${(m.records / m.seconds).toFixed(0)} | ${(mb / m.seconds).toFixed(1)} | ${m.peakRssMb.toFixed(0)} | ${m.heapGrowthMb.toFixed(1)} |`);
  }
  console.log(`\nsftc / readline time ratio, pass 2: ${(rows[2][2].seconds / rows[3][2].seconds).toFixed(2)}; load average now ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
