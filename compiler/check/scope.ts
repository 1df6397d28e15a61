// Which pipelines a file can name: those it declares and those declared by the files it
// imports directly (imports are not transitive, so a file's names never change because a
// file two imports away changed).
import { relative, dirname } from "node:path";
import type { PipelineDecl } from "../../grammar/ast.ts";
import { diag, type Span } from "../diagnostics.ts";
import type { Reporter } from "./reporter.ts";
import type { Program } from "./sources.ts";

export interface PipelineRef {
  decl: PipelineDecl;
  /** The file that declares it. */
  file: string;
}

export class Scopes {
  private readonly cache = new Map<string, Map<string, PipelineRef>>();

  constructor(
    private readonly program: Program,
    private readonly reporter: Reporter,
  ) {}

  /** The pipelines visible in `file`, by name. Duplicates are reported once, the first one wins. */
  visibleIn(file: string): Map<string, PipelineRef> {
    const cached = this.cache.get(file);
    if (cached) return cached;
    const scope = new Map<string, PipelineRef>();
    const loaded = this.program.files.get(file);
    if (loaded) {
      for (const decl of loaded.ast.pipelines) this.add(scope, { decl, file }, file, decl.name.span);
      for (const imported of loaded.imports) {
        for (const decl of this.program.files.get(imported.path)?.ast.pipelines ?? []) {
          this.add(scope, { decl, file: imported.path }, file, imported.decl.path.span);
        }
      }
    }
    this.cache.set(file, scope);
    return scope;
  }

  /** `span`: where the viewer brings `ref` in (its declaration, or the import naming its file). */
  private add(scope: Map<string, PipelineRef>, ref: PipelineRef, viewer: string, span: Span): void {
    const name = ref.decl.name.name;
    const existing = scope.get(name);
    if (!existing) {
      scope.set(name, ref);
      return;
    }
    if (existing.decl === ref.decl) return; // the same file imported twice
    const line = (r: PipelineRef) => r.decl.name.span.line;
    const place = (r: PipelineRef) => (r.file === viewer ? `on line ${line(r)}` : `in ${relative(dirname(viewer), r.file)} (line ${line(r)})`);
    const places = existing.file === viewer && ref.file === viewer ? `in this file (lines ${line(existing)} and ${line(ref)})` : `${place(existing)} and ${place(ref)}`;
    this.reporter.report(
      diag("SFT2014", `pipeline \`${name}\` is defined twice: ${places}`, {
        span,
        hint: "rename one of them: the names of a file's own and imported pipelines must be unique",
      }),
    );
  }
}
