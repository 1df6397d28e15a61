// Baichuan-7B (models.md §1.4): a base model without a chat template; the choice here is ours.
// We take the format of the LLM_training project (datasets.md C.4, README at HEAD), which
// fine-tunes this model on these datasets: `<s>` once, then per turn
// "Human: q\n\nAssistant: " (untrained), the answer and `</s>` (trained), i.e.
// <s>Human: q1\n\nAssistant: a1</s>Human: q2\n\nAssistant: a2</s>. Loss on the answers and
// their `</s>` only, as its later multi-turn trainer and models.md's recommendation
// (prompt_ids + answer_ids + [2], prompt labels -100) do. A system text goes after `<s>`,
// followed by "\n\n".
import { answerThenEos, assistantLossOnly, type ChatTemplate } from "./template.ts";

export const baichuan7b: ChatTemplate = {
  name: "baichuan7b",
  source: "models.md §1.4 (no official template; SFT recommendation); datasets.md C.4 (LLM_training format)",
  prefix: ["<s>"],
  systemFormat: "{system}\n\n",
  firstRound: 1,
  layout: {
    kind: "turns",
    user: [{ text: "Human: {query}\n\nAssistant: ", role: "user" }],
    assistant: answerThenEos,
    separator: "",
  },
  ...assistantLossOnly,
  specialIds: { "<s>": 1, "</s>": 2 },
};
