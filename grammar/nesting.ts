// Guards the recursive-descent parser against pathological nesting (`[[[[...` a hundred
// thousand deep would overflow the stack). Runs on the token stream before parsing: a list or
// object nested too deep is replaced by one TooDeep token that the parser takes as a value.
import { createTokenInstance, tokenMatcher, type IToken } from "chevrotain";
import { diag, type Diagnostic } from "../compiler/diagnostics.ts";
import type { LineIndex } from "./line-index.ts";
import { LBrace, LBracket, Name, RBrace, RBracket, TooDeep } from "./tokens.ts";

/** The deepest nesting of lists and typed objects a value may have. */
export const maxValueNesting = 64;
// A value sits inside a pipeline's and a section's braces.
const maxBracketDepth = maxValueNesting + 2;

function opens(token: IToken): boolean {
  return tokenMatcher(token, LBrace) || tokenMatcher(token, LBracket);
}

function closes(token: IToken): boolean {
  return tokenMatcher(token, RBrace) || tokenMatcher(token, RBracket);
}

/** Replaces each too-deep region by a TooDeep token and reports it (SFT1008). */
export function limitNesting(tokens: IToken[], lines: LineIndex): { tokens: IToken[]; diagnostics: Diagnostic[] } {
  const out: IToken[] = [];
  const diagnostics: Diagnostic[] = [];
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (closes(token)) depth = Math.max(0, depth - 1);
    if (!opens(token) || depth < maxBracketDepth) {
      if (opens(token)) depth++;
      out.push(token);
      continue;
    }
    // A typed object's type name belongs to the replaced value.
    const typeName = tokenMatcher(token, LBrace) && out.length > 0 && tokenMatcher(out[out.length - 1], Name) ? out.pop() : undefined;
    // Skip to the bracket that closes this one, or to the end of the file.
    let inner = 0;
    let last = i;
    for (; last < tokens.length; last++) {
      if (opens(tokens[last])) inner++;
      else if (closes(tokens[last]) && --inner === 0) break;
    }
    last = Math.min(last, tokens.length - 1);
    const start = (typeName ?? token).startOffset;
    const end = tokens[last].startOffset + tokens[last].image.length;
    out.push(createTokenInstance(TooDeep, lines.text.slice(start, end), start, end - 1, NaN, NaN, NaN, NaN));
    diagnostics.push(
      diag("SFT1008", `lists and objects are nested more than ${maxValueNesting} deep here`, {
        span: lines.span(start, start + 1),
        hint: "flatten this value; no setting needs that much nesting",
      }),
    );
    i = last;
  }
  return { tokens: out, diagnostics };
}
