// The executor's kept uniforms and bind groups (runtime/gpu/bound-steps.ts): taking in a
// refresh that changed nothing makes no bind group and writes no uniforms; a changed uniform is
// written and used; a swapped tensor gets a new bind group, the others keep theirs; copies run
// between dispatches in step order; an update that names steps takes in theirs only (the executor
// names its refreshed launches'); a batch sets a kernel's pipeline once for consecutive dispatches
// of it in one pass.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BoundSteps, type DispatchStep, type Step } from "../../runtime/gpu/bound-steps.ts";
import { CommandBatch } from "../../runtime/gpu/batch.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { matmulKernel, matmulRef, matmulUniforms, type MatmulOptions, type MatmulShape } from "../../stdlib/kernels/matmul.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";

const O: MatmulOptions = { a: "f32", b: "f32", out: "f32", transA: false, transB: true };
const S: MatmulShape = { batch: 1, m: 8, n: 12, k: 16 };

/** Counts the device's createBindGroup and the queue's writeBuffer calls while `body` runs. */
async function counting(gpu: GpuDevice, body: () => Promise<void>): Promise<{ bindGroups: number; writes: number }> {
  const counts = { bindGroups: 0, writes: 0 };
  const createBindGroup = gpu.device.createBindGroup;
  const writeBuffer = gpu.queue.writeBuffer;
  gpu.device.createBindGroup = function (this: GPUDevice, descriptor: GPUBindGroupDescriptor) {
    counts.bindGroups++;
    return createBindGroup.call(this, descriptor);
  };
  gpu.queue.writeBuffer = function (this: GPUQueue, ...args: unknown[]) {
    counts.writes++;
    return (writeBuffer as (...a: unknown[]) => undefined).apply(this, args);
  } as typeof writeBuffer;
  try {
    await body();
  } finally {
    gpu.device.createBindGroup = createBindGroup;
    gpu.queue.writeBuffer = writeBuffer;
  }
  return counts;
}

test(
  "kept bind groups and uniforms: reused while nothing changes, rewritten for a changed uniform, remade for a swapped tensor only",
  withGpu(async (gpu) => {
    const rng = new Random(8);
    const [a, w, w2] = [S.m * S.k, S.n * S.k, S.n * S.k].map((n) => Float64Array.from(rng.normalArray(n, 1)));
    const tensors = { a: uploadTensor(gpu, "f32", [S.m, S.k], a), b: uploadTensor(gpu, "f32", [S.n, S.k], w), c: createTensor(gpu, "f32", [S.m, S.n]) };
    const copy = createTensor(gpu, "f32", [S.m, S.n]);
    const spec = matmulKernel(O, S, "tiled");
    // C = A Wᵀ, C copied aside, then C = 2 A Wᵀ over a second output
    const first: DispatchStep = { kind: "dispatch", spec, uniforms: matmulUniforms(S, O), tensors };
    const second: DispatchStep = { kind: "dispatch", spec, uniforms: matmulUniforms({ ...S, alpha: 2 }, O), tensors: { ...tensors, c: createTensor(gpu, "f32", [S.m, S.n]) } };
    const steps: Step[] = [first, { kind: "copy", src: tensors.c, dst: copy }, second];
    const run = async (bound: BoundSteps) => {
      const batch = new CommandBatch(gpu);
      bound.record(batch);
      await batch.submit();
    };
    // what the executor does after a refresh: take in the steps' changes, then run
    const afterRefresh = async (bound: BoundSteps) => {
      bound.update();
      await run(bound);
    };
    const expect = async (alpha1: number, weight: Float64Array, alpha2: number) => {
      assertClose(await readFloats(gpu, copy), matmulRef(a, weight, O, { ...S, alpha: alpha1 }), 1e-5, "first product");
      assertClose(await readFloats(gpu, second.tensors.c), matmulRef(a, weight, O, { ...S, alpha: alpha2 }), 1e-5, "second product");
    };

    let bound: BoundSteps | undefined;
    const made = await counting(gpu, async () => {
      bound = new BoundSteps(gpu, steps);
      await run(bound);
    });
    assert.is(made.bindGroups, 2, "one bind group per dispatch");
    await expect(1, w, 2);

    const again = await counting(gpu, () => afterRefresh(bound!));
    assert.equal(again, { bindGroups: 0, writes: 0 }, "nothing changed: no bind group, no uniform write");

    first.uniforms.alpha = 3; // as a refresh may change a uniform
    const rescaled = await counting(gpu, () => afterRefresh(bound!));
    assert.equal(rescaled, { bindGroups: 0, writes: 1 }, "one uniform write, no bind group");
    await expect(3, w, 2);

    const swapped = uploadTensor(gpu, "f32", [S.n, S.k], w2);
    second.tensors = { ...second.tensors, b: swapped }; // as a refresh may swap a tensor
    first.tensors = { ...first.tensors, b: swapped };
    const rebound = await counting(gpu, () => afterRefresh(bound!));
    assert.equal(rebound, { bindGroups: 2, writes: 0 }, "the swapped tensor's dispatches get new bind groups");
    await expect(3, w2, 2);
    bound!.destroy();
    for (const t of [...Object.values(tensors), copy, second.tensors.c, swapped]) t.destroy();
  }),
);

test(
  "an update that names steps packs and writes their uniforms only",
  withGpu(async (gpu) => {
    const rng = new Random(9);
    const [a, w] = [S.m * S.k, S.n * S.k].map((n) => Float64Array.from(rng.normalArray(n, 1)));
    const input = { a: uploadTensor(gpu, "f32", [S.m, S.k], a), b: uploadTensor(gpu, "f32", [S.n, S.k], w) };
    const spec = matmulKernel(O, S, "tiled");
    const [first, second] = [1, 2].map((): DispatchStep => ({ kind: "dispatch", spec, uniforms: matmulUniforms(S, O), tensors: { ...input, c: createTensor(gpu, "f32", [S.m, S.n]) } }));
    const bound = new BoundSteps(gpu, [first, second]);
    first.uniforms.alpha = 3;
    second.uniforms.alpha = 5;
    const named = await counting(gpu, async () => bound.update([second]));
    assert.equal(named, { bindGroups: 0, writes: 1 }, "the named step's change is written");
    const batch = new CommandBatch(gpu);
    bound.record(batch);
    await batch.submit();
    assertClose(await readFloats(gpu, second.tensors.c), matmulRef(a, w, O, { ...S, alpha: 5 }), 1e-5, "the named step runs with its new uniform");
    assertClose(await readFloats(gpu, first.tensors.c), matmulRef(a, w, O, S), 1e-5, "the other keeps what it was bound with");
    bound.destroy();
    for (const t of [...Object.values(input), first.tensors.c, second.tensors.c]) t.destroy();
  }),
);

test(
  "a batch sets the pipeline once for consecutive dispatches of one kernel in its pass, again after a copy ends the pass",
  withGpu(async (gpu) => {
    const spec = matmulKernel(O, S, "tiled");
    const tensors = { a: createTensor(gpu, "f32", [S.m, S.k]), b: createTensor(gpu, "f32", [S.n, S.k]), c: createTensor(gpu, "f32", [S.m, S.n]) };
    const aside = createTensor(gpu, "f32", [S.m, S.n]);
    const uniforms = matmulUniforms(S, O);
    const probe = gpu.device.createCommandEncoder().beginComputePass();
    const proto = Object.getPrototypeOf(probe) as GPUComputePassEncoder;
    probe.end();
    const setPipeline = proto.setPipeline;
    let sets = 0;
    proto.setPipeline = function (this: GPUComputePassEncoder, pipeline: GPUComputePipeline) {
      sets++;
      return setPipeline.call(this, pipeline);
    };
    try {
      const batch = new CommandBatch(gpu);
      for (let i = 0; i < 3; i++) batch.dispatch(spec, uniforms, tensors);
      assert.is(sets, 1, "three dispatches of one kernel, one pipeline set");
      batch.copy(tensors.c, aside);
      batch.dispatch(spec, uniforms, tensors);
      assert.is(sets, 2, "a new pass after the copy sets it again");
      await batch.submit();
      assert.equal(await gpu.takeErrors(), []);
    } finally {
      proto.setPipeline = setPipeline;
      for (const t of [...Object.values(tensors), aside]) t.destroy();
    }
  }),
);

test.run();
