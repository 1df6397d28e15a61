// A SentencePiece processor built from a `.model` file: normalize, segment (BPE or unigram),
// then the library's post-processing (runs of unknown characters become one unknown piece, or
// with byte fallback each unknown character becomes its UTF-8 byte pieces); and decoding back.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { Normalizer, SPACE_SYMBOL } from "./normalizer.ts";
import { PieceVocabulary } from "./piece-vocabulary.ts";
import { segmentBpe, type Segment } from "./sentencepiece-bpe.ts";
import { parseSentencePieceModel, type SentencePieceModel } from "./sentencepiece-model.ts";
import { UnigramSegmenter } from "./sentencepiece-unigram.ts";
import type { StreamDecoder } from "./tokenizer.ts";
import { decodeBytesLikeSentencePiece, utf8Bytes, wellFormed } from "./utf8.ts";

export class SentencePiece {
  private constructor(
    readonly model: SentencePieceModel,
    readonly vocab: PieceVocabulary,
    private readonly normalizer: Normalizer,
    private readonly segment: (normalized: string) => Segment[],
  ) {}

  /** Reads a `.model` file's bytes; `file` names it in diagnostics. */
  static load(bytes: Uint8Array, file: string): Result<SentencePiece> {
    const model = parseSentencePieceModel(bytes, file);
    return model.ok ? SentencePiece.fromModel(model.value, file) : model;
  }

  static fromModel(model: SentencePieceModel, file: string): Result<SentencePiece> {
    const unsupported = (what: string) =>
      fail<SentencePiece>(diag("SFT5203", `${file}: ${what} is not supported`, { where: file, hint: "sftc reads BPE and unigram SentencePiece models" }));
    const { modelType, treatWhitespaceAsSuffix, byteFallback } = model.trainer;
    if (modelType !== "bpe" && modelType !== "unigram") return unsupported(`model_type ${modelType}`);
    if (treatWhitespaceAsSuffix) return unsupported("treat_whitespace_as_suffix");
    const vocab = PieceVocabulary.create(model.pieces, file);
    if (!vocab.ok) return vocab;
    if (byteFallback && vocab.value.byteToId.includes(-1)) {
      return fail(diag("SFT5206", `${file}: byte_fallback is on but some of the 256 byte pieces <0x00>..<0xFF> are missing`, { where: file }));
    }
    const userDefinedWithSpace = model.pieces.some((p) => p.type === "user_defined" && p.piece.includes(" "));
    const normalizer = Normalizer.create(model.normalizer, vocab.value.userDefined, userDefinedWithSpace, treatWhitespaceAsSuffix, file);
    if (!normalizer.ok) return normalizer;
    const unigram = modelType === "unigram" ? new UnigramSegmenter(vocab.value) : undefined;
    const segment = unigram ? (s: string) => unigram.segment(s) : (s: string) => segmentBpe(s, vocab.value);
    return ok(new SentencePiece(model, vocab.value, normalizer.value, segment));
  }

  get size(): number {
    return this.vocab.size;
  }

  normalize(text: string): string {
    return this.normalizer.normalize(wellFormed(text));
  }

  /** What EncodeAsPieces / EncodeAsIds return, as (piece, id) pairs. */
  encodeWithPieces(text: string): Segment[] {
    const out: Segment[] = [];
    const { vocab } = this;
    const byteFallback = this.model.trainer.byteFallback;
    let prevUnknown = false;
    for (const [piece, id] of this.segment(this.normalize(text))) {
      const unknown = id === vocab.unkId;
      if (unknown && byteFallback) {
        for (const b of utf8Bytes(piece)) out.push([vocab.pieces[vocab.byteToId[b]].piece, vocab.byteToId[b]]);
      } else if (unknown && prevUnknown) {
        out[out.length - 1][0] += piece;
      } else {
        out.push([piece, id]);
      }
      prevUnknown = unknown;
    }
    return out;
  }

  encode(text: string): number[] {
    return this.encodeWithPieces(text).map(([, id]) => id);
  }

  /** The piece of each id ("" for ids outside the vocabulary). */
  pieces(ids: readonly number[]): string[] {
    return ids.map((id) => (this.inRange(id) ? this.vocab.pieces[id].piece : ""));
  }

  /**
   * The library's DecodeIds. Ids outside the vocabulary decode to nothing (the library rejects
   * them; generation can sample ids past the tokenizer because embeddings are padded).
   */
  decode(ids: readonly number[]): string {
    let text = "";
    let run: number[] = [];
    let atStart = true;
    for (const id of ids) {
      const byte = this.byteOf(id);
      if (byte >= 0) {
        run.push(byte);
        continue;
      }
      if (run.length > 0) text += decodeBytesLikeSentencePiece(run, true).text;
      run = [];
      const piece = this.surface(id, atStart && text === "");
      text += piece.text;
      atStart &&= text === "" && !piece.endsStart;
    }
    if (run.length > 0) text += decodeBytesLikeSentencePiece(run, true).text;
    return text;
  }

  /** A decoder fed one id at a time whose outputs concatenate to `decode(ids)`. */
  streamDecoder(): StreamDecoder {
    return new SentencePieceStream(this);
  }

  /** The byte value of a byte piece, -1 for any other id. */
  byteOf(id: number): number {
    return this.inRange(id) ? this.vocab.idToByte[id] : -1;
  }

  /**
   * Text of a non-byte piece. While nothing has been written (`atStart`), a leading "▁" is the
   * dummy prefix and is dropped; with remove_extra_whitespaces every leading "▁" piece is, else
   * only the first (`endsStart`).
   */
  surface(id: number, atStart: boolean): { text: string; endsStart: boolean } {
    if (!this.inRange(id)) return { text: "", endsStart: false };
    const { piece, type } = this.vocab.pieces[id];
    if (type === "control") return { text: "", endsStart: false };
    if (type === "unknown") return { text: this.model.trainer.unkSurface, endsStart: false };
    const { addDummyPrefix, removeExtraWhitespaces } = this.model.normalizer;
    const strip = atStart && (addDummyPrefix || removeExtraWhitespaces) && piece.startsWith(SPACE_SYMBOL);
    const text = (strip ? piece.slice(1) : piece).replaceAll(SPACE_SYMBOL, " ");
    return { text, endsStart: strip && !removeExtraWhitespaces };
  }

  private inRange(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocab.size;
  }
}

/** Holds back byte pieces until they complete a character (or a non-byte piece ends the run). */
class SentencePieceStream implements StreamDecoder {
  private bytes: number[] = [];
  private atStart = true;

  constructor(private readonly sp: SentencePiece) {}

  push(id: number): string {
    const byte = this.sp.byteOf(id);
    if (byte >= 0) {
      this.bytes.push(byte);
      return this.drain(false);
    }
    const head = this.drain(true);
    const piece = this.sp.surface(id, this.atStart);
    this.atStart &&= piece.text === "" && !piece.endsStart;
    return head + piece.text;
  }

  flush(): string {
    return this.drain(true);
  }

  private drain(final: boolean): string {
    const { text, consumed } = decodeBytesLikeSentencePiece(this.bytes, final);
    this.bytes.splice(0, consumed);
    if (text !== "") this.atStart = false;
    return text;
  }
}
