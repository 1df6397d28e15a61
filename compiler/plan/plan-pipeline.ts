// `planPipeline`: a resolved pipeline to its memory plan, and the check of that plan against the
// device's memory (refused with advice when over).
import { ok, type Diagnostic, type Result } from "../diagnostics.ts";
import type { ResolvedPipeline } from "../check/resolve.ts";
import { alternatives, refusal } from "./advice.ts";
import type { DeviceMemory } from "./device-memory.ts";
import type { PlanHeader } from "./format.ts";
import { plannedModel, type ModelSources, type PlannedModel } from "./model-config.ts";
import { planSettings } from "./settings.ts";
import { planStep, type PipelinePlan } from "./step-plan.ts";

export interface PlannedPipeline {
  header: PlanHeader;
  model: PlannedModel;
  plan: PipelinePlan;
}

/** The memory plan of one optimizer step of `pipeline` as written (see step-plan.ts). */
export function planPipeline(pipeline: ResolvedPipeline, sources: ModelSources = {}): Result<PlannedPipeline> {
  const model = plannedModel(pipeline, sources);
  if (!model.ok) return model;
  const plan = planStep(model.value.family, model.value.config, planSettings(pipeline));
  if (!plan.ok) return plan;
  const d = model.value.config.dims;
  const header: PlanHeader = {
    pipeline: pipeline.name,
    file: pipeline.file,
    family: model.value.family.name,
    source: model.value.source,
    dims: { hidden: d.hidden, layers: d.layers, heads: d.heads, kvHeads: d.kvHeads, ffn: d.ffn, vocab: d.vocab },
  };
  return ok({ header, model: model.value, plan: plan.value });
}

/** No diagnostics when the plan fits `device`; else the SFT3101 refusal with each alternative's estimated peak. */
export function checkAgainstDevice(planned: PlannedPipeline, device: DeviceMemory): Diagnostic[] {
  const { plan, model, header } = planned;
  if (plan.peakBytes <= device.bytes) return [];
  const options = alternatives(plan.settings, model.family).map(({ change, settings }) => {
    const estimate = planStep(model.family, model.config, settings, { estimate: true });
    return { change, peak: estimate.ok ? estimate.value.peakBytes : null };
  });
  return [refusal({ name: header.pipeline, file: header.file }, plan, device, options)];
}
