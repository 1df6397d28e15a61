// The PyTorch side of the end-to-end training bench: bench/torch_peft_train.py (PEFT LoRA, and
// bitsandbytes QLoRA where it is installed, on a transformers Llama of the options' dimensions)
// run in a child process under a wall-clock limit, its last line of JSON read back as rows; any
// failure makes the side unavailable, with the reason, instead of stopping the report.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { trainSettings } from "../runtime/train/settings.ts";
import { modelConfig, type E2eOptions, type Method } from "./e2e-options.ts";

const SCRIPT = resolve(import.meta.dirname, "torch_peft_train.py");
/** Precisions of the PyTorch reference rows. */
const TORCH_DTYPES = ["bf16", "f32"] as const;
/** The Python side's wall-clock limit: a hung reference must not stop the report. */
const TORCH_TIMEOUT_MS = 360_000;

/** One PyTorch + PEFT row, as bench/torch_peft_train.py reports it. */
export type TorchRow = { method: Method; dtype: string } & (
  | { available: true; setup_seconds: number; samples_ns: number[]; losses: number[]; peak_bytes: number | null; trainable_values: number; attn_implementation: string | null; rope_theta: number | null }
  | { available: false; why: string }
);

export type TorchSide =
  | { available: true; python: string; torch: string; cuda: string | null; transformers: string; peft: string; bitsandbytes: string | null; device: string; rows: TorchRow[] }
  | { available: false; why: string };

/** Runs bench/torch_peft_train.py with `options`' dimensions through `python` on `device`; any failure is an unavailable side. */
export function torchRun(options: E2eOptions, python: string, device: "cuda" | "cpu"): TorchSide {
  const d = modelConfig(options).dims;
  const s = trainSettings({});
  const spec = {
    hidden: d.hidden,
    ffn: d.ffn,
    heads: d.heads,
    layers: d.layers,
    vocab: d.vocab,
    seq: options.seq,
    rows: options.rows,
    rank: options.rank,
    alpha: options.alpha,
    warmup: options.torchWarmup,
    steps: options.torchSteps,
    methods: options.methods,
    dtypes: TORCH_DTYPES,
    device,
    seed: s.seed,
    lr: s.lr,
    max_grad_norm: s.max_grad_norm,
  };
  options.log?.(`PyTorch+PEFT: ${python} ${SCRIPT} on ${device}`);
  const ran = spawnSync(python, [SCRIPT, JSON.stringify(spec)], { encoding: "utf8", timeout: TORCH_TIMEOUT_MS, maxBuffer: 16 << 20 });
  const lastLine = (text: string | null) => text?.trim().split("\n").pop() ?? "";
  if (ran.error) return { available: false, why: `${python} ${SCRIPT} did not run: ${ran.error.message}` };
  if (ran.status !== 0) return { available: false, why: `${python} ${SCRIPT} exited with ${ran.status ?? ran.signal}: ${lastLine(ran.stderr)}` };
  try {
    return JSON.parse(lastLine(ran.stdout)) as TorchSide;
  } catch {
    return { available: false, why: `${python} ${SCRIPT} printed no JSON: ${lastLine(ran.stdout) || lastLine(ran.stderr)}` };
  }
}
