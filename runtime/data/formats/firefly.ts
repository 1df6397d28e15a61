// YeungNLP/firefly-train-1.1M (`firefly-train-1.1M.jsonl`): `{kind, input, target}`, single
// turn, the instruction already inside `input` (datasets.md A.2). `kinds` keeps only those task
// types; the others are counted as filtered.
import { bad, isObject, notAnObject, singleTurn, stringField, type RecordOutcome } from "../record.ts";

export function parseFirefly(value: unknown, kinds?: ReadonlySet<string>): RecordOutcome {
  if (!isObject(value)) return bad(notAnObject(value, "{kind, input, target}"));
  const kind = stringField(value, "kind");
  if (typeof kind !== "string") return bad(kind);
  const input = stringField(value, "input");
  if (typeof input !== "string") return bad(input);
  const target = stringField(value, "target");
  if (typeof target !== "string") return bad(target);
  if (kinds && !kinds.has(kind)) return { kind: "filtered", reason: `kind "${kind}" not selected` };
  return singleTurn(input, target, kind);
}
