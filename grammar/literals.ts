// Reading number and string literals. The lexer accepts their rough shape; the exact rules
// live here so that each mistake gets its own message and a span on the offending characters.

/** A problem inside one literal, at `offset`..`offset + length` relative to the literal. */
export interface LiteralProblem {
  offset: number;
  length: number;
  message: string;
}

const numberShape = /^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

/** The value of a number literal, or why it is not one. */
export function readNumber(raw: string): { value: number } | { problem: LiteralProblem } {
  const whole = { offset: 0, length: raw.length };
  if (!numberShape.test(raw)) {
    return { problem: { ...whole, message: `\`${raw}\` is not a number: write numbers like 42, 0.5, -2 or 1e-4` } };
  }
  const value = Number(raw);
  if (!Number.isFinite(value)) {
    return { problem: { ...whole, message: `\`${short(raw)}\` is too large: numbers must stay below about 1.8e308` } };
  }
  return { value };
}

function short(raw: string): string {
  return raw.length > 24 ? `${raw.slice(0, 20)}…(${raw.length} characters)` : raw;
}

const simpleEscapes: Record<string, string> = { '"': '"', "\\": "\\", n: "\n", t: "\t", r: "\r" };
const escapeHelp = 'valid escapes are \\" \\\\ \\n \\t \\r \\uXXXX and \\u{X...}';

/**
 * The value of a terminated string literal (quotes included), or every invalid escape in it.
 * Any character but `"`, `\` and a line break stands for itself.
 */
export function readString(raw: string): { value: string } | { problems: LiteralProblem[] } {
  const problems: LiteralProblem[] = [];
  let value = "";
  const end = raw.length - 1; // the closing quote
  let i = 1;
  while (i < end) {
    const c = raw[i];
    if (c !== "\\") {
      value += c;
      i++;
      continue;
    }
    const escape = readEscape(raw, i, end);
    if ("problem" in escape) problems.push(escape.problem);
    else value += escape.text;
    i += escape.length;
  }
  return problems.length > 0 ? { problems } : { value };
}

/** The escape starting at the backslash `raw[at]`; `end` is the index of the closing quote. */
function readEscape(
  raw: string,
  at: number,
  end: number,
): { text: string; length: number } | { problem: LiteralProblem; length: number } {
  const c = raw[at + 1];
  if (Object.hasOwn(simpleEscapes, c)) return { text: simpleEscapes[c], length: 2 };
  if (c === "u") {
    const braced = /^\{([0-9a-fA-F]{1,6})\}/.exec(raw.slice(at + 2, end));
    if (braced) {
      const code = parseInt(braced[1], 16);
      const length = 2 + braced[0].length;
      if (code <= 0x10ffff) return { text: String.fromCodePoint(code), length };
      return { problem: { offset: at, length, message: `\`${raw.slice(at, at + length)}\` is beyond the last Unicode code point (10FFFF)` }, length };
    }
    const four = /^[0-9a-fA-F]{4}/.exec(raw.slice(at + 2, end));
    if (four) return { text: String.fromCharCode(parseInt(four[0], 16)), length: 6 };
    return { problem: { offset: at, length: 2, message: `\`\\u\` must be followed by 4 hex digits or {hex digits}; ${escapeHelp}` }, length: 2 };
  }
  // A backslash before a surrogate pair spans both halves of the character.
  const length = c !== undefined && c.codePointAt(0)! > 0xffff ? 3 : 2;
  return { problem: { offset: at, length, message: `invalid escape \`\\${String.fromCodePoint(c.codePointAt(0)!)}\` in a string; ${escapeHelp}` }, length };
}
