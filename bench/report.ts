// A benchmark report as markdown: one section per part of the run, every figure next to what
// it was measured with and what it is divided by.
import { tuningSource } from "../runtime/gpu/kernel-tuning.ts";
import type { BenchReport, BenchSection } from "./harness.ts";
import type { TrainStepResult } from "./train-step.ts";
import { profileTable } from "./profile.ts";
import { SEVEN_B } from "./sizes.ts";
import { table } from "./table.ts";

/** Titles of the report's sections, in order. */
export const SECTIONS = ["Adapter", "Ceilings measured in this run", "Kernels", "Training step", "Generation", "Machine and run"] as const;

const MiB = 2 ** 20;

const percent = (x: number | undefined) => (x === undefined ? "-" : `${(100 * x).toPrecision(3)}%`);
const fixed = (x: number | undefined, digits = 2) => (x === undefined ? "-" : x.toFixed(digits));
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");

function adapterSection(r: BenchReport): string {
  const a = r.adapter;
  const configs = a.subgroupMatrixConfigs.length
    ? a.subgroupMatrixConfigs.map((c) => `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`).join(", ")
    : "none";
  const facts = table(
    ["fact", "value"],
    [
      ["name", a.name],
      ["vendor", a.vendor],
      ["architecture", a.architecture],
      ["driver (description)", a.description],
      ["backend", a.backend],
      ["fallback adapter", String(a.isFallbackAdapter)],
      ["subgroup size (min, max)", `${a.subgroupMinSize}, ${a.subgroupMaxSize}`],
      ["subgroup-matrix configs", configs],
      ["features", a.features.join(", ")],
    ],
  );
  const limits = table(["limit", "value"], Object.entries(a.limits).map(([k, v]) => [k, String(v)]));
  const toggles = table(["Dawn toggle", "state", "evidence"], r.toggles.map((t) => [t.toggle, t.state, t.evidence]));
  return `${facts}\n\nKey limits:\n\n${limits}\n\nDawn toggles:\n\n${toggles}\n\n${tuningText(r)}`;
}

// Each tuned choice with every candidate's time, as the device measured them when it opened.
function tuningText(r: BenchReport): string {
  if (r.tunings.length === 0) return "Kernel tuning at device open: none (a CPU adapter's registers kernels have nothing to tune, SFT_TUNE=off, or no candidate passed its check).";
  return r.tunings
    .map((t) => {
      const rows = t.timings.map((x) => [x.name === t.chosen ? `**${x.name}** (chosen)` : x.name, `${x.ms.toFixed(4)} ms`, ""]);
      const rejected = t.rejected.map((x) => [x.name, "-", x.why]);
      return `Kernel tuning at device open, ${t.job}: ${t.chosen} (${tuningSource(t)}), on ${t.problem} (best round's median dispatch):\n\n${table(["candidate", "time", "rejected because"], [...rows, ...rejected])}`;
    })
    .join("\n\n");
}

function ceilingsSection(r: BenchReport): string {
  const b = r.bandwidth;
  const rows = [
    [
      "memory bandwidth",
      `${b.gbs.toFixed(2)} GB/s`,
      `copyBufferToBuffer of ${(b.bytes / MiB).toFixed(0)} MiB on '${r.adapter.name}' (read + write = ${((2 * b.bytes) / MiB).toFixed(0)} MiB of traffic), ` +
        `${b.timing === "gpu timestamps" ? "median" : "mean"} of ${b.reps} copies, ${b.timing}: ${(b.nsPerCopy / 1e3).toFixed(1)} us per copy`,
    ],
  ];
  const t = r.matmulReference;
  if (t.available && t.copy)
    rows.push([
      "memory bandwidth (CUDA)",
      `${t.copy.gbs.toFixed(2)} GB/s`,
      `PyTorch ${t.torch} device-to-device copy of ${(t.copy.bytes / MiB).toFixed(0)} MiB on ${t.device} (read + write counted), median of ${t.reps}: ${(t.copy.ns / 1e3).toFixed(1)} us per copy`,
    ]);
  if (t.available)
    for (const m of t.results)
      rows.push([
        `matmul ${m.dtype} ${m.m}x${m.n}x${m.k}`,
        `${m.gflops.toFixed(2)} GFLOP/s`,
        `PyTorch ${t.torch} on ${t.kind} (${t.device}) via ${t.python}, median of ${t.reps}: ${(m.ns / 1e3).toFixed(1)} us`,
      ]);
  else rows.push(["matmul reference", "not measured", t.why]);
  return table(["ceiling", "figure", "measured with"], rows);
}

function kernelsSection(r: BenchReport): string {
  const timing = r.kernels[0]?.timing ?? "gpu timestamps";
  const intro =
    `Time per dispatch: ${timing === "gpu timestamps" ? "median of" : "mean over"} ${r.shapes.reps} dispatches (${timing}). ` +
    (timing === "gpu timestamps" ? "Wall: the wall time of the timed submission (submit to completion, timestamps resolved) over its dispatches, a check on the timestamps. " : "") +
    "FLOPs of non-matmul kernels are nominal per-element counts (in the label); GB/s counts the minimum traffic. " +
    "Fraction: GFLOP/s over the PyTorch matmul at the same shape (f16 for the kernels with f16 products on subgroup matrices, f32 with TF32 off for the rest; attention: the square shape) or GB/s over the copy bandwidth (the rest: the CUDA copy where PyTorch has a GPU, else the WebGPU copy). " +
    "Correctness: the outputs of one dispatch on fresh inputs against the float64 CPU reference of stdlib/kernels, ‖out−ref‖/‖ref‖ (worst output of the kernel). " +
    "Subgroup-matrix rows multiply f16 values (inputs rounded to f16, f32 accumulation unless the label says f16): their reference rounds its inputs alike. " +
    "A kernel that failed to compile or raised a GPU error shows FAIL with the error.";
  const rows = r.kernels.map((k) => [
    k.label,
    k.shape,
    (k.nsPerDispatch / 1e3).toFixed(1),
    k.timing === "gpu timestamps" ? (k.wallNsPerDispatch / 1e3).toFixed(1) : "-",
    fixed(k.gflops),
    fixed(k.gbs),
    percent(k.fraction),
    k.ceiling,
    k.check.relativeError.toExponential(2),
    k.check.tolerance.toExponential(0),
    k.check.rows,
    k.passed ? "pass" : k.error ? `FAIL: ${k.error}` : "FAIL",
  ]);
  const header = ["kernel", "shape", "us/dispatch", "wall us/dispatch", "GFLOP/s", "GB/s", "of ceiling", "ceiling", "rel. error", "tolerance", "checked", "check"];
  return `${intro}\n\n${table(header, rows)}`;
}

const ms = (ns: number) => (ns / 1e6).toFixed(1);

function trainingSection(s: TrainStepResult): string {
  const t = s.torch;
  const intro =
    `${s.pipeline}: ${s.model}; ${s.trainableTensors} trainable tensors, ${s.trainableValues} values. ` +
    `One step = forward, backward, global-norm clipping and AdamW on the trainable tensors, over one seeded batch of ${s.rows} x ${s.seq} random tokens ` +
    `(every position but the last of each row labelled). ${s.warmup} untimed warm-up steps (sftc compiles its program in the first), then the median wall time of ${s.steps} steps; ` +
    "tokens/s = rows x seq / median step. PyTorch runs the model.py sftc generates for the family (runtime/export/torch/model-py.ts) with the same initial weights " +
    "(bench/torch_train_step.py); the first loss of both shows they ran the same model.";
  const rows = [
    ["sftc", s.sftc.device, ms(s.sftc.medianNs), s.sftc.tokensPerSecond.toFixed(1), s.sftc.losses[0].toFixed(6), s.sftc.losses.at(-1)!.toFixed(6)],
    t.available
      ? [`PyTorch ${t.torch} CPU`, `${t.python}, ${t.threads} threads, BLAS ${t.blas.join(", ") || "none loaded"}`, ms(t.medianNs), t.tokensPerSecond.toFixed(1), t.losses[0].toFixed(6), t.losses.at(-1)!.toFixed(6)]
      : ["PyTorch CPU", `not measured: ${t.why}`, "-", "-", "-", "-"],
  ];
  const verdict =
    s.ratio === undefined
      ? "No ratio: PyTorch did not run."
      : `sftc / PyTorch tokens/s: **${s.ratio.toFixed(2)}** (${s.ratio >= 1 ? "sftc faster" : "sftc slower"} on this machine). ` +
        `First-loss relative difference: ${s.firstLossDifference!.toExponential(2)}.`;
  return `${intro}\n\n${table(["engine", "device", "ms/step (median)", "tokens/s", "first loss", "last loss"], rows)}\n\n${verdict}`;
}

/** The generation section: the rows, the 7B decode bandwidth per storage dtype, and the ratios to transformers. */
export function generationSection(r: Pick<BenchReport, "generation" | "generationReference">): string {
  const intro =
    "Prefill: the wall time of the step that runs a seeded random prompt; tokens/s = prompt tokens / that time. " +
    "Decode: greedy, one token per step against the KV cache (EOS does not stop it); tokens/s = 1 / median step time. " +
    "End to end as `sftc generate --gpu` runs (runtime/generate/gpu-runner.ts): weights uploaded once, the KV cache kept on the device in buckets of cached length (one compiled step per bucket); those costs are inside the figures. " +
    "The 7B-sized model's weights are seeded random values, one array per distinct shape, streamed to the device: once all in f32, once with the linears, table and head in bf16 (norms f32), as `sftc generate --gpu` stores a bf16 model; the kernels widen bf16 to f32 as they read it.";
  const rows = r.generation.map((g) =>
    g.measured
      ? [g.model, String(g.parameters), g.backend, String(g.promptTokens), ms(g.prefillNs), g.prefillTokensPerSecond.toFixed(1), String(g.newTokens), ms(g.decodeMedianNs), g.decodeTokensPerSecond.toFixed(1), g.logitsFinite ? "yes" : "NO"]
      : [g.model, "-", `not measured: ${g.why}`, "-", "-", "-", "-", "-", "-", "-"],
  );
  const header = ["model", "parameters", "backend", "prompt tokens", "prefill ms", "prefill tokens/s", "new tokens", "decode ms/token (median)", "decode tokens/s", "logits finite"];
  const profiles = r.generation.flatMap((g) =>
    g.measured && g.profile ? [`GPU time of one more decode step of ${g.model} by kernel (every dispatch in its own timed pass, so no overlap; not among the timed steps):\n\n${profileTable(g.profile)}`] : [],
  );
  return [`${intro}\n\n${table(header, rows)}`, decodeBandwidthPart(r), versusTorchPart(r), ...profiles].filter((part) => part).join("\n\n");
}

const GB = 1e9;

// The 7B decode steps' reads over the copy bandwidth of this run, a row per storage dtype.
function decodeBandwidthPart(r: Pick<BenchReport, "generation">): string | undefined {
  const measured = r.generation.flatMap((g) => (g.measured && g.bandwidth ? [{ g, b: g.bandwidth }] : []));
  if (measured.length === 0) return undefined;
  const intro =
    "Decode bandwidth: the bytes one batch-1 decode step must read (every weight once in its storage dtype, the embedding table one row, " +
    `plus the f32 keys and values at the mean cached length ${measured[0].b.cachedLength}) over the median step time, divided by the copy bandwidth measured above (the CUDA copy where PyTorch has a GPU, else the WebGPU copy). ` +
    "Traffic beyond that minimum (activations, the new keys appended to the cache, the cache moved to a larger bucket every 64 positions, the logits read back) counts against the fraction. " +
    "A step's kernel launches are recorded into one submission; the cache's appends (counted in the launches) and the logits' read-back are two more.";
  const rows = measured.map(({ g, b }) => [
    g.weightDtype,
    (b.weightBytes / GB).toFixed(3),
    (b.kvBytes / GB).toFixed(3),
    (b.bytesPerToken / GB).toFixed(3),
    ms(g.decodeMedianNs),
    b.gbs.toFixed(1),
    b.copyGbs.toFixed(1),
    percent(b.fraction),
    g.launchesPerStep === undefined ? "-" : String(g.launchesPerStep),
  ]);
  const header = ["weights", "weights GB/token", "KV GB/token", "GB/token", "ms/token (median)", "GB/s", "copy GB/s", "of copy bandwidth", "kernel launches/step"];
  return `${intro}\n\n${table(header, rows)}`;
}

// sftc's 7B decode, per storage dtype, against transformers' generate of the same dimensions on the same card.
function versusTorchPart(r: Pick<BenchReport, "generation" | "generationReference">): string | undefined {
  const t = r.generationReference;
  if (!t.available) return `transformers' generate (7B-sized model): not measured: ${t.why}`;
  const ours = r.generation.filter((c) => c.model.startsWith(SEVEN_B));
  const intro =
    `transformers ${t.transformers} \`generate\` (torch ${t.torch}, CUDA ${t.cuda}, ${t.device}; bench/torch_generate.py) on a LlamaForCausalLM of the same dimensions, ` +
    `built on the GPU with random weights, attention sdpa, prompt ${t.promptTokens} tokens, greedy, ${t.newTokens} new tokens forced; ` +
    `median of ${t.reps} generates after one warm-up. Its decode tokens/s = (N − 1) / (t_N − t_1); prefill = t_1 (the prompt and one token); sftc's prefill includes compiling its first step. ` +
    "sftc's bf16 row stores the linears, table and head in bf16 and computes in f32; PyTorch's computes in bf16. " +
    "Ratios: sftc decode tokens/s / PyTorch's in each dtype (above 1: sftc faster).";
  const references = t.rows.flatMap((row) => (row.ok ? [row] : []));
  const sftcRows = ours.map((c) =>
    c.measured
      ? ["sftc (WebGPU)", c.weightDtype, ms(c.prefillNs), c.decodeTokensPerSecond.toFixed(1), ...references.map((row) => (c.decodeTokensPerSecond / row.decodeTokensPerSecond).toFixed(3))]
      : ["sftc (WebGPU)", c.weightDtype ?? "-", `not measured: ${c.why}`, "-", ...references.map(() => "-")],
  );
  const torchRows = t.rows.map((row) =>
    row.ok
      ? [`PyTorch (${row.attention})`, row.dtype, ms(row.prefillNs), row.decodeTokensPerSecond.toFixed(1), ...references.map(() => "-")]
      : ["PyTorch", row.dtype, `failed: ${row.error}`, "-", ...references.map(() => "-")],
  );
  const header = ["engine", "dtype", "prefill ms", "decode tokens/s", ...references.map((row) => `sftc / PyTorch ${row.dtype}`)];
  return `${intro}\n\n${table(header, [...sftcRows, ...torchRows])}`;
}

function machineSection(r: BenchReport): string {
  const m = r.machine;
  const s = r.shapes;
  return table(
    ["fact", "value"],
    [
      ["date (start, UTC)", r.date],
      ["command", r.command],
      ["size", `${r.size}: square matmul ${s.square}, tokens ${s.tokens}, hidden ${s.hidden}, ffn ${s.ffn}, vocab ${s.vocab}, ${s.reps} reps; training step ${s.step.rows} x ${s.step.seq}; generation ${s.generation.promptTokens} + ${s.generation.newTokens} tokens`],
      ["host", m.hostname],
      ["nproc", String(m.nproc)],
      ["CPU model", m.cpuModel],
      ["memory", `${m.memoryGiB.toFixed(1)} GiB`],
      ["OS", m.os],
      ["Node", m.node],
      ["webgpu (dawn.node)", m.webgpu],
      ["nvidia-smi", m.nvidiaSmi ?? "not present"],
      ["load average at start (1, 5, 15 min)", load(r.loadAtStart)],
      ["load average at end", load(r.loadAtEnd)],
      ["duration", `${r.seconds.toFixed(1)} s`],
      ["GPU errors", r.gpuErrors.length ? r.gpuErrors.join("; ") : "none"],
    ],
  );
}

/** The report as markdown, one `##` section per entry of SECTIONS. */
export function reportMarkdown(r: BenchReport): string {
  const ran = (section: BenchSection, body: () => string) => (r.sections.includes(section) ? body() : `Not run in this invocation (\`--sections ${r.sections.join(",")}\`).`);
  const bodies = [
    adapterSection(r),
    ceilingsSection(r),
    ran("kernels", () => kernelsSection(r)),
    ran("step", () => trainingSection(r.trainingStep!)),
    ran("generation", () => generationSection(r)),
    machineSection(r),
  ];
  const title = `# Benchmark: ${r.adapter.name}, ${r.size} sizes, ${r.date}`;
  return [title, ...SECTIONS.map((s, i) => `## ${s}\n\n${bodies[i]}`)].join("\n\n") + "\n";
}
