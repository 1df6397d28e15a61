// The GPU engine's training program (accumulating-step.ts), which the engine and its memory plan
// both compile: a LoRA step of a Baichuan-7B-sized model at 2,048 tokens computes its frozen
// head's loss in chunks, holds no (tokens, vocabulary) tensor, and lists the loss last.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { accumulatingStep, ACC_OUTPUT } from "../../compiler/autodiff/accumulating-step.ts";
import { LEAF_OPS, numel, topoSort } from "../../compiler/ir/node.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { LOSS_CHUNK_BYTES } from "../../compiler/passes/chunk-loss.ts";
import { fromDimensions } from "../../compiler/plan/model-config.ts";
import { families } from "../../stdlib/families/index.ts";
import { families as facts } from "../../stdlib/schemas/model.ts";
import { expectOk } from "../support/result.ts";

test("a 7B-sized LoRA step at 2,048 tokens: the loss in chunks of 256 rows, no full logits, the loss output last", () => {
  const family = families.baichuan7b;
  const config = expectOk(fromDimensions(family, { ...facts.baichuan7b.sizes["7b"], num_layers: 2 }, "7b preset, 2 layers")).config;
  const built = expectOk(buildFamilyGraph(family, config, { batch: 1, seq: 2048, method: { kind: "lora", rank: 8, alpha: 16, targets: ["W_pack"] } }));
  const [tokens, vocab] = built.logits.shape;
  const step = expectOk(accumulatingStep(built.loss, [...built.adapters.values()]));
  const nodes = topoSort(step.outputs.values());
  const chunks = nodes.filter((n) => n.op === "cross_entropy");
  assert.is(chunks.length, tokens / 256);
  assert.ok(chunks.every((n) => numel(n.inputs[0].shape) * 4 <= LOSS_CHUNK_BYTES));
  const largest = Math.max(...nodes.filter((n) => !LEAF_OPS.has(n.op)).map((n) => numel(n.shape)));
  assert.ok(largest < tokens * vocab, `the largest computed tensor has ${largest} elements, the full logits ${tokens * vocab}`);
  const names = [...step.outputs.keys()];
  assert.is(names.at(-1), "loss");
  assert.is(names.filter((k) => k.startsWith(ACC_OUTPUT)).length, built.adapters.size);
});

test.run();
