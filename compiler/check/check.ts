// The checker's entry point: file -> imports -> chosen pipeline(s) -> extends -> overrides ->
// schemas -> cross-key checks -> resolved pipeline(s) with defaults. Every user mistake is a
// diagnostic; nothing here throws on bad input.
import { resolve } from "node:path";
import type { SectionKeyword } from "../../grammar/ast.ts";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { noKind, sections as sectionInfo } from "../../stdlib/schemas/index.ts";
import { diag, hasErrors, type Diagnostic } from "../diagnostics.ts";
import { checkFiles } from "./files.ts";
import { Flattener, type FlatPipeline, type FlatSection } from "./flatten.ts";
import { applyOverrides, parseOverride, type Override } from "./overrides.ts";
import { Reporter } from "./reporter.ts";
import { resolvePipeline, type ResolvedPipeline } from "./resolve.ts";
import { Scopes, type PipelineRef } from "./scope.ts";
import { checkSemantics, type CheckedPipeline, type CheckedSection } from "./semantics.ts";
import { loadProgram, type Overlay } from "./sources.ts";
import { didYouMean, listNames } from "./suggest.ts";
import { entriesToJson } from "./to-json.ts";
import { validateSection } from "./validate.ts";

export interface CheckOptions {
  /** The pipeline to check; required when the file declares several (unless `all`). */
  pipeline?: string;
  /** Check every pipeline the file declares. */
  all?: boolean;
  /** `--set` arguments, e.g. `train.lr=2e-4`. */
  overrides?: string[];
  /** Check that referenced files and directories exist (default true). */
  checkFiles?: boolean;
  /** Source texts that take precedence over the disk, by absolute path. */
  overlay?: Overlay;
}

export interface CheckResult {
  /** The resolved pipelines; empty when there is any error (warnings allowed). */
  pipelines: ResolvedPipeline[];
  /** Sorted by file and position; errors and warnings of every file involved. */
  diagnostics: Diagnostic[];
  /** Source text by file name (including `--set[N]` overrides), for code frames. */
  texts: Map<string, string>;
}

/** Checks `path` (a `.sft` file) and resolves the chosen pipeline(s). */
export function checkFile(path: string, options: CheckOptions = {}): CheckResult {
  const entry = resolve(path);
  const reporter = new Reporter();
  const program = loadProgram(entry, reporter, options.overlay);
  const texts = program.texts;
  const overrides: Override[] = [];
  (options.overrides ?? []).forEach((text, i) => {
    const o = parseOverride(text, i + 1, reporter);
    texts.set(`--set[${i + 1}]`, text);
    if (o) overrides.push(o);
  });

  const pipelines: ResolvedPipeline[] = [];
  const loaded = program.files.get(entry);
  // After a syntax error the recovered tree lacks whatever could not be read, so checking it
  // would report sections and keys as missing that are merely misspelt: stop at syntax errors.
  const syntaxErrors = reporter.diagnostics.some((d) => d.code.startsWith("SFT1") && d.severity === "error");
  if (loaded && !syntaxErrors) {
    const scopes = new Scopes(program, reporter);
    scopes.visibleIn(entry); // reports duplicate pipeline names even when nothing extends them
    const flattener = new Flattener(scopes, reporter);
    for (const ref of choosePipelines(entry, loaded.ast.pipelines.map((decl) => ({ decl, file: entry })), scopes, options, reporter)) {
      const flat = applyOverrides(flattener.flatten(ref), overrides);
      reporter.reportAll(flat.diagnostics);
      const resolved = checkPipeline(flat.pipeline, options.checkFiles ?? true, reporter);
      if (resolved) pipelines.push(resolved);
    }
  }
  const errorsAnywhere = hasErrors(reporter.diagnostics);
  return { pipelines: errorsAnywhere ? [] : pipelines, diagnostics: sortDiagnostics(reporter.diagnostics), texts };
}

function choosePipelines(entry: string, own: PipelineRef[], scopes: Scopes, options: CheckOptions, reporter: Reporter): PipelineRef[] {
  if (options.pipeline !== undefined) {
    const visible = scopes.visibleIn(entry);
    const chosen = visible.get(options.pipeline);
    if (chosen) return [chosen];
    reporter.report(diag("SFT2007", `no pipeline \`${options.pipeline}\` in this file or its imports${didYouMean(options.pipeline, visible.keys())}`, {
      where: entry,
      hint: visible.size ? `pipelines: ${listNames(visible.keys())}` : "the file declares no pipeline",
    }));
    return [];
  }
  if (own.length === 0) {
    reporter.report(diag("SFT2013", "the file declares no pipeline", { where: entry, hint: "add `pipeline NAME { ... }`, or check the file that imports this one" }));
  } else if (own.length > 1 && !options.all) {
    const names = own.map((r) => r.decl.name.name);
    reporter.report(diag("SFT2012", `the file declares ${own.length} pipelines; choose one: ${listNames(names)}`, {
      where: entry,
      hint: `pass \`--pipeline ${names[0]}\` or write the path as \`FILE.sft#${names[0]}\``,
    }));
  }
  return own;
}

function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  const key = (d: Diagnostic) => [d.span?.file ?? d.where ?? "", d.span?.offset ?? -1] as const;
  return diagnostics
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const [fa, oa] = key(a.d);
      const [fb, ob] = key(b.d);
      return fa < fb ? -1 : fa > fb ? 1 : oa - ob || a.i - b.i;
    })
    .map(({ d }) => d);
}

function sectionTitle(s: FlatSection): string {
  return [s.keyword, s.kind?.name, s.name?.name].filter(Boolean).join(" ");
}

/** The schema of a section's kind, or undefined (reported) when the kind is missing or unknown. */
function schemaFor(s: FlatSection, reporter: Reporter): Schema | undefined {
  const info = sectionInfo[s.keyword];
  if (s.name && s.keyword !== "dataset") {
    reporter.report(diag("SFT2023", `only datasets have names; \`${s.name.name}\` is not expected here`, { span: s.name.span, hint: `write \`${s.keyword} ${s.kind?.name ?? ""} { ... }\`` }));
  }
  if (!info.kindNoun) {
    if (s.kind) reporter.report(diag("SFT2001", `\`${s.keyword}\` takes no kind: write \`${s.keyword} { ... }\``, { span: s.kind.span }));
    return info.kinds[noKind];
  }
  const kinds = Object.keys(info.kinds);
  if (!s.kind) {
    reporter.report(diag("SFT2001", `\`${s.keyword}\` needs a ${info.kindNoun}`, { span: s.header, hint: `write \`${s.keyword} KIND { ... }\` with KIND one of ${listNames(kinds)}` }));
    return undefined;
  }
  const schema = info.kinds[s.kind.name];
  if (!schema) {
    reporter.report(diag("SFT2001", `unknown ${info.kindNoun} \`${s.kind.name}\`${didYouMean(s.kind.name, kinds)}`, { span: s.kind.span, hint: `use one of ${listNames(kinds)}` }));
  }
  return schema;
}

function checkPipeline(flat: FlatPipeline, filesToo: boolean, reporter: Reporter): ResolvedPipeline | undefined {
  const checked: CheckedPipeline = { datasets: [] };
  const schemas = new Map<CheckedSection, Schema>();
  let complete = true;
  for (const keyword of Object.keys(sectionInfo) as SectionKeyword[]) {
    const info = sectionInfo[keyword];
    const found = flat.sections.filter((s) => s.keyword === keyword);
    if (found.length === 0 && info.required && !flat.brokenChain) {
      const example = info.kindNoun ? `${keyword} ${Object.keys(info.kinds)[0]} { ... }` : `${keyword} { ... }`;
      reporter.report(diag("SFT2006", `pipeline \`${flat.name.name}\` has no \`${keyword}\` section`, { span: flat.name.span, hint: `add e.g. \`${example}\`` }));
      complete = false;
    }
    for (const section of found) {
      const schema = schemaFor(section, reporter);
      if (!schema) {
        complete = false;
        continue;
      }
      const data = entriesToJson(section.entries, (schema.properties ?? {}) as Record<string, Schema>, reporter);
      const problems = validateSection(schema, data, { title: sectionTitle(section), header: section.header, siblings: sectionInfo[keyword].kinds });
      reporter.reportAll(problems);
      if (problems.length > 0) {
        complete = false;
        continue;
      }
      const c: CheckedSection = { section, kind: section.kind?.name ?? noKind, json: data.json, spans: data.spans };
      schemas.set(c, schema);
      if (keyword === "dataset") checked.datasets.push(c);
      else checked[keyword] = c;
      if (filesToo) reporter.reportAll(checkFiles(c, schema));
    }
  }
  reporter.reportAll(checkSemantics(checked));
  if (!complete || flat.brokenChain || !checked.model || !checked.method || !checked.train) return undefined;
  const { model, method, train } = checked;
  return resolvePipeline(flat.name.name, flat.file, { ...checked, model, method, train }, (s) => schemas.get(s)!);
}
