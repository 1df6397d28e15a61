import { buildCachedStep } from "./compiler/models/cached-graph.ts";
import { compileGraph } from "./compiler/passes/compile.ts";
import { families } from "./stdlib/families/index.ts";
import { fromDimensions } from "./compiler/plan/model-config.ts";
import { families as facts } from "./stdlib/schemas/model.ts";
const fam = families.baichuan7b;
const cfg = fromDimensions(fam, facts.baichuan7b.sizes["7b"], "x");
if (!cfg.ok) throw new Error(JSON.stringify(cfg));
for (const shape of [{ batch: 1, past: 1, fresh: 128 }, { batch: 1, past: 192, fresh: 1 }]) {
  let t = performance.now();
  const g = buildCachedStep(fam, cfg.value.config, shape);
  const tb = performance.now() - t;
  t = performance.now();
  const c = compileGraph((g as any).value);
  console.log(shape, "build", tb.toFixed(0), "ms compile", (performance.now() - t).toFixed(0), "ms", c.ok);
}
