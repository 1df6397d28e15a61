// Concrete syntax tree -> AST (grammar/ast.ts), with a span on every node. Parts the parser
// recovered from become ErrorValue (a value) or are left out (a section or entry with no key),
// since the parser already reported them. Also checks what the grammar leaves open:
// literals (literals.ts), the version header, and entries sharing a line without a comma.
import { tokenMatcher, type CstElement, type CstNode, type IToken } from "chevrotain";
import { diag, type Diagnostic, type Span } from "../compiler/diagnostics.ts";
import type {
  Entry,
  Identifier,
  ImportDecl,
  PipelineDecl,
  Section,
  SectionKeyword,
  SftFile,
  Value,
} from "./ast.ts";
import type { LineIndex } from "./line-index.ts";
import { readNumber, readString, type LiteralProblem } from "./literals.ts";
import { False, TerminatedString, True } from "./tokens.ts";

/** The language version this sftc reads. */
export const languageVersion = 1;

function isToken(element: CstElement): element is IToken {
  return "tokenType" in element;
}

/** A token the lexer produced (not one inserted by error recovery). */
function isReal(token: IToken): boolean {
  return !token.isInsertedInRecovery && Number.isFinite(token.startOffset);
}

function tokenEnd(token: IToken): number {
  return token.startOffset + token.image.length;
}

function tokens(node: CstNode, key: string): IToken[] {
  return (node.children[key] ?? []).filter(isToken);
}

function nodes(node: CstNode, key: string): CstNode[] {
  return (node.children[key] ?? []).filter((e): e is CstNode => !isToken(e));
}

class AstBuilder {
  readonly diagnostics: Diagnostic[] = [];

  constructor(private readonly lines: LineIndex) {}

  /**
   * Span of a node: from its first to its last real token, where the tokens are the node's own
   * and `inner` the spans of the nodes it contains (built before it, so no subtree is walked
   * twice). A node with neither gets an empty span at `fallback`.
   */
  private nodeSpan(node: CstNode, fallback: number, inner: Span[] = []): Span {
    let start = Infinity;
    let stop = -Infinity;
    for (const children of Object.values(node.children)) {
      for (const child of children) {
        if (!isToken(child) || !isReal(child)) continue;
        start = Math.min(start, child.startOffset);
        stop = Math.max(stop, tokenEnd(child));
      }
    }
    for (const span of inner) {
      start = Math.min(start, span.offset);
      stop = Math.max(stop, span.offset + span.length);
    }
    return start <= stop ? this.lines.span(start, stop) : this.lines.span(fallback, fallback);
  }

  private tokenSpan(token: IToken): Span {
    return this.lines.span(token.startOffset, tokenEnd(token));
  }

  private report(code: "SFT1002" | "SFT1003" | "SFT1005" | "SFT1006" | "SFT1007", message: string, span: Span, hint?: string): void {
    this.diagnostics.push(diag(code, message, hint ? { span, hint } : { span }));
  }

  private literalProblem(code: "SFT1005" | "SFT1006", token: IToken, problem: LiteralProblem): void {
    const start = token.startOffset + problem.offset;
    this.report(code, problem.message, this.lines.span(start, start + problem.length));
  }

  /** A name token as an Identifier, or undefined when recovery inserted it. */
  private identifier(token: IToken | undefined): Identifier | undefined {
    if (!token || !isReal(token)) return undefined;
    return { name: token.image, span: this.tokenSpan(token) };
  }

  file(cst: CstNode, fileName: string, allTokens: IToken[]): Omit<SftFile, "comments"> {
    const result: Omit<SftFile, "comments"> = {
      file: fileName,
      imports: [],
      pipelines: [],
      span: this.lines.span(0, this.lines.text.length),
    };
    this.header(cst, allTokens, result);
    for (const node of nodes(cst, "importDecl")) {
      const decl = this.importDecl(node);
      if (decl) result.imports.push(decl);
    }
    for (const node of nodes(cst, "pipeline")) {
      const pipeline = this.pipeline(node);
      if (pipeline) result.pipelines.push(pipeline);
    }
    return result;
  }

  private header(cst: CstNode, allTokens: IToken[], result: Omit<SftFile, "comments">): void {
    const headers = nodes(cst, "header");
    const first = allTokens[0];
    const firstHeaderToken = headers.length > 0 ? tokens(headers[0], "Sft")[0] : undefined;
    if (!firstHeaderToken) {
      const at = first ? first.startOffset : 0;
      this.report("SFT1007", "missing the language version header", this.lines.span(at, at), "add `sft 1` as the first line");
      return;
    }
    if (firstHeaderToken !== first) {
      this.report("SFT1007", "the `sft` version header must come first, before any import or pipeline", this.tokenSpan(firstHeaderToken), "move `sft 1` to the first line");
    }
    for (const extra of headers.slice(1)) {
      this.report("SFT1007", "the version header appears more than once", this.nodeSpan(extra, 0), "keep only the first `sft 1`");
    }
    const number = tokens(headers[0], "NumberLiteral")[0];
    if (!number || !isReal(number)) return; // the parser reported the missing number
    const span = this.tokenSpan(number);
    const raw = number.image;
    if (!/^[0-9]+$/.test(raw)) {
      this.report("SFT1007", `the language version must be a whole number, not \`${raw}\``, span, "write `sft 1`");
    } else if (Number(raw) === 0) {
      this.report("SFT1007", "there is no language version 0", span, "write `sft 1`");
    } else if (Number(raw) > languageVersion) {
      this.report(
        "SFT1007",
        `this file needs .sft language version ${raw}, but this sftc understands version ${languageVersion} only`,
        span,
        "upgrade sftc to read this file",
      );
    } else {
      result.version = { value: Number(raw), span };
    }
  }

  private importDecl(node: CstNode): ImportDecl | undefined {
    const token = tokens(node, "StringLiteral")[0];
    if (!token || !isReal(token)) return undefined;
    const path = this.stringValue(token);
    if (path.kind !== "string") return undefined;
    return { path, span: this.nodeSpan(node, token.startOffset) };
  }

  private pipeline(node: CstNode): PipelineDecl | undefined {
    const keyword = tokens(node, "Pipeline")[0];
    const name = this.identifier(tokens(node, "Name")[0]);
    if (!name) return undefined; // the parser reported the missing name
    const base = nodes(node, "extendsClause")[0];
    const extendsName = base && this.identifier(tokens(base, "Name")[0]);
    const sections = nodes(node, "section").flatMap((s) => this.section(s) ?? []);
    const inner = [...(extendsName ? [extendsName.span] : []), ...sections.map((s) => s.span)];
    const pipeline: PipelineDecl = { name, sections, span: this.nodeSpan(node, keyword.startOffset, inner) };
    if (extendsName) pipeline.extends = extendsName;
    return pipeline;
  }

  private section(node: CstNode): Section | undefined {
    const keyword = tokens(node, "SectionKeyword")[0];
    if (!keyword || !isReal(keyword)) return undefined;
    const entries = this.entries(node);
    const section: Section = {
      keyword: keyword.image as SectionKeyword,
      keywordSpan: this.tokenSpan(keyword),
      entries,
      span: this.nodeSpan(node, keyword.startOffset, entries.map((e) => e.span)),
    };
    const kind = this.identifier(tokens(node, "kind")[0]);
    const name = this.identifier(tokens(node, "name")[0]);
    if (kind) section.kind = kind;
    if (name) section.name = name;
    return section;
  }

  /** The entries of a section or typed object, and the newline-or-comma rule between them. */
  private entries(node: CstNode): Entry[] {
    const entries = nodes(node, "entry").flatMap((e) => this.entry(e) ?? []);
    const commas = tokens(node, "Comma").filter(isReal).map((t) => t.startOffset);
    let comma = 0; // commas and entries are both in source order
    for (let i = 1; i < entries.length; i++) {
      const previous = entries[i - 1].span;
      const next = entries[i].span;
      while (comma < commas.length && commas[comma] < previous.offset + previous.length) comma++;
      const separated = comma < commas.length && commas[comma] < next.offset;
      if (!separated && previous.endLine === next.line) {
        this.report(
          "SFT1002",
          `expected a newline or \`,\` before the key \`${entries[i].key.name}\``,
          entries[i].key.span,
          "put each entry on its own line, or separate entries with `,`",
        );
      }
    }
    return entries;
  }

  private entry(node: CstNode): Entry | undefined {
    const key = this.identifier(tokens(node, "key")[0]);
    if (!key) return undefined;
    const valueNode = nodes(node, "value")[0];
    const equals = tokens(node, "Equals")[0];
    const after = equals && isReal(equals) ? tokenEnd(equals) : key.span.offset + key.span.length;
    const value = valueNode ? this.value(valueNode, after) : this.errorValue(after);
    const end = Math.max(value.span.offset + value.span.length, key.span.offset + key.span.length);
    return { key, value, span: this.lines.span(key.span.offset, end) };
  }

  private errorValue(at: number): Value {
    return { kind: "error", span: this.lines.span(at, at) };
  }

  private value(node: CstNode, fallback: number): Value {
    const value = this.valueContent(node, fallback);
    return node.recoveredNode ? { kind: "error", span: value.span } : value;
  }

  private valueContent(node: CstNode, fallback: number): Value {
    const [number] = tokens(node, "NumberLiteral");
    if (number) return isReal(number) ? this.numberValue(number) : this.errorValue(fallback);
    const [string] = tokens(node, "StringLiteral");
    if (string) return isReal(string) ? this.stringValue(string) : this.errorValue(fallback);
    const [list] = nodes(node, "list");
    if (list) return this.list(list, fallback);
    const [object] = nodes(node, "object");
    if (object) return this.object(object, fallback);
    return { kind: "error", span: this.nodeSpan(node, fallback) }; // TooDeep, or nothing recovered
  }

  private numberValue(token: IToken): Value {
    const span = this.tokenSpan(token);
    const read = readNumber(token.image);
    if ("problem" in read) {
      this.literalProblem("SFT1006", token, read.problem);
      return { kind: "error", span };
    }
    return { kind: "number", value: read.value, raw: token.image, span };
  }

  private stringValue(token: IToken): Value {
    const span = this.tokenSpan(token);
    if (!tokenMatcher(token, TerminatedString)) {
      this.report("SFT1003", "unterminated string", span, 'close the string with `"` before the end of the line');
      return { kind: "error", span };
    }
    const read = readString(token.image);
    if ("problems" in read) {
      for (const problem of read.problems) this.literalProblem("SFT1005", token, problem);
      return { kind: "error", span };
    }
    return { kind: "string", value: read.value, raw: token.image, span };
  }

  private list(node: CstNode, fallback: number): Value {
    const open = tokens(node, "LBracket")[0];
    let at = open && isReal(open) ? tokenEnd(open) : fallback;
    const items: Value[] = [];
    for (const item of nodes(node, "value")) {
      const value = this.value(item, at);
      items.push(value);
      at = value.span.offset + value.span.length;
    }
    const span = this.nodeSpan(node, fallback, items.map((i) => i.span));
    return node.recoveredNode ? { kind: "error", span } : { kind: "list", items, span };
  }

  private object(node: CstNode, fallback: number): Value {
    const nameToken = tokens(node, "Name")[0];
    const name = this.identifier(nameToken);
    const entries = this.entries(node);
    const span = this.nodeSpan(node, fallback, entries.map((e) => e.span));
    if (!name || node.recoveredNode) return { kind: "error", span };
    if (tokens(node, "LBrace").length === 0) {
      if (nameToken.tokenType === True) return { kind: "bool", value: true, span };
      if (nameToken.tokenType === False) return { kind: "bool", value: false, span };
      return { kind: "ident", name: name.name, span };
    }
    return { kind: "object", type: name, entries, span };
  }
}

/** Builds the AST of a parsed file; `allTokens` are the file's tokens (comments excluded). */
export function buildAst(
  cst: CstNode,
  fileName: string,
  lines: LineIndex,
  allTokens: IToken[],
): { ast: Omit<SftFile, "comments">; diagnostics: Diagnostic[] } {
  const builder = new AstBuilder(lines);
  const ast = builder.file(cst, fileName, allTokens);
  return { ast, diagnostics: builder.diagnostics };
}
