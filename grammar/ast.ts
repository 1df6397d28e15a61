// The abstract syntax tree of a `.sft` file. Every node carries the span of its source text,
// so later phases report problems by node and never compute positions themselves.
import type { Span } from "../compiler/diagnostics.ts";

export interface SftFile {
  file: string;
  /** `sft 1`; undefined when the header is missing or names a version this sftc cannot read. */
  version?: { value: number; span: Span };
  imports: ImportDecl[];
  pipelines: PipelineDecl[];
  /** Every line (`//`) and block comment, in source order (the formatter keeps them). */
  comments: Comment[];
  span: Span;
}

export interface Comment {
  text: string;
  block: boolean;
  span: Span;
}

export interface ImportDecl {
  path: StringValue;
  span: Span;
}

export interface Identifier {
  name: string;
  span: Span;
}

export interface PipelineDecl {
  name: Identifier;
  extends?: Identifier;
  sections: Section[];
  span: Span;
}

export const sectionKeywords = ["model", "dataset", "method", "train", "decode"] as const;
export type SectionKeyword = (typeof sectionKeywords)[number];

/** `KEYWORD [KIND [NAME]] { entries }`, e.g. `model chatglm2 { ... }`, `dataset belle main { ... }`, `train { ... }`. */
export interface Section {
  keyword: SectionKeyword;
  keywordSpan: Span;
  kind?: Identifier;
  name?: Identifier;
  entries: Entry[];
  span: Span;
}

export interface Entry {
  key: Identifier;
  value: Value;
  span: Span;
}

export type Value = NumberValue | StringValue | BoolValue | IdentValue | ListValue | ObjectValue | ErrorValue;

export interface NumberValue {
  kind: "number";
  value: number;
  /** The text as written (`1e-4`), kept for the formatter. */
  raw: string;
  span: Span;
}

export interface StringValue {
  kind: "string";
  /** The decoded string (escapes resolved). */
  value: string;
  /** The text as written, quotes included. */
  raw: string;
  span: Span;
}

export interface BoolValue {
  kind: "bool";
  value: boolean;
  span: Span;
}

/** A bare name: `f16`, `query_key_value`, `attn.qkv`, `mlp.*`. */
export interface IdentValue {
  kind: "ident";
  name: string;
  span: Span;
}

export interface ListValue {
  kind: "list";
  items: Value[];
  span: Span;
}

/** A typed object: `cosine { warmup_steps = 100 }`. */
export interface ObjectValue {
  kind: "object";
  type: Identifier;
  entries: Entry[];
  span: Span;
}

/** Stands where the parser recovered from a syntax error; a diagnostic was already reported. */
export interface ErrorValue {
  kind: "error";
  span: Span;
}
