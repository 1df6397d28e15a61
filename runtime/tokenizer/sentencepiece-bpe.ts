// SentencePiece's BPE segmentation (bpe_model.cc): split the normalized text into characters
// (user-defined symbols whole and frozen), then repeatedly merge the adjacent pair whose merged
// piece has the highest score, the leftmost pair first on ties. Merges that produce an unused
// piece are undone at the end by splitting it back into the two symbols it was made of.
import type { PieceVocabulary } from "./piece-vocabulary.ts";
import { charLength } from "./utf8.ts";

/** A segment of the normalized text and its id (the unknown id for characters not in the vocabulary). */
export type Segment = [piece: string, id: number];

interface Candidate {
  left: number;
  right: number;
  score: number;
  /** Code units of the merged piece: a pair whose symbols changed since no longer sums to it. */
  length: number;
}

export function segmentBpe(text: string, vocab: PieceVocabulary): Segment[] {
  if (text.length === 0) return [];
  // Symbols as [start, end) ranges of `text`, linked through prev/next; end = start when merged away.
  const start: number[] = [];
  const end: number[] = [];
  const frozen: boolean[] = [];
  for (let i = 0; i < text.length; ) {
    const user = vocab.userDefined.longestMatch(text, i);
    const length = user > 0 ? user : charLength(text, i);
    start.push(i);
    end.push(i + length);
    frozen.push(user > 0);
    i += length;
  }
  const n = start.length;
  const prev = Array.from({ length: n }, (_, k) => k - 1);
  const next = Array.from({ length: n }, (_, k) => (k + 1 < n ? k + 1 : -1));

  const agenda = new CandidateHeap();
  const unmerge = new Map<string, [string, string]>();
  const consider = (left: number, right: number) => {
    if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
    const piece = text.slice(start[left], end[right]);
    const id = vocab.segmentable.get(piece);
    if (id === undefined) return;
    agenda.push({ left, right, score: vocab.scoreOf(id), length: piece.length });
    if (vocab.typeOf(id) === "unused") unmerge.set(piece, [text.slice(start[left], end[left]), text.slice(start[right], end[right])]);
  };
  for (let k = 1; k < n; k++) consider(k - 1, k);

  for (let top = agenda.pop(); top; top = agenda.pop()) {
    const { left, right } = top;
    const leftLength = end[left] - start[left];
    const rightLength = end[right] - start[right];
    if (leftLength === 0 || rightLength === 0 || leftLength + rightLength !== top.length) continue;
    end[left] = end[right];
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    end[right] = start[right];
    consider(prev[left], left);
    consider(left, next[left]);
  }

  const out: Segment[] = [];
  const resegment = (piece: string) => {
    const id = vocab.pieceToId(piece);
    const parts = vocab.typeOf(id) === "unused" ? unmerge.get(piece) : undefined;
    if (!parts) {
      out.push([piece, id]);
      return;
    }
    resegment(parts[0]);
    resegment(parts[1]);
  };
  for (let k = 0; k >= 0; k = next[k]) resegment(text.slice(start[k], end[k]));
  return out;
}

/** Max-heap on score; among equal scores the smaller left index comes first. */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  private static before(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(c: Candidate): void {
    const items = this.items;
    items.push(c);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!CandidateHeap.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): Candidate | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && CandidateHeap.before(items[l], items[best])) best = l;
        if (r < items.length && CandidateHeap.before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}
