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

/**
 * The memory plan of one optimizer step of `pipeline` as written (see step-plan.ts); `estimate`
 * extrapolates the step from 2 and 3 layers instead of compiling every layer.
 */
export function planPipeline(pipeline: ResolvedPipeline, sources: ModelSources = {}, options: { estimate?: boolean } = {}): Result<PlannedPipeline> {
  const model = plannedModel(pipeline, sources);
  if (!model.ok) return model;
  const plan = planStep(model.value.family, model.value.config, planSettings(pipeline), options);
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

/**
 * No diagnostics when the plan fits `device`; else the SFT3101 refusal with each alternative's
 * peak: estimated from 2 and 3 layers, and planned at full depth when the estimate fits (so a
 * "fits" is never an estimate).
 */
export function checkAgainstDevice(planned: PlannedPipeline, device: DeviceMemory): Diagnostic[] {
  const { plan, model, header } = planned;
  if (plan.peakBytes <= device.bytes) return [];
  const options = alternatives(plan.settings, model.family).map(({ change, settings }) => {
    const estimate = planStep(model.family, model.config, settings, { estimate: true });
    if (!estimate.ok) return { change, peak: null, exact: false };
    if (estimate.value.peakBytes > device.bytes || estimate.value.depth.planned === "every layer") return { change, peak: estimate.value.peakBytes, exact: estimate.value.depth.planned === "every layer" };
    const exact = planStep(model.family, model.config, settings);
    return exact.ok ? { change, peak: exact.value.peakBytes, exact: true } : { change, peak: null, exact: false };
  });
  return [refusal({ name: header.pipeline, file: header.file }, plan, device, options)];
}
