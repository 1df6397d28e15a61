// A trained LoRA of one model family as a PEFT directory: the pipeline's targets (native,
// canonical or wildcard names) resolved to the module-name suffixes PEFT matches, the graph's
// adapter parameters (`<module>.lora_A.weight`, named after the checkpoint weight they adapt)
// checked against the family's module shapes, and `modules_to_save` mapped to the model's own
// module names (`lm_head`, ChatGLM2's `output_layer`, MOSS's `wte`, ...).
import type { Code } from "../../compiler/diagnostic-codes.ts";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { expandTemplate, loraModulesFor, type Family } from "../../stdlib/families/family.ts";
import { captureWriteErrors } from "./output-dir.ts";
import { writePeftAdapter, type AdapterDtype, type LoraModuleWeights, type SavedTensor } from "./peft.ts";
import { SAVED_MODULE_ROLES } from "../../compiler/plan/storage.ts";

/** The LoRA settings of a pipeline's method block, as the user wrote them. */
export interface LoraExportSettings {
  rank: number;
  alpha: number;
  dropout: number;
  /** Model-native names (`W_pack`), canonical names (`attn.qkv`), wildcards (`mlp.*`) or `all`. */
  targets: readonly string[];
  rslora?: boolean;
  bias?: "none" | "lora_only" | "all";
  /** Canonical names of modules trained in full: `embeddings`, `lm_head`. */
  modulesToSave?: readonly string[];
}

export interface PeftExport {
  family: Family;
  config: ModelConfig;
  method: LoraExportSettings;
  /** `base_model_name_or_path`: the model's hub id or directory. */
  baseModel: string;
  /** Adapter parameters by graph name: `<module>.lora_A.weight` (rank, in), `.lora_B.weight` (out, rank). */
  weights: ReadonlyMap<string, Float32Array | Float64Array>;
  /** Full tensors trained beside the adapters (`modules_to_save`, biases), by checkpoint name. */
  saved?: ReadonlyMap<string, Float32Array | Float64Array>;
  /** Element type of the adapter file (default F32, as PEFT keeps adapters). */
  dtype?: AdapterDtype;
}

/** One linear a LoRA adapts: its module path and nn.Linear's (out, in). */
export interface LoraModuleShape {
  modulePath: string;
  outFeatures: number;
  inFeatures: number;
}


/**
 * The model-native module names `targets` select, in the order the targets name them and without
 * repeats; a target that names no module is a `code` diagnostic (the exporter's) naming the choices.
 */
export function peftTargetModules(family: Family, targets: readonly string[], code: Code): Result<string[]> {
  const natives = new Set<string>();
  const choices = family.lora.modules.map((m) => m.native).join(", ");
  for (const target of targets) {
    const modules = loraModulesFor(family, target);
    if (modules.length === 0) {
      return fail(diag(code, `${family.title} has no layer '${target}' for a LoRA adapter.`, { where: target, hint: `Choose among ${choices}, their canonical names (attn.qkv, mlp.*), or all.` }));
    }
    for (const m of modules) natives.add(m.native);
  }
  return ok([...natives]);
}

/** Every linear named by `natives`, layer by layer, with its weight's (out, in). */
export function loraModuleShapes(family: Family, config: ModelConfig, natives: readonly string[]): LoraModuleShape[] {
  const decls = family.tensors.filter((t) => natives.some((n) => t.name.endsWith(`.${n}.weight`)));
  const shapes: LoraModuleShape[] = [];
  // Layer-major, like the model's module tree.
  for (let layer = 0; layer < config.dims.layers; layer++) {
    for (const decl of decls) {
      const [outFeatures, inFeatures] = decl.shape(config.dims);
      shapes.push({ modulePath: decl.name.replaceAll("{layer}", String(layer)).replace(/\.weight$/, ""), outFeatures, inFeatures });
    }
  }
  return shapes;
}

/**
 * The parameters a `modules_to_save` entry covers (checkpoint names and shapes) and the module
 * name PEFT matches it by (the last component of its path).
 */
export function savedModuleTensors(family: Family, config: ModelConfig, module: string): { native: string; tensors: { name: string; shape: number[] }[] } | null {
  const roles = SAVED_MODULE_ROLES[module];
  if (!roles) return null;
  const decls = family.tensors.filter((t) => roles.includes(t.role));
  if (decls.length === 0) return null;
  const path = decls[0].name.replace(/\.weight$/, "");
  return { native: path.slice(path.lastIndexOf(".") + 1), tensors: decls.map((d) => ({ name: d.name, shape: d.shape(config.dims) })) };
}

/** Checks the trained weights against the family's modules and writes the PEFT directory. */
export async function exportPeftAdapter(dir: string, e: PeftExport): Promise<Result<{ modules: number; saved: number }>> {
  const natives = peftTargetModules(e.family, e.method.targets, "SFT5807");
  if (!natives.ok) return natives;
  natives.value.sort(); // as PEFT lists target_modules
  const problems: Diagnostic[] = [];
  const rank = e.method.rank;
  const modules: LoraModuleWeights[] = [];
  const expected = new Set<string>();
  for (const shape of loraModuleShapes(e.family, e.config, natives.value)) {
    const a = loraWeight(e.weights, `${shape.modulePath}.lora_A.weight`, [rank, shape.inFeatures], problems);
    const b = loraWeight(e.weights, `${shape.modulePath}.lora_B.weight`, [shape.outFeatures, rank], problems);
    expected.add(`${shape.modulePath}.lora_A.weight`).add(`${shape.modulePath}.lora_B.weight`);
    if (a && b) modules.push({ ...shape, a, b });
  }
  for (const name of e.weights.keys()) {
    if (!expected.has(name)) problems.push(diag("SFT5807", `The weight ${name} is not an adapter of the targets ${natives.value.join(", ")} of ${e.family.title}.`, { where: name, hint: "Export with the method block the run was trained with." }));
  }
  const saved = savedTensors(e, problems);
  if (problems.length > 0) return fail(...problems);

  const written = await captureWriteErrors(dir, () =>
    writePeftAdapter(dir, {
      baseModel: e.baseModel,
      rank,
      alpha: e.method.alpha,
      dropout: e.method.dropout,
      targetModules: natives.value,
      dtype: e.dtype ?? "F32",
      rslora: e.method.rslora,
      bias: e.method.bias,
      modulesToSave: saved.natives,
    }, modules, saved.tensors),
  );
  if (!written.ok) return written;
  return ok({ modules: modules.length, saved: saved.tensors.length });
}

/** The adapter weight `name` if it has the (rows, cols) of its module and rank; else a problem. */
function loraWeight(weights: PeftExport["weights"], name: string, [rows, cols]: [number, number], problems: Diagnostic[]): Float32Array | Float64Array | undefined {
  const values = weights.get(name);
  if (values === undefined) problems.push(diag("SFT5807", `The LoRA weight ${name} [${rows}, ${cols}] is missing from the weights to export.`, { where: name }));
  else if (values.length !== rows * cols) problems.push(diag("SFT5807", `The LoRA weight ${name} has ${values.length} values; its module and rank need [${rows}, ${cols}].`, { where: name }));
  else return values;
  return undefined;
}

/** The full tensors to save: every parameter of each `modules_to_save` entry, and trained biases. */
function savedTensors(e: PeftExport, problems: Diagnostic[]): { natives: string[]; tensors: SavedTensor[] } {
  const given = new Map(e.saved ?? []);
  const natives: string[] = [];
  const tensors: SavedTensor[] = [];
  const take = (name: string, shape: number[]) => {
    const values = given.get(name);
    given.delete(name);
    const size = shape.reduce((x, y) => x * y, 1);
    if (values === undefined) problems.push(diag("SFT5807", `The saved tensor ${name} [${shape}] is missing from the weights to export.`, { where: name }));
    else if (values.length !== size) problems.push(diag("SFT5807", `The saved tensor ${name} has ${values.length} values, expected [${shape}].`, { where: name }));
    else tensors.push({ name, shape, values });
  };
  for (const module of e.method.modulesToSave ?? []) {
    const found = savedModuleTensors(e.family, e.config, module);
    if (!found) {
      problems.push(diag("SFT5807", `${e.family.title} has no module '${module}' to save in full.`, { where: module, hint: "Use embeddings or lm_head." }));
      continue;
    }
    natives.push(found.native);
    for (const t of found.tensors) take(t.name, t.shape);
  }
  // Trained biases (bias = lora_only or all) are saved under their own names, like PEFT does.
  const biasDecls = e.family.tensors.filter((t) => t.role.endsWith(".bias"));
  const biases = new Map(biasDecls.flatMap((t) => expandTemplate(t.name, e.config.dims.layers).map((name) => [name, t.shape(e.config.dims)] as const)));
  for (const name of [...given.keys()]) {
    const shape = biases.get(name);
    if (shape && (e.method.bias ?? "none") !== "none") take(name, shape);
    else problems.push(diag("SFT5807", `The tensor ${name} is neither an adapter nor part of modules_to_save or a trained bias.`, { where: name, hint: "Set modules_to_save or bias in the method block to export it." }));
  }
  return { natives, tensors };
}
