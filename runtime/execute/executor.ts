// Runs a compiled schedule on the GPU. Every buffer-backed node (leaf, library result, generated
// kernel output) gets its own buffer, or, given the schedule's memory plan, activations and
// gradients live in the plan's pool of shared buffers (memory.ts). Each launch is prepared once
// into steps (library kernels through runtime/execute/library, generated kernels from
// compiler/codegen, copies of views a kernel cannot read); a run records all of them into one
// command batch, submitted in pieces as it is recorded.
// Data derived from the i32 inputs (masks, positions, the embedding-gradient plan, the loss's
// token count) is rebuilt on the host before a run whose i32 inputs changed (from the values
// written, and from the elementwise kernels over them, which the host evaluates too).
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { evalNode, gather } from "../../compiler/ir/interpret.ts";
import { ELEMENTWISE_OPS, MOVEMENT_OPS, numel, type Node } from "../../compiler/ir/node.ts";
import type { MemoryPlan } from "../../compiler/passes/memory-plan.ts";
import type { Launch, Schedule } from "../../compiler/passes/schedule.ts";
import { isContiguous, type View } from "../../compiler/passes/views.ts";
import { statisticsRead } from "../../compiler/passes/saved-statistics.ts";
import { kernelKey } from "../../stdlib/kernels/kernel.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { CommandBatch, type KernelTiming } from "../gpu/batch.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, readFloats, writeTensor, type GpuTensor } from "../gpu/tensor.ts";
import { BoundSteps } from "../gpu/bound-steps.ts";
import { kernelRefusal } from "../gpu/pipelines.ts";
import { engineKernels, type EngineKernels, type KernelOverrides } from "./engine-kernels.ts";
import { LaunchWorkspace, placeBuffers, type Placement } from "./memory.ts";
import { nf4Bindings, type Nf4Buffers } from "./nf4-weights.ts";
import { prepareAttention, prepareAttentionBackward } from "./library/attention.ts";
import { prepareCrossEntropy } from "./library/cross-entropy.ts";
import { prepareEmbedding, prepareEmbeddingBackward } from "./library/embedding.ts";
import { generatedStep } from "./library/generated.ts";
import { prepareMatmul } from "./library/matmul.ts";
import { prepareNorm, prepareNormBackward } from "./library/norm.ts";
import { prepareRope } from "./library/rope.ts";
import { PhaseTimer } from "./run-phases.ts";
import type { ExecContext, PreparedLaunch, RefreshPass, SideOutputs } from "./steps.ts";
import type { CopyStep, DispatchStep, Step } from "../gpu/bound-steps.ts";

type Preparer = (ctx: ExecContext, launch: Launch) => Result<PreparedLaunch>;

/**
 * A run submits its recorded work every this many dispatches, so the GPU starts on a step's first
 * launches while the host records the rest: on lavapipe a thin 32-layer decode step (387
 * dispatches) took 19.3 to 23.4 ms against 21.1 to 25.2 ms submitted at once, lower in each of
 * six interleaved pairs of bench/host-time.ts runs (48 and 128 did as well in a noisier
 * comparison). Not tuned on a GPU.
 */
export const SUBMIT_EVERY = 64;

/** How each catalog kernel's launch becomes dispatches (also used to print a schedule's WGSL). */
export const launchPreparers: Readonly<Record<string, Preparer>> = {
  elementwise: (ctx, launch) => ok({ steps: [generatedStep(ctx, launch, ctx.tensorOf(launch.outputs[0]))] }),
  reduce: (ctx, launch) => ok({ steps: [generatedStep(ctx, launch, ctx.tensorOf(launch.outputs[0]))] }),
  matmul: prepareMatmul,
  norm: prepareNorm,
  norm_backward: prepareNormBackward,
  embedding: prepareEmbedding,
  embedding_backward: prepareEmbeddingBackward,
  rope: prepareRope,
  attention: prepareAttention,
  cached_attention: prepareAttention,
  attention_backward: prepareAttentionBackward,
  cross_entropy: prepareCrossEntropy,
};

/** What one run records. */
export interface ExecutorStats {
  /** Kernel dispatches per run (copies of views included). */
  dispatches: number;
  /** Generated copies among them: views a library kernel cannot read, and attention's dK/dV split. */
  copies: number;
  /** Buffer copies of whole tensors (residual epilogues), which are not dispatches. */
  bufferCopies: number;
  /** Dispatches per scheduled launch, in schedule order. */
  perLaunch: number[];
  /** Bytes of the node buffers the executor allocated (bound tensors excluded) and of scratch (side outputs, masks, plans, tables, the launches' workspace). */
  nodeBytes: number;
  scratchBytes: number;
  /** Bytes of the workspace launches share (included in scratchBytes). */
  workspaceBytes: number;
  /** Bytes of the plan's pool buffers, which activations and gradients share (with a plan; 0 without). */
  sharedBytes: number;
}

export interface ExecutorOptions extends KernelOverrides {
  /** The schedule's memory plan: activations and gradients then live in its pool of shared buffers. */
  plan?: MemoryPlan;
  /**
   * Parameters stored as NF4 (QLoRA base weights), by name, and the NF4 lookup tables: matmul
   * launches read them as their B operand through the NF4 kernel; no other launch may read them.
   */
  nf4?: { weights: ReadonlyMap<string, Nf4Buffers>; tables: GpuTensor };
  /**
   * Graph outputs copied out of the step as soon as their launch writes them, by name: the copies
   * `copies` makes of the output's tensor (a whole, contiguous tensor) follow that launch. Their
   * memory plan must name them (PlanOptions.copiedOut), which frees them after their last read in
   * the step: read back after the run, such an output may hold another tensor's values.
   */
  copyOut?: ReadonlyMap<string, (output: GpuTensor) => CopyStep[]>;
}

export class GraphExecutor {
  private readonly buffers = new Map<Node, GpuTensor>();
  private readonly scratch: GpuTensor[] = [];
  private readonly leaves = new Map<string, Node>();
  private readonly hostInts = new Map<Node, Int32Array>();
  private readonly prepared: PreparedLaunch[] = [];
  /** The dispatches of the launches that have a refresh: the only steps whose uniforms or tensors a run's refresh changes. */
  private readonly refreshed: DispatchStep[] = [];
  // what launches share by key (ExecContext.shared)
  private readonly shared = new Map<string, unknown>();
  private intsChanged = true;
  // the steps with their uniforms and bind groups kept on the device, made at the first run
  private recorded: BoundSteps | undefined;

  private readonly placement: Placement;
  private readonly workspace: LaunchWorkspace;

  private constructor(
    private readonly gpu: GpuDevice,
    private readonly schedule: Schedule,
    private readonly bound: ReadonlyMap<string, GpuTensor>,
    plan: MemoryPlan | undefined,
    private readonly nf4: ExecutorOptions["nf4"],
    private readonly copyOut: NonNullable<ExecutorOptions["copyOut"]>,
  ) {
    this.placement = placeBuffers(gpu, plan);
    this.workspace = new LaunchWorkspace(gpu);
  }

  /**
   * Allocates every buffer and prepares every launch; a launch the runtime cannot run is an error
   * value. Leaves named in `bound` (parameters, inputs) use those tensors, which stay the caller's:
   * several executors (training, evaluation) can share one set of weights.
   */
  static create(gpu: GpuDevice, schedule: Schedule, bound: ReadonlyMap<string, GpuTensor> = new Map(), options: ExecutorOptions = {}): Result<GraphExecutor> {
    const kernels = engineKernels(gpu, options);
    if (!kernels.ok) return kernels;
    const copyOut = options.copyOut ?? new Map();
    // a plan that frees outputs early needs their copies; without a plan no buffer is reused
    const freed = [...(options.plan?.copiedOut ?? [])].sort().join();
    invariant(!options.plan || freed === [...copyOut.keys()].sort().join(), `the outputs copied out (${[...copyOut.keys()].join(", ")}) are not those the memory plan frees early (${freed})`);
    const ex = new GraphExecutor(gpu, schedule, bound, options.plan, options.nf4, copyOut);
    const prepared = ex.prepare(kernels.value);
    if (prepared.ok) return ok(ex);
    ex.destroy(); // the buffers placed before the failure
    return prepared;
  }

  // Places every buffer and prepares every launch; the first launch that cannot run fails it.
  private prepare(kernels: EngineKernels): Result<void> {
    const { schedule } = this;
    for (const launch of schedule.launches) {
      for (const { view } of launch.inputs) {
        if (!this.nf4Weight(view.base)) this.bufferOf(view.base);
        else if (launch.kernel !== "matmul") return fail(diag("SFT4005", `the NF4 weight ${view.base.attrs.name} is read by a ${launch.kernel} launch; only matmuls decode NF4 weights`, { where: launch.launches.join(", ") }));
      }
      for (const out of launch.outputs) this.bufferOf(out);
    }
    for (const [, view] of schedule.outputViews) this.bufferOf(view.base);
    const ctx = this.context(kernels);
    const copied = new Set<string>();
    for (const launch of schedule.launches) {
      const prepare = launchPreparers[launch.kernel];
      this.workspace.nextLaunch();
      if (!prepare) return fail(diag("SFT4005", `the runtime cannot execute ${launch.kernel} launches`, { where: launch.launches.join(", ") }));
      const p = prepare(ctx, launch);
      if (!p.ok) return p;
      // a kernel the device cannot run is refused here, not as a validation error when it runs
      for (const step of p.value.steps) {
        const refused = step.kind === "dispatch" ? kernelRefusal(this.gpu, step.spec) : undefined;
        if (refused) return fail({ ...refused, where: launch.launches.join(", ") });
      }
      this.prepared.push({ ...p.value, steps: [...p.value.steps, ...this.copiesAfter(launch, copied)] });
      if (p.value.refresh) this.refreshed.push(...p.value.steps.filter((s): s is DispatchStep => s.kind === "dispatch"));
    }
    invariant(copied.size === this.copyOut.size, `outputs to copy out that no launch writes: ${[...this.copyOut.keys()].filter((n) => !copied.has(n)).join(", ")}`);
    return ok(undefined);
  }

  // The copies out of the outputs `launch` writes (ExecutorOptions.copyOut), each name added to `copied`.
  private copiesAfter(launch: Launch, copied: Set<string>): CopyStep[] {
    const steps: CopyStep[] = [];
    for (const [name, copies] of this.copyOut) {
      const { tensor, view } = this.outputView(name);
      if (!launch.outputs.includes(view.base)) continue;
      invariant(isContiguous(view) && numel(view.shape) === tensor.numel, `output ${name} is copied out whole, but its view is not its tensor`);
      steps.push(...copies(tensor));
      copied.add(name);
    }
    return steps;
  }

  private context(kernels: EngineKernels): ExecContext {
    const sideOutputs = new Map<Node, SideOutputs>();
    const read = statisticsRead(this.schedule);
    return {
      gpu: this.gpu,
      ...kernels,
      tensorOf: (n) => {
        const t = this.buffers.get(n);
        invariant(t, `node %${n.id} (${n.op}) has no buffer`);
        return t;
      },
      scratch: (dtype: StorageDType, shape, label) => {
        const t = createTensor(this.gpu, dtype, shape, label);
        this.scratch.push(t);
        return t;
      },
      release: (t) => {
        const at = this.scratch.indexOf(t);
        invariant(at >= 0, `release: ${t.label} is not this executor's scratch`);
        this.scratch.splice(at, 1);
        t.destroy();
      },
      shared: <T>(key: string, make: () => T): T => {
        if (!this.shared.has(key)) this.shared.set(key, make());
        return this.shared.get(key) as T;
      },
      workspace: (dtype, shape, label) => this.workspace.take(dtype, shape, label),
      register: (n, t) => this.buffers.set(n, t),
      sideOutputs,
      keepsStatistics: (n) => read.has(n),
      nf4Bindings: (n) => {
        const w = this.nf4Weight(n);
        return w && nf4Bindings(w, this.nf4!.tables);
      },
    };
  }

  private nf4Weight(n: Node): Nf4Buffers | undefined {
    return n.op === "param" ? this.nf4?.weights.get(n.attrs.name!) : undefined;
  }

  private bufferOf(n: Node): GpuTensor {
    let t = this.buffers.get(n);
    if (!t) {
      const given = n.op === "param" || n.op === "input" ? this.bound.get(n.attrs.name!) : undefined;
      invariant(!given || (given.dtype === n.dtype && given.numel === numel(n.shape)), `bound tensor ${n.attrs.name} does not fit ${n.dtype}[${n.shape}]`);
      t = given ?? this.placement.bufferOf(n);
      this.buffers.set(n, t);
      if (n.op === "param" || n.op === "input") this.leaves.set(n.attrs.name!, n);
      if (n.op === "const") writeTensor(this.gpu, t, new Float32Array(Math.max(1, numel(n.shape))).fill(n.attrs.value!));
    }
    return t;
  }

  /** Writes a parameter's or an input's values (by name); i32 inputs are also kept on the host. */
  write(name: string, values: ArrayLike<number>): void {
    const n = this.leaves.get(name);
    if (!n) return;
    writeTensor(this.gpu, this.buffers.get(n)!, values);
    if (n.dtype === "i32") {
      this.hostInts.set(n, Int32Array.from(values));
      this.intsChanged = true;
    }
  }

  // The host value of an i32 input read through a view, for the launches' refreshes; a buffer
  // computed from such inputs and constants only (e.g. labels shifted by a generated kernel) is
  // evaluated on the host by the interpreter.
  private ints(view: View, cache: Map<Node, Float64Array>): Int32Array | undefined {
    const value = (n: Node): Float64Array | undefined => {
      let v = cache.get(n);
      if (v) return v;
      if (n.op === "input") v = this.hostInts.has(n) ? Float64Array.from(this.hostInts.get(n)!) : undefined;
      else if (n.op === "param" || !(ELEMENTWISE_OPS.has(n.op) || MOVEMENT_OPS.has(n.op) || n.op === "const")) v = undefined;
      else {
        const xs = n.inputs.map(value);
        v = xs.every((x) => x) ? evalNode(n, xs as Float64Array[]) : undefined;
      }
      if (v) cache.set(n, v);
      return v;
    };
    const base = value(view.base);
    return base && Int32Array.from(gather(base, view.shape, view.strides, view.offset));
  }

  /**
   * Records every launch into one batch, submitted in pieces of SUBMIT_EVERY dispatches as it is
   * recorded. Reading an output afterwards waits for it (the read is queued after it), so a plain
   * run does not wait: a decode step waits for its
   * logits' read (and its caller's error check), not also for the run. With `timestamps` (and a
   * device that has them) each dispatch runs in its own timed pass, the run waits and their GPU
   * times come back: a profile, slower than a plain run because passes no longer overlap.
   * While the device asks (GpuDevice.hostPhases), the run appends there where its host time went.
   */
  async run(options: { timestamps?: boolean } = {}): Promise<Result<KernelTiming[]>> {
    const timer = this.gpu.hostPhases && new PhaseTimer(this.gpu.hostPhases);
    if (this.intsChanged) {
      const cache = new Map<Node, Float64Array>();
      const pass: RefreshPass = {};
      for (const p of this.prepared) {
        const r = p.refresh?.((view) => this.ints(view, cache), pass);
        if (r && !r.ok) return r;
      }
      this.intsChanged = false;
      timer?.end("refreshMs");
      // only a refresh changes a step's uniforms or tensors: the other steps stay as bound
      this.recorded?.update(this.refreshed);
      timer?.end("updateMs");
    }
    const batch = new CommandBatch(this.gpu, { timestamps: options.timestamps });
    this.recorded ??= new BoundSteps(this.gpu, this.steps());
    timer?.skip();
    this.recorded.record(batch, SUBMIT_EVERY);
    timer?.end("recordMs");
    let timings: KernelTiming[] = [];
    if (options.timestamps) timings = await batch.submit();
    else batch.flush();
    timer?.end("submitMs");
    timer?.done({ launches: this.prepared.length, dispatches: batch.dispatchCount });
    return ok(timings);
  }

  /** A graph output, gathered through its view into a contiguous array. */
  async read(name: string): Promise<Float64Array> {
    invariant(!this.copyOut.has(name), `output ${name} is copied out as it is written: its buffer is reused after the step's last read of it`);
    const { tensor, view } = this.outputView(name);
    return gather(Float64Array.from(await readFloats(this.gpu, tensor)), view.shape, view.strides, view.offset);
  }

  /** The buffer holding graph output `name` and the output's view of it. */
  outputView(name: string): { tensor: GpuTensor; view: View } {
    const view = this.schedule.outputViews.get(name);
    invariant(view, `no graph output ${name}`);
    return { tensor: this.buffers.get(view.base)!, view };
  }

  /** The tensor holding graph output `name` when the output is that whole tensor, contiguous; otherwise undefined. */
  outputTensor(name: string): GpuTensor | undefined {
    const { tensor, view } = this.outputView(name);
    return isContiguous(view) && numel(view.shape) === tensor.numel ? tensor : undefined;
  }

  /** The pipeline cache key of every dispatch, in order. */
  kernelKeys(): string[] {
    return this.steps().flatMap((s) => (s.kind === "dispatch" ? [kernelKey(s.spec)] : []));
  }

  stats(): ExecutorStats {
    const steps = this.steps();
    const bytes = (ts: Iterable<GpuTensor>) => [...ts].reduce((sum, t) => sum + t.byteSize, 0);
    return {
      dispatches: steps.filter((s) => s.kind === "dispatch").length,
      copies: steps.filter((s) => s.kind === "dispatch" && s.copy).length,
      bufferCopies: steps.filter((s) => s.kind === "copy").length,
      perLaunch: this.prepared.map((p) => p.steps.filter((s) => s.kind === "dispatch").length),
      nodeBytes: bytes(this.placement.allocations()),
      scratchBytes: bytes(this.scratch) + bytes(this.workspace.allocations()),
      workspaceBytes: bytes(this.workspace.allocations()),
      sharedBytes: this.placement.sharedBytes(),
    };
  }

  private steps(): Step[] {
    return this.prepared.flatMap((p) => p.steps);
  }

  destroy(): void {
    this.recorded?.destroy();
    for (const t of [...this.placement.allocations(), ...this.scratch, ...this.workspace.allocations()]) t.destroy();
  }
}
