// thu-coai/Safety-Prompts: the category keys of its two files (datasets.md A.4). The schema
// validates `categories` against them; the reader reports records under them.

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

export const safetyCategories = [...typicalSafetyCategories, ...instructionAttackCategories] as const;
