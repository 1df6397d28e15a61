// Per-kernel throughput on the current adapter (SFT_ADAPTER picks one): time per dispatch from
// GPU timestamps when the device has them, else wall time around onSubmittedWorkDone, and the
// GFLOP/s and GB/s it implies. FLOPs of non-matmul kernels are nominal per-element counts
// (given in the table); bytes are the minimum traffic (every input read once, every output
// written once). Run: node bin/run-ts.js bench/kernels.ts
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { CommandBatch } from "../runtime/gpu/batch.ts";
import { openDevice, type GpuDevice } from "../runtime/gpu/device.ts";
import { pipelinesOf } from "../runtime/gpu/pipelines.ts";
import { createTensor, uploadTensor, type GpuTensor } from "../runtime/gpu/tensor.ts";
import { Random } from "../runtime/random.ts";
import { activationForward, swigluForward } from "../stdlib/kernels/activations.ts";
import { adamwStep, adamwUniforms, ADAMW_DEFAULTS } from "../stdlib/kernels/adamw.ts";
import { crossEntropy, IGNORE_INDEX } from "../stdlib/kernels/cross-entropy.ts";
import { bytesPerElement, type StorageDType } from "../stdlib/kernels/dtype.ts";
import { embeddingBackward, embeddingForward, embeddingGradPlan } from "../stdlib/kernels/embedding.ts";
import { gradNormPartial, gradNormPartials } from "../stdlib/kernels/grad-clip.ts";
import type { KernelSpec, UniformValues } from "../stdlib/kernels/kernel.ts";
import { matmulKernel, matmulStrategyFor, matmulUniforms, type MatmulStrategy } from "../stdlib/kernels/matmul.ts";
import { normBackwardInput, normForward } from "../stdlib/kernels/norms.ts";

interface Case {
  label: string;
  shape: string;
  spec: KernelSpec;
  uniforms: UniformValues;
  tensors: Record<string, GpuTensor>;
  flops: number;
  bytes: number;
}

const rng = new Random(1);

function filled(gpu: GpuDevice, dtype: StorageDType, shape: number[]): GpuTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = rng.normal() * 0.5;
  return uploadTensor(gpu, dtype, shape, values);
}

function matmulCase(gpu: GpuDevice, m: number, n: number, k: number, b: StorageDType, transB: boolean, strategy: MatmulStrategy): Case {
  const shape = { batch: 1, m, n, k };
  const spec = matmulKernel({ a: "f32", b, out: "f32", transA: false, transB }, shape, strategy);
  return {
    label: `matmul ${strategy} f32 x ${b}${transB ? " (B^T)" : ""}`,
    shape: `${m}x${n}x${k}`,
    spec,
    uniforms: matmulUniforms(shape, { transA: false, transB }),
    tensors: { a: filled(gpu, "f32", [m, k]), b: filled(gpu, b, transB ? [n, k] : [k, n]), c: createTensor(gpu, "f32", [m, n]) },
    flops: 2 * m * n * k,
    bytes: 4 * m * k + bytesPerElement(b) * k * n + 4 * m * n,
  };
}

function cases(gpu: GpuDevice, big: boolean): Case[] {
  const s = (small: number, large: number) => (big ? large : small);
  const mm = s(256, 4096);
  const n = s(1 << 20, 1 << 26);
  const [rows, cols] = [s(256, 4096), s(1024, 4096)];
  const [tokens, vocab] = [s(64, 4096), s(8000, 64000)];
  const dim = s(512, 4096);
  const ids = Int32Array.from({ length: tokens }, () => rng.int(vocab));
  const plan = embeddingGradPlan(ids);
  const preferred = matmulStrategyFor(gpu.adapter.architecture);
  const out: Case[] = [
    matmulCase(gpu, mm, mm, mm, "f32", false, "tiled"),
    matmulCase(gpu, mm, mm, mm, "f32", false, "registers"),
    matmulCase(gpu, mm, mm, mm, "bf16", true, preferred),
    ...(gpu.hasF16 ? [matmulCase(gpu, mm, mm, mm, "f16", true, preferred)] : []),
    matmulCase(gpu, mm - 1, mm - 3, mm - 5, "f32", false, "tiled"), // scalar loads
    {
      label: "silu forward (4 flop/elem)",
      shape: `${n}`,
      spec: activationForward("silu", "f32"),
      uniforms: { n },
      tensors: { x: filled(gpu, "f32", [n]), y: createTensor(gpu, "f32", [n]) },
      flops: 4 * n,
      bytes: 8 * n,
    },
    {
      label: "swiglu fused forward (5 flop/elem)",
      shape: `${n / 4}x2x2`,
      spec: swigluForward("f32", true),
      uniforms: { n: n / 2, cols: 2 },
      tensors: { x: filled(gpu, "f32", [n]), y: createTensor(gpu, "f32", [n / 2]) },
      flops: 5 * (n / 2),
      bytes: 4 * n + 4 * (n / 2),
    },
    {
      label: "rmsnorm forward (4 flop/elem)",
      shape: `${rows}x${cols}`,
      spec: normForward("rms", "f32", "f32"),
      uniforms: { rows, cols, eps: 1e-6 },
      tensors: { x: filled(gpu, "f32", [rows, cols]), w: filled(gpu, "f32", [cols]), y: createTensor(gpu, "f32", [rows, cols]), rstd: createTensor(gpu, "f32", [rows]) },
      flops: 4 * rows * cols,
      bytes: 8 * rows * cols,
    },
    {
      label: "layernorm backward dx (10 flop/elem)",
      shape: `${rows}x${cols}`,
      spec: normBackwardInput("layer", "f32", "f32"),
      uniforms: { rows, cols, eps: 1e-5 },
      tensors: {
        x: filled(gpu, "f32", [rows, cols]),
        w: filled(gpu, "f32", [cols]),
        dy: filled(gpu, "f32", [rows, cols]),
        mean: filled(gpu, "f32", [rows]),
        rstd: filled(gpu, "f32", [rows]),
        dx: createTensor(gpu, "f32", [rows, cols]),
      },
      flops: 10 * rows * cols,
      bytes: 12 * rows * cols,
    },
    {
      label: "cross-entropy + grad (6 flop/elem)",
      shape: `${tokens}x${vocab}`,
      spec: crossEntropy({ logits: "f32", grad: true }),
      uniforms: { rows: tokens, vocab, ignore: IGNORE_INDEX, scale: 1 / tokens },
      tensors: {
        logits: filled(gpu, "f32", [tokens, vocab]),
        targets: uploadTensor(gpu, "i32", [tokens], ids),
        loss: createTensor(gpu, "f32", [tokens]),
        d_logits: createTensor(gpu, "f32", [tokens, vocab]),
      },
      flops: 6 * tokens * vocab,
      bytes: 8 * tokens * vocab,
    },
    {
      label: "embedding forward (0 flop)",
      shape: `${tokens}x${dim} of ${vocab}`,
      spec: embeddingForward("f32"),
      uniforms: { n: tokens * dim, dim, vocab },
      tensors: { ids: uploadTensor(gpu, "i32", [tokens], ids), table: filled(gpu, "f32", [vocab, dim]), out: createTensor(gpu, "f32", [tokens, dim]) },
      flops: 0,
      bytes: 8 * tokens * dim,
    },
    {
      label: "embedding backward (1 flop/elem)",
      shape: `${tokens}x${dim} of ${vocab}`,
      spec: embeddingBackward(false),
      uniforms: { groups: plan.unique.length, dim },
      tensors: {
        unique: uploadTensor(gpu, "i32", [plan.unique.length], plan.unique),
        offsets: uploadTensor(gpu, "u32", [plan.offsets.length], plan.offsets),
        positions: uploadTensor(gpu, "u32", [plan.positions.length], plan.positions),
        d_out: filled(gpu, "f32", [tokens, dim]),
        d_table: createTensor(gpu, "f32", [vocab, dim]),
      },
      flops: tokens * dim,
      bytes: 4 * tokens * dim + 4 * plan.unique.length * dim,
    },
    {
      label: "adamw step (14 flop/elem)",
      shape: `${n}`,
      spec: adamwStep(false),
      uniforms: adamwUniforms(n, 1, ADAMW_DEFAULTS),
      tensors: { p: filled(gpu, "f32", [n]), g: filled(gpu, "f32", [n]), m: createTensor(gpu, "f32", [n]), v: createTensor(gpu, "f32", [n]) },
      flops: 14 * n,
      bytes: 28 * n,
    },
    {
      label: "grad norm partials (2 flop/elem)",
      shape: `${n}`,
      spec: gradNormPartial("f32"),
      uniforms: { n, offset: 0 },
      tensors: { g: filled(gpu, "f32", [n]), partials: createTensor(gpu, "f32", [gradNormPartials(n)]) },
      flops: 2 * n,
      bytes: 4 * n,
    },
  ];
  return out;
}

async function timeCase(gpu: GpuDevice, c: Case, reps: number): Promise<{ ns: number; source: string }> {
  const compiled = await pipelinesOf(gpu).compile(c.spec);
  if (!compiled.ok) throw new Error(compiled.diagnostics.map((d) => d.message).join("\n"));
  const warm = new CommandBatch(gpu);
  warm.dispatch(c.spec, c.uniforms, c.tensors);
  await warm.submit();
  const batch = new CommandBatch(gpu, { timestamps: true });
  for (let r = 0; r < reps; r++) batch.dispatch(c.spec, c.uniforms, c.tensors);
  const start = performance.now();
  const timings = await batch.submit();
  const wallNs = ((performance.now() - start) * 1e6) / reps;
  if (timings.length === 0) return { ns: wallNs, source: "wall" };
  const sorted = timings.map((t) => t.ns).sort((a, b) => a - b);
  return { ns: sorted[Math.floor(sorted.length / 2)], source: "gpu" };
}

// PyTorch CPU on the same host, timed in this invocation, as the reference for a CPU adapter.
function torchMatmulNs(size: number): number | undefined {
  const script = `import time, torch
torch.set_num_threads(${cpus().length})
a = torch.randn(${size}, ${size}); b = torch.randn(${size}, ${size})
for _ in range(3): a @ b
t = time.perf_counter()
for _ in range(10): a @ b
print((time.perf_counter() - t) / 10 * 1e9)`;
  try {
    return Number(execFileSync("/usr/bin/python3", ["-c", script], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  } catch {
    return undefined;
  }
}

const opened = await openDevice();
if (!opened.ok) {
  for (const d of opened.diagnostics) console.error(`${d.code} ${d.message}${d.hint ? `\n  hint: ${d.hint}` : ""}`);
  process.exit(1);
}
const gpu = opened.value;
const software = gpu.adapter.architecture === "software" || /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapter.name);
console.log(`adapter: ${gpu.adapter.name} (${gpu.adapter.vendor}, ${gpu.adapter.architecture})`);
console.log(`host: ${cpus().length} logical CPUs, ${cpus()[0]?.model ?? "unknown CPU"}`);
console.log(`timing: ${gpu.hasTimestamps ? "GPU timestamps (median of reps)" : "wall time around onSubmittedWorkDone (mean of reps)"}; sizes: ${software ? "small (software adapter)" : "large"}\n`);
const rows: string[][] = [["kernel", "shape", "us/dispatch", "GFLOP/s", "GB/s"]];
for (const c of cases(gpu, !software)) {
  const { ns } = await timeCase(gpu, c, software ? 5 : 20);
  rows.push([c.label, c.shape, (ns / 1e3).toFixed(1), c.flops ? (c.flops / ns).toFixed(2) : "-", (c.bytes / ns).toFixed(2)]);
  for (const t of Object.values(c.tensors)) t.destroy();
}
if (software) {
  const mm = 256;
  const ns = torchMatmulNs(mm);
  const ours = rows.find((r) => r[0] === "matmul registers f32 x f32");
  if (ns && ours)
    console.log(`reference: PyTorch CPU matmul ${mm}x${mm}x${mm} f32: ${(ns / 1e3).toFixed(1)} us, ${((2 * mm ** 3) / ns).toFixed(2)} GFLOP/s; registers kernel / PyTorch time = ${((Number(ours[2]) * 1e3) / ns).toFixed(2)}\n`);
  else console.log("reference: PyTorch CPU (/usr/bin/python3 with torch) not available\n");
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const r of rows) console.log(r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  "));
const errors = await gpu.takeErrors();
for (const d of errors) console.error(`${d.code} ${d.message}`);
gpu.destroy();
process.exit(errors.length ? 1 : 0);
