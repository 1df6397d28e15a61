// Conversations to a chunk of tokenized examples, given a plain description of the tokenizer
// and template (so that a worker thread can build the same encoder from a message).
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { loadTokenizer, type TokenizerKind } from "../tokenizer/tokenizer.ts";
import type { Conversation } from "./conversation.ts";
import { chooseTemplate, renderConversation, type TemplateChoice } from "./render.ts";
import { exampleEncoder, tokenizeExample, type ExampleEncoder } from "./tokenize-example.ts";
import { ChunkBuilder, type TokenChunk } from "./token-store.ts";

/** Everything that decides how a conversation becomes tokens; plain data. */
export interface EncoderSpec {
  /** The directory loadTokenizer reads. */
  tokenizerDir: string;
  tokenizerKind: TokenizerKind;
  template: TemplateName;
  /** The template's loss scheme (`assistant`, MOSS's `moss`); undefined: the template's default. */
  loss?: string;
  trainOnPrompt: boolean;
  maxLength: number;
}

export interface OpenEncoder {
  choice: TemplateChoice;
  encoder: ExampleEncoder;
}

/** Loads the tokenizer and picks the template a spec names. */
export async function openEncoder(spec: EncoderSpec): Promise<Result<OpenEncoder>> {
  const tokenizer = await loadTokenizer(spec.tokenizerDir, spec.tokenizerKind);
  if (!tokenizer.ok) return tokenizer;
  const choice = chooseTemplate(spec.template, { loss: spec.loss, trainOnPrompt: spec.trainOnPrompt });
  if (!choice.ok) return choice;
  const encoder = exampleEncoder(tokenizer.value, choice.value, spec.maxLength);
  if (!encoder.ok) return encoder;
  return ok({ choice: choice.value, encoder: encoder.value });
}

/** Renders and tokenizes conversations; record numbers start at `firstRecord`. */
export function tokenizeConversations(conversations: readonly Conversation[], firstRecord: number, open: OpenEncoder): TokenChunk {
  const builder = new ChunkBuilder();
  conversations.forEach((conversation, k) => {
    for (const example of renderConversation(conversation, open.choice)) {
      const outcome = tokenizeExample(example, open.encoder);
      if (outcome.kind === "ok") builder.add(outcome.example, firstRecord + k);
      else builder.drop(conversation.source.line);
    }
  });
  return builder.finish();
}
