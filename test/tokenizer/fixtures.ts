// Loads the reference fixtures written by spec/tokenizer/make_fixtures.py.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { SentencePiece } from "../../runtime/tokenizer/sentencepiece.ts";
import { expectOk } from "../support/result.ts";

export const fixtureDir = join(import.meta.dirname, "..", "fixtures", "tokenizers");

export interface Expected {
  ids: number[][];
  /** null where the decoded text equals the input string. */
  decoded: (string | null)[];
  /** Arbitrary id sequences (broken byte runs, leading "▁", control pieces) and their decoding. */
  random_ids?: number[][];
  random_decoded?: string[];
}

export function readStrings(): string[] {
  return JSON.parse(readFileSync(join(fixtureDir, "strings.json"), "utf8"));
}

export function readExpected(name: string): Expected {
  return JSON.parse(readFileSync(join(fixtureDir, `${name}.expected.json`), "utf8"));
}

export function loadFixtureModel(name: string): SentencePiece {
  const path = join(fixtureDir, `${name}.model`);
  return expectOk(SentencePiece.load(new Uint8Array(readFileSync(path)), path));
}

/**
 * Runs `encode` and `decode` over every fixture string, prints how many matched, and fails with
 * the first mismatches shown.
 */
export function checkParity(label: string, strings: string[], expected: Expected, encode: (s: string) => number[], decode: (ids: number[]) => string): void {
  let encoded = 0;
  let decoded = 0;
  const misses: string[] = [];
  expected.random_ids?.forEach((ids, i) => {
    const text = decode(ids);
    if (text === expected.random_decoded![i]) decoded++;
    else misses.push(`decode ${JSON.stringify(ids)}: got ${JSON.stringify(text)}, want ${JSON.stringify(expected.random_decoded![i])}`);
  });
  const decodes = strings.length + (expected.random_ids?.length ?? 0);
  strings.forEach((s, i) => {
    const ids = encode(s);
    if (JSON.stringify(ids) === JSON.stringify(expected.ids[i])) encoded++;
    else misses.push(`encode ${JSON.stringify(s)}: got ${JSON.stringify(ids)}, want ${JSON.stringify(expected.ids[i])}`);
    const text = decode(expected.ids[i]);
    const want = expected.decoded[i] ?? s;
    if (text === want) decoded++;
    else misses.push(`decode ${JSON.stringify(expected.ids[i])}: got ${JSON.stringify(text)}, want ${JSON.stringify(want)}`);
  });
  console.log(`    ${label}: encode ${encoded}/${strings.length} match, decode ${decoded}/${decodes} match`);
  assert.ok(misses.length === 0, `${label}: ${misses.length} mismatches, first:\n${misses.slice(0, 5).join("\n")}`);
}
