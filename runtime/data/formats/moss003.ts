// moss-003-sft-data, multi-turn, in both published layouts (datasets.md A.3, models.md §3.4):
//
//   YeungNLP:  {conversation_id, category, conversation: [{human, assistant}, ...], dataset}
//   fnlp:      {conversation_id, meta_instruction, num_turns, category,
//               chat: {turn_1: {Human: "<|Human|>: ...<eoh>\n", "Inner Thoughts": ..., Commands: ...,
//                               "Tool Responses": ..., MOSS: "<|MOSS|>: ...<eom>\n"}, ...}}
//
// The record's keys pick the layout. In the fnlp layout the role markers are removed (the
// template puts them back) and `meta_instruction` becomes the conversation's system text.
// Turns that use plugins (an Inner Thoughts, Commands or Tool Responses value other than
// "None") have no place in a user/assistant conversation: such records are left out and
// counted. `language` keeps conversations by their first question, as LLM_training does:
// "zh" when it holds a CJK character U+4E00..U+9FA5, "en" otherwise.
import type { Turn } from "../conversation.ts";
import type { Problem } from "../report.ts";
import { bad, isObject, isProblem, listField, makeTurn, notAnObject, optionalStringField, stringField, turnList, type JsonObject, type RecordOutcome } from "../record.ts";

/** "all" keeps every conversation. */
export type MossLanguage = "zh" | "en" | "all";

export interface MossFilters {
  categories?: ReadonlySet<string>;
  language?: MossLanguage;
}

const cjk = /[\u4e00-\u9fa5]/;
const pluginFields = ["Inner Thoughts", "Commands", "Tool Responses"] as const;
// `<|Inner Thoughts|>: None<eot>`: the plugin field of a turn that used no plugin.
const unusedPlugin = /^<\|[^|]*\|>:\s*None\s*<eo[tcr]>\s*$/;

export function parseMoss003(value: unknown, filters: MossFilters = {}): RecordOutcome {
  if (!isObject(value)) return bad(notAnObject(value, "a moss-003-sft-data conversation"));
  const layout = "chat" in value && !("conversation" in value) ? parseFnlp(value) : parseYeungNlp(value);
  if (layout.kind !== "ok") return layout;
  const { conversation } = layout;
  if (filters.categories && !filters.categories.has(conversation.category ?? "")) {
    return { kind: "filtered", reason: `category "${conversation.category ?? ""}" not selected` };
  }
  if (filters.language && filters.language !== "all") {
    const language = cjk.test(conversation.turns[0].user) ? "zh" : "en";
    if (language !== filters.language) return { kind: "filtered", reason: `language ${language} not selected` };
  }
  return layout;
}

function idOf(record: JsonObject): string | undefined | Problem {
  const id = record.conversation_id;
  if (id === undefined || id === null) return undefined;
  if (typeof id === "number" || typeof id === "string") return String(id);
  return { code: "SFT5305", reason: `field "conversation_id" is neither a number nor a string` };
}

function withIdAndCategory(record: JsonObject, turns: Turn[], system?: string): RecordOutcome {
  const id = idOf(record);
  if (typeof id === "object") return bad(id);
  const category = optionalStringField(record, "category");
  if (typeof category === "object") return bad(category);
  return {
    kind: "ok",
    conversation: {
      ...(system === undefined ? {} : { system }),
      turns,
      ...(category === undefined ? {} : { category }),
      ...(id === undefined ? {} : { id }),
    },
  };
}

function parseYeungNlp(record: JsonObject): RecordOutcome {
  const list = listField(record, "conversation");
  if (isProblem(list)) return bad(list);
  const turns = turnList(list, "conversation", "human", "assistant");
  if (isProblem(turns)) return bad(turns);
  return withIdAndCategory(record, turns);
}

/** The text between `<|Role|>: ` and the end marker, or a problem naming the field. */
function unwrap(raw: string, opening: string, closing: string, field: string): string | Problem {
  const text = raw.trimEnd();
  if (!text.startsWith(opening) || !text.endsWith(closing)) {
    return { code: "SFT5309", reason: `${field} is not "${opening} ...${closing}"` };
  }
  // The space after the colon belongs to the marker: templates write it back.
  const start = text.startsWith(" ", opening.length) ? opening.length + 1 : opening.length;
  return text.slice(start, text.length - closing.length);
}

function parseFnlp(record: JsonObject): RecordOutcome {
  const system = stringField(record, "meta_instruction");
  if (typeof system !== "string") return bad(system);
  if (!("num_turns" in record)) return bad({ code: "SFT5304", reason: `missing field "num_turns"` });
  const numTurns = record.num_turns;
  if (typeof numTurns !== "number" || !Number.isInteger(numTurns) || numTurns < 1) {
    return bad({ code: "SFT5305", reason: `field "num_turns" is not a positive integer` });
  }
  const chat = record.chat;
  if (!isObject(chat)) return bad({ code: "SFT5305", reason: `field "chat" is not an object` });
  const turns: Turn[] = [];
  for (let n = 1; n <= numTurns; n++) {
    const name = `turn_${n}`;
    const turn = chat[name];
    if (!isObject(turn)) return bad({ code: turn === undefined ? "SFT5304" : "SFT5305", reason: `chat has no object "turn_N" for every N up to num_turns`, detail: `chat.${name}` });
    for (const field of pluginFields) {
      const value = turn[field];
      if (typeof value === "string" && !unusedPlugin.test(value)) return { kind: "filtered", reason: `uses plugins (${field})` };
    }
    const human = stringField(turn, "Human", `chat.turn_N.Human`);
    if (typeof human !== "string") return bad({ ...human, detail: `chat.${name}` });
    const moss = stringField(turn, "MOSS", `chat.turn_N.MOSS`);
    if (typeof moss !== "string") return bad({ ...moss, detail: `chat.${name}` });
    const user = unwrap(human, "<|Human|>:", "<eoh>", "chat.turn_N.Human");
    if (typeof user !== "string") return bad({ ...user, detail: `chat.${name}` });
    const assistant = unwrap(moss, "<|MOSS|>:", "<eom>", "chat.turn_N.MOSS");
    if (typeof assistant !== "string") return bad({ ...assistant, detail: `chat.${name}` });
    const made = makeTurn(user, assistant, ` in a turn`);
    if (isProblem(made)) return bad({ ...made, detail: `chat.${name}` });
    turns.push(made);
  }
  return withIdAndCategory(record, turns, system);
}
