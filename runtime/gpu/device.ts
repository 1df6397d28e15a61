// Opens a WebGPU device through Dawn (npm `webgpu`): adapter choice, features and limits,
// uncaptured errors and device loss collected as diagnostics, and one shared device for tests.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { create, globals } from "webgpu";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { SubgroupMatrixConfig } from "../../stdlib/kernels/matmul-subgroup.ts";
import type { RunPhases } from "../execute/run-phases.ts";
import { selfCheckKernels } from "./kernel-self-check.ts";

Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... as in a browser

const ENABLE_TOGGLES = "enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia";
// Full-resolution timestamps; Dawn quantizes them to ~65 us by default.
const DISABLE_TOGGLES = "disable-dawn-features=timestamp_quantization";
const WANTED_FEATURES = ["shader-f16", "subgroups", "timestamp-query", "chromium-experimental-subgroup-matrix"];
const LAVAPIPE_HINT =
  "Install a Vulkan driver. Without a GPU, Mesa's lavapipe works: on Debian bookworm run " +
  "`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` (Mesa 22 from bookworm itself is too old for Dawn).";
// Limits worth requesting at the adapter's maximum (the defaults are WebGPU's minimums).
const REQUESTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxBindGroups",
] as const;

export interface DeviceOptions {
  /** Substring of the adapter name (e.g. "llvmpipe", "NVIDIA"); default: env SFT_ADAPTER, else Dawn's choice. */
  adapter?: string;
}

/** What an adapter is and can do. */
export interface AdapterSummary {
  name: string;
  backend: string;
  vendor: string;
  architecture: string;
  description: string;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** Shapes of the adapter's subgroup matrices (empty without chromium-experimental-subgroup-matrix). */
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
  features: string[];
  limits: Record<string, number>;
}

/** An open device plus what it supports; collects GPU errors as diagnostics. */
export class GpuDevice {
  readonly hasF16: boolean;
  readonly hasSubgroups: boolean;
  readonly hasTimestamps: boolean;
  /** Bytes of tensor buffers alive now and at most so far (tensor.ts keeps them up to date). */
  readonly memory = { liveBytes: 0, peakBytes: 0 };
  /**
   * While set, every GraphExecutor.run on this device appends where its host time went; unset,
   * runs time nothing. A device, not a run's options, holds it, so that a bench reaches the runs
   * of executors that others make and run (a generation session's steps).
   */
  hostPhases?: RunPhases[];
  private readonly errors: Diagnostic[] = [];
  private lost = false;

  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterSummary,
    // Held so the Dawn instance lives exactly as long as the device.
    private readonly gpu: GPU,
  ) {
    this.hasF16 = device.features.has("shader-f16");
    this.hasSubgroups = device.features.has("subgroups");
    this.hasTimestamps = device.features.has("timestamp-query");
    device.addEventListener("uncapturederror", (event) => {
      const e = (event as GPUUncapturedErrorEvent).error;
      event.preventDefault(); // otherwise dawn.node prints it to stdout
      this.errors.push(errorDiagnostic(e));
    });
    void device.lost.then((info) => {
      const lost = deviceLostDiagnostic(info, this.adapter.name);
      if (!lost) return;
      this.lost = true;
      this.errors.push(lost);
    });
  }

  /** Records a tensor allocation (positive) or release (negative) of `bytes`. */
  countBytes(bytes: number): void {
    this.memory.liveBytes += bytes;
    this.memory.peakBytes = Math.max(this.memory.peakBytes, this.memory.liveBytes);
  }

  get queue(): GPUQueue {
    return this.device.queue;
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  get isLost(): boolean {
    return this.lost;
  }

  /** Waits for submitted work, then returns (and forgets) every GPU error reported so far. */
  async takeErrors(): Promise<Diagnostic[]> {
    if (!this.lost) await this.device.queue.onSubmittedWorkDone();
    await new Promise((resolve) => setImmediate(resolve)); // error callbacks arrive on a later turn
    return this.errors.splice(0);
  }

  /** Runs `work` inside internal, out-of-memory and validation error scopes; their errors become diagnostics. */
  async scoped<T>(work: () => T): Promise<Result<T>> {
    this.device.pushErrorScope("internal");
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    // the scopes are popped even when `work` throws, so they cannot swallow later errors
    const outcome = attempt(work);
    const validation = await this.device.popErrorScope();
    const memory = await this.device.popErrorScope();
    const internal = await this.device.popErrorScope();
    if (!outcome.done) throw outcome.error;
    const value = outcome.value;
    const found = [validation, memory, internal].filter((e): e is GPUError => e !== null).map(errorDiagnostic);
    if (!found.length) return ok(value);
    // a promise `work` returned is dropped with the errors: its later rejection (a lost device)
    // must not end the process as unhandled
    if (value instanceof Promise) value.catch(() => {});
    return fail(...found);
  }

  destroy(): void {
    this.device.destroy();
  }
}

function attempt<T>(work: () => T): { done: true; value: T } | { done: false; error: unknown } {
  try {
    return { done: true, value: work() };
  } catch (error) {
    return { done: false, error };
  }
}

/**
 * Weights stored in f16 need the device's `shader-f16`: without it, an error naming model.dtype
 * before any weight is uploaded (the kernels reading them could not be compiled). `subject` says
 * whose weights, as the message's start.
 */
export function f16StorageRefusal(gpu: GpuDevice, weightDtypes: ReadonlyMap<string, string>, subject: string): Result<never> | undefined {
  if (gpu.hasF16 || ![...weightDtypes.values()].includes("f16")) return undefined;
  return fail(
    diag("SFT5009", `${subject} are kept in f16 (model.dtype = f16), and '${gpu.adapter.name}' lacks the shader-f16 feature to read them`, {
      where: "model.dtype",
      hint: "Set model.dtype = bf16 (no device feature needed) or f32, or use an adapter with shader-f16.",
    }),
  );
}

/** The diagnostic for a lost device; none when the loss was our own `destroy()`. */
export function deviceLostDiagnostic(info: { reason: string; message: string }, adapterName: string): Diagnostic | undefined {
  if (info.reason === "destroyed") return undefined;
  return diag("SFT5007", `the GPU device was lost: ${info.message || info.reason}`, {
    where: adapterName,
    hint: "The driver reset the GPU (often after running out of memory or a very long kernel); restart the run.",
  });
}

function errorDiagnostic(e: GPUError): Diagnostic {
  if (e instanceof GPUOutOfMemoryError)
    return diag("SFT5005", `GPU out of memory: ${e.message}`, {
      hint: "Use a smaller batch or sequence length, gradient checkpointing, or qlora; `sftc plan` shows the peak.",
    });
  if (e instanceof GPUValidationError) return diag("SFT5004", `GPU validation error: ${e.message}`);
  return diag("SFT5006", `GPU internal error: ${e.message}`);
}

function adapterName(env = process.env): string | undefined {
  const name = env.SFT_ADAPTER?.trim();
  return name ? name : undefined;
}

function instance(adapter?: string): GPU {
  return create([ENABLE_TOGGLES, DISABLE_TOGGLES, ...(adapter ? [`adapter=${adapter}`] : [])]);
}

// Dawn answers a name that matches nothing with an error listing the adapters it has.
function parseAvailable(message: string): { name: string; backend: string }[] {
  const found: { name: string; backend: string }[] = [];
  for (const m of message.matchAll(/backend: '([^']*)', name: '([^']*)'/g)) found.push({ backend: m[1], name: m[2] });
  return found;
}

// `from` names where the adapter name came from, for the error ("SFT_ADAPTER" or the option).
async function requestAdapter(gpu: GPU, name: string | undefined, from: string): Promise<Result<GPUAdapter>> {
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const available = parseAvailable(message);
    if (name && available.length)
      return fail(
        diag("SFT5002", `no WebGPU adapter matches '${name}'; available: ${available.map((a) => `'${a.name}' (${a.backend})`).join(", ")}`, {
          where: from,
          hint: "Set SFT_ADAPTER (or the adapter option) to a substring of one of the available names, or unset it.",
        }),
      );
    return fail(diag("SFT5001", `no WebGPU adapter found: ${message.split("\n")[0]}`, { hint: LAVAPIPE_HINT }));
  }
  if (!adapter) return fail(diag("SFT5001", "no WebGPU adapter found", { hint: LAVAPIPE_HINT }));
  return ok(adapter);
}

function summarize(adapter: GPUAdapter, name: string, backend: string): AdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number; subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[] };
  // dawn.node lists the configs only when the feature is there (allow_unsafe_apis); reading them otherwise is an error
  const configs = adapter.features.has("chromium-experimental-subgroup-matrix") ? (info.subgroupMatrixConfigs ?? []) : [];
  const limits: Record<string, number> = {};
  for (const key of REQUESTED_LIMITS) limits[key] = adapter.limits[key];
  return {
    name: name || info.description || info.device,
    backend,
    vendor: info.vendor,
    architecture: info.architecture,
    description: info.description,
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: configs.map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })),
    features: [...adapter.features].sort(),
    limits,
  };
}

/** Lists the adapters Dawn can see, with their features and key limits. */
export async function listAdapters(): Promise<Result<AdapterSummary[]>> {
  // No enumeration API in dawn.node: ask for an impossible name to get the list, then open each.
  let available: { name: string; backend: string }[] = [];
  try {
    await instance("\u0001no-such-adapter").requestAdapter();
  } catch (e) {
    available = parseAvailable(e instanceof Error ? e.message : String(e));
  }
  if (available.length === 0) return fail(diag("SFT5001", "no WebGPU adapter found", { hint: LAVAPIPE_HINT }));
  const summaries: AdapterSummary[] = [];
  for (const { name, backend } of available) {
    const adapter = await requestAdapter(instance(name), name, "adapter list");
    if (adapter.ok) summaries.push(summarize(adapter.value, name, backend));
  }
  return ok(summaries);
}

/**
 * Opens a device on the chosen adapter with its maximum limits and every useful feature it has.
 * It first tunes the kernel choices the device has (the first time on this card; kernel-tuning.ts),
 * then checks the kernels the engine would run on subgroup matrices (kernel-self-check.ts); the
 * result carries an SFT5010 warning per kernel that fell back, and an SFT5012 note when choices
 * were timed.
 */
export async function openDevice(options: DeviceOptions = {}): Promise<Result<GpuDevice>> {
  const name = options.adapter ?? adapterName();
  const gpu = instance(name);
  const adapter = await requestAdapter(gpu, name, options.adapter ? "adapter option" : "SFT_ADAPTER");
  if (!adapter.ok) return adapter;
  const a = adapter.value;
  const requiredFeatures = WANTED_FEATURES.filter((f) => a.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const key of REQUESTED_LIMITS) requiredLimits[key] = a.limits[key];
  const summary = summarize(a, "", "");
  let device: GPUDevice;
  try {
    device = await a.requestDevice({ requiredFeatures, requiredLimits });
  } catch (e) {
    return fail(
      diag("SFT5003", `could not create a GPU device on '${summary.name}': ${e instanceof Error ? e.message : String(e)}`, {
        hint: "Check the GPU driver (`vulkaninfo --summary`), or choose another adapter with SFT_ADAPTER.",
      }),
    );
  }
  const opened = new GpuDevice(device, summary, gpu);
  const checked = await selfCheckKernels(opened);
  return ok(opened, checked.warnings);
}

let shared: Promise<Result<GpuDevice>> | undefined;

/**
 * One device for the whole process (tests, benchmarks), opened on first use. Never throws:
 * without an adapter it resolves to the failing Result, and GPU tests skip on `!ok`.
 */
export function getSharedDevice(): Promise<Result<GpuDevice>> {
  shared ??= openDevice();
  return shared;
}

/** Destroys the shared device if one was opened, so the process can exit. */
export async function closeSharedDevice(): Promise<void> {
  if (!shared) return;
  const opened = await shared;
  shared = undefined;
  if (opened.ok) opened.value.destroy();
}

let webgpuPackageVersion: string | undefined;

/** Version of the npm `webgpu` package (dawn.node) as Node resolves it, or "unknown"; read once. */
export function webgpuVersion(): string {
  webgpuPackageVersion ??= readWebgpuVersion();
  return webgpuPackageVersion;
}

function readWebgpuVersion(): string {
  try {
    const manifest = createRequire(import.meta.url).resolve("webgpu/package.json");
    return (JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}
