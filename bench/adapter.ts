// What the benchmarked adapter is and can do: identity, backend, features, key limits,
// subgroup sizes, subgroup-matrix configurations, and the evidence that the Dawn toggles the
// runtime asks for are in force (dawn.node has no API that lists the toggles of a device).
import type { Diagnostic } from "../compiler/diagnostics.ts";
import { listAdapters, openDevice, type GpuDevice } from "../runtime/gpu/device.ts";
import type { SubgroupMatrixConfig } from "../stdlib/kernels/matmul-subgroup.ts";

/** A Dawn toggle and whether this run shows it in force. */
export interface ToggleState {
  toggle: string;
  state: "in force" | "not in force" | "not confirmed" | "not applicable";
  evidence: string;
}

export interface AdapterFacts {
  name: string;
  vendor: string;
  architecture: string;
  /** The driver's description (on Vulkan it names the driver and its version). */
  description: string;
  backend: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

type DawnAdapterInfo = GPUAdapterInfo & { isFallbackAdapter?: boolean };

/** Facts of the adapter behind `gpu`; the backend comes from Dawn's adapter list. */
export async function adapterFacts(gpu: GpuDevice): Promise<AdapterFacts> {
  const info = gpu.device.adapterInfo as DawnAdapterInfo;
  const listed = await listAdapters();
  const same = listed.ok ? listed.value.find((a) => a.description === gpu.adapter.description && a.vendor === gpu.adapter.vendor) : undefined;
  return {
    name: gpu.adapter.name,
    vendor: gpu.adapter.vendor,
    architecture: gpu.adapter.architecture,
    description: gpu.adapter.description,
    backend: same?.backend ?? "unknown (not found in Dawn's adapter list)",
    isFallbackAdapter: info.isFallbackAdapter ?? false,
    features: gpu.adapter.features,
    limits: { ...gpu.adapter.limits, minStorageBufferOffsetAlignment: gpu.limits.minStorageBufferOffsetAlignment },
    subgroupMinSize: gpu.adapter.subgroupMinSize,
    subgroupMaxSize: gpu.adapter.subgroupMaxSize,
    // the adapter's list (as the engine read it at device open): the device's adapterInfo lacks it
    subgroupMatrixConfigs: gpu.adapter.subgroupMatrixConfigs,
  };
}

// Dawn quantizes timestamps to multiples of this many ns unless timestamp_quantization is off.
const QUANTUM_NS = 65536;

/**
 * Whether the toggles the runtime enables (allow_unsafe_apis, vulkan_enable_f16_on_nvidia) and
 * disables (timestamp_quantization) are in force, judged from their visible effects:
 * experimental features are listed only under allow_unsafe_apis; NVIDIA adapters expose
 * shader-f16 only under vulkan_enable_f16_on_nvidia; quantized timestamps are multiples of 65,536 ns.
 */
export function toggleStates(facts: AdapterFacts, gpuIntervalsNs: readonly number[]): ToggleState[] {
  const experimental = facts.features.filter((f) => f.startsWith("chromium-experimental-"));
  const nvidia = facts.vendor === "nvidia";
  const f16 = facts.features.includes("shader-f16");
  const unquantized = gpuIntervalsNs.filter((ns) => ns % QUANTUM_NS !== 0).length;
  return [
    {
      toggle: "allow_unsafe_apis (enabled)",
      state: experimental.length ? "in force" : "not confirmed",
      evidence: experimental.length
        ? `experimental features are listed: ${experimental.join(", ")}`
        : "the adapter has no experimental feature whose presence would show it",
    },
    {
      toggle: "vulkan_enable_f16_on_nvidia (enabled)",
      state: !nvidia ? "not applicable" : f16 ? "in force" : "not in force",
      evidence: !nvidia ? `not an NVIDIA adapter (vendor '${facts.vendor}')` : f16 ? "shader-f16 is listed on an NVIDIA adapter" : "shader-f16 is missing on an NVIDIA adapter",
    },
    {
      toggle: "timestamp_quantization (disabled)",
      state: gpuIntervalsNs.length === 0 ? "not confirmed" : unquantized > 0 ? "in force" : "not in force",
      evidence:
        gpuIntervalsNs.length === 0
          ? "no GPU timestamps were taken (no timestamp-query)"
          : `${unquantized} of ${gpuIntervalsNs.length} GPU-timed intervals are not multiples of ${QUANTUM_NS} ns`,
    },
  ];
}

const printed = (d: Diagnostic) => console.error(`${d.code} ${d.message}${d.hint ? `\n  hint: ${d.hint}` : ""}`);

/**
 * The device a benchmark command runs on (Dawn's choice, or SFT_ADAPTER). Its warnings (a fast
 * kernel that failed its self-check and falls back, SFT5010) go to stderr, so a run says which
 * kernels it measured; a device that does not open ends the process with exit 1.
 */
export async function openBenchDevice(): Promise<GpuDevice> {
  const opened = await openDevice();
  for (const d of opened.diagnostics) printed(d);
  if (!opened.ok) process.exit(1);
  return opened.value;
}
