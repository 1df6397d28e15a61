// Merging holds about one tensor at a time: a 100 MB bf16 Baichuan-7B-shaped checkpoint (16
// layers of hidden 512) merges with held memory growing by a few tensors, never by the model.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { resolveModelConfig } from "../../stdlib/families/config.ts";
import { expandTemplate } from "../../stdlib/families/family.ts";
import { families } from "../../stdlib/families/index.ts";
import { mergeLora } from "../../runtime/export/merge.ts";
import { exportPeftAdapter, loraModuleShapes } from "../../runtime/export/peft-family.ts";
import { writeSafetensors } from "../../runtime/export/safetensors-writer.ts";
import { Random } from "../../runtime/random.ts";
import { heldBytes } from "../support/memory.ts";

test("merging a 100 MB checkpoint grows held memory by a few tensors only", async () => {
  const family = families.baichuan7b;
  const raw = { ...family.tiny, hidden_size: 512, num_hidden_layers: 16, intermediate_size: 1376, vocab_size: 4096 };
  const config = resolveModelConfig(raw, family, "config.json");
  assert.ok(config.ok);
  const root = mkdtempSync(join(tmpdir(), "sftc-merge-memory-"));
  try {
    const base = join(root, "base");
    mkdirSync(base);
    writeFileSync(join(base, "config.json"), JSON.stringify(raw));
    const tensors = family.tensors.flatMap((decl) => expandTemplate(decl.name, config.value.dims.layers).map((name) => ({ name, shape: decl.shape(config.value.dims) })));
    const sizes = tensors.map((t) => t.shape.reduce((a, b) => a * b, 2));
    // bf16 ones with a varying low bit: cheap to make, and no two rows alike.
    const bf16 = (n: number) => () => {
      const halves = new Uint16Array(n);
      for (let i = 0; i < n; i++) halves[i] = 0x3f80 | (i & 0x7f);
      return new Uint8Array(halves.buffer);
    };
    await writeSafetensors(join(base, "model.safetensors"), tensors.map((t) => ({ name: t.name, dtype: "BF16", shape: t.shape, bytes: bf16(t.shape.reduce((a, b) => a * b, 1)) })));
    const modelBytes = sizes.reduce((a, b) => a + b, 0);
    const largest = Math.max(...sizes);

    const random = new Random(2);
    const weights = new Map<string, Float32Array>();
    for (const m of loraModuleShapes(family, config.value, ["W_pack", "down_proj"])) {
      weights.set(`${m.modulePath}.lora_A.weight`, random.normalArray(4 * m.inFeatures));
      weights.set(`${m.modulePath}.lora_B.weight`, random.normalArray(m.outFeatures * 4));
    }
    const adapter = join(root, "adapter");
    const method = { rank: 4, alpha: 8, dropout: 0, targets: ["W_pack", "down_proj"] };
    assert.ok((await exportPeftAdapter(adapter, { family, config: config.value, method, baseModel: base, weights })).ok);
    weights.clear();

    const baseline = heldBytes();
    let peak = 0;
    const merged = await mergeLora(base, "baichuan7b", adapter, join(root, "merged"), {
      shardBytes: 40_000_000,
      onProgress: () => {
        peak = Math.max(peak, heldBytes() - baseline);
      },
    });
    assert.ok(merged.ok, JSON.stringify(merged.diagnostics));
    assert.is(merged.value.merged, 32);
    console.log(`    ${(modelBytes / 2 ** 20).toFixed(0)} MiB model: peak held-memory growth ${(peak / 2 ** 20).toFixed(1)} MiB (largest tensor ${(largest / 2 ** 20).toFixed(1)} MiB)`);
    // A merged bf16 weight is widened to float64 (4x) beside its stored bytes: allow 8 of the largest.
    assert.ok(peak < 8 * largest, `held memory grew by ${peak} bytes`);
    assert.ok(8 * largest < modelBytes / 3, "the bound is far below the model's size");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
