// End-to-end LoRA / QLoRA training on a Baichuan-7B-sized random-init model (hidden 4096, FFN
// 11008, 32 heads, vocab 64000, 32 layers unless --layers says otherwise), timed on the adapter
// by sftc's GPU engine and, with --torch, by PyTorch + PEFT (bench/torch_peft_train.py: a
// transformers Llama of the same dimensions, SDPA attention) on the same machine, as ratios.
//
//   node bin/run-ts.js bench/e2e-train.ts --method lora|qlora|lora,qlora [--layers N] [--seq 1024]
//     [--rows 1] [--rank 8] [--warmup 1] [--steps 2] [--torch] [--torch-warmup 3] [--torch-steps 10]
//     [--profile] [--dtype f32|bf16|f16] [--out FILE.json]
//
// sftc runs as `sftc run` runs a 7B pipeline: LoRA on the attention projections (W_pack, the
// fused q/k/v, and o_proj; PEFT's side adapts q_proj, k_proj, v_proj, o_proj), gradient
// checkpointing (each layer's input kept, the layer recomputed before its backward), f32
// weights (--dtype bf16 keeps the frozen ones in bf16, as a Baichuan pipeline's default
// model.dtype does), the engine's matmul and attention kernels for the adapter (f16 products
// on subgroup matrices where it has them and they pass their self-check, else f32; the precision column
// says which), QLoRA's base linears in NF4 decoded inside the matmul, AdamW over the
// adapters with global-norm clipping. Exits 1 when a loss is not finite or the sftc side fails.
//
// Work of one step at the 7B preset, seq 1024 (rows 1): the linears hold 6.48 G weights and the
// head 0.26 G, 2 FLOP per weight and token: forward 13.8 TFLOP, the layers' recomputation 13.3,
// the backward's input gradients 13.8 (frozen weights get none; the rank-8 adapters add < 1%),
// attention scores and values 4 · T² · C per layer = 0.55 TFLOP per pass, about 2.2 over the
// four passes: about 43 TFLOP per step. At the 10-20 TFLOP/s the tiled f32 matmul may reach on
// an H200 that is 2-4 s a step, hence the default of 1 warm-up and 2 timed steps. Measured on an
// H200 (2026-11-26, tiled matmul): 8.1 s a LoRA step and 8.7 s a QLoRA step (about 5 TFLOP/s),
// weights uploaded in 27 s (LoRA, f32) and 19 s (QLoRA); both methods with --torch took 129 s.
//
// This file is the command (its flags and the run); the options and model are in
// e2e-options.ts, the sftc side in e2e-sftc.ts, the PyTorch side in e2e-torch.ts, and the report
// (ratios, markdown) in e2e-report.ts.
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { WeightDType } from "../compiler/plan/settings.ts";
import { openBenchDevice } from "./adapter.ts";
import { torchDeviceFor } from "./ceilings.ts";
import { DEFAULT_OPTIONS, type E2eOptions, type Method } from "./e2e-options.ts";
import { benchE2eTrain, reportFailed, reportMarkdown } from "./e2e-report.ts";
import { TORCH_PYTHON } from "./train-step.ts";

const USAGE = "usage: node bin/run-ts.js bench/e2e-train.ts --method lora|qlora|lora,qlora [--layers N] [--seq 1024] [--rows 1] [--rank 8] [--warmup 1] [--steps 2] [--torch] [--torch-warmup 3] [--torch-steps 10] [--profile] [--dtype f32|bf16|f16] [--out FILE.json]";

function cliOptions(): { options: E2eOptions; torch: boolean; out?: string } {
  const stop = (message: string): never => {
    console.error(`e2e-train: ${message}\n${USAGE}`);
    process.exit(2);
  };
  let v;
  try {
    v = parseArgs({
      options: {
        method: { type: "string", default: "lora" },
        layers: { type: "string" },
        seq: { type: "string" },
        rows: { type: "string" },
        rank: { type: "string" },
        warmup: { type: "string" },
        steps: { type: "string" },
        "torch-warmup": { type: "string" },
        "torch-steps": { type: "string" },
        torch: { type: "boolean", default: false },
        profile: { type: "boolean", default: false },
        dtype: { type: "string", default: "f32" },
        out: { type: "string" },
      },
    }).values;
  } catch (e) {
    return stop(e instanceof Error ? e.message : String(e));
  }
  const methods = v.method.split(",");
  if (!methods.every((m): m is Method => m === "lora" || m === "qlora")) stop(`--method takes lora, qlora or lora,qlora (got '${v.method}')`);
  const count = (name: string, text: string | undefined, fallback: number, min: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    return Number.isInteger(n) && n >= min ? n : stop(`--${name} must be an integer >= ${min} (got '${text}')`);
  };
  const d = DEFAULT_OPTIONS;
  const options: E2eOptions = {
    methods: methods as Method[],
    layers: count("layers", v.layers, d.layers, 1),
    seq: count("seq", v.seq, d.seq, 2),
    rows: count("rows", v.rows, d.rows, 1),
    rank: count("rank", v.rank, d.rank, 1),
    alpha: d.alpha,
    warmup: count("warmup", v.warmup, d.warmup, 0),
    steps: count("steps", v.steps, d.steps, 1),
    torchWarmup: count("torch-warmup", v["torch-warmup"], d.torchWarmup, 0),
    torchSteps: count("torch-steps", v["torch-steps"], d.torchSteps, 1),
    profile: v.profile,
    dtype: (["f32", "bf16", "f16"].includes(v.dtype) ? v.dtype : stop(`--dtype takes f32, bf16 or f16 (got '${v.dtype}')`)) as WeightDType,
  };
  return { options, torch: v.torch, out: v.out };
}

async function main(): Promise<void> {
  const { options: given, torch, out } = cliOptions();
  const options: E2eOptions = { ...given, log: (line) => process.stderr.write(`${line}\n`) };
  const gpu = await openBenchDevice();
  const device = torchDeviceFor(gpu) === "cuda" ? "cuda" : "cpu";
  const command = ["node bin/run-ts.js bench/e2e-train.ts", ...process.argv.slice(2)].join(" ");
  // the device is closed before PyTorch starts, so its memory is PyTorch's
  const report = await benchE2eTrain(gpu, options, { command, ...(torch ? { torch: { python: device === "cuda" ? "python3" : TORCH_PYTHON, device } } : {}), beforeTorch: () => gpu.destroy() });
  console.log(reportMarkdown(report));
  if (out) writeFileSync(out, JSON.stringify(report, null, 2));
  process.exit(reportFailed(report) ? 1 : 0);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
