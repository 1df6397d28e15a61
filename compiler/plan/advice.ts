// A plan over the device's memory is refused with advice: each change that lowers the peak
// (a smaller micro-batch, gradient checkpointing, LoRA, QLoRA, a shorter max_length), planned
// again, with the peak it would give. An alternative still over the limit is an estimate
// (extrapolated from 2 and 3 layers, which can be low: see step-plan.ts); one that fits was
// planned at full depth. The message says which.
import { diag, type Diagnostic } from "../diagnostics.ts";
import { formatBytes } from "../passes/memory-plan.ts";
import type { Family } from "../../stdlib/families/family.ts";
import type { DeviceMemory } from "./device-memory.ts";
import type { PlanSettings } from "./settings.ts";
import type { PipelinePlan } from "./step-plan.ts";

/** One change to a pipeline and the settings it gives. */
export interface Alternative {
  /** What to write, e.g. `--set train.gradient_checkpointing=true`. */
  change: string;
  settings: PlanSettings;
}

const DEFAULT_NF4 = { blockSize: 64, doubleQuant: true, doubleQuantBlockSize: 256 };

/** The changes that would lower the peak of `s`, most usual first. */
export function alternatives(s: PlanSettings, family: Family): Alternative[] {
  const out: Alternative[] = [];
  if (s.batch > 1) out.push({ change: `train.batch_size = 1, train.grad_accum = ${s.batch * s.gradAccum} (the same examples per step)`, settings: { ...s, batch: 1, gradAccum: s.batch * s.gradAccum } });
  if (!s.gradientCheckpointing) out.push({ change: "train.gradient_checkpointing = true", settings: { ...s, gradientCheckpointing: true } });
  const lora = s.method.kind === "full" ? { rank: 8, alpha: 16, targets: family.lora.defaultTargets, bias: "none" as const, modulesToSave: [] } : s.method;
  if (s.method.kind === "full") out.push({ change: `method lora { rank = 8 } (adapters on ${lora.targets.join(", ")})`, settings: { ...s, method: { ...lora, kind: "lora" } } });
  if (s.method.kind !== "qlora") out.push({ change: `method qlora${s.method.kind === "full" ? " { rank = 8 }" : " (the same adapters over NF4 base weights)"}`, settings: { ...s, method: { ...lora, kind: "qlora", nf4: DEFAULT_NF4 } } });
  if (s.seq >= 64) {
    const seq = Math.floor(s.seq / 2);
    out.push({ change: `max_length = ${seq} in every dataset`, settings: { ...s, seq } });
  }
  if (out.length > 1) {
    // each alternative changes different fields of the same settings, so they combine by merging
    const all = out.reduce((acc, a) => ({ ...acc, ...changedFields(s, a.settings) }), s);
    out.push({ change: "all of these together", settings: all });
  }
  return out;
}

function changedFields(base: PlanSettings, changed: PlanSettings): Partial<PlanSettings> {
  return Object.fromEntries(Object.entries(changed).filter(([key, value]) => base[key as keyof PlanSettings] !== value));
}

/** The SFT3101 refusal of `plan` on `device`, with each alternative's peak (null: it could not be planned). */
export function refusal(pipeline: { name: string; file: string }, plan: PipelinePlan, device: DeviceMemory, planned: { change: string; peak: number | null; exact: boolean }[]): Diagnostic {
  const over = formatBytes(plan.peakBytes - device.bytes);
  const lines = planned.map(({ change, peak, exact }) => {
    if (peak === null) return `  - ${change}: could not be planned`;
    return `  - ${change}: peak ${exact ? "" : "≈ "}${formatBytes(peak)}${peak <= device.bytes ? " (fits)" : " (still over)"}`;
  });
  return diag(
    "SFT3101",
    `pipeline ${pipeline.name} needs ${formatBytes(plan.peakBytes)} at its peak, ${over} more than the ${formatBytes(device.bytes)} of device memory (${device.source})`,
    {
      where: pipeline.file,
      hint: ["each of these changes would give (≈: estimated from 2 and 3 layers, may be low):", ...lines].join("\n"),
    },
  );
}
