// The end-to-end LoRA / QLoRA training benchmark at toy dimensions, in-process on the shared
// device (lavapipe in CI): both methods finish their steps with finite losses and measured
// figures, and a Python without transformers gives a clean "not available" PyTorch side.
// Speed is never judged here.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { E2eOptions } from "../../bench/e2e-options.ts";
import { benchE2eTrain, reportFailed, reportMarkdown } from "../../bench/e2e-report.ts";
import { TORCH_PYTHON } from "../../bench/train-step.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("e2e training bench");

// one layer of a Baichuan-7B-shaped model shrunk to hidden 64 (4 heads), FFN 172, vocab 512
const TOY: E2eOptions = {
  methods: ["lora", "qlora"],
  layers: 1,
  seq: 16,
  rows: 1,
  rank: 4,
  alpha: 8,
  warmup: 1,
  steps: 1,
  torchWarmup: 0,
  torchSteps: 1,
  profile: true,
  dtype: "f32",
  dims: { hidden_size: 64, num_heads: 4, intermediate_size: 172, vocab_size: 512 },
};

test(
  "LoRA and QLoRA steps on a toy Baichuan-7B-shaped model: finite losses, tokens/s, peak memory; the PyTorch side without transformers is 'not available'",
  withGpu(async (gpu) => {
    const report = await benchE2eTrain(gpu, TOY, { command: "e2e-train test", torch: { python: TORCH_PYTHON, device: "cpu" } });
    assert.equal(report.sftc.map((r) => r.method), ["lora", "qlora"]);
    for (const row of report.sftc) {
      assert.ok(row.ok, `${row.method}: ${row.ok || row.why}`);
      assert.equal(row.losses.length, TOY.warmup + TOY.steps, `${row.method} losses`);
      assert.ok(row.losses.every(Number.isFinite), `${row.method} losses ${row.losses}`);
      // random weights with std 0.02 give near-uniform logits: the loss is close to ln(vocab)
      assert.ok(Math.abs(row.losses[0] - Math.log(512)) < 0.5, `${row.method} first loss ${row.losses[0]} vs ln 512`);
      assert.ok(row.tokensPerSecond > 0 && row.samplesNs.length === TOY.steps, `${row.method} timing`);
      // adapters on W_pack (rank x 64 + 192 x rank) and o_proj (rank x 64 + 64 x rank)
      assert.equal(row.trainableValues, 4 * (64 + 192) + 4 * (64 + 64), `${row.method} trainable values`);
      assert.ok(row.peakBytes > 0, `${row.method} peak`);
      // the profiled forward and backward: GPU time by kernel, matmuls and attention among them
      if (gpu.hasTimestamps) {
        const profile = row.profile ?? [];
        const kernels = profile.map((r) => r.kernel);
        assert.ok(kernels.some((k) => k.startsWith("matmul")) && kernels.some((k) => k.startsWith("attention_backward")), `${row.method} profile: ${kernels}`);
        assert.ok(profile.every((r) => r.dispatches > 0 && r.ns > 0), `${row.method}: every profiled kernel ran and took time`);
        assert.ok(Math.abs(profile.reduce((sum, r) => sum + r.share, 0) - 1) < 1e-9, `${row.method}: shares add up`);
      }
    }
    const [lora, qlora] = report.sftc;
    // NF4 base linears: the QLoRA run holds fewer bytes at its peak than the f32 LoRA run
    assert.ok(lora.ok && qlora.ok && qlora.peakBytes < lora.peakBytes, "QLoRA peak below LoRA's");
    // block linears stored in bf16: a lower peak than f32, the first loss within bf16 rounding of it
    const [bf16] = (await benchE2eTrain(gpu, { ...TOY, methods: ["lora"], dtype: "bf16", profile: false }, { command: "e2e-train test" })).sftc;
    assert.ok(bf16.ok && bf16.peakBytes < lora.peakBytes, `bf16 peak ${bf16.ok && bf16.peakBytes} below f32's ${lora.peakBytes}`);
    assert.match(bf16.precision, /^bf16 block linears/);
    assert.ok(Math.abs(bf16.losses[0] - lora.losses[0]) < 1e-3 * lora.losses[0], `first losses ${bf16.losses[0]} and ${lora.losses[0]}`);
    assert.not.ok(reportFailed(report));

    // this machine's Debian torch has no transformers: one clean row, no ratios
    assert.ok(report.torch && !report.torch.available, "PyTorch side unavailable");
    assert.match(report.torch.why, /transformers|torch/);
    assert.equal(report.ratios, []);
    const markdown = reportMarkdown(report);
    const profiled = gpu.hasTimestamps ? ["GPU time of one sftc lora forward and backward", "GPU time of one sftc qlora forward and backward"] : [];
    // a CPU adapter's registers kernels have nothing to tune; a GPU names each choice
    const cpu = gpu.adapter.architecture === "software";
    if (cpu) assert.equal(report.tunings, []);
    else assert.ok(report.tunings.every((t) => /^[\w /,-]+: .+ \((read from the tuning file, timed .+|timed at device open)\)$/.test(t)), report.tunings.join("; "));
    for (const needed of ["card:", "driver:", `kernels tuned at device open: ${cpu ? "none" : ""}`, "date:", "command: `e2e-train test`", "sftc (WebGPU)", "not available", ...profiled]) assert.ok(markdown.includes(needed), `markdown has ${needed}`);
  }),
);

test.run();
