// `dataset FORMAT [NAME] { ... }`: training data read from local files. Several datasets mix,
// each drawn in proportion to its `weight`. Formats follow the published files exactly.
import { safetyCategories } from "../datasets/safety-categories.ts";
import { block, boolean, integer, listOf, number, oneOf, path, string, type Schema } from "./common.ts";


export const moss003Categories = ["Brainstorming", "Complex Instruction", "Code", "Role Playing", "Writing", "Harmless", "Others"] as const;

const commonKeys: Record<string, Schema> = {
  path: path("The data file.", "file"),
  max_length: integer("Tokens per example, prompt and response together; longer examples are truncated from the right (ChatGLM-6B: the prompt from the left, the answer from the right, keeping `[gMASK] <sop>` and `<eop>`).", { min: 8, default: 1024 }),
  eval_split: number("Fraction of examples held out for evaluation, in [0, 1).", { min: 0, below: 1, default: 0 }),
  weight: number("Relative share of this dataset when several are mixed.", { above: 0, default: 1 }),
  limit: integer("Use at most this many examples (after filtering).", { min: 1 }),
  shuffle: boolean("Shuffle examples (seeded by `train.seed`).", { default: true }),
  loss_scheme: oneOf(["assistant", "moss"], "Which tokens carry the loss: `assistant` (every assistant turn and its end token) or, with the MOSS template, `moss` (MOSS's own finetune_moss.py scheme: every turn after the meta instruction). Defaults to `assistant`."),
  train_on_prompt: boolean("Compute the loss on prompt tokens too, not only on responses and their end token.", { default: false }),
  strip: boolean("Strip leading and trailing whitespace of every field (Belle outputs and Safety responses often start with newlines).", { default: true }),
  on_error: oneOf(["skip", "fail"], "What a malformed record does: `skip` drops it and counts it (the first few are reported with file:line), `fail` stops at it.", { default: "skip" }),
  max_bad_fraction: number("With `on_error = skip`: stop anyway once more than this fraction of the records is malformed (a file of the wrong format fails fast).", { min: 0, max: 1, default: 0.01 }),
};

function format(description: string, keys: Record<string, Schema> = {}): Schema {
  return block(description, { ...commonKeys, ...keys }, { required: ["path"] });
}

export const datasetSchemas: Record<string, Schema> = {
  belle: format("BelleGroup train_0.5M_CN: JSON lines `{instruction, input, output}` (also `{input, target}`)."),
  firefly: format("firefly-train-1.1M: JSON lines `{kind, input, target}`, single turn.", {
    kinds: listOf(string("A task kind as written in the data (`NER`, `Couplet`, `ClassicalChinese`, ...)."), "Keep only these task kinds; empty keeps all.", { default: [] }),
  }),
  moss003: format("moss-003-sft-data (YeungNLP layout): JSON lines `{conversation_id, category, conversation: [{human, assistant}], dataset}`, multi-turn, streamed.", {
    categories: listOf(oneOf(moss003Categories, "A conversation category."), "Keep only these categories; empty keeps all.", { default: [] }),
    language: oneOf(["all", "zh", "en"], "Keep conversations whose first human turn is Chinese (`zh`: contains a CJK character), not Chinese (`en`), or all.", { default: "all" }),
  }),
  safety: format("Safety-Prompts: one JSON object `{Category: [{prompt, response, type}]}` per file.", {
    categories: listOf(oneOf(safetyCategories, "A top-level key of the file."), "Categories to read; empty reads every category in the file.", { default: [] }),
  }),
  jsonl: block(
    "Any JSON lines file, with a mapping from its fields to the conversation.",
    {
      ...commonKeys,
      user_field: string("Field holding the user's message (the instruction or question)."),
      assistant_field: string("Field holding the answer."),
      turns_field: string("For multi-turn records: a list field whose elements hold `user_field` and `assistant_field`."),
      system_field: string("Optional field holding a system prompt."),
      category_field: string("Optional field holding a category, kept with each example for reports."),
    },
    { required: ["path", "user_field", "assistant_field"] },
  ),
};
