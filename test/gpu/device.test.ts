// Device layer: adapter listing, adapter errors as values, GPU errors as diagnostics, the
// pipeline cache (one pipeline per variant, any size), batching and GPU timestamps.
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import { deviceLostDiagnostic, listAdapters, openDevice, type GpuDevice } from "../../runtime/gpu/device.ts";
import { pipelinesOf } from "../../runtime/gpu/pipelines.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { activationForward, activationForwardRef } from "../../stdlib/kernels/activations.ts";
import { elementwiseKernel } from "../../stdlib/kernels/elementwise.ts";
import { assertClose } from "../support/numeric.ts";
import { randomValues, withGpu } from "../kernels/gpu-harness.ts";

const test = suite("gpu device");
const root = resolve(import.meta.dirname, "../..");

test("listAdapters reports features and limits, or SFT5001 when there is none", async () => {
  const listed = await listAdapters();
  if (!listed.ok) {
    assert.is(listed.diagnostics[0].code, "SFT5001");
    return;
  }
  assert.ok(listed.value.length >= 1);
  for (const a of listed.value) {
    console.log(`    adapter: ${a.name} (${a.backend}) features: ${a.features.join(" ")}`);
    assert.ok(a.name.length > 0);
    assert.ok(a.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
    assert.ok(a.limits.maxComputeInvocationsPerWorkgroup >= 256);
  }
});

test("a non-matching adapter name is an error value naming the available adapters", async () => {
  const opened = await openDevice({ adapter: "no-such-gpu-4711" });
  assert.not.ok(opened.ok);
  const d = opened.diagnostics[0];
  assert.ok(d.code === "SFT5002" || d.code === "SFT5001", d.code);
  if (d.code === "SFT5002") {
    assert.match(d.message, "no-such-gpu-4711");
    assert.match(d.message, "available:");
    assert.match(d.hint ?? "", "SFT_ADAPTER");
  }
});

test("no Vulkan driver at all gives SFT5001 with the lavapipe install hint", () => {
  const script = `import { openDevice } from "./runtime/gpu/device.ts";
const r = await openDevice(); console.log(JSON.stringify(r.ok ? "opened" : r.diagnostics[0]));
if (r.ok) r.value.destroy();`;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: root,
    env: { ...process.env, VK_ICD_FILENAMES: "/nonexistent/icd.json", VK_DRIVER_FILES: "/nonexistent/icd.json", SFT_ADAPTER: "" },
    encoding: "utf8",
  });
  const d = JSON.parse(out.trim().split("\n").pop()!);
  assert.is(d.code, "SFT5001");
  assert.match(d.hint, "apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1");
});

test(
  "an uncaptured validation error becomes an SFT5004 diagnostic",
  withGpu(async (gpu) => {
    // MAP_READ may only be combined with COPY_DST: this buffer is invalid.
    gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    const errors = await gpu.takeErrors();
    assert.is(errors.length, 1);
    assert.is(errors[0].code, "SFT5004");
    assert.match(errors[0].message, "validation");
    const scoped = await gpu.scoped(() => gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE }));
    assert.not.ok(scoped.ok);
    assert.is(scoped.diagnostics[0].code, "SFT5004");
  }),
);

test("device loss becomes SFT5007, except after our own destroy()", () => {
  const lost = deviceLostDiagnostic({ reason: "unknown", message: "VK_ERROR_DEVICE_LOST" }, "NVIDIA H100");
  assert.is(lost?.code, "SFT5007");
  assert.match(lost?.message ?? "", "VK_ERROR_DEVICE_LOST");
  assert.is(lost?.where, "NVIDIA H100");
  assert.is(deviceLostDiagnostic({ reason: "destroyed", message: "" }, "x"), undefined);
});

test(
  "a kernel whose WGSL does not compile is reported as SFT5008",
  withGpu(async (gpu) => {
    const broken = elementwiseKernel({
      name: "broken_for_test",
      variant: {},
      bindings: [{ name: "y", dtype: "f32", access: "read_write" }],
      perElement: "  store_y(i, undefined_name);",
    });
    const compiled = await pipelinesOf(gpu).compile(broken);
    assert.not.ok(compiled.ok);
    assert.is(compiled.diagnostics[0].code, "SFT5008");
    assert.match(compiled.diagnostics[0].message, "undefined_name");
  }),
);

test(
  "one pipeline per variant serves every size; many dispatches share one batch",
  withGpu(async (gpu) => {
    const cache = pipelinesOf(gpu);
    const spec = activationForward("silu", "f32");
    const before = cache.size;
    const batch = new CommandBatch(gpu);
    const rng = new Random(5);
    const cases = [];
    for (let k = 0; k < 40; k++) {
      const n = 1 + k * 37;
      const xs = randomValues(rng, n);
      const y = createTensor(gpu, "f32", [n]);
      batch.dispatch(activationForward("silu", "f32"), { n }, { x: uploadTensor(gpu, "f32", [n], xs), y });
      cases.push({ xs, y });
    }
    await batch.submit();
    assert.ok(cache.size - before <= 1, "no recompilation for new sizes");
    assert.ok(cache.has(spec));
    for (const { xs, y } of cases) assertClose(await readFloats(gpu, y), activationForwardRef("silu", xs), 1e-5, `silu n=${xs.length}`);
  }),
);

test(
  "thousands of dependent dispatches in one batch run in order (uniform arenas roll over)",
  withGpu(async (gpu) => {
    const addStep = elementwiseKernel({
      name: "add_step_test",
      variant: {},
      uniforms: { step: "f32" },
      bindings: [{ name: "y", dtype: "f32", access: "read_write" }],
      perElement: "  store_y(i, load_y(i) * 0.5 + u.step);",
    });
    // more slots than one 64 KiB arena holds at this device's uniform alignment
    const perArena = Math.floor((64 * 1024) / Math.max(16, gpu.limits.minUniformBufferOffsetAlignment));
    const count = perArena + 100;
    const y = createTensor(gpu, "f32", [3]);
    const batch = new CommandBatch(gpu);
    let expected = 0;
    for (let k = 0; k < count; k++) {
      const step = (k % 7) - 3; // order matters: y = y/2 + step does not commute
      batch.dispatch(addStep, { n: 3, step }, { y });
      expected = Math.fround(Math.fround(expected * 0.5) + step);
    }
    assert.is(batch.dispatchCount, count);
    await batch.submit();
    assert.equal(Array.from(await readFloats(gpu, y)), [expected, expected, expected]);
  }),
);

test(
  "live and peak tensor bytes are counted",
  withGpu(async (gpu) => {
    const before = gpu.memory.liveBytes;
    const a = createTensor(gpu, "f32", [1000]); // 4000 bytes
    const b = createTensor(gpu, "bf16", [3]); // 6 bytes, padded to 16
    assert.is(gpu.memory.liveBytes - before, 4016);
    assert.ok(gpu.memory.peakBytes >= gpu.memory.liveBytes);
    a.destroy();
    a.destroy();
    b.destroy();
    assert.is(gpu.memory.liveBytes, before);
  }),
);

/**
 * A test of GPU timestamps (skipped where the adapter has no timestamp-query): `body` gets a
 * timestamped batch and a GELU over 4096 seeded values to record into it.
 */
function timestampTest(name: string, seed: number, body: (gpu: GpuDevice, gelu: (batch: CommandBatch) => void, batch: CommandBatch) => Promise<void>): void {
  test(
    name,
    withGpu(async (gpu) => {
      if (!gpu.hasTimestamps) return console.log("    skipped: no timestamp-query");
      const n = 4096;
      const x = uploadTensor(gpu, "f32", [n], randomValues(new Random(seed), n));
      const y = createTensor(gpu, "f32", [n]);
      await body(gpu, (batch) => batch.dispatch(activationForward("gelu_tanh", "f32"), { n }, { x, y }), new CommandBatch(gpu, { timestamps: true }));
    }),
  );
}

timestampTest("GPU timestamps time every dispatch", 1, async (_gpu, gelu, batch) => {
  for (let k = 0; k < 3; k++) gelu(batch);
  const timings = await batch.submit();
  assert.is(timings.length, 3);
  for (const t of timings) {
    assert.is(t.name, "gelu_tanh_forward");
    assert.ok(t.ns >= 0 && t.ns < 1e10, `${t.ns} ns`);
  }
});

timestampTest("a timed group's dispatches share one timing", 2, async (gpu, gelu, batch) => {
  for (const group of ["first", "second"]) {
    batch.beginTimedGroup(group);
    for (let k = 0; k < 3; k++) gelu(batch);
    batch.endTimedGroup();
  }
  gelu(batch); // outside a group: its own timing
  const timings = await batch.submit();
  assert.equal(timings.map((t) => t.name), ["first", "second", "gelu_tanh_forward"]);
  assert.ok(timings.every((t) => t.ns >= 0 && t.ns < 1e10));
  assert.throws(() => {
    const open = new CommandBatch(gpu, { timestamps: true });
    open.beginTimedGroup("left open");
    open.flush();
  }, /still open/);
});

test.run();
