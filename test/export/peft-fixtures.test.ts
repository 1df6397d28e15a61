// Each family's PEFT directory against test/fixtures/peft/<family>/expected.json (written by
// spec/golden/make_peft_fixtures.py from PEFT's naming rules and each model's module tree): the
// adapters come from the family graph built for the pipeline's method block, so the test covers
// targets -> graph parameter names -> PEFT keys, shapes and adapter_config.json.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { numel } from "../../compiler/ir/node.ts";
import { loadModelConfig } from "../../runtime/checkpoint/config.ts";
import { exportPeftAdapter, savedModuleTensors, type LoraExportSettings } from "../../runtime/export/peft-family.ts";
import { readPeftAdapter } from "../../runtime/export/peft-reader.ts";
import { Random } from "../../runtime/random.ts";
import { families, familyNames } from "../../stdlib/families/index.ts";

interface Scenario {
  method: LoraExportSettings;
  base_model: string;
  adapter_config: Record<string, unknown>;
  tensors: { name: string; shape: number[] }[];
}

const FIXTURES = new URL("../fixtures/peft/", import.meta.url).pathname;
const CHECKPOINTS = new URL("../fixtures/checkpoints/", import.meta.url).pathname;

function safetensorsHeader(path: string): Record<string, { dtype: string; shape: number[] }> {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  const { __metadata__: _, ...tensors } = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8"));
  return tensors;
}

const fixtures = suite("PEFT fixtures");

for (const name of familyNames) {
  const expected: Record<string, Scenario> = JSON.parse(readFileSync(join(FIXTURES, name, "expected.json"), "utf8"));
  for (const [scenario, want] of Object.entries(expected)) {
    fixtures(`${name} ${scenario}: PEFT keys, shapes and adapter_config.json`, async () => {
      const family = families[name];
      const config = await loadModelConfig(join(CHECKPOINTS, name), name);
      assert.ok(config.ok);
      const { rank, alpha, targets } = want.method;
      const graph = buildFamilyGraph(family, config.value, { batch: 1, seq: 2, method: { kind: "lora", rank, alpha, targets } });
      assert.ok(graph.ok, JSON.stringify(graph.diagnostics));
      const random = new Random(11);
      const weights = new Map([...graph.value.adapters].map(([param, node]) => [param, random.normalArray(numel(node.shape))]));
      const saved = new Map<string, Float32Array>();
      for (const module of want.method.modulesToSave ?? []) {
        for (const t of savedModuleTensors(family, config.value, module)?.tensors ?? []) saved.set(t.name, random.normalArray(numel(t.shape)));
      }

      const dir = join(mkdtempSync(join(tmpdir(), "sftc-peft-fixture-")), "adapter");
      const written = await exportPeftAdapter(dir, { family, config: config.value, method: want.method, baseModel: want.base_model, weights, saved });
      assert.ok(written.ok, JSON.stringify(written.diagnostics));

      const adapterConfig = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
      assert.equal(adapterConfig, want.adapter_config);
      assert.equal(Object.keys(adapterConfig), Object.keys(want.adapter_config), "fields in PEFT's (sorted) order");
      const header = safetensorsHeader(join(dir, "adapter_model.safetensors"));
      assert.equal(Object.keys(header), want.tensors.map((t) => t.name), "keys, in safetensors' sorted order");
      for (const t of want.tensors) {
        assert.equal(header[t.name].shape, t.shape, t.name);
        assert.is(header[t.name].dtype, "F32", t.name);
      }

      // Read back: the same parameters by graph name, and the saved tensors by checkpoint name.
      const read = await readPeftAdapter(dir);
      assert.ok(read.ok, JSON.stringify(read.diagnostics));
      assert.equal([...read.value.lora.keys()].sort(), [...weights.keys()].sort());
      for (const [param, values] of weights) assert.equal(Array.from(read.value.lora.get(param)!.values), Array.from(values), param);
      for (const [tensor, values] of saved) assert.equal(Array.from(read.value.saved.get(tensor)!.values), Array.from(values), tensor);
      const scale = want.method.rslora ? alpha / Math.sqrt(rank) : alpha / rank;
      assert.is(read.value.scale, scale);
    });
  }
}

fixtures.run();
