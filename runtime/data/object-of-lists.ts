// Streams a JSON document shaped `{ "key": [element, ...], ... }` (a Safety-Prompts file)
// element by element, so memory is bounded by the largest element, not by the file (the
// real files are 23 and 46 MB). Only the structure is scanned here: each element's text is
// handed out whole, with its line and byte offset, and parsed by the caller, so one broken
// element is one bad record while the rest of the file stays readable. Elements under keys
// the caller does not want are scanned past without being kept.
import type { FileHandle } from "node:fs/promises";
import { decodeUtf8, readChunks, startsWithBom } from "./line-reader.ts";

export type ScanEvent =
  | { kind: "key"; key: string; line: number }
  | { kind: "element"; key: string; line: number; offset: number; text: string }
  | { kind: "bad-element"; key: string; line: number; offset: number; problem: "too-long" | "invalid-utf8" }
  | { kind: "skipped-element"; key: string; line: number }
  /** The document is not an object of lists; scanning stops. */
  | { kind: "structure"; message: string; line: number; offset: number };

export interface ScanOptions {
  /** Whether the elements under `key` are wanted (parsed) or only counted. */
  wanted: (key: string) => boolean;
  maxElementBytes: number;
  chunkBytes?: number;
}

type State = "start" | "key-or-end" | "key" | "colon" | "list" | "element-or-end" | "element" | "after-element" | "after-list" | "done";

const quote = 0x22;
const backslash = 0x5c;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

function describeByte(b: number): string {
  return b >= 0x20 && b < 0x7f ? `'${String.fromCharCode(b)}'` : `byte 0x${b.toString(16).padStart(2, "0")}`;
}

function parseKey(bytes: Buffer): string | undefined {
  const raw = decodeUtf8(bytes);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw) as string;
  } catch {
    return undefined;
  }
}

/** Yields the keys and elements of a `{ key: [elements] }` document in file order. */
export async function* scanObjectOfLists(handle: FileHandle, options: ScanOptions): AsyncGenerator<ScanEvent> {
  let state = "start" as State;
  let line = 1;
  let key = "";
  let keep = false;
  // The token being collected (a key, or a wanted element) as copies of earlier chunks.
  let pieces: Buffer[] = [];
  let pieceBytes = 0;
  let tooLong = false;
  let elementLine = 0;
  let elementOffset = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;

  const structure = (message: string, offset: number): ScanEvent => ({ kind: "structure", message, line, offset });

  for await (const { bytes, offset } of readChunks(handle, 0, options.chunkBytes)) {
    let i = offset === 0 && startsWithBom(bytes) ? 3 : 0;
    // Start, within this chunk, of the token being collected (-1: none).
    let tokenStart = state === "key" || (state === "element" && keep && !tooLong) ? 0 : -1;

    const take = (end: number): Buffer => {
      const tail = bytes.subarray(tokenStart, end);
      const all = pieces.length === 0 ? Buffer.from(tail) : Buffer.concat([...pieces, tail]);
      pieces = [];
      pieceBytes = 0;
      tokenStart = -1;
      return all;
    };

    // Ends the current element just before byte `end` (exclusive) of this chunk.
    const finishElement = (end: number): ScanEvent => {
      const at = { key, line: elementLine, offset: elementOffset };
      if (!keep) return { kind: "skipped-element", key, line: elementLine };
      if (tooLong || pieceBytes + (end - tokenStart) > options.maxElementBytes) {
        pieces = [];
        pieceBytes = 0;
        tokenStart = -1;
        tooLong = false;
        return { kind: "bad-element", ...at, problem: "too-long" };
      }
      const text = decodeUtf8(take(end));
      return text === undefined ? { kind: "bad-element", ...at, problem: "invalid-utf8" } : { kind: "element", ...at, text };
    };

    // `again`: the byte at i is scanned a second time, in the state the first pass moved to.
    let again = false;
    for (; i < bytes.length; i++) {
      const b = bytes[i];
      if (again) again = false;
      else if (b === 0x0a) line++;
      switch (state) {
        case "start":
          if (isSpace(b)) break;
          if (b !== 0x7b) {
            yield structure(`expected the file to be one JSON object ({"Category": [...]}), found ${describeByte(b)}`, offset + i);
            return;
          }
          state = "key-or-end";
          break;
        case "key-or-end":
          if (isSpace(b)) break;
          if (b === 0x7d) state = "done";
          else if (b === quote) {
            state = "key";
            tokenStart = i;
          } else {
            yield structure(`expected a category name in quotes, found ${describeByte(b)}`, offset + i);
            return;
          }
          break;
        case "key":
          if (escaped) escaped = false;
          else if (b === backslash) escaped = true;
          else if (b === quote) {
            const name = parseKey(take(i + 1));
            if (name === undefined) {
              yield structure("a category name is not a valid JSON string", offset + i);
              return;
            }
            key = name;
            state = "colon";
          }
          break;
        case "colon":
          if (isSpace(b)) break;
          if (b !== 0x3a) {
            yield structure(`expected ':' after "${key}", found ${describeByte(b)}`, offset + i);
            return;
          }
          state = "list";
          break;
        case "list":
          if (isSpace(b)) break;
          if (b !== 0x5b) {
            yield structure(`the value of "${key}" is not a list of records (found ${describeByte(b)})`, offset + i);
            return;
          }
          keep = options.wanted(key);
          yield { kind: "key", key, line };
          state = "element-or-end";
          break;
        case "element-or-end":
          if (isSpace(b)) break;
          if (b === 0x5d) {
            state = "after-list";
            break;
          }
          state = "element";
          elementLine = line;
          elementOffset = offset + i;
          depth = 0;
          inString = false;
          escaped = false;
          tooLong = false;
          if (keep) tokenStart = i;
          i--; // the element's first byte is scanned in the element state
          again = true;
          break;
        case "element":
          if (inString) {
            if (escaped) escaped = false;
            else if (b === backslash) escaped = true;
            else if (b === quote) {
              inString = false;
              if (depth === 0) {
                yield finishElement(i + 1);
                state = "after-element";
              }
            }
          } else if (b === quote) inString = true;
          else if (b === 0x7b || b === 0x5b) depth++;
          else if (b === 0x7d || b === 0x5d) {
            if (depth === 0) {
              // A bare value (number, true, ...) ended by the list's ']'.
              yield finishElement(i);
              state = "after-element";
              i--;
              again = true;
            } else if (--depth === 0) {
              yield finishElement(i + 1);
              state = "after-element";
            }
          } else if (depth === 0 && (b === 0x2c || isSpace(b))) {
            yield finishElement(i);
            state = "after-element";
            i--;
            again = true;
          }
          break;
        case "after-element":
          if (isSpace(b)) break;
          if (b === 0x2c) state = "element-or-end";
          else if (b === 0x5d) state = "after-list";
          else {
            yield structure(`expected ',' or ']' after a record of "${key}", found ${describeByte(b)}`, offset + i);
            return;
          }
          break;
        case "after-list":
          if (isSpace(b)) break;
          if (b === 0x2c) state = "key-or-end";
          else if (b === 0x7d) state = "done";
          else {
            yield structure(`expected ',' or '}' after the list "${key}", found ${describeByte(b)}`, offset + i);
            return;
          }
          break;
        case "done":
          if (!isSpace(b)) {
            yield structure(`unexpected ${describeByte(b)} after the end of the JSON object`, offset + i);
            return;
          }
          break;
      }
    }
    // Keep the unfinished token's bytes: the chunk buffer is reused.
    if (tokenStart >= 0) {
      const rest = bytes.length - tokenStart;
      if (state === "element" && pieceBytes + rest > options.maxElementBytes) {
        tooLong = true;
        pieces = [];
        pieceBytes = 0;
      } else {
        pieces.push(Buffer.from(bytes.subarray(tokenStart)));
        pieceBytes += rest;
      }
    }
  }
  if (state !== "done") yield structure(state === "start" ? "the file is empty" : "the file ends before its JSON object is closed (truncated?)", -1);
}
