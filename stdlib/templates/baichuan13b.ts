// Baichuan-13B-Chat (models.md §2.4, §6.14; datasets.md B.2).
// build_chat_input: system as plain text, then per turn `<reserved_102>` (user_token_id 195),
// the query, `<reserved_103>` (assistant_token_id 196), the answer. For SFT the answer ends
// with `</s>` (id 2) and loss covers answer and `</s>` (LLaMA-Efficient-Tuning's baichuan
// template, which Baichuan's README points to); every answer of a multi-turn conversation
// is trained.
import { answerThenEos, assistantLossOnly, type ChatTemplate } from "./template.ts";

export const baichuan13b: ChatTemplate = {
  name: "baichuan13b",
  source: "models.md §2.4 (build_chat_input, SFT recommendation), §6.14; datasets.md B.2",
  prefix: [],
  systemFormat: "{system}",
  firstRound: 1,
  layout: {
    kind: "turns",
    user: [
      { special: "<reserved_102>", role: "user" },
      { text: "{query}", role: "user" },
      { special: "<reserved_103>", role: "user" },
    ],
    assistant: answerThenEos,
    separator: "",
  },
  ...assistantLossOnly,
  specialIds: { "<reserved_102>": 195, "<reserved_103>": 196, "</s>": 2 },
};
