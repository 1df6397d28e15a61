// `decode STRATEGY { ... }`: text generation after training, with Hugging Face `generate`
// semantics (repetition penalty first, then temperature, top-k, top-p). Every strategy accepts
// every key, so switching strategies never breaks a file; keys a strategy ignores draw a warning.
// Defaults not given here come from the model family (see `families[...].generation`).
import { block, boolean, integer, listOf, number, string, type Schema } from "./common.ts";

export const strategies = ["greedy", "beam", "top_k", "top_p", "sample"] as const;
export type Strategy = (typeof strategies)[number];

const shared = ["max_new_tokens", "repetition_penalty", "stop", "prompts", "seed"];
const sampling = ["temperature", "top_k", "top_p"];

/** The keys each strategy reads; the others are accepted but have no effect. */
export const keysUsedBy: Record<Strategy, string[]> = {
  greedy: shared,
  beam: [...shared, "num_beams", "length_penalty", "early_stopping", "num_return_sequences"],
  top_k: [...shared, "temperature", "top_k", "num_return_sequences"],
  top_p: [...shared, ...sampling, "num_return_sequences"],
  sample: [...shared, ...sampling, "num_return_sequences"],
};

/** Defaults that hold for every family (Hugging Face's); family defaults take precedence. */
export const genericDecodeDefaults: Record<string, unknown> = {
  temperature: 1,
  top_k: 0,
  top_p: 1,
  repetition_penalty: 1,
  num_beams: 4,
  length_penalty: 1,
  early_stopping: false,
  num_return_sequences: 1,
  stop: [],
  prompts: [],
};

function keys(strategy: Strategy): Record<string, Schema> {
  return {
    max_new_tokens: integer("Generated tokens at most, prompt excluded. Default: the family's.", { min: 1 }),
    temperature: number("Divide logits by this before sampling (family default, else 1).", { above: 0 }),
    top_k: integer(strategy === "top_k" ? "Sample among the k most probable tokens (default 50)." : "Sample among the k most probable tokens; 0 disables (family default, else 0).", { min: strategy === "top_k" ? 1 : 0 }),
    top_p: number("Sample from the smallest set of tokens whose probability reaches p, in (0, 1] (family default, else 1).", { above: 0, max: 1 }),
    repetition_penalty: number("Divide positive (multiply negative) logits of tokens already present, prompt included; 1 disables (family default, else 1).", { above: 0 }),
    num_beams: integer("Beams kept at each step (beam search; default 4).", { min: strategy === "beam" ? 2 : 1 }),
    length_penalty: number("Beam scores are divided by length^length_penalty (default 1).", {}),
    early_stopping: boolean("Stop beam search once `num_beams` finished candidates exist (default false)."),
    num_return_sequences: integer("Sequences returned per prompt; at most `num_beams` for beam search (default 1).", { min: 1 }),
    stop: listOf(string("A stop string."), "Stop when the output ends with one of these strings; the family's end tokens always stop (default none)."),
    prompts: listOf(string("A prompt."), "Prompts answered after training (default none)."),
    seed: integer("Sampling seed; defaults to `train.seed`.", { min: 0 }),
  };
}

const descriptions: Record<Strategy, string> = {
  greedy: "Always the most probable token.",
  beam: "Beam search over `num_beams` candidates.",
  top_k: "Sampling among the k most probable tokens.",
  top_p: "Nucleus sampling.",
  sample: "Sampling with temperature, top-k and top-p together (the family's chat settings).",
};

export const decodeSchemas: Record<string, Schema> = Object.fromEntries(
  strategies.map((s) => [s, block(descriptions[s], keys(s))]),
);
