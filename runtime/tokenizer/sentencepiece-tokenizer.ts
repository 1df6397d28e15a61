// Plain SentencePiece tokenizers (Baichuan-7B/13B, the bundled tiny model): text goes straight to
// the SentencePiece model, no special tokens are added (add_bos_token and add_eos_token are false).
import type { SentencePiece } from "./sentencepiece.ts";
import { withoutSpecial, type DecodeOptions, type SpecialIds, type StreamDecoder, type Tokenizer, type TokenizerKind } from "./tokenizer.ts";

export class SentencePieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly namedSpecial = new Map<string, number>();
  private readonly specialSet: Set<number>;

  constructor(
    readonly kind: TokenizerKind,
    readonly sentencePiece: SentencePiece,
    readonly special: SpecialIds,
  ) {
    this.vocabSize = sentencePiece.size;
    this.specialSet = new Set(Object.values(special));
    sentencePiece.vocab.pieces.forEach((p, id) => {
      if (p.type === "control" || p.type === "user_defined") this.namedSpecial.set(p.piece, id);
    });
  }

  encode(text: string): number[] {
    return this.sentencePiece.encode(text);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.sentencePiece.decode(options.skipSpecial ? ids.filter((id) => !this.specialSet.has(id)) : ids);
  }

  pieces(ids: readonly number[]): string[] {
    return this.sentencePiece.pieces(ids);
  }

  idOf(piece: string): number | undefined {
    return this.sentencePiece.vocab.find(piece);
  }

  withSpecialTokens(prompt: readonly number[], answer: readonly number[] = []): number[] {
    return [...prompt, ...answer];
  }

  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const inner = this.sentencePiece.streamDecoder();
    return options.skipSpecial ? withoutSpecial(inner, this.specialSet) : inner;
  }
}
