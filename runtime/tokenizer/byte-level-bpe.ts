// GPT-2 byte-level BPE as MOSS uses it (vocab.json + merges.txt + added tokens), following the
// Hugging Face slow tokenizer: added and special tokens are split off first (leftmost, longest
// match), the rest is cut by the GPT-2 regex, each piece's UTF-8 bytes are mapped to printable
// characters and merged by merge rank.
import type { DecodeOptions, SpecialIds, StreamDecoder, Tokenizer, TokenizerKind } from "./tokenizer.ts";
import { PrefixTrie } from "./prefix-trie.ts";
import { utf8Bytes } from "./utf8.ts";

// The regex module's \s is Unicode White_Space; JavaScript's \s differs (it has U+FEFF, lacks U+0085).
const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PRETOKENIZE = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, "gu");

/** GPT-2's reversible map from bytes to printable characters (bytes_to_unicode). */
function byteEncoderTable(): string[] {
  const direct = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(direct(b) ? b : 256 + extra++);
  return table;
}

const BYTE_ENCODER = byteEncoderTable();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));

export interface ByteLevelBpeFiles {
  /** vocab.json: token -> id. */
  vocab: Map<string, number>;
  /** merges.txt lines after the header, in rank order. */
  merges: [string, string][];
  /** Added tokens (added_tokens.json and the like): content -> id; decoded as plain text. */
  added: Map<string, number>;
  special: { bos?: string; eos?: string; unk?: string; pad?: string; additional: string[] };
}

export class ByteLevelBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly special: SpecialIds;
  readonly namedSpecial = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly noSplit = new PrefixTrie<number>();
  private readonly decoder = new Map<number, string>();
  private readonly addedText = new Map<number, string>();
  private readonly specialSet: Set<number>;
  private readonly cache = new Map<string, number[]>();

  constructor(
    readonly kind: TokenizerKind,
    private readonly files: ByteLevelBpeFiles,
  ) {
    files.merges.forEach(([a, b], rank) => this.ranks.set(`${a} ${b}`, rank));
    for (const [token, id] of files.vocab) this.decoder.set(id, token);
    for (const [token, id] of files.added) {
      this.addedText.set(id, token);
      this.noSplit.add(token, id);
    }
    const idOf = (token: string | undefined) => (token === undefined ? undefined : this.idOf(token));
    const { bos, eos, unk, pad, additional } = files.special;
    this.special = { bos: idOf(bos), eos: idOf(eos), unk: idOf(unk), pad: idOf(pad) };
    for (const token of [bos, eos, unk, pad, ...additional]) {
      const id = idOf(token);
      if (token === undefined || id === undefined) continue;
      this.noSplit.add(token, id);
      if (additional.includes(token)) this.namedSpecial.set(token, id);
    }
    this.specialSet = new Set([...Object.values(this.special), ...this.namedSpecial.values()].filter((id): id is number => id !== undefined));
    this.vocabSize = Math.max(-1, ...files.vocab.values(), ...files.added.values()) + 1;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    let plainStart = 0;
    for (let i = 0; i < text.length; ) {
      const length = this.noSplit.longestMatch(text, i);
      if (length === 0) {
        i++;
        continue;
      }
      this.encodePlain(text.slice(plainStart, i), ids);
      ids.push(this.idOf(text.slice(i, i + length))!);
      i += length;
      plainStart = i;
    }
    this.encodePlain(text.slice(plainStart), ids);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const stream = this.streamDecoder(options);
    return ids.map((id) => stream.push(id)).join("") + stream.flush();
  }

  pieces(ids: readonly number[]): string[] {
    return ids.map((id) => this.addedText.get(id) ?? this.decoder.get(id) ?? "");
  }

  idOf(piece: string): number | undefined {
    return this.files.added.get(piece) ?? this.files.vocab.get(piece);
  }

  withSpecialTokens(prompt: readonly number[], answer: readonly number[] = []): number[] {
    return [...prompt, ...answer];
  }

  /** Vocabulary tokens are bytes decoded as UTF-8 (invalid sequences become U+FFFD); added tokens are text. */
  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    let utf8 = new TextDecoder("utf-8");
    return {
      push: (id) => {
        if (options.skipSpecial && this.specialSet.has(id)) return "";
        const added = this.addedText.get(id);
        if (added !== undefined) {
          const head = utf8.decode();
          utf8 = new TextDecoder("utf-8");
          return head + added;
        }
        const token = this.decoder.get(id) ?? "";
        const bytes = Uint8Array.from(token, (c) => BYTE_DECODER.get(c) ?? 0x3f);
        return utf8.decode(bytes, { stream: true });
      },
      flush: () => utf8.decode(),
    };
  }

  private encodePlain(text: string, ids: number[]): void {
    if (text === "") return;
    for (const [word] of text.matchAll(PRETOKENIZE)) {
      let wordIds = this.cache.get(word);
      if (!wordIds) {
        const symbols = Array.from(utf8Bytes(word), (b) => BYTE_ENCODER[b]);
        wordIds = this.merge(symbols).map((t) => this.files.vocab.get(t) ?? this.special.unk ?? 0);
        if (this.cache.size < 100_000) this.cache.set(word, wordIds);
      }
      ids.push(...wordIds);
    }
  }

  /** Repeatedly merges every occurrence of the lowest-ranked adjacent pair, left to right. */
  private merge(symbols: string[]): string[] {
    let word = symbols;
    while (word.length > 1) {
      let best = Infinity;
      let bestPair = "";
      for (let k = 0; k + 1 < word.length; k++) {
        const pair = `${word[k]} ${word[k + 1]}`;
        const rank = this.ranks.get(pair);
        if (rank !== undefined && rank < best) {
          best = rank;
          bestPair = pair;
        }
      }
      if (best === Infinity) break;
      const merged: string[] = [];
      for (let k = 0; k < word.length; k++) {
        if (k + 1 < word.length && `${word[k]} ${word[k + 1]}` === bestPair) {
          merged.push(word[k] + word[k + 1]);
          k++;
        } else merged.push(word[k]);
      }
      word = merged;
    }
    return word;
  }
}
