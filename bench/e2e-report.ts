// The end-to-end training report: both sides run into one record (card, driver, tunings, the
// model, the options), sftc's figures over PyTorch's as ratios (like-for-like precision where
// PyTorch has it, a named stand-in where it does not), whether the run failed, and the markdown
// the command prints.
import { formatBytes } from "../compiler/passes/memory-plan.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { selfCheckOf } from "../runtime/gpu/kernel-self-check.ts";
import { tuningSource } from "../runtime/gpu/kernel-tuning.ts";
import { modelLabel, type E2eOptions, type Method } from "./e2e-options.ts";
import { sftcRuns, type SftcRow } from "./e2e-sftc.ts";
import { torchRun, type TorchRow, type TorchSide } from "./e2e-torch.ts";
import { machineFacts } from "./machine.ts";
import { table } from "./table.ts";
import { median } from "./train-step.ts";
import { profileTable } from "./profile.ts";

/** sftc's figure over PyTorch's: > 1 means sftc has more tokens/s, or more peak memory. */
export interface Ratio {
  sftc: string;
  reference: string;
  tokensPerSecond?: number;
  peakMemory?: number;
  /** Why the reference is not the like-for-like one, when it is not. */
  note?: string;
}

export interface E2eReport {
  date: string;
  command: string;
  card: string;
  driver: string;
  /** The kernel choices the device tuned when it opened ("job: choice"), none where it tuned nothing. */
  tunings: string[];
  model: string;
  options: E2eOptions;
  sftc: SftcRow[];
  torch?: TorchSide;
  ratios: Ratio[];
}

const torchLabel = (r: TorchRow) => `PyTorch+PEFT ${r.method === "qlora" ? "QLoRA (bitsandbytes NF4)" : "LoRA"} ${r.dtype}`;
const sftcLabel = (r: SftcRow) => `sftc ${r.method === "qlora" ? "QLoRA" : "LoRA"} (${r.precision})`;
const torchTokensPerSecond = (r: TorchRow & { available: true }, options: E2eOptions) => (options.rows * options.seq) / (median(r.samples_ns) / 1e9);

/**
 * sftc over PyTorch for each sftc row: LoRA against PEFT LoRA in f32 (same precision) and bf16
 * (the usual one); QLoRA against bitsandbytes QLoRA in bf16, or, without it, PEFT LoRA bf16 as a
 * named stand-in.
 */
export function ratios(sftc: readonly SftcRow[], torch: TorchSide | undefined, options: E2eOptions): Ratio[] {
  if (!torch?.available) return [];
  const find = (method: Method, dtype: string) => torch.rows.find((r): r is TorchRow & { available: true } => r.method === method && r.dtype === dtype && r.available);
  const out: Ratio[] = [];
  for (const row of sftc) {
    if (!row.ok) continue;
    const pairs: [TorchRow & { available: true }, string | undefined][] = [];
    if (row.method === "lora") {
      for (const dtype of ["f32", "bf16"]) {
        const ref = find("lora", dtype);
        if (ref) pairs.push([ref, undefined]);
      }
    } else {
      const qlora = find("qlora", "bf16");
      const standIn = find("lora", "bf16");
      if (qlora) pairs.push([qlora, undefined]);
      else if (standIn) pairs.push([standIn, "stand-in: bitsandbytes is missing, so no PyTorch QLoRA ran; PEFT LoRA bf16 (16-bit base weights) is the nearest reference"]);
    }
    for (const [ref, note] of pairs) {
      out.push({
        sftc: sftcLabel(row),
        reference: torchLabel(ref),
        tokensPerSecond: row.tokensPerSecond / torchTokensPerSecond(ref, options),
        ...(ref.peak_bytes ? { peakMemory: row.peakBytes / ref.peak_bytes } : {}),
        ...(note ? { note } : {}),
      });
    }
  }
  return out;
}

/** Whether the report holds a failure: an sftc run that did not finish, or a loss that is not finite. */
export function reportFailed(report: E2eReport): boolean {
  return report.sftc.some((r) => !r.ok || r.losses.some((x) => !Number.isFinite(x)));
}

const lossList = (xs: readonly number[]) => xs.map((x) => x.toFixed(4)).join(", ");

/** The report as markdown: where and how it ran, one row per engine and precision, the ratios. */
export function reportMarkdown(r: E2eReport): string {
  const header = ["engine", "method and precision", "tokens/s", "median step (ms)", "peak memory", "losses (warm-up first)", "setup (s)"];
  const rows: string[][] = r.sftc.map((x) =>
    x.ok
      ? [
          "sftc (WebGPU)",
          `${x.method}: ${x.precision}`,
          x.tokensPerSecond.toFixed(1),
          (x.medianNs / 1e6).toFixed(1),
          formatBytes(x.peakBytes),
          lossList(x.losses),
          `init ${x.initSeconds.toFixed(1)}, upload ${x.uploadSeconds.toFixed(1)}, first step ${x.firstStepSeconds.toFixed(1)}`,
        ]
      : ["sftc (WebGPU)", `${x.method}: ${x.precision}`, "failed", "-", "-", x.why, "-"],
  );
  const torch = r.torch;
  if (torch && !torch.available) rows.push(["PyTorch+PEFT", "all", "not available", "-", "-", torch.why, "-"]);
  if (torch?.available) {
    for (const t of torch.rows) {
      rows.push(
        t.available
          ? [`PyTorch ${torch.torch} (${torch.device})`, `${t.method} ${t.dtype}`, torchTokensPerSecond(t, r.options).toFixed(1), (median(t.samples_ns) / 1e6).toFixed(1), t.peak_bytes ? formatBytes(t.peak_bytes) : "-", lossList(t.losses), t.setup_seconds.toFixed(1)]
          : [`PyTorch ${torch.torch}`, `${t.method} ${t.dtype}`, "not available", "-", "-", t.why, "-"],
      );
    }
  }
  const ratioRows = r.ratios.map((x) => [x.sftc, x.reference, x.tokensPerSecond?.toFixed(3) ?? "-", x.peakMemory?.toFixed(3) ?? "-", x.note ?? ""]);
  const versions = torch?.available ? `PyTorch side: python ${torch.python}, torch ${torch.torch} (CUDA ${torch.cuda}), transformers ${torch.transformers}, peft ${torch.peft}, bitsandbytes ${torch.bitsandbytes ?? "not installed"}, SDPA attention, gradient checkpointing, LoRA on q/k/v/o_proj.` : "";
  return [
    `## End-to-end training: ${r.model}`,
    "",
    `- card: ${r.card}`,
    `- driver: ${r.driver}`,
    `- kernels tuned at device open: ${r.tunings.length ? r.tunings.join("; ") : "none"}`,
    `- date: ${r.date}`,
    `- command: \`${r.command}\``,
    `- batch: ${r.options.rows} x ${r.options.seq} tokens, LoRA rank ${r.options.rank}, alpha ${r.options.alpha}; sftc ${r.options.warmup} warm-up step(s) then the median (the upper of an even count) of ${r.options.steps} timed optimizer step(s), PyTorch ${r.options.torchWarmup} and ${r.options.torchSteps}; a step is forward, backward, clipping and AdamW, ended by waiting for the device`,
    "- peak memory: sftc counts its own tensor buffers (weights, NF4 parts, adapters, moments, activation pool, scratch), not Dawn's internal allocations or pipelines; PyTorch's is torch.cuda.max_memory_allocated (tensors, not the allocator's cache or the CUDA context)",
    ...(versions ? [`- ${versions}`] : []),
    "",
    table(header, rows),
    "",
    ...(ratioRows.length ? ["Ratios (sftc / PyTorch):", "", table(["sftc", "reference", "tokens/s ratio", "peak memory ratio", "note"], ratioRows)] : ["Ratios: none (no PyTorch figures)."]),
    ...r.sftc.flatMap((x) =>
      x.ok && x.profile
        ? ["", `GPU time of one sftc ${x.method} forward and backward by kernel (every dispatch in its own timed pass, so no overlap; clipping and AdamW not included):`, "", profileTable(x.profile)]
        : [],
    ),
  ].join("\n");
}

/** Runs the sftc side on `gpu`, then (with `python`) the PyTorch side, and assembles the report. */
export async function benchE2eTrain(gpu: GpuDevice, options: E2eOptions, run: { command: string; torch?: { python: string; device: "cuda" | "cpu" }; beforeTorch?: () => void }): Promise<E2eReport> {
  const { name, description } = gpu.adapter;
  const card = name && description ? `${name} (${description})` : name || description;
  const sftc = await sftcRuns(gpu, options);
  run.beforeTorch?.();
  const torch = run.torch ? torchRun(options, run.torch.python, run.torch.device) : undefined;
  return {
    date: new Date().toISOString(),
    command: run.command,
    card,
    driver: machineFacts().nvidiaSmi ?? "no nvidia-smi on this machine",
    tunings: (selfCheckOf(gpu)?.tunings ?? []).map((t) => `${t.job}: ${t.chosen} (${tuningSource(t)})`),
    model: modelLabel(options),
    options,
    sftc,
    ...(torch ? { torch } : {}),
    ratios: ratios(sftc, torch, options),
  };
}
