// The one shape every dataset reader produces, whatever the file format: an optional system
// text, then user/assistant turns. Templates (render.ts) turn it into training segments.

/** One exchange: what the user said and what the assistant answered. */
export interface Turn {
  user: string;
  assistant: string;
}

/** Where a conversation came from, for error messages and for resuming a read. */
export interface Source {
  file: string;
  /** 1-based line of the record's first character. */
  line: number;
  /** Byte offset of the record's first byte. */
  offset: number;
}

/** A normalized conversation. Texts are trimmed; every turn has a non-empty user and assistant text. */
export interface Conversation {
  /** A system text from the data itself (MOSS `meta_instruction`); templates supply their default otherwise. */
  system?: string;
  turns: Turn[];
  source: Source;
  /** Firefly `kind`, MOSS `category`, Safety-Prompts category key. */
  category?: string;
  /** The record's own id where it has one (MOSS `conversation_id`). */
  id?: string;
}
