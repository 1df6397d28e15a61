// The WebGPU training engine: a graph model's training graph compiled and run by the executor,
// with every tensor that lives across steps on the device. Weights (trained and frozen), gradient
// accumulators and AdamW moments are buffers this engine owns and binds into each executor, so
// the training executor of every batch shape and the forward-only evaluation executor share them.
//
// The accumulation is part of the compiled graph: for each trainable parameter the graph outputs
// grad_acc + grad * grad_scale (grad_scale an input: the micro-batch's label tokens times the
// loop's 1/N), which a buffer copy then stores back into the accumulator. Global-norm clipping
// runs on the device (partial sums of squares, then a fixed-order sum: no float atomics), and
// AdamW is one fused kernel per tensor. Per step the host reads only the loss of each
// micro-batch and the gradient norm the loop logs.
//
// The executors place activations and gradients by the compiled memory plan (buffers shared by
// lifetime). Batch shapes: the sequence length is right-padded to a multiple of SEQ_BUCKET
// (batch-padding.ts) and each (rows, padded length) pair is compiled once and cached; the cache
// keeps the MAX_PROGRAMS most recently used programs (each holds its activations on the device)
// and frees the others.
//
// QLoRA: the frozen base weights named in `nf4` are quantized at creation (gpu-weights.ts) and live
// on the device only as NF4 (codes, double-quantized absmax); the graph's matmuls decode them in
// the kernel (runtime/execute/nf4-weights.ts, stdlib/kernels/nf4-matmul.ts).
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import { ACC_INPUT, ACC_OUTPUT, accumulatingStep, GRAD_SCALE } from "../../compiler/autodiff/accumulating-step.ts";
import { fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { numel, topoSort, type Graph, type Node } from "../../compiler/ir/node.ts";
import { evaluationGraph } from "../../compiler/passes/chunk-loss.ts";
import { compileGraph, type Compiled } from "../../compiler/passes/compile.ts";
import { adamwStep, adamwUniforms } from "../../stdlib/kernels/adamw.ts";
import { gradNormFinalize, gradNormPartial, gradNormPartials } from "../../stdlib/kernels/grad-clip.ts";
import { GraphExecutor } from "../execute/executor.ts";
import { engineKernels } from "../execute/engine-kernels.ts";
import { nf4Buffers, uploadNf4Tables, type Nf4Weight } from "../execute/nf4-weights.ts";
import { CommandBatch, type KernelTiming } from "../gpu/batch.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, readFloats, writeTensor, type GpuTensor } from "../gpu/tensor.ts";
import { dequantizeNf4 } from "../../stdlib/quant/nf4.ts";
import { appliesWeightDecay, labelTokens, matchStateTensors, type AdamWUpdate, type Batch, type LossSum, type StateTensor, type TrainingBackend } from "./backend.ts";
import { padMask, padToBucket } from "./batch-padding.ts";
import { DropoutStream, type GraphModel } from "./cpu-backend.ts";
import { DeviceWeights, engineParams, weightSizeError, type WeightSource } from "./gpu-weights.ts";

/** Compiled programs (training or evaluation, per batch shape) kept on the device at once. */
const MAX_PROGRAMS = 4;

const MOMENT_PREFIX = { m: "adamw.exp_avg.", v: "adamw.exp_avg_sq." };

interface Slot {
  name: string;
  shape: number[];
  weight: GpuTensor;
  grad: GpuTensor;
  m: GpuTensor;
  v: GpuTensor;
}

interface Program {
  executor: GraphExecutor;
  compiled: Compiled;
}

export interface GpuBackendOptions {
  /** Forward tensors to keep for the backward (gradient checkpointing); everything else is recomputed. */
  checkpoints?: (loss: Node) => readonly Node[];
  /** Frozen weights to store as NF4 (QLoRA's quantized base linears), by name. */
  nf4?: readonly string[];
}

export class GpuBackend implements TrainingBackend {
  readonly device: string;
  /** By kind and batch shape, least recently used first. */
  private readonly programs = new Map<string, Program>();
  /** Weights and accumulators by graph input name: what every executor binds. */
  private readonly bound = new Map<string, GpuTensor>();
  private readonly partials: GpuTensor;
  private readonly clip: GpuTensor;
  /** NF4 weights and their lookup tables (QLoRA); none otherwise. */
  private readonly nf4: { weights: Map<string, Nf4Weight>; tables: GpuTensor } | undefined;
  private readonly dropout: DropoutStream;

  private constructor(
    private readonly gpu: GpuDevice,
    private readonly model: GraphModel,
    private readonly slots: Slot[],
    weights: Map<string, GpuTensor>,
    nf4: Map<string, Nf4Weight>,
    private readonly options: GpuBackendOptions,
  ) {
    this.device = `webgpu (${gpu.adapter.description || gpu.adapter.architecture || "adapter"}; ${model.name})`;
    for (const [name, t] of weights) this.bound.set(name, t);
    for (const s of slots) this.bound.set(ACC_INPUT + s.name, s.grad);
    const partials = slots.reduce((n, s) => n + gradNormPartials(numel(s.shape)), 0);
    this.partials = createTensor(gpu, "f32", [Math.max(1, partials)], "grad norm partials");
    this.clip = createTensor(gpu, "f32", [2], "grad norm and clip");
    this.nf4 = nf4.size > 0 ? { weights: nf4, tables: uploadNf4Tables(gpu) } : undefined;
    this.dropout = new DropoutStream(model);
  }

  /**
   * The engine for `model` with its initial `weights` (every parameter the graph reads, by name),
   * uploaded to `gpu`; a missing or mis-sized weight is SFT4002.
   */
  static create(gpu: GpuDevice, model: GraphModel, weights: ReadonlyMap<string, ArrayLike<number>>, options: GpuBackendOptions = {}): Result<GpuBackend> {
    const params = engineParams(model, options.nf4);
    if (!params.ok) return params;
    for (const p of params.value) {
      const given = weights.get(p.attrs.name!);
      if (given?.length !== numel(p.shape)) return fail(weightSizeError(p, given?.length));
    }
    const placed = new DeviceWeights(gpu, options.nf4);
    for (const p of params.value) placed.place(p, weights.get(p.attrs.name!)!);
    return ok(GpuBackend.assemble(placed, model, options));
  }

  /**
   * The engine for `model` with its initial weights read from `source` one tensor at a time: each
   * goes to the device (as f32, or as NF4 for the weights `options.nf4` names) before the next is
   * read, so the host never holds more than one. Tensors the graph does not read are skipped; a
   * missing or mis-sized weight is SFT4002, and the source's own errors are passed on.
   */
  static async load(gpu: GpuDevice, model: GraphModel, source: WeightSource, options: GpuBackendOptions = {}): Promise<Result<GpuBackend>> {
    const params = engineParams(model, options.nf4);
    if (!params.ok) return params;
    const byName = new Map(params.value.map((p) => [p.attrs.name!, p]));
    const placed = new DeviceWeights(gpu, options.nf4);
    for await (const tensor of source) {
      if (!tensor.ok) return placed.abandon(tensor.diagnostics);
      const p = byName.get(tensor.value.name);
      if (!p || placed.has(p)) continue;
      if (tensor.value.values.length !== numel(p.shape)) return placed.abandon([weightSizeError(p, tensor.value.values.length)]);
      placed.place(p, tensor.value.values);
    }
    const missing = params.value.find((p) => !placed.has(p));
    if (missing) return placed.abandon([weightSizeError(missing, undefined)]);
    return ok(GpuBackend.assemble(placed, model, options));
  }

  /** The engine over weights already on the device: gradient accumulators and AdamW moments start at zero. */
  private static assemble(placed: DeviceWeights, model: GraphModel, options: GpuBackendOptions): GpuBackend {
    const slots = model.trainable.map(({ name, shape }) => {
      const weight = placed.uploaded.get(name)!;
      const zeros = (what: string) => createTensor(placed.gpu, "f32", shape, `${what} ${name}`);
      return { name, shape: [...shape], weight, grad: zeros("grad"), m: zeros("exp_avg"), v: zeros("exp_avg_sq") };
    });
    return new GpuBackend(placed.gpu, model, slots, placed.uploaded, placed.nf4, options);
  }

  /** The cached program `key`, or the one `make` builds; the least recently used beyond MAX_PROGRAMS is freed. */
  private program(key: string, make: () => Program): Program {
    let p = this.programs.get(key);
    if (p) this.programs.delete(key);
    else p = make();
    this.programs.set(key, p);
    for (const [old, evicted] of this.programs) {
      if (this.programs.size <= MAX_PROGRAMS) break;
      evicted.executor.destroy();
      this.programs.delete(old);
    }
    return p;
  }

  private build(g: Graph, checkpoints?: readonly Node[]): Program {
    const compiled = compileGraph(g, checkpoints ? { checkpoints } : {});
    invariant(compiled.ok, `compiling ${this.model.name}: ${compiled.ok || compiled.diagnostics.map((d) => d.message).join("; ")}`);
    const executor = GraphExecutor.create(this.gpu, compiled.value.schedule, this.bound, { plan: compiled.value.plan, nf4: this.nf4 });
    invariant(executor.ok, `${this.model.name}: ${executor.ok || executor.diagnostics.map((d) => d.message).join("; ")}`);
    return { executor: executor.value, compiled: compiled.value };
  }

  // the accumulating step (accumulating-step.ts) of the slots' tensors, its outputs in trainingGraph's order
  private trainingProgram(batch: Batch): Program {
    return this.program(`training ${batch.rows}x${batch.seq}`, () => {
      const loss = this.model.lossFor(batch.rows, batch.seq, true);
      const byName = new Map(topoSort([loss]).filter((n) => n.op === "param").map((n) => [n.attrs.name!, n]));
      const step = accumulatingStep(loss, this.slots.map((s) => byName.get(s.name)!));
      invariant(step.ok, `the training graph of ${this.model.name}: ${step.ok || step.diagnostics.map((d) => d.message).join("; ")}`);
      return this.build(step.value, this.options.checkpoints?.(loss));
    });
  }

  private evaluationProgram(batch: Batch): Program {
    return this.program(`evaluation ${batch.rows}x${batch.seq}`, () => this.build(evaluationGraph(this.model.lossFor(batch.rows, batch.seq))));
  }

  private async runLoss(program: Program, batch: Batch, extra: Iterable<[string, ArrayLike<number>]> = [], timestamps = false): Promise<{ loss: number; timings: KernelTiming[] }> {
    const ex = program.executor;
    for (const [name, values] of this.model.inputs(batch)) ex.write(name, values);
    for (const [name, values] of extra) ex.write(name, values);
    const ran = await ex.run({ timestamps });
    invariant(ran.ok, `${this.model.name}: ${ran.ok || ran.diagnostics.map((d) => d.message).join("; ")}`);
    return { loss: (await ex.read("loss"))[0], timings: ran.value };
  }

  /**
   * The loss and gradients of one micro-batch, added to the accumulators. With `timestamps`
   * the GPU time of every dispatch of the forward and backward comes back too (a profile).
   */
  async forwardBackward(batch: Batch, gradScale: number, options: { timestamps?: boolean } = {}): Promise<LossSum & { timings: KernelTiming[] }> {
    const padded = padToBucket(batch);
    const program = this.trainingProgram(padded);
    const tokens = labelTokens(batch);
    // the graph's loss is the token mean of this micro-batch: scale its gradient to the sum
    // masks are drawn for the batch as given, so the CPU engine draws the same ones, then padded
    const masks = [...this.dropout.next(batch)].map(([name, mask]): [string, Float64Array] => [name, padMask(mask, batch, padded.seq)]);
    const { loss, timings } = await this.runLoss(program, padded, [[GRAD_SCALE, [tokens * gradScale]], ...masks], options.timestamps);
    // an output may sit in a larger buffer the memory plan shares: copy its own bytes
    const encoder = this.gpu.device.createCommandEncoder();
    for (const s of this.slots) {
      const out = program.executor.outputTensor(ACC_OUTPUT + s.name);
      invariant(out?.numel === s.grad.numel, `the accumulated gradient of ${s.name} is not a whole tensor`);
      encoder.copyBufferToBuffer(out.buffer, out.byteOffset, s.grad.buffer, s.grad.byteOffset, s.grad.byteSize);
    }
    this.gpu.queue.submit([encoder.finish()]);
    return { lossSum: loss * tokens, tokens, timings };
  }

  zeroGradients(): void {
    const encoder = this.gpu.device.createCommandEncoder();
    for (const s of this.slots) encoder.clearBuffer(s.grad.buffer);
    this.gpu.queue.submit([encoder.finish()]);
  }

  async gradientNorm(): Promise<number> {
    const batch = new CommandBatch(this.gpu);
    let offset = 0;
    for (const s of this.slots) {
      const n = numel(s.shape);
      batch.dispatch(gradNormPartial("f32"), { n, offset }, { g: s.grad, partials: this.partials });
      offset += gradNormPartials(n);
    }
    batch.dispatch(gradNormFinalize(), { count: offset, max_norm: 1 }, { partials: this.partials, clip: this.clip });
    await batch.submit();
    return (await readFloats(this.gpu, this.clip))[0];
  }

  async applyAdamW(u: AdamWUpdate): Promise<void> {
    const batch = new CommandBatch(this.gpu);
    const spec = adamwStep(false);
    for (const s of this.slots) {
      const weightDecay = appliesWeightDecay(s.name) ? u.weightDecay : 0;
      const uniforms = adamwUniforms(numel(s.shape), u.step, { lr: u.lr, beta1: u.beta1, beta2: u.beta2, eps: u.eps, weightDecay }, u.gradScale);
      batch.dispatch(spec, uniforms, { p: s.weight, g: s.grad, m: s.m, v: s.v });
    }
    await batch.submit();
  }

  async evaluate(batch: Batch): Promise<LossSum> {
    const padded = padToBucket(batch);
    const tokens = labelTokens(batch);
    return { lossSum: (await this.runLoss(this.evaluationProgram(padded), padded)).loss * tokens, tokens };
  }

  private stateTargets(): [string, GpuTensor, number[]][] {
    return this.slots.flatMap((s) => [
      [s.name, s.weight, s.shape],
      [MOMENT_PREFIX.m + s.name, s.m, s.shape],
      [MOMENT_PREFIX.v + s.name, s.v, s.shape],
    ]);
  }

  async saveState(): Promise<StateTensor[]> {
    const out: StateTensor[] = [];
    for (const [name, t, shape] of this.stateTargets()) out.push({ name, shape, data: await readFloats(this.gpu, t) });
    return out;
  }

  loadState(tensors: readonly StateTensor[]): string | undefined {
    const targets = this.stateTargets();
    const found = matchStateTensors(tensors, [...targets].map(([name, target]) => [name, target.numel] as const));
    if (typeof found === "string") return found;
    for (const [name, target] of targets) writeTensor(this.gpu, target, found.get(name)!);
    return undefined;
  }

  randomStates(): Record<string, number> {
    return this.dropout.states();
  }

  setRandomStates(states: Record<string, number>): void {
    this.dropout.restore(states);
  }

  memoryBytes(): number {
    return this.gpu.memory.liveBytes;
  }

  /** Which attention launches of this engine's programs take the score-matrix path (the device's choice), or why the engine's kernels are refused. */
  attentionScores(): Result<AttentionScoresChoice> {
    const kernels = engineKernels(this.gpu);
    return kernels.ok ? ok(kernels.value.attentionScores) : kernels;
  }

  /**
   * Bytes this engine holds on the device: weights, accumulators, moments, clipping buffers, and
   * every compiled program's own buffers (the executors keep theirs between steps).
   */
  allocatedBytes(): number {
    const own = [...this.bound.values(), ...this.slots.flatMap((s) => [s.m, s.v]), this.partials, this.clip, ...this.nf4Tensors()].reduce((n, t) => n + t.byteSize, 0);
    return own + this.compiledPrograms().reduce((n, p) => n + p.executor.stats().nodeBytes + p.executor.stats().scratchBytes, 0);
  }

  /** The NF4 buffers (every quantized weight's parts, and the lookup tables). */
  nf4Tensors(): GpuTensor[] {
    return this.nf4 ? [...[...this.nf4.weights.values()].flatMap(nf4Buffers), this.nf4.tables] : [];
  }

  /** Current values of every weight (trained and frozen) by name, for export and generation; NF4 weights dequantized. */
  async weights(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, t] of this.bound) if (!name.startsWith(ACC_INPUT)) out.set(name, await readFloats(this.gpu, t));
    for (const [name, w] of this.nf4?.weights ?? []) out.set(name, dequantizeNf4(w.host));
    return out;
  }

  /** The compiled programs held now ("training RxT" / "evaluation RxT"), with their executors. */
  compiledPrograms(): { key: string; compiled: Compiled; executor: GraphExecutor }[] {
    return [...this.programs].map(([key, p]) => ({ key, ...p }));
  }

  /** Frees every buffer the engine and its executors hold. */
  destroy(): void {
    for (const p of this.programs.values()) p.executor.destroy();
    for (const t of this.bound.values()) t.destroy();
    for (const s of this.slots) for (const t of [s.m, s.v]) t.destroy();
    for (const t of this.nf4Tensors()) t.destroy();
    this.partials.destroy();
    this.clip.destroy();
  }
}
