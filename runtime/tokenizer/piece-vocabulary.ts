// The piece table of a SentencePiece model, indexed as the library indexes it: normal,
// user-defined and unused pieces can be produced by segmentation; control, unknown and byte
// pieces are "reserved" and only reachable by id (byte pieces through byte fallback).
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { PrefixTrie } from "./prefix-trie.ts";
import type { Piece, PieceType } from "./sentencepiece-model.ts";
import { utf8Length } from "./utf8.ts";

export class PieceVocabulary {
  /** Pieces segmentation may produce: normal, user-defined and unused. */
  readonly segmentable = new Map<string, number>();
  private readonly reserved = new Map<string, number>();
  /** User-defined symbols, matched longest-first before anything else. */
  readonly userDefined = new PrefixTrie<number>();
  /** id of the byte piece `<0xXX>` for each byte value, -1 where absent. */
  readonly byteToId = new Int32Array(256).fill(-1);
  /** byte value of each byte piece, -1 for other pieces. */
  readonly idToByte: Int16Array;
  /** UTF-8 length of each piece (the unigram lattice scores user-defined symbols by it). */
  readonly byteLengths: Int32Array;
  readonly unkId: number;

  private constructor(readonly pieces: readonly Piece[], unkId: number) {
    this.unkId = unkId;
    this.idToByte = new Int16Array(pieces.length).fill(-1);
    this.byteLengths = new Int32Array(pieces.length);
  }

  /** Indexes the pieces; duplicate or empty pieces and a missing `<unk>` are reported. */
  static create(pieces: readonly Piece[], file: string): Result<PieceVocabulary> {
    const unkIds = pieces.flatMap((p, i) => (p.type === "unknown" ? [i] : []));
    if (unkIds.length !== 1) {
      return fail(diag("SFT5206", `${file}: a SentencePiece model needs exactly one unknown piece, found ${unkIds.length}`, { where: file }));
    }
    const vocab = new PieceVocabulary(pieces, unkIds[0]);
    for (let id = 0; id < pieces.length; id++) {
      const { piece, type } = pieces[id];
      if (piece === "") return fail(diag("SFT5202", `${file}: piece ${id} is empty`, { where: file }));
      const segmentable = type === "normal" || type === "user_defined" || type === "unused";
      const table = segmentable ? vocab.segmentable : vocab.reserved;
      if (table.has(piece)) {
        return fail(diag("SFT5202", `${file}: piece "${piece}" is defined twice (ids ${table.get(piece)} and ${id})`, { where: file }));
      }
      table.set(piece, id);
      if (type === "user_defined") vocab.userDefined.add(piece, id);
      vocab.byteLengths[id] = utf8Length(piece);
      const byte = type === "byte" ? /^<0x([0-9A-Fa-f]{2})>$/.exec(piece) : null;
      if (byte) {
        const value = parseInt(byte[1], 16);
        vocab.byteToId[value] = id;
        vocab.idToByte[id] = value;
      }
    }
    return ok(vocab);
  }

  get size(): number {
    return this.pieces.length;
  }

  /** The library's PieceToId: reserved pieces first, then segmentable ones, else `<unk>`. */
  pieceToId(piece: string): number {
    return this.reserved.get(piece) ?? this.segmentable.get(piece) ?? this.unkId;
  }

  /** The id of `piece` if the model has it. */
  find(piece: string): number | undefined {
    return this.reserved.get(piece) ?? this.segmentable.get(piece);
  }

  typeOf(id: number): PieceType {
    return this.pieces[id].type;
  }

  scoreOf(id: number): number {
    return this.pieces[id].score;
  }
}
