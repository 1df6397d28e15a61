// A model family's chat template and loss rules, as data. A template says which texts and
// special tokens surround each turn and which of them carry loss; runtime/data/render.ts
// applies it to a conversation. Tokenization comes later: a text piece is encoded on its own
// (no BOS/EOS added), so piece boundaries follow the reference code's separate encode calls.

export type TemplateName = "baichuan7b" | "baichuan13b" | "moss" | "chatglm" | "chatglm2";

/** Who a piece belongs to; a loss scheme trains the pieces of some roles. */
export type Role = "system" | "user" | "assistant";

/**
 * A text with placeholders `{query}`, `{answer}`, `{round}`, `{system}`, or a special token by
 * its name in the tokenizer (`<eom>`, `[gMASK]`, `</s>`).
 */
export type Piece = { text: string; role: Role } | { special: string; role: Role };

/**
 * Every turn in one sequence, each answer trained: prefix, system, then per turn the user
 * pieces and the assistant pieces. `separator` opens every user block after the first,
 * inside its first text piece.
 */
export interface TurnsLayout {
  kind: "turns";
  user: Piece[];
  assistant: Piece[];
  separator: string;
}

/**
 * One example per assistant turn, the earlier turns written into the prompt text (ChatGLM-6B:
 * its prompt is attended bidirectionally, so an answer inside it cannot carry loss). The
 * prompt is one text: system, `history` for each earlier turn, then `current`, or `alone`
 * for a first turn.
 */
export interface HistoryPromptLayout {
  kind: "history-prompt";
  history: string;
  current: string;
  alone: string;
  /** Pieces after the prompt text, then the answer's. */
  suffix: Piece[];
  answer: Piece[];
}

export interface ChatTemplate {
  name: TemplateName;
  /** Where the facts come from and which choices were made. */
  source: string;
  /** Special tokens at the very start of every example; never trained. */
  prefix: string[];
  /** How a system text is written, with `{system}`; it precedes the first turn. */
  systemFormat: string;
  /** The system text used when the conversation brings none. */
  defaultSystem?: string;
  /** `{round}` of the first turn. */
  firstRound: number;
  layout: TurnsLayout | HistoryPromptLayout;
  /** Named loss schemes: the roles whose pieces are trained. */
  lossSchemes: Record<string, Role[]>;
  defaultLoss: string;
  /** Ids of the special tokens named above, to cross-check the tokenizer (models.md). */
  specialIds: Record<string, number>;
}

/** The answer then `</s>`, both trained: the assistant block of most templates. */
export const answerThenEos: Piece[] = [
  { text: "{answer}", role: "assistant" },
  { special: "</s>", role: "assistant" },
];

/** The usual loss rule: only assistant pieces are trained. */
export const assistantLossOnly = { lossSchemes: { assistant: ["assistant"] }, defaultLoss: "assistant" } satisfies Pick<ChatTemplate, "lossSchemes" | "defaultLoss">;
