// Pipeline cache: one compiled compute pipeline per kernel name + variant, with an explicit
// bind-group layout (binding 0 = uniforms, then the storage bindings in order).
import { diag, fail, invariant, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { kernelKey, kernelSource, needsF16, type KernelSpec } from "../../stdlib/kernels/kernel.ts";
import type { GpuDevice } from "./device.ts";

export interface CompiledKernel {
  key: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Compiled pipelines of one device, keyed by `kernelKey`. */
export class PipelineCache {
  private readonly compiled = new Map<string, CompiledKernel>();

  constructor(private readonly gpu: GpuDevice) {}

  get size(): number {
    return this.compiled.size;
  }

  has(spec: KernelSpec): boolean {
    return this.compiled.has(kernelKey(spec));
  }

  /**
   * The pipeline for `spec`, compiled synchronously on first use. WGSL errors then surface as
   * GPU validation diagnostics (`GpuDevice.takeErrors`); `compile` reports them directly.
   */
  get(spec: KernelSpec): CompiledKernel {
    const key = kernelKey(spec);
    const found = this.compiled.get(key);
    if (found) return found;
    // callers check kernelRefusal first (executors when they prepare, compile here): a refused kernel is a bug
    const refused = kernelRefusal(this.gpu, spec);
    invariant(!refused, refused?.message ?? "");
    const layout = this.layoutFor(spec);
    const module = this.gpu.device.createShaderModule({ label: key, code: sourceOf(key, spec) });
    const pipeline = this.gpu.device.createComputePipeline({
      label: key,
      layout: this.gpu.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const entry = { key, pipeline, layout };
    this.compiled.set(key, entry);
    return entry;
  }

  /** Compiles `spec` ahead of use; a missing feature or a WGSL error is returned as a diagnostic. */
  async compile(spec: KernelSpec): Promise<Result<CompiledKernel>> {
    const key = kernelKey(spec);
    const found = this.compiled.get(key);
    if (found) return ok(found);
    const refused = kernelRefusal(this.gpu, spec);
    if (refused) return fail(refused);
    this.gpu.device.pushErrorScope("validation"); // reported below instead of as an uncaptured error
    const module = this.gpu.device.createShaderModule({ label: key, code: sourceOf(key, spec) });
    const info = await module.getCompilationInfo();
    await this.gpu.device.popErrorScope();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length)
      return fail(
        diag("SFT5008", `kernel ${key} failed to compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ")}`, {
          where: key,
          hint: "This is a bug in sftc's kernel generator; SFT_DEBUG=2 prints the generated WGSL.",
        }),
      );
    const layout = this.layoutFor(spec);
    try {
      const pipeline = await this.gpu.device.createComputePipelineAsync({
        label: key,
        layout: this.gpu.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: "main" },
      });
      const entry = { key, pipeline, layout };
      this.compiled.set(key, entry);
      return ok(entry);
    } catch (e) {
      return fail(diag("SFT5008", `kernel ${key} failed to build a pipeline: ${e instanceof Error ? e.message : String(e)}`, { where: key }));
    }
  }

  private layoutFor(spec: KernelSpec): GPUBindGroupLayout {
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      ...spec.bindings.map((b, i) => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === "read" ? ("read-only-storage" as const) : ("storage" as const) },
      })),
    ];
    return this.gpu.device.createBindGroupLayout({ label: kernelKey(spec), entries });
  }
}

/**
 * Why `gpu` cannot run `spec` (SFT5009): f16 storage without shader-f16, or more storage buffers
 * than the adapter allows a kernel (WebGPU guarantees 8, which every attention kernel and generated
 * kernel keeps to; a LoRA matmul over NF4 that would bind 10 splits where the adapter allows fewer);
 * undefined where it can.
 */
export function kernelRefusal(gpu: GpuDevice, spec: KernelSpec): Diagnostic | undefined {
  const key = kernelKey(spec);
  if (needsF16(spec) && !gpu.hasF16)
    return diag("SFT5009", `kernel ${key} stores f16 values but the adapter '${gpu.adapter.name}' has no shader-f16`, {
      hint: "Use dtype = f32 or bf16 for this model, or a GPU whose driver exposes shader-f16.",
    });
  const limit = gpu.limits.maxStorageBuffersPerShaderStage;
  if (spec.bindings.length > limit)
    return diag("SFT5009", `kernel ${key} binds ${spec.bindings.length} storage buffers, and the adapter '${gpu.adapter.name}' allows ${limit} per kernel`, {
      hint: "Use an adapter that allows more storage buffers per shader stage (`sftc devices` lists each adapter's maxStorageBuffersPerShaderStage).",
    });
  return undefined;
}

// SFT_DEBUG=2 (or more) prints the WGSL of every kernel variant as it is compiled.
function sourceOf(key: string, spec: KernelSpec): string {
  const code = kernelSource(spec);
  if (Number(process.env.SFT_DEBUG ?? 0) >= 2) console.error(`// ---- kernel ${key} ----\n${code}`);
  return code;
}

const caches = new WeakMap<GpuDevice, PipelineCache>();

/** The pipeline cache of a device (created on first use). */
export function pipelinesOf(gpu: GpuDevice): PipelineCache {
  let cache = caches.get(gpu);
  if (!cache) caches.set(gpu, (cache = new PipelineCache(gpu)));
  return cache;
}
