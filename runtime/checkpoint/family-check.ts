// Matches a checkpoint's tensors against a family's declaration before any weight is read:
// every declared tensor present with the shape the config implies, nothing unexplained.
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { expandTemplate, templatePattern, type Family, type ModelDims, type ParamRole } from "../../stdlib/families/family.ts";
import type { TensorInfo } from "./tensor.ts";

/** What a checkpoint tensor is to the graph: its role, and its layer for per-layer tensors. */
export interface TensorBinding {
  role: ParamRole;
  layer: number | null;
}

/**
 * The binding of each tensor to load, keyed by checkpoint name. Skipped buffers (inv_freq,
 * causal masks) are left out. Errors name each missing, unexpected or misshapen tensor.
 */
export function bindTensors(tensors: readonly TensorInfo[], family: Family, dims: ModelDims, dir: string): Result<Map<string, TensorBinding>> {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const skipped = family.skip.map(templatePattern);
  const bindings = new Map<string, TensorBinding>();
  const problems: Diagnostic[] = [];
  for (const decl of family.tensors) {
    const names = expandTemplate(decl.name, dims.layers);
    const expected = decl.shape(dims);
    names.forEach((name, i) => {
      const info = byName.get(name);
      if (!info) {
        if (!decl.optional) problems.push(diag("SFT5115", `the checkpoint in ${dir} lacks tensor ${name} [${expected}], which ${family.title} needs`, { where: `${dir}: ${name}`, hint: "check that the model path and the family belong together" }));
        return;
      }
      if (info.shape.length !== expected.length || info.shape.some((n, d) => n !== expected[d])) {
        problems.push(diag("SFT5114", `tensor ${name} in ${info.file} has shape [${info.shape}], but config.json implies [${expected}]`, { where: `${info.file}: ${name}`, hint: "config.json and the weights come from different models" }));
        return;
      }
      bindings.set(name, { role: decl.role, layer: decl.name.includes("{layer}") ? i : null });
    });
  }
  for (const info of tensors) {
    if (bindings.has(info.name) || skipped.some((p) => p.test(info.name))) continue;
    if (problems.some((p) => p.where?.endsWith(`: ${info.name}`))) continue;
    problems.push(diag("SFT5116", `tensor ${info.name} in ${info.file} is not part of ${family.title} with ${dims.layers} layers`, { where: `${info.file}: ${info.name}`, hint: "check the family name and num_layers in config.json" }));
  }
  return problems.length > 0 ? fail(...problems) : ok(bindings);
}
