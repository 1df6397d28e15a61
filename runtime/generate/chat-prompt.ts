// A generation prompt in the family's chat template, as the model was fine-tuned on it: the
// history turns, then the new question, up to where the assistant's answer begins. The template
// is rendered as a training example whose last answer is a placeholder, and the last turn's
// assistant pieces (answer text and closing token) are cut off, so the prompt ends exactly where
// the trained answer started (ChatGLM-6B: after [gMASK] <sop>; MOSS: after "<|MOSS|>:").
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { Turn } from "../data/conversation.ts";
import { chooseTemplate, renderConversation } from "../data/render.ts";
import { exampleEncoder } from "../data/tokenize-example.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** Token ids of `history` plus the question `query`, ready for the answer to be generated. */
export function chatPromptIds(tokenizer: Tokenizer, template: TemplateName, history: readonly Turn[], query: string): Result<number[]> {
  const choice = chooseTemplate(template);
  if (!choice.ok) return choice;
  const encoder = exampleEncoder(tokenizer, choice.value, Infinity);
  if (!encoder.ok) return encoder;
  const layout = choice.value.template.layout;
  const answerPieces = (layout.kind === "turns" ? layout.assistant : layout.answer).length;
  const conversation = { turns: [...history, { user: query, assistant: "…" }], source: { file: "<prompt>", line: 1, offset: 0 } };
  const examples = renderConversation(conversation, choice.value);
  const segments = examples[examples.length - 1].segments.slice(0, -answerPieces);
  const ids = segments.flatMap((s) => ("text" in s ? tokenizer.encode(s.text) : [encoder.value.specialIds.get(s.special)!]));
  return ok(ids);
}
