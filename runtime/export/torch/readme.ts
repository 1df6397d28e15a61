// The README.md of an exported torchrun job: what is in the directory and how to launch it on
// one node, on several nodes, and with torch.multiprocessing where torchrun does not work.
import type { TrainSettings } from "../../train/settings.ts";

export interface ReadmeFacts {
  pipeline: string;
  family: string;
  method: string;
  totalSteps: number;
  train: TrainSettings;
}

/** README.md text for a job. */
export function jobReadme(f: ReadmeFacts): string {
  return `# ${f.pipeline}: ${f.family}, ${f.method}, ${f.totalSteps} optimizer steps

Exported by \`sftc export --target torchrun\`. The job trains what \`sftc run\` trains: the same
initial weights, the same tokenized examples in the same micro-batches and order, the same step
(token-mean loss over the global batch, gradient clipping at ${f.train.max_grad_norm}, AdamW at lr ${f.train.lr}
with the ${f.train.schedule.type} schedule, ${f.train.grad_accum} micro-batch(es) per step). Each micro-batch's rows are
split across the processes, so the loss sequence does not depend on how many processes run it
(exactly so without dropout: each process draws its own dropout masks).

| file | what |
|---|---|
| \`model.py\` | the model as a PyTorch module, generated from the family declaration; its state-dict keys are the checkpoint's names |
| \`train.py\` | the training script (DDP by default, \`--mode fsdp\` for PyTorch 2.x) |
| \`checkpoint_io.py\` | Hugging Face, safetensors and PEFT file formats (torch only) |
| \`config.json\` | the resolved pipeline, method, train settings and step count |
| \`data/\` | tokenized examples (\`input_ids.i32\`, \`labels.i32\`, \`examples.json\`) and \`batches.json\` (the micro-batches of every epoch) |
| \`init/adapter/\` | LoRA: the initial adapters |

## Launch

One node, 8 GPUs (NCCL):

    torchrun --standalone --nproc_per_node 8 train.py --dtype bfloat16 --mode fsdp

Several nodes (run on every node; node_rank 0 .. nnodes-1, MASTER = the address of node 0):

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --master_addr MASTER --master_port 29500 train.py --mode fsdp

CPU processes with gloo, without torchrun (Debian's PyTorch 1.13 under Python 3.11, whose
torchrun agent and FSDP do not work): DDP through torch.multiprocessing:

    python3 train.py --spawn 2 --device cpu

Options: \`--mode ddp|fsdp\`, \`--device auto|cpu|cuda\`, \`--dtype float32|float64|bfloat16\`,
\`--run DIR\` (default \`run/\`), \`--model-dir DIR\` (default: the pipeline's model path),
\`--resume latest\` or \`--resume DIR\`, \`--stop-after N\`.

## Outputs (sftc's formats)

- \`run/metrics.jsonl\`: one line per optimizer step (step, loss, lr, grad_norm, label_tokens).
- \`run/checkpoints/step-NNNNNNNN/\`: every ${f.train.save_every} steps and at the end; the weights as
  \`model.safetensors\` (full) or \`adapter/\` (a PEFT directory), and \`state.pt\` with the optimizer
  state and step for \`--resume\`. A checkpoint appears whole or not at all.
- \`run/final/\`: the trained model (Hugging Face safetensors with the base model's config and
  tokenizer files) or the trained adapter (PEFT), for \`sftc generate\` and \`sftc export --merge\`.

QLoRA needs bitsandbytes and a CUDA GPU; without them the job stops with a message saying so.
Every process builds the whole model in host memory before FSDP shards it onto its GPU: a 13B
model in bfloat16 takes about 26 GB of host memory per process.
`;
}
