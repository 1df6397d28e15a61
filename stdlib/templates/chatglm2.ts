// ChatGLM2-6B (models.md §5.4, §6.9, §6.14; datasets.md B.1, B.2).
// `[gMASK] sop` prefix (names without angle brackets), then per turn
// "[Round n]\n\n问：q\n\n答：" from n = 1, the answer and `</s>` (eos id 2); loss on answer and
// `</s>`. Multi-turn trains every answer in one sequence, as Firefly's ChatGLM2SFTDataset does;
// between turns comes "\n\n", LLaMA-Factory's chatglm2 separator and the text chat() puts
// after a history answer. A system text (LLaMA-Factory puts it right after the prefix) is
// followed by "\n\n", our choice.
import { answerThenEos, assistantLossOnly, type ChatTemplate } from "./template.ts";

export const chatglm2: ChatTemplate = {
  name: "chatglm2",
  source: "models.md §5.4 (build_prompt, ptuning preprocess_function_train), §6.9, §6.14; datasets.md B.1, B.2",
  prefix: ["[gMASK]", "sop"],
  systemFormat: "{system}\n\n",
  firstRound: 1,
  layout: {
    kind: "turns",
    user: [{ text: "[Round {round}]\n\n问：{query}\n\n答：", role: "user" }],
    assistant: answerThenEos,
    separator: "\n\n",
  },
  ...assistantLossOnly,
  specialIds: { "[gMASK]": 64790, sop: 64792, "</s>": 2 },
};
