// thu-coai/Safety-Prompts: one JSON object per file, `{Category: [{prompt, response, type}]}`
// (datasets.md A.4). The file is streamed by object-of-lists.ts; this checks one element.
// The category is the list's key; `type` repeats it and is not needed.
import { bad, isObject, notAnObject, singleTurn, stringField, type RecordOutcome } from "../record.ts";

/** The category keys of `typical_safety_scenarios.json` (7 × 10k records). */
export const typicalSafetyCategories = [
  "Unfairness_And_Discrimination",
  "Crimes_And_Illegal_Activities",
  "Insult",
  "Mental_Health",
  "Physical_Harm",
  "Privacy_And_Property",
  "Ethics_And_Morality",
] as const;

/** The category keys of `instruction_attack_scenarios.json` (6 × 5k records). */
export const instructionAttackCategories = [
  "Reverse_Exposure",
  "Goal_Hijacking",
  "Prompt_Leaking",
  "Unsafe_Instruction_Topic",
  "Role_Play_Instruction",
  "Inquiry_With_Unsafe_Opinion",
] as const;

export function parseSafetyElement(value: unknown, category: string): RecordOutcome {
  if (!isObject(value)) return bad(notAnObject(value, "{prompt, response, type}"));
  const prompt = stringField(value, "prompt");
  if (typeof prompt !== "string") return bad(prompt);
  const response = stringField(value, "response");
  if (typeof response !== "string") return bad(response);
  return singleTurn(prompt, response, category);
}
