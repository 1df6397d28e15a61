// What preparing one scheduled launch produces: the GPU steps recorded for it every run, and
// an optional host refresh that rewrites the data derived from i32 graph inputs (attention mask
// words, RoPE positions and tables, the embedding-gradient plan, the token count of the loss)
// before a run whose i32 inputs changed. The context gives launch preparers buffers, scratch
// allocations, side outputs of earlier launches and generated copies.
import type { Result } from "../../compiler/diagnostics.ts";
import type { Node } from "../../compiler/ir/node.ts";
import { inputView, type Launch } from "../../compiler/passes/schedule.ts";
import type { View } from "../../compiler/passes/views.ts";
import { invariant } from "../../compiler/diagnostics.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { GpuDevice } from "../gpu/device.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import type { Step } from "../gpu/bound-steps.ts";
import type { EngineKernels } from "./engine-kernels.ts";

/** The host values of i32 graph inputs, read through a view; undefined if `view` is not over one. */
export type HostInts = (view: View) => Int32Array | undefined;

/**
 * One refresh of every launch (a new object each time): launches that share a buffer
 * (ExecContext.shared) write it in the first refresh of a pass and only read what it holds in the others.
 */
export type RefreshPass = object;

export interface PreparedLaunch {
  steps: Step[];
  /** Rewrites host-derived data from the i32 inputs (before the first run and whenever they change). */
  refresh?: (ints: HostInts, pass: RefreshPass) => Result<void>;
}

/** Statistics a forward kernel saves for its backward (norm mean/rstd, attention log-sum-exp). */
export type SideOutputs = Record<string, GpuTensor>;

/** What launch preparers read: the device, the engine's kernels on it (engine-kernels.ts), buffers. */
export interface ExecContext extends EngineKernels {
  gpu: GpuDevice;
  /** The buffer of a node (one per buffer-backed node). */
  tensorOf(n: Node): GpuTensor;
  /** An allocation that belongs to no node: side outputs, scratch, host-written data. */
  scratch(dtype: StorageDType, shape: readonly number[], label: string): GpuTensor;
  /** Frees a scratch buffer that a refresh replaced (the executor frees the others with itself). */
  release(tensor: GpuTensor): void;
  /**
   * What the launches sharing `key` hold together (compiler/passes/shared-scratch.ts: host-written
   * buffers), made by `make` for the first of them that asks.
   */
  shared<T>(key: string, make: () => T): T;
  /** A buffer only the launch being prepared uses, written before it is read (later launches reuse it); without it, scratch. */
  workspace?(dtype: StorageDType, shape: readonly number[], label: string): GpuTensor;
  /** Makes `tensor` the buffer of `n`, a node made by the executor (e.g. the source of a copy). */
  register(n: Node, tensor: GpuTensor): void;
  /** Side outputs saved by the launch that computed `n`. */
  sideOutputs: Map<Node, SideOutputs>;
  /**
   * Whether forward `n` keeps its statistics (attention's log-sum-exp, a norm's rstd and mean) as
   * side outputs: only where a backward of the schedule reads them (compiler/passes/saved-statistics.ts);
   * else its kernels write them into the workspace.
   */
  keepsStatistics(n: Node): boolean;
  /** The NF4 kernel bindings of a parameter stored as NF4 (QLoRA base weights), which has no dense buffer. */
  nf4Bindings?(n: Node): Record<string, GpuTensor> | undefined;
}

/**
 * A buffer for forward `n`'s statistics: scratch, kept with the executor, where a backward reads
 * them (ExecContext.keepsStatistics); else from the workspace, as nothing reads them after the launch.
 */
export function statisticsTensor(ctx: ExecContext, n: Node, dtype: StorageDType, shape: readonly number[], label: string): GpuTensor {
  return ctx.keepsStatistics(n) ? ctx.scratch(dtype, shape, label) : workspaceTensor(ctx, dtype, shape, `unread ${label}`);
}

/** A buffer only the launch being prepared uses: from the context's workspace, else scratch. */
export function workspaceTensor(ctx: ExecContext, dtype: StorageDType, shape: readonly number[], label: string): GpuTensor {
  return ctx.workspace ? ctx.workspace(dtype, shape, label) : ctx.scratch(dtype, shape, label);
}

/** The buffer of an input that the launch's kernel reads whole (the catalog asked for a contiguous view). */
export function wholeInput(ctx: ExecContext, launch: Launch, n: Node): GpuTensor {
  const view = inputView(launch, n);
  invariant(view.offset === 0, `launch ${launch.launches.join(",")} reads %${n.id} at an offset`);
  return ctx.tensorOf(view.base);
}
