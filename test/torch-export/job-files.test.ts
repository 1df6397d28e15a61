// The torchrun job's files without running PyTorch: model.py assembled from trait pieces, the data
// layout train.py reads, LoRA's initial adapters in PEFT format, and the export's input errors.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { torchModelSource } from "../../runtime/export/torch/model-py.ts";
import { readPeftAdapter } from "../../runtime/export/peft-reader.ts";
import { families, familyNames } from "../../stdlib/families/index.ts";
import { expectError, expectOk } from "../support/result.ts";
import { loadFixture } from "../models/support.ts";
import { exportJob, SETTINGS } from "./support.ts";

const scratch = mkdtempSync(join(tmpdir(), "sftc-torch-files-"));

for (const name of familyNames) {
  test(`${name}: model.py holds the family's tensor names and only the pieces its traits pick`, async () => {
    const { family, config } = await loadFixture(name);
    const source = expectOk(torchModelSource(family, config, null));
    for (const t of family.tensors) {
      if (!(config.tiedHead && t.role.startsWith("head."))) assert.ok(source.includes(JSON.stringify(t.name)), `${name}: ${t.name}`);
    }
    assert.is(source.includes("ALIBI_SLOPES"), family.position.kind === "alibi", `${name}: ALiBi piece`);
    assert.is(source.includes("def rope("), family.position.kind === "rope", `${name}: RoPE piece`);
    assert.is(source.includes("def prefix_positions("), family.attention.mask.kind === "glm_prefix", `${name}: prefix mask piece`);
    assert.is(source.includes("ALPHA ="), family.residual.kind === "scaled_normed_input", `${name}: scaled residual piece`);
    assert.is(source.includes("F.layer_norm"), family.norm.kind === "layernorm", `${name}: norm piece`);
    assert.is(source.includes("repeat_interleave"), config.dims.kvHeads < config.dims.heads, `${name}: key/value head sharing`);
    assert.is(source.includes('F.linear(h, self.part("embed").weight)'), config.tiedHead, `${name}: tied head`);
    assert.not.ok(/if FAMILY|FAMILY ==/.test(source), `${name}: no branch on the family name`);
  });
}

test("QKV sections come from the layout data: MOSS's 4 chunks of q, v, k; ChatGLM2's grouped k and v", async () => {
  const moss = await loadFixture("moss");
  const mossSource = expectOk(torchModelSource(moss.family, moss.config, null));
  // 4 heads of 16 in 4 chunks: one q, one v and one k head each
  assert.ok(mossSource.includes('QKV_GROUPS = 4\nQKV_ORDER = ["q", "v", "k"]\nQKV_SECTIONS = [16, 16, 16]'), mossSource);
  const glm2 = await loadFixture("chatglm2");
  const glm2Source = expectOk(torchModelSource(glm2.family, glm2.config, null));
  assert.ok(glm2Source.includes("QKV_GROUPS = 1\nQKV_ORDER = [\"q\", \"k\", \"v\"]\nQKV_SECTIONS = [64, 32, 32]"));
});

test("a LoRA target the family lacks is SFT4701 naming the family's modules", async () => {
  const { family, config } = await loadFixture("baichuan7b");
  const d = expectError(torchModelSource(family, config, { rank: 4, alpha: 8, dropout: 0, targets: ["query_key_value"] }));
  assert.is(d.code, "SFT4701");
  assert.match(d.hint ?? "", /W_pack, o_proj, gate_proj, up_proj, down_proj/);
  assert.equal(families.baichuan7b.lora.defaultTargets, ["W_pack"]);
});

test("the job's data: examples round-trip, batches cover every step, initial adapters are PEFT with B = 0", async () => {
  const dir = join(scratch, "job");
  const job = await exportJob("baichuan7b", dir, { kind: "lora", rank: 2, alpha: 4, dropout: 0, targets: ["W_pack"] });
  const read = (file: string) => new Int32Array(Uint8Array.from(readFileSync(join(dir, "data", file))).buffer);
  const { offsets } = JSON.parse(readFileSync(join(dir, "data", "examples.json"), "utf8"));
  const [ids, labels] = [read("input_ids.i32"), read("labels.i32")];
  job.data.examples.forEach((e, i) => {
    assert.equal(Array.from(ids.subarray(offsets[i], offsets[i + 1])), Array.from(e.inputIds));
    assert.equal(Array.from(labels.subarray(offsets[i], offsets[i + 1])), Array.from(e.labels));
  });
  const { epochs, pad_id } = JSON.parse(readFileSync(join(dir, "data", "batches.json"), "utf8"));
  assert.is(pad_id, job.data.padId);
  assert.equal(epochs, [job.data.epochBatches(0), job.data.epochBatches(1)], "4 steps x 2 micro-batches = 2 epochs of 4");
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  assert.is(config.total_steps, SETTINGS.max_steps);
  assert.equal(config.method, { kind: "lora", rank: 2, alpha: 4, dropout: 0, targets: ["W_pack"] });

  const adapter = expectOk(await readPeftAdapter(join(dir, "init", "adapter")));
  assert.is(adapter.lora.size, 2 * 2, "A and B of W_pack in 2 layers");
  const a = adapter.lora.get("model.layers.0.self_attn.W_pack.lora_A.weight")!;
  assert.equal(a.shape, [2, 64]);
  assert.ok(a.values.every((v) => Math.abs(v) <= 1 / 8) && a.values.some((v) => v !== 0), "A uniform in ±1/sqrt(64)");
  assert.ok(adapter.lora.get("model.layers.1.self_attn.W_pack.lora_B.weight")!.values.every((v) => v === 0), "B = 0");
});

test.after(() => rmSync(scratch, { recursive: true, force: true }));
test.run();
