// Applies a family's chat template (stdlib/templates) to a conversation: the result is a list
// of segments, texts and special tokens each marked trained or not, independent of any
// tokenizer. A tokenizer encodes each text segment on its own and maps each special by name;
// the tokens of a `train: true` segment are labels, the others -100.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { templates } from "../../stdlib/templates/index.ts";
import type { ChatTemplate, Piece, Role, TemplateName } from "../../stdlib/templates/template.ts";
import type { Conversation } from "./conversation.ts";

export type Segment = { text: string; train: boolean } | { special: string; train: boolean };

/** One training example; `turn` is the index of the turn it trains when a template makes one example per turn. */
export interface Example {
  segments: Segment[];
  turn?: number;
}

/** A template with a loss scheme chosen. */
export interface TemplateChoice {
  template: ChatTemplate;
  trained: ReadonlySet<Role>;
}

export interface TemplateOptions {
  /** A loss scheme of the template (default: the template's). */
  loss?: string;
  /** Also train on prompt texts: the system and user pieces (`train_on_prompt`). */
  trainOnPrompt?: boolean;
}

/** Picks a family's template and loss scheme. */
export function chooseTemplate(family: TemplateName, options: TemplateOptions = {}): Result<TemplateChoice> {
  const template = templates[family];
  const scheme = options.loss ?? template.defaultLoss;
  const roles = template.lossSchemes[scheme];
  if (!roles) {
    const known = Object.keys(template.lossSchemes);
    return fail(diag("SFT5316", `the ${family} template has no loss scheme "${scheme}"`, { hint: `use one of: ${known.join(", ")}` }));
  }
  if (!options.trainOnPrompt) return ok({ template, trained: new Set(roles) });
  if (template.layout.kind === "history-prompt") {
    // The prompt before <sop> is attended bidirectionally: a label there could be read from
    // its own position, so training on it teaches nothing.
    return fail(diag("SFT5316", `the ${family} template cannot train on the prompt: the prompt is attended in both directions`, { hint: "remove train_on_prompt" }));
  }
  return ok({ template, trained: new Set<Role>([...roles, "system", "user"]) });
}

/** Renders a conversation into its training examples (one, or one per turn for ChatGLM-6B). */
export function renderConversation(conversation: Conversation, choice: TemplateChoice): Example[] {
  const { template } = choice;
  const layout = template.layout;
  const system = conversation.system ?? template.defaultSystem;
  const systemText = system ? fill(template.systemFormat, { system }) : "";
  const start: Segment[] = template.prefix.map((special) => ({ special, train: false }));

  if (layout.kind === "history-prompt") {
    return conversation.turns.map((turn, k) => {
      let prompt = systemText;
      for (let i = 0; i < k; i++) {
        const earlier = conversation.turns[i];
        prompt += fill(layout.history, { round: template.firstRound + i, query: earlier.user, answer: earlier.assistant });
      }
      prompt += fill(k === 0 ? layout.alone : layout.current, { round: template.firstRound + k, query: turn.user });
      const values = { query: turn.user, answer: turn.assistant };
      const segments = [...start, { text: prompt, train: choice.trained.has("user") }, ...pieces(layout.suffix, values, choice), ...pieces(layout.answer, values, choice)];
      return { segments, turn: k };
    });
  }

  const segments = [...start];
  if (systemText) segments.push({ text: systemText, train: choice.trained.has("system") });
  conversation.turns.forEach((turn, i) => {
    const values = { round: template.firstRound + i, query: turn.user, answer: turn.assistant };
    const user = pieces(layout.user, values, choice);
    if (i > 0 && layout.separator) {
      const first = user[0];
      if ("text" in first) user[0] = { text: layout.separator + first.text, train: first.train };
      else user.unshift({ text: layout.separator, train: first.train });
    }
    segments.push(...user, ...pieces(layout.assistant, values, choice));
  });
  return [{ segments }];
}

interface Values {
  query?: string;
  answer?: string;
  round?: number;
  system?: string;
}

/** Replaces `{name}` placeholders in one pass, so braces inside the values stay as they are. */
function fill(format: string, values: Values): string {
  return format.replace(/\{(query|answer|round|system)\}/g, (whole, name: keyof Values) => (values[name] === undefined ? whole : String(values[name])));
}

function pieces(list: readonly Piece[], values: Values, choice: TemplateChoice): Segment[] {
  const out: Segment[] = [];
  for (const piece of list) {
    const train = choice.trained.has(piece.role);
    if ("special" in piece) out.push({ special: piece.special, train });
    else {
      const text = fill(piece.text, values);
      if (text !== "") out.push({ text, train });
    }
  }
  return out;
}
