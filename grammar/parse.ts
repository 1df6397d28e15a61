// Text -> AST and diagnostics: lex, guard the nesting depth, parse with recovery, build the AST.
import { tokenMatcher, type ILexingError, type IRecognitionException, type IToken } from "chevrotain";
import { diag, type Diagnostic } from "../compiler/diagnostics.ts";
import type { Comment, SftFile } from "./ast.ts";
import { buildAst } from "./build-ast.ts";
import { LineIndex } from "./line-index.ts";
import { limitNesting } from "./nesting.ts";
import { sftParser } from "./parser.ts";
import { BlockComment, sftLexer, UnterminatedBlockComment } from "./tokens.ts";

// Characters that users of other configuration languages write, and what `.sft` says instead.
const characterHints: Record<string, string> = {
  "'": 'strings use double quotes: "text"',
  ":": "write `key = value`",
  "#": "comments start with `//` or `/*`",
  ";": "separate entries with a newline or `,`",
};

/** What went wrong, for characters that start no token. */
function unexpectedCharacters(text: string, error: ILexingError, lines: LineIndex): Diagnostic {
  const chars = text.slice(error.offset, error.offset + error.length);
  const span = lines.span(error.offset, error.offset + error.length);
  const shown = chars.length > 24 ? `${chars.slice(0, 24)}…` : chars;
  const message = `unexpected ${chars.length === 1 ? "character" : "characters"} \`${shown}\``;
  const hint = Object.hasOwn(characterHints, chars[0]) ? characterHints[chars[0]] : undefined;
  return diag("SFT1001", message, hint ? { span, hint } : { span });
}

function comments(found: IToken[] | undefined, lines: LineIndex, diagnostics: Diagnostic[]): Comment[] {
  return (found ?? []).map((token) => {
    const span = lines.span(token.startOffset, token.startOffset + token.image.length);
    if (tokenMatcher(token, UnterminatedBlockComment)) {
      diagnostics.push(
        diag("SFT1004", "unterminated block comment", { span: lines.span(token.startOffset, token.startOffset + 2), hint: "close it with `*/`" }),
      );
    }
    const block = tokenMatcher(token, BlockComment) || tokenMatcher(token, UnterminatedBlockComment);
    return { text: token.image, block, span };
  });
}

/**
 * Where a parse error points: at the token found, unless recovery inserted it, it is the end of
 * the file, or it sits on a later line than the last good token (a missing `}` or `]` is
 * reported where it belongs, at the end of the previous token).
 */
function parseErrorSpan(error: IRecognitionException, lines: LineIndex) {
  const token = error.token;
  const previous = (error as { previousToken?: IToken }).previousToken;
  const previousEnd = previous && Number.isFinite(previous.startOffset) && previous.startOffset >= 0 ? previous.startOffset + previous.image.length : undefined;
  const real = Number.isFinite(token.startOffset) && token.startOffset >= 0 && !token.isInsertedInRecovery && token.image.length > 0;
  if (real && (previousEnd === undefined || lines.position(previousEnd).line === lines.position(token.startOffset).line)) {
    return lines.span(token.startOffset, token.startOffset + token.image.length);
  }
  const at = previousEnd ?? (real ? token.startOffset : lines.text.length);
  return lines.span(at, at);
}

/**
 * Runs the parser. Chevrotain recovers from errors by throwing and catching exceptions; their
 * stack traces are never read but cost most of the time on broken input, so they are off here.
 */
function parseTokens(tokens: IToken[]) {
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    sftParser.input = tokens;
    return sftParser.file();
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/** Parses a `.sft` text. Never throws: every problem is a diagnostic, sorted by position. */
export function parseSft(text: string, file: string): { ast: SftFile; diagnostics: Diagnostic[] } {
  const lines = new LineIndex(file, text);
  const lexed = sftLexer.tokenize(text);
  const diagnostics: Diagnostic[] = lexed.errors.map((error) => unexpectedCharacters(text, error, lines));
  const fileComments = comments(lexed.groups.comments, lines, diagnostics);

  const limited = limitNesting(lexed.tokens, lines);
  diagnostics.push(...limited.diagnostics);

  const cst = parseTokens(limited.tokens);
  for (const error of sftParser.errors) {
    diagnostics.push(diag("SFT1002", error.message, { span: parseErrorSpan(error, lines) }));
  }

  const built = buildAst(cst, file, lines, limited.tokens);
  diagnostics.push(...built.diagnostics);
  return { ast: { ...built.ast, comments: fileComments }, diagnostics: onePerPlace(diagnostics) };
}

/**
 * Sorted by position, with at most one syntax error (SFT1002) per offset, and none where
 * another error was already found: the first explains the place best; what recovery or the
 * checks on the recovered tree add there is noise.
 */
function onePerPlace(diagnostics: Diagnostic[]): Diagnostic[] {
  const seen = new Set<number>();
  const kept = diagnostics.filter((d) => {
    const repeated = seen.has(d.span!.offset);
    seen.add(d.span!.offset);
    return !(repeated && d.code === "SFT1002");
  });
  return kept.sort((a, b) => a.span!.offset - b.span!.offset);
}
