// A merged model read by PyTorch without sftc: spec/golden/check_merged_weight.py parses the
// merged and adapter safetensors by hand, loads the base torch shard with torch.load and
// recomputes one merged weight as PEFT does. Registers nothing where Debian's torch is absent.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { numel } from "../../compiler/ir/node.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { mergeLora } from "../../runtime/export/merge.ts";
import { exportPeftAdapter } from "../../runtime/export/peft-family.ts";
import { Random } from "../../runtime/random.ts";
import { families } from "../../stdlib/families/index.ts";
import { hasTorch, PYTHON, reportSkippedWithoutTorch } from "../support/python.ts";

const SCRIPT = new URL("../../spec/golden/check_merged_weight.py", import.meta.url).pathname;
const BASE = new URL("../fixtures/checkpoints/moss/", import.meta.url).pathname;

const torchCheck = suite("merge, checked by PyTorch");

if (hasTorch()) {
  torchCheck("moss: a merged qkv_proj weight recomputed by torch from the base shard and the adapter", async () => {
    const family = families.moss;
    const config = await loadModelConfig(BASE, "moss");
    assert.ok(config.ok);
    const method = { rank: 3, alpha: 6, dropout: 0, targets: ["qkv_proj"], rslora: true };
    const graph = buildFamilyGraph(family, config.value, { batch: 1, seq: 2, method: { kind: "lora", ...method } });
    assert.ok(graph.ok);
    const random = new Random(9);
    const weights = new Map([...graph.value.adapters].map(([name, node]) => [name, random.normalArray(numel(node.shape), 0.3)]));
    const root = mkdtempSync(join(tmpdir(), "sftc-merge-torch-"));
    const adapter = join(root, "adapter");
    assert.ok((await exportPeftAdapter(adapter, { family, config: config.value, method, baseModel: BASE, weights })).ok);
    const base = join(root, "base");
    cpSync(BASE, base, { recursive: true });
    const merged = join(root, "merged");
    const result = await mergeLora(base, "moss", adapter, merged, { shardBytes: 100 * 1024, dtype: "f32" });
    assert.ok(result.ok, JSON.stringify(result.diagnostics));

    const run = spawnSync(PYTHON, [SCRIPT, base, adapter, merged, "transformer.h.1.attn.qkv_proj.weight"], { encoding: "utf8" });
    assert.is(run.status, 0, run.stderr);
    const check = JSON.parse(run.stdout);
    console.log(`    torch recomputation of ${check.tensor} [${check.shape}] ${check.dtype}: relative error ${check.relative_error.toExponential(2)}`);
    assert.equal(check.shape, [192, 64]);
    assert.ok(check.relative_error < 1e-6, `relative error ${check.relative_error}`);
  });
} else reportSkippedWithoutTorch("merge, checked by PyTorch");

torchCheck.run();
