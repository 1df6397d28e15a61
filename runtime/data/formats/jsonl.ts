// Any JSON Lines file, with a field mapping. Single turn: `user` and `assistant` name string
// fields of the record. Multi-turn: `turns` names a list field whose elements hold `user` and
// `assistant` (e.g. Firefly's `{conversation: [{human, assistant}]}` is
// `{turns: "conversation", user: "human", assistant: "assistant"}`).
import type { Turn } from "../conversation.ts";
import { bad, isObject, isProblem, listField, makeTurn, notAnObject, optionalStringField, stringField, turnList, type RecordOutcome } from "../record.ts";

/** Which record fields hold what. */
export interface FieldMapping {
  user: string;
  assistant: string;
  /** A list field of turns; `user`/`assistant` are then keys of its elements. */
  turns?: string;
  system?: string;
  category?: string;
}

export function parseMapped(value: unknown, fields: FieldMapping): RecordOutcome {
  if (!isObject(value)) return bad(notAnObject(value, `an object with the fields of the mapping`));
  const turns: Turn[] = [];
  if (fields.turns === undefined) {
    const user = stringField(value, fields.user);
    if (typeof user !== "string") return bad(user);
    const assistant = stringField(value, fields.assistant);
    if (typeof assistant !== "string") return bad(assistant);
    const turn = makeTurn(user, assistant);
    if (isProblem(turn)) return bad(turn);
    turns.push(turn);
  } else {
    const list = listField(value, fields.turns);
    if (isProblem(list)) return bad(list);
    const listed = turnList(list, fields.turns, fields.user, fields.assistant);
    if (isProblem(listed)) return bad(listed);
    turns.push(...listed);
  }
  const system = fields.system === undefined ? undefined : optionalStringField(value, fields.system);
  if (typeof system === "object") return bad(system);
  const category = fields.category === undefined ? undefined : optionalStringField(value, fields.category);
  if (typeof category === "object") return bad(category);
  return {
    kind: "ok",
    conversation: { ...(system ? { system } : {}), turns, ...(category === undefined ? {} : { category }) },
  };
}
