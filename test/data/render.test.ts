// Chat templates rendered as segments. The expected lists are written by hand from the
// reference facts (they are the spec); each test cites its section of
// /work/shared/reference/models.md or datasets.md.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Conversation } from "../../runtime/data/conversation.ts";
import { collectDataset } from "../../runtime/data/read-dataset.ts";
import { chooseTemplate, renderConversation, type Example, type Segment } from "../../runtime/data/render.ts";
import { mossMetaInstruction } from "../../stdlib/templates/moss.ts";
import { templates } from "../../stdlib/templates/index.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";

const source = { file: "t.jsonl", line: 1, offset: 0 };

function conversation(...pairs: [string, string][]): Conversation {
  return { turns: pairs.map(([user, assistant]) => ({ user, assistant })), source };
}

function render(family: TemplateName, c: Conversation, loss?: string): Example[] {
  const choice = chooseTemplate(family, { loss });
  assert.ok(choice.ok);
  return renderConversation(c, choice.value);
}

const t = (text: string, train = false): Segment => ({ text, train });
const s = (special: string, train = false): Segment => ({ special, train });

const single = conversation(["你好", "你好！"]);
const multi = conversation(["你好", "你好！"], ["晚上睡不着怎么办", "可以试试睡前泡脚。"]);

// models.md §4.4: no history → the prompt is the bare query; [gMASK]<sop> at the end;
// labels start at <sop>, so <sop>, the answer and <eop> are trained (§6.14).
test("chatglm single turn: bare query, [gMASK] <sop> at the end, loss on <sop>, answer, <eop>", () => {
  assert.equal(render("chatglm", single), [{ segments: [t("你好"), s("[gMASK]"), s("<sop>", true), t("你好！", true), s("<eop>", true)], turn: 0 }]);
});

// models.md §4.4 chat template and its chatglm.cpp test vector text (Round from 0, "\n" and
// full-width colons); one example per answer because the prompt is attended bidirectionally.
test("chatglm multi-turn: one example per assistant turn, history as [Round i] from 0 in the prompt", () => {
  const answer0 = "你好👋！我是人工智能助手 ChatGLM-6B，很高兴见到你，欢迎问我任何问题。";
  const c = conversation(["你好", answer0], ["晚上睡不着应该怎么办", "可以试试睡前泡脚。"]);
  assert.equal(render("chatglm", c), [
    { segments: [t("你好"), s("[gMASK]"), s("<sop>", true), t(answer0, true), s("<eop>", true)], turn: 0 },
    {
      segments: [
        t(`[Round 0]\n问：你好\n答：${answer0}\n[Round 1]\n问：晚上睡不着应该怎么办\n答：`),
        s("[gMASK]"),
        s("<sop>", true),
        t("可以试试睡前泡脚。", true),
        s("<eop>", true),
      ],
      turn: 1,
    },
  ]);
});

// models.md §5.4: prefix [gMASK] sop, "[Round 1]\n\n问：你好\n\n答：" (its test vector text),
// loss on answer + </s> (§6.14).
test("chatglm2 single turn: [gMASK] sop prefix, [Round 1], loss on answer and </s>", () => {
  assert.equal(render("chatglm2", single), [
    { segments: [s("[gMASK]"), s("sop"), t("[Round 1]\n\n问：你好\n\n答："), t("你好！", true), s("</s>", true)] },
  ]);
});

// Multi-turn in one sequence (Firefly ChatGLM2SFTDataset, datasets.md B.1) with "\n\n" between
// turns (LLaMA-Factory's chatglm2 separator, datasets.md B.2).
test("chatglm2 multi-turn: every answer trained in one sequence, \\n\\n before [Round 2]", () => {
  assert.equal(render("chatglm2", multi), [
    {
      segments: [
        s("[gMASK]"),
        s("sop"),
        t("[Round 1]\n\n问：你好\n\n答："),
        t("你好！", true),
        s("</s>", true),
        t("\n\n[Round 2]\n\n问：晚上睡不着怎么办\n\n答："),
        t("可以试试睡前泡脚。", true),
        s("</s>", true),
      ],
    },
  ]);
});

// models.md §2.4: the chatglm.cpp test vector's messages: [195] user [196] assistant [195] user
// [196]; for SFT each answer ends with </s> and answer + </s> are trained (LLaMA-Efficient-Tuning).
test("baichuan13b multi-turn: <reserved_102> query <reserved_103> answer </s> per turn, loss on answers and </s>", () => {
  const c = conversation(["你好呀", "你好！很高兴和你交流。请问有什么我可以帮助你的吗？"], ["你叫什么名字？", "我是百川大模型。"]);
  assert.equal(render("baichuan13b", c), [
    {
      segments: [
        s("<reserved_102>"),
        t("你好呀"),
        s("<reserved_103>"),
        t("你好！很高兴和你交流。请问有什么我可以帮助你的吗？", true),
        s("</s>", true),
        s("<reserved_102>"),
        t("你叫什么名字？"),
        s("<reserved_103>"),
        t("我是百川大模型。", true),
        s("</s>", true),
      ],
    },
  ]);
  assert.equal(templates.baichuan13b.specialIds, { "<reserved_102>": 195, "<reserved_103>": 196, "</s>": 2 });
});

// Baichuan-7B has no chat template (models.md §1.4); the chosen format is LLM_training's
// "<s>Human: q\n\nAssistant: a</s>" (datasets.md C.4), loss on answers and </s>.
test("baichuan7b (chosen LLM_training format): <s>Human: q\\n\\nAssistant: a</s> per turn, loss on answers and </s>", () => {
  assert.equal(render("baichuan7b", multi), [
    {
      segments: [
        s("<s>"),
        t("Human: 你好\n\nAssistant: "),
        t("你好！", true),
        s("</s>", true),
        t("Human: 晚上睡不着怎么办\n\nAssistant: "),
        t("可以试试睡前泡脚。", true),
        s("</s>", true),
      ],
    },
  ]);
});

// models.md §3.4: meta instruction + "<|Human|>: q<eoh>\n<|MOSS|>:" and the model continues
// " answer<eom>"; default loss on " answer" + <eom>.
test("moss single turn: meta instruction, <|Human|>: q <eoh> \\n<|MOSS|>: then trained ' answer' <eom>", () => {
  assert.equal(render("moss", single), [
    { segments: [t(mossMetaInstruction), t("<|Human|>: 你好"), s("<eoh>"), t("\n<|MOSS|>:"), t(" 你好！", true), s("<eom>", true)] },
  ]);
  assert.ok(mossMetaInstruction.endsWith("Capabilities and tools that MOSS can possess.\n"));
});

test("moss multi-turn: turns joined by \\n; written out it is the fnlp SFT text without the final \\n", () => {
  const [example] = render("moss", multi);
  assert.equal(example.segments.slice(1), [
    t("<|Human|>: 你好"),
    s("<eoh>"),
    t("\n<|MOSS|>:"),
    t(" 你好！", true),
    s("<eom>", true),
    t("\n<|Human|>: 晚上睡不着怎么办"),
    s("<eoh>"),
    t("\n<|MOSS|>:"),
    t(" 可以试试睡前泡脚。", true),
    s("<eom>", true),
  ]);
  const written = example.segments.map((g) => ("text" in g ? g.text : g.special)).join("");
  assert.equal(written, `${mossMetaInstruction}<|Human|>: 你好<eoh>\n<|MOSS|>: 你好！<eom>\n<|Human|>: 晚上睡不着怎么办<eoh>\n<|MOSS|>: 可以试试睡前泡脚。<eom>`);
});

// models.md §3.4 "SFT labels" / §6.14: finetune_moss.py trains everything except the meta
// instruction, human turns included.
test("moss loss scheme 'moss' (finetune_moss.py): everything but the meta instruction is trained", () => {
  const [example] = render("moss", multi, "moss");
  assert.equal(example.segments.map((g) => g.train), [false, ...Array(10).fill(true)]);
});

test("moss: a conversation's own system text (fnlp meta_instruction) replaces the default", () => {
  const c = { ...single, system: "You are MOSS.\n- Web search: disabled.\n" };
  assert.equal(render("moss", c)[0].segments[0], t("You are MOSS.\n- Web search: disabled.\n"));
});

test("system texts for families without one (our choice): chatglm before the prompt + \\n, chatglm2 after the prefix + \\n\\n", () => {
  const c = { ...single, system: "你是一个乐于助人的助手。" };
  assert.equal(render("chatglm", c)[0].segments[0], t("你是一个乐于助人的助手。\n你好"));
  assert.equal(render("chatglm2", c)[0].segments.slice(0, 3), [s("[gMASK]"), s("sop"), t("你是一个乐于助人的助手。\n\n")]);
  assert.equal(render("baichuan13b", c)[0].segments[0], t("你是一个乐于助人的助手。"));
});

test("placeholders in the data are left alone", () => {
  const c = conversation(["写出 {answer} 和 {round}", "{query}"]);
  assert.equal(render("chatglm2", c)[0].segments.slice(2), [t("[Round 1]\n\n问：写出 {answer} 和 {round}\n\n答："), t("{query}", true), s("</s>", true)]);
});

test("an unknown loss scheme is an error naming the known ones", () => {
  const choice = chooseTemplate("chatglm2", { loss: "moss" });
  assert.not.ok(choice.ok);
  assert.equal(choice.diagnostics.map((d) => [d.code, d.message, d.hint]), [["SFT5316", 'the chatglm2 template has no loss scheme "moss"', "use one of: assistant"]]);
});

test("train_on_prompt trains system and user pieces, never the prefix; chatglm refuses it", () => {
  const c = { ...single, system: "S" };
  const choice = chooseTemplate("chatglm2", { trainOnPrompt: true });
  assert.ok(choice.ok);
  assert.equal(renderConversation(c, choice.value)[0].segments.map((g) => g.train), [false, false, true, true, true, true]);
  const glm = chooseTemplate("chatglm", { trainOnPrompt: true });
  assert.not.ok(glm.ok);
  assert.equal(glm.diagnostics[0].code, "SFT5316");
});

test("every sample conversation renders for every family; each answer is a trained segment of its example", async () => {
  const read = await collectDataset({ format: "moss003", path: "pipelines/data/samples/moss003.jsonl" });
  assert.ok(read.ok);
  for (const family of Object.keys(templates) as TemplateName[]) {
    const choice = chooseTemplate(family);
    assert.ok(choice.ok);
    for (const c of read.value.conversations) {
      const examples = renderConversation(c, choice.value);
      const trainedTexts = examples.flatMap((e) => e.segments.filter((g) => g.train && "text" in g).map((g) => ("text" in g ? g.text.trim() : "")));
      assert.equal(trainedTexts, c.turns.map((turn) => turn.assistant), `${family}, conversation ${c.id}`);
    }
  }
});

test.run();
