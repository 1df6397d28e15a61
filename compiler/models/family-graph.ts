// A family's model as an op graph, read from its declaration (stdlib/families): parameters named
// as the checkpoint names its tensors (so weights bind by name), inputs per the family's position
// and mask traits, outputs `logits` (B·T, V) and `loss` (the SFT cross-entropy of models.md §0.4).
// Nothing here branches on a family's name: norms, residual style, QKV layout, RoPE/ALiBi, masks,
// MLP, biases and head tying are all traits. LoRA adapts the linears a method targets; a training
// graph of a LoRA method with dropout reads one dropout mask per adapted linear as an input.
// B = batch, T = sequence, C = hidden, V = vocab.
import { diag, fail, invariant, ok, type Result } from "../diagnostics.ts";
import * as b from "../ir/build.ts";
import { graph, type DType, type Graph, type Node } from "../ir/node.ts";
import type { ModelConfig } from "../../stdlib/families/config.ts";
import { loraModulesFor, type BiasTrait, type Family, type ParamRole } from "../../stdlib/families/family.ts";
import { attentionBlock, layerStack, type BlockContext, type LinearRole, type NormRole } from "./family-blocks.ts";
import { INPUT, positionStreams, usesRopeTables } from "./family-inputs.ts";
import { linear, loraDropoutInputName, loraParamNames, type LoraAdapter } from "./lora-linear.ts";

export type TrainingMethod =
  | { kind: "full" }
  /**
   * `targets`: model-native module names (`W_pack`), canonical names (`attn.qkv`, `mlp.*`) or `all`.
   * `dropout`: PEFT's lora_dropout probability, applied in training graphs only (default 0).
   */
  | { kind: "lora"; rank: number; alpha: number; targets: readonly string[]; dropout?: number };

export interface FamilyGraphOptions {
  batch: number;
  seq: number;
  /** Default: full fine-tuning. */
  method?: TrainingMethod;
  /** A training graph: a LoRA method's dropout masks become inputs (default: forward only, no dropout). */
  training?: boolean;
  /** Weights stored narrower than f32, by checkpoint name (frozenWeightDtypes); the rest are f32. */
  weightDtypes?: ReadonlyMap<string, DType>;
}

export interface FamilyGraph {
  /** Outputs `logits` and `loss`. */
  graph: Graph;
  /** (B·T, V) */
  logits: Node;
  /** Token-mean cross-entropy of logits[t] against labels[t + 1], ignoring -100. */
  loss: Node;
  /** Checkpoint weights the graph reads, by checkpoint tensor name. */
  weights: ReadonlyMap<string, Node>;
  /** LoRA parameters (`<module>.lora_A.weight` (rank, in), `<module>.lora_B.weight` (out, rank)). */
  adapters: ReadonlyMap<string, Node>;
  /** What training updates: every weight (full) or the adapters alone (LoRA). */
  trainable: Node[];
  /** Graph inputs by name (see `INPUT`): ids and labels (B, T), positions, masks, RoPE tables, dropout masks. */
  inputs: ReadonlyMap<string, Node>;
  /** The LoRA dropout mask inputs (each its linear's input shape), in module order; none without dropout. */
  dropoutMasks: Node[];
}

/** Where each linear's bias lives, and the trait that says whether it has one. */
const BIAS: Record<LinearRole, { trait: keyof BiasTrait; role: ParamRole } | null> = {
  "attn.qkv": { trait: "qkv", role: "attn.qkv.bias" },
  "attn.out": { trait: "out", role: "attn.out.bias" },
  "mlp.up": { trait: "mlp", role: "mlp.up.bias" },
  "mlp.down": { trait: "mlp", role: "mlp.down.bias" },
  "mlp.gate": null,
  "mlp.gate_up": null,
  head: { trait: "head", role: "head.bias" },
};

/** Builds the forward graph and SFT loss of `family` with `config`'s dimensions. */
export function buildFamilyGraph(family: Family, config: ModelConfig, options: FamilyGraphOptions): Result<FamilyGraph> {
  const dims = config.dims;
  const method = options.method ?? { kind: "full" };
  const problems = optionProblems(config, options, method);
  if (problems.length) return fail(...problems);
  const adapted = method.kind === "lora" ? loraRoles(family, method.targets) : ok(new Set<ParamRole>());
  if (!adapted.ok) return adapted;
  const { batch: B, seq: T } = options;
  const C = dims.hidden;

  const weights = new Map<string, Node>();
  const weight = (role: ParamRole, layer: number | null): Node => {
    const decl = family.tensors.find((t) => t.role === role);
    invariant(decl, `${family.name} declares no tensor for ${role}`);
    const name = layer === null ? decl.name : decl.name.replaceAll("{layer}", String(layer));
    let p = weights.get(name);
    if (!p) weights.set(name, (p = b.param(name, decl.shape(dims), options.weightDtypes?.get(name))));
    return p;
  };
  const adapters = new Map<string, Node>();
  const dropoutMasks: Node[] = [];
  const dropout = method.kind === "lora" && options.training === true ? (method.dropout ?? 0) : 0;
  const adapterFor = (w: Node, x: Node): LoraAdapter | null => {
    if (method.kind !== "lora") return null;
    const [out, inp] = w.shape;
    const names = loraParamNames(w.attrs.name!);
    const a = b.param(names.a, [method.rank, inp]);
    const up = b.param(names.b, [out, method.rank]);
    adapters.set(names.a, a);
    adapters.set(names.b, up);
    if (dropout === 0) return { a, b: up, scale: method.alpha / method.rank };
    const mask = b.input(loraDropoutInputName(w.attrs.name!), x.shape);
    dropoutMasks.push(mask);
    return { a, b: up, scale: method.alpha / method.rank, dropoutMask: mask };
  };
  const project = (x: Node, role: LinearRole, layer: number | null): Node => {
    const w = weight(`${role}.weight`, layer);
    const bias = BIAS[role] && family.biases[BIAS[role].trait] ? weight(BIAS[role].role, layer) : null;
    return linear(x, w, bias, adapted.value.has(`${role}.weight`) ? adapterFor(w, x) : null);
  };
  const norm = (x: Node, prefix: NormRole, layer: number | null): Node => {
    const w = weight(`${prefix}.weight`, layer);
    if (family.norm.kind === "rmsnorm") return b.rmsNorm(x, w, dims.normEps);
    return b.layerNorm(x, w, family.biases.norm ? weight(`${prefix}.bias`, layer) : b.fill(0, w), dims.normEps);
  };

  const inputs = familyInputNodes(family, config, B, T);
  const ctx: BlockContext = {
    family,
    dims,
    project,
    norm,
    rotary: { positions: inputs.get(INPUT.positions) ?? null, cos: inputs.get(INPUT.cos) ?? null, sin: inputs.get(INPUT.sin) ?? null },
    prefixLength: inputs.get(INPUT.prefixLength) ?? null,
  };

  const table = weight("embed.weight", null);
  const x = layerStack(ctx, b.embedding(table, inputs.get(INPUT.ids)!), (a, layer) => attentionBlock(ctx, a, layer)); // (B, T, C)
  const final = b.reshape(norm(x, "final_norm", null), [B * T, C]);
  const logits = config.tiedHead ? b.matmul(final, table, { transB: true }) : project(final, "head", null); // (B·T, V)

  // Shift the labels instead of the logits: row t is scored against labels[t + 1], and the last
  // row of each sequence against -100, which leaves the token mean unchanged.
  const labels = inputs.get(INPUT.labels)!;
  const shifted = b.concat([b.slice(labels, 1, 1, T), b.constant(-100, [B, 1], "i32")], 1); // (B, T)
  const loss = b.crossEntropy(logits, b.reshape(shifted, [B * T]), -100);

  const trainable = method.kind === "lora" ? [...adapters.values()] : [...weights.values()];
  for (const mask of dropoutMasks) inputs.set(mask.attrs.name!, mask);
  return ok({ graph: graph([["logits", logits], ["loss", loss]]), logits, loss, weights, adapters, trainable, inputs, dropoutMasks });
}

/** The inputs this family reads, by name: ids and labels always; the rest per its traits. */
function familyInputNodes(family: Family, config: ModelConfig, B: number, T: number): Map<string, Node> {
  const inputs = new Map<string, Node>([
    [INPUT.ids, b.input(INPUT.ids, [B, T], "i32")],
    [INPUT.labels, b.input(INPUT.labels, [B, T], "i32")],
  ]);
  const streams = positionStreams(family);
  if (streams === 0) return inputs;
  if (usesRopeTables(family)) {
    const tableShape = [B, T, streams, config.dims.rotaryDims / 2];
    inputs.set(INPUT.cos, b.input(INPUT.cos, tableShape));
    inputs.set(INPUT.sin, b.input(INPUT.sin, tableShape));
  } else {
    inputs.set(INPUT.positions, b.input(INPUT.positions, [B, T, streams], "i32"));
  }
  if (family.attention.mask.kind === "glm_prefix") inputs.set(INPUT.prefixLength, b.input(INPUT.prefixLength, [B], "i32"));
  return inputs;
}

/** The weight roles the LoRA targets select; an unknown target is an error naming the choices. */
function loraRoles(family: Family, targets: readonly string[]): Result<Set<ParamRole>> {
  const roles = new Set<ParamRole>();
  const choices = family.lora.modules.map((m) => m.native).join(", ");
  if (targets.length === 0) return fail(diag("SFT2022", `A LoRA method needs at least one target module of ${family.title}.`, { hint: `Choose among ${choices}, or all.` }));
  for (const target of targets) {
    const modules = loraModulesFor(family, target);
    if (modules.length === 0) return fail(diag("SFT2022", `${family.title} has no layer '${target}' to adapt.`, { where: target, hint: `Choose among ${choices}, their canonical names (attn.qkv, mlp.*), or all.` }));
    for (const module of modules) {
      const decl = family.tensors.find((t) => t.name.endsWith(`.${module.native}.weight`));
      invariant(decl, `${family.name}: LoRA module ${module.native} has no declared weight`);
      roles.add(decl.role);
    }
  }
  return ok(roles);
}

function optionProblems(config: ModelConfig, o: FamilyGraphOptions, method: TrainingMethod) {
  const problems = [];
  for (const key of ["batch", "seq"] as const) {
    const minimum = key === "seq" ? 2 : 1; // a loss needs a next token
    if (!(Number.isInteger(o[key]) && o[key] >= minimum)) problems.push(diag("SFT3002", `The model graph's ${key} must be an integer >= ${minimum}, got ${o[key]}.`, { where: key }));
  }
  if (o.seq > config.dims.maxPositions) {
    problems.push(diag("SFT3006", `A sequence of ${o.seq} tokens is longer than the model's ${config.dims.maxPositions} positions.`, { where: "seq", hint: "Lower max_length to the model's positions." }));
  }
  if (method.kind === "lora") {
    if (!(Number.isInteger(method.rank) && method.rank >= 1)) problems.push(diag("SFT3002", `The LoRA rank must be an integer >= 1, got ${method.rank}.`, { where: "rank" }));
    else if (method.rank > config.dims.hidden) problems.push(diag("SFT3005", `The LoRA rank ${method.rank} is larger than the hidden size ${config.dims.hidden}.`, { where: "rank", hint: "a LoRA rank is usually 4 to 64" }));
    if (!(Number.isFinite(method.alpha) && method.alpha > 0)) problems.push(diag("SFT3002", `The LoRA alpha must be a positive number, got ${method.alpha}.`, { where: "alpha" }));
    const dropout = method.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) problems.push(diag("SFT3002", `The LoRA dropout must be a number in [0, 1), got ${dropout}.`, { where: "dropout" }));
  }
  return problems;
}
