// A parsed config.json checked against a family's declaration and mapped to canonical
// dimensions. Pure: reading the file is runtime/checkpoint/config.ts's job.
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { DIM_ORDER, qkvGroups, type ConfigCheck, type Family, type FamilyName, type ModelDims, type TokenDecl } from "./family.ts";
import { families } from "./index.ts";

/** A model's configuration in canonical terms. */
export interface ModelConfig {
  family: FamilyName;
  dims: ModelDims;
  tiedHead: boolean;
  tokens: { bos: number | null; eos: number[]; pad: number | null; specials: Record<string, number> };
  /** `torch_dtype` as the config states it, if it does. */
  torchDtype: string | null;
  raw: Readonly<Record<string, unknown>>;
}

/** Checks `raw` (a parsed config.json, from `file`) against `family` and resolves its dimensions. */
export function resolveModelConfig(raw: unknown, family: Family, file: string): Result<ModelConfig> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail(diag("SFT5103", `${file} must hold a JSON object`, { where: file }));
  }
  const config = raw as Record<string, unknown>;
  const contradictions = family.checks.flatMap((check) => checkFails(check, config));
  if (contradictions.length > 0) {
    const hint = suggestFamily(config, family.name);
    return fail(
      ...contradictions.map((message) =>
        diag("SFT5104", `${file} does not fit family ${family.name} (${family.title}): ${message}`, { where: file, hint }),
      ),
    );
  }

  const dims: Partial<ModelDims> = {};
  const problems: Diagnostic[] = [];
  for (const name of DIM_ORDER) {
    const source = family.dims[name];
    const key = source.keys.find((k) => config[k] !== undefined && config[k] !== null);
    if (key === undefined) {
      if (source.fallback) dims[name] = source.fallback(dims);
      else problems.push(diag("SFT5103", `${file} lacks the key "${source.keys.join('" or "')}" (${name}), which ${family.title} configs have`, { where: file }));
      continue;
    }
    const value = config[key];
    const valid = typeof value === "number" && value > 0 && (name === "normEps" || Number.isInteger(value));
    if (!valid) {
      problems.push(diag("SFT5103", `${file}: "${key}" must be a positive ${name === "normEps" ? "number" : "integer"}, got ${JSON.stringify(value)}`, { where: file }));
      continue;
    }
    dims[name] = value;
  }
  if (problems.length > 0) return fail(...problems);
  const complete = dims as ModelDims;
  const shapeProblems = dimensionProblems(complete, family).map((message) => diag("SFT5104", `${file}: ${message}`, { where: file }));
  if (shapeProblems.length > 0) return fail(...shapeProblems);

  const tieValue = config[family.tiedHead.key];
  return ok({
    family: family.name,
    dims: complete,
    tiedHead: typeof tieValue === "boolean" ? tieValue : family.tiedHead.default,
    tokens: {
      bos: family.tokens.bos ? tokenId(family.tokens.bos, config) : null,
      eos: family.tokens.eos.flatMap((t) => eosIds(t, config)),
      pad: family.tokens.pad ? tokenId(family.tokens.pad, config) : null,
      specials: Object.fromEntries(family.tokens.specials.map((t) => [t.name, tokenId(t, config)])),
    },
    torchDtype: typeof config.torch_dtype === "string" ? config.torch_dtype : null,
    raw: config,
  });
}

function checkFails(check: ConfigCheck, config: Record<string, unknown>): string[] {
  const present = Object.hasOwn(config, check.key);
  if (check.absent && present) return [`"${check.key}" is present, but ${check.because}`];
  if (!present) return check.required ? [`"${check.key}" is missing (${check.because})`] : [];
  if (!check.oneOf) return [];
  const value = config[check.key];
  const values = Array.isArray(value) ? value : [value];
  const accepted = check.oneOf;
  if (values.every((v) => accepted.includes(v as never))) return [];
  return [`"${check.key}" is ${JSON.stringify(value)}, expected ${accepted.map((v) => JSON.stringify(v)).join(" or ")}: ${check.because}`];
}

/** The families whose checks this config passes, for a hint after a mismatch. */
function suggestFamily(config: Record<string, unknown>, except: FamilyName): string | undefined {
  const matches = Object.values(families).filter((f) => f.name !== except && f.checks.every((c) => checkFails(c, config).length === 0));
  if (matches.length === 0) return "check that the model directory and the family name in the pipeline belong together";
  return `this config.json looks like ${matches.map((f) => `${f.title}: use family ${f.name}`).join("; or ")}`;
}

/** Constraints every family's dimensions must satisfy for its layouts to make sense. */
function dimensionProblems(d: ModelDims, family: Family): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(d.headDim)) problems.push(`hidden size ${d.hidden} is not a multiple of the head count ${d.heads}`);
  if (d.heads % d.kvHeads !== 0) problems.push(`${d.heads} attention heads cannot share ${d.kvHeads} key/value heads evenly`);
  const groups = qkvGroups(family.qkv, d);
  if (d.heads % groups !== 0 || d.kvHeads % groups !== 0) {
    problems.push(`the fused QKV projection has ${groups} chunks, which must divide ${d.heads} heads and ${d.kvHeads} key/value heads`);
  }
  if (family.position.kind === "rope") {
    const rotated = d.rotaryDims * family.position.streams;
    if (!Number.isInteger(d.rotaryDims) || d.rotaryDims % 2 !== 0 || rotated > d.headDim) {
      problems.push(`rotary dimensions ${d.rotaryDims} (x${family.position.streams} streams) must be even and fit the head dimension ${d.headDim}`);
    }
  }
  return problems;
}

/** An EOS key may hold one id or a list of them (newer generation configs do). */
function eosIds(token: TokenDecl, config: Record<string, unknown>): number[] {
  const value = token.key === undefined ? undefined : config[token.key];
  const isIds = Array.isArray(value) && value.length > 0 && value.every((v) => Number.isInteger(v));
  return isIds ? (value as number[]) : [tokenId(token, config)];
}

function tokenId(token: TokenDecl, config: Record<string, unknown>): number {
  const value = token.key === undefined ? undefined : config[token.key];
  return typeof value === "number" && Number.isInteger(value) ? value : token.id;
}
