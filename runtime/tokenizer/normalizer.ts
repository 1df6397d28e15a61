// SentencePiece's normalizer: the precompiled character map (a Darts double-array trie over UTF-8
// bytes whose leaves point into a table of replacement strings), user-defined symbols kept as
// they are, whitespace folding, the dummy prefix and the "▁" escape, in the library's order.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { NormalizerSpec } from "./sentencepiece-model.ts";
import type { PrefixTrie } from "./prefix-trie.ts";
import { charLength } from "./utf8.ts";

/** The whitespace marker SentencePiece writes for a space (U+2581). */
export const SPACE_SYMBOL = "\u2581";

/** The precompiled map: the double array and the NUL-terminated replacement strings. */
interface Charsmap {
  units: Uint32Array;
  strings: Uint8Array;
  decoded: Map<number, string>;
}

/** Darts-clone keeps at most this many prefix matches per lookup; longer ones are not seen. */
const MAX_TRIE_RESULTS = 32;

export class Normalizer {
  private readonly isPlainIdentity: boolean;

  private constructor(
    private readonly spec: NormalizerSpec,
    private readonly charsmap: Charsmap | undefined,
    private readonly userDefined: PrefixTrie<number>,
    userDefinedWithSpace: boolean,
    private readonly whitespaceAsSuffix: boolean,
  ) {
    this.isPlainIdentity = !charsmap && !userDefinedWithSpace && !whitespaceAsSuffix;
  }

  /** Builds the normalizer of a model; `file` names the model in diagnostics. */
  static create(spec: NormalizerSpec, userDefined: PrefixTrie<number>, userDefinedWithSpace: boolean, whitespaceAsSuffix: boolean, file: string): Result<Normalizer> {
    // The library normalizes with the precompiled map alone (the rule name is a label): no map, no rules.
    if (spec.precompiledCharsmap.length === 0) return ok(new Normalizer(spec, undefined, userDefined, userDefinedWithSpace, whitespaceAsSuffix));
    const charsmap = parseCharsmap(spec.precompiledCharsmap);
    if (!charsmap) {
      return fail(diag("SFT5202", `${file}: the precompiled character map of normalizer "${spec.name}" is corrupt`, { where: file }));
    }
    return ok(new Normalizer(spec, charsmap, userDefined, userDefinedWithSpace, whitespaceAsSuffix));
  }

  /** Normalizes text as SentencePiece does before segmentation ("▁" marks spaces). */
  normalize(text: string): string {
    if (this.isPlainIdentity) return this.normalizeIdentity(text);
    const { addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces } = this.spec;
    const space = escapeWhitespaces ? SPACE_SYMBOL : " ";
    let i = 0;
    if (removeExtraWhitespaces) {
      while (i < text.length) {
        const [piece, length] = this.prefix(text, i);
        if (piece !== " ") break;
        i += length;
      }
    }
    if (i >= text.length) return "";
    let out = !this.whitespaceAsSuffix && addDummyPrefix ? space : "";
    let prevSpace = removeExtraWhitespaces;
    while (i < text.length) {
      let [piece, length] = this.prefix(text, i);
      if (prevSpace) {
        let k = 0;
        while (k < piece.length && piece[k] === " ") k++;
        piece = piece.slice(k);
      }
      if (piece.length > 0) {
        out += escapeWhitespaces ? piece.replaceAll(" ", SPACE_SYMBOL) : piece;
        prevSpace = piece.endsWith(" ");
      }
      i += length;
      if (!removeExtraWhitespaces) prevSpace = false;
    }
    if (removeExtraWhitespaces) {
      while (out.endsWith(space)) out = out.slice(0, out.length - space.length);
    }
    if (this.whitespaceAsSuffix && addDummyPrefix) out += space;
    return out;
  }

  /**
   * Without a character map every character maps to itself, so only spaces change: the same
   * result as the general loop, computed on the whole string. (A user-defined symbol with a space
   * in it would be kept whole by the loop; such models take the general path.)
   */
  private normalizeIdentity(text: string): string {
    const { addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces } = this.spec;
    const space = escapeWhitespaces ? SPACE_SYMBOL : " ";
    const body = removeExtraWhitespaces ? text.replace(/^ +/, "").replace(/ {2,}/g, " ") : text;
    if (body === "") return "";
    let out = (addDummyPrefix ? space : "") + (escapeWhitespaces ? body.replaceAll(" ", SPACE_SYMBOL) : body);
    if (removeExtraWhitespaces) {
      while (out.endsWith(space)) out = out.slice(0, out.length - space.length);
    }
    return out;
  }

  /** The normalized form of the longest rule at text[i] and how many code units it consumes. */
  private prefix(text: string, i: number): [string, number] {
    const user = this.userDefined.longestMatch(text, i);
    if (user > 0) return [text.slice(i, i + user), user];
    if (this.charsmap) {
      const match = longestCharsmapMatch(this.charsmap, text, i);
      if (match) return [replacement(this.charsmap, match.value), match.length];
    }
    const length = charLength(text, i);
    return [text.slice(i, i + length), length];
  }
}

/** Layout: uint32 little-endian trie size in bytes, the trie's 32-bit units, then the strings. */
function parseCharsmap(blob: Uint8Array): Charsmap | undefined {
  if (blob.length < 4) return undefined;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieSize = view.getUint32(0, true);
  if (trieSize % 4 !== 0 || trieSize === 0 || 4 + trieSize > blob.length) return undefined;
  const units = new Uint32Array(trieSize / 4);
  for (let k = 0; k < units.length; k++) units[k] = view.getUint32(4 + 4 * k, true);
  return { units, strings: blob.subarray(4 + trieSize), decoded: new Map() };
}

// Darts-clone unit fields.
const hasLeaf = (unit: number) => ((unit >>> 8) & 1) === 1;
const unitValue = (unit: number) => unit & 0x7fffffff;
const unitLabel = (unit: number) => (unit & 0x800000ff) >>> 0;
const unitOffset = (unit: number) => ((unit >>> 10) << ((unit & 0x200) >>> 6)) >>> 0;

/**
 * Darts-clone's commonPrefixSearch from text[i], fed the UTF-8 bytes of successive characters;
 * returns the longest match (in code units) among the first MAX_TRIE_RESULTS found.
 */
function longestCharsmapMatch(map: Charsmap, text: string, i: number): { length: number; value: number } | undefined {
  const units = map.units;
  let node = unitOffset(units[0]);
  let found = 0;
  let best: { length: number; value: number } | undefined;
  const bytes = charBytes;
  for (let j = i; j < text.length; ) {
    const cp = text.codePointAt(j)!;
    const n = encodeCodePoint(cp, bytes);
    const next = j + (cp > 0xffff ? 2 : 1);
    for (let k = 0; k < n; k++) {
      node ^= bytes[k];
      if (node >= units.length) return best;
      const unit = units[node];
      if (unitLabel(unit) !== bytes[k]) return best;
      node ^= unitOffset(unit);
      if (node >= units.length) return best;
      if (hasLeaf(unit)) {
        // A leaf inside a character cannot be represented in a string; rule tables never have one.
        if (found < MAX_TRIE_RESULTS && k === n - 1) best = { length: next - i, value: unitValue(units[node]) };
        found++;
      }
    }
    j = next;
  }
  return best;
}

function replacement(map: Charsmap, offset: number): string {
  let s = map.decoded.get(offset);
  if (s === undefined) {
    let end = offset;
    while (end < map.strings.length && map.strings[end] !== 0) end++;
    s = new TextDecoder().decode(map.strings.subarray(Math.min(offset, end), end));
    map.decoded.set(offset, s);
  }
  return s;
}

const charBytes = new Uint8Array(4);

function encodeCodePoint(cp: number, out: Uint8Array): number {
  if (cp < 0x80) {
    out[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = 0xc0 | (cp >> 6);
    out[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = 0xe0 | (cp >> 12);
    out[1] = 0x80 | ((cp >> 6) & 0x3f);
    out[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (cp >> 18);
  out[1] = 0x80 | ((cp >> 12) & 0x3f);
  out[2] = 0x80 | ((cp >> 6) & 0x3f);
  out[3] = 0x80 | (cp & 0x3f);
  return 4;
}
