// Which matmul strategy an adapter gets (matmul.ts runs each): subgroup matrices where the
// adapter has them with f16 inputs and a fixed subgroup size, "registers" on CPU adapters, else
// "tiled". The environment variable SFT_MATMUL=tiled|registers|subgroup-matrix overrides the
// choice, and SFT_MATMUL_TILING=<preset of SUBGROUP_TILINGS> the subgroup-matrix kernel's tiling,
// which the device otherwise tunes at its start (runtime/gpu/matmul-tuning.ts).
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { SUBGROUP_TILINGS, subgroupMatrixConfigFor, type SubgroupMatrixConfig, type SubgroupMatrixStrategy, type SubgroupTilingName } from "./matmul-subgroup.ts";

export type MatmulStrategy = "tiled" | "registers" | SubgroupMatrixStrategy;

/** The strategy's name as SFT_MATMUL spells it. */
export function strategyName(strategy: MatmulStrategy): string {
  return typeof strategy === "string" ? strategy : strategy.kind;
}

/** What the strategy choice reads of an adapter (runtime/gpu/device.ts AdapterSummary has it). */
export interface MatmulAdapter {
  /** "software" for CPU rasterizers. */
  architecture: string;
  features: readonly string[];
  subgroupMinSize: number;
  subgroupMaxSize: number;
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
}

/**
 * The strategy for an adapter: subgroup matrices where the adapter has the feature, shader-f16,
 * a fixed subgroup size and an f16 configuration; "registers" on CPU adapters; else "tiled".
 * SFT_MATMUL in `env` overrides the choice; the subgroup-matrix tiling is SFT_MATMUL_TILING, else
 * `tuned` (the device's fastest, matmul-tuning.ts), else DEFAULT_SUBGROUP_TILING. An unknown
 * name, or subgroup matrices where the adapter has none, is a diagnostic.
 */
export function matmulStrategyFor(adapter: MatmulAdapter, env: Readonly<Record<string, string | undefined>> = process.env, tuned?: SubgroupTilingName): Result<MatmulStrategy> {
  const named = env.SFT_MATMUL_TILING?.trim();
  if (named && !Object.hasOwn(SUBGROUP_TILINGS, named))
    return fail(
      diag("SFT2018", `SFT_MATMUL_TILING='${named}' is not a tiling preset`, { where: "SFT_MATMUL_TILING", hint: `Use one of ${Object.keys(SUBGROUP_TILINGS).join(", ")}, or unset it.` }),
    );
  const tiling = (named as SubgroupTilingName | undefined) || tuned;
  const found = subgroupMatrixStrategyFor(adapter);
  const subgroup = found && tiling ? { ...found, tiling } : found;
  const fallback = plainMatmulStrategy(adapter.architecture);
  const wanted = env.SFT_MATMUL?.trim();
  if (!wanted) return ok(subgroup ?? fallback);
  if (wanted === "tiled" || wanted === "registers") return ok(wanted);
  if (wanted !== "subgroup-matrix")
    return fail(diag("SFT2018", `SFT_MATMUL='${wanted}' is not a matmul strategy`, { where: "SFT_MATMUL", hint: "Use tiled, registers or subgroup-matrix, or unset SFT_MATMUL." }));
  if (subgroup) return ok(subgroup);
  return fail(
    diag("SFT5009", "SFT_MATMUL=subgroup-matrix, but this adapter offers no subgroup matrix with f16 inputs (or its subgroup size varies)", {
      where: "SFT_MATMUL",
      hint: "Set SFT_MATMUL=tiled, or unset it to let sftc choose.",
    }),
  );
}

/** The strategy without subgroup matrices: "registers" on CPU adapters ("software"), else "tiled". */
export function plainMatmulStrategy(architecture: string): "tiled" | "registers" {
  return architecture === "software" ? "registers" : "tiled";
}

/** The subgroup-matrix strategy where the adapter supports it (see `matmulStrategyFor`), else undefined. */
export function subgroupMatrixStrategyFor(adapter: MatmulAdapter): SubgroupMatrixStrategy | undefined {
  const has = (f: string) => adapter.features.includes(f);
  if (!has("chromium-experimental-subgroup-matrix") || !has("shader-f16")) return undefined;
  // the kernel assigns output tiles by subgroup index = local index / subgroup size
  if (adapter.subgroupMinSize !== adapter.subgroupMaxSize || adapter.subgroupMaxSize <= 0) return undefined;
  const config = subgroupMatrixConfigFor(adapter.subgroupMatrixConfigs, adapter.subgroupMaxSize);
  return config ? { kind: "subgroup-matrix", config, subgroupSize: adapter.subgroupMaxSize } : undefined;
}
