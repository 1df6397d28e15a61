// ChatGLM-6B (models.md §4.4, §6.9, §6.14; THUDM/ChatGLM-6B ptuning/main.py).
// A first turn's prompt is the bare query; later turns write the history as
// "[Round i]\n问：q\n答：r\n" from i = 0. `[gMASK]<sop>` follows the prompt (at its end, not
// its start). The label of the `<sop>` position is `<sop>` itself, so `[gMASK]` is trained to
// predict `<sop>`; loss covers that prediction, the answer and `<eop>`.
// Multi-turn: the prompt before `<sop>` is attended bidirectionally, so an earlier answer
// cannot carry loss inside it; a conversation of n turns becomes n examples, each training
// its last answer (the split Firefly's README describes). A system text is our choice: the
// model has none, so it is written before the prompt, followed by "\n".
import { assistantLossOnly, type ChatTemplate } from "./template.ts";

export const chatglm: ChatTemplate = {
  name: "chatglm",
  source: "models.md §4.4 (chat template, ptuning preprocess_function_train), §6.9, §6.14",
  prefix: [],
  systemFormat: "{system}\n",
  firstRound: 0,
  layout: {
    kind: "history-prompt",
    history: "[Round {round}]\n问：{query}\n答：{answer}\n",
    current: "[Round {round}]\n问：{query}\n答：",
    alone: "{query}",
    suffix: [
      { special: "[gMASK]", role: "user" },
      { special: "<sop>", role: "assistant" },
    ],
    answer: [
      { text: "{answer}", role: "assistant" },
      { special: "<eop>", role: "assistant" },
    ],
  },
  ...assistantLossOnly,
  specialIds: { "[gMASK]": 130001, "<sop>": 130004, "<eop>": 130005 },
};
