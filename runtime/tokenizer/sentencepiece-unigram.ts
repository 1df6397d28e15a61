// SentencePiece's unigram segmentation (unigram_model.cc, the optimized Viterbi encoder): the best
// path through the lattice of vocabulary pieces, scored by the sum of piece scores. Sums are kept
// in float32 as the library keeps them; a character with no single-character piece becomes an
// unknown node with score min_score - 10; user-defined symbols score length * max_score - 0.1.
import type { PieceVocabulary } from "./piece-vocabulary.ts";
import { PrefixTrie } from "./prefix-trie.ts";
import type { Segment } from "./sentencepiece-bpe.ts";
import { charLength } from "./utf8.ts";

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38;
const UNK_PENALTY = 10;

export class UnigramSegmenter {
  private readonly trie = new PrefixTrie<number>();
  private readonly minScore: number;
  private readonly maxScore: number;

  constructor(private readonly vocab: PieceVocabulary) {
    for (const [piece, id] of vocab.segmentable) this.trie.add(piece, id);
    // The library starts from FLT_MAX / FLT_MIN (the smallest positive float), over normal pieces.
    let min = FLT_MAX;
    let max = FLT_MIN;
    vocab.pieces.forEach((p) => {
      if (p.type !== "normal") return;
      min = Math.min(min, p.score);
      max = Math.max(max, p.score);
    });
    this.minScore = min;
    this.maxScore = max;
  }

  segment(text: string): Segment[] {
    const size = text.length;
    if (size === 0) return [];
    const vocab = this.vocab;
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    // Best path ending at each code-unit position: score (float32), where it starts, its id.
    const score = new Float32Array(size + 1);
    const from = new Int32Array(size + 1).fill(-1);
    const ids = new Int32Array(size + 1).fill(-1);
    const offer = (endAt: number, startAt: number, id: number, candidate: number) => {
      if (from[endAt] === -1 || candidate > score[endAt]) {
        score[endAt] = candidate;
        from[endAt] = startAt;
        ids[endAt] = id;
      }
    };
    for (let startAt = 0; startAt < size; ) {
      const here = score[startAt];
      const charLen = charLength(text, startAt);
      let hasSingleChar = false;
      this.trie.forEachPrefix(text, startAt, (length, id) => {
        const type = vocab.typeOf(id);
        if (type === "unused") return;
        // The library's ternary mixes double and float, so this sum is compared in double.
        const pieceScore = type === "user_defined" ? Math.fround(vocab.byteLengths[id] * this.maxScore) - 0.1 : vocab.scoreOf(id);
        offer(startAt + length, startAt, id, pieceScore + here);
        if (length === charLen) hasSingleChar = true;
      });
      if (!hasSingleChar) offer(startAt + charLen, startAt, vocab.unkId, Math.fround(unkScore + here));
      startAt += charLen;
    }
    const out: Segment[] = [];
    for (let endAt = size; endAt > 0; endAt = from[endAt]) out.push([text.slice(from[endAt], endAt), ids[endAt]]);
    return out.reverse();
  }
}
