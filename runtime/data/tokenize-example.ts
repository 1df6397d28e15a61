// Rendered examples (segments, render.ts) to token ids and labels, as Hugging Face trainers
// see them: `labels[t]` is `inputIds[t]` where the token is trained and -100 elsewhere; the
// loss shifts by one itself (models.md §0.4).
//
// Truncation to `max_length` (datasets.md B.1-B.5, models.md §4.4, §5.4):
//   - One sequence of turns (every family but ChatGLM-6B): cut from the right, as Firefly,
//     BELLE and LLM_training do; the template's prefix ([gMASK] sop, <s>) is at the start and
//     so always kept. When the cut falls inside a trained span, the last kept token becomes the
//     answer's closing token (</s>) for the families whose reference keeps it: LLM_training
//     overwrites the last token with EOS (Baichuan-7B's chosen format), LLaMA-Efficient-Tuning
//     cuts the answer and then appends EOS (Baichuan-13B), ChatGLM2's ptuning cuts the answer
//     and appends EOS. MOSS is cut without it (Firefly's SFTDataset on the moss-003 data).
//     Untrained tokens left at the end (a cut inside a question) teach nothing and are removed.
//   - ChatGLM-6B (prompt, [gMASK] <sop>, answer, <eop>): the specials are always kept, the
//     prompt is cut from the left (its end holds the current question; its start the oldest
//     history), the answer from the right. The budget is shared as LLaMA-Factory's
//     infer_seqlen does: a short answer is kept whole, else a short prompt is, else both are
//     cut in proportion to their lengths.
// An example left without a trained token that the loss can score (position >= 1) is dropped.
import { diag, fail, invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import type { ChatTemplate, Piece, TemplateName } from "../../stdlib/templates/template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { Example, Segment, TemplateChoice } from "./render.ts";

export const ignoreIndex = -100;

/** One training example as token ids. */
export interface TokenizedExample {
  inputIds: number[];
  labels: number[];
  /** Tokens before truncation. */
  fullLength: number;
}

export type TokenizeOutcome = { kind: "ok"; example: TokenizedExample } | { kind: "dropped"; fullLength: number };

// Whether a cut answer keeps its closing token, per template (see above).
const keepsClosingToken: Record<TemplateName, boolean> = { baichuan7b: true, baichuan13b: true, chatglm2: true, chatglm: true, moss: false };

/** How one template's examples become ids with one tokenizer; built once, used for every example. */
export interface ExampleEncoder {
  tokenizer: Tokenizer;
  template: ChatTemplate;
  specialIds: ReadonlyMap<string, number>;
  /** The answer's closing special (</s>, <eom>, <eop>), kept by a cut where the reference keeps it. */
  closingId?: number;
  maxLength: number;
}

/** Looks up every special token the template names; a tokenizer lacking one is an error (SFT5318). */
export function exampleEncoder(tokenizer: Tokenizer, choice: TemplateChoice, maxLength: number): Result<ExampleEncoder> {
  const { template } = choice;
  const layout = template.layout;
  const pieces: Piece[] = layout.kind === "turns" ? [...layout.user, ...layout.assistant] : [...layout.suffix, ...layout.answer];
  const names = [...template.prefix, ...pieces.flatMap((p) => ("special" in p ? [p.special] : []))];
  const specialIds = new Map<string, number>();
  for (const name of names) {
    const id = tokenizer.namedSpecial.get(name) ?? tokenizer.idOf(name);
    if (id === undefined) {
      return fail(
        diag("SFT5318", `the tokenizer has no special token "${name}", which the ${template.name} template needs`, {
          hint: `use the tokenizer of the ${template.name} family, or a model template that matches this tokenizer`,
        }),
      );
    }
    specialIds.set(name, id);
  }
  const assistant = layout.kind === "turns" ? layout.assistant : layout.answer;
  const closing = [...assistant].reverse().find((p) => "special" in p);
  const closingId = closing && "special" in closing && keepsClosingToken[template.name] ? specialIds.get(closing.special) : undefined;
  return ok({ tokenizer, template, specialIds, closingId, maxLength });
}

interface Tokens {
  ids: number[];
  trained: boolean[];
}

function encodeSegments(segments: readonly Segment[], encoder: ExampleEncoder): Tokens[] {
  return segments.map((segment) => {
    const ids = "text" in segment ? encoder.tokenizer.encode(segment.text) : [encoder.specialIds.get(segment.special)!];
    return { ids, trained: new Array<boolean>(ids.length).fill(segment.train) };
  });
}

function concat(parts: readonly Tokens[]): Tokens {
  const ids: number[] = [];
  const trained: boolean[] = [];
  for (const part of parts) {
    for (const id of part.ids) ids.push(id);
    for (const t of part.trained) trained.push(t);
  }
  return { ids, trained };
}

/** Tokenizes and truncates one rendered example. */
export function tokenizeExample(example: Example, encoder: ExampleEncoder): TokenizeOutcome {
  const parts = encodeSegments(example.segments, encoder);
  const full = concat(parts);
  const fullLength = full.ids.length;
  let kept: Tokens;
  if (fullLength <= encoder.maxLength) kept = full;
  else if (encoder.template.layout.kind === "history-prompt") kept = cutPromptAndAnswer(parts, example.segments, encoder);
  else kept = cutRight(full, encoder);
  if (!kept.trained.some((t, i) => t && i >= 1)) return { kind: "dropped", fullLength };
  return { kind: "ok", example: { inputIds: kept.ids, labels: kept.ids.map((id, i) => (kept.trained[i] ? id : ignoreIndex)), fullLength } };
}

function cutRight(full: Tokens, encoder: ExampleEncoder): Tokens {
  const ids = full.ids.slice(0, encoder.maxLength);
  const trained = full.trained.slice(0, encoder.maxLength);
  const last = ids.length - 1;
  if (encoder.closingId !== undefined && trained[last]) ids[last] = encoder.closingId;
  while (trained.length > 0 && !trained[trained.length - 1]) {
    ids.pop();
    trained.pop();
  }
  return { ids, trained };
}

// ChatGLM-6B: [prompt text] [specials...] [answer text] [specials...].
function cutPromptAndAnswer(parts: Tokens[], segments: readonly Segment[], encoder: ExampleEncoder): Tokens {
  const texts = segments.flatMap((s, i) => ("text" in s ? [i] : []));
  invariant(texts.length === 2 && texts[0] === 0, "a history-prompt example is a prompt text, specials, an answer text, specials");
  const [source, target] = [parts[texts[0]], parts[texts[1]]];
  const fixed = parts.reduce((n, p, i) => n + (texts.includes(i) ? 0 : p.ids.length), 0);
  const { sourceLength, targetLength } = shareBudget(source.ids.length, target.ids.length, encoder.maxLength - fixed);
  const cut = parts.map((p, i) => {
    if (i === texts[0]) return { ids: p.ids.slice(p.ids.length - sourceLength), trained: p.trained.slice(p.trained.length - sourceLength) };
    if (i === texts[1]) return { ids: p.ids.slice(0, targetLength), trained: p.trained.slice(0, targetLength) };
    return p;
  });
  return concat(cut);
}

/** LLaMA-Factory's infer_seqlen: how many prompt and answer tokens fit in `budget`. */
export function shareBudget(source: number, target: number, budget: number): { sourceLength: number; targetLength: number } {
  let maxTarget: number;
  if (target * 2 < budget) maxTarget = target;
  else if (source * 2 < budget) maxTarget = budget - source;
  else maxTarget = Math.floor((budget * target) / (source + target));
  const targetLength = Math.max(0, Math.min(maxTarget, target));
  const sourceLength = Math.max(0, Math.min(budget - targetLength, source));
  return { sourceLength, targetLength };
}
