// The canonical layout of `.sft` files (`sftc fmt`). Printed from the AST, with the file's
// comments woven back in by position:
// - a comment on the same source line after a printed line's last token stays at the end of
//   that line; every other comment goes on its own line before the next printed line (so a
//   comment between a key and its value moves above the entry);
// - a list or typed object with a comment inside is always laid out one item per line;
// - one blank line from the source is kept between entries, sections and comments.
// The layout depends only on the AST and the comments' places relative to it, which makes
// formatting idempotent.
import { fail, hasErrors, invariant, ok, type Result } from "../compiler/diagnostics.ts";
import type { Comment, Entry, Identifier, PipelineDecl, Section, SftFile, Value } from "./ast.ts";
import { LineIndex } from "./line-index.ts";
import { parseSft } from "./parse.ts";

/** Lists and typed objects are put on one line when the line stays within this width. */
export const maxLineWidth = 80;
const indentUnit = "  ";

type BlankLine = "never" | "source" | "always";

function end(node: { span: { offset: number; length: number } }): number {
  return node.span.offset + node.span.length;
}

/** Offset of the closing `}` or `]` of a node whose span ends with it. */
function closing(node: { span: { offset: number; length: number } }): number {
  return end(node) - 1;
}

class Printer {
  private readonly out: string[] = [];
  private next = 0; // index of the first comment not yet printed
  private lastEnd = 0; // source offset where the last printed thing ends
  private blank: BlankLine = "never";
  private readonly commentAt = new Map<number, Comment>();

  constructor(
    private readonly text: string,
    private readonly lines: LineIndex,
    private readonly comments: Comment[],
  ) {
    for (const comment of comments) this.commentAt.set(comment.span.offset, comment);
  }

  file(ast: SftFile): string {
    const version = ast.version!;
    this.leading(version.span.offset, "");
    this.line("", `sft ${this.source(version.span.offset, end(version))}`, version.span.offset, end(version), this.firstItemAfter(ast, end(version)));
    const items = [...ast.imports.map((d) => ({ kind: "import" as const, node: d })), ...ast.pipelines.map((p) => ({ kind: "pipeline" as const, node: p }))];
    items.sort((a, b) => a.node.span.offset - b.node.span.offset);
    let previous: "header" | "import" | "pipeline" = "header";
    items.forEach((item, i) => {
      const limit = items[i + 1]?.node.span.offset ?? this.text.length;
      this.blank = previous === "import" && item.kind === "import" ? "source" : "always";
      if (item.kind === "import") {
        const path = item.node.path;
        this.leading(path.span.offset, "");
        this.line("", `import ${path.raw}`, item.node.span.offset, end(path), limit);
      } else {
        this.pipeline(item.node, limit);
      }
      previous = item.kind;
    });
    this.leading(Infinity, "");
    return this.out.join("\n") + "\n";
  }

  private firstItemAfter(ast: SftFile, offset: number): number {
    const starts = [...ast.imports, ...ast.pipelines].map((n) => n.span.offset).filter((o) => o >= offset);
    return starts.reduce((a, b) => Math.min(a, b), this.text.length);
  }

  private source(from: number, to: number): string {
    return this.text.slice(from, to);
  }

  /** The offset of the next token at or after `offset`, skipping whitespace and comments. */
  private nextToken(offset: number): number {
    let at = offset;
    for (;;) {
      while (at < this.text.length && /[ \t\r\n\uFEFF]/.test(this.text[at])) at++;
      const comment = this.commentAt.get(at);
      if (!comment) return at;
      at = end(comment);
    }
  }

  /** Whether a comment starts strictly between `from` and `to` (comments are in source order). */
  private hasCommentIn(from: number, to: number): boolean {
    let low = 0;
    let high = this.comments.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.comments[mid].span.offset <= from) low = mid + 1;
      else high = mid;
    }
    return low < this.comments.length && this.comments[low].span.offset < to;
  }

  private commentText(comment: Comment): string {
    return comment.block ? comment.text.replace(/\r\n?/g, "\n") : comment.text.trimEnd();
  }

  /** Applies the pending blank-line rule before printing something that starts at `start`. */
  private separate(start: number): void {
    const between = start > this.lastEnd ? this.source(this.lastEnd, start) : "";
    const sourceBlank = (between.match(/\n/g)?.length ?? 0) >= 2;
    if (this.out.length > 0 && (this.blank === "always" || (this.blank === "source" && sourceBlank))) this.out.push("");
    this.blank = "source";
  }

  /** Prints, each on its own line, the comments that start before `before`. */
  private leading(before: number, indent: string): void {
    while (this.next < this.comments.length && this.comments[this.next].span.offset < before) {
      const comment = this.comments[this.next++];
      this.separate(comment.span.offset);
      this.out.push(indent + this.commentText(comment));
      this.lastEnd = end(comment);
    }
  }

  /**
   * Prints one line for source text from `start` to `stop`, then appends the comments that
   * follow `stop` on the same source line and start before `limit`.
   */
  private line(indent: string, content: string, start: number, stop: number, limit: number, blank?: BlankLine): void {
    if (blank) this.blank = blank;
    this.separate(start);
    let text = indent + content;
    this.lastEnd = Math.max(this.lastEnd, stop);
    const line = this.lines.position(stop).line;
    while (this.next < this.comments.length) {
      const comment = this.comments[this.next];
      if (comment.span.offset >= limit || comment.span.line !== line) break;
      text += `  ${this.commentText(comment)}`;
      this.lastEnd = end(comment);
      this.next++;
    }
    this.out.push(text);
  }

  private opens(indent: string, content: string, start: number, stop: number, limit: number): void {
    this.line(indent, content, start, stop, limit);
    this.blank = "never";
  }

  /** The closing line of a block, after the comments that precede it inside the block. */
  private closes(indent: string, content: string, close: number, limit: number): void {
    this.leading(close, indent + indentUnit);
    this.line(indent, content, close, close + 1, limit, "never");
  }

  private pipeline(pipeline: PipelineDecl, limit: number): void {
    const head = `pipeline ${pipeline.name.name}${pipeline.extends ? ` extends ${pipeline.extends.name}` : ""}`;
    const brace = this.nextToken(end(pipeline.extends ?? pipeline.name));
    this.leading(brace, "");
    const close = closing(pipeline);
    if (pipeline.sections.length === 0 && !this.hasCommentIn(brace, close)) {
      this.line("", `${head} {}`, pipeline.span.offset, end(pipeline), limit);
      return;
    }
    this.opens("", `${head} {`, pipeline.span.offset, brace + 1, pipeline.sections[0]?.span.offset ?? close);
    pipeline.sections.forEach((section, i) => this.section(section, pipeline.sections[i + 1]?.span.offset ?? close));
    this.closes("", "}", close, limit);
  }

  private section(section: Section, limit: number): void {
    const words = [section.keyword, section.kind?.name, section.name?.name].filter((w) => w !== undefined);
    const brace = this.nextToken(end(section.name ?? section.kind ?? { span: section.keywordSpan }));
    this.block(indentUnit, "", words.join(" "), section.span.offset, brace, section.entries, closing(section), limit, "");
  }

  /** `prefix head { entries }` for a section or a typed object laid out over several lines. */
  private block(
    indent: string,
    prefix: string,
    head: string,
    start: number,
    brace: number,
    entries: Entry[],
    close: number,
    limit: number,
    suffix: string,
  ): void {
    this.leading(brace, indent);
    if (entries.length === 0 && !this.hasCommentIn(brace, close)) {
      this.line(indent, `${prefix}${head} {}${suffix}`, start, close + 1, limit);
      return;
    }
    this.opens(indent, `${prefix}${head} {`, start, brace + 1, entries[0]?.span.offset ?? close);
    this.entries(entries, indent + indentUnit, close);
    this.closes(indent, `}${suffix}`, close, limit);
  }

  private entries(entries: Entry[], indent: string, close: number): void {
    const width = Math.max(...entries.map((e) => e.key.name.length));
    entries.forEach((entry, i) => {
      const limit = entries[i + 1]?.span.offset ?? close;
      this.value(entry.value, indent, `${entry.key.name.padEnd(width)} = `, "", entry.key.span.offset, limit);
    });
  }

  /** Prints `prefix value suffix`, on one line when it fits and holds no comment. */
  private value(value: Value, indent: string, prefix: string, suffix: string, start: number, limit: number): void {
    const inline = this.inline(value);
    const fits = inline !== undefined && indent.length + prefix.length + inline.length + suffix.length <= maxLineWidth;
    if (inline !== undefined && (fits || (value.kind !== "list" && value.kind !== "object"))) {
      this.leading(this.opening(value), indent);
      this.line(indent, prefix + inline + suffix, start, end(value), limit);
    } else if (value.kind === "list") {
      const close = closing(value);
      this.leading(value.span.offset, indent);
      this.opens(indent, `${prefix}[`, start, value.span.offset + 1, value.items[0]?.span.offset ?? close);
      value.items.forEach((item, i) => {
        this.value(item, indent + indentUnit, "", ",", item.span.offset, value.items[i + 1]?.span.offset ?? close);
      });
      this.closes(indent, `]${suffix}`, close, limit);
    } else {
      invariant(value.kind === "object", "a text with errors is never formatted");
      this.block(indent, prefix, value.type.name, start, this.opening(value), value.entries, closing(value), limit, suffix);
    }
  }

  /**
   * Where a value's printed line starts: comments before this offset go above the line. For a
   * typed object that is its `{`, so a comment between the type and the brace moves above too.
   */
  private opening(value: Value): number {
    return value.kind === "object" ? this.nextToken(end(value.type)) : value.span.offset;
  }

  /** A value on one line, or undefined when a comment inside it needs more lines. */
  private inline(value: Value): string | undefined {
    switch (value.kind) {
      case "number":
      case "string":
        return value.raw;
      case "bool":
        return String(value.value);
      case "ident":
        return value.name;
      case "list": {
        if (this.hasCommentIn(this.opening(value), closing(value))) return undefined;
        const items = value.items.map((item) => this.inline(item));
        return items.every((i) => i !== undefined) ? `[${items.join(", ")}]` : undefined;
      }
      case "object": {
        if (this.hasCommentIn(this.opening(value), closing(value))) return undefined;
        if (value.entries.length === 0) return `${value.type.name} {}`;
        const entries = value.entries.map((e) => this.inlineEntry(e.key, e.value));
        return entries.every((e) => e !== undefined) ? `${value.type.name} { ${entries.join(", ")} }` : undefined;
      }
      case "error":
        return undefined;
    }
  }

  private inlineEntry(key: Identifier, value: Value): string | undefined {
    const inline = this.inline(value);
    return inline === undefined ? undefined : `${key.name} = ${inline}`;
  }
}

/**
 * Formats a `.sft` text in the canonical layout (LF line endings, no BOM). Refuses a text with
 * errors: the result then carries the parser's diagnostics.
 */
export function formatSft(text: string, file: string): Result<string> {
  const { ast, diagnostics } = parseSft(text, file);
  if (hasErrors(diagnostics) || !ast.version) return fail(...diagnostics);
  const printer = new Printer(text, new LineIndex(file, text), ast.comments);
  return ok(printer.file(ast), diagnostics);
}
