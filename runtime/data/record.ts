// Checking one parsed JSON record: typed field access that reports what is wrong instead of
// throwing, and the outcome type every format's record parser returns.
import type { Conversation, Turn } from "./conversation.ts";
import type { Problem } from "./report.ts";

/** What a format makes of one record: a conversation, a bad record, or one a filter left out. */
export type RecordOutcome =
  | { kind: "ok"; conversation: Omit<Conversation, "source"> }
  | { kind: "bad"; problem: Problem }
  | { kind: "filtered"; reason: string };

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function bad(problem: Problem): RecordOutcome {
  return { kind: "bad", problem };
}

export function isProblem(value: unknown): value is Problem {
  return isObject(value) && typeof value.code === "string" && typeof value.reason === "string";
}

/** JSON type names as a user reads them. */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/** A record that is not a JSON object at all. */
export function notAnObject(value: unknown, expected: string): Problem {
  return { code: "SFT5303", reason: `record is not a JSON object`, detail: `found ${jsonType(value)}; expected ${expected}` };
}

/** A required string field; `path` names it in messages (e.g. `conversation[2].human`). */
export function stringField(record: JsonObject, key: string, path = key): string | Problem {
  if (!(key in record)) return { code: "SFT5304", reason: `missing field "${path}"` };
  const value = record[key];
  if (typeof value !== "string") return { code: "SFT5305", reason: `field "${path}" is not a string`, detail: `found ${jsonType(value)}` };
  return value;
}

/** An optional string field: undefined when absent or null. */
export function optionalStringField(record: JsonObject, key: string, path = key): string | undefined | Problem {
  const value = record[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") return { code: "SFT5305", reason: `field "${path}" is not a string`, detail: `found ${jsonType(value)}` };
  return value;
}

/** A required list field. */
export function listField(record: JsonObject, key: string): unknown[] | Problem {
  if (!(key in record)) return { code: "SFT5304", reason: `missing field "${key}"` };
  const value = record[key];
  if (!Array.isArray(value)) return { code: "SFT5305", reason: `field "${key}" is not a list`, detail: `found ${jsonType(value)}` };
  return value;
}

/**
 * A turn from raw texts, kept as they are (readDataset strips them unless `strip = false`).
 * A text that is empty or only whitespace makes the record bad.
 */
export function makeTurn(user: string, assistant: string, where = ""): Turn | Problem {
  if (user.trim() === "") return { code: "SFT5306", reason: `empty question${where}` };
  if (assistant.trim() === "") return { code: "SFT5306", reason: `empty answer${where}` };
  return { user, assistant };
}

/** A single-turn conversation from raw texts. */
export function singleTurn(user: string, assistant: string, category?: string): RecordOutcome {
  const turn = makeTurn(user, assistant);
  if (isProblem(turn)) return bad(turn);
  return { kind: "ok", conversation: category === undefined ? { turns: [turn] } : { turns: [turn], category } };
}

/** Turns from a list of `{[userKey]: string, [assistantKey]: string}` objects stored in field `listName`. */
export function turnList(list: unknown[], listName: string, userKey: string, assistantKey: string): Turn[] | Problem {
  if (list.length === 0) return { code: "SFT5306", reason: `empty conversation` };
  const turns: Turn[] = [];
  for (const [i, item] of list.entries()) {
    const detail = `${listName}[${i}]`;
    if (!isObject(item)) return { code: "SFT5305", reason: `${listName} element is not an object`, detail };
    const user = stringField(item, userKey, `${listName}[].${userKey}`);
    if (typeof user !== "string") return { ...user, detail };
    const assistant = stringField(item, assistantKey, `${listName}[].${assistantKey}`);
    if (typeof assistant !== "string") return { ...assistant, detail };
    const turn = makeTurn(user, assistant, ` in a turn`);
    if (isProblem(turn)) return { ...turn, detail };
    turns.push(turn);
  }
  return turns;
}
