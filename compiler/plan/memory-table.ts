// The table of docs/memory.md: the peak of one training step for every published model x method
// x sequence length, at batch 1, with and without gradient checkpointing. Each case is the
// repository's own pipeline (pipelines/FAMILY-METHOD.sft) with overrides, planned at full depth
// from the family's published dimensions. compiler/plan/write-memory-table.ts writes the doc.
import { join } from "node:path";
import { checkFile } from "../check/check.ts";
import { diag, fail, type Result } from "../diagnostics.ts";
import { formatBytes } from "../passes/memory-plan.ts";
import { planPipeline, type PlannedPipeline } from "./plan-pipeline.ts";

export const TABLE_FAMILIES = ["baichuan7b", "baichuan13b", "moss", "chatglm", "chatglm2"] as const;
export const TABLE_METHODS = ["full", "lora", "qlora"] as const;
export const TABLE_SEQUENCES = [512, 1024, 2048] as const;

export interface TableCase {
  family: (typeof TABLE_FAMILIES)[number];
  method: (typeof TABLE_METHODS)[number];
  seq: number;
  checkpointing: boolean;
}

/** Plans one case from the pipelines folder `dir`: batch 1, no accumulation, every dataset at `seq`; `more` overrides. */
export function planCase(dir: string, c: TableCase, more: readonly string[] = []): Result<PlannedPipeline> {
  const file = join(dir, `${c.family}-${c.method}.sft`);
  const overrides = ["train.batch_size=1", "train.grad_accum=1", `train.gradient_checkpointing=${c.checkpointing}`, ...more];
  const checked = checkFile(file, { checkFiles: false, overrides });
  if (checked.pipelines.length !== 1) return fail(...checked.diagnostics, diag("SFT3101", `${file} did not resolve to one pipeline`, { where: file }));
  const pipeline = checked.pipelines[0];
  return planPipeline({ ...pipeline, datasets: pipeline.datasets.map((d) => ({ ...d, max_length: c.seq })) });
}

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(bytes < 0.1 * 2 ** 30 ? 3 : 1);

/** One table row: a model and method with or without checkpointing, the step's peak per sequence length. */
export function tableRow(dir: string, family: TableCase["family"], method: TableCase["method"], checkpointing: boolean): Result<{ row: string; plans: PlannedPipeline[] }> {
  const plans: PlannedPipeline[] = [];
  for (const seq of TABLE_SEQUENCES) {
    const planned = planCase(dir, { family, method, seq, checkpointing });
    if (!planned.ok) return planned;
    plans.push(planned.value);
  }
  const first = plans[0].plan;
  const cells = plans.map((p) => `${gib(p.plan.training.peak)} (${gib(p.plan.training.activations)})`);
  const row = `| ${family} | ${first.method} | ${checkpointing ? "on" : "off"} | ${gib(first.training.weights)} | ${gib(first.training.adapters + first.training.masterWeights + first.training.optimizerState)} | ${cells.join(" | ")} |`;
  return { ok: true, value: { row, plans }, diagnostics: [] };
}

/** The generated block of docs/memory.md. */
export function renderMemoryTable(dir: string): Result<string> {
  const lines = [
    "| model | method | checkpointing | weights | trained state | peak @512 (activations) | peak @1024 | peak @2048 |",
    "|---|---|---|---|---|---|---|---|",
  ];
  let target: PlannedPipeline | undefined;
  for (const family of TABLE_FAMILIES) {
    for (const method of TABLE_METHODS) {
      for (const checkpointing of [false, true]) {
        const row = tableRow(dir, family, method, checkpointing);
        if (!row.ok) return row;
        lines.push(row.value.row);
        if (family === "baichuan7b" && method === "qlora" && checkpointing) target = row.value.plans[0];
      }
    }
  }
  const t = target!.plan.training;
  const rank8 = planCase(dir, { family: "baichuan7b", method: "qlora", seq: 512, checkpointing: true }, ["method.rank=8"]);
  if (!rank8.ok) return rank8;
  const r = rank8.value.plan.training;
  const gb = (bytes: number) => `${formatBytes(bytes)} = ${(bytes / 1e9).toFixed(2)} GB`;
  lines.push(
    "",
    `All figures in GiB (2^30 bytes), one training step at batch 1, grad_accum 1; "trained state" is adapters, master weights and AdamW state.`,
    "",
    `**Target check.** Baichuan-7B, QLoRA (${target!.plan.method}), sequence 512, batch 1, gradient checkpointing: ` +
      `peak ${gb(t.peak)}, which ${t.peak < 6e9 ? "meets" : "misses"} the target of 6 GB ` +
      `(weights ${formatBytes(t.weights)}, adapters ${formatBytes(t.adapters)}, AdamW state ${formatBytes(t.optimizerState)}, arena ${formatBytes(t.arena)} of which activations ${formatBytes(t.activations)}). ` +
      `With rank 8 on the same layers the peak is ${gb(r.peak)}, which ${r.peak < 6e9 ? "meets" : "misses"} it.`,
  );
  return { ok: true, value: lines.join("\n"), diagnostics: [] };
}
