// Turns a pipeline and its `extends` chain into one list of sections.
//
// Merge rules (spec/language.md, "Pipeline inheritance"):
// - model, method, train, decode: a child section of the same kind as the parent's merges key
//   by key (the child's value wins; a typed object such as `schedule` is replaced whole); a
//   child section of another kind replaces the parent's; a section the child omits is inherited.
// - datasets: a child that declares no dataset inherits all of the parent's. Otherwise the
//   child's datasets are the pipeline's datasets, and each one merges with the parent's dataset
//   of the same name (a dataset without a name is named by its format) and format.
import type { Entry, Identifier, PipelineDecl, Section, SectionKeyword } from "../../grammar/ast.ts";
import { sections as sectionInfo } from "../../stdlib/schemas/index.ts";
import { diag, type Span } from "../diagnostics.ts";
import type { Reporter } from "./reporter.ts";
import type { PipelineRef, Scopes } from "./scope.ts";
import { didYouMean } from "./suggest.ts";

export interface FlatSection {
  keyword: SectionKeyword;
  kind?: Identifier;
  name?: Identifier;
  /** The header (`dataset belle main`): where a missing key is reported. */
  header: Span;
  entries: Entry[];
}

export interface FlatPipeline {
  name: Identifier;
  file: string;
  sections: FlatSection[];
  /** Its `extends` chain is broken (unknown parent or cycle): sections may be missing for that reason alone. */
  brokenChain?: boolean;
}

/** A dataset's identity within a pipeline: its name, else its format. */
export function datasetId(section: FlatSection): string {
  return section.name?.name ?? section.kind?.name ?? "";
}

/** The span from the start of `a` to the end of `b` (same file). */
export function joinSpans(a: Span, b: Span): Span {
  return { file: a.file, offset: a.offset, length: b.offset + b.length - a.offset, line: a.line, col: a.col, endLine: b.endLine, endCol: b.endCol };
}

export class Flattener {
  private readonly own = new Map<PipelineDecl, FlatSection[]>();

  constructor(
    private readonly scopes: Scopes,
    private readonly reporter: Reporter,
  ) {}

  flatten(ref: PipelineRef, chain: PipelineRef[] = []): FlatPipeline {
    const own: FlatPipeline = { name: ref.decl.name, file: ref.file, sections: this.ownSections(ref.decl) };
    const parentName = ref.decl.extends;
    if (!parentName) return own;
    const visible = this.scopes.visibleIn(ref.file);
    const parent = visible.get(parentName.name);
    if (!parent) {
      const names = [...visible.keys()].filter((n) => n !== ref.decl.name.name);
      this.reporter.report(
        diag("SFT2008", `\`${ref.decl.name.name}\` extends \`${parentName.name}\`, which is not defined here${didYouMean(parentName.name, names)}`, {
          span: parentName.span,
          hint: "a pipeline can extend the pipelines of its own file and of the files it imports",
        }),
      );
      return { ...own, brokenChain: true };
    }
    const path = [...chain, ref];
    if (path.some((r) => r.decl === parent.decl)) {
      const cycle = [...path.slice(path.findIndex((r) => r.decl === parent.decl)), parent].map((r) => r.decl.name.name).join(" -> ");
      this.reporter.report(diag("SFT2009", `pipelines extend each other in a cycle: ${cycle}`, { span: parentName.span, hint: "remove one `extends` of the cycle" }));
      return { ...own, brokenChain: true };
    }
    const inherited = this.flatten(parent, path);
    return { ...merge(inherited, own), brokenChain: inherited.brokenChain };
  }

  /** A pipeline's own sections, with duplicate keys and sections reported and dropped. */
  private ownSections(decl: PipelineDecl): FlatSection[] {
    const cached = this.own.get(decl);
    if (cached) return cached;
    const result: FlatSection[] = [];
    for (const section of decl.sections) {
      const flat = this.normalize(section);
      const twin = result.find((s) => s.keyword === flat.keyword && (!sectionInfo[flat.keyword].repeatable || datasetId(s) === datasetId(flat)));
      if (twin) {
        const what = flat.keyword === "dataset" ? `two datasets named \`${datasetId(flat)}\`` : `more than one \`${flat.keyword}\` section`;
        const hint = flat.keyword === "dataset" ? `give each its own name: \`dataset ${flat.kind?.name ?? "FORMAT"} NAME { ... }\`` : `merge the two \`${flat.keyword}\` sections into one`;
        this.reporter.report(diag("SFT2005", `pipeline \`${decl.name.name}\` has ${what} (the first is on line ${twin.header.line})`, { span: flat.header, hint }));
        continue;
      }
      result.push(flat);
    }
    this.own.set(decl, result);
    return result;
  }

  private normalize(section: Section): FlatSection {
    const last = section.name ?? section.kind;
    const header = last ? joinSpans(section.keywordSpan, last.span) : section.keywordSpan;
    return { keyword: section.keyword, kind: section.kind, name: section.name, header, entries: uniqueEntries(section.entries, this.reporter) };
  }
}

/** Drops (and reports) a key given twice in one section or typed object; the first one stays. */
export function uniqueEntries(entries: Entry[], reporter: Reporter): Entry[] {
  const seen = new Map<string, Entry>();
  for (const entry of entries) {
    const first = seen.get(entry.key.name);
    if (first) {
      reporter.report(
        diag("SFT2004", `\`${entry.key.name}\` is set twice (first on line ${first.key.span.line})`, { span: entry.key.span, hint: "keep one of the two settings" }),
      );
      continue;
    }
    seen.set(entry.key.name, entry);
  }
  return [...seen.values()];
}

function sameKind(a: FlatSection, b: FlatSection): boolean {
  return a.kind?.name === b.kind?.name;
}

function mergeEntries(parent: FlatSection, child: FlatSection): FlatSection {
  const byKey = new Map(parent.entries.map((e) => [e.key.name, e]));
  for (const e of child.entries) byKey.set(e.key.name, e);
  return { ...child, entries: [...byKey.values()] };
}

function merge(parent: FlatPipeline, child: FlatPipeline): FlatPipeline {
  const sections: FlatSection[] = [];
  for (const keyword of Object.keys(sectionInfo) as SectionKeyword[]) {
    const mine = child.sections.filter((s) => s.keyword === keyword);
    const theirs = parent.sections.filter((s) => s.keyword === keyword);
    if (mine.length === 0) {
      sections.push(...theirs);
      continue;
    }
    for (const c of mine) {
      const p = theirs.find((s) => sameKind(s, c) && (keyword !== "dataset" || datasetId(s) === datasetId(c)));
      sections.push(p ? mergeEntries(p, c) : c);
    }
  }
  return { ...child, sections };
}
