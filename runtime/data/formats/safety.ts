// thu-coai/Safety-Prompts: one JSON object per file, `{Category: [{prompt, response, type}]}`
// (datasets.md A.4). The file is streamed by object-of-lists.ts; this checks one element.
// The category is the list's key; `type` repeats it and is not needed.
import { bad, isObject, notAnObject, singleTurn, stringField, type RecordOutcome } from "../record.ts";

export function parseSafetyElement(value: unknown, category: string): RecordOutcome {
  if (!isObject(value)) return bad(notAnObject(value, "{prompt, response, type}"));
  const prompt = stringField(value, "prompt");
  if (typeof prompt !== "string") return bad(prompt);
  const response = stringField(value, "response");
  if (typeof response !== "string") return bad(response);
  return singleTurn(prompt, response, category);
}
