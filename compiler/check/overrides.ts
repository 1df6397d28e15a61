// `--set PATH=VALUE` overrides. The value is read by the `.sft` parser itself (wrapped in a
// tiny pipeline), so it has exactly the syntax of a value in a file; spans are moved back into
// the override's own text, which is registered as a source named `--set[N]` for code frames.
//
// PATH is `SECTION.KEY` (`train.lr`, `model.dtype`), `SECTION.KEY.FIELD` for a field of a
// typed object (`train.schedule.warmup_steps`), or `dataset.ID.KEY` for one dataset (by name
// or format); `dataset.KEY` sets the key on every dataset.
import type { Entry, Value } from "../../grammar/ast.ts";
import { sectionKeywords, type SectionKeyword } from "../../grammar/ast.ts";
import { parseSft } from "../../grammar/parse.ts";
import { diag, spanAt, type Diagnostic, type Span } from "../diagnostics.ts";
import { datasetId, type FlatPipeline, type FlatSection } from "./flatten.ts";
import type { Reporter } from "./reporter.ts";
import { didYouMean, listNames } from "./suggest.ts";

export interface Override {
  /** The source name of this override (`--set[1]`) and its text (`train.lr=2e-4`). */
  file: string;
  text: string;
  section: SectionKeyword;
  /** `dataset.ID.KEY`: which dataset. */
  dataset?: string;
  key: string;
  /** `train.schedule.warmup_steps`: the field inside a typed object. */
  field?: string;
  entry: Entry;
}

const prefix = "sft 1\npipeline override {\n  train {\n    value = ";
const suffix = "\n  }\n}\n";

/** Parses one `--set` argument; problems are reported and give undefined. */
export function parseOverride(text: string, index: number, reporter: Reporter): Override | undefined {
  const file = `--set[${index}]`;
  const whole = spanAt(file, text, 0, text.length);
  const eq = text.indexOf("=");
  if (eq <= 0) {
    reporter.report(diag("SFT2016", `\`--set ${text}\` is not of the form PATH=VALUE`, { span: whole, hint: "write e.g. `--set train.lr=2e-4`" }));
    return undefined;
  }
  const path = text.slice(0, eq).trim();
  const parts = path.split(".");
  const section = parts[0] as SectionKeyword;
  const pathSpan = spanAt(file, text, 0, eq);
  if (!sectionKeywords.includes(section)) {
    reporter.report(diag("SFT2016", `\`${parts[0]}\` is not a section${didYouMean(parts[0], sectionKeywords)}`, { span: pathSpan, hint: `the path starts with one of ${listNames(sectionKeywords)}` }));
    return undefined;
  }
  const tail = parts.slice(1);
  const shapeOk = tail.length >= 1 && tail.length <= 2 && tail.every((p) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(p));
  if (!shapeOk) {
    reporter.report(diag("SFT2016", `\`${path}\` is not a setting path`, { span: pathSpan, hint: "use SECTION.KEY, SECTION.KEY.FIELD or dataset.NAME.KEY" }));
    return undefined;
  }
  const valueText = text.slice(eq + 1);
  const parsed = parseSft(prefix + valueText + suffix, file);
  const move = (span: Span): Span => {
    const start = Math.min(Math.max(span.offset - prefix.length, 0), valueText.length);
    const length = Math.min(span.length, valueText.length - start);
    return spanAt(file, text, eq + 1 + start, Math.max(length, 0));
  };
  const valueEnd = prefix.length + valueText.length;
  for (const d of parsed.diagnostics) {
    // Past the value, the parser sees the wrapper's closing braces; say "the end of the value" instead.
    const pastEnd = d.span !== undefined && d.span.offset >= valueEnd;
    const message = pastEnd ? d.message.replace(/found `[^`]*`/, "found the end of the value") : d.message;
    reporter.report({ ...d, message, span: d.span && move(d.span) });
  }
  if (parsed.diagnostics.some((d) => d.severity === "error")) return undefined;
  // Braces in the value could close the wrapper and add entries of their own: one value only.
  const { pipelines } = parsed.ast;
  const wrapped = pipelines[0]?.sections[0];
  const entry = wrapped?.entries[0];
  const closedByWrapper = wrapped !== undefined && wrapped.span.offset + wrapped.span.length > valueEnd;
  if (pipelines.length !== 1 || pipelines[0].sections.length !== 1 || wrapped.entries.length !== 1 || !closedByWrapper) {
    reporter.report(diag("SFT2016", `the value of \`--set ${path}\` is not a single value`, { span: spanAt(file, text, eq + 1, valueText.length), hint: "write one value, e.g. `2e-4`, `[a, b]` or `cosine { warmup_steps = 10 }`" }));
    return undefined;
  }
  const keySpan = spanAt(file, text, parts.slice(0, -1).join(".").length + (parts.length > 1 ? 1 : 0), parts[parts.length - 1].length);
  const moved: Entry = { key: { name: parts[parts.length - 1], span: keySpan }, value: moveValue(entry.value, move), span: whole };
  const [first, second] = tail;
  // Datasets have no typed-object keys, so a second segment after `dataset` always names a dataset.
  if (section === "dataset" && second !== undefined) return { file, text, section, dataset: first, key: second, entry: moved };
  return { file, text, section, key: first, field: second, entry: moved };
}

function moveValue(value: Value, move: (s: Span) => Span): Value {
  switch (value.kind) {
    case "list":
      return { ...value, span: move(value.span), items: value.items.map((i) => moveValue(i, move)) };
    case "object":
      return {
        ...value,
        span: move(value.span),
        type: { ...value.type, span: move(value.type.span) },
        entries: value.entries.map((e) => ({ key: { ...e.key, span: move(e.key.span) }, value: moveValue(e.value, move), span: move(e.span) })),
      };
    default:
      return { ...value, span: move(value.span) };
  }
}

/** Applies overrides to a flattened pipeline (in order; a later override of the same key wins). */
export function applyOverrides(pipeline: FlatPipeline, overrides: Override[]): { pipeline: FlatPipeline; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  let sections = pipeline.sections;
  for (const o of overrides) {
    const targets = sections.filter((s) => s.keyword === o.section && (o.dataset === undefined || datasetId(s) === o.dataset));
    if (targets.length === 0) {
      const ids = sections.filter((s) => s.keyword === "dataset").map(datasetId);
      const what = o.dataset !== undefined ? `no dataset \`${o.dataset}\`${didYouMean(o.dataset, ids)}` : `no \`${o.section}\` section`;
      diagnostics.push(diag("SFT2017", `cannot apply \`--set ${o.text}\`: pipeline \`${pipeline.name.name}\` has ${what}`, {
        span: spanAt(o.file, o.text, 0, o.text.indexOf("=")),
        hint: o.dataset !== undefined ? `its datasets: ${listNames(ids)}` : `add a \`${o.section}\` section to the file first`,
      }));
      continue;
    }
    sections = sections.map((s) => (targets.includes(s) ? setEntry(s, o, diagnostics) : s));
  }
  return { pipeline: { ...pipeline, sections }, diagnostics };
}

function setEntry(section: FlatSection, o: Override, diagnostics: Diagnostic[]): FlatSection {
  const others = section.entries.filter((e) => e.key.name !== o.key);
  if (o.field === undefined) return { ...section, entries: [...others, o.entry] };
  const current = section.entries.find((e) => e.key.name === o.key);
  if (current?.value.kind !== "object") {
    diagnostics.push(diag("SFT2017", `cannot set \`${o.field}\` inside \`${o.key}\`: it is not a typed object here`, {
      span: spanAt(o.file, o.text, 0, o.text.indexOf("=")),
      hint: `set it whole, e.g. \`--set '${o.section}.${o.key}=cosine { warmup_steps = 100 }'\``,
    }));
    return section;
  }
  const fieldEntry: Entry = { ...o.entry, key: { ...o.entry.key, name: o.field } };
  const object = { ...current.value, entries: [...current.value.entries.filter((e) => e.key.name !== o.field), fieldEntry] };
  return { ...section, entries: [...others, { ...current, value: object }] };
}
