// The tokens of `.sft` files and the lexer built from them.
//
// Newlines are whitespace: the parser never sees them. The rule "entries are separated by a
// newline or a comma" is checked afterwards on the AST (see build-ast.ts), which keeps the
// grammar free of optional-newline noise.
//
// Some tokens exist only to give a precise error: an unterminated string or block comment is
// lexed as one token so the user hears "unterminated string" at the opening quote instead of
// a cascade of "unexpected character" errors.
import { createToken, Lexer, type TokenType } from "chevrotain";

/** Every word-like token (identifiers and keywords): keys, kinds and names accept any of them. */
export const Name = createToken({ name: "Name", pattern: Lexer.NA });
/** The five section keywords. */
export const SectionKeyword = createToken({ name: "SectionKeyword", pattern: Lexer.NA });
/** A string literal, terminated or not. */
export const StringLiteral = createToken({ name: "StringLiteral", pattern: Lexer.NA });

// A segment is a word or `*`; a word may start with a digit when it also contains a letter
// (`7b`, `13b`), so sizes are names while `1e5` stays a number (the longer match wins).
const word = String.raw`(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+[A-Za-z_][A-Za-z0-9_]*|\*)`;
export const Identifier = createToken({
  name: "Identifier",
  pattern: new RegExp(`${word}(?:\\.(?:${word}|[0-9]+))*`),
  categories: [Name],
});

function keyword(text: string, categories: TokenType[] = []): TokenType {
  return createToken({
    name: text[0].toUpperCase() + text.slice(1),
    pattern: new RegExp(text),
    categories: [Name, ...categories],
    longer_alt: Identifier,
  });
}

export const Sft = keyword("sft");
export const Import = keyword("import");
export const Pipeline = keyword("pipeline");
export const Extends = keyword("extends");
const Model = keyword("model", [SectionKeyword]);
const Dataset = keyword("dataset", [SectionKeyword]);
const Method = keyword("method", [SectionKeyword]);
const Train = keyword("train", [SectionKeyword]);
const Decode = keyword("decode", [SectionKeyword]);
export const True = keyword("true");
export const False = keyword("false");

/**
 * Anything that starts like a number. The lexer takes `1.5.3` or `1.` whole so that
 * build-ast.ts reports one "invalid number" instead of a cascade. A name that matches further
 * wins (`longer_alt`): `7b` and `1e5x` are names, while `1e5` and `1e-4` are numbers.
 */
export const NumberLiteral = createToken({
  name: "NumberLiteral",
  pattern: /-?[0-9](?:[eE][+-][0-9]|[0-9.])*(?:[eE][0-9]+)?/,
  longer_alt: Identifier,
});

export const TerminatedString = createToken({
  name: "TerminatedString",
  pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*"/,
  categories: [StringLiteral],
});
const UnterminatedString = createToken({
  name: "UnterminatedString",
  pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*\\?/,
  categories: [StringLiteral],
});

export const LBrace = createToken({ name: "LBrace", pattern: "{", label: "`{`" });
export const RBrace = createToken({ name: "RBrace", pattern: "}", label: "`}`" });
export const LBracket = createToken({ name: "LBracket", pattern: "[", label: "`[`" });
export const RBracket = createToken({ name: "RBracket", pattern: "]", label: "`]`" });
export const Equals = createToken({ name: "Equals", pattern: "=", label: "`=`" });
export const Comma = createToken({ name: "Comma", pattern: ",", label: "`,`" });

/**
 * Stands for a list or object nested too deep (see nesting.ts); never produced by the lexer.
 * The parser accepts it as a value, so the rest of the file still parses.
 */
export const TooDeep = createToken({ name: "TooDeep", pattern: Lexer.NA });

const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\r\n]*/, group: "comments" });
export const BlockComment = createToken({ name: "BlockComment", pattern: /\/\*[\s\S]*?\*\//, group: "comments" });
export const UnterminatedBlockComment = createToken({
  name: "UnterminatedBlockComment",
  pattern: /\/\*[\s\S]*/,
  group: "comments",
});
// The byte order mark is whitespace wherever it appears; offsets keep counting it, so spans
// stay indices into the text as given.
const Whitespace = createToken({ name: "Whitespace", pattern: /[ \t\r\n\uFEFF]+/, group: Lexer.SKIPPED });

/** Every token type, in the order the lexer tries them (category and synthetic ones match nothing). */
export const allTokens: TokenType[] = [
  Whitespace,
  LineComment,
  BlockComment,
  UnterminatedBlockComment,
  TerminatedString,
  UnterminatedString,
  NumberLiteral,
  Sft,
  Import,
  Pipeline,
  Extends,
  Model,
  Dataset,
  Method,
  Train,
  Decode,
  True,
  False,
  Identifier,
  LBrace,
  RBrace,
  LBracket,
  RBracket,
  Equals,
  Comma,
  Name,
  SectionKeyword,
  StringLiteral,
  TooDeep,
];

/**
 * The `.sft` lexer. Line/column tracking is off: spans are computed from offsets with
 * line-index.ts, which counts lines exactly as `lineCol` does.
 */
export const sftLexer = new Lexer(allTokens, { positionTracking: "onlyOffset", ensureOptimizations: true });

/** How a token type is named in messages, in the terms a `.sft` author uses. */
export function describeTokenType(type: TokenType): string {
  switch (type) {
    case Name:
    case Identifier:
      return "a name";
    case SectionKeyword:
      return "a section (model, dataset, method, train, decode)";
    case StringLiteral:
    case TerminatedString:
      return "a string";
    case NumberLiteral:
      return "a number";
    case TooDeep:
      return "a value nested too deep";
    default:
      return type.LABEL ?? `\`${type.name.toLowerCase()}\``;
  }
}
