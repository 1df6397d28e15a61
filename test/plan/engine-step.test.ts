// The GPU engine's training program (accumulating-step.ts), which the engine and its memory plan
// both compile: a LoRA step of a Baichuan-7B-sized model at 2,048 tokens computes its frozen
// head's loss in chunks, holds no (tokens, vocabulary) tensor, and lists the loss last; a
// checkpointed QLoRA step's program needs the arena `sftc plan` plans for the step.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { accumulatingStep, ACC_OUTPUT } from "../../compiler/autodiff/accumulating-step.ts";
import { LEAF_OPS, numel, topoSort } from "../../compiler/ir/node.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { LOSS_CHUNK_BYTES } from "../../compiler/passes/chunk-loss.ts";
import { planEngine } from "../../compiler/plan/engine-plan.ts";
import { fromDimensions } from "../../compiler/plan/model-config.ts";
import type { PlanSettings } from "../../compiler/plan/settings.ts";
import { planStep } from "../../compiler/plan/step-plan.ts";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { families } from "../../stdlib/families/index.ts";
import { families as facts } from "../../stdlib/schemas/model.ts";
import { expectOk } from "../support/result.ts";

test("a 7B-sized LoRA step at 2,048 tokens: the loss in the 8 chunks of 256 rows its byte budget takes, no full logits, the loss output last", () => {
  const family = families.baichuan7b;
  const config = expectOk(fromDimensions(family, { ...facts.baichuan7b.sizes["7b"], num_layers: 2 }, "7b preset, 2 layers")).config;
  const built = expectOk(buildFamilyGraph(family, config, { batch: 1, seq: 2048, method: { kind: "lora", rank: 8, alpha: 16, targets: ["W_pack"] } }));
  const [tokens, vocab] = built.logits.shape;
  const step = expectOk(accumulatingStep(built.loss, [...built.adapters.values()]));
  const nodes = topoSort(step.outputs.values());
  // 64 MiB holds 262 rows of logits: chunks of 256 (a multiple of 16), 16 more would not fit
  const chunks = nodes.filter((n) => n.op === "cross_entropy");
  assert.equal(chunks.map((n) => n.inputs[0].shape[0]), Array(8).fill(256));
  assert.ok(256 * vocab * 4 <= LOSS_CHUNK_BYTES && (256 + 16) * vocab * 4 > LOSS_CHUNK_BYTES);
  const largest = Math.max(...nodes.filter((n) => !LEAF_OPS.has(n.op)).map((n) => numel(n.shape)));
  assert.ok(largest < tokens * vocab, `the largest computed tensor has ${largest} elements, the full logits ${tokens * vocab}`);
  const names = [...step.outputs.keys()];
  assert.is(names.at(-1), "loss");
  assert.is(names.filter((k) => k.startsWith(ACC_OUTPUT)).length, built.adapters.size);
});

test("the engine's program is planned as sftc plan plans the step: Baichuan-7B QLoRA rank 64, 512 tokens, checkpointed", () => {
  const family = families.baichuan7b;
  const config = expectOk(fromDimensions(family, facts.baichuan7b.sizes["7b"], "7b preset")).config;
  const settings: PlanSettings = {
    dtype: "bf16",
    method: { kind: "qlora", rank: 64, alpha: 16, targets: ["all"], bias: "none", modulesToSave: [], nf4: { blockSize: 64, doubleQuant: true, doubleQuantBlockSize: 256 } },
    batch: 1,
    seq: 512,
    gradientCheckpointing: true,
    gradAccum: 1,
    optimizer: "adamw",
    evaluation: null,
    generation: null,
  };
  const step = expectOk(planStep(family, config, settings)).training;
  const engine = expectOk(planEngine(family, config, settings, [{ kind: "training", rows: 1, seq: 512 }]));
  console.log(`    arena: step plan ${formatBytes(step.arena)}, engine program ${formatBytes(engine.programs[0].arena)}`);
  // the engine's program adds each gradient into its accumulator; the recomputed layers and the
  // gradients are live as in the step, one layer's recomputation at a time
  assert.is(engine.programs[0].arena, step.arena);
});

test.run();
